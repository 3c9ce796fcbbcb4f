//! `brine.*` states, and Salt's `salt.*` spellings of them: the steps of an
//! orchestration, run on the master. `brine.function` runs a job on a target,
//! `brine.state` applies states on a target, `brine.wait_for_event` waits for events
//! from a list of minions. They work through the master's
//! [`Orchestrator`](crate::state::orchestrator::Orchestrator), so on a minion they fail.
//!
//! Results follow Salt 3007.8's `saltmod` states (comments, `changes.ret` by minion),
//! with one difference users rely on: a step succeeds only if every targeted minion
//! returned success, failures named in `fail_minions` (a list), tolerated by
//! `fail_minions: "N%"` or by `allow_fail: N` aside. A minion that did not return
//! counts as failed, and `fail_minions` also forgives a non-zero retcode (Salt's
//! `salt.function` does not).

use crate::state::orchestrator::{target_of, MinionReturn, Orchestrator, StepJob, StepReturns};
use crate::state::{Outcome, StateContext, StateFunction, StateModule};
use brine_proto::{Map, Value};
use serde::Deserialize;
use std::time::{Duration, Instant};

pub static MODULE: StateModule = StateModule {
    name: "brine",
    doc: "Orchestration steps on the master: run jobs and states on targets, wait for events",
    functions: &[&Function, &State, &WaitForEvent],
};

/// Salt's name for the same states, so Salt users' orchestration files work.
pub static SALT: StateModule = StateModule {
    name: "salt",
    doc: "Salt's spelling of the brine state module (salt.function, salt.state, salt.wait_for_event)",
    functions: &[&SaltFunction, &SaltState, &SaltWaitForEvent],
};

fn orchestrator<'a>(ctx: &StateContext<'a>, fun: &str) -> Result<&'a dyn Orchestrator, Outcome> {
    ctx.orchestrator.ok_or_else(|| {
        Outcome::failed(format!(
            "{fun} runs only in an orchestration on the master (brine orchestrate), not in a state run on a minion"
        ))
    })
}

/// Which failed minions a step forgives.
#[derive(Debug, Clone, PartialEq, Default)]
struct Tolerance {
    /// Minions whose failure is ignored.
    named: Vec<String>,
    /// This share (0–100) of the targeted minions may fail.
    percent: Option<f64>,
    /// This many minions may fail.
    count: u64,
}

impl Tolerance {
    fn parse(fail_minions: &Option<Value>, allow_fail: u64) -> Result<Tolerance, String> {
        let bad = || {
            "fail_minions must be a list of minion ids, a comma-separated string of them, or a share like \"25%\""
                .to_string()
        };
        let mut t = Tolerance { count: allow_fail, ..Tolerance::default() };
        match fail_minions {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.trim().ends_with('%') => {
                let n = s.trim().trim_end_matches('%').trim();
                match n.parse::<f64>() {
                    Ok(p) if (0.0..=100.0).contains(&p) => t.percent = Some(p),
                    _ => return Err(format!("fail_minions {s:?}: a share is a number from 0 to 100 followed by %")),
                }
            }
            Some(Value::String(s)) => {
                t.named = s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
            }
            Some(Value::Array(items)) => {
                for i in items {
                    match i.as_str() {
                        Some(s) => t.named.push(s.to_string()),
                        None => return Err(bad()),
                    }
                }
            }
            Some(_) => return Err(bad()),
        }
        Ok(t)
    }

    /// How many of the unforgiven failures may happen among `targeted` minions.
    fn allowed(&self, targeted: usize) -> u64 {
        self.count + self.percent.map_or(0, |p| ((targeted as f64) * p / 100.0).floor() as u64)
    }
}

/// A step's minions sorted into those that failed (unforgiven) and the rest.
struct Verdict {
    /// Failed or silent, not named in `fail_minions`.
    failed: Vec<String>,
    /// Did not return at all.
    silent: Vec<String>,
    /// Failed but tolerated.
    tolerated: Vec<String>,
    ok: bool,
}

