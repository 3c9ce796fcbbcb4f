//! `schedule.*`: manage the running minion's schedule with Salt's function names,
//! arguments, comments and return shapes. The entries themselves are validated by
//! [`brine_proto::schedule`]; the minion runs them and keeps run-time changes in its
//! data dir (`persist`, on by default), so they survive a restart.

use super::{opt_or, req, CallError, Context, Function, Host, Output, Param, ParamDefault};
use brine_proto::schedule::{normalize, Entry, RESERVED};
use brine_proto::{Map, Value};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// Why schedule functions fail outside a running minion.
pub const NO_SCHEDULE: &str = "schedules need a running minion (brine-minion, not brine-call)";

/// A change to a running minion's schedule, as [`Host::change_schedule`] applies it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ScheduleChange {
    /// Adds or replaces an entry (a normalized, validated item).
    Set { name: String, item: Map, persist: bool },
    /// Removes an entry.
    Delete { name: String, persist: bool },
    /// Enables or disables one entry.
    EnableJob { name: String, enabled: bool, persist: bool },
    /// Enables or disables the whole schedule.
    Enable { enabled: bool, persist: bool },
    /// Runs an entry now (`force`: even if disabled).
    RunJob { name: String, force: bool },
    /// Writes the running schedule to the minion's data dir.
    Save,
}

fn host(ctx: &Context) -> Result<&Arc<dyn Host>, CallError> {
    ctx.host.as_ref().ok_or_else(|| CallError::failed(NO_SCHEDULE))
}

fn change(ctx: &Context, c: ScheduleChange) -> Result<Map, CallError> {
    host(ctx)?.change_schedule(c).map_err(CallError::failed)
}

fn current(ctx: &Context) -> Result<Map, CallError> {
    host(ctx)?.schedule().map_err(CallError::failed)
}

/// A result dict; `result: false` makes the job fail (retcode 1), as Salt's does.
fn outcome(ret: Value) -> Output {
    let failed = ret.get("result") == Some(&Value::Bool(false));
    Output { ret, retcode: i32::from(failed) }
}

fn truthy(v: Option<&Value>, default: bool) -> bool {
    match v {
        None | Some(Value::Null) => default,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "1" | "on"),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        Some(_) => true,
    }
}

fn name_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A name and Salt's free-form keyword arguments.
#[derive(Deserialize)]
pub struct NameAndOptions {
    name: Value,
    #[serde(flatten)]
    options: Map,
}

/// Only Salt's common keyword arguments (`test`, `persist`, …).
#[derive(Deserialize)]
pub struct Options {
    #[serde(flatten)]
    options: Map,
}

/// Takes the management keywords out of an item, leaving the entry's settings.
fn split_options(mut options: Map) -> (Map, bool, bool) {
    let test = truthy(options.remove("test").as_ref(), false);
    let persist = truthy(options.remove("persist").as_ref(), true);
    options.remove("offline");
    (options, test, persist)
}

pub struct Add;
impl Function for Add {
    const NAME: &'static str = "schedule.add";
    const DOC: &'static str = "Adds a job to the minion's schedule: function=module.function and when it runs \
        (seconds/minutes/hours/days, cron, once), with job_args, job_kwargs, splay, range, maxrunning (1), \
        run_on_start, enabled, jid_include. Kept across restarts unless persist=False; test=True only says \
        what would happen.\n\n\
        CLI example: brine run web1 schedule.add job1 function=test.ping seconds=3600";
    const PARAMS: &'static [Param] = &[req("name")];
    type Args = NameAndOptions;
    fn call(&self, ctx: &Context, a: NameAndOptions) -> Result<Output, CallError> {
        let name = name_text(&a.name);
        let (options, test, persist) = split_options(a.options);
        let failed = |comment: String| outcome(json!({"comment": comment, "result": false, "changes": {}}));
        if name.is_empty() {
            return Ok(failed("Job name is required.".into()));
        }
        if current(ctx)?.contains_key(&name) || RESERVED.contains(&name.as_str()) {
            return Ok(failed(format!("Job {name} already exists in schedule.")));
        }
        let item = normalize(&name, &options);
        if let Err(e) = Entry::parse(&name, &item, false) {
            return Ok(failed(e.reason));
        }
        if test {
            return Ok(outcome(
                json!({"comment": format!("Job: {name} would be added to schedule."), "result": true, "changes": {}}),
            ));
        }
        let after = change(ctx, ScheduleChange::Set { name: name.clone(), item, persist })?;
        Ok(outcome(if after.contains_key(&name) {
            json!({"comment": format!("Added job: {name} to schedule."), "result": true, "changes": {&name: "added"}})
        } else {
            json!({"comment": format!("Failed to add job {name} to schedule."), "result": false, "changes": {}})
        }))
    }
}

