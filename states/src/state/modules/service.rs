//! `service.*` states: keep systemd services running or stopped, enabled or disabled
//! at boot, through the `service.*` execution functions.
//!
//! Results, comments and changes follow Salt's `service` states on a systemd host:
//! `{name: True}` when the service's running or enabled status changed, "The service
//! nginx is already running", "Started service nginx", "Service nginx has been
//! enabled, and is running". A `watch` on `service.running` restarts the service (or
//! reloads it with `reload: True`, or starts it if it was stopped).
//!
//! Where systemd is not running as init (a container, a chroot) Salt's systemd provider
//! runs "offline": `running` and `dead` report "Running in OFFLINE mode. Nothing to do"
//! and so does their watch action. `enabled` and `disabled` still work there, since
//! `systemctl` edits unit links without a running systemd; brine checks that the unit
//! exists from the unit files (`service.get_all`), where Salt fails asking systemd.

use super::calls::{flag, truthy, yes_no, Calls, Live, Ret};
use crate::exec::CallError;
use crate::state::{Outcome, StateContext, StateFunction, StateModule};
use brine_proto::{Map, Value};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// Whether systemd can be asked about running services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Systemd {
    /// systemd is installed but not running as init.
    offline: bool,
}

impl Systemd {
    /// This host: offline when `/run/systemd/system` is missing but `systemctl` exists.
    fn here() -> Systemd {
        let booted = Path::new("/run/systemd/system").is_dir();
        let systemctl = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join("systemctl").is_file()))
            .unwrap_or(false);
        Systemd { offline: !booted && systemctl }
    }
}

const OFFLINE: &str = "Running in OFFLINE mode. Nothing to do";

/// The arguments of `service.running` and `service.dead` (and their watch action).
/// Salt takes any other keyword and ignores it; so does brine.
#[derive(Debug, Deserialize, Default)]
pub struct ServiceArgs {
    /// True: enable at boot; False: disable; absent: leave alone.
    #[serde(default)]
    enable: Option<Value>,
    /// Accepted for Salt's states; systemd knows its processes.
    #[serde(default)]
    sig: Option<Value>,
    /// Seconds to wait after starting or stopping.
    #[serde(default)]
    init_delay: Option<f64>,
    #[serde(default)]
    no_block: bool,
    #[serde(default)]
    unmask: bool,
    #[serde(default)]
    unmask_runtime: bool,
    /// Watch action: reload instead of restart.
    #[serde(default)]
    reload: bool,
    #[serde(flatten)]
    other: Map,
}

impl ServiceArgs {
    /// `enable` as Salt reads it: a word is true when it says so.
    fn enable(&self) -> Option<bool> {
        match &self.enable {
            None | Some(Value::Null) => None,
            Some(v) => Some(flag(v)),
        }
    }

    /// The `enabled` typo Salt catches.
    fn typo(&self, name: &str) -> Option<Ret> {
        self.other.contains_key("enabled").then(|| {
            Ret::failed(format!(
                "Service {name} uses non-existent option \"enabled\".  Perhaps \"enable\" option was intended?"
            ))
        })
    }

    fn delay(&self) -> Option<Duration> {
        self.init_delay.filter(|d| d.is_finite() && *d > 0.0).map(Duration::from_secs_f64)
    }

    fn status_args(&self, name: &str) -> Vec<Value> {
        let mut args = vec![Value::String(name.to_string())];
        if let Some(sig) = self.sig.as_ref().filter(|s| !s.is_null()) {
            args.push(sig.clone());
        }
        args
    }

    /// The keywords systemd's start, restart, reload and enable take.
    fn change_kwargs(&self) -> Map {
        let mut k = Map::new();
        for (key, on) in [("no_block", self.no_block), ("unmask", self.unmask), ("unmask_runtime", self.unmask_runtime)]
        {
            if on {
                k.insert(key.into(), Value::Bool(true));
            }
        }
        k
    }
}

fn one(name: &str) -> Vec<Value> {
    vec![Value::String(name.to_string())]
}

