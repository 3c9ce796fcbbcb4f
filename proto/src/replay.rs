//! Refusing messages seen before.
//!
//! Every message id is remembered until the message expires; after that the stamp
//! check refuses the message anyway, so the window never grows beyond the messages
//! still in date. Receivers that must survive a restart persist the entries and load
//! them back with [`ReplayWindow::remember`].

use std::collections::{BTreeSet, HashMap};

/// The ids of in-date messages already acted on.
#[derive(Debug, Default)]
pub struct ReplayWindow {
    seen: HashMap<String, u64>,
    by_expiry: BTreeSet<(u64, String)>,
}

/// A message id that was seen before.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message {0} was already received (replay refused)")]
pub struct Replayed(pub String);

impl ReplayWindow {
    /// An empty window.
    pub fn new() -> ReplayWindow {
        ReplayWindow::default()
    }

    /// Records `id` (valid until `expires_at`), or refuses it if it was seen before.
    /// Entries that expired before `now_ms` are forgotten first.
    pub fn check_and_insert(&mut self, id: &str, expires_at: u64, now_ms: u64) -> Result<(), Replayed> {
        self.prune(now_ms);
        if self.seen.contains_key(id) {
            return Err(Replayed(id.to_string()));
        }
        self.remember(id, expires_at);
        Ok(())
    }

    /// Records `id` without checking (loading persisted entries).
    pub fn remember(&mut self, id: &str, expires_at: u64) {
        if let Some(old) = self.seen.insert(id.to_string(), expires_at) {
            self.by_expiry.remove(&(old, id.to_string()));
        }
        self.by_expiry.insert((expires_at, id.to_string()));
    }

    /// Forgets `id` (one that could not be recorded after all).
    pub fn forget(&mut self, id: &str) {
        if let Some(expires_at) = self.seen.remove(id) {
            self.by_expiry.remove(&(expires_at, id.to_string()));
        }
    }

    /// Forgets entries that expired before `now_ms`, returning them so a persistent
    /// store can drop them too.
    pub fn prune(&mut self, now_ms: u64) -> Vec<String> {
        let mut gone = Vec::new();
        while let Some((exp, _)) = self.by_expiry.first() {
            if *exp >= now_ms {
                break;
            }
            if let Some((_, id)) = self.by_expiry.pop_first() {
                self.seen.remove(&id);
                gone.push(id);
            }
        }
        gone
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seen_id_is_refused_until_it_expires() {
        let mut w = ReplayWindow::new();
        w.check_and_insert("a", 100, 10).unwrap();
        assert_eq!(w.check_and_insert("a", 100, 50), Err(Replayed("a".into())));
        w.check_and_insert("b", 200, 50).unwrap();
        // After expiry the id is forgotten (the stamp check refuses the message then).
        assert_eq!(w.prune(150), vec!["a".to_string()]);
        assert_eq!(w.len(), 1);
        w.check_and_insert("a", 300, 150).unwrap();
    }
}
