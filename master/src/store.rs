//! The master's database: one sled database, one tree per namespace, big-endian keys
//! so that iteration order is JID order.
//!
//! The job cache sits behind the [`JobCache`] trait so an external store can replace
//! sled for scale-out; keys stay in sled ([`crate::keys`]).

use brine_proto::msg::{JobCounts, JobFilter, JobRecord, JobSummary, Return};
use brine_proto::{Jid, Target};
use std::path::{Path, PathBuf};

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O, full disk, corruption).
    #[error("job cache at {path}: {source}")]
    Db { path: PathBuf, source: sled::Error },
    /// A stored record does not decode (written by an incompatible version?).
    #[error("job cache record {what} is unreadable: {reason}")]
    Corrupt { what: String, reason: String },
}

/// The job cache: jobs, their returns and their running totals.
pub trait JobCache: Send + Sync {
    /// Stores a new job and its initial totals (everyone targeted, nobody returned).
    fn put_job(&self, job: &JobRecord) -> Result<(), StoreError>;
    /// Stores returns, ignoring any (JID, minion) already stored, and updates the
    /// totals. Returns, per input, whether it was new.
    fn put_returns(&self, returns: &[Return]) -> Result<Vec<bool>, StoreError>;
    /// Makes everything stored so far durable.
    fn flush(&self) -> Result<(), StoreError>;
    fn job(&self, jid: Jid) -> Result<Option<JobRecord>, StoreError>;
    fn counts(&self, jid: Jid) -> Result<Option<JobCounts>, StoreError>;
    fn returns(&self, jid: Jid) -> Result<Vec<Return>, StoreError>;
    /// The newest jobs matching `filter`, newest first.
    fn list(&self, filter: &JobFilter) -> Result<Vec<JobSummary>, StoreError>;
    /// Deletes every job (with its returns and totals) older than `before`; returns
    /// how many jobs went.
    fn prune(&self, before: Jid) -> Result<usize, StoreError>;
    /// The newest JID stored, so a restarted master never reuses one.
    fn latest_jid(&self) -> Result<Option<Jid>, StoreError>;
}

/// The sled database and its trees.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    jobs: sled::Tree,
    returns: sled::Tree,
    counts: sled::Tree,
    /// function ‖ 0 ‖ JID → (): jobs by function, in time order.
    by_fun: sled::Tree,
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let err = |source| StoreError::Db { path: path.to_path_buf(), source };
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(64 * 1024 * 1024)
            .flush_every_ms(Some(500))
            .open()
            .map_err(err)?;
        Ok(Store {
            path: path.to_path_buf(),
            jobs: db.open_tree("jobs").map_err(err)?,
            returns: db.open_tree("returns").map_err(err)?,
            counts: db.open_tree("counts").map_err(err)?,
            by_fun: db.open_tree("jobs_by_fun").map_err(err)?,
            db,
        })
    }

    /// A named tree of the same database (keys, replay ids).
    pub fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(name).map_err(|e| self.err(e))
    }

    fn err(&self, source: sled::Error) -> StoreError {
        StoreError::Db { path: self.path.clone(), source }
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Encoding our own record types cannot fail: they have string keys only.
    rmp_serde::to_vec_named(v).unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: impl FnOnce() -> String) -> Result<T, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|e| StoreError::Corrupt { what: what(), reason: e.to_string() })
}

/// The part of a stored [`JobRecord`] that a line of `brine job list` shows. A job's
/// record names every targeted minion, 1 000 ids for a job on 1 000 minions, and
/// building those `MinionId`s was nearly all of [`JobCache::list`]'s time (a profile
/// of 1 000 jobs listed: malloc, free, `MinionId::new`). serde skips the fields this
/// struct does not name without allocating, so the stored records stay as they are.
#[derive(serde::Deserialize)]
struct JobHead {
    jid: Jid,
    target: Target,
    fun: String,
    user: String,
    started_at: u64,
}

fn fun_key(fun: &str, jid: Jid) -> Vec<u8> {
    let mut k = Vec::with_capacity(fun.len() + 9);
    k.extend_from_slice(fun.as_bytes());
    k.push(0);
    k.extend_from_slice(&jid.to_be_bytes());
    k
}

fn glob(pattern: &str) -> Option<globset::GlobMatcher> {
    globset::GlobBuilder::new(pattern).literal_separator(false).build().ok().map(|g| g.compile_matcher())
}

