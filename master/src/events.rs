//! The event bus as the master sees it.
//!
//! Every event travels on NATS as a signed [`Event`] on `P.event.<source>.<tag…>`: the
//! master's own (signed with the master key, source `master`) and each minion's
//! (signed with its accepted key, source = its id; NATS lets a minion publish only
//! under its own id). The master subscribes to `P.event.>` and, for each message:
//!
//! 1. decodes the envelope and checks its signature against the key of the source
//!    the subject names (the master's key for `master`, else that minion's accepted
//!    key), its stamp (expiry, clock) and that its id was not seen before (replay);
//! 2. checks the subject spells the body's tag, and that the tag lies in the
//!    source's own tag space: under `brine/` a minion may use only
//!    `brine/minion/<its id>/…` and `brine/beacon/<its id>/…`, the rest of `brine/`
//!    is the master's;
//! 3. hands the verified event to in-process subscribers ([`EventBus::subscribe`],
//!    also reachable as [`Shared::subscribe`]): the reactor, and anything else that
//!    waits for events (an orchestration's `wait_for_event`). A minion event whose
//!    data is a mapping gets the minion's verified id as `id`, as Salt's has.
//!
//! Anything that fails a check is dropped, logged and counted in [`crate::stats`];
//! nothing a peer sends can stop the loop.
//!
//! The master's own events skip the round trip: [`Shared::emit`] hands them to the
//! in-process subscribers directly and publishes them on NATS for everyone else,
//! through the bus connection, which NATS does not echo back to the master's own
//! subscription ([`Shared::bus_client`]) — a busy master fires one event per return.
//! Anything on `P.event.master.…` that does arrive is checked like any event (a
//! forgery fails the signature, a replay of a real one the replay window, which
//! holds the master's own ids too). Many events signed as one hash tree
//! ([`Shared::emit_many`]) cost one signature check between them
//! ([`brine_proto::envelope::TreeRoots`]).
//!
//! [`Shared::emit`]: crate::master::Shared::emit
//! [`Shared::emit_many`]: crate::master::Shared::emit_many
//! [`Shared::bus_client`]: crate::master::Shared::bus_client

use crate::master::{Shared, StartError};
use crate::stats::Stats;
use brine_proto::envelope::{Envelope, OpenError, TreeRoots};
use brine_proto::msg::Event;
use brine_proto::replay::ReplayWindow;
use brine_proto::{Jid, MinionId, Target, Value};
use futures::StreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// The source name of the master's own events (`P.event.master.…`).
pub const MASTER: &str = "master";

/// How many verified events wait for a slow in-process subscriber before it starts
/// missing some (it then gets `RecvError::Lagged` and carries on).
const BUS_CAPACITY: usize = 4096;

/// How long the master remembers which reaction depth a job it started has.
const JOB_DEPTH_TTL: Duration = Duration::from_secs(3600);

/// A verified event, as in-process subscribers receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct BusEvent {
    /// `master`, or the id of the minion that signed it.
    pub source: String,
    /// Slash-separated tag.
    pub tag: String,
    pub data: Value,
    /// The job during which a minion fired it, if any.
    pub jid: Option<Jid>,
    /// Its reaction depth: what the reactor's loop guard counts (see [`Event::depth`]).
    pub depth: u32,
    /// Unix milliseconds when the master verified it.
    pub at_ms: u64,
}

/// The master's in-process side of the bus: verified events fan out to subscribers,
/// and the reaction depth of jobs started by reactions is remembered so that their
/// events carry it.
pub struct EventBus {
    tx: broadcast::Sender<Arc<BusEvent>>,
    replay: Mutex<ReplayWindow>,
    job_depth: Mutex<HashMap<Jid, (u32, Instant)>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            tx: broadcast::channel(BUS_CAPACITY).0,
            replay: Mutex::new(ReplayWindow::new()),
            job_depth: Mutex::new(HashMap::new()),
        }
    }
}

