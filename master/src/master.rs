//! The running master: opens the store and keys, brings up NATS (embedded or
//! external), and runs the services — enrollment, operator requests, return
//! ingestion, presence — as tasks over one shared state.

use crate::config::{ExternalAuth, MasterConfig, NatsMode};
use crate::keys::Registry;
use crate::nats::{EmbeddedNats, Layout, Users};
use crate::presence::Presence;
use crate::stats::{Stats, StatsSnapshot};
use crate::store::{JobCache, Store, StoreError};
use brine_proto::envelope::{seal, seal_tree, Stamp};
use brine_proto::msg::Event;
use brine_proto::{Jid, JidGenerator, MinionId, Value};
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How long the master's events are valid.
pub const EVENT_TTL: Duration = Duration::from_secs(600);

/// Why the master could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Key(#[from] brine_proto::keys::KeyError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Nats(#[from] crate::nats::NatsError),
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot set up JetStream: {0}")]
    JetStream(String),
    #[error("cannot write {path}: {source}")]
    Write { path: std::path::PathBuf, source: std::io::Error },
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsSetupError),
    #[error("operators.{name}.key: {reason}")]
    OperatorKey { name: String, reason: String },
}

/// A job the master is waiting on: who was targeted and who follows its returns.
pub(crate) struct ActiveJob {
    pub targets: HashSet<MinionId>,
    /// (subject, request id) of operators streaming its returns.
    pub watchers: Vec<(String, String)>,
    pub remaining: usize,
    pub since: Instant,
}

/// State shared by the master's services.
pub struct Shared {
    pub cfg: MasterConfig,
    pub key: SigningKey,
    /// Operators by public key: name (`admin`, or a name under `[operators]`).
    pub operators: HashMap<[u8; 32], String>,
    /// Every operator request, accepted or refused.
    pub audit: crate::audit::AuditLog,
    pub registry: Registry,
    pub grains: crate::grains::GrainsCache,
    /// The pillar last rendered for each minion, for pillar targets.
    pub pillar: crate::grains::GrainsCache,
    pub store: Store,
    pub jids: JidGenerator,
    pub client: async_nats::Client,
    /// The event bus's own connection: the master's subscription to `P.event.>` and
    /// its own events. NATS does not echo what a connection publishes back to its own
    /// subscriptions (`no_echo`), so the master's events — delivered in process as
    /// they are made — do not come back to be received a second time.
    pub bus_client: async_nats::Client,
    /// The connection returns handed over directly arrive on (and are answered on):
    /// a burst of them that the master cannot read fast enough makes the server drop
    /// this connection as a slow consumer, not the one operators and minions' requests
    /// use (the minions then send those returns through the stream).
    pub returns_client: async_nats::Client,
    pub embedded: Option<EmbeddedNats>,
    pub presence: Presence,
    pub queue: crate::queue::JobQueue,
    /// The CA of the NATS server's TLS certificate, sent to enrolling minions.
    pub tls_ca: Option<Vec<u8>>,
    pub stats: Stats,
    /// Verified events for in-process subscribers; see [`Shared::subscribe`].
    pub events: crate::events::EventBus,
    /// Orchestrations running now, with their pause/abort switches.
    pub orchestrations: crate::orchestrate::Running,
    pub(crate) active: Mutex<HashMap<Jid, ActiveJob>>,
    pub(crate) ctl_replay: Mutex<brine_proto::replay::ReplayWindow>,
    /// Coalesces reloads of the embedded server's users (see [`Shared::sync_nats_users`]).
    pub(crate) user_reloads: UserReloads,
}

/// Reload bookkeeping: how many reloads were asked for, and (under the lock, held
/// while one runs) how many of those requests the last finished reload covers.
#[derive(Default)]
pub(crate) struct UserReloads {
    requested: std::sync::atomic::AtomicU64,
    covered: tokio::sync::Mutex<u64>,
}