pub struct Delete;
impl Function for Delete {
    const NAME: &'static str = "schedule.delete";
    const DOC: &'static str = "Deletes a job from the minion's schedule (and from the saved schedule unless \
        persist=False). An entry of the minion's config file comes back at the next start.\n\n\
        CLI example: brine run web1 schedule.delete job1";
    const PARAMS: &'static [Param] = &[req("name")];
    type Args = NameAndOptions;
    fn call(&self, ctx: &Context, a: NameAndOptions) -> Result<Output, CallError> {
        let name = name_text(&a.name);
        let (_, test, persist) = split_options(a.options);
        if test {
            let c = format!("Job: {name} would be deleted from schedule.");
            return Ok(outcome(json!({"comment": c, "result": true, "changes": {}})));
        }
        if !current(ctx)?.contains_key(&name) || RESERVED.contains(&name.as_str()) {
            let c = format!("Job {name} does not exist.");
            return Ok(outcome(json!({"comment": c, "result": false, "changes": {}})));
        }
        let after = change(ctx, ScheduleChange::Delete { name: name.clone(), persist })?;
        Ok(outcome(if after.contains_key(&name) {
            json!({"comment": format!("Failed to delete job {name} from schedule."), "result": false, "changes": {}})
        } else {
            json!({"comment": format!("Deleted Job {name} from schedule."), "result": true, "changes": {&name: "removed"}})
        }))
    }
}

pub struct Modify;
impl Function for Modify {
    const NAME: &'static str = "schedule.modify";
    const DOC: &'static str = "Replaces a job's settings with the ones given (as Salt does: settings not given \
        go back to their defaults; the function stays if not given). Returns the old and new settings.\n\n\
        CLI example: brine run web1 schedule.modify job1 function=test.ping seconds=60";
    const PARAMS: &'static [Param] = &[req("name")];
    type Args = NameAndOptions;
    fn call(&self, ctx: &Context, a: NameAndOptions) -> Result<Output, CallError> {
        let name = name_text(&a.name);
        let (mut options, test, persist) = split_options(a.options);
        let schedule = current(ctx)?;
        let Some(Value::Object(old)) = schedule.get(&name).filter(|_| !RESERVED.contains(&name.as_str())) else {
            let c = format!("Job {name} does not exist in schedule.");
            return Ok(outcome(json!({"comment": c, "result": false, "changes": {}})));
        };
        if !options.contains_key("function") {
            if let Some(f) = old.get("function") {
                options.insert("function".into(), f.clone());
            }
        }
        let new = normalize(&name, &options);
        if let Err(e) = Entry::parse(&name, &new, false) {
            return Ok(outcome(json!({"comment": e.reason, "result": false, "changes": {}})));
        }
        if &new == old {
            return Ok(outcome(
                json!({"comment": format!("Job {name} in correct state"), "result": true, "changes": {}}),
            ));
        }
        let changes = json!({&name: {"old": old, "new": &new}});
        if test {
            let c = format!("Job: {name} would be modified in schedule.");
            return Ok(outcome(json!({"comment": c, "result": true, "changes": changes})));
        }
        change(ctx, ScheduleChange::Set { name: name.clone(), item: new, persist })?;
        let c = format!("Modified job: {name} in schedule.");
        Ok(outcome(json!({"comment": c, "result": true, "changes": changes})))
    }
}

