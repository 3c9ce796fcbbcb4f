//! The minion's durable bookkeeping of jobs and returns.
//!
//! - Every accepted job is written to `inflight` before it runs and removed once its
//!   return is spooled. A job still there when the minion starts was cut short by a
//!   crash or restart: the minion reports it as interrupted, so it never stays
//!   "running" forever on the master.
//! - Every return is written to `spool` (sealed, exactly as it will be published)
//!   before it is published, and removed only when JetStream acknowledges it. Returns
//!   therefore survive NATS outages and minion restarts; the master stores each
//!   (JID, minion) once however often it is delivered.

use brine_proto::Jid;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::Notify;

/// What the minion remembers of a job it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inflight {
    pub fun: String,
    pub user: String,
    /// Unix milliseconds when the job was accepted.
    pub started_at: u64,
}

/// The on-disk spool and in-flight record.
pub struct Spool {
    returns: sled::Tree,
    inflight: sled::Tree,
    wake: Notify,
}

impl Spool {
    /// Opens the two trees of `db`.
    pub fn open(db: &sled::Db) -> Result<Spool, sled::Error> {
        Ok(Spool { returns: db.open_tree("spool")?, inflight: db.open_tree("inflight")?, wake: Notify::new() })
    }

    /// Records a job as started, durably.
    pub fn start_job(&self, jid: Jid, job: &Inflight) -> Result<(), sled::Error> {
        let bytes = rmp_serde::to_vec_named(job).unwrap_or_default();
        self.inflight.insert(jid.to_be_bytes(), bytes)?;
        self.inflight.flush()?;
        Ok(())
    }

    /// Forgets a job whose return is spooled.
    pub fn end_job(&self, jid: Jid) -> Result<(), sled::Error> {
        self.inflight.remove(jid.to_be_bytes())?;
        Ok(())
    }

    /// Jobs that were running when the minion last stopped, without a spooled return.
    pub fn interrupted(&self) -> Result<Vec<(Jid, Inflight)>, sled::Error> {
        let mut out = Vec::new();
        for kv in self.inflight.iter() {
            let (k, v) = kv?;
            let Ok(key) = <[u8; 8]>::try_from(k.as_ref()) else { continue };
            let jid = Jid::from_be_bytes(key);
            if self.returns.contains_key(k)? {
                // The return made it to the spool just before the stop.
                self.inflight.remove(key)?;
                continue;
            }
            match rmp_serde::from_slice::<Inflight>(&v) {
                Ok(job) => out.push((jid, job)),
                Err(_) => {
                    self.inflight.remove(key)?;
                }
            }
        }
        Ok(out)
    }

    /// Spools a sealed return, durably, and wakes the publisher.
    pub fn put(&self, jid: Jid, sealed: &[u8]) -> Result<(), sled::Error> {
        self.returns.insert(jid.to_be_bytes(), sealed)?;
        self.returns.flush()?;
        self.wake.notify_one();
        Ok(())
    }

    /// Drops a return the master has acknowledged.
    pub fn acknowledged(&self, jid: Jid) -> Result<(), sled::Error> {
        self.returns.remove(jid.to_be_bytes())?;
        Ok(())
    }

    /// Every spooled return, oldest job first.
    pub fn pending(&self) -> Result<Vec<(Jid, Vec<u8>)>, sled::Error> {
        let mut out = Vec::new();
        for kv in self.returns.iter() {
            let (k, v) = kv?;
            if let Ok(key) = <[u8; 8]>::try_from(k.as_ref()) {
                out.push((Jid::from_be_bytes(key), v.to_vec()));
            }
        }
        Ok(out)
    }

    /// Waits until a return is spooled or `timeout` passes.
    pub async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spooled_returns_and_interrupted_jobs_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (Jid::from_micros(1), Jid::from_micros(2), Jid::from_micros(3));
        let job = Inflight { fun: "cmd.run".into(), user: "admin".into(), started_at: 5 };
        {
            let db = sled::open(dir.path()).unwrap();
            let spool = Spool::open(&db).unwrap();
            spool.start_job(a, &job).unwrap();
            spool.start_job(b, &job).unwrap();
            spool.start_job(c, &job).unwrap();
            // b finished: its return is spooled and the job ended.
            spool.put(b, b"ret-b").unwrap();
            spool.end_job(b).unwrap();
            // c's return was spooled but the minion stopped before ending the job.
            spool.put(c, b"ret-c").unwrap();
            db.flush().unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        let spool = Spool::open(&db).unwrap();
        assert_eq!(spool.interrupted().unwrap(), vec![(a, job)]);
        assert_eq!(spool.pending().unwrap(), vec![(b, b"ret-b".to_vec()), (c, b"ret-c".to_vec())]);
        spool.acknowledged(b).unwrap();
        assert_eq!(spool.pending().unwrap().len(), 1);
    }
}