impl Shared {
    /// Every event on the bus from now on — the master's own and the minions' —
    /// after the master verified it (signature by the source's key, stamp, replay,
    /// tag space; see [`crate::events`]). For the reactor and for anything on the
    /// master that waits for an event (an orchestration's `wait_for_event`):
    ///
    /// ```ignore
    /// let mut events = shared.subscribe();
    /// while let Ok(ev) = events.recv().await {
    ///     if ev.tag == "myapp/deploy/done" { break; }
    /// }
    /// ```
    ///
    /// A receiver that falls more than a few thousand events behind gets
    /// `RecvError::Lagged(n)` once and then continues with newer events.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<crate::events::BusEvent>> {
        self.events.subscribe()
    }

    /// Publishes an event signed by the master on `P.event.master.<tag>`.
    pub async fn emit(&self, tag: &str, data: Value) {
        self.emit_at_depth(tag, data, 0).await
    }

    /// Publishes an event of job `jid` (`brine/job/<jid>/…`), carrying the reaction
    /// depth of the job if a reaction started it.
    pub async fn emit_for_job(&self, jid: Jid, tag: &str, data: Value) {
        self.emit_at_depth(tag, data, self.events.job_depth(jid)).await
    }

    /// Publishes an event signed by the master, caused by a reaction chain `depth`
    /// deep (0: not caused by a reaction).
    pub async fn emit_at_depth(&self, tag: &str, data: Value, depth: u32) {
        let mut event = Event::new(Stamp::random(EVENT_TTL), tag, data);
        event.depth = depth;
        match seal(&event, &self.key) {
            Ok(bytes) => self.publish_own(event, bytes).await,
            Err(e) => tracing::warn!(tag, error = %e, "cannot seal event"),
        }
    }

    /// Publishes many events signed by the master at once — one signature per hash
    /// tree of events ([`seal_tree`]) instead of one per event. Each is still an event
    /// of its own, on its own subject, checkable on its own: what ingestion uses for
    /// the one `brine/job/<jid>/ret/<id>` event per return.
    pub async fn emit_many(&self, events: Vec<Event>) {
        let sealed = seal_tree(&events, &self.key);
        for (event, bytes) in events.into_iter().zip(sealed) {
            match bytes {
                Ok(bytes) => self.publish_own(event, bytes).await,
                Err(e) => tracing::warn!(tag = %event.tag, error = %e, "cannot seal event"),
            }
        }
    }

    /// Hands one of the master's own sealed events to the in-process subscribers and
    /// publishes it on the bus connection (which NATS does not echo back to us).
    async fn publish_own(&self, event: Event, bytes: Vec<u8>) {
        Stats::bump(&self.stats.events_received);
        let subject = self.cfg.subjects.event(crate::events::MASTER, &event.tag);
        if let Err(e) = self.bus_client.publish(subject, bytes.into()).await {
            tracing::warn!(tag = %event.tag, error = %e, "cannot publish event");
        }
        self.events.deliver_own(event, brine_proto::time::now_ms());
    }

    /// Rewrites the embedded server's users from the registry and reloads it; returns
    /// once a reload that includes every registry change made before the call is done.
    ///
    /// Calls made while a reload runs wait for it and are then covered together by
    /// one more: a fleet of 10 000 minions enrolling at once costs a few dozen
    /// renders and reloads of the server's config, not 10 000 (each of which renders
    /// every user).
    pub async fn sync_nats_users(&self) {
        use std::sync::atomic::Ordering;
        let Some(embedded) = &self.embedded else {
            return;
        };
        let ticket = self.user_reloads.requested.fetch_add(1, Ordering::AcqRel) + 1;
        let mut covered = self.user_reloads.covered.lock().await;
        if *covered >= ticket {
            return;
        }
        // Every request counted so far came after its registry change, so the
        // users rendered now include them all.
        let upto = self.user_reloads.requested.load(Ordering::Acquire);
        let t0 = Instant::now();
        let section = self.users_section();
        match embedded.reload(section).await {
            Ok(()) => {
                tracing::debug!(requests = upto - *covered, took = ?t0.elapsed(), "reloaded the embedded NATS users");
                *covered = upto;
            }
            Err(e) => tracing::error!(error = %e, "cannot reload the embedded NATS users"),
        }
    }

    fn users_section(&self) -> String {
        let users = Users {
            master: self.key.verifying_key(),
            operators: operator_users(&self.operators),
            bus_readers: bus_readers(&self.cfg),
            minions: self.registry.accepted(),
        };
        crate::nats::render_users(&users, &self.cfg.subjects)
    }

    /// Deletes jobs older than `keep_jobs` from the job cache.
    pub async fn prune_jobs(self: &Arc<Self>) {
        self.prune_jobs_at(brine_proto::time::now_micros()).await
    }

    /// Deletes jobs older than `keep_jobs` before `now_micros`.
    pub async fn prune_jobs_at(self: &Arc<Self>, now_micros: u64) {
        let cutoff = now_micros.saturating_sub(self.cfg.keep_jobs.as_micros() as u64);
        let me = self.clone();
        let before = Jid::from_micros(cutoff);
        match tokio::task::spawn_blocking(move || {
            // A day of slack: the index is keyed by the minions' clocks.
            let _ = crate::ingest::prune_scheduled(&me, Jid::from_micros(cutoff.saturating_sub(86_400_000_000)));
            me.store.prune(before)
        })
        .await
        {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(jobs = n, "pruned jobs older than keep_jobs"),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot prune the job cache"),
            Err(e) => tracing::error!(error = %e, "job cache pruning failed"),
        }
    }

    /// Forgets active jobs nobody can still be waiting for.
    pub(crate) fn sweep_active(&self) {
        let max_age = self.cfg.job_ttl + Duration::from_secs(60);
        self.active.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, j| j.since.elapsed() < max_age);
    }
}