fn available(c: &dyn Calls, sd: Systemd, name: &str) -> Result<bool, CallError> {
    if !sd.offline {
        return yes_no(c, "service.available", one(name), Map::new());
    }
    let all = c.call("service.get_all", vec![], Map::new())?;
    let bare = name.strip_suffix(".service").unwrap_or(name);
    Ok(all.as_array().is_some_and(|units| units.iter().any(|u| u.as_str() == Some(bare) || u.as_str() == Some(name))))
}

fn status(c: &dyn Calls, a: &ServiceArgs, name: &str) -> Result<bool, CallError> {
    Ok(truthy(&c.call("service.status", a.status_args(name), Map::new())?))
}

/// What enabling or disabling made of a state's answer (Salt's `ret.update(...)`):
/// `changes` replace the state's only when set.
struct Toggle {
    result: Option<bool>,
    comment: String,
    changes: Option<Map>,
}

impl Toggle {
    fn apply_to(self, ret: &mut Ret) {
        ret.result = self.result;
        ret.comment = self.comment;
        if let Some(c) = self.changes {
            ret.changes = c;
        }
    }
}

/// How the service runs while its boot setting is changed: running, dead, or "in the
/// desired state" (`None`).
fn tail(started: Option<bool>, running: &str, desired: &str, dead: &str) -> String {
    match started {
        Some(true) => running.to_string(),
        None => desired.to_string(),
        Some(false) => dead.to_string(),
    }
}

/// Salt's `_enable`: enable at boot unless already enabled.
fn enable(
    c: &dyn Calls,
    sd: Systemd,
    name: &str,
    started: Option<bool>,
    result: bool,
    a: &ServiceArgs,
    apply: bool,
) -> Toggle {
    let mut t = Toggle { result: Some(false), comment: String::new(), changes: None };
    match available(c, sd, name) {
        Ok(true) => {}
        Ok(false) => {
            t.comment = format!("The named service {name} is not available");
            return t;
        }
        Err(e) => {
            t.comment = e.to_string();
            return t;
        }
    }
    t.result = Some(result);
    let before = match yes_no(c, "service.enabled", one(name), Map::new()) {
        Ok(b) => b,
        Err(e) => return Toggle { result: Some(false), comment: e.to_string(), changes: None },
    };
    if before {
        t.comment = format!(
            "Service {name} is already enabled, and is {}",
            tail(started, "running", "in the desired state", "dead")
        );
        if started.is_none() {
            t.changes = Some(Map::new());
        }
        return t;
    }
    if !apply {
        return Toggle { result: None, comment: format!("Service {name} set to be enabled"), changes: None };
    }
    let mut kwargs = Map::new();
    for (k, on) in [("no_block", a.no_block), ("unmask", a.unmask), ("unmask_runtime", a.unmask_runtime)] {
        if on {
            kwargs.insert(k.into(), Value::Bool(true));
        }
    }
    let error = match c.call("service.enable", one(name), kwargs) {
        Ok(v) if truthy(&v) => {
            let mut changes = Map::new();
            if yes_no(c, "service.enabled", one(name), Map::new()).unwrap_or(before) != before {
                changes.insert(name.to_string(), Value::Bool(true));
            }
            t.changes = Some(changes);
            t.comment = format!(
                "Service {name} has been enabled, and is {}",
                tail(started, "running", "in the desired state", "dead")
            );
            return t;
        }
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    };
    t.result = Some(false);
    t.comment = format!(
        "Failed when setting service {name} to start at boot, {}",
        tail(started, "but the service is running", "but the service was already running", "and the service is dead")
    );
    if let Some(e) = error {
        t.comment.push_str(&format!(". Additional information follows:\n\n{e}"));
    }
    t
}

