//! The minion swarm: many simulated minions in one process, each a real participant
//! of the protocol, as load for benchmarks and soak tests.
//!
//! Every simulated minion has its own ed25519 key, enrolls through `P.enroll` with a
//! signed request (and keeps asking while its key is pending, so `brine key accept`
//! works as with real minions), pins the master's key and TLS CA from the signed
//! answer, connects under its own NATS identity (its key as nkey, confined by the
//! master's per-minion permissions), pushes its grains, sends signed heartbeats, and
//! answers jobs: it checks the master's signature, expiry, subject, target and replay,
//! runs the function through the states crate's registry (`brine_states::exec::call`,
//! the path `brine-minion` uses; `state.apply` reads the master's file server through
//! the minion's own hash-checked cache) and hands a signed return to the master
//! directly, or through the JetStream returns stream when the master does not answer,
//! waiting for the acknowledgement.
//!
//! What it leaves out, to fit thousands of minions in one process: the on-disk job
//! ledger of `brine-minion` (accepted JIDs and spooled returns, a synced file per job)
//! is kept in memory, the worker pool is the shared tokio runtime, and the
//! `saltutil.*` functions that manage the minion process itself have no host.

use brine_minion::files::{Ask, RemoteFiles};
use brine_proto::envelope::{open, seal, Envelope, Stamp, MAX_TTL};
use brine_proto::msg::{
    EnrollReply, EnrollRequest, Job, KeyStatus, Presence, Return, Rpc, RpcCall, RpcReply, RpcResult,
};
use brine_proto::target::Facts;
use brine_proto::{Jid, Map, MinionId, Subjects, TargetMatcher, Value};
use brine_states::exec::{CancelFlag, Context};
use ed25519_dalek::{SigningKey, VerifyingKey};
use futures::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How simulated minions reach NATS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    /// One connection per minion under its own nkey identity: what a real fleet does,
    /// and the only mode the embedded NATS (one user per accepted minion) allows.
    PerMinion,
    /// This many connections shared by all minions, without credentials. Only for an
    /// external NATS that does not confine minions by user (`nats.url` on the master);
    /// messages stay signed per minion.
    Shared(usize),
}

impl std::str::FromStr for Connections {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "per-minion" => Ok(Connections::PerMinion),
            _ => match s.strip_prefix("shared:").map(str::parse::<usize>) {
                Some(Ok(n)) if n > 0 => Ok(Connections::Shared(n)),
                _ => Err(format!("{s:?}: use per-minion or shared:N (N ≥ 1 connections)")),
            },
        }
    }
}

/// What the swarm simulates.
#[derive(Debug, Clone)]
pub struct SwarmOpts {
    /// The master's NATS URL (its `data_dir/nats-url`).
    pub url: String,
    /// How many minions.
    pub count: usize,
    /// Ids are `<prefix><index>`, zero-padded to five digits.
    pub id_prefix: String,
    /// The subject prefix of the fleet.
    pub subjects: Subjects,
    /// The master's public key; without it, pinned from the first signed answer.
    pub master_key: Option<VerifyingKey>,
    /// The CA of the master's NATS TLS certificate; without it, pinned from the
    /// signed enrollment answer (as `brine-minion` does).
    pub tls_ca: Option<Vec<u8>>,
    pub connections: Connections,
    /// Minions started per second; `None`: all at once.
    pub join_rate: Option<f64>,
    /// Share of minions (0..1) that wait `slow_delay` before answering each job.
    pub slow: f64,
    pub slow_delay: Duration,
    /// Share of minions (0..1) that take jobs and never answer.
    pub silent: f64,
    /// Share of minions (0..1) that leave (close their connection) every
    /// `churn_every` and come back `churn_down` later.
    pub churn: f64,
    pub churn_every: Duration,
    pub churn_down: Duration,
    /// Heartbeat interval (`presence_interval` of a minion).
    pub presence_interval: Duration,
    /// Where the minions' file caches go (for `state.apply`).
    pub work_dir: PathBuf,
    /// Connections being set up at the same time.
    pub connect_parallelism: usize,
    /// Check the master's signature on every minion's copy of a job. Off by default:
    /// the master seals a job once and sends the same bytes to every minion, and real
    /// minions verify their copy on their own hosts; a swarm that verified each copy
    /// would spend ≈ 50 µs per minion of the cores it shares with the master on work
    /// that is not the master's. Each simulated minion still checks the subject,
    /// expiry, target and replay of its copy.
    pub verify_every_copy: bool,
    /// Hand each return to the master directly first (`P.dret`), as `brine-minion`
    /// does, falling back to the returns stream; `false`: the stream only.
    pub direct_returns: bool,
}