/// Operators as NATS users, sorted by name so the server config is stable.
fn operator_users(operators: &HashMap<[u8; 32], String>) -> Vec<(String, VerifyingKey)> {
    let mut users: Vec<(String, VerifyingKey)> =
        operators.iter().filter_map(|(k, name)| VerifyingKey::from_bytes(k).ok().map(|k| (name.clone(), k))).collect();
    users.sort_by(|a, b| a.0.cmp(&b.0));
    users
}

/// Operators whose NATS user may follow the event bus: the admin, and those who may
/// read the job cache (the bus carries every job's arguments and returns).
fn bus_readers(cfg: &MasterConfig) -> Vec<String> {
    std::iter::once(crate::acl::ADMIN.to_string())
        .chain(cfg.operators.values().filter(|o| o.jobs).map(|o| o.name.clone()))
        .collect()
}

/// The admin and the configured operators by key; a configured key must not be the
/// master's, the admin's or an accepted minion's (one key, one identity).
fn operators_by_key(
    cfg: &MasterConfig,
    master: &VerifyingKey,
    admin: &VerifyingKey,
    registry: &Registry,
) -> Result<HashMap<[u8; 32], String>, StartError> {
    let mut operators = HashMap::new();
    operators.insert(admin.to_bytes(), crate::acl::ADMIN.to_string());
    let minions = registry.accepted();
    for (name, op) in &cfg.operators {
        let taken = if op.key == *master {
            Some("the master's own key".to_string())
        } else if op.key == *admin {
            Some(format!("the admin operator's key ({})", cfg.admin_key_path().display()))
        } else {
            minions.iter().find(|(_, k)| *k == op.key).map(|(id, _)| format!("the key of minion {id}"))
        };
        if let Some(what) = taken {
            return Err(StartError::OperatorKey {
                name: name.clone(),
                reason: format!("is {what}; give the operator its own key"),
            });
        }
        operators.insert(op.key.to_bytes(), name.clone());
    }
    Ok(operators)
}

