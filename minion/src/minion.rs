//! The minion agent: enroll until the master accepts the key, then hold a session on
//! the master's NATS under the minion's own identity, take jobs from its own subject,
//! check each one (master signature, expiry, replay, target), run it on a bounded
//! pool and publish the signed return through JetStream.

use crate::config::{MinionConfig, NatsAuth};
use crate::ledger::{Inflight, Ledger, LedgerError};
use async_nats::jetstream;
use brine_proto::envelope::{open, seal, Envelope, OpenError, Stamp};
use brine_proto::keys::Fingerprint;
use brine_proto::msg::{
    EnrollReply, EnrollRequest, Event, Job, KeyStatus, Presence, Return, Rpc, RpcCall, RpcReply, RpcResult,
};
use brine_proto::target::Facts;
use brine_proto::{Jid, Map, TargetMatcher, Value};
use brine_states::exec::{CallError, CancelFlag, Context, Host};
use ed25519_dalek::{SigningKey, VerifyingKey};
use futures::StreamExt;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

/// Where the minion stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Loading keys and grains.
    Starting,
    /// Asking the master to accept the key; the last answer, if any.
    Enrolling(Option<KeyStatus>),
    /// Connected under its own identity, taking jobs.
    Connected,
}

/// Why the minion could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Key(#[from] brine_proto::keys::KeyError),
    #[error("minion job records in {path}: {source}")]
    Ledger { path: std::path::PathBuf, source: std::io::Error },
    #[error("TLS: {0}")]
    Tls(brine_proto::tls::TlsError),
    #[error("cannot start the beacons: {0}")]
    Beacons(String),
}

/// Counters of what the minion did with the jobs it received.
#[derive(Debug, Default)]
pub struct Counters {
    pub jobs_run: AtomicU64,
    pub jobs_refused: AtomicU64,
    pub returns_published: AtomicU64,
}

/// A copy of [`Counters`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CountersSnapshot {
    pub jobs_run: u64,
    pub jobs_refused: u64,
    pub returns_published: u64,
}

/// A job this minion accepted and has not finished.
struct RunningJob {
    cancel: CancelFlag,
    fun: String,
    arg: Vec<Value>,
    tgt: String,
    user: String,
    started_at: u64,
}

struct Shared {
    cfg: MinionConfig,
    key: SigningKey,
    master: Mutex<Option<VerifyingKey>>,
    /// The CA (DER) trusted for the master's NATS: configured, or pinned from the
    /// master's signed enrollment answer.
    tls_ca: Mutex<Option<Vec<u8>>>,
    grains: RwLock<Arc<Map>>,
    /// The pillar the master rendered for this minion (with `_errors` if it failed),
    /// and whether it has been fetched since the minion started.
    pillar: RwLock<Arc<Map>>,
    pillar_loaded: std::sync::atomic::AtomicBool,
    /// The master's file server, through the minion's cache.
    files: std::sync::OnceLock<Arc<crate::files::RemoteFiles>>,
    running: Mutex<HashMap<Jid, RunningJob>>,
    workers: Arc<Semaphore>,
    started_at: u64,
    status: watch::Sender<Status>,
    counters: Counters,
    /// Accepted JIDs, jobs in flight and returns not yet acknowledged, on disk.
    ledger: Ledger,
    /// Until when (Unix ms) returns skip the direct way to the master (see
    /// [`hand_to_master`]).
    direct_paused_until: AtomicU64,
    /// Why the last refused job was refused.
    last_refusal: Mutex<Option<String>>,
    /// The NATS connection of the current session, if any.
    session: Mutex<Option<async_nats::Client>>,
    /// Tasks the minion started, stopped with it.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// A queue drain is under way / was asked for during one.
    draining: std::sync::atomic::AtomicBool,
    drain_again: std::sync::atomic::AtomicBool,
    runtime: tokio::runtime::Handle,
    /// The beacons this minion runs (config file and run-time changes).
    beacons: crate::beacons::Beacons,
    /// The schedule this minion runs (config file and run-time changes).
    schedule: crate::schedule::MinionSchedule,
    /// Where the functions of jobs run.
    executor: Arc<dyn crate::runner::Execute>,
}

impl Shared {
    /// Starts a task that ends when the minion stops.
    fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(&self, fut: F) {
        let handle = tokio::spawn(fut).abort_handle();
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    fn grains(&self) -> Arc<Map> {
        self.grains.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn pillar(&self) -> Arc<Map> {
        self.pillar.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn client(&self) -> Result<async_nats::Client, String> {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| "not connected to the master".into())
    }
}

/// The minion as the `saltutil.*` functions see it.
struct MinionHost(Arc<Shared>);

impl std::fmt::Debug for MinionHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MinionHost({})", self.0.cfg.id)
    }
}

impl Host for MinionHost {
    fn running(&self) -> Vec<Value> {
        let running = self.0.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut jobs: Vec<(&Jid, &RunningJob)> = running.iter().collect();
        jobs.sort_by_key(|(jid, _)| **jid);
        jobs.into_iter()
            .map(|(jid, j)| {
                serde_json::json!({
                    "jid": jid.to_string(),
                    "fun": j.fun,
                    "arg": j.arg,
                    "tgt": j.tgt,
                    "user": j.user,
                    "pid": std::process::id(),
                    "started": brine_proto::time::format_ms(j.started_at),
                })
            })
            .collect()
    }

    fn kill(&self, jid: &str) -> bool {
        let Ok(jid) = jid.parse::<Jid>() else { return false };
        match self.0.running.lock().unwrap_or_else(|e| e.into_inner()).get(&jid) {
            Some(j) => {
                j.cancel.cancel();
                tracing::warn!(%jid, "job killed on request");
                true
            }
            None => false,
        }
    }