impl SwarmOpts {
    /// Defaults for `count` minions against `url`.
    pub fn new(url: &str, count: usize, work_dir: PathBuf) -> SwarmOpts {
        SwarmOpts {
            url: url.to_string(),
            count,
            id_prefix: "swarm-".into(),
            subjects: Subjects::default(),
            master_key: None,
            tls_ca: None,
            connections: Connections::PerMinion,
            join_rate: None,
            slow: 0.0,
            slow_delay: Duration::from_secs(2),
            silent: 0.0,
            churn: 0.0,
            churn_every: Duration::from_secs(30),
            churn_down: Duration::from_secs(5),
            presence_interval: Duration::from_secs(10),
            work_dir,
            connect_parallelism: 64,
            verify_every_copy: false,
            direct_returns: true,
        }
    }

    /// The id of minion `index`.
    pub fn id(&self, index: usize) -> String {
        format!("{}{index:05}", self.id_prefix)
    }
}

/// Why the swarm could not start.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error("{0:?} is not a valid minion id prefix: {1}")]
    Id(String, brine_proto::IdError),
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("--{name} must be between 0 and 1, not {value}")]
    Fraction { name: &'static str, value: f64 },
}

/// Counters of the whole swarm.
#[derive(Debug, Default)]
pub struct Counters {
    pub enrolled: AtomicUsize,
    pub connected: AtomicUsize,
    pub jobs_received: AtomicU64,
    pub jobs_refused: AtomicU64,
    pub returns_published: AtomicU64,
    pub return_errors: AtomicU64,
    pub connect_errors: AtomicU64,
    pub rejoins: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub enrolled: usize,
    pub connected: usize,
    pub jobs_received: u64,
    pub jobs_refused: u64,
    pub returns_published: u64,
    pub return_errors: u64,
    pub connect_errors: u64,
    pub rejoins: u64,
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "enrolled {} connected {} jobs {} refused {} returns {} return-errors {} connect-errors {} rejoins {}",
            self.enrolled,
            self.connected,
            self.jobs_received,
            self.jobs_refused,
            self.returns_published,
            self.return_errors,
            self.connect_errors,
            self.rejoins
        )
    }
}

/// What every simulated minion shares.
struct Common {
    opts: SwarmOpts,
    master: OnceLock<VerifyingKey>,
    tls_ca: OnceLock<Vec<u8>>,
    counters: Counters,
    connect_slots: Semaphore,
    /// The connections of the shared mode.
    shared: Vec<async_nats::Client>,
    started_at: u64,
    /// Job envelopes whose signature was checked, by their exact bytes (see
    /// [`SwarmOpts::verify_every_copy`]); the last few only.
    verified: Mutex<VecDeque<(bytes::Bytes, Job)>>,
}