fn judge(returns: &StepReturns, tolerance: &Tolerance, good: impl Fn(&MinionReturn) -> bool) -> Verdict {
    let mut v = Verdict { failed: Vec::new(), silent: Vec::new(), tolerated: Vec::new(), ok: true };
    for (id, r) in &returns.minions {
        let fine = r.as_ref().is_some_and(&good);
        if r.is_none() {
            v.silent.push(id.clone());
        }
        if fine {
            continue;
        }
        if tolerance.named.contains(id) {
            v.tolerated.push(id.clone());
        } else {
            v.failed.push(id.clone());
        }
    }
    let allowed = tolerance.allowed(returns.minions.len());
    if v.failed.len() as u64 > allowed {
        v.ok = false;
    } else {
        v.tolerated.append(&mut v.failed);
        v.tolerated.sort();
    }
    v
}

fn seconds(v: Option<f64>, what: &str) -> Result<Option<Duration>, String> {
    match v {
        None => Ok(None),
        Some(s) if s > 0.0 && s < 1e9 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(format!("{what} {s} is not a number of seconds above 0")),
    }
}

fn default_tgt_type() -> String {
    "glob".into()
}

/// Arguments of `brine.function`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionArgs {
    #[serde(default)]
    tgt: Value,
    #[serde(default = "default_tgt_type")]
    tgt_type: String,
    /// Positional arguments: a list (a string is split on blanks, as Salt does).
    #[serde(default)]
    arg: Option<Value>,
    #[serde(default)]
    kwarg: Map,
    #[serde(default)]
    fail_minions: Option<Value>,
    #[serde(default)]
    allow_fail: u64,
    #[serde(default)]
    timeout: Option<f64>,
    /// Accepted as Salt does; a minion that does not return always counts as failed.
    #[serde(default)]
    #[allow(dead_code)]
    expect_minions: Option<bool>,
}

fn run_function(ctx: &StateContext, name: &str, a: FunctionArgs, apply: bool, me: &str) -> Outcome {
    let orch = match orchestrator(ctx, me) {
        Ok(o) => o,
        Err(o) => return o,
    };
    let tgt_text = a.tgt.as_str().map_or_else(|| a.tgt.to_string(), str::to_string);
    let target = match target_of(&a.tgt, &a.tgt_type) {
        Ok(t) => t,
        Err(e) => return Outcome::failed(e),
    };
    let tolerance = match Tolerance::parse(&a.fail_minions, a.allow_fail) {
        Ok(t) => t,
        Err(e) => return Outcome::failed(e),
    };
    let timeout = match seconds(a.timeout, "timeout") {
        Ok(t) => t,
        Err(e) => return Outcome::failed(e),
    };
    let arg = match a.arg {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(Value::String(s)) => s.split_whitespace().map(|w| Value::String(w.to_string())).collect(),
        Some(other) => vec![other],
    };
    if !apply {
        return Outcome::would(format!("Function {name} would be executed on target {tgt_text}"));
    }
    let job = StepJob { target, fun: name.to_string(), arg, kwarg: a.kwarg, timeout };
    let returns = match orch.run_job(&job) {
        Ok(r) => r,
        Err(e) => return Outcome::failed(e),
    };
    if returns.minions.is_empty() {
        return Outcome::failed("No minions responded");
    }
    let verdict = judge(&returns, &tolerance, |r| r.success && r.retcode == 0 && r.ret != Value::Bool(false));
    let mut by_minion = Map::new();
    for (id, r) in &returns.minions {
        if let Some(r) = r {
            by_minion.insert(id.clone(), r.ret.clone());
        }
    }
    let ran: Vec<&str> = by_minion.keys().map(String::as_str).collect();
    let mut comment = if verdict.ok {
        "Function ran successfully.".to_string()
    } else {
        format!("Running function {name} failed on minions: {}", verdict.failed.join(", "))
    };
    if !ran.is_empty() {
        comment.push_str(&format!(" Function {name} ran on {}.", ran.join(", ")));
    }
    describe_others(&mut comment, &verdict, &returns.jid);
    let mut changes = Map::new();
    if !by_minion.is_empty() {
        changes.insert("ret".into(), Value::Object(by_minion));
    }
    Outcome { ok: verdict.ok, changes, comment, predicted: false }
}

