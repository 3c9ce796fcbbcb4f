//! The key registry: which minion keys are pending, accepted, rejected or denied.
//!
//! Stored in sled (tree `keys`: id → record; tree `denied`: id ‖ 0 ‖ key → time), with
//! the accepted keys mirrored in memory because every return and heartbeat is
//! verified against one. A key presented for an id that already has a different key
//! is recorded as *denied* and never replaces the old key by itself; an operator
//! decides (`brine key accept --include-denied ID` or `brine key delete ID`).

use crate::store::{Store, StoreError};
use brine_proto::msg::{KeyEntry, KeyListing, KeySelection, KeyStatus};
use brine_proto::{MinionId, Target, TargetMatcher};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::RwLock;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyRecord {
    status: KeyStatus,
    #[serde(with = "serde_bytes")]
    key: [u8; 32],
    /// Unix milliseconds of the last status change.
    updated_at: u64,
}

/// What the registry made of an enrollment request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enrolled {
    pub status: KeyStatus,
    /// Whether the registry changed (a new pending, auto-accepted or denied key).
    pub changed: bool,
}

/// The key registry.
pub struct Registry {
    keys: sled::Tree,
    denied: sled::Tree,
    store: Store,
    accepted: RwLock<HashMap<MinionId, VerifyingKey>>,
}

/// A key selection that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("bad key pattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
}

fn denied_key(id: &MinionId, key: &[u8; 32]) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.as_str().len() + 33);
    k.extend_from_slice(id.as_str().as_bytes());
    k.push(0);
    k.extend_from_slice(key);
    k
}

fn split_denied(k: &[u8]) -> Option<(MinionId, [u8; 32])> {
    let pos = k.iter().position(|b| *b == 0)?;
    let id = MinionId::new(std::str::from_utf8(&k[..pos]).ok()?).ok()?;
    let key = <[u8; 32]>::try_from(&k[pos + 1..]).ok()?;
    Some((id, key))
}

impl Registry {
    /// Opens the registry in `store` and loads the accepted keys.
    pub fn open(store: &Store) -> Result<Registry, StoreError> {
        let reg = Registry {
            keys: store.tree("keys")?,
            denied: store.tree("denied")?,
            store: store.clone(),
            accepted: RwLock::new(HashMap::new()),
        };
        let mut accepted = HashMap::new();
        for (id, rec) in reg.records()? {
            if rec.status == KeyStatus::Accepted {
                if let Ok(key) = VerifyingKey::from_bytes(&rec.key) {
                    accepted.insert(id, key);
                }
            }
        }
        *reg.accepted.write().unwrap_or_else(|e| e.into_inner()) = accepted;
        Ok(reg)
    }

    fn db_err(&self, e: sled::Error) -> StoreError {
        StoreError::Db { path: "keys".into(), source: e }
    }