    fn refresh_grains(&self) -> Result<Map, String> {
        let sh = &self.0;
        let fresh = sh.executor.grains(sh.cfg.id.as_str(), &sh.cfg.grains_path(), &sh.cfg.grains)?;
        *sh.grains.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh.clone());
        let client = sh.session.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(client) = client {
            sh.runtime.block_on(push_grains(sh, &client))?;
        }
        Ok(fresh)
    }

    fn refresh_pillar(&self) -> Result<Map, String> {
        let sh = &self.0;
        sh.runtime.block_on(fetch_pillar(sh))
    }

    fn fire_event(&self, tag: &str, data: Value) -> Result<(), String> {
        let sh = &self.0;
        sh.runtime.block_on(emit_event(sh, tag, data, None))
    }

    fn beacons(&self) -> Result<Map, String> {
        Ok(self.0.beacons.config())
    }

    fn validate_beacon(&self, name: &str, data: &Map) -> Result<(), String> {
        self.0.beacons.validate(name, data)
    }

    fn set_beacons(&self, beacons: Map) -> Result<(), String> {
        self.0.beacons.set(beacons)
    }

    fn reset_beacons(&self) -> Result<(), String> {
        self.0.beacons.reset()
    }

    fn save_beacons(&self) -> Result<String, String> {
        self.0.beacons.save().map(|p| p.display().to_string())
    }

    fn beacon_modules(&self) -> Vec<String> {
        crate::beacons::module_names()
    }

    fn fire_job_event(&self, tag: &str, data: Value, jid: Option<&str>) -> Result<(), String> {
        let sh = &self.0;
        let jid = jid.and_then(|j| j.parse::<Jid>().ok());
        sh.runtime.block_on(emit_event(sh, tag, data, jid))
    }

    fn schedule(&self) -> Result<Map, String> {
        Ok(self.0.schedule.current())
    }

    fn saved_schedule(&self) -> Result<Map, String> {
        self.0.schedule.saved()
    }

    fn change_schedule(&self, change: brine_states::exec::schedule::ScheduleChange) -> Result<Map, String> {
        self.0.schedule.change(change)
    }
}

/// Starts the scheduled runs as they come due, for the life of the minion (returns
/// wait in the spool while the master is out of reach).
async fn run_schedule(sh: Arc<Shared>) {
    loop {
        sh.schedule.wait().await;
        for launch in sh.schedule.due(brine_proto::time::now_ms()) {
            let run = sh.clone();
            sh.spawn(async move { run_scheduled(&run, launch).await });
        }
    }
}

/// Runs one scheduled call as a job of this minion's own (user `schedule`, a JID the
/// minion makes) and spools its signed return, marked as scheduled, for the master's
/// job cache.
async fn run_scheduled(sh: &Arc<Shared>, launch: brine_proto::schedule::Launch) {
    let jid = sh.schedule.next_jid();
    let job = Job {
        stamp: Stamp::new(jid.to_string(), brine_proto::envelope::MAX_TTL),
        jid,
        target: brine_proto::Target::List(vec![sh.cfg.id.to_string()]),
        fun: launch.function.clone(),
        arg: launch.args.clone(),
        kwarg: launch.kwargs.clone(),
        user: "schedule".into(),
        queued: false,
    };
    tracing::info!(%jid, name = %launch.name, fun = %launch.function, "running a scheduled job");
    let mut ret = run_job_listed(sh, job, launch.jid_include).await;
    sh.schedule.finished(&launch.name);
    ret.schedule =
        Some(Box::new(brine_proto::msg::ScheduledRun { name: launch.name, arg: launch.args, kwarg: launch.kwargs }));
    let bytes = match seal(&ret, &sh.key) {
        Ok(b) => b,
        Err(e) => return tracing::error!(%jid, error = %e, "cannot seal a scheduled return"),
    };
    let disk = sh.clone();
    match tokio::task::spawn_blocking(move || disk.ledger.put_return(jid, &bytes)).await {
        Ok(Ok(())) => {}
        other => tracing::error!(%jid, result = ?other, "cannot spool a scheduled return; it is lost"),
    }
}

/// Polls the beacons whose interval came round and publishes what they fire, while
/// connected (a beacon's changes wait until then: inotify's in the kernel's queue,
/// the audit spool's on disk).
async fn run_beacons(sh: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if sh.client().is_err() {
            continue;
        }
        let state_run =
            sh.running.lock().unwrap_or_else(|e| e.into_inner()).values().any(|j| j.fun.starts_with("state."));
        let polled = sh.clone();
        let fired = match tokio::task::spawn_blocking(move || polled.beacons.poll_due(Instant::now(), state_run)).await
        {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "the beacons failed");
                continue;
            }
        };
        for (tag, data) in fired {
            if let Err(e) = emit_event(&sh, &tag, data, None).await {
                tracing::warn!(tag, error = %e, "cannot publish a beacon event");
            }
        }
    }
}

/// Publishes an event signed by this minion on `P.event.<minion>.<tag…>` (the only
/// event subjects its NATS user may publish to); `jid` is the job firing it, if any
/// (the master's reactor follows its reactions' consequences through it).
async fn emit_event(sh: &Shared, tag: &str, data: Value, jid: Option<Jid>) -> Result<(), String> {
    if tag.is_empty() || tag.split('/').any(str::is_empty) {
        return Err(format!("{tag:?} is not an event tag (slash-separated words, e.g. myapp/deploy/done)"));
    }
    let client = sh.client()?;
    let mut event = Event::new(Stamp::random(Duration::from_secs(600)), tag, data);
    event.jid = jid;
    let bytes = seal(&event, &sh.key).map_err(|e| e.to_string())?;
    client.publish(sh.cfg.subjects.event(sh.cfg.id.as_str(), tag), bytes.into()).await.map_err(|e| e.to_string())?;
    client.flush().await.map_err(|e| e.to_string())
}

/// Sends a signed request to the master and returns its verified answer.
async fn rpc(sh: &Shared, client: &async_nats::Client, call: RpcCall, timeout: Duration) -> Result<RpcResult, String> {
    let rpc = Rpc { stamp: Stamp::random(Duration::from_secs(60)), id: sh.cfg.id.clone(), call };
    let op = rpc.call.op();
    let subject = sh.cfg.subjects.rpc(&sh.cfg.id, op);
    let bytes = seal(&rpc, &sh.key).map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(timeout, client.request(subject, bytes.into()))
        .await
        .map_err(|_| format!("the master did not answer a {op} request within {} s", timeout.as_secs()))?
        .map_err(|e| format!("cannot send a {op} request to the master: {e}"))?;
    let master = (*sh.master.lock().unwrap_or_else(|e| e.into_inner())).ok_or("no pinned master key")?;
    let reply: RpcReply = open(&answer.payload, &master, brine_proto::time::now_ms()).map_err(|e| e.to_string())?;
    if reply.request != rpc.stamp.id {
        return Err("the master answered another request".into());
    }
    Ok(reply.result)
}

/// Asks the master for this minion's pillar and keeps it.
async fn fetch_pillar(sh: &Shared) -> Result<Map, String> {
    let client = sh.client()?;
    let call = RpcCall::Pillar { grains: (*sh.grains()).clone() };
    let pillar = match rpc(sh, &client, call, Duration::from_secs(60)).await? {
        RpcResult::Pillar { pillar, errors } if errors.is_empty() => pillar,
        RpcResult::Pillar { errors, .. } => {
            tracing::warn!(errors = errors.len(), "the master could not render this minion's pillar");
            let mut m = Map::new();
            m.insert("_errors".into(), Value::Array(errors.into_iter().map(Value::String).collect()));
            m
        }
        RpcResult::Error(e) => return Err(format!("the master could not render the pillar: {e}")),
        other => return Err(format!("unexpected answer to a pillar request: {other:?}")),
    };
    *sh.pillar.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pillar.clone());
    sh.pillar_loaded.store(true, Ordering::Release);
    Ok(pillar)
}

