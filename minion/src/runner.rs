//! How a minion runs the function of a job: in its own process, or in a child.
//!
//! The resident `brine-minion` runs each job in a `brine-call --job-runner` child
//! process, as Salt's minion forks one per job. The state system, the templates and
//! the execution modules are then code the agent never maps: it idles at the size of
//! what it does all day (its NATS session, checking and signing, the job ledger,
//! beacons), a crash or a leak in a job ends with the job, and the memory a big state
//! run used goes back to the host when it ends. The functions that only read or change
//! the minion itself (`saltutil.*`) and `test.*` run in the agent: a process for a
//! `test.ping` would cost more than the ping.
//!
//! The child asks its parent for everything that belongs to the running minion —
//! `saltutil.running`'s list, events, beacons, the schedule, the master's file server
//! (through the parent's checked cache) — over its stdin and stdout, in frames of a
//! 4-byte big-endian length and a MessagePack body: first what to do ([`Order`]: a
//! job, or collecting grains, or moving old job records) down, then calls
//! ([`Up::Call`]) up, each answered ([`Answer`]) down before the next, and last the
//! result ([`Up::Done`]) up. `kill_job` reaches the child as SIGTERM,
//! which sets the job's cancel flag as an in-process kill does; so does the minion
//! dying under it.

use brine_proto::{Map, Value};
use brine_states::exec::{CallError, CancelFlag, Context, Host, Output};
use brine_states::files::{FileError, FileSource};
use serde::{Deserialize, Serialize};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runs what the minion does besides its NATS session: the functions of jobs, the
/// collection of grains, the move of an earlier version's job records. All block:
/// call them on a blocking thread.
pub trait Execute: Send + Sync + std::fmt::Debug {
    /// Runs `fun` for a job.
    fn call(&self, fun: &str, ctx: &Context, arg: Vec<Value>, kwarg: Map) -> Result<Output, CallError>;
    /// This host's grains for minion `id`: the collected ones, the saved ones (`saved`,
    /// written by `grains.setval`), then the config's (`configured`).
    fn grains(&self, id: &str, saved: &Path, configured: &Map) -> Result<Map, String>;
    /// Moves the job records of an earlier version's database at `old_db` into the
    /// ledger at `jobs` ([`crate::ledger::migrate_old_db`]).
    fn migrate_old_db(&self, jobs: &Path, old_db: &Path) -> Result<(), String>;
}

/// Every function in the minion's own process (embedded minions, tests, the swarm).
#[derive(Debug, Default)]
pub struct InProcess;

impl Execute for InProcess {
    fn call(&self, fun: &str, ctx: &Context, arg: Vec<Value>, kwarg: Map) -> Result<Output, CallError> {
        brine_states::exec::call(fun, ctx, arg, kwarg)
    }

    fn grains(&self, id: &str, saved: &Path, configured: &Map) -> Result<Map, String> {
        Ok(collect_grains(id, saved, configured))
    }

    fn migrate_old_db(&self, jobs: &Path, old_db: &Path) -> Result<(), String> {
        crate::ledger::migrate_old_db(jobs, old_db).map_err(|e| e.to_string())
    }
}

/// The grains of minion `id`: collected, then the saved ones, then the configured ones.
pub fn collect_grains(id: &str, saved: &Path, configured: &Map) -> Map {
    let mut custom = brine_states::grains::load_saved(saved).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "ignoring the saved grains");
        Map::new()
    });
    custom.extend(configured.clone());
    brine_states::grains::collect(id, &custom)
}

/// Each job in a `brine-call --job-runner` child, but the agent's own modules.
#[derive(Debug)]
pub struct ChildRunner {
    program: PathBuf,
    log_level: String,
    log_json: bool,
}

/// The flag that makes `brine-call` a job runner.
pub const RUNNER_FLAG: &str = "--job-runner";

impl ChildRunner {
    /// Runs jobs with `program` (a `brine-call`); the child logs at `log_level`, one
    /// JSON object a line when `log_json`, on the stderr it shares with the minion.
    pub fn new(program: PathBuf, log_level: &str, log_json: bool) -> ChildRunner {
        ChildRunner { program, log_level: log_level.into(), log_json }
    }