    fn records(&self) -> Result<Vec<(MinionId, KeyRecord)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.keys.iter() {
            let (k, v) = kv.map_err(|e| self.db_err(e))?;
            let (Ok(id), Ok(rec)) =
                (MinionId::new(String::from_utf8_lossy(&k).into_owned()), rmp_serde::from_slice::<KeyRecord>(&v))
            else {
                tracing::warn!(key = %String::from_utf8_lossy(&k), "skipping unreadable key record");
                continue;
            };
            out.push((id, rec));
        }
        Ok(out)
    }

    fn record(&self, id: &MinionId) -> Result<Option<KeyRecord>, StoreError> {
        let v = self.keys.get(id.as_str()).map_err(|e| self.db_err(e))?;
        Ok(v.and_then(|v| rmp_serde::from_slice(&v).ok()))
    }

    fn put(&self, id: &MinionId, status: KeyStatus, key: [u8; 32]) -> Result<(), StoreError> {
        let rec = KeyRecord { status, key, updated_at: brine_proto::time::now_ms() };
        let bytes = rmp_serde::to_vec_named(&rec).unwrap_or_default();
        self.keys.insert(id.as_str(), bytes).map_err(|e| self.db_err(e))?;
        let mut acc = self.accepted.write().unwrap_or_else(|e| e.into_inner());
        match (status, VerifyingKey::from_bytes(&key)) {
            (KeyStatus::Accepted, Ok(k)) => {
                acc.insert(id.clone(), k);
            }
            _ => {
                acc.remove(id);
            }
        }
        Ok(())
    }

    /// Records an enrollment request for `id` with `key`.
    pub fn enroll(&self, id: &MinionId, key: [u8; 32], auto_accept: bool) -> Result<Enrolled, StoreError> {
        match self.record(id)? {
            Some(rec) if rec.key == key => Ok(Enrolled { status: rec.status, changed: false }),
            Some(_) => {
                let k = denied_key(id, &key);
                let fresh = !self.denied.contains_key(&k).map_err(|e| self.db_err(e))?;
                if fresh {
                    self.denied.insert(k, &brine_proto::time::now_ms().to_be_bytes()).map_err(|e| self.db_err(e))?;
                }
                Ok(Enrolled { status: KeyStatus::Denied, changed: fresh })
            }
            None => {
                // A key that was denied while another key held the id may enroll once
                // that key is gone.
                self.denied.remove(denied_key(id, &key)).map_err(|e| self.db_err(e))?;
                let status = if auto_accept { KeyStatus::Accepted } else { KeyStatus::Pending };
                self.put(id, status, key)?;
                Ok(Enrolled { status, changed: true })
            }
        }
    }

    /// The accepted key of `id`.
    pub fn accepted_key(&self, id: &MinionId) -> Option<VerifyingKey> {
        self.accepted.read().unwrap_or_else(|e| e.into_inner()).get(id).copied()
    }

    /// Every accepted minion with its key, sorted by id.
    pub fn accepted(&self) -> Vec<(MinionId, VerifyingKey)> {
        let mut v: Vec<_> =
            self.accepted.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(id, k)| (id.clone(), *k)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Every accepted minion id for which `matches` holds, sorted.
    pub fn accepted_matching(&self, mut matches: impl FnMut(&MinionId) -> bool) -> Vec<MinionId> {
        let mut v: Vec<MinionId> =
            self.accepted.read().unwrap_or_else(|e| e.into_inner()).keys().filter(|id| matches(id)).cloned().collect();
        v.sort();
        v
    }

    /// Every key by status.
    pub fn listing(&self, master: [u8; 32]) -> Result<KeyListing, StoreError> {
        let mut l = KeyListing { master, ..KeyListing::default() };
        for (id, rec) in self.records()? {
            let entry = KeyEntry { id, status: rec.status, key: rec.key };
            match rec.status {
                KeyStatus::Accepted => l.accepted.push(entry),
                KeyStatus::Pending => l.pending.push(entry),
                KeyStatus::Rejected => l.rejected.push(entry),
                KeyStatus::Denied => l.denied.push(entry),
            }
        }
        for kv in self.denied.iter() {
            let (k, _) = kv.map_err(|e| self.db_err(e))?;
            if let Some((id, key)) = split_denied(&k) {
                l.denied.push(KeyEntry { id, status: KeyStatus::Denied, key });
            }
        }
        Ok(l)
    }

    fn matcher(sel: &KeySelection) -> Result<Vec<TargetMatcher>, SelectError> {
        sel.ids
            .iter()
            .map(|p| {
                TargetMatcher::compile(&Target::Glob(p.clone()))
                    .map_err(|e| SelectError::Pattern { pattern: p.clone(), reason: e.to_string() })
            })
            .collect()
    }

    fn selected(sel: &KeySelection, matchers: &[TargetMatcher], id: &MinionId) -> bool {
        sel.all || matchers.iter().any(|m| m.matches_id(id.as_str()))
    }

    /// Accepts the selected pending keys (and rejected or denied ones if asked).
    pub fn accept(&self, sel: &KeySelection) -> Result<Vec<KeyEntry>, SelectError> {
        let matchers = Self::matcher(sel)?;
        let mut changed = Vec::new();
        for (id, rec) in self.records()? {
            let eligible = match rec.status {
                KeyStatus::Pending => true,
                KeyStatus::Rejected => sel.include_rejected,
                _ => false,
            };
            if eligible && Self::selected(sel, &matchers, &id) {
                self.put(&id, KeyStatus::Accepted, rec.key)?;
                changed.push(KeyEntry { id, status: KeyStatus::Accepted, key: rec.key });
            }
        }
        if sel.include_denied {
            for kv in self.denied.iter() {
                let (k, _) = kv.map_err(|e| self.db_err(e))?;
                let Some((id, key)) = split_denied(&k) else {
                    continue;
                };
                if Self::selected(sel, &matchers, &id) && !changed.iter().any(|e| e.id == id) {
                    // The operator chose this key for the id: it replaces the old one.
                    self.put(&id, KeyStatus::Accepted, key)?;
                    self.denied.remove(&k).map_err(|e| self.db_err(e))?;
                    changed.push(KeyEntry { id, status: KeyStatus::Accepted, key });
                }
            }
        }
        Ok(changed)
    }

    /// Rejects the selected pending keys (and accepted ones if asked).
    pub fn reject(&self, sel: &KeySelection) -> Result<Vec<KeyEntry>, SelectError> {
        let matchers = Self::matcher(sel)?;
        let mut changed = Vec::new();
        for (id, rec) in self.records()? {
            let eligible = match rec.status {
                KeyStatus::Pending => true,
                KeyStatus::Accepted => sel.include_accepted,
                _ => false,
            };
            if eligible && Self::selected(sel, &matchers, &id) {
                self.put(&id, KeyStatus::Rejected, rec.key)?;
                changed.push(KeyEntry { id, status: KeyStatus::Rejected, key: rec.key });
            }
        }
        Ok(changed)
    }

    /// Deletes the selected keys of any status, denied ones included. The entries
    /// returned carry the status each key had.
    pub fn delete(&self, sel: &KeySelection) -> Result<Vec<KeyEntry>, SelectError> {
        let matchers = Self::matcher(sel)?;
        let mut changed = Vec::new();
        for (id, rec) in self.records()? {
            if Self::selected(sel, &matchers, &id) {
                self.keys.remove(id.as_str()).map_err(|e| self.db_err(e))?;
                self.accepted.write().unwrap_or_else(|e| e.into_inner()).remove(&id);
                changed.push(KeyEntry { id, status: rec.status, key: rec.key });
            }
        }
        for kv in self.denied.iter() {
            let (k, _) = kv.map_err(|e| self.db_err(e))?;
            let Some((id, key)) = split_denied(&k) else {
                continue;
            };
            if Self::selected(sel, &matchers, &id) {
                self.denied.remove(&k).map_err(|e| self.db_err(e))?;
                changed.push(KeyEntry { id, status: KeyStatus::Denied, key });
            }
        }
        Ok(changed)
    }

    /// Makes key changes durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        use crate::store::JobCache;
        self.store.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(ids: &[&str]) -> KeySelection {
        KeySelection { ids: ids.iter().map(|s| s.to_string()).collect(), ..Default::default() }
    }

    fn reg() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let reg = Registry::open(&store).unwrap();
        (dir, reg)
    }

    fn id(s: &str) -> MinionId {
        MinionId::new(s).unwrap()
    }

    fn pk(n: u8) -> [u8; 32] {
        ed25519_dalek::SigningKey::from_bytes(&[n; 32]).verifying_key().to_bytes()
    }

    #[test]
    fn new_keys_are_pending_until_accepted() {
        let (_d, reg) = reg();
        assert_eq!(
            reg.enroll(&id("web1"), pk(1), false).unwrap(),
            Enrolled { status: KeyStatus::Pending, changed: true }
        );
        assert_eq!(
            reg.enroll(&id("web1"), pk(1), false).unwrap(),
            Enrolled { status: KeyStatus::Pending, changed: false }
        );
        assert!(reg.accepted_key(&id("web1")).is_none());
        let changed = reg.accept(&sel(&["web*"])).unwrap();
        assert_eq!(changed.len(), 1);
        assert!(reg.accepted_key(&id("web1")).is_some());
        assert_eq!(reg.enroll(&id("web1"), pk(1), false).unwrap().status, KeyStatus::Accepted);
    }

    #[test]
    fn a_changed_key_is_denied_and_never_replaces_the_old_one() {
        let (_d, reg) = reg();
        let good = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
        reg.enroll(&id("web1"), good.to_bytes(), true).unwrap();
        let e = reg.enroll(&id("web1"), [9; 32], true).unwrap();
        assert_eq!(e, Enrolled { status: KeyStatus::Denied, changed: true });
        assert_eq!(reg.accepted_key(&id("web1")), Some(good));
        let l = reg.listing([0; 32]).unwrap();
        assert_eq!(l.accepted.len(), 1);
        assert_eq!(l.denied.len(), 1);
        assert_eq!(l.denied[0].key, [9; 32]);
        // Accepting pending keys does not touch denied ones...
        reg.accept(&KeySelection { all: true, ..Default::default() }).unwrap();
        assert_eq!(reg.accepted_key(&id("web1")), Some(good));
    }

    #[test]
    fn an_operator_can_resolve_a_denied_key_either_way() {
        let (_d, reg) = reg();
        let old = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
        let new = ed25519_dalek::SigningKey::from_bytes(&[2; 32]).verifying_key();
        reg.enroll(&id("web1"), old.to_bytes(), true).unwrap();
        reg.enroll(&id("web1"), new.to_bytes(), true).unwrap();
        let changed = reg.accept(&KeySelection { include_denied: true, ..sel(&["web1"]) }).unwrap();
        assert_eq!(changed.len(), 1);
        assert_eq!(reg.accepted_key(&id("web1")), Some(new));
        assert!(reg.listing([0; 32]).unwrap().denied.is_empty());
        // Or: delete the id, and the next key to enroll starts over as pending.
        reg.delete(&sel(&["web1"])).unwrap();
        assert!(reg.accepted_key(&id("web1")).is_none());
        assert_eq!(reg.enroll(&id("web1"), old.to_bytes(), false).unwrap().status, KeyStatus::Pending);
    }

    #[test]
    fn reject_and_delete_apply_to_the_selection_only() {
        let (_d, reg) = reg();
        for m in ["a1", "a2", "b1"] {
            reg.enroll(&id(m), pk(m.as_bytes()[0] + m.as_bytes()[1]), false).unwrap();
        }
        assert_eq!(reg.reject(&sel(&["a*"])).unwrap().len(), 2);
        let l = reg.listing([0; 32]).unwrap();
        assert_eq!((l.pending.len(), l.rejected.len()), (1, 2));
        // A rejected key is not accepted by a plain accept...
        assert_eq!(reg.accept(&sel(&["a1"])).unwrap().len(), 0);
        // ...only with include_rejected.
        assert_eq!(reg.accept(&KeySelection { include_rejected: true, ..sel(&["a1"]) }).unwrap().len(), 1);
        assert_eq!(reg.delete(&sel(&["a2", "b1"])).unwrap().len(), 2);
        let l = reg.listing([0; 32]).unwrap();
        assert_eq!((l.accepted.len(), l.pending.len(), l.rejected.len()), (1, 0, 0));
    }

    #[test]
    fn accepted_keys_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = Store::open(&path).unwrap();
            let reg = Registry::open(&store).unwrap();
            let k = ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key();
            reg.enroll(&id("m"), k.to_bytes(), true).unwrap();
            reg.flush().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let reg = Registry::open(&store).unwrap();
        assert!(reg.accepted_key(&id("m")).is_some());
    }
}
