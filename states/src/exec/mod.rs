//! Execution modules: the `module.function`s a job or `brine-call` runs.
//!
//! A function is a plain type implementing [`Function`] with typed arguments; the
//! blanket [`DynFunction`] impl binds command-line style arguments (positional, then
//! `key=value`) to those types. Each module file declares one [`Module`] listing its
//! functions, and [`MODULES`] lists the modules: one line per module, alphabetical.
//! A test checks order, uniqueness and documentation.

pub mod audit;
mod beacons;
mod cmd;
mod cp;
pub(crate) mod cron;
mod disk;
mod event;
pub(crate) mod file;
mod grains;
mod group;
mod host;
mod network;
mod pillar;
mod pkg;
mod saltutil;
pub mod schedule;
mod service;
mod state;
mod status;
mod sys;
mod test;
mod user;

pub use state::top_matches;

use brine_proto::{Map, Value};
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Every execution module, alphabetical by name.
pub static MODULES: &[&Module] = &[
    &audit::MODULE,
    &beacons::MODULE,
    &cmd::MODULE,
    &cp::MODULE,
    &cron::MODULE,
    &disk::MODULE,
    &event::MODULE,
    &file::MODULE,
    &grains::MODULE,
    &group::MODULE,
    &network::MODULE,
    &pillar::MODULE,
    &pkg::MODULE,
    &saltutil::MODULE,
    &schedule::MODULE,
    &service::MODULE,
    &state::MODULE,
    &status::MODULE,
    &sys::MODULE,
    &test::MODULE,
    &user::MODULE,
];

/// The modules a resident minion runs itself rather than in a job runner: what
/// they do is answer from the minion's own state (`saltutil.*`) or nothing at all
/// (`test.*`), so a process per call would cost more than the call. Naming them
/// here, not through [`MODULES`], keeps the rest of the registry out of a binary
/// that links only these.
pub static AGENT_MODULES: &[&Module] = &[&saltutil::MODULE, &test::MODULE];

/// The `status.*` functions, for the status beacon.
pub static STATUS: &Module = &status::MODULE;

/// The `service.*` functions, for the service beacon.
pub static SERVICE: &Module = &service::MODULE;

/// An execution module: a name and its functions, alphabetical.
pub struct Module {
    /// The part before the dot.
    pub name: &'static str,
    /// What the module is for, one line.
    pub doc: &'static str,
    pub functions: &'static [&'static dyn DynFunction],
}

/// Looks a function up by its `module.function` name.
pub fn lookup(name: &str) -> Option<&'static dyn DynFunction> {
    lookup_in(MODULES, name)
}

/// Looks a function up among `modules` (sorted by name, as [`MODULES`] is).
pub fn lookup_in(modules: &[&'static Module], name: &str) -> Option<&'static dyn DynFunction> {
    let (module, _) = name.split_once('.')?;
    let m = modules.binary_search_by(|m| m.name.cmp(module)).ok().map(|i| modules[i])?;
    m.functions.binary_search_by(|f| f.name().cmp(name)).ok().map(|i| m.functions[i])
}

/// Every function of every module, in name order.
pub fn functions() -> impl Iterator<Item = &'static dyn DynFunction> {
    MODULES.iter().flat_map(|m| m.functions.iter().copied())
}

/// Whether `name` is a known function.
pub fn exists(name: &str) -> bool {
    lookup(name).is_some()
}

/// What a host knows while running a function.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// This host's grains.
    pub grains: Arc<Map>,
    /// Set when the job is killed; long-running functions poll it and stop.
    pub cancel: CancelFlag,
    /// The running minion, for functions that manage the minion itself (`saltutil.*`);
    /// `None` under `brine-call`.
    pub host: Option<Arc<dyn Host>>,
    /// Where `grains.setval` and `grains.delval` save grains (Salt's
    /// `/etc/salt/grains`), read back by [`crate::grains::load_saved`] when grains are
    /// collected; `None` when there is nowhere to save them.
    pub grains_file: Option<PathBuf>,
    /// The state trees (`state.*`, `cp.*`, `salt://` sources); `None` without file roots.
    pub files: Option<Arc<dyn crate::files::FileSource>>,
    /// This minion's pillar.
    pub pillar: Arc<Map>,
    /// The JID of the job running the function, if any.
    pub jid: Option<String>,
}

