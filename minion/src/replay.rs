//! The minion's memory of jobs it has accepted, kept on disk so that a job replayed
//! after a restart is still refused. Entries live until the job expires, after which
//! the expiry check refuses the job anyway.

use brine_proto::replay::{ReplayWindow, Replayed};
use std::sync::Mutex;

/// A replay window backed by a sled tree.
pub struct ReplayCache {
    tree: sled::Tree,
    window: Mutex<ReplayWindow>,
}

impl ReplayCache {
    /// Loads the remembered ids, dropping expired ones.
    pub fn open(tree: sled::Tree, now_ms: u64) -> Result<ReplayCache, sled::Error> {
        let mut window = ReplayWindow::new();
        for kv in tree.iter() {
            let (k, v) = kv?;
            let expires = <[u8; 8]>::try_from(v.as_ref()).map(u64::from_be_bytes).unwrap_or(0);
            if expires < now_ms {
                tree.remove(k)?;
            } else {
                window.remember(&String::from_utf8_lossy(&k), expires);
            }
        }
        Ok(ReplayCache { tree, window: Mutex::new(window) })
    }

    /// Records `id`, durably, or refuses it if it was seen before.
    pub fn check_and_insert(&self, id: &str, expires_at: u64, now_ms: u64) -> Result<(), ReplayError> {
        let gone = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            w.check_and_insert(id, expires_at, now_ms)?;
            w.prune(now_ms)
        };
        for old in gone {
            self.tree.remove(old.as_bytes())?;
        }
        self.tree.insert(id.as_bytes(), &expires_at.to_be_bytes())?;
        self.tree.flush()?;
        Ok(())
    }
}

/// A job id could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}")]
    Replayed(#[from] Replayed),
    #[error("cannot record the job id: {0}")]
    Store(#[from] sled::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_refused_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let cache = ReplayCache::open(db.open_tree("replay").unwrap(), 1_000).unwrap();
            cache.check_and_insert("j1", 10_000, 1_000).unwrap();
            cache.check_and_insert("j2", 1_500, 1_000).unwrap();
            assert!(matches!(cache.check_and_insert("j1", 10_000, 1_100), Err(ReplayError::Replayed(_))));
        }
        let db = sled::open(dir.path()).unwrap();
        let cache = ReplayCache::open(db.open_tree("replay").unwrap(), 2_000).unwrap();
        assert!(matches!(cache.check_and_insert("j1", 10_000, 2_000), Err(ReplayError::Replayed(_))));
        // j2 expired before the reopen and was forgotten.
        cache.check_and_insert("j2", 9_000, 2_000).unwrap();
    }
}