/// The file server as the state system sees it: requests go through the current
/// session. Holds the minion weakly, so the two do not keep each other alive.
fn remote_files(sh: &Arc<Shared>) -> Arc<crate::files::RemoteFiles> {
    let weak = Arc::downgrade(sh);
    let ask: crate::files::Ask = Arc::new(move |call| {
        let sh = weak.upgrade().ok_or("the minion is stopping")?;
        let client = sh.client()?;
        sh.runtime.block_on(rpc(&sh, &client, call, Duration::from_secs(60)))
    });
    Arc::new(crate::files::RemoteFiles::new(ask, &sh.cfg.cache_dir()))
}

/// Sends the grains to the master and waits for its signed acknowledgement.
async fn push_grains(sh: &Shared, client: &async_nats::Client) -> Result<(), String> {
    let call = RpcCall::PutGrains { grains: (*sh.grains()).clone() };
    match rpc(sh, client, call, Duration::from_secs(10)).await? {
        RpcResult::Ok => Ok(()),
        RpcResult::Error(e) => Err(format!("the master could not store the grains: {e}")),
        other => Err(format!("unexpected answer to the grains: {other:?}")),
    }
}

/// Sends the grains in the background, retrying until the master has them.
fn push_grains_soon(sh: &Arc<Shared>, client: &async_nats::Client) {
    let (sh, client) = (sh.clone(), client.clone());
    let tracker = sh.clone();
    tracker.spawn(async move {
        let mut wait = Duration::from_millis(200);
        for _ in 0..20 {
            match push_grains(&sh, &client).await {
                Ok(()) => {
                    if let Err(e) = fetch_pillar(&sh).await {
                        tracing::warn!(error = %e, "no pillar yet; it is fetched again before state runs");
                    }
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "grains not delivered yet; retrying"),
            }
            tokio::time::sleep(jitter(wait)).await;
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    });
}

/// A running minion.
pub struct Minion {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Minion {
    /// Loads (or creates) the key, the pinned master key and the replay cache, collects
    /// grains and starts the agent in the background; jobs run in its own process.
    pub async fn start(cfg: MinionConfig) -> Result<Minion, StartError> {
        Minion::start_with(cfg, Arc::new(crate::runner::InProcess)).await
    }

    /// Like [`Minion::start`], with the jobs' functions run by `executor`
    /// (`brine-minion` runs them in child processes: [`crate::runner::ChildRunner`]).
    pub async fn start_with(
        cfg: MinionConfig,
        executor: Arc<dyn crate::runner::Execute>,
    ) -> Result<Minion, StartError> {
        brine_proto::keys::create_private_dir(&cfg.data_dir)
            .map_err(|source| brine_proto::keys::KeyError::Io { path: cfg.data_dir.clone(), source })?;
        let (key, created) = brine_proto::keys::load_or_create_key(&cfg.key_path())?;
        if created {
            tracing::info!(path = %cfg.key_path().display(), "created the minion key");
        }
        let master = match brine_proto::keys::load_public_key(&cfg.master_pub_path()) {
            Ok(k) => Some(k),
            Err(brine_proto::keys::KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                None
            }
            Err(e) => return Err(e.into()),
        };
        let tls_ca = match cfg.tls_ca_file.clone().or_else(|| Some(cfg.master_ca_path()).filter(|p| p.exists())) {
            Some(path) => Some(brine_proto::tls::certs_from_file(&path).map_err(StartError::Tls)?.remove(0).to_vec()),
            None => None,
        };
        let ledger_err = |source| StartError::Ledger { path: cfg.jobs_dir(), source };
        if cfg.old_db_path().exists() {
            let (runner, jobs, old) = (executor.clone(), cfg.jobs_dir(), cfg.old_db_path());
            tokio::task::spawn_blocking(move || runner.migrate_old_db(&jobs, &old))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r)
                .map_err(|e| ledger_err(std::io::Error::other(e)))?;
        }
        let ledger = Ledger::open(&cfg.jobs_dir(), brine_proto::time::now_ms()).map_err(ledger_err)?;
        // Jobs cut short by the last stop are reported, so none stays "running" forever.
        for (jid, job) in ledger.interrupted().map_err(ledger_err)? {
            tracing::warn!(%jid, fun = %job.fun, "reporting a job interrupted by the minion's restart");
            let ret = Return {
                stamp: Stamp::new(jid.to_string(), brine_proto::envelope::MAX_TTL),
                jid,
                id: cfg.id.clone(),
                fun: job.fun,
                ret: Value::String(INTERRUPTED.into()),
                retcode: 1,
                success: false,
                started_at: job.started_at,
                duration_ms: brine_proto::time::now_ms().saturating_sub(job.started_at),
                schedule: None,
            };
            if let Ok(bytes) = seal(&ret, &key) {
                ledger.put_return(jid, &bytes).map_err(ledger_err)?;
            }
            ledger.end_job(jid);
        }
        let (runner, id, saved, configured) =
            (executor.clone(), cfg.id.to_string(), cfg.grains_path(), cfg.grains.clone());
        let grains = tokio::task::spawn_blocking(move || runner.grains(&id, &saved, &configured))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot collect the grains");
                Map::new()
            });
        let env = crate::beacons::Env { id: cfg.id.to_string(), data_dir: cfg.data_dir.clone() };
        let base = cfg.beacons.clone();
        let beacons = tokio::task::spawn_blocking(move || crate::beacons::Beacons::load(env, base))
            .await
            .map_err(|e| StartError::Beacons(e.to_string()))?;
        let (schedule, warnings) =
            crate::schedule::MinionSchedule::load(&cfg.schedule, cfg.schedule_path(), brine_proto::time::now_ms());
        for w in warnings {
            tracing::warn!("schedule: {w}; left out");
        }
        let (status, _) = watch::channel(Status::Starting);
        let shared = Arc::new(Shared {
            workers: Arc::new(Semaphore::new(cfg.workers)),
            cfg,
            key,
            master: Mutex::new(master),
            tls_ca: Mutex::new(tls_ca),
            grains: RwLock::new(Arc::new(grains)),
            pillar: RwLock::new(Arc::new(Map::new())),
            pillar_loaded: Default::default(),
            files: std::sync::OnceLock::new(),
            running: Mutex::new(HashMap::new()),
            started_at: brine_proto::time::now_ms(),
            status,
            counters: Counters::default(),
            ledger,
            direct_paused_until: AtomicU64::new(0),
            last_refusal: Mutex::new(None),
            session: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            draining: Default::default(),
            drain_again: Default::default(),
            runtime: tokio::runtime::Handle::current(),
            beacons,
            schedule,
            executor,
        });
        let _ = shared.files.set(remote_files(&shared));
        shared.spawn(run_beacons(shared.clone()));
        shared.spawn(run_schedule(shared.clone()));
        let task = tokio::spawn(run(shared.clone()));
        Ok(Minion { shared, task })
    }

    /// Follows the minion's status.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.shared.status.subscribe()
    }

    /// Waits until the minion is connected and taking jobs, up to `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.status();
        tokio::time::timeout(timeout, rx.wait_for(|s| *s == Status::Connected)).await.is_ok_and(|r| r.is_ok())
    }

    /// The minion's public key.
    pub fn public_key(&self) -> VerifyingKey {
        self.shared.key.verifying_key()
    }

    /// What the minion did so far.
    pub fn counters(&self) -> CountersSnapshot {
        let c = &self.shared.counters;
        CountersSnapshot {
            jobs_run: c.jobs_run.load(Ordering::Relaxed),
            jobs_refused: c.jobs_refused.load(Ordering::Relaxed),
            returns_published: c.returns_published.load(Ordering::Relaxed),
        }
    }

    /// Why the last refused job was refused.
    pub fn last_refusal(&self) -> Option<String> {
        self.shared.last_refusal.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the agent and every task it started; when this returns, the minion's
    /// database is closed and may be opened again.
    pub async fn shutdown(self) {
        self.task.abort();
        let _ = self.task.await;
        // Running jobs stop too; the next start reports them as interrupted.
        for job in self.shared.running.lock().unwrap_or_else(|e| e.into_inner()).values() {
            job.cancel.cancel();
        }
        for t in self.shared.tasks.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            t.abort();
        }
        self.shared.session.lock().unwrap_or_else(|e| e.into_inner()).take();
        // Aborted tasks release their references as they unwind.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.shared) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Doubling waits between `min` and `max`, each with ±20 % jitter so that many
/// minions do not retry in lockstep.
struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { next: min, min, max }
    }

    fn reset(&mut self) {
        self.next = self.min;
    }

    fn next_wait(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        jitter(base)
    }
}

fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = getrandom::getrandom(&mut b);
    let frac = u16::from_le_bytes(b) as f64 / u16::MAX as f64; // 0..1
    d.mul_f64(0.8 + 0.4 * frac)
}

async fn run(sh: Arc<Shared>) {
    let mut backoff = Backoff::new(sh.cfg.enroll_retry_min, sh.cfg.enroll_retry_max);
    loop {
        enroll(&sh).await;
        match session(&sh).await {
            SessionEnd::Revoked => {
                tracing::warn!("the master revoked this minion's access; enrolling again");
                backoff.reset();
            }
            SessionEnd::ConnectFailed(e) => {
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_in = ?wait, "cannot connect to the master's NATS");
                let _ = sh.status.send_replace(Status::Enrolling(Some(KeyStatus::Accepted)));
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Adds TLS to a connection: verified against the trusted CA when there is one
/// (then required); otherwise, for the enrollment connection only, a capture that
/// accepts the server's certificate until the master's signed answer names its CA.
fn with_tls(sh: &Shared, opts: async_nats::ConnectOptions, enrolling: bool) -> async_nats::ConnectOptions {
    let ca = sh.tls_ca.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match ca {
        Some(ca) => {
            let roots = [rustls::pki_types::CertificateDer::from(ca)];
            match brine_proto::tls::client_config(&roots) {
                Ok(config) => opts.tls_client_config(config).require_tls(true),
                Err(e) => {
                    tracing::error!(error = %e, "cannot use the master's TLS CA");
                    opts.require_tls(true)
                }
            }
        }
        None if enrolling => match brine_proto::tls::capture_config() {
            Ok((config, _)) => opts.tls_client_config(config).require_tls(sh.cfg.tls_required),
            Err(_) => opts,
        },
        None => opts,
    }
}

/// Asks the master to accept the key until it does.
async fn enroll(sh: &Shared) {
    let _ = sh.status.send_replace(Status::Enrolling(None));
    let mut backoff = Backoff::new(sh.cfg.enroll_retry_min, sh.cfg.enroll_retry_max);
    let subjects = &sh.cfg.subjects;
    let mut last: Option<KeyStatus> = None;
    loop {
        let client = match with_tls(sh, async_nats::ConnectOptions::new(), true)
            .custom_inbox_prefix(subjects.enroll_inbox())
            .name(format!("brine-minion {} (enrolling)", sh.cfg.id))
            .connection_timeout(Duration::from_secs(5))
            .connect(sh.cfg.master_url.as_str())
            .await
        {
            Ok(c) => c,
            Err(e) => {
                let wait = backoff.next_wait();
                tracing::warn!(master = %sh.cfg.master_url, error = %e, retry_in = ?wait, "cannot reach the master");
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        loop {
            let req = EnrollRequest {
                stamp: Stamp::random(Duration::from_secs(60)),
                id: sh.cfg.id.clone(),
                key: sh.key.verifying_key().to_bytes(),
                version: brine_proto::VERSION.into(),
            };
            let Ok(bytes) = seal(&req, &sh.key) else {
                return;
            };
            let answer =
                tokio::time::timeout(Duration::from_secs(10), client.request(subjects.enroll(), bytes.into())).await;
            match answer {
                Ok(Ok(msg)) => match check_enroll_reply(sh, &req, &msg.payload) {
                    Ok(KeyStatus::Accepted) => {
                        tracing::info!("the master accepted this minion's key");
                        return;
                    }
                    Ok(status) => {
                        if last != Some(status) {
                            let fp = Fingerprint::of(&sh.key.verifying_key());
                            match status {
                                KeyStatus::Pending => tracing::info!(
                                    fingerprint = %fp,
                                    "key is pending on the master; accept it there with `brine key accept {}`",
                                    sh.cfg.id
                                ),
                                KeyStatus::Rejected => {
                                    tracing::error!(fingerprint = %fp, "the master has rejected this minion's key")
                                }
                                _ => tracing::error!(
                                    fingerprint = %fp,
                                    "the master holds a different key for id {}; this key is denied (delete the old key on the master if this host was reinstalled)",
                                    sh.cfg.id
                                ),
                            }
                        }
                        last = Some(status);
                        let _ = sh.status.send_replace(Status::Enrolling(Some(status)));
                    }
                    Err(e) => tracing::warn!(error = %e, "ignoring an enrollment answer"),
                },
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "no answer to enrollment (is brine-master running?)")
                }
                Err(_) => tracing::warn!("enrollment request timed out"),
            }
            tokio::time::sleep(backoff.next_wait()).await;
        }
    }
}

/// Checks an enrollment answer: signed by the master we trust (pinning it on first
/// contact), answering our request, about us.
fn check_enroll_reply(sh: &Shared, req: &EnrollRequest, payload: &[u8]) -> Result<KeyStatus, String> {
    let env = Envelope::decode(payload).map_err(|e| e.to_string())?;
    let signer = VerifyingKey::from_bytes(&env.signer).map_err(|_| "bad signer key".to_string())?;
    let pinned = *sh.master.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pinned) = pinned {
        if pinned != signer {
            return Err(format!(
                "answer signed by {} but this minion trusts master key {} ({})",
                Fingerprint::of(&signer),
                Fingerprint::of(&pinned),
                sh.cfg.master_pub_path().display()
            ));
        }
    } else if let Some(want) = sh.cfg.master_finger {
        if Fingerprint::of(&signer) != want {
            return Err(format!("answer signed by {} but master_finger is {want}", Fingerprint::of(&signer)));
        }
    }
    let reply: EnrollReply = open(payload, &signer, brine_proto::time::now_ms()).map_err(|e| e.to_string())?;
    if reply.request != req.stamp.id || reply.id != req.id {
        return Err("answer to another request".into());
    }
    if let Some(ca) = &reply.tls_ca {
        let mut pinned_ca = sh.tls_ca.lock().unwrap_or_else(|e| e.into_inner());
        if pinned_ca.is_none() {
            // Trusted because the master, whose key we trust, vouches for it.
            let path = sh.cfg.master_ca_path();
            std::fs::write(&path, brine_proto::tls::der_to_pem(ca))
                .map_err(|e| format!("cannot save the master's CA to {}: {e}", path.display()))?;
            tracing::info!(fingerprint = %brine_proto::tls::fingerprint(ca), "pinned the master's TLS CA");
            *pinned_ca = Some(ca.clone());
        }
    }
    if pinned.is_none() {
        brine_proto::keys::write_public_key(&sh.cfg.master_pub_path(), &signer).map_err(|e| e.to_string())?;
        *sh.master.lock().unwrap_or_else(|e| e.into_inner()) = Some(signer);
        tracing::info!(fingerprint = %Fingerprint::of(&signer), "pinned the master's key");
    }
    Ok(reply.status)
}

enum SessionEnd {
    /// The server no longer lets this identity in (key deleted or rejected).
    Revoked,
    ConnectFailed(String),
}

fn is_auth_problem(ev: &async_nats::Event) -> bool {
    match ev {
        async_nats::Event::ServerError(async_nats::ServerError::AuthorizationViolation) => true,
        async_nats::Event::ServerError(async_nats::ServerError::Other(s))
        | async_nats::Event::ClientError(async_nats::ClientError::Other(s)) => {
            let s = s.to_lowercase();
            s.contains("authorization") || s.contains("authentication")
        }
        _ => false,
    }
}

/// How long the minion sends returns through the stream only after the server refused
/// it permission to hand one to the master directly.
const NO_DIRECT_PERMISSION_PAUSE: Duration = Duration::from_secs(3600);

/// Whether the server refused a direct return (`P.dret`) for lack of permission.
fn refuses_direct_returns(ev: &async_nats::Event) -> bool {
    match ev {
        async_nats::Event::ServerError(async_nats::ServerError::Other(s)) => {
            let s = s.to_lowercase();
            s.contains("permissions violation for publish") && s.contains(".dret.")
        }
        _ => false,
    }
}

/// Connects under the minion's own identity and serves jobs until access is revoked.
async fn session(sh: &Arc<Shared>) -> SessionEnd {
    let subjects = &sh.cfg.subjects;
    let id = &sh.cfg.id;
    let (ev_tx, mut events) = mpsc::channel::<async_nats::Event>(64);
    let mut opts = match sh.cfg.nats_auth {
        NatsAuth::Nkey => {
            let seed = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, sh.key.to_bytes()).and_then(|k| k.seed());
            match seed {
                Ok(seed) => async_nats::ConnectOptions::with_nkey(seed),
                Err(e) => return SessionEnd::ConnectFailed(e.to_string()),
            }
        }
        NatsAuth::None => async_nats::ConnectOptions::new(),
    };
    if sh.cfg.tls_required && sh.tls_ca.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
        return SessionEnd::ConnectFailed(format!(
            "no TLS CA is known for {} and TLS is required for a master on another host \
             (set [tls] ca_file, or [tls] required = false to allow plaintext)",
            sh.cfg.master_url
        ));
    }
    opts = with_tls(sh, opts, false)
        .custom_inbox_prefix(subjects.minion_inbox(id))
        .name(format!("brine-minion {id}"))
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            jitter(Duration::from_millis(100) * 2u32.saturating_pow(attempts.min(7) as u32))
                .min(Duration::from_secs(15))
        })
        .event_callback(move |ev| {
            let tx = ev_tx.clone();
            async move {
                let _ = tx.send(ev).await;
            }
        });
    let client = match opts.connect(sh.cfg.master_url.as_str()).await {
        Ok(c) => c,
        Err(e) => {
            return match e.kind() {
                async_nats::ConnectErrorKind::AuthorizationViolation | async_nats::ConnectErrorKind::Authentication => {
                    SessionEnd::Revoked
                }
                _ => SessionEnd::ConnectFailed(e.to_string()),
            }
        }
    };
    let mut jobs = match client.subscribe(subjects.jobs_of(id)).await {
        Ok(s) => s,
        Err(e) => return SessionEnd::ConnectFailed(e.to_string()),
    };
    let _ = client.flush().await;
    let js = jetstream::new(client.clone());
    *sh.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
    push_grains_soon(sh, &client);
    let _pump = AbortOnDrop(tokio::spawn(pump_returns(sh.clone(), js.clone())));
    // Jobs queued while we were away.
    drain_queue_soon(sh, &client, &js);
    let _ = sh.status.send_replace(Status::Connected);
    tracing::info!(master = %sh.cfg.master_url, "connected; taking jobs");
    // Salt's minion start event, signed by this minion, once per session (a process
    // start, or a new session after the key was re-accepted).
    let starting = sh.clone();
    tokio::spawn(async move {
        let id = starting.cfg.id.as_str();
        let data = serde_json::json!({
            "id": id,
            "data": format!("Minion {id} started at {}", brine_proto::time::format_ms(starting.started_at)),
            "started_at": starting.started_at,
            "version": brine_proto::VERSION,
        });
        if let Err(e) = emit_event(&starting, &format!("brine/minion/{id}/start"), data, None).await {
            tracing::warn!(error = %e, "cannot send the minion start event");
        }
    });
    let mut tick = tokio::time::interval(sh.cfg.presence_interval);
    let mut first_connect = true;
    loop {
        tokio::select! {
            msg = jobs.next() => match msg {
                Some(msg) => {
                    let (sh, js) = (sh.clone(), js.clone());
                    let tracker = sh.clone();
                    let client = client.clone();
                    tracker.spawn(async move { handle_job(&sh, &js, &client, msg).await });
                }
                None => return SessionEnd::ConnectFailed("job subscription closed".into()),
            },
            Some(ev) = events.recv() => {
                if is_auth_problem(&ev) {
                    *sh.session.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    return SessionEnd::Revoked;
                }
                if refuses_direct_returns(&ev) {
                    // An older master's server, or an external one configured without
                    // `P.dret`: no use waiting 5 s for every return.
                    let now = brine_proto::time::now_ms();
                    let until = now + NO_DIRECT_PERMISSION_PAUSE.as_millis() as u64;
                    if sh.direct_paused_until.swap(until, Ordering::Relaxed) < now {
                        tracing::warn!(
                            subject = %sh.cfg.subjects.direct_rets_of(&sh.cfg.id),
                            "NATS does not let this minion hand returns to the master directly; returns go through \
                             the returns stream (upgrade the master, or allow the subject on an external server)"
                        );
                    }
                }
                match ev {
                    // The first Connected event is the initial connection itself.
                    async_nats::Event::Connected if !first_connect => {
                        tracing::info!("reconnected to the master's NATS");
                        publish_presence(sh, &client).await;
                        // The master may have restarted without our grains.
                        push_grains_soon(sh, &client);
                        drain_queue_soon(sh, &client, &js);
                    }
                    async_nats::Event::Connected => first_connect = false,
                    async_nats::Event::Disconnected => tracing::warn!("disconnected from the master's NATS; reconnecting"),
                    other => tracing::debug!(event = %other, "NATS event"),
                }
            }
            _ = tick.tick() => publish_presence(sh, &client).await,
        }
    }
}

