//! The minion's durable ledger of jobs: which JIDs it accepted (so a replayed job is
//! refused even after a restart), which jobs were running, and the returns the master
//! has not acknowledged yet.
//!
//! One directory (`data_dir/jobs`, mode 0700), two kinds of small files, each named
//! after its JID so that names sort by time:
//!
//! - `<jid>.job`: a job the minion accepted — when it expires, what it ran, and
//!   whether it finished. It is written durably *before* the job runs, so it is both
//!   the replay record (kept until the job expires; after that the expiry check
//!   refuses the job anyway) and the in-flight record: a job not marked finished and
//!   without a return when the minion starts was cut short by a crash or restart, and
//!   is reported as interrupted, so it never stays "running" forever on the master.
//! - `<jid>.ret`: a sealed return, exactly as it will be published, written durably
//!   before it is published and removed when JetStream acknowledges it. Returns
//!   therefore survive NATS outages and minion restarts; the master stores each
//!   (JID, minion) once however often it is delivered.
//!
//! A durable write goes to a temporary file, is synced, renamed over its name, and
//! the directory is synced: a crash leaves the old record or the new one, never a
//! torn one. Marking a job finished and removing files are not synced: losing them
//! in a crash costs at most a duplicate return, which the master ignores.
//!
//! Earlier versions kept the same records in a sled database (`data_dir/db`); they
//! are moved over once, on the first start (see [`migrate_old_db`]).

use brine_proto::replay::{ReplayWindow, Replayed};
use brine_proto::Jid;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
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

/// A `<jid>.job` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Accepted {
    /// Unix milliseconds when the job expires: until then its JID is refused.
    expires_at: u64,
    job: Inflight,
    /// Its return was spooled.
    done: bool,
}