/// Adds the silent and tolerated minions and the job's id to a step's comment.
fn describe_others(comment: &mut String, verdict: &Verdict, jid: &str) {
    if !verdict.silent.is_empty() {
        comment.push_str(&format!(" Minions that did not return: {}.", verdict.silent.join(", ")));
    }
    if verdict.ok && !verdict.tolerated.is_empty() {
        comment.push_str(&format!(" Failures tolerated (fail_minions): {}.", verdict.tolerated.join(", ")));
    }
    if !jid.is_empty() {
        comment.push_str(&format!(" Job {jid}."));
    }
}

pub struct Function;
impl StateFunction for Function {
    const NAME: &'static str = "brine.function";
    const DOC: &'static str = "Orchestration step: runs an execution function on the targeted minions and \
        waits for their returns. The state's name is the function.\n\n\
        Arguments: tgt (the target), tgt_type (glob, list, pcre, grain, grain_pcre, pillar, pillar_pcre, \
        ipcidr, nodegroup, compound; default glob), arg (list of positional arguments), kwarg (map of keyword \
        arguments), fail_minions (minions whose failure is ignored: a list, a comma-separated string, or a \
        share of the targeted minions like \"25%\"), allow_fail (how many minions may fail), timeout (seconds \
        to wait for returns). The step fails if a minion returns a failure or does not return, beyond what \
        fail_minions and allow_fail forgive. In test mode nothing runs.\n\n\
        Example:\n  restart-web:\n    brine.function:\n      - name: cmd.run\n      - tgt: 'web*'\n      \
        - arg:\n        - systemctl restart nginx\n      - fail_minions: 10%";
    type Args = FunctionArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: FunctionArgs, apply: bool) -> Outcome {
        run_function(ctx, name, a, apply, Self::NAME)
    }
}

pub struct SaltFunction;
impl StateFunction for SaltFunction {
    const NAME: &'static str = "salt.function";
    const DOC: &'static str = "Salt's name for brine.function (same arguments).\n\n\
        Example:\n  ping:\n    salt.function:\n      - name: test.ping\n      - tgt: '*'";
    type Args = FunctionArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: FunctionArgs, apply: bool) -> Outcome {
        run_function(ctx, name, a, apply, Self::NAME)
    }
}

/// Arguments of `brine.state`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateArgs {
    #[serde(default)]
    tgt: Value,
    #[serde(default = "default_tgt_type")]
    tgt_type: String,
    /// SLS names: a list or a comma-separated string.
    #[serde(default)]
    sls: Option<Value>,
    #[serde(default)]
    highstate: Option<bool>,
    #[serde(default)]
    pillar: Option<Map>,
    #[serde(default)]
    saltenv: Option<String>,
    #[serde(default)]
    test: Option<bool>,
    #[serde(default)]
    queue: bool,
    #[serde(default)]
    fail_minions: Option<Value>,
    #[serde(default)]
    allow_fail: u64,
    #[serde(default)]
    timeout: Option<f64>,
    #[serde(default)]
    #[allow(dead_code)]
    expect_minions: Option<bool>,
}

/// Salt's `state.check_result`: every state in the return succeeded (or would).
fn states_succeeded(ret: &Value) -> bool {
    match ret {
        Value::Object(m) if !m.is_empty() => m.values().all(|s| match s {
            Value::Object(state) => state.get("result") != Some(&Value::Bool(false)),
            _ => false,
        }),
        _ => false,
    }
}

fn states_changed(ret: &Value) -> bool {
    ret.as_object()
        .is_some_and(|m| m.values().any(|s| s.get("changes").and_then(Value::as_object).is_some_and(|c| !c.is_empty())))
}