async fn publish_presence(sh: &Shared, client: &async_nats::Client) {
    let running = sh.running.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect();
    let p = Presence {
        stamp: Stamp::random(sh.cfg.presence_interval * 3),
        id: sh.cfg.id.clone(),
        version: brine_proto::VERSION.into(),
        started_at: sh.started_at,
        running,
    };
    if let Ok(bytes) = seal(&p, &sh.key) {
        if let Err(e) = client.publish(sh.cfg.subjects.presence(&sh.cfg.id), bytes.into()).await {
            tracing::debug!(error = %e, "cannot publish presence");
        }
    }
}

/// For a signed job refused for its time: how far this minion's clock is from the
/// master's, and what to do.
fn skew_explanation(payload: &[u8], now: u64) -> Option<String> {
    let env = Envelope::decode(payload).ok()?;
    let job: Job = rmp_serde::from_slice(&env.body).ok()?;
    let issued = job.stamp.issued_at;
    let (dir, ms) = if now >= issued { ("ahead of", now - issued) } else { ("behind", issued - now) };
    Some(format!(
        "this minion's clock is about {}s {dir} the master's (the job was issued at {}, it is {} here); \
         fix the clock (NTP) on this host or the master",
        ms / 1000,
        brine_proto::time::format_ms(issued),
        brine_proto::time::format_ms(now)
    ))
}