    /// The `brine-call` installed beside the running binary (as the packages install
    /// them), else the first on `PATH`.
    pub fn find() -> Option<PathBuf> {
        let beside = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join("brine-call")));
        let path = std::env::var_os("PATH").unwrap_or_default();
        beside.into_iter().chain(std::env::split_paths(&path).map(|d| d.join("brine-call"))).find(|p| p.is_file())
    }
}

impl Execute for ChildRunner {
    fn call(&self, fun: &str, ctx: &Context, arg: Vec<Value>, kwarg: Map) -> Result<Output, CallError> {
        if let Some(f) = brine_states::exec::lookup_in(brine_states::exec::AGENT_MODULES, fun) {
            return f.call_dyn(ctx, arg, kwarg);
        }
        let start = Start {
            fun: fun.into(),
            arg,
            kwarg,
            grains: (*ctx.grains).clone(),
            pillar: (*ctx.pillar).clone(),
            grains_file: ctx.grains_file.clone(),
            jid: ctx.jid.clone(),
            host: ctx.host.is_some(),
            files: ctx.files.is_some(),
        };
        self.run(Task::Job(Box::new(start)), ctx)
    }

    fn grains(&self, id: &str, saved: &Path, configured: &Map) -> Result<Map, String> {
        let task = Task::Grains { id: id.into(), saved: saved.into(), configured: configured.clone() };
        match self.run(task, &Context::default()) {
            Ok(Output { ret: Value::Object(grains), .. }) => Ok(grains),
            Ok(other) => Err(format!("the job runner answered {}", other.ret)),
            Err(e) => Err(e.to_string()),
        }
    }

    fn migrate_old_db(&self, jobs: &Path, old_db: &Path) -> Result<(), String> {
        let task = Task::MigrateLedger { jobs: jobs.into(), old_db: old_db.into() };
        self.run(task, &Context::default()).map(drop).map_err(|e| e.to_string())
    }
}

impl ChildRunner {
    /// Runs `task` in a child, answering its calls from `ctx`.
    fn run(&self, task: Task, ctx: &Context) -> Result<Output, CallError> {
        let order = Order { task, log_level: self.log_level.clone(), log_json: self.log_json };
        let mut child = std::process::Command::new(&self.program)
            .arg(RUNNER_FLAG)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| CallError::failed(format!("cannot start the job runner {}: {e}", self.program.display())))?;
        let pid = child.id();
        let mut down = BufWriter::new(child.stdin.take().expect("piped stdin"));
        let mut up = BufReader::new(child.stdout.take().expect("piped stdout"));
        // A kill of the job reaches the child as SIGTERM, while it runs (never after
        // it was reaped: the watcher is joined before the wait below).
        let finished = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (finished, cancel) = (finished.clone(), ctx.cancel.clone());
            std::thread::spawn(move || {
                while !finished.load(Ordering::Acquire) {
                    if cancel.is_cancelled() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGTERM,
                        );
                        return;
                    }
                    std::thread::park_timeout(Duration::from_millis(50));
                }
            })
        };
        // A write that fails means the child is gone: its exit status, below, says why.
        let mut result = None;
        let mut open = write_frame(&mut down, &order).is_ok();
        while open && result.is_none() {
            match read_frame::<Up>(&mut up) {
                Ok(Some(Up::Call(call))) => open = write_frame(&mut down, &answer(ctx, call)).is_ok(),
                Ok(Some(Up::Done(done))) => result = Some(done),
                Ok(None) => open = false,
                Err(e) => {
                    let _ = child.kill();
                    result = Some(Err(CallError::failed(format!("lost the job's runner (pid {pid}): {e}"))));
                }
            }
        }
        finished.store(true, Ordering::Release);
        watcher.thread().unpark();
        let _ = watcher.join();
        drop(down);
        let status = child.wait();
        result.unwrap_or_else(|| {
            let how = match status {
                Ok(s) => s.to_string(),
                Err(e) => format!("cannot wait for it: {e}"),
            };
            tracing::warn!(pid, status = %how, "a job runner ended without a result");
            Err(CallError::failed(format!("the job's runner (pid {pid}) ended without a result: {how}")))
        })
    }
}

/// The first frame down: what the child is to do.
#[derive(Debug, Serialize, Deserialize)]
struct Order {
    task: Task,
    log_level: String,
    log_json: bool,
}

