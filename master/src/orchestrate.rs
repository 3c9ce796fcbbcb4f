//! Orchestration: a state-like file run on the master whose steps are jobs on minions.
//!
//! The file comes from the master's `file_roots` (or, from the admin's CLI, as text)
//! and goes through the same renderer, compiler and engine as a minion's state run;
//! requisites, `order`, `failhard` and `retry` therefore mean what they mean there.
//! Its states are `brine.function`, `brine.state` and `brine.wait_for_event` (and the
//! `salt.*` spellings), which reach the fleet through the [`Orchestrator`] this module
//! lends the run: each step publishes a job like `brine run` does and waits for the
//! targeted minions' returns, or waits for verified events on the bus.
//!
//! An orchestration is a job in the job cache: function `state.orchestrate`, one
//! "minion", the master (`<host>_master`, as Salt names it), whose return is the run's
//! results in a state run's shape. While it runs, [`control`] pauses it (the running
//! step finishes, the next waits), resumes it, or aborts it (the running step stops
//! waiting and its job is killed on the minions that have not returned; nothing more
//! starts).
//!
//! [`start`] is the entry point for the operator's `brine orchestrate` and for the
//! reactor's `runner.state.orchestrate`.

use crate::master::Shared;
use brine_proto::envelope::{open, Stamp};
use brine_proto::msg::{CtlError, CtlErrorKind, CtlReply, CtlResult, JobRecord, Return, RunRequest};
use brine_proto::{Jid, Map, MinionId, Target, Value};
use brine_states::files::{FileError, FileSource, LocalRoots};
use brine_states::sls::render::RenderContext;
use brine_states::state::compile::Loader;
use brine_states::state::orchestrator::{EventListener, MinionReturn, Orchestrator, StepJob, StepReturns};
use brine_states::state::{run_chunks, StateContext, StateRun};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The function name orchestrations have in the job cache.
pub const FUN: &str = "state.orchestrate";

/// Where an orchestration's file comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// SLS names in the master's `file_roots` (`orch.deploy` is `orch/deploy.sls`).
    Sls(Vec<String>),
    /// The text of a file the operator gave; `name` is what it is called in results.
    /// Its `include`s and imports still come from `file_roots`.
    Text { name: String, text: String },
}

/// An orchestration to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Orchestration {
    pub source: Source,
    /// The environment of `file_roots` to read (default `base`).
    pub saltenv: String,
    /// Pillar for rendering the file (Salt's `pillar=` of `state.orchestrate`).
    pub pillar: Map,
    /// Test mode: `brine.function` runs nothing, `brine.state` runs with test=True.
    pub test: bool,
    /// Who runs it: the operator (or `reactor`); the orchestration's and its steps'
    /// jobs carry this user.
    pub user: String,
    /// The reaction depth when the reactor started it (0 otherwise), carried by its
    /// steps' jobs so their events do not re-trigger reactions without bound.
    pub depth: u32,
}

/// Why an orchestration did not start.
#[derive(Debug, thiserror::Error)]
pub enum OrchestrateError {
    /// The file does not render or compile; nothing ran.
    #[error("the orchestration did not compile; nothing ran:\n{}", .0.join("\n"))]
    Compile(Vec<String>),
    /// The job cache could not record it.
    #[error("cannot record the orchestration in the job cache: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The master's runtime is going away.
    #[error("the orchestration could not be started: {0}")]
    Runtime(String),
}

/// A started orchestration.
pub struct Started {
    pub jid: Jid,
    /// Resolves to the stored return once the orchestration ends.
    pub finished: tokio::task::JoinHandle<Return>,
}

/// What an operator asks of a running orchestration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Abort,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunState {
    Running,
    Paused,
    Aborted,
}

/// The pause/abort switch of one running orchestration.
struct Control {
    state: Mutex<RunState>,
    changed: Condvar,
    user: String,
}

impl Control {
    fn get(&self) -> RunState {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The orchestrations running on this master, by JID.
#[derive(Default)]
pub struct Running {
    map: Mutex<HashMap<Jid, Arc<Control>>>,
}

impl Running {
    fn insert(&self, jid: Jid, user: &str) -> Arc<Control> {
        let c =
            Arc::new(Control { state: Mutex::new(RunState::Running), changed: Condvar::new(), user: user.to_string() });
        self.map.lock().unwrap_or_else(|e| e.into_inner()).insert(jid, c.clone());
        c
    }

    fn remove(&self, jid: Jid) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).remove(&jid);
    }