/// Why a job was refused.
fn refuse(sh: &Shared, subject: &str, why: &str) {
    sh.counters.jobs_refused.fetch_add(1, Ordering::Relaxed);
    *sh.last_refusal.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.to_string());
    tracing::warn!(subject, "refused a job: {why}");
}

/// Checks a job and, if it passes, runs it and publishes the return.
/// Where a job came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// Published live on the minion's job subject.
    Live,
    /// Drained from the minion's job queue.
    Queue,
}

/// Checks, records and runs a job that arrived live.
async fn handle_job(sh: &Arc<Shared>, js: &jetstream::Context, client: &async_nats::Client, msg: async_nats::Message) {
    let Some(job) = accept_job(sh, &msg.subject, &msg.payload, Via::Live).await else { return };
    if job.queued {
        // Its copy waits in our queue: take it out now rather than at the next reconnect.
        drain_queue_soon(sh, client, js);
    }
    finish_job(sh, js, job).await;
}

/// Checks a job (master signature, expiry, subject, target, replay) and records it as
/// started; `None` if it must not run.
async fn accept_job(sh: &Arc<Shared>, subject: &str, payload: &[u8], via: Via) -> Option<Job> {
    let now = brine_proto::time::now_ms();
    let Some(master) = *sh.master.lock().unwrap_or_else(|e| e.into_inner()) else {
        refuse(sh, subject, "no pinned master key");
        return None;
    };
    let job: Job = match open(payload, &master, now) {
        Ok(j) => j,
        Err(e @ (OpenError::Expired(_) | OpenError::FromTheFuture(_))) if via == Via::Live => {
            // A live job is a few milliseconds old: if it looks stale or early, the
            // clocks disagree. Say so, with the numbers, instead of a bare refusal.
            refuse(sh, subject, &skew_explanation(payload, now).unwrap_or_else(|| e.to_string()));
            return None;
        }
        Err(e) => {
            refuse(sh, subject, &e.to_string());
            return None;
        }
    };
    let expected = match via {
        Via::Live => sh.cfg.subjects.job(&sh.cfg.id, job.jid),
        Via::Queue => sh.cfg.subjects.qjob(&sh.cfg.id, job.jid),
    };
    if subject != expected || job.stamp.id != job.jid.to_string() {
        refuse(sh, subject, "its subject does not match its JID");
        return None;
    }
    let grains = sh.grains();
    // Pillar targets need the pillar: fetched once, if the job came before it did.
    if !sh.pillar_loaded.load(Ordering::Acquire) {
        if let Err(e) = fetch_pillar(sh).await {
            tracing::warn!(error = %e, "cannot fetch the pillar to match a job's target");
        }
    }
    let pillar = sh.pillar();
    let facts = Facts { id: sh.cfg.id.as_str(), grains: Some(&grains), pillar: Some(&pillar) };
    match TargetMatcher::compile(&job.target) {
        Ok(m) if m.matches(&facts) => {}
        Ok(_) => {
            refuse(sh, subject, &format!("target {} does not match this minion", job.target));
            return None;
        }
        Err(e) => {
            refuse(sh, subject, &format!("bad target: {e}"));
            return None;
        }
    }
    let jid = job.jid;
    // The disk work (fsyncs) runs off the async threads.
    let (disk, stamp) = (sh.clone(), job.stamp.clone());
    let inflight = Inflight { fun: job.fun.clone(), user: job.user.clone(), started_at: now };
    let accepted = tokio::task::spawn_blocking(move || {
        // The JID was checked against the job's subject above: the ledger keys on it.
        disk.ledger.accept(jid, stamp.expires_at, &inflight, now)
    })
    .await;
    match accepted {
        Ok(Ok(())) => Some(job),
        // A queued job comes twice, live and from the queue (in either order when the
        // minion drains its queue on a reconnect meanwhile): the second copy is no attack.
        Ok(Err(LedgerError::Replayed(_))) if job.queued => {
            tracing::debug!(%jid, ?via, "the other copy of a queued job already ran");
            None
        }
        Ok(Err(e)) => {
            refuse(sh, subject, &e.to_string());
            None
        }
        Err(e) => {
            refuse(sh, subject, &e.to_string());
            None
        }
    }
}