#[derive(Debug, Serialize, Deserialize)]
enum Task {
    /// Run a job's function.
    Job(Box<Start>),
    /// Collect the grains ([`collect_grains`]); they come back as the result.
    Grains { id: String, saved: PathBuf, configured: Map },
    /// [`crate::ledger::migrate_old_db`].
    MigrateLedger { jobs: PathBuf, old_db: PathBuf },
}

/// A job.
#[derive(Debug, Serialize, Deserialize)]
struct Start {
    fun: String,
    arg: Vec<Value>,
    kwarg: Map,
    grains: Map,
    pillar: Map,
    grains_file: Option<PathBuf>,
    jid: Option<String>,
    /// Whether the job has a minion to ask (it has, under brine-minion).
    host: bool,
    /// Whether the job has the master's file server.
    files: bool,
}

/// A frame up: a call to the minion, or the job's result.
#[derive(Debug, Serialize, Deserialize)]
enum Up {
    Call(Call),
    Done(Result<Output, CallError>),
}

/// What a job asks the minion that runs it.
#[derive(Debug, Serialize, Deserialize)]
enum Call {
    Host(HostCall),
    Files(FileCall),
}

/// [`Host`]'s methods.
#[derive(Debug, Serialize, Deserialize)]
enum HostCall {
    Running,
    Kill { jid: String },
    RefreshGrains,
    RefreshPillar,
    FireEvent { tag: String, data: Value, jid: Option<String> },
    Beacons,
    ValidateBeacon { name: String, data: Map },
    SetBeacons { beacons: Map },
    ResetBeacons,
    SaveBeacons,
    BeaconModules,
    Schedule,
    SavedSchedule,
    ChangeSchedule { change: brine_states::exec::schedule::ScheduleChange },
}

/// [`FileSource`]'s methods; `read` is `cache`, then a read of the local copy.
#[derive(Debug, Serialize, Deserialize)]
enum FileCall {
    List { env: String, dir: String },
    Cache { env: String, path: String },
}

/// The minion's answer to a [`Call`].
#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    Value(Value),
    Failed(String),
    File(FileError),
}

/// Answers a child's call from the minion's own [`Host`] and files.
fn answer(ctx: &Context, call: Call) -> Answer {
    match call {
        Call::Files(call) => match &ctx.files {
            Some(files) => answer_files(files.as_ref(), call),
            None => Answer::Failed("this job has no file server".into()),
        },
        Call::Host(call) => match &ctx.host {
            Some(host) => answer_host(host.as_ref(), call),
            None => Answer::Failed("this job has no minion to ask".into()),
        },
    }
}

fn answer_files(files: &dyn FileSource, call: FileCall) -> Answer {
    let got = match call {
        FileCall::List { env, dir } => files.list(&env, &dir).map(Value::from),
        FileCall::Cache { env, path } => files.cache(&env, &path).map(|p| p.to_string_lossy().into()),
    };
    match got {
        Ok(v) => Answer::Value(v),
        Err(e) => Answer::File(e),
    }
}

fn answer_host(host: &dyn Host, call: HostCall) -> Answer {
    let done = |()| Value::Null;
    let got = match call {
        HostCall::Running => Ok(Value::Array(host.running())),
        HostCall::Kill { jid } => Ok(host.kill(&jid).into()),
        HostCall::RefreshGrains => host.refresh_grains().map(Value::from),
        HostCall::RefreshPillar => host.refresh_pillar().map(Value::from),
        HostCall::FireEvent { tag, data, jid } => host.fire_job_event(&tag, data, jid.as_deref()).map(done),
        HostCall::Beacons => host.beacons().map(Value::from),
        HostCall::ValidateBeacon { name, data } => host.validate_beacon(&name, &data).map(done),
        HostCall::SetBeacons { beacons } => host.set_beacons(beacons).map(done),
        HostCall::ResetBeacons => host.reset_beacons().map(done),
        HostCall::SaveBeacons => host.save_beacons().map(Value::from),
        HostCall::BeaconModules => Ok(host.beacon_modules().into()),
        HostCall::Schedule => host.schedule().map(Value::from),
        HostCall::SavedSchedule => host.saved_schedule().map(Value::from),
        HostCall::ChangeSchedule { change } => host.change_schedule(change).map(Value::from),
    };
    match got {
        Ok(v) => Answer::Value(v),
        Err(e) => Answer::Failed(e),
    }
}

/// Frames are at most this big (a pillar, a return): a length beyond it is a broken
/// stream, not a frame.
const MAX_FRAME: usize = 1 << 30;