    /// The orchestrations running now.
    pub fn jids(&self) -> Vec<Jid> {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect()
    }

    /// Aborts every running orchestration (the master is stopping) and waits up to
    /// `wait` for them to record their results.
    pub async fn abort_all(&self, wait: Duration) {
        let running: Vec<Arc<Control>> = self.map.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        if running.is_empty() {
            return;
        }
        tracing::warn!(count = running.len(), "the master is stopping: aborting running orchestrations");
        for c in running {
            *c.state.lock().unwrap_or_else(|e| e.into_inner()) = RunState::Aborted;
            c.changed.notify_all();
        }
        let deadline = Instant::now() + wait;
        while !self.map.lock().unwrap_or_else(|e| e.into_inner()).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Pauses, resumes or aborts a running orchestration on behalf of `operator` (its
/// own user, or the admin); answers what it is doing now.
pub fn control(shared: &Shared, operator: &str, jid: Jid, action: Action) -> Result<String, CtlError> {
    let err = |kind, message: String| CtlError { kind, message };
    let ctl = shared.orchestrations.map.lock().unwrap_or_else(|e| e.into_inner()).get(&jid).cloned();
    let Some(ctl) = ctl else {
        let known = crate::store::JobCache::job(&shared.store, jid).ok().flatten();
        return Err(match known {
            Some(job) if job.fun == FUN => {
                err(CtlErrorKind::BadRequest, format!("orchestration {jid} is not running: it has finished"))
            }
            Some(job) => err(
                CtlErrorKind::BadRequest,
                format!("job {jid} runs {} on minions, not an orchestration; only orchestrations pause", job.fun),
            ),
            None => err(CtlErrorKind::NotFound, format!("no job {jid} in the job cache")),
        });
    };
    if operator != crate::acl::ADMIN && operator != ctl.user {
        return Err(err(
            CtlErrorKind::Denied,
            format!("operator {operator} may not control orchestration {jid}: {} started it", ctl.user),
        ));
    }
    let mut state = ctl.state.lock().unwrap_or_else(|e| e.into_inner());
    let answer = match (*state, action) {
        (RunState::Aborted, _) => {
            return Err(err(CtlErrorKind::BadRequest, format!("orchestration {jid} is already being aborted")))
        }
        (_, Action::Abort) => {
            *state = RunState::Aborted;
            format!("Orchestration {jid} is being aborted: the running step stops and nothing more starts.")
        }
        (RunState::Paused, Action::Pause) => format!("Orchestration {jid} is already paused."),
        (RunState::Running, Action::Pause) => {
            *state = RunState::Paused;
            format!("Orchestration {jid} is pausing: the running step finishes, the next waits for brine job resume.")
        }
        (RunState::Running, Action::Resume) => format!("Orchestration {jid} is not paused."),
        (RunState::Paused, Action::Resume) => {
            *state = RunState::Running;
            format!("Orchestration {jid} resumed.")
        }
    };
    ctl.changed.notify_all();
    tracing::info!(%jid, operator, ?action, "orchestration control");
    Ok(answer)
}

/// Gives a result to orchestrations a previous master left without one (it crashed
/// while they ran): they are not resumed, and their job says so. Returns how many.
pub fn close_interrupted(store: &crate::store::Store) -> Result<usize, crate::store::StoreError> {
    use crate::store::JobCache;
    let filter = brine_proto::msg::JobFilter { limit: 10_000, fun: Some(FUN.into()), ..Default::default() };
    let mut closed = Vec::new();
    for job in store.list(&filter)? {
        if job.counts.returned > 0 {
            continue;
        }
        let Some(record) = store.job(job.jid)? else { continue };
        for minion in record.minions {
            closed.push(Return {
                stamp: Stamp::new(job.jid.to_string(), Duration::from_secs(3600)),
                jid: job.jid,
                id: minion,
                fun: FUN.into(),
                ret: Value::Array(vec![Value::String(
                    "The master stopped while this orchestration ran; it was not resumed.".into(),
                )]),
                retcode: 1,
                success: false,
                started_at: job.started_at,
                duration_ms: 0,
                schedule: None,
            });
        }
    }
    if !closed.is_empty() {
        store.put_returns(&closed)?;
        store.flush()?;
        tracing::warn!(count = closed.len(), "closed orchestrations interrupted by a master crash");
    }
    Ok(closed.len())
}

/// The master's id in orchestration results, as Salt names it: `<hostname>_master`.
pub fn master_id() -> String {
    let host = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
    let host = host.trim();
    format!("{}_master", if host.is_empty() { "brine" } else { host })
}

/// The file roots with one extra file: the text an operator sent.
#[derive(Debug)]
struct WithText {
    roots: LocalRoots,
    env: String,
    path: String,
    text: Vec<u8>,
}

impl FileSource for WithText {
    fn read(&self, env: &str, path: &str) -> Result<Vec<u8>, FileError> {
        if env == self.env && path == self.path {
            return Ok(self.text.clone());
        }
        self.roots.read(env, path)
    }
    fn list(&self, env: &str, dir: &str) -> Result<Vec<String>, FileError> {
        self.roots.list(env, dir)
    }
    fn cache(&self, env: &str, path: &str) -> Result<PathBuf, FileError> {
        self.roots.cache(env, path)
    }
}

/// A compiled orchestration, ready to run.
struct Compiled {
    chunks: Vec<brine_states::state::Chunk>,
    files: Arc<dyn FileSource>,
    /// What its states see: the master's grains, the orchestration's pillar.
    exec: brine_states::Context,
}

/// Renders and compiles the orchestration.
fn compile(shared: &Shared, o: &Orchestration, id: &str) -> Result<Compiled, Vec<String>> {
    let roots = shared.cfg.file_roots.clone();
    let (files, names): (Arc<dyn FileSource>, Vec<String>) = match &o.source {
        Source::Sls(names) => (Arc::new(roots), names.clone()),
        Source::Text { name, text } => {
            // A name no SLS can have, so the text never shadows a file of the roots.
            let sls = format!("__cli__{}", name.replace(['.', '/'], "_"));
            let path = format!("{sls}.sls");
            let files = WithText { roots, env: o.saltenv.clone(), path, text: text.clone().into_bytes() };
            (Arc::new(files), vec![sls])
        }
    };
    let grains = Arc::new(brine_states::grains::collect(id, &Map::new()));
    let pillar = Arc::new(o.pillar.clone());
    let exec = brine_states::Context {
        grains: grains.clone(),
        pillar: pillar.clone(),
        files: Some(files.clone()),
        ..Default::default()
    };
    let loader = Loader {
        files: &files,
        render: RenderContext {
            grains,
            pillar,
            opts: Map::new(),
            saltenv: o.saltenv.clone(),
            sls: String::new(),
            slspath: String::new(),
            extra: Map::new(),
            exec: exec.clone(),
        },
    };
    let chunks = loader
        .compile(&o.saltenv, &names)
        .map_err(|e| e.into_iter().map(|e| e.to_string()).collect::<Vec<String>>())?;
    Ok(Compiled { chunks, files, exec })
}

/// Renders, records and starts an orchestration; returns at once with its JID. A
/// file that does not compile is refused before anything is recorded or run.
pub async fn start(shared: &Arc<Shared>, o: Orchestration) -> Result<Started, OrchestrateError> {
    let id = master_id();
    let compiled = {
        let (shared, o, id) = (shared.clone(), o.clone(), id.clone());
        tokio::task::spawn_blocking(move || compile(&shared, &o, &id))
            .await
            .map_err(|e| OrchestrateError::Runtime(e.to_string()))?
    };
    let Compiled { chunks, files, exec } = compiled.map_err(OrchestrateError::Compile)?;
    let minion = MinionId::new(id.clone()).map_err(|e| OrchestrateError::Runtime(e.to_string()))?;
    let jid = shared.jids.next();
    let names = match &o.source {
        Source::Sls(n) => n.join(","),
        Source::Text { name, .. } => name.clone(),
    };
    let mut kwarg = Map::new();
    kwarg.insert("saltenv".into(), Value::String(o.saltenv.clone()));
    if o.test {
        kwarg.insert("test".into(), Value::Bool(true));
    }
    let record = JobRecord {
        jid,
        target: Target::List(vec![id.clone()]),
        fun: FUN.into(),
        arg: vec![Value::String(names.clone())],
        kwarg,
        user: o.user.clone(),
        minions: vec![minion.clone()],
        started_at: brine_proto::time::now_ms(),
    };
    {
        use crate::store::JobCache;
        shared.store.put_job(&record)?;
        shared.store.flush()?;
    }
    let control = shared.orchestrations.insert(jid, &o.user);
    shared.active.lock().unwrap_or_else(|e| e.into_inner()).insert(
        jid,
        crate::master::ActiveJob {
            targets: [minion.clone()].into_iter().collect(),
            watchers: Vec::new(),
            remaining: 1,
            since: Instant::now(),
        },
    );
    tracing::info!(%jid, user = %o.user, sls = %names, test = o.test, "orchestration started");
    shared
        .emit(
            &format!("brine/run/{jid}/new"),
            serde_json::json!({"jid": jid, "fun": FUN, "arg": [names], "user": o.user}),
        )
        .await;
    let runner = MasterOrchestrator {
        shared: shared.clone(),
        handle: tokio::runtime::Handle::current(),
        control,
        user: o.user.clone(),
        depth: o.depth,
    };
    let shared2 = shared.clone();
    let finished = tokio::spawn(async move {
        let shared = shared2;
        let started_at = brine_proto::time::now_ms();
        let t0 = Instant::now();
        let env = o.saltenv.clone();
        let test = o.test;
        let run = tokio::task::spawn_blocking(move || {
            let pillar = exec.pillar.clone();
            let run = StateRun {
                ctx: StateContext {
                    exec: &exec,
                    files: files.as_ref(),
                    pillar: &pillar,
                    saltenv: &env,
                    orchestrator: Some(&runner),
                },
                test,
            };
            let results = run_chunks(chunks, &run);
            (results, runner.control.get() == RunState::Aborted)
        })
        .await;
        let (ret, ok) = match run {
            Ok((Ok(results), aborted)) => {
                let ok = !aborted && results.iter().all(|r| r.result != Some(false));
                let mut m = Map::new();
                for r in results {
                    m.insert(r.key.clone(), r.to_value());
                }
                (Value::Object(m), ok)
            }
            Ok((Err(errors), _)) => (Value::Array(errors.into_iter().map(Value::String).collect()), false),
            Err(e) => (Value::Array(vec![Value::String(format!("the orchestration crashed: {e}"))]), false),
        };
        let ret = Return {
            stamp: Stamp::new(jid.to_string(), Duration::from_secs(3600)),
            jid,
            id: minion,
            fun: FUN.into(),
            ret,
            retcode: if ok { 0 } else { 1 },
            success: ok,
            started_at,
            duration_ms: t0.elapsed().as_millis() as u64,
            schedule: None,
        };
        let stored = {
            use crate::store::JobCache;
            shared.store.put_returns(std::slice::from_ref(&ret)).and_then(|_| shared.store.flush())
        };
        if let Err(e) = stored {
            tracing::error!(%jid, error = %e, "cannot store the orchestration's result");
        }
        shared.orchestrations.remove(jid);
        shared.active.lock().unwrap_or_else(|e| e.into_inner()).remove(&jid);
        tracing::info!(%jid, success = ok, "orchestration finished");
        shared
            .emit(
                &format!("brine/run/{jid}/ret"),
                serde_json::json!({"jid": jid, "fun": FUN, "success": ok, "user": o.user}),
            )
            .await;
        ret
    });
    Ok(Started { jid, finished })
}

/// Lends the master to a running orchestration's steps.
struct MasterOrchestrator {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    control: Arc<Control>,
    user: String,
    depth: u32,
}

/// How long a minion may stay silent before the master looks at its heartbeats.
const GRACE: Duration = Duration::from_secs(3);

impl MasterOrchestrator {
    async fn run_job_async(&self, job: &StepJob) -> Result<StepReturns, String> {
        let shared = &self.shared;
        let subject =
            format!("{}.orch.{}", shared.cfg.subjects.operator_inbox(&self.user), brine_proto::envelope::random_id());
        let mut sub =
            shared.client.subscribe(subject.clone()).await.map_err(|e| format!("cannot follow returns: {e}"))?;
        let run = RunRequest {
            target: job.target.clone(),
            fun: job.fun.clone(),
            arg: job.arg.clone(),
            kwarg: job.kwarg.clone(),
            stream_to: Some(subject),
            queue_ttl_ms: None,
        };
        let started = crate::ctl::start_job(shared, &self.user, run, self.depth).await.map_err(|e| e.message)?;
        let jid = started.jid;
        let published = Instant::now();
        let deadline = job.timeout.map(|t| published + t);
        let mut got: BTreeMap<String, MinionReturn> = BTreeMap::new();
        // Per silent minion: the first heartbeat seen after the grace that did not list
        // the job. A second such heartbeat means the minion is not running it.
        let mut idle_since: HashMap<MinionId, Instant> = HashMap::new();
        let master = shared.key.verifying_key();
        let pending = |got: &BTreeMap<String, MinionReturn>| -> Vec<MinionId> {
            started.minions.iter().filter(|m| !got.contains_key(m.as_str())).cloned().collect()
        };
        loop {
            let waiting = pending(&got);
            if waiting.is_empty() {
                break;
            }
            if self.control.get() == RunState::Aborted {
                self.kill(jid, &waiting).await;
                let list: Vec<&str> = waiting.iter().map(|m| m.as_str()).collect();
                return Err(format!(
                    "The orchestration was aborted while this step ran (job {jid}); it was killed on {}",
                    list.join(", ")
                ));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            if published.elapsed() >= GRACE {
                let verdicts: Vec<bool> = waiting
                    .iter()
                    .map(|m| {
                        let Some(seen) = shared.presence.get(m) else { return true };
                        if seen.at.elapsed() > shared.cfg.presence_timeout {
                            return true;
                        }
                        if seen.running.contains(&jid) || seen.at < published + Duration::from_secs(1) {
                            idle_since.remove(m);
                            return false;
                        }
                        match idle_since.get(m) {
                            Some(first) => seen.at > *first,
                            None => {
                                idle_since.insert(m.clone(), seen.at);
                                false
                            }
                        }
                    })
                    .collect();
                if verdicts.iter().all(|gone| *gone) {
                    break;
                }
            }
            match tokio::time::timeout(Duration::from_millis(250), sub.next()).await {
                Ok(Some(msg)) => {
                    let Ok(reply) = open::<CtlReply>(&msg.payload, &master, brine_proto::time::now_ms()) else {
                        continue;
                    };
                    if let CtlResult::Returns(rets) = reply.result {
                        for r in rets.into_iter().filter(|r| r.jid == jid) {
                            got.insert(
                                r.id.to_string(),
                                MinionReturn { ret: r.ret, retcode: r.retcode, success: r.success },
                            );
                        }
                    }
                }
                Ok(None) => return Err("the master's NATS connection closed".into()),
                Err(_) => {}
            }
        }
        let minions = started.minions.iter().map(|m| (m.to_string(), got.remove(m.as_str()))).collect();
        Ok(StepReturns { jid: jid.to_string(), minions })
    }

    /// Stops a step's job on the minions still running it.
    async fn kill(&self, jid: Jid, minions: &[MinionId]) {
        let run = RunRequest {
            target: Target::List(minions.iter().map(|m| m.to_string()).collect()),
            fun: "saltutil.kill_job".into(),
            arg: vec![Value::String(jid.to_string())],
            kwarg: Map::new(),
            stream_to: None,
            queue_ttl_ms: None,
        };
        if let Err(e) = crate::ctl::start_job(&self.shared, &self.user, run, self.depth).await {
            tracing::warn!(%jid, error = %e.message, "cannot kill an aborted orchestration step's job");
        }
    }
}

impl Orchestrator for MasterOrchestrator {
    fn proceed(&self) -> bool {
        let mut state = self.control.state.lock().unwrap_or_else(|e| e.into_inner());
        while *state == RunState::Paused {
            state = self.control.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        *state == RunState::Running
    }

    fn aborted(&self) -> bool {
        self.control.get() == RunState::Aborted
    }

    fn run_job(&self, job: &StepJob) -> Result<StepReturns, String> {
        self.handle.block_on(self.run_job_async(job))
    }

    fn listen(&self) -> Result<Box<dyn EventListener + '_>, String> {
        Ok(Box::new(BusListener { rx: self.shared.subscribe(), orch: self }))
    }
}

/// Verified events for a `wait_for_event` step.
struct BusListener<'a> {
    rx: tokio::sync::broadcast::Receiver<Arc<crate::events::BusEvent>>,
    orch: &'a MasterOrchestrator,
}

impl EventListener for BusListener<'_> {
    fn next(&mut self, deadline: Instant) -> Option<(String, Value)> {
        loop {
            if self.orch.aborted() {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let step = left.min(Duration::from_millis(250));
            let got = self.orch.handle.block_on(tokio::time::timeout(step, self.rx.recv()));
            match got {
                Ok(Ok(ev)) => return Some((ev.tag.clone(), ev.data.clone())),
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => {
                    tracing::warn!(missed = n, "an orchestration waiting for events fell behind the bus");
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
                Err(_) => {}
            }
        }
    }
}