fn enable_job(ctx: &Context, a: NameAndOptions, enabled: bool) -> Result<Output, CallError> {
    let name = name_text(&a.name);
    let (_, test, persist) = split_options(a.options);
    let (verb, lower) = if enabled { ("Enabled", "enabled") } else { ("Disabled", "disabled") };
    if test {
        let c = format!("Job: {name} would be {lower} in schedule.");
        return Ok(outcome(json!({"comment": c, "result": true, "changes": {}})));
    }
    if !current(ctx)?.contains_key(&name) || RESERVED.contains(&name.as_str()) {
        return Ok(outcome(json!({"comment": format!("Job {name} does not exist."), "result": false, "changes": {}})));
    }
    let after = change(ctx, ScheduleChange::EnableJob { name: name.clone(), enabled, persist })?;
    let now = after.get(&name).and_then(|i| i.get("enabled")).and_then(Value::as_bool);
    Ok(outcome(if now == Some(enabled) {
        json!({"comment": format!("{verb} Job {name} in schedule."), "result": true, "changes": {&name: lower}})
    } else {
        let c = format!("Failed to {} job {name} in schedule.", if enabled { "enable" } else { "disable" });
        json!({"comment": c, "result": false, "changes": {}})
    }))
}

pub struct EnableJob;
impl Function for EnableJob {
    const NAME: &'static str = "schedule.enable_job";
    const DOC: &'static str = "Enables one job of the minion's schedule.\n\n\
        CLI example: brine run web1 schedule.enable_job job1";
    const PARAMS: &'static [Param] = &[req("name")];
    type Args = NameAndOptions;
    fn call(&self, ctx: &Context, a: NameAndOptions) -> Result<Output, CallError> {
        enable_job(ctx, a, true)
    }
}

pub struct DisableJob;
impl Function for DisableJob {
    const NAME: &'static str = "schedule.disable_job";
    const DOC: &'static str = "Disables one job of the minion's schedule: it stays listed but does not run.\n\n\
        CLI example: brine run web1 schedule.disable_job job1";
    const PARAMS: &'static [Param] = &[req("name")];
    type Args = NameAndOptions;
    fn call(&self, ctx: &Context, a: NameAndOptions) -> Result<Output, CallError> {
        enable_job(ctx, a, false)
    }
}

fn enable_all(ctx: &Context, a: Options, enabled: bool) -> Result<Output, CallError> {
    let (_, test, persist) = split_options(a.options);
    let (verb, lower) = if enabled { ("Enabled", "enabled") } else { ("Disabled", "disabled") };
    if test {
        let c = format!("Schedule would be {lower}.");
        return Ok(outcome(json!({"comment": c, "changes": {}, "result": true})));
    }
    let after = change(ctx, ScheduleChange::Enable { enabled, persist })?;
    let now = after.get("enabled").and_then(Value::as_bool).unwrap_or(true);
    Ok(outcome(if now == enabled {
        json!({"comment": format!("{verb} schedule on minion."), "changes": {"schedule": lower}, "result": true})
    } else {
        let c = format!("Failed to {} schedule on minion.", if enabled { "enable" } else { "disable" });
        json!({"comment": c, "changes": {}, "result": false})
    }))
}

pub struct Enable;
impl Function for Enable {
    const NAME: &'static str = "schedule.enable";
    const DOC: &'static str = "Enables the minion's whole schedule.\n\nCLI example: brine run web1 schedule.enable";
    const PARAMS: &'static [Param] = &[];
    type Args = Options;
    fn call(&self, ctx: &Context, a: Options) -> Result<Output, CallError> {
        enable_all(ctx, a, true)
    }
}

pub struct Disable;
impl Function for Disable {
    const NAME: &'static str = "schedule.disable";
    const DOC: &'static str = "Disables the minion's whole schedule: no job runs until schedule.enable.\n\n\
        CLI example: brine run web1 schedule.disable";
    const PARAMS: &'static [Param] = &[];
    type Args = Options;
    fn call(&self, ctx: &Context, a: Options) -> Result<Output, CallError> {
        enable_all(ctx, a, false)
    }
}

/// `schedule.list`'s arguments.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    #[serde(default)]
    show_all: bool,
    #[serde(default = "yes")]
    show_disabled: bool,
    #[serde(default)]
    #[allow(dead_code)]
    r#where: Option<Value>,
    #[serde(default = "yes")]
    return_yaml: bool,
    #[serde(default)]
    offline: bool,
}