impl EventBus {
    /// Every verified event from now on, in arrival order. A receiver that falls more
    /// than a few thousand events behind loses the oldest (`RecvError::Lagged`); drop
    /// the receiver when done.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        self.tx.subscribe()
    }

    /// Records that job `jid` was started by a reaction at `depth`: its `new` and
    /// `ret` events, and events minions fire while running it, carry that depth.
    pub fn set_job_depth(&self, jid: Jid, depth: u32) {
        let mut map = self.job_depth.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, at)| at.elapsed() < JOB_DEPTH_TTL);
        map.insert(jid, (depth, Instant::now()));
    }

    /// The reaction depth of job `jid` (0 for a job no reaction started).
    pub fn job_depth(&self, jid: Jid) -> u32 {
        self.job_depth.lock().unwrap_or_else(|e| e.into_inner()).get(&jid).map_or(0, |(d, _)| *d)
    }

    fn publish(&self, event: BusEvent) {
        // No receiver is not an error: nobody is listening right now.
        let _ = self.tx.send(Arc::new(event));
    }

    /// Delivers one of the master's own events in process, as it goes out on NATS:
    /// its id enters the replay window, so a copy sent back onto the bus is refused.
    pub(crate) fn deliver_own(&self, event: Event, now: u64) {
        let fresh = self.replay.lock().unwrap_or_else(|e| e.into_inner()).check_and_insert(
            &event.stamp.id,
            event.stamp.expires_at,
            now,
        );
        if fresh.is_err() {
            // A random 128-bit id seen before: not something to deliver twice.
            return;
        }
        self.publish(BusEvent {
            source: MASTER.to_string(),
            tag: event.tag,
            data: event.data,
            jid: event.jid,
            depth: event.depth,
            at_ms: now,
        });
    }

    fn prune(&self, now: u64) {
        self.replay.lock().unwrap_or_else(|e| e.into_inner()).prune(now);
    }
}

/// Why one event was dropped.
#[derive(Debug)]
enum Drop {
    Malformed(String),
    UnknownSource(String),
    Signature(OpenError),
    Stale(OpenError),
    Replayed,
    ForeignTag(String),
}

/// Whether `source` may publish `tag`: the master anything; a minion anything outside
/// `brine/`, and under `brine/` only its own `minion/<id>/…` and `beacon/<id>/…`.
pub fn tag_allowed(source: &str, tag: &str) -> bool {
    if source == MASTER {
        return true;
    }
    let Some(rest) = tag.strip_prefix("brine/") else { return tag != "brine" };
    let mut parts = rest.split('/');
    matches!((parts.next(), parts.next()), (Some("minion" | "beacon"), Some(id)) if id == source)
}

/// Whether `tag` is a well-formed tag: non-empty slash-separated words, at most 1 KiB.
pub fn valid_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() || tag.len() > 1024 || tag.split('/').any(str::is_empty) {
        return Err(format!(
            "{:?} is not an event tag (slash-separated words, e.g. myapp/deploy/done, at most 1024 bytes)",
            tag.chars().take(80).collect::<String>()
        ));
    }
    if tag.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("event tag {tag:?} contains whitespace or a control character"));
    }
    Ok(())
}

/// Checks one message from `P.event.>`; `roots` remembers the tree signatures
/// already checked.
fn verify(shared: &Shared, subject: &str, payload: &[u8], now: u64, roots: &mut TreeRoots) -> Result<BusEvent, Drop> {
    let prefix = format!("{}.event.", shared.cfg.subjects.prefix());
    let rest = subject.strip_prefix(&prefix).ok_or_else(|| Drop::Malformed(format!("subject {subject}")))?;
    let token = rest.split('.').next().unwrap_or_default();
    let source = brine_proto::id::decode_token(token).ok_or_else(|| Drop::Malformed(format!("subject {subject}")))?;
    let key = if source == MASTER {
        shared.key.verifying_key()
    } else {
        let id = MinionId::new(source.clone()).map_err(|e| Drop::Malformed(e.to_string()))?;
        shared.registry.accepted_key(&id).ok_or_else(|| Drop::UnknownSource(source.clone()))?
    };
    let env = Envelope::decode(payload).map_err(|e| Drop::Malformed(e.to_string()))?;
    env.verify_cached(&key, roots).map_err(Drop::Signature)?;
    let event: Event = env.body(now).map_err(|e| match e {
        OpenError::Expired(_) | OpenError::FromTheFuture(_) | OpenError::BadStamp(_) => Drop::Stale(e),
        e => Drop::Malformed(e.to_string()),
    })?;
    valid_tag(&event.tag).map_err(Drop::Malformed)?;
    if shared.cfg.subjects.event(&source, &event.tag) != subject {
        return Err(Drop::Malformed(format!("tag {:?} on subject {subject}", event.tag)));
    }
    if !tag_allowed(&source, &event.tag) {
        return Err(Drop::ForeignTag(event.tag));
    }
    let fresh = shared.events.replay.lock().unwrap_or_else(|e| e.into_inner()).check_and_insert(
        &event.stamp.id,
        event.stamp.expires_at,
        now,
    );
    if fresh.is_err() {
        return Err(Drop::Replayed);
    }
    // A minion's event fired inside a job a reaction started is part of that chain;
    // the minion cannot lower the depth the master knows.
    let depth = match event.jid {
        Some(jid) if source != MASTER => event.depth.max(shared.events.job_depth(jid)),
        _ => event.depth,
    };
    // Reaction files say `data['id']` for the minion that sent an event, as in Salt;
    // it is always the verified sender, so a minion cannot name another there.
    let mut data = event.data;
    if source != MASTER {
        if let Value::Object(m) = &mut data {
            m.insert("id".into(), source.clone().into());
        }
    }
    Ok(BusEvent { source, tag: event.tag, data, jid: event.jid, depth, at_ms: now })
}