/// Salt's `_disable`: disable at boot unless already disabled. A service that does
/// not exist is as disabled as it gets.
fn disable(c: &dyn Calls, sd: Systemd, name: &str, started: Option<bool>, result: bool, apply: bool) -> Toggle {
    let mut t = Toggle { result: Some(true), comment: String::new(), changes: None };
    match available(c, sd, name) {
        Ok(true) => {}
        Ok(false) => {
            t.comment = format!("The named service {name} is not available");
            return t;
        }
        Err(e) => return Toggle { result: Some(false), comment: e.to_string(), changes: None },
    }
    t.result = Some(result);
    let before = match yes_no(c, "service.disabled", one(name), Map::new()) {
        Ok(b) => b,
        Err(e) => return Toggle { result: Some(false), comment: e.to_string(), changes: None },
    };
    if before {
        t.comment = format!(
            "Service {name} is already disabled, and is {}",
            tail(started, "running", "in the desired state", "dead")
        );
        if started.is_none() {
            t.changes = Some(Map::new());
        }
        return t;
    }
    if !apply {
        return Toggle { result: None, comment: format!("Service {name} set to be disabled"), changes: None };
    }
    let error = match c.call("service.disable", one(name), Map::new()) {
        Ok(v) if truthy(&v) => {
            let mut changes = Map::new();
            if yes_no(c, "service.disabled", one(name), Map::new()).unwrap_or(before) != before {
                changes.insert(name.to_string(), Value::Bool(true));
            }
            t.changes = Some(changes);
            t.comment = format!(
                "Service {name} has been disabled, and is {}",
                tail(started, "running", "in the desired state", "dead")
            );
            return t;
        }
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    };
    t.result = Some(false);
    t.comment = format!(
        "Failed when setting service {name} to not start at boot, {}",
        tail(started, "and is running", "but the service was already running", "and the service is dead")
    );
    if let Some(e) = error {
        t.comment.push_str(&format!(". Additional information follows:\n\n{e}"));
    }
    t
}

/// `service.enabled` as the running/dead states read it; a failure to ask counts as
/// disabled, the way Salt's module answers False.
fn is_enabled(c: &dyn Calls, name: &str) -> bool {
    yes_no(c, "service.enabled", one(name), Map::new()).unwrap_or(false)
}

fn running(c: &dyn Calls, sd: Systemd, name: &str, a: &ServiceArgs, apply: bool) -> Ret {
    if let Some(r) = a.typo(name) {
        return r;
    }
    if sd.offline {
        return Ret::ok(OFFLINE);
    }
    match available(c, sd, name) {
        Ok(true) => {}
        Ok(false) if !apply => {
            return Ret::would(format!(
                "Service {name} not present; if created in this state run, it would have been started"
            ))
        }
        Ok(false) => return Ret::failed(format!("The named service {name} is not available")),
        Err(e) => return Ret::failed(e.to_string()),
    }
    let before = match status(c, a, name) {
        Ok(b) => b,
        Err(e) => return Ret::failed(e.to_string()),
    };
    let before_enabled = is_enabled(c, name);
    let want = a.enable();
    let mut ret = Ret::ok("");
    if before {
        ret.comment = format!("The service {name} is already running");
        match want {
            Some(true) if !before_enabled => enable(c, sd, name, None, true, a, apply).apply_to(&mut ret),
            Some(false) if before_enabled => disable(c, sd, name, None, true, apply).apply_to(&mut ret),
            _ => {}
        }
        return ret;
    }
    if !apply {
        return Ret::would(format!("Service {name} is set to start"));
    }
    if let Err(e) = c.call("service.start", one(name), a.change_kwargs()) {
        return Ret::failed(e.to_string());
    }
    if let Some(d) = a.delay() {
        std::thread::sleep(d);
    }
    let after = status(c, a, name).unwrap_or(false);
    let after_enabled = is_enabled(c, name);
    if before_enabled != after_enabled || before != after {
        ret.changes.insert(name.to_string(), Value::Bool(after));
    }
    if after {
        ret.comment = format!("Started service {name}");
    } else {
        ret.comment = format!("Service {name} failed to start");
        ret.result = Some(false);
    }
    match want {
        Some(true) => enable(c, sd, name, Some(after), after, a, apply).apply_to(&mut ret),
        Some(false) => disable(c, sd, name, Some(after), after, apply).apply_to(&mut ret),
        None => {}
    }
    if let Some(d) = a.init_delay.filter(|d| *d > 0.0) {
        ret.comment = format!("{}\nDelayed return for {} seconds", ret.comment, py_seconds(d));
    }
    ret
}