fn yes() -> bool {
    true
}

/// The schedule as Salt's `schedule.list` shows it: only known keys, `enabled`
/// filled in, hidden `__` entries left out unless `show_all`.
fn listing(schedule: &Map, show_all: bool, show_disabled: bool) -> Map {
    const SHOWN: &[&str] = &[
        "name",
        "maxrunning",
        "function",
        "splay",
        "range",
        "when",
        "once",
        "once_fmt",
        "returner",
        "jid_include",
        "args",
        "kwargs",
        "seconds",
        "minutes",
        "hours",
        "days",
        "enabled",
        "return_job",
        "metadata",
        "cron",
        "until",
        "after",
        "return_config",
        "return_kwargs",
        "run_on_start",
        "skip_during_range",
        "run_after_skip_range",
    ];
    let mut out = Map::new();
    for (name, item) in schedule {
        if RESERVED.contains(&name.as_str()) {
            out.insert(name.clone(), item.clone());
            continue;
        }
        if name.starts_with("__") && !show_all {
            continue;
        }
        let Value::Object(item) = item else { continue };
        let mut shown: Map = item
            .iter()
            .filter(|(k, v)| SHOWN.contains(&k.as_str()) && !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        shown.entry("enabled").or_insert(Value::Bool(true));
        if !show_disabled && shown.get("enabled") == Some(&Value::Bool(false)) {
            continue;
        }
        out.insert(name.clone(), Value::Object(shown));
    }
    out
}

pub struct List;
impl Function for List {
    const NAME: &'static str = "schedule.list";
    const DOC: &'static str = "Lists the jobs scheduled on the minion, as YAML text (Salt's default) or, with \
        return_yaml=False, as data. Each job says whether it is saved (kept across restarts). show_all=True also \
        shows internal jobs (names starting with __); show_disabled=False hides disabled jobs; offline=True \
        lists the saved schedule.\n\n\
        CLI example: brine run web1 schedule.list";
    const PARAMS: &'static [Param] = &[
        opt_or("show_all", ParamDefault::Bool(false)),
        opt_or("show_disabled", ParamDefault::Bool(true)),
        opt_or("where", ParamDefault::None),
        opt_or("return_yaml", ParamDefault::Bool(true)),
        opt_or("offline", ParamDefault::Bool(false)),
    ];
    type Args = ListArgs;
    fn call(&self, ctx: &Context, a: ListArgs) -> Result<Output, CallError> {
        let h = host(ctx)?;
        let saved = h.saved_schedule().map_err(CallError::failed)?;
        let schedule = if a.offline { saved.clone() } else { h.schedule().map_err(CallError::failed)? };
        let mut shown = listing(&schedule, a.show_all, a.show_disabled);
        if !a.return_yaml {
            return Ok(Output::ok(Value::Object(shown)));
        }
        for (name, item) in shown.iter_mut() {
            if let Value::Object(item) = item {
                item.insert("saved".into(), Value::Bool(saved.contains_key(name)));
            }
        }
        Ok(Output::ok(brine_proto::output::yaml(&json!({"schedule": shown}))))
    }
}

/// `schedule.is_enabled`'s argument.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaybeName {
    #[serde(default)]
    name: Option<Value>,
}

pub struct IsEnabled;
impl Function for IsEnabled {
    const NAME: &'static str = "schedule.is_enabled";
    const DOC: &'static str = "Without a name, whether the schedule is enabled; with one, that job's settings \
        (an empty map if there is no such job).\n\n\
        CLI example: brine run web1 schedule.is_enabled job1";
    const PARAMS: &'static [Param] = &[opt_or("name", ParamDefault::None)];
    type Args = MaybeName;
    fn call(&self, ctx: &Context, a: MaybeName) -> Result<Output, CallError> {
        let shown = listing(&current(ctx)?, false, true);
        Ok(Output::ok(match a.name.as_ref().map(name_text).filter(|n| !n.is_empty()) {
            None => shown.get("enabled").cloned().unwrap_or(Value::Bool(true)),
            Some(name) => shown.get(&name).cloned().unwrap_or_else(|| json!({})),
        }))
    }
}