fn write_frame<T: Serialize>(w: &mut impl Write, frame: &T) -> std::io::Result<()> {
    let body = rmp_serde::to_vec_named(frame).map_err(std::io::Error::other)?;
    w.write_all(&(body.len() as u32).to_be_bytes())?;
    w.write_all(&body)?;
    w.flush()
}

/// The next frame; `None` at a clean end of the stream.
fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!("a frame of {len} bytes")));
    }
    // Grown as the bytes come, so a garbage length costs no allocation of its size.
    let mut body = Vec::new();
    r.take(len as u64).read_to_end(&mut body)?;
    if body.len() != len {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "a frame cut short"));
    }
    rmp_serde::from_slice(&body).map(Some).map_err(std::io::Error::other)
}

/// The child's end: its calls go up one at a time, each waiting for its answer.
struct Link {
    io: Mutex<(BufReader<std::fs::File>, BufWriter<std::fs::File>)>,
}

impl Link {
    fn ask(&self, call: Call) -> Answer {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        let (up, down) = &mut *io;
        let asked = write_frame(down, &Up::Call(call)).and_then(|()| read_frame::<Answer>(up));
        match asked {
            Ok(Some(a)) => a,
            Ok(None) => Answer::Failed("the minion went away".into()),
            Err(e) => Answer::Failed(format!("cannot ask the minion: {e}")),
        }
    }

    fn ask_value(&self, call: Call) -> Result<Value, String> {
        match self.ask(call) {
            Answer::Value(v) => Ok(v),
            Answer::Failed(e) => Err(e),
            Answer::File(e) => Err(e.to_string()),
        }
    }

    fn ask_map(&self, call: Call) -> Result<Map, String> {
        match self.ask_value(call)? {
            Value::Object(m) => Ok(m),
            other => Err(format!("the minion answered {other}")),
        }
    }

    fn ask_unit(&self, call: Call) -> Result<(), String> {
        self.ask_value(call).map(drop)
    }
}

/// The running minion, as a job in a runner sees it.
struct ParentHost(Arc<Link>);

impl std::fmt::Debug for ParentHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ParentHost")
    }
}

impl Host for ParentHost {
    fn running(&self) -> Vec<Value> {
        match self.0.ask_value(Call::Host(HostCall::Running)) {
            Ok(Value::Array(jobs)) => jobs,
            _ => Vec::new(),
        }
    }

    fn kill(&self, jid: &str) -> bool {
        self.0.ask_value(Call::Host(HostCall::Kill { jid: jid.into() })).ok().and_then(|v| v.as_bool()).unwrap_or(false)
    }

    fn refresh_grains(&self) -> Result<Map, String> {
        self.0.ask_map(Call::Host(HostCall::RefreshGrains))
    }

    fn refresh_pillar(&self) -> Result<Map, String> {
        self.0.ask_map(Call::Host(HostCall::RefreshPillar))
    }

    fn fire_event(&self, tag: &str, data: Value) -> Result<(), String> {
        self.fire_job_event(tag, data, None)
    }

    fn fire_job_event(&self, tag: &str, data: Value, jid: Option<&str>) -> Result<(), String> {
        self.0.ask_unit(Call::Host(HostCall::FireEvent { tag: tag.into(), data, jid: jid.map(str::to_string) }))
    }

    fn beacons(&self) -> Result<Map, String> {
        self.0.ask_map(Call::Host(HostCall::Beacons))
    }

    fn validate_beacon(&self, name: &str, data: &Map) -> Result<(), String> {
        self.0.ask_unit(Call::Host(HostCall::ValidateBeacon { name: name.into(), data: data.clone() }))
    }

    fn set_beacons(&self, beacons: Map) -> Result<(), String> {
        self.0.ask_unit(Call::Host(HostCall::SetBeacons { beacons }))
    }

    fn reset_beacons(&self) -> Result<(), String> {
        self.0.ask_unit(Call::Host(HostCall::ResetBeacons))
    }

    fn save_beacons(&self) -> Result<String, String> {
        match self.0.ask_value(Call::Host(HostCall::SaveBeacons))? {
            Value::String(s) => Ok(s),
            other => Err(format!("the minion answered {other}")),
        }
    }