fn count_drop(shared: &Shared, subject: &str, why: Drop) {
    let s = &shared.stats;
    Stats::bump(&s.events_refused);
    match why {
        Drop::Malformed(m) => {
            Stats::bump(&s.events_malformed);
            tracing::warn!(subject, reason = %m, "dropped a malformed event");
        }
        Drop::UnknownSource(src) => {
            Stats::bump(&s.events_bad_signature);
            tracing::warn!(subject, source = %src, "dropped an event from a source without an accepted key");
        }
        Drop::Signature(e) => {
            Stats::bump(&s.events_bad_signature);
            tracing::warn!(subject, error = %e, "dropped an event that failed verification (forged?)");
        }
        Drop::Stale(e) => {
            Stats::bump(&s.events_stale);
            tracing::warn!(subject, error = %e, "dropped a stale event");
        }
        Drop::Replayed => {
            Stats::bump(&s.events_stale);
            tracing::warn!(subject, "dropped a replayed event");
        }
        Drop::ForeignTag(tag) => {
            Stats::bump(&s.events_foreign_tag);
            tracing::warn!(subject, tag, "dropped an event outside its source's tag space");
        }
    }
}

/// Subscribes to `P.event.>` and returns the task that verifies and fans out events.
pub async fn serve(shared: Arc<Shared>) -> Result<impl Future<Output = ()>, StartError> {
    let mut sub = shared
        .bus_client
        .subscribe(shared.cfg.subjects.all_events())
        .await
        .map_err(|e| StartError::Connect { url: "events".into(), reason: e.to_string() })?;
    Ok(async move {
        let mut pruned = Instant::now();
        let mut roots = TreeRoots::default();
        while let Some(msg) = sub.next().await {
            let now = brine_proto::time::now_ms();
            match verify(&shared, &msg.subject, &msg.payload, now, &mut roots) {
                Ok(event) => {
                    Stats::bump(&shared.stats.events_received);
                    tracing::debug!(source = %event.source, tag = %event.tag, depth = event.depth, "event");
                    shared.events.publish(event);
                }
                Err(why) => count_drop(&shared, &msg.subject, why),
            }
            if pruned.elapsed() > Duration::from_secs(30) {
                shared.events.prune(now);
                pruned = Instant::now();
            }
        }
    })
}

/// Salt's `tgt` and `tgt_type` for a target: the expression (a list for a list
/// target) and its kind (`glob`, `list`, `pcre`, `grain`, `grain_pcre`, `pillar`,
/// `pillar_pcre`, `ipcidr`, `nodegroup`, `compound`).
pub fn salt_target(target: &Target) -> (Value, &'static str) {
    match target {
        Target::Glob(t) => (t.as_str().into(), "glob"),
        Target::List(ids) => (ids.iter().map(|s| Value::String(s.clone())).collect(), "list"),
        Target::Pcre(t) => (t.as_str().into(), "pcre"),
        Target::Grain(t) => (t.as_str().into(), "grain"),
        Target::GrainPcre(t) => (t.as_str().into(), "grain_pcre"),
        Target::Pillar(t) => (t.as_str().into(), "pillar"),
        Target::PillarPcre(t) => (t.as_str().into(), "pillar_pcre"),
        Target::Cidr(t) => (t.as_str().into(), "ipcidr"),
        Target::Nodegroup(t) => (t.as_str().into(), "nodegroup"),
        Target::Compound(t) => (t.as_str().into(), "compound"),
    }
}