pub struct Purge;
impl Function for Purge {
    const NAME: &'static str = "schedule.purge";
    const DOC: &'static str = "Deletes every job of the minion's schedule (internal __ jobs excepted).\n\n\
        CLI example: brine run web1 schedule.purge";
    const PARAMS: &'static [Param] = &[];
    type Args = Options;
    fn call(&self, ctx: &Context, a: Options) -> Result<Output, CallError> {
        let (_, test, persist) = split_options(a.options);
        let mut comments = Vec::new();
        let mut changes = Map::new();
        for name in current(ctx)?.keys() {
            if RESERVED.contains(&name.as_str()) || name.starts_with("__") {
                continue;
            }
            if test {
                comments.push(Value::from(format!("Job: {name} would be deleted from schedule.")));
                continue;
            }
            let after = change(ctx, ScheduleChange::Delete { name: name.clone(), persist })?;
            if after.contains_key(name) {
                comments.push(Value::from(format!("Failed to delete job {name} from schedule.")));
            } else {
                comments.push(Value::from(format!("Deleted job: {name} from schedule.")));
                changes.insert(name.clone(), Value::from("removed"));
            }
        }
        Ok(outcome(json!({"comment": comments, "changes": changes, "result": true})))
    }
}

/// `schedule.run_job`'s arguments.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunJobArgs {
    name: Value,
    #[serde(default)]
    force: bool,
}

pub struct RunJob;
impl Function for RunJob {
    const NAME: &'static str = "schedule.run_job";
    const DOC: &'static str = "Runs a scheduled job now, out of its schedule (force=True: even if it is \
        disabled). Its return goes to the job cache like every scheduled run.\n\n\
        CLI example: brine run web1 schedule.run_job job1";
    const PARAMS: &'static [Param] = &[req("name"), opt_or("force", ParamDefault::Bool(false))];
    type Args = RunJobArgs;
    fn call(&self, ctx: &Context, a: RunJobArgs) -> Result<Output, CallError> {
        let name = name_text(&a.name);
        let schedule = current(ctx)?;
        let Some(item) = schedule.get(&name).filter(|_| !RESERVED.contains(&name.as_str())) else {
            return Ok(outcome(json!({"comment": format!("Job {name} does not exist."), "result": false})));
        };
        if item.get("enabled") == Some(&Value::Bool(false)) && !a.force {
            return Ok(outcome(json!({"comment": format!("Job {name} is disabled."), "result": true})));
        }
        change(ctx, ScheduleChange::RunJob { name: name.clone(), force: a.force })?;
        Ok(outcome(json!({"comment": format!("Scheduling Job {name} on minion."), "result": true})))
    }
}

pub struct Save;
impl Function for Save {
    const NAME: &'static str = "schedule.save";
    const DOC: &'static str = "Saves the minion's running schedule to its data dir, so it is the schedule \
        after a restart.\n\nCLI example: brine run web1 schedule.save";
    const PARAMS: &'static [Param] = &[];
    type Args = Options;
    fn call(&self, ctx: &Context, a: Options) -> Result<Output, CallError> {
        let (_, test, _) = split_options(a.options);
        if test {
            return Ok(outcome(json!({"comment": "Schedule would be saved.", "result": true})));
        }
        change(ctx, ScheduleChange::Save)?;
        Ok(outcome(json!({"comment": "Schedule (non-pillar items) saved.", "result": true})))
    }
}