/// Seconds as Python prints the number it was given (`5`, `2.5`).
fn py_seconds(d: f64) -> String {
    if d.fract() == 0.0 && d.abs() < 1e15 {
        format!("{}", d as i64)
    } else {
        d.to_string()
    }
}

fn dead(c: &dyn Calls, sd: Systemd, name: &str, a: &ServiceArgs, apply: bool) -> Ret {
    if let Some(r) = a.typo(name) {
        return r;
    }
    if sd.offline {
        return Ret::ok(OFFLINE);
    }
    match available(c, sd, name) {
        Ok(true) => {}
        Ok(false) if !apply => {
            return Ret::would(format!(
                "Service {name} not present; if created in this state run, it would have been stopped"
            ))
        }
        // A service that does not exist is dead enough.
        Ok(false) => return Ret::ok(format!("The named service {name} is not available")),
        Err(e) => return Ret::failed(e.to_string()),
    }
    let before = match status(c, a, name) {
        Ok(b) => b,
        Err(e) => return Ret::failed(e.to_string()),
    };
    let before_enabled = is_enabled(c, name);
    let want = a.enable();
    let mut ret = Ret::ok("");
    if !before {
        ret.comment = format!("The service {name} is already dead");
        match want {
            Some(true) if !before_enabled => enable(c, sd, name, None, true, a, apply).apply_to(&mut ret),
            Some(false) if before_enabled => disable(c, sd, name, None, true, apply).apply_to(&mut ret),
            _ => {}
        }
        return ret;
    }
    if !apply {
        return Ret::would(format!("Service {name} is set to be killed"));
    }
    let mut stop_kwargs = Map::new();
    if a.no_block {
        stop_kwargs.insert("no_block".into(), Value::Bool(true));
    }
    if let Err(e) = c.call("service.stop", one(name), stop_kwargs) {
        // Salt says only that it failed; systemctl's reason is worth keeping.
        let mut ret = Ret::failed(format!("Service {name} failed to die"));
        match want {
            Some(true) => enable(c, sd, name, Some(true), false, a, apply).apply_to(&mut ret),
            Some(false) => disable(c, sd, name, Some(true), false, apply).apply_to(&mut ret),
            None => {}
        }
        ret.comment = format!("{}\n{e}", ret.comment);
        return ret;
    }
    if let Some(d) = a.delay() {
        std::thread::sleep(d);
    }
    let after = status(c, a, name).unwrap_or(true);
    let after_enabled = is_enabled(c, name);
    if before_enabled != after_enabled || before != after {
        ret.changes.insert(name.to_string(), Value::Bool(after));
    }
    if after {
        ret.result = Some(false);
        ret.comment = format!("Service {name} failed to die");
    } else {
        ret.comment = format!("Service {name} was killed");
    }
    match want {
        Some(true) => enable(c, sd, name, Some(after), !after, a, apply).apply_to(&mut ret),
        Some(false) => disable(c, sd, name, Some(after), !after, apply).apply_to(&mut ret),
        None => {}
    }
    ret
}