/// Runs an accepted job and spools its signed return.
async fn finish_job(sh: &Arc<Shared>, js: &jetstream::Context, job: Job) {
    let jid = job.jid;
    let ret = run_job(sh, job).await;
    let bytes = match seal(&ret, &sh.key) {
        Ok(b) => b,
        Err(e) => return tracing::error!(%jid, error = %e, "cannot seal the return"),
    };
    let disk = sh.clone();
    let sealed = bytes.clone();
    let spooled = tokio::task::spawn_blocking(move || {
        let r = disk.ledger.put_return(jid, &sealed);
        disk.ledger.end_job(jid);
        r
    })
    .await;
    if !matches!(spooled, Ok(Ok(()))) {
        // A full or broken disk: publish straight away rather than lose the return.
        tracing::error!(%jid, result = ?spooled, "cannot spool the return; publishing it without a spool");
        let _ = publish_once(sh, js, jid, bytes.into()).await;
    }
}

/// Drains the minion's job queue in the background (one drain at a time; a request
/// during a drain makes it go round again).
fn drain_queue_soon(sh: &Arc<Shared>, client: &async_nats::Client, js: &jetstream::Context) {
    if sh.draining.swap(true, Ordering::AcqRel) {
        sh.drain_again.store(true, Ordering::Release);
        return;
    }
    let (task_sh, client, js) = (sh.clone(), client.clone(), js.clone());
    sh.spawn(async move {
        loop {
            task_sh.drain_again.store(false, Ordering::Release);
            drain_queue(&task_sh, &client, &js).await;
            if !task_sh.drain_again.load(Ordering::Acquire) {
                break;
            }
        }
        task_sh.draining.store(false, Ordering::Release);
    });
}

/// Pulls every job waiting in this minion's queue, acknowledging each once it is
/// recorded (a job acknowledged and then cut short by a crash is reported as
/// interrupted), and runs the ones that may run.
async fn drain_queue(sh: &Arc<Shared>, client: &async_nats::Client, js: &jetstream::Context) {
    let subjects = &sh.cfg.subjects;
    let id = &sh.cfg.id;
    const BATCH: usize = 64;
    loop {
        let inbox = format!("{}.q.{}", subjects.minion_inbox(id), brine_proto::envelope::random_id());
        let Ok(mut sub) = client.subscribe(inbox.clone()).await else { return };
        let request = format!("{{\"batch\":{BATCH},\"no_wait\":true}}");
        if client.publish_with_reply(subjects.queue_next(id), inbox, request.into()).await.is_err() {
            return;
        }
        let mut got = 0;
        loop {
            let msg = match tokio::time::timeout(Duration::from_secs(5), sub.next()).await {
                Ok(Some(m)) => m,
                _ => return,
            };
            // A status message (no more jobs, no such queue) ends the batch.
            if msg.status.is_some() || msg.payload.is_empty() {
                break;
            }
            got += 1;
            let accepted = accept_job(sh, &msg.subject, &msg.payload, Via::Queue).await;
            if let Some(reply) = msg.reply.clone() {
                let _ = client.publish(reply, "+ACK".into()).await;
            }
            if let Some(job) = accepted {
                tracing::info!(jid = %job.jid, "running a queued job");
                let (sh2, js2) = (sh.clone(), js.clone());
                sh.spawn(async move { finish_job(&sh2, &js2, job).await });
            }
            if got == BATCH {
                break;
            }
        }
        if got < BATCH {
            return;
        }
    }
}

/// What an interrupted job returns.
pub const INTERRUPTED: &str = "ERROR: the job was interrupted: the minion stopped while running it";

/// Aborts a task when dropped (ends a session's helpers with the session).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Publishes spooled returns until JetStream acknowledges each, for the life of a
/// session: at once when a return is spooled, and every few seconds while any wait.
async fn pump_returns(sh: Arc<Shared>, js: jetstream::Context) {
    let mut warned = false;
    loop {
        let pending = match sh.ledger.pending() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the return spool");
                Vec::new()
            }
        };
        let mut stuck = false;
        for (jid, bytes) in pending {
            match publish_once(&sh, &js, jid, bytes.into()).await {
                Ok(()) => {
                    warned = false;
                    sh.ledger.acknowledged(jid);
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(%jid, error = %e, "returns are not acknowledged yet; they stay spooled and are retried");
                        warned = true;
                    }
                    stuck = true;
                    break;
                }
            }
        }
        let wait = if stuck { jitter(Duration::from_secs(2)) } else { Duration::from_secs(30) };
        sh.ledger.wait(wait).await;
    }
}