fn jid_of(key: &[u8]) -> Result<Jid, StoreError> {
    <[u8; 8]>::try_from(key)
        .map(Jid::from_be_bytes)
        .map_err(|_| StoreError::Corrupt { what: "job key".into(), reason: format!("{} bytes, not 8", key.len()) })
}

fn return_key(jid: Jid, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + id.len());
    k.extend_from_slice(&jid.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

impl JobCache for Store {
    fn put_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        let key = job.jid.to_be_bytes();
        let counts = JobCounts { targeted: job.minions.len() as u64, ..JobCounts::default() };
        self.jobs.insert(key, encode(job)).map_err(|e| self.err(e))?;
        self.counts.insert(key, encode(&counts)).map_err(|e| self.err(e))?;
        self.by_fun.insert(fun_key(&job.fun, job.jid), &[]).map_err(|e| self.err(e))?;
        Ok(())
    }

    fn put_returns(&self, returns: &[Return]) -> Result<Vec<bool>, StoreError> {
        let mut fresh = Vec::with_capacity(returns.len());
        let mut deltas: Vec<(Jid, JobCounts)> = Vec::new();
        for r in returns {
            let inserted = self
                .returns
                .compare_and_swap(return_key(r.jid, r.id.as_str()), None as Option<&[u8]>, Some(encode(r)))
                .map_err(|e| self.err(e))?
                .is_ok();
            fresh.push(inserted);
            if !inserted {
                continue;
            }
            let delta = match deltas.iter_mut().find(|(j, _)| *j == r.jid) {
                Some((_, d)) => d,
                None => {
                    deltas.push((r.jid, JobCounts::default()));
                    &mut deltas.last_mut().expect("just pushed").1
                }
            };
            delta.returned += 1;
            if r.success {
                delta.succeeded += 1;
            } else {
                delta.failed += 1;
            }
        }
        for (jid, d) in deltas {
            self.counts
                .update_and_fetch(jid.to_be_bytes(), |old| {
                    let mut c: JobCounts = old.and_then(|b| rmp_serde::from_slice(b).ok()).unwrap_or_default();
                    c.returned += d.returned;
                    c.succeeded += d.succeeded;
                    c.failed += d.failed;
                    Some(encode(&c))
                })
                .map_err(|e| self.err(e))?;
        }
        Ok(fresh)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(|e| self.err(e))
    }

    fn job(&self, jid: Jid) -> Result<Option<JobRecord>, StoreError> {
        match self.jobs.get(jid.to_be_bytes()).map_err(|e| self.err(e))? {
            Some(b) => decode(&b, || format!("job {jid}")).map(Some),
            None => Ok(None),
        }
    }

    fn counts(&self, jid: Jid) -> Result<Option<JobCounts>, StoreError> {
        match self.counts.get(jid.to_be_bytes()).map_err(|e| self.err(e))? {
            Some(b) => decode(&b, || format!("totals of job {jid}")).map(Some),
            None => Ok(None),
        }
    }

    fn returns(&self, jid: Jid) -> Result<Vec<Return>, StoreError> {
        self.returns
            .scan_prefix(jid.to_be_bytes())
            .map(|kv| {
                let (k, v) = kv.map_err(|e| self.err(e))?;
                decode(&v, || format!("return {:?}", String::from_utf8_lossy(&k[8..])))
            })
            .collect()
    }

    fn list(&self, filter: &JobFilter) -> Result<Vec<JobSummary>, StoreError> {
        let is_glob = |f: &&str| f.contains(['*', '?', '[']);
        let fun_glob = filter.fun.as_deref().filter(is_glob).and_then(glob);
        let exact_fun = filter.fun.as_deref().filter(|f| !is_glob(f));
        let target_glob = filter.target.as_deref().and_then(glob);
        let since = filter.since_ms.map(|ms| Jid::from_micros(ms.saturating_mul(1000)));
        // An exact function reads its index; anything else walks the jobs newest first.
        let jids: Box<dyn Iterator<Item = Result<Jid, StoreError>>> = match exact_fun {
            Some(fun) => {
                let mut prefix = fun.as_bytes().to_vec();
                prefix.push(0);
                let plen = prefix.len();
                Box::new(
                    self.by_fun
                        .scan_prefix(prefix)
                        .keys()
                        .rev()
                        .map(move |k| jid_of(&k.map_err(|e| self.err(e))?[plen..])),
                )
            }
            None => Box::new(self.jobs.iter().keys().rev().map(|k| jid_of(&k.map_err(|e| self.err(e))?))),
        };
        let mut out = Vec::new();
        for jid in jids {
            let jid = jid?;
            if out.len() >= filter.limit || since.is_some_and(|s| jid < s) {
                break;
            }
            let Some(bytes) = self.jobs.get(jid.to_be_bytes()).map_err(|e| self.err(e))? else { continue };
            let job: JobHead = decode(&bytes, || format!("job {jid}"))?;
            if fun_glob.as_ref().is_some_and(|g| !g.is_match(&job.fun)) {
                continue;
            }
            if target_glob.as_ref().is_some_and(|g| !g.is_match(job.target.to_string())) {
                continue;
            }
            let counts = self.counts(job.jid)?.unwrap_or_default();
            out.push(JobSummary {
                jid: job.jid,
                target: job.target,
                fun: job.fun,
                user: job.user,
                started_at: job.started_at,
                counts,
            });
        }
        Ok(out)
    }

    fn prune(&self, before: Jid) -> Result<usize, StoreError> {
        let mut gone = 0;
        // Collect first: deleting from a tree while iterating over it can skip entries.
        let old: Vec<(sled::IVec, sled::IVec)> =
            self.jobs.range(..before.to_be_bytes()).collect::<Result<_, _>>().map_err(|e| self.err(e))?;
        for (k, v) in old {
            let jid = jid_of(&k)?;
            let mut batch = sled::Batch::default();
            for r in self.returns.scan_prefix(&k).keys() {
                batch.remove(r.map_err(|e| self.err(e))?);
            }
            self.returns.apply_batch(batch).map_err(|e| self.err(e))?;
            if let Ok(job) = rmp_serde::from_slice::<JobRecord>(&v) {
                self.by_fun.remove(fun_key(&job.fun, jid)).map_err(|e| self.err(e))?;
            }
            self.counts.remove(&k).map_err(|e| self.err(e))?;
            self.jobs.remove(&k).map_err(|e| self.err(e))?;
            gone += 1;
        }
        Ok(gone)
    }

    fn latest_jid(&self) -> Result<Option<Jid>, StoreError> {
        let last = self.jobs.last().map_err(|e| self.err(e))?;
        Ok(last.and_then(|(k, _)| <[u8; 8]>::try_from(k.as_ref()).ok()).map(Jid::from_be_bytes))
    }
}