/// What a running minion offers to the functions that manage it.
pub trait Host: Send + Sync + std::fmt::Debug {
    /// The jobs running (or waiting for a worker) now, in `saltutil.running`'s shape.
    fn running(&self) -> Vec<Value>;
    /// Stops a running job; whether it was running.
    fn kill(&self, jid: &str) -> bool;
    /// Collects the grains again, shares them with the master and returns them.
    fn refresh_grains(&self) -> Result<Map, String>;
    /// Asks the master to render this minion's pillar again, keeps it and returns it
    /// (with the render errors under `_errors`, as Salt keeps them).
    fn refresh_pillar(&self) -> Result<Map, String> {
        Err("this minion has no master to render its pillar".into())
    }
    /// Publishes an event signed by this minion on the bus, under its own tag space
    /// (`P.event.<minion>.<tag…>`); `tag` is slash-separated, as Salt writes tags.
    fn fire_event(&self, tag: &str, data: Value) -> Result<(), String> {
        let _ = (tag, data);
        Err("this minion has no master to send events to".into())
    }
    /// Like [`Host::fire_event`], for an event fired by the job `jid` (`event.send`
    /// in a job): the master's reactor follows what its reactions cause through it.
    fn fire_job_event(&self, tag: &str, data: Value, jid: Option<&str>) -> Result<(), String> {
        let _ = jid;
        self.fire_event(tag, data)
    }
    /// This minion's beacons as they run now: beacon name → options (Salt's `beacons`
    /// dict), with `enabled: false` at the top when every beacon is disabled.
    fn beacons(&self) -> Result<Map, String> {
        Err(NO_BEACONS.into())
    }
    /// Whether `data` is a valid configuration for a beacon called `name`; why not.
    fn validate_beacon(&self, name: &str, data: &Map) -> Result<(), String> {
        let _ = (name, data);
        Err(NO_BEACONS.into())
    }
    /// Replaces the beacons: applied at once and kept in the minion's data dir, so
    /// they survive a restart.
    fn set_beacons(&self, beacons: Map) -> Result<(), String> {
        let _ = beacons;
        Err(NO_BEACONS.into())
    }
    /// Forgets the run-time changes: back to the beacons of the config file.
    fn reset_beacons(&self) -> Result<(), String> {
        Err(NO_BEACONS.into())
    }
    /// Writes the beacons to the minion's data dir now; returns the file written.
    fn save_beacons(&self) -> Result<String, String> {
        Err(NO_BEACONS.into())
    }
    /// The beacon modules this minion can run, alphabetical.
    fn beacon_modules(&self) -> Vec<String> {
        Vec::new()
    }

    // Schedules (`schedule.*`).

    /// The schedule as it runs now (Salt's `opts['schedule']`): entry name → settings,
    /// with `enabled: false` at the top when the whole schedule is disabled.
    fn schedule(&self) -> Result<Map, String> {
        Err(schedule::NO_SCHEDULE.into())
    }
    /// The schedule saved in the minion's data dir: what runs after a restart.
    fn saved_schedule(&self) -> Result<Map, String> {
        Err(schedule::NO_SCHEDULE.into())
    }
    /// Applies a change to the running schedule (saving it when the change says so)
    /// and returns the schedule after it.
    fn change_schedule(&self, change: schedule::ScheduleChange) -> Result<Map, String> {
        let _ = change;
        Err(schedule::NO_SCHEDULE.into())
    }
}

/// Why beacon functions fail outside a running minion.
pub const NO_BEACONS: &str = "beacons need a running minion (brine-minion, not brine-call)";

/// A flag a running job polls to learn it was killed.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// Asks the job to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the job was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A function's result: the data it returns and the job's return code (0 for
/// success; a command's exit status for `cmd.*`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Output {
    pub ret: Value,
    pub retcode: i32,
}

impl Output {
    /// A successful result.
    pub fn ok(ret: impl Into<Value>) -> Output {
        Output { ret: ret.into(), retcode: 0 }
    }
}

/// One parameter of a function, for binding positional arguments and for `sys.doc`
/// and `sys.argspec`.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    /// Whether the caller may leave it out.
    pub optional: bool,
    /// What an optional parameter is when left out, as `sys.argspec` reports it. The
    /// `Args` type's serde defaults are what the function really uses; keep the two equal.
    pub default: ParamDefault,
}

/// A parameter's default value as `sys.argspec` shows it (Salt's `defaults`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamDefault {
    /// `None` in Salt, `null` in JSON.
    None,
    Bool(bool),
    Int(i64),
    Str(&'static str),
}