    fn beacon_modules(&self) -> Vec<String> {
        match self.0.ask_value(Call::Host(HostCall::BeaconModules)) {
            Ok(Value::Array(names)) => names.into_iter().filter_map(|n| n.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        }
    }

    fn schedule(&self) -> Result<Map, String> {
        self.0.ask_map(Call::Host(HostCall::Schedule))
    }

    fn saved_schedule(&self) -> Result<Map, String> {
        self.0.ask_map(Call::Host(HostCall::SavedSchedule))
    }

    fn change_schedule(&self, change: brine_states::exec::schedule::ScheduleChange) -> Result<Map, String> {
        self.0.ask_map(Call::Host(HostCall::ChangeSchedule { change }))
    }
}

/// The master's file server through the minion's checked cache: the child reads the
/// cached copy the minion made current.
struct ParentFiles(Arc<Link>);

impl std::fmt::Debug for ParentFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ParentFiles")
    }
}

impl ParentFiles {
    fn ask(&self, call: FileCall) -> Result<Value, FileError> {
        match self.0.ask(Call::Files(call)) {
            Answer::Value(v) => Ok(v),
            Answer::File(e) => Err(e),
            Answer::Failed(e) => Err(FileError::Io(e)),
        }
    }
}

impl FileSource for ParentFiles {
    fn read(&self, env: &str, path: &str) -> Result<Vec<u8>, FileError> {
        let local = self.cache(env, path)?;
        std::fs::read(&local).map_err(|e| FileError::Io(format!("{}: {e}", local.display())))
    }

    fn list(&self, env: &str, dir: &str) -> Result<Vec<String>, FileError> {
        match self.ask(FileCall::List { env: env.into(), dir: dir.into() })? {
            Value::Array(paths) => Ok(paths.into_iter().filter_map(|p| p.as_str().map(str::to_string)).collect()),
            other => Err(FileError::Io(format!("the minion answered {other}"))),
        }
    }

    fn cache(&self, env: &str, path: &str) -> Result<PathBuf, FileError> {
        match self.ask(FileCall::Cache { env: env.into(), path: path.into() })? {
            Value::String(p) => Ok(PathBuf::from(p)),
            other => Err(FileError::Io(format!("the minion answered {other}"))),
        }
    }
}

/// `brine-call --job-runner`: runs the one job its parent minion sends and exits.
/// Returns the process's exit code (0 once the result is handed up).
pub fn serve() -> u8 {
    match serve_job() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("brine-call --job-runner: {e}");
            1
        }
    }
}

fn serve_job() -> Result<(), String> {
    use std::os::fd::AsFd;
    // The frames get their own descriptors, closed on exec; stdin becomes /dev/null
    // and stdout the shared stderr, so nothing a function starts or prints can reach
    // the frames or hold them open after the job.
    let dup = |fd: std::os::fd::BorrowedFd| fd.try_clone_to_owned().map(std::fs::File::from);
    let down = dup(std::io::stdin().as_fd()).map_err(|e| format!("stdin: {e}"))?;
    let up = dup(std::io::stdout().as_fd()).map_err(|e| format!("stdout: {e}"))?;
    let null = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0).map_err(|e| format!("stdin: {e}"))?;
    nix::unistd::dup2(2, 1).map_err(|e| format!("stdout: {e}"))?;
    drop(null);
    let cancel = CancelFlag::default();
    watch_for_sigterm(cancel.clone())?;
    let mut reader = BufReader::new(down);
    let order: Order = read_frame(&mut reader).map_err(|e| e.to_string())?.ok_or("no job came")?;
    let format =
        if order.log_json { brine_proto::config::LogFormat::Json } else { brine_proto::config::LogFormat::Text };
    let _ = crate::logging::init(&order.log_level, format);
    let start = match order.task {
        Task::Job(start) => *start,
        Task::Grains { id, saved, configured } => {
            let grains = collect_grains(&id, &saved, &configured);
            return write_frame(&mut BufWriter::new(up), &Up::Done(Ok(Output::ok(Value::Object(grains)))))
                .map_err(|e| format!("cannot hand the grains to the minion: {e}"));
        }
        Task::MigrateLedger { jobs, old_db } => {
            let done = crate::ledger::migrate_old_db(&jobs, &old_db)
                .map(|()| Output::ok(true))
                .map_err(|e| CallError::failed(e.to_string()));
            return write_frame(&mut BufWriter::new(up), &Up::Done(done))
                .map_err(|e| format!("cannot hand the result to the minion: {e}"));
        }
    };
    let link = Arc::new(Link { io: Mutex::new((reader, BufWriter::new(up))) });
    let ctx = Context {
        grains: Arc::new(start.grains),
        cancel,
        host: start.host.then(|| Arc::new(ParentHost(link.clone())) as Arc<dyn Host>),
        grains_file: start.grains_file,
        files: start.files.then(|| Arc::new(ParentFiles(link.clone())) as Arc<dyn FileSource>),
        pillar: Arc::new(start.pillar),
        jid: start.jid,
    };
    let result = brine_states::exec::call(&start.fun, &ctx, start.arg, start.kwarg);
    let mut io = link.io.lock().unwrap_or_else(|e| e.into_inner());
    write_frame(&mut io.1, &Up::Done(result)).map_err(|e| format!("cannot hand the result to the minion: {e}"))
}

