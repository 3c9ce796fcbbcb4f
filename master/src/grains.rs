//! The master's cache of each minion's grains (and, in a second instance, of the
//! pillar it rendered for each), for targeting and inventory.
//!
//! Minions send their grains when they connect and after a refresh; the cache keeps
//! them in memory and in sled (tree `grains`, or `pillar`), so a restarted master can
//! target by grains and pillar at once.

use crate::store::{Store, StoreError};
use brine_proto::{Map, MinionId};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Grains by minion.
pub struct GrainsCache {
    name: &'static str,
    tree: sled::Tree,
    mem: RwLock<HashMap<MinionId, Arc<Map>>>,
}

impl GrainsCache {
    /// Opens the cache and loads it.
    pub fn open(store: &Store) -> Result<GrainsCache, StoreError> {
        GrainsCache::open_tree(store, "grains")
    }

    /// Opens a cache of the same shape in another sled tree.
    pub fn open_tree(store: &Store, name: &'static str) -> Result<GrainsCache, StoreError> {
        let tree = store.tree(name)?;
        let mut mem = HashMap::new();
        for kv in tree.iter() {
            let (k, v) = kv.map_err(|e| StoreError::Db { path: name.into(), source: e })?;
            let id = MinionId::new(String::from_utf8_lossy(&k).into_owned());
            let grains = rmp_serde::from_slice::<serde_json::Value>(&v).ok().and_then(|v| v.as_object().cloned());
            match (id, grains) {
                (Ok(id), Some(g)) => {
                    mem.insert(id, Arc::new(g));
                }
                _ => {
                    tracing::warn!(key = %String::from_utf8_lossy(&k), tree = name, "skipping an unreadable cache entry")
                }
            }
        }
        Ok(GrainsCache { name, tree, mem: RwLock::new(mem) })
    }

    /// Stores a minion's grains.
    pub fn put(&self, id: &MinionId, grains: Map) -> Result<(), StoreError> {
        let bytes = rmp_serde::to_vec_named(&serde_json::Value::Object(grains.clone())).unwrap_or_default();
        self.tree.insert(id.as_str(), bytes).map_err(|e| StoreError::Db { path: self.name.into(), source: e })?;
        self.mem.write().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), Arc::new(grains));
        Ok(())
    }

    /// A minion's grains, if it ever sent them.
    pub fn get(&self, id: &MinionId) -> Option<Arc<Map>> {
        self.mem.read().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    /// Forgets a minion (its key was deleted).
    pub fn remove(&self, id: &MinionId) {
        self.mem.write().unwrap_or_else(|e| e.into_inner()).remove(id);
        let _ = self.tree.remove(id.as_str());
    }
}