/// Publishes one sealed return and waits for JetStream's acknowledgement.
async fn publish_once(sh: &Shared, js: &jetstream::Context, jid: Jid, bytes: bytes::Bytes) -> Result<(), String> {
    if hand_to_master(sh, &js.client(), jid, &bytes).await {
        sh.counters.returns_published.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let subject = sh.cfg.subjects.ret(&sh.cfg.id, jid);
    // The same id for every attempt, so JetStream drops duplicates within its window.
    let msg_id = format!("{}.{}", sh.cfg.id.token(), jid);
    let publish = jetstream::message::PublishMessage::build().payload(bytes).message_id(msg_id.as_str());
    let ack = js.send_publish(subject, publish).await.map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(10), ack)
        .await
        .map_err(|_| "no acknowledgement within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    sh.counters.returns_published.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// How long a return handed to the master directly waits for the master's answer.
const DIRECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the minion sends returns through the stream only, after the master did
/// not answer one handed to it directly in time.
const DIRECT_PAUSE: Duration = Duration::from_secs(60);

/// Returns larger than this go through the stream, whose flow control paces them to
/// the master: a fleet's worth of big state-run returns at once would otherwise pile
/// up in the master's connection.
pub const DIRECT_MAX_BYTES: usize = 256 * 1024;

/// Hands a return to the running master (request/reply on `P.dret.<id>.<jid>`);
/// whether the master answered that it is stored.
async fn hand_to_master(sh: &Shared, client: &async_nats::Client, jid: Jid, bytes: &bytes::Bytes) -> bool {
    let subject = sh.cfg.subjects.direct_ret(&sh.cfg.id, jid);
    hand_over(client, subject, bytes, &sh.direct_paused_until).await
}

/// Sends `bytes`, a sealed return, as a request on `subject` (`P.dret.<id>.<jid>`);
/// whether the master answered [`brine_proto::msg::RETURN_STORED`]. A return over
/// [`DIRECT_MAX_BYTES`] is not sent (it goes through the returns stream), nor is any
/// while `paused_until` (Unix ms) lies ahead. The master may not take it: no master
/// listening, or no answer in time (the master is stopped or too busy, or NATS does
/// not let this minion publish there); after a timeout, `paused_until` is set a while
/// ahead, so that a busy master is not kept busier. Public for the swarm, whose
/// simulated minions do exactly this.
pub async fn hand_over(
    client: &async_nats::Client,
    subject: String,
    bytes: &bytes::Bytes,
    paused_until: &AtomicU64,
) -> bool {
    let now = brine_proto::time::now_ms();
    if bytes.len() > DIRECT_MAX_BYTES || now < paused_until.load(Ordering::Relaxed) {
        return false;
    }
    let request = async_nats::Request::new().payload(bytes.clone()).timeout(Some(DIRECT_TIMEOUT));
    match client.send_request(subject.clone(), request).await {
        Ok(reply) if reply.payload.as_ref() == brine_proto::msg::RETURN_STORED => true,
        Ok(reply) => {
            tracing::debug!(%subject, status = ?reply.status, "the master did not take the return directly");
            false
        }
        Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => false,
        Err(e) => {
            tracing::warn!(%subject, error = %e, pause_s = DIRECT_PAUSE.as_secs(),
                "the master did not take a return directly; sending returns through the stream for a while");
            paused_until.store(now + DIRECT_PAUSE.as_millis() as u64, Ordering::Relaxed);
            false
        }
    }
}

/// The text of a failed call, in Salt's words.
pub fn error_text(fun: &str, err: &CallError) -> String {
    match err {
        CallError::Unknown(_) => err.to_string(),
        CallError::BadArguments { .. } => err.to_string(),
        CallError::Failed(msg) => format!("ERROR: {msg}"),
    }
    .replace("{fun}", fun)
}

async fn run_job(sh: &Arc<Shared>, job: Job) -> Return {
    run_job_listed(sh, job, true).await
}

/// Runs a job; `listed`: registered as running (`saltutil.running`, `find_job`,
/// `kill_job`, heartbeats), which a scheduled run with `jid_include: false` is not.
async fn run_job_listed(sh: &Arc<Shared>, job: Job, listed: bool) -> Return {
    let cancel = CancelFlag::default();
    // Registered before waiting for a worker, so a queued job can be found and killed.
    if listed {
        sh.running.lock().unwrap_or_else(|e| e.into_inner()).insert(
            job.jid,
            RunningJob {
                cancel: cancel.clone(),
                fun: job.fun.clone(),
                arg: job.arg.clone(),
                tgt: job.target.to_string(),
                user: job.user.clone(),
                started_at: brine_proto::time::now_ms(),
            },
        );
    }
    let permit = sh.workers.clone().acquire_owned().await;
    let started_at = brine_proto::time::now_ms();
    let t0 = Instant::now();
    let ctx = Context {
        grains: sh.grains(),
        cancel,
        host: Some(Arc::new(MinionHost(sh.clone()))),
        grains_file: Some(sh.cfg.grains_path()),
        jid: Some(job.jid.to_string()),
        files: sh.files.get().map(|f| f.clone() as Arc<dyn brine_states::files::FileSource>),
        pillar: sh.pillar(),
    };
    let (fun, arg, kwarg) = (job.fun.clone(), job.arg, job.kwarg);
    tracing::info!(jid = %job.jid, fun = %fun, user = %job.user, "running job");
    let executor = sh.executor.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut ctx = ctx;
        // Like Salt, state runs render the pillar afresh.
        if let Some(host) = ctx.host.clone().filter(|_| fun.starts_with("state.")) {
            match host.refresh_pillar() {
                Ok(p) => ctx.pillar = Arc::new(p),
                Err(e) => {
                    return Err(CallError::failed(format!("cannot get this minion's pillar from the master: {e}")))
                }
            }
        }
        executor.call(&fun, &ctx, arg, kwarg)
    })
    .await;
    sh.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&job.jid);
    drop(permit);
    sh.counters.jobs_run.fetch_add(1, Ordering::Relaxed);
    let (ret, retcode) = match result {
        Ok(Ok(out)) => (out.ret, out.retcode),
        Ok(Err(e)) => (Value::String(error_text(&job.fun, &e)), 1),
        Err(e) => (Value::String(format!("The minion function caused an exception: {e}")), 1),
    };
    Return {
        stamp: Stamp::new(job.jid.to_string(), brine_proto::envelope::MAX_TTL),
        jid: job.jid,
        id: sh.cfg.id.clone(),
        fun: job.fun,
        ret,
        retcode,
        success: retcode == 0,
        started_at,
        duration_ms: t0.elapsed().as_millis() as u64,
        schedule: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_direct_return_is_told_from_other_server_errors() {
        // As nats-server words it (and async-nats passes it on).
        let refused = |text: &str| {
            refuses_direct_returns(&async_nats::Event::ServerError(async_nats::ServerError::Other(text.into())))
        };
        assert!(refused("Permissions Violation for Publish to \"brine.dret.web1.20261207000000000000\""));
        assert!(refused("permissions violation for publish to \"fleet.a.dret.x~y.1\""));
        assert!(!refused("Permissions Violation for Publish to \"brine.event.web1.x\""));
        assert!(!refused("Permissions Violation for Subscription to \"brine.dret.>\""));
        assert!(!refused("Authorization Violation"));
        assert!(!refuses_direct_returns(&async_nats::Event::Disconnected));
    }
}