/// The watch action: restart (or reload, or start) a running service; stop a dead one.
fn watch(c: &dyn Calls, sd: Systemd, name: &str, sfun: &str, a: &ServiceArgs, apply: bool) -> Ret {
    if sd.offline && matches!(sfun, "running" | "dead") {
        return Ret::ok(OFFLINE);
    }
    let (fun, verb, past) = match sfun {
        "dead" => match status(c, a, name) {
            Ok(true) => ("service.stop", "stop", "stopped"),
            Ok(false) => return Ret::ok("Service is already stopped"),
            Err(e) => return Ret::failed(e.to_string()),
        },
        "running" => match status(c, a, name) {
            Ok(true) if a.reload => ("service.reload", "reload", "reloaded"),
            Ok(true) => ("service.restart", "restart", "restarted"),
            Ok(false) => ("service.start", "start", "started"),
            Err(e) => return Ret::failed(e.to_string()),
        },
        other => return Ret::failed(format!("Unable to trigger watch for service.{other}")),
    };
    if !apply {
        return Ret::would(format!("Service is set to be {past}"));
    }
    if verb == "start" {
        // Salt stops a service before starting it from a watch, clearing a failed state.
        let _ = c.call("service.stop", one(name), Map::new());
    }
    let kwargs = if verb == "stop" { Map::new() } else { a.change_kwargs() };
    match c.call(fun, one(name), kwargs) {
        Ok(v) => {
            if let Some(d) = a.delay() {
                std::thread::sleep(d);
            }
            let ok = truthy(&v);
            let mut ret = if ok {
                Ret::ok(format!("Service {past}"))
            } else {
                Ret::failed(format!("Failed to {verb} the service"))
            };
            ret.changes.insert(name.to_string(), Value::Bool(ok));
            ret
        }
        Err(e) => Ret::failed(e.to_string()),
    }
}

/// Reads a chunk's raw arguments for the watch action.
fn watch_args(args: &Map) -> Result<ServiceArgs, Ret> {
    serde_json::from_value(Value::Object(args.clone())).map_err(|e| Ret::failed(format!("Invalid arguments: {e}")))
}

pub struct Running;
impl StateFunction for Running {
    const NAME: &'static str = "service.running";
    const DOC: &'static str = "Ensures a service is running (systemd), starting it if needed. enable: \
        True also enables it at boot, False disables it. init_delay: seconds to wait after starting. \
        no_block, unmask, unmask_runtime: passed to systemctl. A watch restarts the service when a \
        watched state changed (reload: True reloads instead; a stopped service is started). Where \
        systemd is not running as init, nothing is done.\n\nExample:\n  nginx:\n    service.running:\n      - enable: True\n      - reload: True\n      - watch:\n        - file: /etc/nginx/nginx.conf";
    type Args = ServiceArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: ServiceArgs, apply: bool) -> Outcome {
        running(&Live(ctx.exec), Systemd::here(), name, &a, apply).outcome()
    }
    fn mod_watch(&self, ctx: &StateContext, name: &str, args: &Map, apply: bool, _: &[Value]) -> Option<Outcome> {
        let ret = match watch_args(args) {
            Ok(a) => watch(&Live(ctx.exec), Systemd::here(), name, "running", &a, apply),
            Err(r) => r,
        };
        Some(ret.outcome())
    }
}

pub struct Dead;
impl StateFunction for Dead {
    const NAME: &'static str = "service.dead";
    const DOC: &'static str = "Ensures a service is stopped (systemd). enable: True also enables it at \
        boot, False disables it. init_delay: seconds to wait after stopping. A watch stops it again if \
        it runs. Where systemd is not running as init, nothing is done.\n\nExample:\n  telnetd:\n    service.dead:\n      - enable: False";
    type Args = ServiceArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: ServiceArgs, apply: bool) -> Outcome {
        dead(&Live(ctx.exec), Systemd::here(), name, &a, apply).outcome()
    }
    fn mod_watch(&self, ctx: &StateContext, name: &str, args: &Map, apply: bool, _: &[Value]) -> Option<Outcome> {
        let ret = match watch_args(args) {
            Ok(a) => watch(&Live(ctx.exec), Systemd::here(), name, "dead", &a, apply),
            Err(r) => r,
        };
        Some(ret.outcome())
    }
}

/// `service.enabled` and `service.disabled` take only Salt's systemd keywords.
#[derive(Debug, Deserialize, Default)]
pub struct BootArgs {
    #[serde(default)]
    no_block: bool,
    #[serde(default)]
    unmask: bool,
    #[serde(default)]
    unmask_runtime: bool,
    /// Salt takes any other keyword and ignores it.
    #[serde(flatten)]
    #[allow(dead_code)]
    other: Map,
}