/// A running master.
pub struct Master {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

/// Requires TLS trusting `ca` (DER), when there is one.
pub fn with_tls(opts: async_nats::ConnectOptions, ca: Option<&[u8]>) -> Result<async_nats::ConnectOptions, StartError> {
    let Some(ca) = ca else { return Ok(opts) };
    let roots = [rustls::pki_types::CertificateDer::from(ca.to_vec())];
    let config = brine_proto::tls::client_config(&roots).map_err(|e| StartError::JetStream(e.to_string()))?;
    Ok(opts.tls_client_config(config).require_tls(true))
}

async fn connect(url: &str, opts: async_nats::ConnectOptions) -> Result<async_nats::Client, StartError> {
    opts.name("brine-master")
        .max_reconnects(None)
        .connect(url)
        .await
        .map_err(|e| StartError::Connect { url: url.to_string(), reason: e.to_string() })
}

/// The event bus's connection (see [`Shared::bus_client`]).
async fn connect_bus(url: &str, opts: async_nats::ConnectOptions) -> Result<async_nats::Client, StartError> {
    connect_as(url, opts.no_echo(), "brine-master bus").await
}

/// The direct returns' connection (see [`Shared::returns_client`]).
async fn connect_returns(url: &str, opts: async_nats::ConnectOptions) -> Result<async_nats::Client, StartError> {
    connect_as(url, opts, "brine-master returns").await
}

async fn connect_as(url: &str, opts: async_nats::ConnectOptions, name: &str) -> Result<async_nats::Client, StartError> {
    opts.name(name)
        .max_reconnects(None)
        .connect(url)
        .await
        .map_err(|e| StartError::Connect { url: url.to_string(), reason: e.to_string() })
}

/// Connect options for an external NATS, with its credentials and CA.
async fn external_options(
    url: &str,
    auth: &ExternalAuth,
    tls_ca: Option<&[u8]>,
) -> Result<async_nats::ConnectOptions, StartError> {
    let opts = match auth {
        ExternalAuth::None => async_nats::ConnectOptions::new(),
        ExternalAuth::UserPassword { user, password } => {
            async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
        ExternalAuth::CredsFile(path) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| StartError::Connect { url: url.to_string(), reason: e.to_string() })?,
    };
    with_tls(opts, tls_ca)
}

impl Master {
    /// Starts the master and all its services.
    pub async fn start(cfg: MasterConfig) -> Result<Master, StartError> {
        brine_proto::keys::create_private_dir(&cfg.data_dir)
            .map_err(|source| StartError::Write { path: cfg.data_dir.clone(), source })?;
        let (key, created) = brine_proto::keys::load_or_create_key(&cfg.master_key_path())?;
        if created {
            tracing::info!(path = %cfg.master_key_path().display(), "created the master key");
        }
        brine_proto::keys::write_public_key(&cfg.data_dir.join("master.pub"), &key.verifying_key())?;
        let (admin, _) = brine_proto::keys::load_or_create_key(&cfg.admin_key_path())?;

        let store = Store::open(&cfg.db_path())?;
        crate::orchestrate::close_interrupted(&store)?;
        let registry = Registry::open(&store)?;
        let operators = operators_by_key(&cfg, &key.verifying_key(), &admin.verifying_key(), &registry)?;
        let audit = crate::audit::AuditLog::open(cfg.audit_log_path());
        let grains = crate::grains::GrainsCache::open(&store)?;
        let pillar = crate::grains::GrainsCache::open_tree(&store, "pillar")?;
        let jids = JidGenerator::starting_after(store.latest_jid()?);

        let (client, bus_client, returns_client, embedded, tls_ca) = match &cfg.nats {
            NatsMode::Embedded { listen, server_bin, tls } => {
                let tls = match tls {
                    Some(extra) => Some(crate::tls::ensure(&cfg.tls_dir(), &crate::tls::server_names(extra))?),
                    None => None,
                };
                let tls_ca = tls.as_ref().map(|t| t.ca_der.clone());
                let layout = Layout { dir: cfg.nats_dir(), bin: server_bin.clone(), listen: *listen, tls };
                let users = Users {
                    master: key.verifying_key(),
                    operators: operator_users(&operators),
                    bus_readers: bus_readers(&cfg),
                    minions: registry.accepted(),
                };
                let section = crate::nats::render_users(&users, &cfg.subjects);
                let embedded = EmbeddedNats::start(layout, section).await?;
                let seed = crate::nats::nkey_seed(&key)
                    .map_err(|reason| StartError::Connect { url: embedded.client_url().to_string(), reason })?;
                let opts = || with_tls(async_nats::ConnectOptions::with_nkey(seed.clone()), tls_ca.as_deref());
                let client = connect(embedded.client_url(), opts()?).await?;
                let bus_client = connect_bus(embedded.client_url(), opts()?).await?;
                let returns_client = connect_returns(embedded.client_url(), opts()?).await?;
                (client, bus_client, returns_client, Some(embedded), tls_ca)
            }
            NatsMode::External { url, auth, tls_ca } => {
                let tls_ca = match tls_ca {
                    Some(path) => Some(
                        brine_proto::tls::certs_from_file(path)
                            .map_err(|e| StartError::Connect { url: url.clone(), reason: e.to_string() })?
                            .remove(0)
                            .to_vec(),
                    ),
                    None => None,
                };
                let client = connect(url, external_options(url, auth, tls_ca.as_deref()).await?).await?;
                let bus_client = connect_bus(url, external_options(url, auth, tls_ca.as_deref()).await?).await?;
                let returns_client =
                    connect_returns(url, external_options(url, auth, tls_ca.as_deref()).await?).await?;
                (client, bus_client, returns_client, None, tls_ca)
            }
        };
        let client_url = match (&embedded, &cfg.nats) {
            (Some(e), _) => e.client_url().to_string(),
            (None, NatsMode::External { url, .. }) => url.clone(),
            (None, NatsMode::Embedded { .. }) => unreachable!("embedded mode always has a server"),
        };

        let queue = crate::queue::JobQueue::setup(&client, &cfg.subjects).await?;
        let shared = Arc::new(Shared {
            cfg,
            key,
            operators,
            audit,
            registry,
            grains,
            pillar,
            store,
            jids,
            client,
            bus_client,
            returns_client,
            embedded,
            presence: Presence::default(),
            queue,
            tls_ca,
            stats: Stats::default(),
            events: crate::events::EventBus::default(),
            orchestrations: crate::orchestrate::Running::default(),
            active: Mutex::new(HashMap::new()),
            ctl_replay: Mutex::new(brine_proto::replay::ReplayWindow::new()),
            user_reloads: UserReloads::default(),
        });

        let ingest = crate::ingest::Ingest::setup(&shared).await?;
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(crate::events::serve(shared.clone()).await?));
        tasks.push(tokio::spawn(crate::reactor::serve(shared.clone())));
        tasks.push(tokio::spawn(crate::audit::serve_shell(shared.clone())));
        tasks.push(tokio::spawn(crate::presence::watch_changes(shared.clone())));
        tasks.push(tokio::spawn(ingest.run(shared.clone())));
        tasks.push(tokio::spawn(crate::enroll::serve(shared.clone()).await?));
        tasks.push(tokio::spawn(crate::ctl::serve(shared.clone()).await?));
        tasks.push(tokio::spawn(crate::presence::serve(shared.clone()).await?));
        tasks.push(tokio::spawn(crate::rpc::serve(shared.clone()).await?));
        tasks.push(tokio::spawn(crate::schedule::run(shared.clone())));
        let sweeper = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                sweeper.sweep_active();
                sweeper.prune_jobs().await;
            }
        }));
        // Make sure the subscriptions are registered with the server before anyone is
        // told the master is up.
        let _ = shared.client.flush().await;
        let _ = shared.bus_client.flush().await;
        let _ = shared.returns_client.flush().await;
        // Written last: its presence tells local tools the master is ready.
        let url_path = shared.cfg.client_url_path();
        std::fs::write(&url_path, format!("{client_url}\n"))
            .map_err(|source| StartError::Write { path: url_path.clone(), source })?;
        tracing::info!(nats = %client_url, prefix = shared.cfg.subjects.prefix(), "brine-master is up");
        Ok(Master { shared, tasks })
    }

    /// The shared state (for in-process tests and tools).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The URL of the NATS server the master uses.
    pub fn nats_url(&self) -> String {
        std::fs::read_to_string(self.shared.cfg.client_url_path()).unwrap_or_default().trim().to_string()
    }

    /// The master's public key.
    pub fn public_key(&self) -> VerifyingKey {
        self.shared.key.verifying_key()
    }

    /// A copy of the counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Stops the services and the embedded server, flushing the store.
    pub async fn shutdown(self) {
        // Before the services stop: an orchestration's steps need them to end cleanly.
        self.shared.orchestrations.abort_all(Duration::from_secs(5)).await;
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        let _ = self.shared.client.flush().await;
        let _ = self.shared.bus_client.flush().await;
        let _ = self.shared.returns_client.flush().await;
        if let Err(e) = self.shared.store.flush() {
            tracing::error!(error = %e, "cannot flush the job cache");
        }
        if let Some(e) = &self.shared.embedded {
            e.shutdown().await;
        }
    }
}
