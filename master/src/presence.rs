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
    let sub = shared
        .client
        .subscribe(shared.cfg.subjects.all_presence())
        .await
        .map_err(|e| crate::master::StartError::Connect { url: "presence".into(), reason: e.to_string() })?;
    Ok(async move {
        // Heartbeats that arrived together are checked together (batch verification:
        // 10 000 minions send 1 000 a second), in chunks small enough (≈ 1 ms of
        // work) to check on the async thread. Handing them to the blocking pool made
        // it grow to over a hundred threads under load.
        let mut chunks = sub.ready_chunks(48);
        while let Some(msgs) = chunks.next().await {
            let mut known = Vec::with_capacity(msgs.len());
            for msg in msgs {
                let Some(id) = shared.cfg.subjects.parse_presence(&msg.subject) else {
                    Stats::bump(&shared.stats.presence_refused);
                    continue;
                };
                let Some(key) = shared.registry.accepted_key(&id) else {
                    Stats::bump(&shared.stats.presence_refused);
                    continue;
                };
                known.push((id, key, msg.payload));
            }
            let opened = {
                let items: Vec<(&[u8], &ed25519_dalek::VerifyingKey)> =
                    known.iter().map(|(_, key, payload)| (payload.as_ref(), key)).collect();
                brine_proto::envelope::open_many::<brine_proto::msg::Presence>(&items, brine_proto::time::now_ms())
            };
            for ((id, _, _), opened) in known.into_iter().zip(opened) {
                match opened {
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
        }
    })
}

/// Emits Salt's `brine/presence/change` (`{new: [...], lost: [...]}`) whenever the set
/// of minions with a recent heartbeat changes, checking every few seconds. The first
/// check after the master starts lists every minion already up as new.
pub async fn watch_changes(shared: std::sync::Arc<crate::master::Shared>) {
    use std::collections::BTreeSet;
    let every = (shared.cfg.presence_timeout / 3).clamp(Duration::from_secs(1), Duration::from_secs(10));
    let mut tick = tokio::time::interval(every);
    let mut up: BTreeSet<MinionId> = BTreeSet::new();
    loop {
        tick.tick().await;
        let now: BTreeSet<MinionId> = shared
            .presence
            .all()
            .into_iter()
            .filter(|(_, s)| s.at.elapsed() <= shared.cfg.presence_timeout)
            .map(|(id, _)| id)
            .collect();
        let new: Vec<&MinionId> = now.difference(&up).collect();
        let lost: Vec<&MinionId> = up.difference(&now).collect();
        if !new.is_empty() || !lost.is_empty() {
            shared.emit("brine/presence/change", serde_json::json!({"new": new, "lost": lost})).await;
        }
        up = now;
    }
}