pub static MODULE: super::Module = super::Module {
    name: "schedule",
    doc: "Manage the minion's schedule: jobs it runs by itself on an interval, a cron expression or once.",
    functions: &[
        &Add,
        &Delete,
        &Disable,
        &DisableJob,
        &Enable,
        &EnableJob,
        &IsEnabled,
        &List,
        &Modify,
        &Purge,
        &RunJob,
        &Save,
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A host keeping a schedule in memory, as the minion does.
    #[derive(Debug, Default)]
    struct FakeHost {
        schedule: Mutex<Map>,
        saved: Mutex<Map>,
        ran: Mutex<Vec<String>>,
    }

    impl Host for FakeHost {
        fn running(&self) -> Vec<Value> {
            Vec::new()
        }
        fn kill(&self, _: &str) -> bool {
            false
        }
        fn refresh_grains(&self) -> Result<Map, String> {
            Ok(Map::new())
        }
        fn schedule(&self) -> Result<Map, String> {
            Ok(self.schedule.lock().unwrap().clone())
        }
        fn saved_schedule(&self) -> Result<Map, String> {
            Ok(self.saved.lock().unwrap().clone())
        }
        fn change_schedule(&self, c: ScheduleChange) -> Result<Map, String> {
            let mut s = self.schedule.lock().unwrap();
            let persist = match c {
                ScheduleChange::Set { name, item, persist } => {
                    s.insert(name, Value::Object(item));
                    persist
                }
                ScheduleChange::Delete { name, persist } => {
                    s.remove(&name);
                    persist
                }
                ScheduleChange::EnableJob { name, enabled, persist } => {
                    s[&name]["enabled"] = Value::Bool(enabled);
                    persist
                }
                ScheduleChange::Enable { enabled, persist } => {
                    if enabled {
                        s.remove("enabled");
                    } else {
                        s.insert("enabled".into(), Value::Bool(false));
                    }
                    persist
                }
                ScheduleChange::RunJob { name, .. } => {
                    self.ran.lock().unwrap().push(name);
                    false
                }
                ScheduleChange::Save => true,
            };
            if persist {
                *self.saved.lock().unwrap() = s.clone();
            }
            Ok(s.clone())
        }
    }

    fn ctx() -> (Context, Arc<FakeHost>) {
        let h = Arc::new(FakeHost::default());
        (Context { host: Some(h.clone()), ..Default::default() }, h)
    }

    fn run(ctx: &Context, fun: &str, args: Value, kwargs: Value) -> Output {
        let args = args.as_array().cloned().unwrap_or_default();
        let kwargs = kwargs.as_object().cloned().unwrap_or_default();
        super::super::call(fun, ctx, args, kwargs).unwrap()
    }

    #[test]
    fn add_list_modify_delete_with_salts_shapes() {
        let (ctx, host) = ctx();
        assert_eq!(run(&ctx, "schedule.list", json!([]), json!({})).ret, json!("schedule: {}\n"));
        let out = run(&ctx, "schedule.add", json!(["job1"]), json!({"function": "test.ping", "seconds": 3600}));
        assert_eq!(
            out.ret,
            json!({"comment": "Added job: job1 to schedule.", "result": true, "changes": {"job1": "added"}})
        );
        let out = run(&ctx, "schedule.add", json!(["job1"]), json!({"function": "test.ping", "seconds": 60}));
        assert_eq!((out.ret["comment"].clone(), out.retcode), (json!("Job job1 already exists in schedule."), 1));
        let out = run(&ctx, "schedule.list", json!([]), json!({}));
        assert_eq!(
            out.ret,
            json!("schedule:\n  job1:\n    enabled: true\n    function: test.ping\n    jid_include: true\n    maxrunning: 1\n    name: job1\n    saved: true\n    seconds: 3600\n")
        );
        let out = run(&ctx, "schedule.modify", json!(["job1"]), json!({"seconds": 60}));
        assert_eq!(out.ret["comment"], json!("Modified job: job1 in schedule."));
        assert_eq!(out.ret["changes"]["job1"]["old"]["seconds"], json!(3600));
        assert_eq!(out.ret["changes"]["job1"]["new"]["seconds"], json!(60));
        assert_eq!(out.ret["changes"]["job1"]["new"]["function"], json!("test.ping"), "the function stays");
        let out = run(&ctx, "schedule.modify", json!(["job1"]), json!({"seconds": 60}));
        assert_eq!(out.ret["comment"], json!("Job job1 in correct state"));
        let out = run(&ctx, "schedule.delete", json!(["job1"]), json!({}));
        assert_eq!(
            out.ret,
            json!({"comment": "Deleted Job job1 from schedule.", "result": true, "changes": {"job1": "removed"}})
        );
        let out = run(&ctx, "schedule.delete", json!(["job1"]), json!({}));
        assert_eq!((out.ret["comment"].clone(), out.retcode), (json!("Job job1 does not exist."), 1));
        assert!(host.saved.lock().unwrap().is_empty());
    }

    #[test]
    fn bad_items_and_test_mode_change_nothing() {
        let (ctx, host) = ctx();
        let out = run(&ctx, "schedule.add", json!(["j"]), json!({"function": "test.ping", "cron": "* * *"}));
        assert_eq!(out.retcode, 1);
        assert!(out.ret["comment"].as_str().unwrap().contains("expected 5 fields"), "{}", out.ret);
        let out = run(&ctx, "schedule.add", json!(["j"]), json!({"function": "test.ping", "seconds": 1, "test": true}));
        assert_eq!(out.ret["comment"], json!("Job: j would be added to schedule."));
        let out =
            run(&ctx, "schedule.add", json!(["j"]), json!({"function": "test.ping", "seconds": 1, "persist": false}));
        assert_eq!(out.retcode, 0);
        assert!(host.schedule.lock().unwrap().contains_key("j"));
        assert!(host.saved.lock().unwrap().is_empty(), "persist=False does not save");
        let listed = run(&ctx, "schedule.list", json!([]), json!({})).ret;
        assert!(listed.as_str().unwrap().contains("saved: false"), "{listed}");
    }

    #[test]
    fn enable_disable_run_job_purge_save() {
        let (ctx, host) = ctx();
        run(&ctx, "schedule.add", json!(["a"]), json!({"function": "test.ping", "seconds": 5}));
        run(&ctx, "schedule.add", json!(["b"]), json!({"function": "test.ping", "seconds": 5}));
        let out = run(&ctx, "schedule.disable_job", json!(["a"]), json!({}));
        assert_eq!(
            out.ret,
            json!({"comment": "Disabled Job a in schedule.", "result": true, "changes": {"a": "disabled"}})
        );
        assert_eq!(run(&ctx, "schedule.run_job", json!(["a"]), json!({})).ret["comment"], json!("Job a is disabled."));
        assert_eq!(
            run(&ctx, "schedule.run_job", json!(["a"]), json!({"force": true})).ret["comment"],
            json!("Scheduling Job a on minion.")
        );
        assert_eq!(run(&ctx, "schedule.run_job", json!(["zz"]), json!({})).retcode, 1);
        assert_eq!(*host.ran.lock().unwrap(), vec!["a".to_string()]);
        let hidden = run(&ctx, "schedule.list", json!([]), json!({"show_disabled": false, "return_yaml": false})).ret;
        assert_eq!(hidden.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["b"]);
        let out = run(&ctx, "schedule.enable_job", json!(["a"]), json!({}));
        assert_eq!(out.ret["changes"], json!({"a": "enabled"}));
        let out = run(&ctx, "schedule.disable", json!([]), json!({}));
        assert_eq!(
            out.ret,
            json!({"comment": "Disabled schedule on minion.", "changes": {"schedule": "disabled"}, "result": true})
        );
        assert_eq!(run(&ctx, "schedule.is_enabled", json!([]), json!({})).ret, json!(false));
        let out = run(&ctx, "schedule.enable", json!([]), json!({}));
        assert_eq!(out.ret["comment"], json!("Enabled schedule on minion."));
        assert_eq!(run(&ctx, "schedule.is_enabled", json!([]), json!({})).ret, json!(true));
        assert_eq!(run(&ctx, "schedule.is_enabled", json!(["b"]), json!({})).ret["function"], json!("test.ping"));
        assert_eq!(
            run(&ctx, "schedule.save", json!([]), json!({})).ret["comment"],
            json!("Schedule (non-pillar items) saved.")
        );
        let out = run(&ctx, "schedule.purge", json!([]), json!({}));
        assert_eq!(
            out.ret,
            json!({"comment": ["Deleted job: a from schedule.", "Deleted job: b from schedule."],
                   "changes": {"a": "removed", "b": "removed"}, "result": true})
        );
    }

    #[test]
    fn without_a_minion_the_functions_say_so() {
        let err = super::super::call("schedule.list", &Context::default(), vec![], Map::new()).unwrap_err();
        assert_eq!(err.to_string(), NO_SCHEDULE);
    }
}
