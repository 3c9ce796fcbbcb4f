//! Counters of what the master received and dropped. Hostile or garbage input is
//! never fatal: it is dropped, logged and counted here.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $doc:literal),* $(,)?) => {
        /// Live counters, shared by the master's tasks.
        #[derive(Debug, Default)]
        pub struct Stats {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        /// A point-in-time copy of [`Stats`].
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
        pub struct StatsSnapshot {
            $(#[doc = $doc] pub $name: u64,)*
        }

        impl Stats {
            /// Reads every counter.
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    returns_stored: "Verified returns stored for the first time.",
    returns_duplicate: "Verified returns already stored (redelivery, retry).",
    returns_direct: "Returns handed to the master directly, whatever became of them (the others came through the returns stream).",
    returns_malformed: "Returns that did not decode, or whose subject did not match their body.",
    returns_bad_signature: "Returns whose signature did not verify against the minion's accepted key.",
    returns_unknown_minion: "Returns from a minion with no accepted key.",
    returns_stale: "Returns refused for their stamp (expired, from the future).",
    returns_unexpected: "Returns for a job that does not exist or did not target that minion.",
    enroll_requests: "Enrollment requests answered.",
    enroll_refused: "Enrollment requests dropped (malformed, bad proof of possession).",
    ctl_requests: "Operator requests handled.",
    ctl_refused: "Operator requests refused (unknown signer, bad signature, replay, denied by the ACL).",
    presence_received: "Verified heartbeats.",
    presence_refused: "Heartbeats dropped (unknown minion, bad signature, malformed).",
    jobs_published: "Jobs published (one per job, not per minion).",
    rpc_requests: "Minion requests answered (grains, ...).",
    rpc_refused: "Minion requests dropped (unknown minion, bad signature, mismatched subject).",
    events_received: "Verified events handed to the bus's subscribers.",
    events_refused: "Events dropped, for any reason (the sum of the events_* drop counters).",
    events_malformed: "Events that did not decode, or whose subject did not spell their tag.",
    events_bad_signature: "Events not signed by their source's key (forged), or from a source without an accepted key.",
    events_stale: "Events refused for their stamp (expired, from the future) or replayed.",
    events_foreign_tag: "Events outside their source's tag space (a minion using another's or the master's tags).",
    reactions_run: "Reactions carried out (one per entry of a rendered reaction file).",
    reactions_failed: "Reactions that failed (render error, refused job, unknown function).",
    reactions_loop_stopped: "Events not reacted to because their reaction chain reached reactor.max_depth.",
}

impl Stats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