fn run_state(ctx: &StateContext, a: StateArgs, apply: bool, me: &str) -> Outcome {
    let orch = match orchestrator(ctx, me) {
        Ok(o) => o,
        Err(o) => return o,
    };
    let target = match target_of(&a.tgt, &a.tgt_type) {
        Ok(t) => t,
        Err(e) => return Outcome::failed(e),
    };
    let tolerance = match Tolerance::parse(&a.fail_minions, a.allow_fail) {
        Ok(t) => t,
        Err(e) => return Outcome::failed(e),
    };
    let timeout = match seconds(a.timeout, "timeout") {
        Ok(t) => t,
        Err(e) => return Outcome::failed(e),
    };
    let sls: Vec<String> = match &a.sls {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect(),
        Some(Value::Array(items)) => {
            items.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect()
        }
        Some(other) => vec![other.to_string()],
    };
    let (fun, arg) = if a.highstate == Some(true) {
        ("state.highstate", Vec::new())
    } else if !sls.is_empty() {
        ("state.sls", vec![Value::String(sls.join(","))])
    } else {
        return Outcome::failed("No highstate or sls specified, no execution made");
    };
    let mut kwarg = Map::new();
    // Test mode of the orchestration is test mode of its state runs (Salt runs them).
    let test = a.test.or((!apply).then_some(true));
    if let Some(t) = test {
        kwarg.insert("test".into(), Value::Bool(t));
    }
    if let Some(p) = a.pillar {
        kwarg.insert("pillar".into(), Value::Object(p));
    }
    if let Some(env) = a.saltenv {
        kwarg.insert("saltenv".into(), Value::String(env));
    }
    if a.queue {
        kwarg.insert("queue".into(), Value::Bool(true));
    }
    let job = StepJob { target, fun: fun.to_string(), arg, kwarg, timeout };
    let returns = match orch.run_job(&job) {
        Ok(r) => r,
        Err(e) => return Outcome::failed(e),
    };
    if returns.minions.is_empty() {
        return Outcome::failed("No minions returned");
    }
    let verdict = judge(&returns, &tolerance, |r| r.retcode == 0 && states_succeeded(&r.ret));
    let mut changed = Map::new();
    let mut unchanged = Vec::new();
    for (id, r) in &returns.minions {
        let Some(r) = r else { continue };
        if !(r.retcode == 0 && states_succeeded(&r.ret)) || states_changed(&r.ret) {
            changed.insert(id.clone(), r.ret.clone());
        } else {
            unchanged.push(id.as_str());
        }
    }
    let mut comment = if verdict.ok {
        let mut c = "States ran successfully.".to_string();
        if !changed.is_empty() {
            c.push_str(&format!(" Updating {}.", changed.keys().cloned().collect::<Vec<_>>().join(", ")));
        }
        if !unchanged.is_empty() {
            c.push_str(&format!(" No changes made to {}.", unchanged.join(", ")));
        }
        c
    } else {
        format!("Run failed on minions: {}", verdict.failed.join(", "))
    };
    describe_others(&mut comment, &verdict, &returns.jid);
    let mut changes = Map::new();
    if !changed.is_empty() {
        changes.insert("out".into(), Value::String("highstate".into()));
        changes.insert("ret".into(), Value::Object(changed));
    }
    Outcome { ok: verdict.ok, changes, comment, predicted: false }
}

pub struct State;
impl StateFunction for State {
    const NAME: &'static str = "brine.state";
    const DOC: &'static str = "Orchestration step: applies states on the targeted minions (state.sls, or \
        state.highstate with highstate: True) and waits for their returns.\n\n\
        Arguments: tgt, tgt_type (as for brine.function), sls (a list or comma-separated names) or highstate: \
        True, pillar (extra pillar for the run), saltenv, test, queue, fail_minions, allow_fail, timeout. The \
        step fails if a minion's state run fails or the minion does not return, beyond what fail_minions and \
        allow_fail forgive. In test mode the minions run their states with test=True.\n\n\
        Example:\n  web-config:\n    brine.state:\n      - tgt: 'web*'\n      - sls:\n        - nginx\n        \
        - app\n      - require:\n        - brine: db-ready";
    type Args = StateArgs;
    fn check_apply(&self, ctx: &StateContext, _name: &str, a: StateArgs, apply: bool) -> Outcome {
        run_state(ctx, a, apply, Self::NAME)
    }
}