/// SIGTERM (a `kill_job`, or the minion stopping: it is also the signal the child
/// gets when its parent dies) sets the job's cancel flag; the functions poll it.
fn watch_for_sigterm(cancel: CancelFlag) -> Result<(), String> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    // Blocked here, before any other thread starts, so every thread inherits the mask
    // and the watcher below is the only taker (processes the job starts get a clean
    // mask from std::process).
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(|e| e.to_string())?;
    nix::sys::prctl::set_pdeathsig(Some(Signal::SIGTERM)).map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            tracing::warn!("job killed on request");
            cancel.cancel();
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(program: &str) -> ChildRunner {
        ChildRunner::new(PathBuf::from(program), "warn", false)
    }

    #[test]
    fn a_runner_that_dies_or_is_missing_fails_the_job_with_the_reason() {
        let ctx = Context::default();
        let err = runner("/bin/false").call("cmd.run", &ctx, vec!["true".into()], Map::new()).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("the job's runner (pid "), "{text}");
        assert!(text.ends_with("ended without a result: exit status: 1"), "{text}");
        // A child that writes anything but frames (once it has its order) is killed and named.
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, "#!/bin/sh\nhead -c 1 >/dev/null\nprintf 'not a frame'\n").unwrap();
        std::fs::set_permissions(&garbage, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let err = runner(garbage.to_str().unwrap()).call("cmd.run", &ctx, vec![], Map::new()).unwrap_err();
        assert!(err.to_string().starts_with("lost the job's runner (pid "), "{err}");
        assert!(err.to_string().ends_with("a frame of 1852797984 bytes"), "{err}");
        let err = runner("/nonexistent/brine-call").call("cmd.run", &ctx, vec![], Map::new()).unwrap_err();
        assert!(err.to_string().starts_with("cannot start the job runner /nonexistent/brine-call: "), "{err}");
        let err = runner("/nonexistent/brine-call").grains("x", Path::new("/nonexistent"), &Map::new()).unwrap_err();
        assert!(err.starts_with("cannot start the job runner"), "{err}");
    }

    #[test]
    fn the_agent_modules_run_without_a_child() {
        // No runner could start, so only the agent itself can have answered.
        let out = runner("/nonexistent/brine-call").call("test.ping", &Context::default(), vec![], Map::new());
        assert_eq!(out.unwrap().ret, Value::Bool(true));
    }

    #[test]
    fn frames_round_trip_and_a_broken_stream_is_an_error() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Up::Call(Call::Files(FileCall::Cache { env: "base".into(), path: "a".into() })))
            .unwrap();
        write_frame(&mut buf, &Answer::File(FileError::BadPath("../x".into()))).unwrap();
        let mut r = buf.as_slice();
        assert!(matches!(
            read_frame::<Up>(&mut r).unwrap(),
            Some(Up::Call(Call::Files(FileCall::Cache { ref env, ref path }))) if env == "base" && path == "a"
        ));
        assert!(matches!(read_frame::<Answer>(&mut r).unwrap(), Some(Answer::File(FileError::BadPath(_)))));
        assert!(read_frame::<Answer>(&mut r).unwrap().is_none(), "a clean end");
        let huge = (u32::MAX).to_be_bytes();
        assert!(read_frame::<Answer>(&mut huge.as_slice()).is_err());
        let cut = &buf[..buf.len() - 1];
        let mut r = cut;
        read_frame::<Up>(&mut r).unwrap();
        assert!(read_frame::<Answer>(&mut r).is_err(), "half a frame");
    }
}