/// A job's JID could not be recorded, or was seen before.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{0}")]
    Replayed(#[from] Replayed),
    #[error("cannot record the job id: {0}")]
    Store(#[from] std::io::Error),
}

/// The ledger: the directory, and the accepted JIDs in memory.
pub struct Ledger {
    dir: PathBuf,
    accepted: Mutex<ReplayWindow>,
    wake: Notify,
}

const JOB: &str = "job";
const RET: &str = "ret";

impl Ledger {
    /// The ledger in `dir`, created if missing, without its replay window.
    fn open_raw(dir: &Path) -> std::io::Result<Ledger> {
        brine_proto::keys::create_private_dir(dir)?;
        // Writes a crash cut short: the record they were replacing is still there.
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(Ledger { dir: dir.to_path_buf(), accepted: Mutex::new(ReplayWindow::new()), wake: Notify::new() })
    }

    /// Opens (or creates) the ledger in `dir` and forgets jobs that expired before
    /// `now_ms`. An earlier version's database is moved in first, by
    /// [`migrate_old_db`].
    pub fn open(dir: &Path, now_ms: u64) -> std::io::Result<Ledger> {
        let ledger = Ledger::open_raw(dir)?;
        let mut window = ReplayWindow::new();
        for (jid, ext) in ledger.names()? {
            if ext != JOB {
                continue;
            }
            match ledger.read_job(jid) {
                Some(a) if a.expires_at >= now_ms || !a.done => window.remember(&jid.to_string(), a.expires_at),
                // Expired and finished: the expiry check refuses the JID from now on.
                _ => ledger.remove(jid, JOB),
            }
        }
        *ledger.accepted.lock().unwrap_or_else(|e| e.into_inner()) = window;
        Ok(ledger)
    }

    /// Accepts a job: refuses a JID seen before, else records the job durably (as
    /// accepted and running) before it may run.
    pub fn accept(&self, jid: Jid, expires_at: u64, job: &Inflight, now_ms: u64) -> Result<(), LedgerError> {
        let gone = {
            let mut w = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
            let gone = w.prune(now_ms);
            w.check_and_insert(&jid.to_string(), expires_at, now_ms)?;
            gone
        };
        for old in gone {
            if let Ok(old) = old.parse::<Jid>() {
                if self.read_job(old).is_some_and(|a| a.done) {
                    self.remove(old, JOB);
                }
            }
        }
        let record = Accepted { expires_at, job: job.clone(), done: false };
        if let Err(e) = self.put(jid, JOB, &encode(&record)) {
            // Not recorded: the same JID may be offered again.
            self.accepted.lock().unwrap_or_else(|e| e.into_inner()).forget(&jid.to_string());
            return Err(e.into());
        }
        Ok(())
    }

    /// Marks a job whose return is spooled as finished (its JID stays refused until
    /// it expires).
    pub fn end_job(&self, jid: Jid) {
        if let Some(mut a) = self.read_job(jid) {
            a.done = true;
            let _ = self.write(jid, JOB, &encode(&a), false);
        }
    }

    /// Jobs that were running when the minion last stopped, without a spooled return.
    pub fn interrupted(&self) -> std::io::Result<Vec<(Jid, Inflight)>> {
        let names = self.names()?;
        let returns: std::collections::HashSet<Jid> =
            names.iter().filter(|(_, ext)| *ext == RET).map(|(jid, _)| *jid).collect();
        let mut out = Vec::new();
        for (jid, ext) in names {
            if ext != JOB {
                continue;
            }
            match self.read_job(jid) {
                Some(a) if !a.done && !returns.contains(&jid) => out.push((jid, a.job)),
                Some(a) if !a.done => self.end_job(jid),
                Some(_) => {}
                // Unreadable: not something to report or keep.
                None => self.remove(jid, JOB),
            }
        }
        Ok(out)
    }

    /// Spools a sealed return, durably, and wakes the publisher.
    pub fn put_return(&self, jid: Jid, sealed: &[u8]) -> std::io::Result<()> {
        self.put(jid, RET, sealed)?;
        self.wake.notify_one();
        Ok(())
    }

    /// Drops a return the master has acknowledged.
    pub fn acknowledged(&self, jid: Jid) {
        self.remove(jid, RET);
    }

    /// Every spooled return, oldest job first.
    pub fn pending(&self) -> std::io::Result<Vec<(Jid, Vec<u8>)>> {
        let mut out = Vec::new();
        for (jid, ext) in self.names()? {
            if ext == RET {
                match std::fs::read(self.path(jid, RET)) {
                    Ok(bytes) => out.push((jid, bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// Waits until a return is spooled or `timeout` passes.
    pub async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }

    fn path(&self, jid: Jid, ext: &str) -> PathBuf {
        self.dir.join(format!("{jid}.{ext}"))
    }

    /// The records present, oldest JID first (a temporary file is a write under way,
    /// or one a crash cut short: [`Ledger::open`] removes those).
    fn names(&self) -> std::io::Result<Vec<(Jid, &'static str)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some((stem, ext)) = name.rsplit_once('.') else { continue };
            let ext = match ext {
                JOB => JOB,
                RET => RET,
                _ => continue,
            };
            if let Ok(jid) = stem.parse::<Jid>() {
                out.push((jid, ext));
            }
        }
        out.sort();
        Ok(out)
    }

    fn read_job(&self, jid: Jid) -> Option<Accepted> {
        let bytes = std::fs::read(self.path(jid, JOB)).ok()?;
        rmp_serde::from_slice(&bytes).ok()
    }

    fn put(&self, jid: Jid, ext: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.write(jid, ext, bytes, true)
    }

    /// Replaces a record through a temporary file; with `durable`, synced (file and
    /// directory) before returning.
    fn write(&self, jid: Jid, ext: &str, bytes: &[u8], durable: bool) -> std::io::Result<()> {
        let path = self.path(jid, ext);
        let tmp = self.dir.join(format!("{jid}.{ext}.tmp"));
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_data()?;
        }
        drop(f);
        std::fs::rename(&tmp, &path)?;
        if durable {
            std::fs::File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    fn remove(&self, jid: Jid, ext: &str) {
        let _ = std::fs::remove_file(self.path(jid, ext));
    }
}

fn encode(a: &Accepted) -> Vec<u8> {
    // Our own record type, string keys only: it always encodes.
    rmp_serde::to_vec_named(a).unwrap_or_default()
}

/// Moves the records of the sled database earlier versions kept at `old_db` into the
/// ledger in `dir`, then removes the database: spooled returns, jobs in flight,
/// accepted JIDs. Does nothing when there is no such database.
pub fn migrate_old_db(dir: &Path, old_db: &Path) -> std::io::Result<()> {
    if !old_db.exists() {
        return Ok(());
    }
    migrate(&Ledger::open_raw(dir)?, old_db)
}

fn migrate(ledger: &Ledger, old_db: &Path) -> std::io::Result<()> {
    let io = |e: sled::Error| std::io::Error::other(format!("{}: {e}", old_db.display()));
    let db = sled::open(old_db).map_err(io)?;
    let spool = db.open_tree("spool").map_err(io)?;
    let inflight = db.open_tree("inflight").map_err(io)?;
    let replay = db.open_tree("replay").map_err(io)?;
    let mut moved = (0, 0);
    for kv in spool.iter() {
        let (k, v) = kv.map_err(io)?;
        if let Ok(key) = <[u8; 8]>::try_from(k.as_ref()) {
            ledger.put(Jid::from_be_bytes(key), RET, &v)?;
            moved.0 += 1;
        }
    }
    let mut expiry = std::collections::HashMap::new();
    for kv in replay.iter() {
        let (k, v) = kv.map_err(io)?;
        let expires = <[u8; 8]>::try_from(v.as_ref()).map(u64::from_be_bytes).unwrap_or(0);
        if let Ok(jid) = String::from_utf8_lossy(&k).parse::<Jid>() {
            expiry.insert(jid, expires);
        }
    }
    let mut running = std::collections::HashMap::new();
    for kv in inflight.iter() {
        let (k, v) = kv.map_err(io)?;
        if let (Ok(key), Ok(job)) = (<[u8; 8]>::try_from(k.as_ref()), rmp_serde::from_slice::<Inflight>(&v)) {
            running.insert(Jid::from_be_bytes(key), job);
        }
    }
    for (jid, expires_at) in &expiry {
        let (job, done) = match running.remove(jid) {
            Some(job) => (job, false),
            None => (Inflight { fun: String::new(), user: String::new(), started_at: 0 }, true),
        };
        ledger.put(*jid, JOB, &encode(&Accepted { expires_at: *expires_at, job, done }))?;
        moved.1 += 1;
    }
    for (jid, job) in running {
        ledger.put(jid, JOB, &encode(&Accepted { expires_at: 0, job, done: false }))?;
        moved.1 += 1;
    }
    drop((spool, inflight, replay, db));
    std::fs::remove_dir_all(old_db)?;
    tracing::info!(returns = moved.0, jobs = moved.1, from = %old_db.display(), "moved the job records of an earlier version");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Inflight {
        Inflight { fun: "cmd.run".into(), user: "admin".into(), started_at: 5 }
    }

    fn open(dir: &Path, now: u64) -> Ledger {
        migrate_old_db(&dir.join("jobs"), &dir.join("db")).unwrap();
        Ledger::open(&dir.join("jobs"), now).unwrap()
    }

    #[test]
    fn spooled_returns_and_interrupted_jobs_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (Jid::from_micros(1), Jid::from_micros(2), Jid::from_micros(3));
        {
            let ledger = open(dir.path(), 1_000);
            for jid in [a, b, c] {
                ledger.accept(jid, 60_000, &job(), 1_000).unwrap();
            }
            // b finished: its return is spooled and the job ended.
            ledger.put_return(b, b"ret-b").unwrap();
            ledger.end_job(b);
            // c's return was spooled but the minion stopped before ending the job.
            ledger.put_return(c, b"ret-c").unwrap();
        }
        let ledger = open(dir.path(), 2_000);
        assert_eq!(ledger.interrupted().unwrap(), vec![(a, job())]);
        assert_eq!(ledger.pending().unwrap(), vec![(b, b"ret-b".to_vec()), (c, b"ret-c".to_vec())]);
        ledger.acknowledged(b);
        assert_eq!(ledger.pending().unwrap().len(), 1);
        // Reported once: interrupted() ended c, and a is still running until its
        // return is spooled.
        assert_eq!(ledger.interrupted().unwrap(), vec![(a, job())]);
        ledger.put_return(a, b"ret-a").unwrap();
        ledger.end_job(a);
        assert_eq!(ledger.interrupted().unwrap(), vec![]);
    }

    #[test]
    fn replays_are_refused_across_reopen_until_the_job_expires() {
        let dir = tempfile::tempdir().unwrap();
        let (j1, j2) = (Jid::from_micros(10), Jid::from_micros(20));
        {
            let ledger = open(dir.path(), 1_000);
            ledger.accept(j1, 10_000, &job(), 1_000).unwrap();
            ledger.accept(j2, 1_500, &job(), 1_000).unwrap();
            ledger.end_job(j2);
            assert!(matches!(ledger.accept(j1, 10_000, &job(), 1_100), Err(LedgerError::Replayed(_))));
        }
        let ledger = open(dir.path(), 2_000);
        assert!(matches!(ledger.accept(j1, 10_000, &job(), 2_000), Err(LedgerError::Replayed(_))));
        // j2 expired (finished) before the reopen: forgotten, its file gone.
        assert!(!dir.path().join(format!("jobs/{j2}.job")).exists());
        ledger.accept(j2, 9_000, &job(), 2_000).unwrap();
    }

    #[test]
    fn reading_the_ledger_never_disturbs_a_write_under_way() {
        // The return publisher lists the directory while jobs are being accepted.
        let dir = tempfile::tempdir().unwrap();
        let ledger = std::sync::Arc::new(open(dir.path(), 1_000));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (ledger, stop) = (ledger.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    ledger.pending().unwrap();
                    ledger.interrupted().unwrap();
                }
            })
        };
        for i in 0..500 {
            let jid = Jid::from_micros(100 + i);
            ledger.accept(jid, 60_000, &job(), 1_000).unwrap();
            ledger.put_return(jid, b"ret").unwrap();
            ledger.end_job(jid);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap();
        assert_eq!(ledger.pending().unwrap().len(), 500);
    }

    #[test]
    fn torn_writes_and_stray_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let jid = Jid::from_micros(7);
        {
            let ledger = open(dir.path(), 1_000);
            ledger.put_return(jid, b"ret").unwrap();
        }
        let jobs = dir.path().join("jobs");
        std::fs::write(jobs.join(format!("{}.ret.tmp", Jid::from_micros(8))), b"half").unwrap();
        std::fs::write(jobs.join("notes.txt"), b"x").unwrap();
        std::fs::write(jobs.join(format!("{}.job", Jid::from_micros(9))), b"\xc1garbage").unwrap();
        let ledger = open(dir.path(), 2_000);
        assert_eq!(ledger.pending().unwrap(), vec![(jid, b"ret".to_vec())]);
        assert_eq!(ledger.interrupted().unwrap(), vec![]);
        assert!(!jobs.join(format!("{}.ret.tmp", Jid::from_micros(8))).exists());
        assert!(!jobs.join(format!("{}.job", Jid::from_micros(9))).exists());
    }

    #[test]
    fn the_records_of_the_sled_database_of_earlier_versions_are_moved_in() {
        let dir = tempfile::tempdir().unwrap();
        let (running, finished, spooled) = (Jid::from_micros(1), Jid::from_micros(2), Jid::from_micros(3));
        {
            // As earlier versions wrote it: returns by JID bytes, jobs in flight by JID
            // bytes, accepted JIDs by their text with the expiry.
            let db = sled::open(dir.path().join("db")).unwrap();
            let spool = db.open_tree("spool").unwrap();
            let inflight = db.open_tree("inflight").unwrap();
            let replay = db.open_tree("replay").unwrap();
            spool.insert(spooled.to_be_bytes(), b"ret-3".as_slice()).unwrap();
            inflight.insert(running.to_be_bytes(), rmp_serde::to_vec_named(&job()).unwrap()).unwrap();
            for jid in [running, finished, spooled] {
                replay.insert(jid.to_string().as_bytes(), &60_000u64.to_be_bytes()).unwrap();
            }
            db.flush().unwrap();
        }
        let ledger = open(dir.path(), 1_000);
        assert!(!dir.path().join("db").exists());
        assert_eq!(ledger.pending().unwrap(), vec![(spooled, b"ret-3".to_vec())]);
        assert_eq!(ledger.interrupted().unwrap(), vec![(running, job())]);
        for jid in [running, finished, spooled] {
            assert!(matches!(ledger.accept(jid, 60_000, &job(), 1_000), Err(LedgerError::Replayed(_))), "{jid}");
        }
    }
}
