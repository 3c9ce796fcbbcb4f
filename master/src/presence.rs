//! Which minions are up: the last verified heartbeat of each.

use brine_proto::{Jid, MinionId};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the last heartbeat of a minion said.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    /// Unix milliseconds of the heartbeat's arrival.
    pub at_ms: u64,
    pub version: String,
    pub running: Vec<Jid>,
}

/// Last heartbeat per minion.
#[derive(Debug, Default)]
pub struct Presence {
    seen: Mutex<HashMap<MinionId, Seen>>,
}

impl Presence {
    /// Records a heartbeat.
    pub fn record(&self, id: MinionId, version: String, running: Vec<Jid>) {
        let seen = Seen { at: Instant::now(), at_ms: brine_proto::time::now_ms(), version, running };
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).insert(id, seen);
    }

    /// Forgets a minion (its key was deleted or rejected).
    pub fn forget(&self, id: &MinionId) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// Whether `id` sent a heartbeat within `timeout`.
    pub fn is_up(&self, id: &MinionId, timeout: Duration) -> bool {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).get(id).is_some_and(|s| s.at.elapsed() <= timeout)
    }

    /// Every minion's last heartbeat.
    pub fn all(&self) -> Vec<(MinionId, Seen)> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The last heartbeat of `id`.
    pub fn get(&self, id: &MinionId) -> Option<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }
}

/// Subscribes to `P.presence.*` and returns the task that records verified heartbeats.
pub async fn serve(
    shared: std::sync::Arc<crate::master::Shared>,
) -> Result<impl std::future::Future<Output = ()>, crate::master::StartError> {
    use crate::stats::Stats;
    use futures::StreamExt;
    let mut sub = shared
        .client
        .subscribe(shared.cfg.subjects.all_presence())
        .await
        .map_err(|e| crate::master::StartError::Connect { url: "presence".into(), reason: e.to_string() })?;
    Ok(async move {
        while let Some(msg) = sub.next().await {
            let Some(id) = shared.cfg.subjects.parse_presence(&msg.subject) else {
                Stats::bump(&shared.stats.presence_refused);
                continue;
            };
            let Some(key) = shared.registry.accepted_key(&id) else {
                Stats::bump(&shared.stats.presence_refused);
                continue;
            };
            match brine_proto::envelope::open::<brine_proto::msg::Presence>(
                &msg.payload,
                &key,
                brine_proto::time::now_ms(),
            ) {
                Ok(p) if p.id == id => {
                    Stats::bump(&shared.stats.presence_received);
                    shared.presence.record(id, p.version, p.running);
                }
                Ok(_) => Stats::bump(&shared.stats.presence_refused),
                Err(e) => {
                    Stats::bump(&shared.stats.presence_refused);
                    tracing::debug!(minion = %id, error = %e, "dropping heartbeat");
                }
            }
        }
    })
}