pub struct SaltState;
impl StateFunction for SaltState {
    const NAME: &'static str = "salt.state";
    const DOC: &'static str = "Salt's name for brine.state (same arguments).\n\n\
        Example:\n  webservers:\n    salt.state:\n      - tgt: 'web*'\n      - highstate: True";
    type Args = StateArgs;
    fn check_apply(&self, ctx: &StateContext, _name: &str, a: StateArgs, apply: bool) -> Outcome {
        run_state(ctx, a, apply, Self::NAME)
    }
}

fn default_event_id() -> String {
    "id".into()
}

fn default_event_timeout() -> f64 {
    300.0
}

/// Arguments of `brine.wait_for_event`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitArgs {
    /// The ids to wait for (usually minion ids).
    #[serde(default)]
    id_list: Vec<Value>,
    /// The field of the event's data holding the id.
    #[serde(default = "default_event_id")]
    event_id: String,
    #[serde(default = "default_event_timeout")]
    timeout: f64,
    /// Accepted as Salt does; brine waits on the master's bus.
    #[serde(default)]
    #[allow(dead_code)]
    node: Option<String>,
}

fn tag_matches(pattern: &str, tag: &str) -> bool {
    globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .build()
        .map(|g| g.compile_matcher().is_match(tag))
        .unwrap_or(false)
}

fn id_text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn wait_for_event(ctx: &StateContext, name: &str, a: WaitArgs, apply: bool, me: &str) -> Outcome {
    let orch = match orchestrator(ctx, me) {
        Ok(o) => o,
        Err(o) => return o,
    };
    let timeout = match seconds(Some(a.timeout), "timeout") {
        Ok(t) => t.unwrap_or_default(),
        Err(e) => return Outcome::failed(e),
    };
    if !apply {
        return Outcome::would(format!("Orchestration would wait for event '{name}'"));
    }
    let mut waiting: Vec<String> = a.id_list.iter().map(id_text).collect();
    let mut seen: Vec<Value> = Vec::new();
    let started = Instant::now();
    let deadline = started + timeout;
    let mut listener = match orch.listen() {
        Ok(l) => l,
        Err(e) => return Outcome::failed(e),
    };
    while !waiting.is_empty() {
        let Some((tag, data)) = listener.next(deadline) else { break };
        if !tag_matches(name, &tag) {
            continue;
        }
        let val = data.get(&a.event_id).or_else(|| data.get("data").and_then(|d| d.get(&a.event_id)));
        let found: Vec<String> = match val {
            Some(Value::Array(items)) => items.iter().map(id_text).collect(),
            Some(Value::Null) | None => continue,
            Some(v) => vec![id_text(v)],
        };
        for f in found {
            if let Some(i) = waiting.iter().position(|w| *w == f) {
                waiting.remove(i);
                seen.push(Value::String(f));
            }
        }
    }
    let mut changes = Map::new();
    if !seen.is_empty() {
        changes.insert("minions_seen".into(), Value::Array(seen));
    }
    if waiting.is_empty() {
        let comment = format!("All events seen in {} seconds.", started.elapsed().as_secs_f64());
        Outcome { ok: true, changes, comment, predicted: false }
    } else {
        let comment = if orch.aborted() {
            "The orchestration was aborted while waiting for events.".to_string()
        } else {
            "Timeout value reached.".to_string()
        };
        Outcome { ok: false, changes, comment, predicted: false }
    }
}