/// The target Salt's `tgt` and `tgt_type` name (the inverse of [`salt_target`]); a
/// list may be given as a list or as `a,b,c`.
pub fn target_from_salt(tgt: &Value, tgt_type: &str) -> Result<Target, String> {
    let text = || match tgt {
        Value::String(s) => Ok(s.clone()),
        other => Err(format!("tgt must be a string for tgt_type {tgt_type}, not {other}")),
    };
    Ok(match tgt_type {
        "glob" => Target::Glob(text()?),
        "list" => match tgt {
            Value::Array(items) => {
                Target::List(items.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect())
            }
            _ => Target::list_from_str(&text()?),
        },
        "pcre" => Target::Pcre(text()?),
        "grain" => Target::Grain(text()?),
        "grain_pcre" => Target::GrainPcre(text()?),
        "pillar" => Target::Pillar(text()?),
        "pillar_pcre" => Target::PillarPcre(text()?),
        "ipcidr" => Target::Cidr(text()?),
        "nodegroup" => Target::Nodegroup(text()?),
        "compound" => Target::Compound(text()?),
        other => {
            return Err(format!(
                "unknown tgt_type {other:?} (use glob, list, pcre, grain, grain_pcre, pillar, pillar_pcre, ipcidr, \
                 nodegroup or compound)"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minions_keep_to_their_own_tag_space() {
        assert!(tag_allowed("web1", "myapp/deploy/done"));
        assert!(tag_allowed("web1", "brine/minion/web1/start"));
        assert!(tag_allowed("web1", "brine/beacon/web1/inotify/etc"));
        assert!(!tag_allowed("web1", "brine/minion/web2/start"));
        assert!(!tag_allowed("web1", "brine/beacon/web2/load"));
        assert!(!tag_allowed("web1", "brine/job/20260101000000000000/ret/web1"));
        assert!(!tag_allowed("web1", "brine/key/accept"));
        assert!(!tag_allowed("web1", "brine"));
        assert!(tag_allowed(MASTER, "brine/job/1/new"));
    }

    #[test]
    fn the_masters_own_events_are_delivered_once() {
        use brine_proto::envelope::Stamp;
        let bus = EventBus::default();
        let mut rx = bus.subscribe();
        let event = Event::new(Stamp::random(Duration::from_secs(60)), "brine/job/1/new", Value::Bool(true));
        let now = brine_proto::time::now_ms();
        bus.deliver_own(event.clone(), now);
        let got = rx.try_recv().expect("delivered in process");
        assert_eq!((got.source.as_str(), got.tag.as_str()), (MASTER, "brine/job/1/new"));
        // The same id again (a replay) is not delivered a second time, and is in the
        // window a copy from NATS would be checked against.
        bus.deliver_own(event.clone(), now);
        assert!(rx.try_recv().is_err());
        let replayed = bus.replay.lock().unwrap().check_and_insert(&event.stamp.id, event.stamp.expires_at, now);
        assert!(replayed.is_err());
    }

    #[test]
    fn tags_are_slash_separated_words() {
        assert!(valid_tag("a/b/c").is_ok());
        for bad in ["", "/a", "a/", "a//b", "a b", "a\nb"] {
            assert!(valid_tag(bad).is_err(), "{bad:?}");
        }
        assert!(valid_tag(&"x".repeat(2000)).is_err());
    }

    #[test]
    fn salt_targets_round_trip() {
        for t in [
            Target::Glob("web*".into()),
            Target::List(vec!["a".into(), "b".into()]),
            Target::Cidr("10.0.0.0/8".into()),
            Target::Compound("G@os:Debian and web*".into()),
        ] {
            let (tgt, kind) = salt_target(&t);
            assert_eq!(target_from_salt(&tgt, kind).unwrap(), t);
        }
        assert_eq!(target_from_salt(&"a, b".into(), "list").unwrap(), Target::List(vec!["a".into(), "b".into()]));
        assert!(target_from_salt(&"x".into(), "regex").unwrap_err().contains("unknown tgt_type"));
    }
}