fn enabled(c: &dyn Calls, sd: Systemd, name: &str, b: &BootArgs, apply: bool) -> Ret {
    let a =
        ServiceArgs { no_block: b.no_block, unmask: b.unmask, unmask_runtime: b.unmask_runtime, ..Default::default() };
    let mut ret = Ret::ok("");
    enable(c, sd, name, None, true, &a, apply).apply_to(&mut ret);
    if !apply && ret.comment == format!("The named service {name} is not available") {
        return Ret::would(format!(
            "Service {name} not present; if created in this state run, it would have been enabled"
        ));
    }
    ret
}

fn disabled(c: &dyn Calls, sd: Systemd, name: &str, apply: bool) -> Ret {
    let mut ret = Ret::ok("");
    disable(c, sd, name, None, true, apply).apply_to(&mut ret);
    ret
}

/// What a watch on a boot-setting state gives: Salt has no action for it.
fn no_watch(sfun: &str) -> Option<Outcome> {
    Some(Ret::failed(format!("Unable to trigger watch for service.{sfun}")).outcome())
}

pub struct Enabled;
impl StateFunction for Enabled {
    const NAME: &'static str = "service.enabled";
    const DOC: &'static str = "Ensures a service starts at boot, without touching whether it runs now \
        (use enable: True on service.running for both). Works where systemd is not running as init too.\
        \n\nExample:\n  ssh:\n    service.enabled";
    type Args = BootArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: BootArgs, apply: bool) -> Outcome {
        enabled(&Live(ctx.exec), Systemd::here(), name, &a, apply).outcome()
    }
    fn mod_watch(&self, _: &StateContext, _: &str, _: &Map, _: bool, _: &[Value]) -> Option<Outcome> {
        no_watch("enabled")
    }
}

pub struct Disabled;
impl StateFunction for Disabled {
    const NAME: &'static str = "service.disabled";
    const DOC: &'static str = "Ensures a service does not start at boot, without stopping it (use \
        enable: False on service.dead for both). A service that does not exist counts as disabled.\
        \n\nExample:\n  bluetooth:\n    service.disabled";
    type Args = BootArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, _: BootArgs, apply: bool) -> Outcome {
        disabled(&Live(ctx.exec), Systemd::here(), name, apply).outcome()
    }
    fn mod_watch(&self, _: &StateContext, _: &str, _: &Map, _: bool, _: &[Value]) -> Option<Outcome> {
        no_watch("disabled")
    }
}

/// The `service` state module.
pub static MODULE: StateModule = StateModule {
    name: "service",
    doc: "Keep services running or stopped, enabled or disabled at boot (systemd).",
    functions: &[&Dead, &Disabled, &Enabled, &Running],
};

#[cfg(test)]
mod tests {
    use super::super::calls::script::Script;
    use super::*;
    use serde_json::json;

    const ONLINE: Systemd = Systemd { offline: false };