impl ParamDefault {
    /// The default as a value.
    pub fn to_value(self) -> Value {
        match self {
            ParamDefault::None => Value::Null,
            ParamDefault::Bool(b) => b.into(),
            ParamDefault::Int(i) => i.into(),
            ParamDefault::Str(s) => s.into(),
        }
    }
}

/// Shorthand for a required parameter.
pub const fn req(name: &'static str) -> Param {
    Param { name, optional: false, default: ParamDefault::None }
}

/// Shorthand for an optional parameter whose default is `None`.
pub const fn opt(name: &'static str) -> Param {
    Param { name, optional: true, default: ParamDefault::None }
}

/// Shorthand for an optional parameter with another default.
pub const fn opt_or(name: &'static str, default: ParamDefault) -> Param {
    Param { name, optional: true, default }
}

/// The keyword arguments a function accepts, read from its `Args` type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Keywords {
    /// Exactly these names (a struct's fields).
    Named(&'static [&'static str]),
    /// Any name (a flattened map, or a free-form value).
    Any,
}

/// Asks serde which field names `T`'s derived `Deserialize` expects, without data: the
/// derive hands them to `deserialize_struct`; a flattened struct asks for a map instead.
fn keywords_of<T: DeserializeOwned>() -> Keywords {
    use serde::de::{self, Visitor};
    struct Probe<'a>(&'a std::cell::Cell<Keywords>);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("probe only"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.set(Keywords::Named(fields));
            Err(de::Error::custom("probe only"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let found = std::cell::Cell::new(Keywords::Any);
    let _ = T::deserialize(Probe(&found));
    found.get()
}

/// Why a call did not produce a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum CallError {
    /// No function of that name.
    #[error("'{0}' is not available.")]
    Unknown(String),
    /// The arguments do not fit the function.
    #[error("Passed invalid arguments to {fun}: {reason}\n\nUsage: {usage}")]
    BadArguments { fun: String, reason: String, usage: String },
    /// The function ran and failed.
    #[error("{0}")]
    Failed(String),
}

impl CallError {
    /// A failure with a message.
    pub fn failed(msg: impl Into<String>) -> CallError {
        CallError::Failed(msg.into())
    }
}

/// An execution function with typed arguments.
pub trait Function: Sync + Send + 'static {
    /// `module.function`.
    const NAME: &'static str;
    /// What it does: a one-line summary, then details and a CLI example.
    const DOC: &'static str;
    /// Parameters in positional order.
    const PARAMS: &'static [Param];
    /// Whether extra positional arguments are accepted (as `args`).
    const VARARGS: bool = false;
    /// The arguments, deserialized from the bound parameters (and every keyword).
    type Args: DeserializeOwned;
    /// Runs the function.
    fn call(&self, ctx: &Context, args: Self::Args) -> Result<Output, CallError>;
}

/// A function looked up by name; implemented for every [`Function`].
pub trait DynFunction: Sync {
    fn name(&self) -> &'static str;
    fn doc(&self) -> &'static str;
    fn params(&self) -> &'static [Param];
    fn varargs(&self) -> bool;
    /// The keyword arguments it accepts (its `Args` fields).
    fn keywords(&self) -> Keywords;
    /// Binds `args` and `kwargs` and runs the function.
    fn call_dyn(&self, ctx: &Context, args: Vec<Value>, kwargs: Map) -> Result<Output, CallError>;

    /// `name(a, b=None, *args)` for error messages and `sys.doc`.
    fn usage(&self) -> String {
        let mut parts: Vec<String> = self
            .params()
            .iter()
            .map(|p| if p.optional { format!("{}=…", p.name) } else { p.name.to_string() })
            .collect();
        if self.varargs() {
            parts.push("*args".into());
        }
        format!("{}({})", self.name(), parts.join(", "))
    }
}

impl<F: Function> DynFunction for F {
    fn name(&self) -> &'static str {
        F::NAME
    }
    fn doc(&self) -> &'static str {
        F::DOC
    }
    fn params(&self) -> &'static [Param] {
        F::PARAMS
    }
    fn varargs(&self) -> bool {
        F::VARARGS
    }
    fn keywords(&self) -> Keywords {
        keywords_of::<F::Args>()
    }
    fn call_dyn(&self, ctx: &Context, args: Vec<Value>, kwargs: Map) -> Result<Output, CallError> {
        let bound = bind(self, args, kwargs)?;
        let typed: F::Args = serde_json::from_value(Value::Object(bound)).map_err(|e| CallError::BadArguments {
            fun: F::NAME.into(),
            reason: e.to_string(),
            usage: self.usage(),
        })?;
        self.call(ctx, typed)
    }
}