/// Stores one synthetic `test.ping` job on `minions`, every one of them returned
/// `True` — what `brine-fill-jobs` and the job cache benchmark fill a cache with.
pub fn put_ping_job(
    cache: &dyn JobCache,
    jid: Jid,
    minions: &[brine_proto::MinionId],
    started_at: u64,
) -> Result<(), StoreError> {
    cache.put_job(&JobRecord {
        jid,
        target: brine_proto::Target::Glob("fill-*".into()),
        fun: "test.ping".into(),
        arg: Vec::new(),
        kwarg: Default::default(),
        user: "admin".into(),
        minions: minions.to_vec(),
        started_at,
    })?;
    let returns: Vec<Return> = minions
        .iter()
        .map(|id| Return {
            stamp: brine_proto::envelope::Stamp::new(jid.to_string(), std::time::Duration::from_secs(3600)),
            jid,
            id: id.clone(),
            fun: "test.ping".into(),
            ret: brine_proto::Value::Bool(true),
            retcode: 0,
            success: true,
            started_at,
            duration_ms: 0,
            schedule: None,
        })
        .collect();
    cache.put_returns(&returns)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use brine_proto::envelope::Stamp;
    use brine_proto::MinionId;
    use std::time::Duration;

    fn job(jid: Jid, minions: &[&str]) -> JobRecord {
        JobRecord {
            jid,
            target: Target::Glob("*".into()),
            fun: "test.ping".into(),
            arg: vec![],
            kwarg: Default::default(),
            user: "admin".into(),
            minions: minions.iter().map(|m| MinionId::new(*m).unwrap()).collect(),
            started_at: 1,
        }
    }

    fn ret(jid: Jid, id: &str, success: bool) -> Return {
        Return {
            stamp: Stamp::new(jid.to_string(), Duration::from_secs(60)),
            jid,
            id: MinionId::new(id).unwrap(),
            fun: "test.ping".into(),
            ret: serde_json::json!(success),
            retcode: if success { 0 } else { 1 },
            success,
            started_at: 1,
            duration_ms: 1,
            schedule: None,
        }
    }

    #[test]
    fn returns_are_stored_once_and_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let jid = Jid::from_micros(1_700_000_000_000_000);
        store.put_job(&job(jid, &["a", "b", "c"])).unwrap();
        let fresh = store.put_returns(&[ret(jid, "a", true), ret(jid, "b", false), ret(jid, "a", true)]).unwrap();
        assert_eq!(fresh, vec![true, true, false]);
        assert_eq!(store.put_returns(&[ret(jid, "b", false)]).unwrap(), vec![false]);
        let c = store.counts(jid).unwrap().unwrap();
        assert_eq!(c, JobCounts { targeted: 3, returned: 2, succeeded: 1, failed: 1 });
        assert_eq!(c.missing(), 1);
        let ids: Vec<String> = store.returns(jid).unwrap().into_iter().map(|r| r.id.to_string()).collect();
        assert_eq!(ids, vec!["a", "b"]);
    }

    #[test]
    fn jobs_list_newest_first_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = Store::open(&path).unwrap();
            for i in 1..=3 {
                store.put_job(&job(Jid::from_micros(i * 1_000_000), &["a"])).unwrap();
            }
            store.put_returns(&[ret(Jid::from_micros(2_000_000), "a", true)]).unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let list = store.list(&JobFilter { limit: 2, ..Default::default() }).unwrap();
        assert_eq!(list.iter().map(|j| j.jid.micros()).collect::<Vec<_>>(), vec![3_000_000, 2_000_000]);
        assert_eq!(list[1].counts.returned, 1);
        assert_eq!(store.latest_jid().unwrap(), Some(Jid::from_micros(3_000_000)));
        assert_eq!(store.returns(Jid::from_micros(2_000_000)).unwrap().len(), 1);
    }

    #[test]
    fn list_filters_by_function_target_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        for (i, fun) in ["test.ping", "cmd.run", "test.ping", "cmd.run_all"].iter().enumerate() {
            let mut j = job(Jid::from_micros((i as u64 + 1) * 1_000_000), &["a"]);
            j.fun = fun.to_string();
            if i == 3 {
                j.target = Target::Glob("web*".into());
            }
            store.put_job(&j).unwrap();
        }
        let list = |f: JobFilter| -> Vec<u64> {
            store.list(&JobFilter { limit: 10, ..f }).unwrap().iter().map(|j| j.jid.micros() / 1_000_000).collect()
        };
        assert_eq!(list(JobFilter::default()), vec![4, 3, 2, 1]);
        assert_eq!(list(JobFilter { fun: Some("test.ping".into()), ..Default::default() }), vec![3, 1]);
        assert_eq!(list(JobFilter { fun: Some("cmd.*".into()), ..Default::default() }), vec![4, 2]);
        assert_eq!(list(JobFilter { target: Some("web*".into()), ..Default::default() }), vec![4]);
        assert_eq!(list(JobFilter { since_ms: Some(2_500), ..Default::default() }), vec![4, 3]);
        assert_eq!(store.list(&JobFilter { limit: 1, ..Default::default() }).unwrap().len(), 1);
    }

    #[test]
    fn prune_removes_old_jobs_with_their_returns() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        for i in 1..=3u64 {
            let jid = Jid::from_micros(i * 1_000_000);
            store.put_job(&job(jid, &["a", "b"])).unwrap();
            store.put_returns(&[ret(jid, "a", true), ret(jid, "b", true)]).unwrap();
        }
        assert_eq!(store.prune(Jid::from_micros(2_500_000)).unwrap(), 2);
        assert!(store.job(Jid::from_micros(1_000_000)).unwrap().is_none());
        assert!(store.returns(Jid::from_micros(2_000_000)).unwrap().is_empty());
        assert!(store.counts(Jid::from_micros(2_000_000)).unwrap().is_none());
        assert_eq!(store.returns(Jid::from_micros(3_000_000)).unwrap().len(), 2);
        let all = store.list(&JobFilter { limit: 10, fun: Some("test.ping".into()), ..Default::default() }).unwrap();
        assert_eq!(all.len(), 1, "the function index was pruned too");
    }
}