    fn args(v: Value) -> ServiceArgs {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn running_starts_a_stopped_service_and_enables_it() {
        let s = Script::new()
            .call("service.available nginx", json!(true))
            .call("service.status nginx", json!(false))
            .call("service.enabled nginx", json!(false))
            .call("service.start nginx", json!(true))
            .call("service.status nginx", json!(true))
            .call("service.enabled nginx", json!(false))
            .call("service.available nginx", json!(true))
            .call("service.enabled nginx", json!(false))
            .call("service.enable nginx", json!(true))
            .call("service.enabled nginx", json!(true));
        let ret = running(&s, ONLINE, "nginx", &args(json!({"enable": true})), true);
        s.done();
        assert_eq!(
            ret,
            Ret {
                result: Some(true),
                changes: json!({"nginx": true}).as_object().unwrap().clone(),
                comment: "Service nginx has been enabled, and is running".into()
            }
        );
    }

    #[test]
    fn running_converges_and_test_mode_predicts() {
        let s = Script::new()
            .call("service.available nginx", json!(true))
            .call("service.status nginx", json!(true))
            .call("service.enabled nginx", json!(true));
        let ret = running(&s, ONLINE, "nginx", &args(json!({"enable": true})), true);
        s.done();
        assert_eq!(ret, Ret::ok("The service nginx is already running"));

        let s = Script::new()
            .call("service.available nginx", json!(true))
            .call("service.status nginx", json!(false))
            .call("service.enabled nginx", json!(true));
        assert_eq!(running(&s, ONLINE, "nginx", &args(json!({})), false), Ret::would("Service nginx is set to start"));
        s.done();

        // Running but to be enabled: test mode says what enabling would do.
        let s = Script::new()
            .call("service.available nginx", json!(true))
            .call("service.status nginx", json!(true))
            .call("service.enabled nginx", json!(false))
            .call("service.available nginx", json!(true))
            .call("service.enabled nginx", json!(false));
        assert_eq!(
            running(&s, ONLINE, "nginx", &args(json!({"enable": "yes"})), false),
            Ret::would("Service nginx set to be enabled")
        );
        s.done();

        let s = Script::new().call("service.available nosuch", json!(false));
        assert_eq!(
            running(&s, ONLINE, "nosuch", &args(json!({})), false),
            Ret::would("Service nosuch not present; if created in this state run, it would have been started")
        );
        let s = Script::new().call("service.available nosuch", json!(false));
        assert_eq!(
            running(&s, ONLINE, "nosuch", &args(json!({})), true),
            Ret::failed("The named service nosuch is not available")
        );
    }

    #[test]
    fn a_failed_start_carries_systemctls_message() {
        let s = Script::new()
            .call("service.available web", json!(true))
            .call("service.status web", json!(false))
            .call("service.enabled web", json!(true))
            .fails(
                "service.start web no_block=true",
                "Command 'systemctl --no-block start web.service' failed with exit code 1: boom",
            );
        let ret = running(&s, ONLINE, "web", &args(json!({"no_block": true})), true);
        s.done();
        assert_eq!(ret, Ret::failed("Command 'systemctl --no-block start web.service' failed with exit code 1: boom"));
    }

    #[test]
    fn the_enabled_typo_and_offline_hosts() {
        let s = Script::new();
        let ret = running(&s, ONLINE, "ssh", &args(json!({"enabled": true})), true);
        assert_eq!(
            ret.comment,
            "Service ssh uses non-existent option \"enabled\".  Perhaps \"enable\" option was intended?"
        );
        assert_eq!(ret.result, Some(false));
        let off = Systemd { offline: true };
        assert_eq!(running(&s, off, "ssh", &args(json!({})), true), Ret::ok(OFFLINE));
        assert_eq!(dead(&s, off, "ssh", &args(json!({})), false), Ret::ok(OFFLINE));
        assert_eq!(watch(&s, off, "ssh", "running", &args(json!({})), true), Ret::ok(OFFLINE));
        // Offline, the unit files say whether the service exists.
        let s = Script::new()
            .call("service.get_all", json!(["cron", "ssh", "ssh.socket"]))
            .call("service.enabled ssh", json!(false))
            .call("service.enable ssh", json!(true))
            .call("service.enabled ssh", json!(true));
        let ret = enabled(&s, off, "ssh", &BootArgs::default(), true);
        s.done();
        assert_eq!(ret.comment, "Service ssh has been enabled, and is in the desired state");
        assert_eq!(Value::Object(ret.changes), json!({"ssh": true}));
    }

    #[test]
    fn dead_stops_and_disables() {
        let s = Script::new()
            .call("service.available cups", json!(true))
            .call("service.status cups", json!(true))
            .call("service.enabled cups", json!(true))
            .call("service.stop cups", json!(true))
            .call("service.status cups", json!(false))
            .call("service.enabled cups", json!(true))
            .call("service.available cups", json!(true))
            .call("service.disabled cups", json!(false))
            .call("service.disable cups", json!(true))
            .call("service.disabled cups", json!(true));
        let ret = dead(&s, ONLINE, "cups", &args(json!({"enable": false})), true);
        s.done();
        assert_eq!(ret.comment, "Service cups has been disabled, and is dead");
        assert_eq!((ret.result, Value::Object(ret.changes)), (Some(true), json!({"cups": true})));

        let s = Script::new()
            .call("service.available cups", json!(true))
            .call("service.status cups", json!(false))
            .call("service.enabled cups", json!(false));
        assert_eq!(
            dead(&s, ONLINE, "cups", &args(json!({"enable": false})), true),
            Ret::ok("The service cups is already dead")
        );
        let s = Script::new().call("service.available gone", json!(false));
        assert_eq!(
            dead(&s, ONLINE, "gone", &args(json!({})), true),
            Ret::ok("The named service gone is not available")
        );
        let s = Script::new()
            .call("service.available cups", json!(true))
            .call("service.status cups", json!(true))
            .call("service.enabled cups", json!(false));
        assert_eq!(dead(&s, ONLINE, "cups", &args(json!({})), false), Ret::would("Service cups is set to be killed"));
    }

    #[test]
    fn enabled_and_disabled_report_like_salt() {
        let s = Script::new().call("service.available ssh", json!(true)).call("service.enabled ssh", json!(true));
        let ret = enabled(&s, ONLINE, "ssh", &BootArgs::default(), true);
        assert_eq!(ret, Ret::ok("Service ssh is already enabled, and is in the desired state"));
        let s = Script::new().call("service.available ssh", json!(true)).call("service.enabled ssh", json!(false));
        assert_eq!(
            enabled(&s, ONLINE, "ssh", &BootArgs::default(), false),
            Ret::would("Service ssh set to be enabled")
        );
        let s = Script::new().call("service.available nope", json!(false));
        assert_eq!(
            enabled(&s, ONLINE, "nope", &BootArgs::default(), false),
            Ret::would("Service nope not present; if created in this state run, it would have been enabled")
        );
        let s = Script::new()
            .call("service.available ssh", json!(true))
            .call("service.enabled ssh", json!(false))
            .fails("service.enable ssh", "Failed to enable unit: Unit file ssh.service is masked.");
        let ret = enabled(&s, ONLINE, "ssh", &BootArgs::default(), true);
        assert_eq!(ret.result, Some(false));
        assert_eq!(
            ret.comment,
            "Failed when setting service ssh to start at boot, but the service was already running. Additional \
             information follows:\n\nFailed to enable unit: Unit file ssh.service is masked."
        );
        let s = Script::new().call("service.available gone", json!(false));
        assert_eq!(disabled(&s, ONLINE, "gone", true), Ret::ok("The named service gone is not available"));
        let s = Script::new().call("service.available ssh", json!(true)).call("service.disabled ssh", json!(true));
        assert_eq!(
            disabled(&s, ONLINE, "ssh", false),
            Ret::ok("Service ssh is already disabled, and is in the desired state")
        );
    }

    #[test]
    fn watch_restarts_reloads_or_starts() {
        let s = Script::new().call("service.status nginx", json!(true)).call("service.restart nginx", json!(true));
        let ret = watch(&s, ONLINE, "nginx", "running", &args(json!({})), true);
        s.done();
        assert_eq!((ret.comment.as_str(), Value::Object(ret.changes)), ("Service restarted", json!({"nginx": true})));
        let s = Script::new().call("service.status nginx", json!(true)).call("service.reload nginx", json!(true));
        assert_eq!(
            watch(&s, ONLINE, "nginx", "running", &args(json!({"reload": true})), true).comment,
            "Service reloaded"
        );
        let s = Script::new()
            .call("service.status nginx", json!(false))
            .call("service.stop nginx", json!(true))
            .call("service.start nginx", json!(true));
        assert_eq!(watch(&s, ONLINE, "nginx", "running", &args(json!({})), true).comment, "Service started");
        s.done();
        let s = Script::new().call("service.status nginx", json!(true));
        assert_eq!(
            watch(&s, ONLINE, "nginx", "running", &args(json!({})), false),
            Ret::would("Service is set to be restarted")
        );
        let s = Script::new().call("service.status nginx", json!(false));
        assert_eq!(watch(&s, ONLINE, "nginx", "dead", &args(json!({})), true), Ret::ok("Service is already stopped"));
        assert_eq!(no_watch("enabled").unwrap().comment, "Unable to trigger watch for service.enabled");
    }
}