pub struct WaitForEvent;
impl StateFunction for WaitForEvent {
    const NAME: &'static str = "brine.wait_for_event";
    const DOC: &'static str = "Orchestration step: waits until an event whose tag matches the name (a glob) \
        arrived for every id in id_list. The id is read from the event data's `event_id` field (default `id`; \
        also looked for under `data`), which may hold one id or a list.\n\n\
        Arguments: id_list, event_id, timeout (seconds, default 300). Fails at the timeout, listing the ids \
        seen under changes.minions_seen. Events sent before the step starts are not counted.\n\n\
        Example:\n  wait-for-boot:\n    brine.wait_for_event:\n      - name: brine/minion/*/start\n      \
        - id_list:\n        - web1\n        - web2\n      - timeout: 120";
    type Args = WaitArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: WaitArgs, apply: bool) -> Outcome {
        wait_for_event(ctx, name, a, apply, Self::NAME)
    }
}

pub struct SaltWaitForEvent;
impl StateFunction for SaltWaitForEvent {
    const NAME: &'static str = "salt.wait_for_event";
    const DOC: &'static str = "Salt's name for brine.wait_for_event (same arguments).\n\n\
        Example:\n  wait:\n    salt.wait_for_event:\n      - name: salt/minion/*/start\n      - id_list: [web1]";
    type Args = WaitArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: WaitArgs, apply: bool) -> Outcome {
        wait_for_event(ctx, name, a, apply, Self::NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn returns(list: &[(&str, Option<bool>)]) -> StepReturns {
        StepReturns {
            jid: "1".into(),
            minions: list
                .iter()
                .map(|(id, r)| {
                    let ret = r.map(|ok| MinionReturn { ret: json!(ok), retcode: i32::from(!ok), success: ok });
                    (id.to_string(), ret)
                })
                .collect(),
        }
    }

    #[test]
    fn fail_minions_forgives_by_name_share_or_count() {
        let r = returns(&[("a", Some(true)), ("b", Some(false)), ("c", None), ("d", Some(true))]);
        let good = |m: &MinionReturn| m.success;
        let strict = judge(&r, &Tolerance::default(), good);
        assert!(!strict.ok);
        assert_eq!(
            (strict.failed.clone(), strict.silent.clone()),
            (vec!["b".to_string(), "c".into()], vec!["c".to_string()])
        );
        let named = Tolerance::parse(&Some(json!("b, c")), 0).unwrap();
        assert!(judge(&r, &named, good).ok);
        let half = Tolerance::parse(&Some(json!("50%")), 0).unwrap();
        let v = judge(&r, &half, good);
        assert!(v.ok);
        assert_eq!(v.tolerated, vec!["b".to_string(), "c".into()]);
        assert!(!judge(&r, &Tolerance::parse(&Some(json!("25%")), 0).unwrap(), good).ok);
        assert!(judge(&r, &Tolerance::parse(&Some(json!(["b"])), 1).unwrap(), good).ok);
        assert!(Tolerance::parse(&Some(json!("150%")), 0).is_err());
        assert!(Tolerance::parse(&Some(json!(3)), 0).is_err());
    }

    #[test]
    fn state_results_are_checked_like_salts_check_result() {
        assert!(states_succeeded(&json!({"a": {"result": true, "changes": {}}, "b": {"result": null}})));
        assert!(!states_succeeded(&json!({"a": {"result": false}})));
        assert!(!states_succeeded(&json!(["Rendering SLS failed"])));
        assert!(!states_succeeded(&json!({})));
        assert!(states_changed(&json!({"a": {"result": true, "changes": {"x": 1}}})));
    }

    #[test]
    fn on_a_minion_the_steps_fail_saying_where_they_belong() {
        let ctx = crate::exec::Context::default();
        let mut kw = Map::new();
        kw.insert("fun".into(), json!("salt.function"));
        kw.insert("name".into(), json!("test.ping"));
        kw.insert("tgt".into(), json!("*"));
        let out = crate::exec::call("state.single", &ctx, vec![], kw).unwrap();
        let state = &out.ret["salt_|-test.ping_|-test.ping_|-function"];
        assert_eq!(state["result"], json!(false));
        assert_eq!(
            state["comment"],
            json!("salt.function runs only in an orchestration on the master (brine orchestrate), not in a state run on a minion")
        );
    }

    #[test]
    fn tags_match_as_globs() {
        assert!(tag_matches("brine/minion/*/start", "brine/minion/web1/start"));
        assert!(tag_matches("deploy/done", "deploy/done"));
        assert!(!tag_matches("deploy/*", "other/x"));
    }
}