/// Maps positional arguments onto parameter names and merges keyword arguments.
fn bind(f: &dyn DynFunction, args: Vec<Value>, mut kwargs: Map) -> Result<Map, CallError> {
    let bad = |reason: String| CallError::BadArguments { fun: f.name().into(), reason, usage: f.usage() };
    let params = f.params();
    let given = args.len();
    let mut bound = Map::new();
    let mut extra = Vec::new();
    for (i, value) in args.into_iter().enumerate() {
        match params.get(i) {
            Some(p) => {
                if kwargs.contains_key(p.name) {
                    return Err(bad(format!("got multiple values for argument '{}'", p.name)));
                }
                bound.insert(p.name.to_string(), value);
            }
            None if f.varargs() => extra.push(value),
            None => {
                return Err(bad(format!(
                    "takes at most {} positional argument{} ({} given)",
                    params.len(),
                    if params.len() == 1 { "" } else { "s" },
                    given
                )))
            }
        }
    }
    bound.append(&mut kwargs);
    if f.varargs() {
        bound.insert("args".into(), Value::Array(extra));
    }
    if let Some(p) = params.iter().find(|p| !p.optional && !bound.contains_key(p.name)) {
        return Err(bad(format!("missing required argument '{}'", p.name)));
    }
    Ok(bound)
}

/// Runs `fun` with command-line style arguments.
pub fn call(fun: &str, ctx: &Context, args: Vec<Value>, kwargs: Map) -> Result<Output, CallError> {
    call_in(MODULES, fun, ctx, args, kwargs)
}

/// Like [`call`], among `modules` only.
pub fn call_in(
    modules: &[&'static Module],
    fun: &str,
    ctx: &Context,
    args: Vec<Value>,
    kwargs: Map,
) -> Result<Output, CallError> {
    let f = lookup_in(modules, fun).ok_or_else(|| CallError::Unknown(fun.to_string()))?;
    f.call_dyn(ctx, args, kwargs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn registry_is_sorted_unique_and_documented() {
        for pair in MODULES.windows(2) {
            assert!(pair[0].name < pair[1].name, "module {} must come before {}", pair[1].name, pair[0].name);
        }
        for m in MODULES {
            assert!(m.doc.trim().len() > 10, "module {} needs a doc", m.name);
            assert!(!m.functions.is_empty(), "module {} has no functions", m.name);
            for pair in m.functions.windows(2) {
                assert!(pair[0].name() < pair[1].name(), "{} must come before {}", pair[1].name(), pair[0].name());
            }
            for f in m.functions {
                let (module, fun) = f.name().split_once('.').expect("module.function");
                assert_eq!(module, m.name, "{} is listed in module {}", f.name(), m.name);
                assert!(!fun.is_empty() && !fun.contains('.'), "{}", f.name());
                assert!(f.doc().trim().len() > 10, "{} needs a doc", f.name());
                assert!(f.doc().contains("CLI example: "), "{} needs a CLI example", f.name());
                assert!(lookup(f.name()).is_some());
            }
        }
    }

    #[test]
    fn unknown_functions_are_named_like_salt_does() {
        let err = call("nope.fun", &Context::default(), vec![], Map::new()).unwrap_err();
        assert_eq!(err.to_string(), "'nope.fun' is not available.");
    }

    #[test]
    fn positional_and_keyword_arguments_bind_by_name() {
        let ctx = Context::default();
        let out = call("test.echo", &ctx, vec![json!("hi")], Map::new()).unwrap();
        assert_eq!(out, Output::ok("hi"));
        let mut kw = Map::new();
        kw.insert("text".into(), json!("there"));
        assert_eq!(call("test.echo", &ctx, vec![], kw.clone()).unwrap(), Output::ok("there"));
        let err = call("test.echo", &ctx, vec![json!("a")], kw).unwrap_err().to_string();
        assert!(err.contains("multiple values for argument 'text'"), "{err}");
        let err = call("test.echo", &ctx, vec![], Map::new()).unwrap_err().to_string();
        assert!(err.contains("missing required argument 'text'") && err.contains("Usage: test.echo(text)"), "{err}");
        let err = call("test.echo", &ctx, vec![json!(1), json!(2)], Map::new()).unwrap_err().to_string();
        assert!(err.contains("at most 1 positional argument (2 given)"), "{err}");
    }
}