/// A running swarm.
pub struct Swarm {
    common: Arc<Common>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What one simulated minion is.
struct Sim {
    id: MinionId,
    index: usize,
    key: SigningKey,
    grains: Arc<Map>,
    slow: bool,
    silent: bool,
    churns: bool,
    /// JIDs accepted, with their expiry (the in-memory replay cache).
    seen: Mutex<HashMap<Jid, u64>>,
    /// Until when (Unix ms) returns skip the direct way, after the master did not
    /// answer one in time (as `brine-minion` does).
    direct_paused_until: AtomicU64,
}

/// Whether `index` falls in the first `fraction` of every hundred-odd minions, spread
/// evenly (minion `i` is picked when `⌊(i+1)·f⌋ > ⌊i·f⌋`), so the same minions are
/// slow or silent on every run.
fn picked(index: usize, fraction: f64) -> bool {
    ((index + 1) as f64 * fraction).floor() > (index as f64 * fraction).floor()
}

fn grains_of(id: &MinionId, index: usize) -> Map {
    let role = ["web", "db", "cache", "worker"][index % 4];
    let json = serde_json::json!({
        "id": id.as_str(),
        "host": id.as_str(),
        "fqdn": id.as_str(),
        "os": "Debian",
        "os_family": "Debian",
        "osrelease": "12",
        "kernel": "Linux",
        "role": role,
        "swarm": true,
        "swarm_index": index,
        "num_cpus": 2,
        "ipv4": [format!("10.{}.{}.{}", (index >> 16) & 255, (index >> 8) & 255, index & 255)],
    });
    match json {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Swarm {
    /// Creates the minions' keys and starts them (at the join rate, if any); returns
    /// at once: follow [`Swarm::snapshot`] or [`Swarm::wait_connected`].
    pub async fn start(opts: SwarmOpts) -> Result<Swarm, SwarmError> {
        for (name, value) in [("slow", opts.slow), ("silent", opts.silent), ("churn", opts.churn)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(SwarmError::Fraction { name, value });
            }
        }
        MinionId::new(opts.id(0)).map_err(|e| SwarmError::Id(opts.id_prefix.clone(), e))?;
        let mut shared = Vec::new();
        if let Connections::Shared(n) = opts.connections {
            for i in 0..n {
                let client = async_nats::ConnectOptions::new()
                    .name(format!("brine-swarm shared {i}"))
                    .max_reconnects(None)
                    .connect(opts.url.as_str())
                    .await
                    .map_err(|e| SwarmError::Connect { url: opts.url.clone(), reason: e.to_string() })?;
                shared.push(client);
            }
        }
        let master = OnceLock::new();
        if let Some(k) = opts.master_key {
            let _ = master.set(k);
        }
        let tls_ca = OnceLock::new();
        if let Some(ca) = &opts.tls_ca {
            let _ = tls_ca.set(ca.clone());
        }
        let common = Arc::new(Common {
            connect_slots: Semaphore::new(opts.connect_parallelism.max(1)),
            opts,
            master,
            tls_ca,
            counters: Counters::default(),
            shared,
            started_at: brine_proto::time::now_ms(),
            verified: Mutex::new(VecDeque::new()),
        });
        let enroller = Enroller::connect(&common).await?;
        let mut tasks = Vec::with_capacity(common.opts.count);
        let t0 = tokio::time::Instant::now();
        for index in 0..common.opts.count {
            let id =
                MinionId::new(common.opts.id(index)).map_err(|e| SwarmError::Id(common.opts.id_prefix.clone(), e))?;
            let o = &common.opts;
            let sim = Arc::new(Sim {
                grains: Arc::new(grains_of(&id, index)),
                id,
                index,
                key: brine_proto::keys::generate_key(),
                slow: picked(index, o.slow),
                silent: picked(index, o.silent),
                churns: picked(index, o.churn),
                seen: Mutex::new(HashMap::new()),
                direct_paused_until: AtomicU64::new(0),
            });
            let start_at = o.join_rate.map(|rate| t0 + Duration::from_secs_f64(index as f64 / rate.max(0.001)));
            let (common, enroller) = (common.clone(), enroller.clone());
            tasks.push(tokio::spawn(async move {
                if let Some(at) = start_at {
                    tokio::time::sleep_until(at).await;
                }
                live(common, enroller, sim).await
            }));
        }
        Ok(Swarm { common, tasks })
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let c = &self.common.counters;
        Snapshot {
            enrolled: c.enrolled.load(Ordering::Relaxed),
            connected: c.connected.load(Ordering::Relaxed),
            jobs_received: c.jobs_received.load(Ordering::Relaxed),
            jobs_refused: c.jobs_refused.load(Ordering::Relaxed),
            returns_published: c.returns_published.load(Ordering::Relaxed),
            return_errors: c.return_errors.load(Ordering::Relaxed),
            connect_errors: c.connect_errors.load(Ordering::Relaxed),
            rejoins: c.rejoins.load(Ordering::Relaxed),
        }
    }

    /// Waits until `n` minions are connected and taking jobs, up to `timeout`.
    pub async fn wait_connected(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.common.counters.connected.load(Ordering::Relaxed) < n {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// The ids of all simulated minions.
    pub fn ids(&self) -> Vec<String> {
        (0..self.common.opts.count).map(|i| self.common.opts.id(i)).collect()
    }

    /// Stops every minion (connections close as their tasks end).
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// The connection enrollment requests go through: the `brine-enroll` identity is the
/// same for every not-yet-accepted minion, so the swarm shares a few of them.
#[derive(Clone)]
struct Enroller {
    clients: Arc<Vec<async_nats::Client>>,
}

impl Enroller {
    async fn connect(common: &Common) -> Result<Enroller, SwarmError> {
        let o = &common.opts;
        let n = (o.count / 2000).clamp(1, 8);
        let mut clients = Vec::with_capacity(n);
        for i in 0..n {
            // Like brine-minion: TLS if the server offers it, the certificate only
            // trusted once the master's signed answer names its CA.
            let mut opts = async_nats::ConnectOptions::new()
                .custom_inbox_prefix(o.subjects.enroll_inbox())
                .name(format!("brine-swarm enroll {i}"))
                .request_timeout(Some(Duration::from_secs(30)))
                .max_reconnects(None);
            if let Ok((config, _)) = brine_proto::tls::capture_config() {
                opts = opts.tls_client_config(config);
            }
            let client = opts
                .connect(o.url.as_str())
                .await
                .map_err(|e| SwarmError::Connect { url: o.url.clone(), reason: e.to_string() })?;
            clients.push(client);
        }
        Ok(Enroller { clients: Arc::new(clients) })
    }

    /// Asks once; the status the master's signed answer gives.
    async fn ask(&self, common: &Common, sim: &Sim) -> Result<KeyStatus, String> {
        let req = EnrollRequest {
            stamp: Stamp::random(Duration::from_secs(60)),
            id: sim.id.clone(),
            key: sim.key.verifying_key().to_bytes(),
            version: brine_proto::VERSION.into(),
        };
        let bytes = seal(&req, &sim.key).map_err(|e| e.to_string())?;
        let client = &self.clients[sim.index % self.clients.len()];
        let answer = client.request(common.opts.subjects.enroll(), bytes.into()).await.map_err(|e| e.to_string())?;
        let env = Envelope::decode(&answer.payload).map_err(|e| e.to_string())?;
        let signer = VerifyingKey::from_bytes(&env.signer).map_err(|_| "bad signer key".to_string())?;
        // Pinned at first contact, like a minion without master_finger.
        let master = *common.master.get_or_init(|| signer);
        if master != signer {
            return Err("the enrollment answer is signed by another key than the master's".into());
        }
        let reply: EnrollReply =
            open(&answer.payload, &master, brine_proto::time::now_ms()).map_err(|e| e.to_string())?;
        if reply.request != req.stamp.id || reply.id != req.id {
            return Err("answer to another request".into());
        }
        if let Some(ca) = reply.tls_ca {
            let _ = common.tls_ca.set(ca);
        }
        Ok(reply.status)
    }
}

/// Asks until the key is accepted.
async fn enroll(common: &Common, enroller: &Enroller, sim: &Sim) {
    let mut wait = Duration::from_millis(200);
    loop {
        match enroller.ask(common, sim).await {
            Ok(KeyStatus::Accepted) => return,
            Ok(status) => tracing::debug!(id = %sim.id, ?status, "key not accepted yet"),
            Err(e) => tracing::warn!(id = %sim.id, error = %e, "enrollment failed; retrying"),
        }
        tokio::time::sleep(jitter(wait)).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = getrandom::getrandom(&mut b);
    d.mul_f64(0.8 + 0.4 * (u16::from_le_bytes(b) as f64 / u16::MAX as f64))
}

/// One simulated minion's life: enroll, then sessions (with pauses if it churns).
async fn live(common: Arc<Common>, enroller: Enroller, sim: Arc<Sim>) {
    enroll(&common, &enroller, &sim).await;
    common.counters.enrolled.fetch_add(1, Ordering::Relaxed);
    let mut wait = Duration::from_millis(200);
    loop {
        let client = match connect(&common, &sim).await {
            Ok(c) => c,
            Err(e) => {
                // The server may not have reloaded its users yet: ask again, as a
                // minion does after an authorization error.
                common.counters.connect_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(id = %sim.id, error = %e, "cannot connect; retrying");
                tokio::time::sleep(jitter(wait)).await;
                wait = (wait * 2).min(Duration::from_secs(5));
                enroll(&common, &enroller, &sim).await;
                continue;
            }
        };
        wait = Duration::from_millis(200);
        let left = session(&common, &sim, client).await;
        if !left {
            return;
        }
        common.counters.rejoins.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(jitter(common.opts.churn_down)).await;
    }
}

async fn connect(common: &Common, sim: &Sim) -> Result<async_nats::Client, String> {
    let o = &common.opts;
    if let Connections::Shared(_) = o.connections {
        return Ok(common.shared[sim.index % common.shared.len()].clone());
    }
    let _slot = common.connect_slots.acquire().await.map_err(|e| e.to_string())?;
    let seed = brine_master::nats::nkey_seed(&sim.key)?;
    let mut opts = async_nats::ConnectOptions::with_nkey(seed)
        .custom_inbox_prefix(o.subjects.minion_inbox(&sim.id))
        .name(format!("brine-swarm {}", sim.id))
        .connection_timeout(Duration::from_secs(10))
        .request_timeout(Some(Duration::from_secs(60)))
        .max_reconnects(None);
    if let Some(ca) = common.tls_ca.get() {
        let roots = [rustls::pki_types::CertificateDer::from(ca.clone())];
        let config = brine_proto::tls::client_config(&roots).map_err(|e| e.to_string())?;
        opts = opts.tls_client_config(config).require_tls(true);
    }
    opts.connect(o.url.as_str()).await.map_err(|e| e.to_string())
}

/// Serves jobs until the minion leaves (true: it churned and comes back) or the task
/// is aborted.
async fn session(common: &Arc<Common>, sim: &Arc<Sim>, client: async_nats::Client) -> bool {
    let o = &common.opts;
    let mut jobs = match client.subscribe(o.subjects.jobs_of(&sim.id)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(id = %sim.id, error = %e, "cannot subscribe to jobs");
            return true;
        }
    };
    let _ = client.flush().await;
    let js = async_nats::jetstream::new(client.clone());
    if let Err(e) = rpc(common, sim, &client, RpcCall::PutGrains { grains: (*sim.grains).clone() }).await {
        tracing::warn!(id = %sim.id, error = %e, "grains not delivered");
    }
    common.counters.connected.fetch_add(1, Ordering::Relaxed);
    let _connected = Decrement(&common.counters.connected);
    // Heartbeats start at a random point of the interval, as minions started at
    // different times do.
    let first = tokio::time::Instant::now() + jitter(o.presence_interval / 2);
    let mut tick = tokio::time::interval_at(first, o.presence_interval);
    let leave_at = if sim.churns && !o.churn_every.is_zero() {
        tokio::time::Instant::now() + jitter(o.churn_every)
    } else {
        tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
    };
    publish_presence(common, sim, &client).await;
    loop {
        tokio::select! {
            msg = jobs.next() => match msg {
                Some(msg) => {
                    let (common, sim, client, js) = (common.clone(), sim.clone(), client.clone(), js.clone());
                    tokio::spawn(async move { handle_job(&common, &sim, &client, &js, msg).await });
                }
                None => return true,
            },
            _ = tick.tick() => publish_presence(common, sim, &client).await,
            () = tokio::time::sleep_until(leave_at) => {
                // Shared connections stay; the minion's subscription goes.
                let _ = jobs.unsubscribe().await;
                return true;
            }
        }
    }
}

/// Decrements a gauge when dropped (the session ended, however).
struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn publish_presence(common: &Common, sim: &Sim, client: &async_nats::Client) {
    let running = Vec::new();
    let p = Presence {
        stamp: Stamp::random(common.opts.presence_interval * 3),
        id: sim.id.clone(),
        version: brine_proto::VERSION.into(),
        started_at: common.started_at,
        running,
    };
    if let Ok(bytes) = seal(&p, &sim.key) {
        let _ = client.publish(common.opts.subjects.presence(&sim.id), bytes.into()).await;
    }
}

/// Sends a signed request to the master and returns its verified answer.
async fn rpc(common: &Common, sim: &Sim, client: &async_nats::Client, call: RpcCall) -> Result<RpcResult, String> {
    let o = &common.opts;
    let rpc = Rpc { stamp: Stamp::random(Duration::from_secs(60)), id: sim.id.clone(), call };
    let subject = o.subjects.rpc(&sim.id, rpc.call.op());
    let bytes = seal(&rpc, &sim.key).map_err(|e| e.to_string())?;
    let answer = client.request(subject, bytes.into()).await.map_err(|e| e.to_string())?;
    let master = common.master.get().ok_or("no pinned master key")?;
    let reply: RpcReply = open(&answer.payload, master, brine_proto::time::now_ms()).map_err(|e| e.to_string())?;
    if reply.request != rpc.stamp.id {
        return Err("the master answered another request".into());
    }
    Ok(reply.result)
}

fn refuse(common: &Common, sim: &Sim, why: &str) {
    common.counters.jobs_refused.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(id = %sim.id, "refused a job: {why}");
}

/// Opens a job envelope: its signature checked once for all minions that got the
/// same bytes (unless `verify_every_copy`), its expiry checked every time.
fn open_job(common: &Common, master: &VerifyingKey, payload: &bytes::Bytes, now: u64) -> Result<Job, String> {
    const KEEP: usize = 16;
    if !common.opts.verify_every_copy {
        let cache = common.verified.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, job)) = cache.iter().find(|(bytes, _)| bytes == payload) {
            if job.stamp.expires_at < now {
                return Err(format!("expired at {}", job.stamp.expires_at));
            }
            return Ok(job.clone());
        }
    }
    let job: Job = open(payload, master, now).map_err(|e| e.to_string())?;
    if !common.opts.verify_every_copy {
        let mut cache = common.verified.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() == KEEP {
            cache.pop_front();
        }
        cache.push_back((payload.clone(), job.clone()));
    }
    Ok(job)
}

/// Checks a job as `brine-minion` does, runs it and publishes the signed return.
async fn handle_job(
    common: &Arc<Common>,
    sim: &Arc<Sim>,
    client: &async_nats::Client,
    js: &async_nats::jetstream::Context,
    msg: async_nats::Message,
) {
    common.counters.jobs_received.fetch_add(1, Ordering::Relaxed);
    let now = brine_proto::time::now_ms();
    let Some(master) = common.master.get() else { return refuse(common, sim, "no pinned master key") };
    let job = match open_job(common, master, &msg.payload, now) {
        Ok(j) => j,
        Err(e) => return refuse(common, sim, &e),
    };
    let o = &common.opts;
    if msg.subject.as_str() != o.subjects.job(&sim.id, job.jid) || job.stamp.id != job.jid.to_string() {
        return refuse(common, sim, "its subject does not match its JID");
    }
    let facts = Facts { id: sim.id.as_str(), grains: Some(&sim.grains), pillar: None };
    match TargetMatcher::compile(&job.target) {
        Ok(m) if m.matches(&facts) => {}
        Ok(_) => return refuse(common, sim, &format!("target {} does not match", job.target)),
        Err(e) => return refuse(common, sim, &format!("bad target: {e}")),
    }
    {
        let mut seen = sim.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, expires| *expires > now);
        if seen.insert(job.jid, job.stamp.expires_at).is_some() {
            drop(seen);
            return refuse(common, sim, "replayed");
        }
    }
    if sim.silent {
        return;
    }
    if sim.slow {
        tokio::time::sleep(o.slow_delay).await;
    }
    let ret = run(common, sim, client, job).await;
    let bytes = match seal(&ret, &sim.key) {
        Ok(b) => bytes::Bytes::from(b),
        Err(e) => return tracing::error!(id = %sim.id, error = %e, "cannot seal the return"),
    };
    let direct = o.subjects.direct_ret(&sim.id, ret.jid);
    if o.direct_returns && brine_minion::minion::hand_over(client, direct, &bytes, &sim.direct_paused_until).await {
        common.counters.returns_published.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let subject = o.subjects.ret(&sim.id, ret.jid);
    let msg_id = format!("{}.{}", sim.id.token(), ret.jid);
    for attempt in 0..5u32 {
        let publish =
            async_nats::jetstream::message::PublishMessage::build().payload(bytes.clone()).message_id(msg_id.as_str());
        let acked = match js.send_publish(subject.clone(), publish).await {
            Ok(ack) => matches!(tokio::time::timeout(Duration::from_secs(10), ack).await, Ok(Ok(_))),
            Err(_) => false,
        };
        if acked {
            common.counters.returns_published.fetch_add(1, Ordering::Relaxed);
            return;
        }
        tokio::time::sleep(jitter(Duration::from_millis(500) * 2u32.pow(attempt))).await;
    }
    common.counters.return_errors.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(id = %sim.id, jid = %ret.jid, "return not acknowledged after 5 attempts");
}

/// Functions cheap enough to run on the async threads (no I/O, no blocking).
const INLINE: &[&str] = &["test.ping", "test.echo", "test.true", "test.false", "test.version"];

async fn run(common: &Arc<Common>, sim: &Arc<Sim>, client: &async_nats::Client, job: Job) -> Return {
    let started_at = brine_proto::time::now_ms();
    let t0 = Instant::now();
    let mut ctx = Context {
        grains: sim.grains.clone(),
        cancel: CancelFlag::default(),
        host: None,
        grains_file: None,
        files: None,
        pillar: Arc::new(Map::new()),
        jid: Some(job.jid.to_string()),
    };
    let (fun, arg, kwarg) = (job.fun.clone(), job.arg, job.kwarg);
    let result = if INLINE.contains(&fun.as_str()) {
        Ok(brine_states::exec::call(&fun, &ctx, arg, kwarg))
    } else {
        if fun.starts_with("state.") || fun.starts_with("cp.") {
            ctx.files = Some(files_of(common, sim, client) as Arc<dyn brine_states::files::FileSource>);
            // Like a minion, state runs render the pillar afresh.
            if let Ok(RpcResult::Pillar { pillar, .. }) =
                rpc(common, sim, client, RpcCall::Pillar { grains: (*sim.grains).clone() }).await
            {
                ctx.pillar = Arc::new(pillar);
            }
        }
        let f = fun.clone();
        tokio::task::spawn_blocking(move || brine_states::exec::call(&f, &ctx, arg, kwarg)).await
    };
    let (ret, retcode) = match result {
        Ok(Ok(out)) => (out.ret, out.retcode),
        Ok(Err(e)) => (Value::String(brine_minion::minion::error_text(&fun, &e)), 1),
        Err(e) => (Value::String(format!("The minion function caused an exception: {e}")), 1),
    };
    Return {
        stamp: Stamp::new(job.jid.to_string(), MAX_TTL),
        jid: job.jid,
        id: sim.id.clone(),
        fun,
        ret,
        retcode,
        success: retcode == 0,
        started_at,
        duration_ms: t0.elapsed().as_millis() as u64,
        schedule: None,
    }
}

/// The minion's view of the master's file server, through its own cache directory
/// (made per job: the session's connection may change when the minion churns).
fn files_of(common: &Arc<Common>, sim: &Arc<Sim>, client: &async_nats::Client) -> Arc<RemoteFiles> {
    let (c, sim2, client) = (common.clone(), Arc::downgrade(sim), client.clone());
    let runtime = tokio::runtime::Handle::current();
    let ask: Ask = Arc::new(move |call| {
        let sim = sim2.upgrade().ok_or("the minion stopped")?;
        runtime.block_on(rpc(&c, &sim, &client, call))
    });
    Arc::new(RemoteFiles::new(ask, &common.opts.work_dir.join(sim.id.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_pick_evenly() {
        let n = |f: f64| (0..1000).filter(|i| picked(*i, f)).count();
        assert_eq!(n(0.0), 0);
        assert_eq!(n(0.1), 100);
        assert_eq!(n(0.25), 250);
        assert_eq!(n(1.0), 1000);
    }

    fn common(verify_every_copy: bool) -> Common {
        let mut opts = SwarmOpts::new("nats://127.0.0.1:1", 1, PathBuf::from("/nonexistent"));
        opts.verify_every_copy = verify_every_copy;
        Common {
            connect_slots: Semaphore::new(1),
            opts,
            master: OnceLock::new(),
            tls_ca: OnceLock::new(),
            counters: Counters::default(),
            shared: Vec::new(),
            started_at: 0,
            verified: Mutex::new(VecDeque::new()),
        }
    }

    fn job(jid: u64, issued_at: u64, expires_at: u64) -> Job {
        Job {
            stamp: Stamp { id: jid.to_string(), issued_at, expires_at },
            jid: Jid::from_micros(jid),
            target: brine_proto::Target::Glob("*".into()),
            fun: "test.ping".into(),
            arg: Vec::new(),
            kwarg: Map::new(),
            user: "admin".into(),
            queued: false,
        }
    }

    #[test]
    fn a_job_checked_once_still_refuses_changed_forged_and_expired_copies() {
        let master = brine_proto::keys::generate_key();
        let rogue = brine_proto::keys::generate_key();
        let now = brine_proto::time::now_ms();
        for every in [false, true] {
            let c = common(every);
            let good = bytes::Bytes::from(seal(&job(1, now, now + 60_000), &master).unwrap());
            let key = master.verifying_key();
            assert_eq!(open_job(&c, &key, &good, now).unwrap().jid, Jid::from_micros(1));
            // Again: from the cache (unless every copy is checked), same answer.
            assert_eq!(open_job(&c, &key, &good, now).unwrap().jid, Jid::from_micros(1));
            assert_eq!(c.verified.lock().unwrap().len(), usize::from(!every));
            // One bit of the signature changed.
            let mut bad = good.to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(open_job(&c, &key, &bytes::Bytes::from(bad), now).is_err());
            // The same job signed by another key.
            let forged = bytes::Bytes::from(seal(&job(1, now, now + 60_000), &rogue).unwrap());
            assert!(open_job(&c, &key, &forged, now).is_err());
            // The genuine bytes once they have expired.
            assert!(open_job(&c, &key, &good, now + 61_000).unwrap_err().contains("expired"), "{every}");
        }
    }

    #[test]
    fn connection_modes_parse() {
        assert_eq!("per-minion".parse::<Connections>(), Ok(Connections::PerMinion));
        assert_eq!("shared:4".parse::<Connections>(), Ok(Connections::Shared(4)));
        assert!("shared:0".parse::<Connections>().is_err());
        assert!("many".parse::<Connections>().is_err());
    }
}
