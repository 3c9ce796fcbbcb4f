//! `service.*`: start, stop, enable and query services through systemd (`systemctl`).
//!
//! Names, arguments and returns follow Salt's `systemd_service` module: a name
//! without a unit suffix means `NAME.service`; `status` and `enabled` answer True or
//! False; `get_all` lists unit files (services without their `.service` suffix) plus
//! System V init scripts. Before changing a unit, a unit file that changed on disk
//! (`NeedDaemonReload=yes`, or a new file systemd has not loaded yet) triggers a
//! `systemctl daemon-reload`, so a state that just wrote a unit file works.
//!
//! Where Salt returns False for a failed `stop` or `disable`, brine fails the call with
//! systemctl's own message, like Salt does for `start`. On a host where systemd is not
//! running as init (containers, chroots), enabling and disabling still work (systemctl
//! edits the unit links offline); starting and stopping fail with systemctl's message
//! and a note saying so.

use super::host::{fnmatch, is_glob, CommandLine, Host, Runner, Word};
use super::{opt, req, CallError, Context, Function, Output, Param};
use brine_proto::{Map, Value};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Unit suffixes that are kept as given; any other name is a service.
const UNIT_TYPES: [&str; 9] = ["service", "socket", "device", "mount", "automount", "swap", "target", "path", "timer"];

/// Where unit files live; `/etc` last, as the administrator's directory.
const UNIT_DIRS: [&str; 3] = ["/lib/systemd/system", "/usr/lib/systemd/system", "/etc/systemd/system"];

/// Where System V init scripts live.
const INIT_SCRIPTS: &str = "/etc/init.d";

/// This host's systemd, as far as the functions need to know.
#[derive(Debug, Clone, Copy)]
struct Systemd {
    /// Whether systemd runs as init (`/run/systemd/system` exists).
    booted: bool,
}

impl Systemd {
    fn here() -> Systemd {
        Systemd { booted: Path::new("/run/systemd/system").is_dir() }
    }

    /// Runs a command that needs the running service manager and fails with
    /// systemctl's message (plus a hint when systemd is not running).
    fn run_ok(&self, r: &dyn Runner, cmd: &CommandLine) -> Result<(), CallError> {
        let ran = r.run(cmd)?;
        if ran.success() {
            return Ok(());
        }
        let err = ran.failure(cmd);
        if self.booted {
            Err(err)
        } else {
            Err(CallError::failed(format!(
                "{err}\n(systemd is not running as init on this host: /run/systemd/system is missing)"
            )))
        }
    }
}

/// `NAME.service` unless the name already ends in a unit type.
fn unit_name(name: &str) -> String {
    if UNIT_TYPES.iter().any(|t| name.ends_with(&format!(".{t}"))) {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

/// `systemctl [--no-block] [--root ROOT] ACTION… [UNIT]`.
fn systemctl(action: &[&str], name: Option<&str>, no_block: bool, root: Option<&str>) -> CommandLine {
    let mut c = CommandLine::new("systemctl");
    if no_block {
        c = c.arg("--no-block");
    }
    if let Some(root) = root {
        c = c.args(["--root", root]);
    }
    c = c.args(action.iter().copied());
    if let Some(name) = name {
        c = c.arg(unit_name(name));
    }
    c
}

/// Reads `systemctl show` output (`Key=Value` lines).
fn parse_show(out: &str) -> BTreeMap<String, String> {
    out.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect()
}

/// Reloads systemd's configuration when `name`'s unit file changed on disk or is new.
/// Skipped when systemd is not running (there is nothing loaded to refresh).
fn reload_if_changed(r: &dyn Runner, sd: Systemd, name: &str, unit_dirs: &[PathBuf]) -> Result<(), CallError> {
    if !sd.booted {
        return Ok(());
    }
    let show = r.run(&systemctl(&["show", "--property=LoadState,NeedDaemonReload"], Some(name), false, None))?;
    if !show.success() {
        return Ok(());
    }
    let props = parse_show(&show.stdout);
    let unit = unit_name(name);
    let stale = props.get("NeedDaemonReload").is_some_and(|v| v == "yes");
    let unloaded =
        props.get("LoadState").is_some_and(|v| v == "not-found") && unit_dirs.iter().any(|d| d.join(&unit).exists());
    if stale || unloaded {
        sd.run_ok(r, &systemctl(&["daemon-reload"], None, false, None))?;
    }
    Ok(())
}

fn default_unit_dirs() -> Vec<PathBuf> {
    UNIT_DIRS.iter().map(PathBuf::from).chain([PathBuf::from("/run/systemd/system")]).collect()
}

/// Removes a mask first when asked to.
fn unmask_first(r: &dyn Runner, sd: Systemd, name: &str, unmask: bool, runtime: bool) -> Result<(), CallError> {
    if unmask {
        sd.run_ok(r, &systemctl(&["unmask"], Some(name), false, None))?;
    }
    if runtime {
        sd.run_ok(r, &systemctl(&["unmask", "--runtime"], Some(name), false, None))?;
    }
    Ok(())
}

/// `path` inside `root` (or itself without a root).
fn rooted(root: Option<&str>, path: &str) -> PathBuf {
    match root {
        Some(root) => Path::new(root).join(path.trim_start_matches('/')),
        None => PathBuf::from(path),
    }
}

/// Every unit file and init script under `root`: services by bare name, other units
/// with their suffix, then System V scripts that have no unit of the same name.
fn get_all(root: Option<&str>) -> Vec<String> {
    let mut units = BTreeSet::new();
    for dir in UNIT_DIRS {
        let Ok(entries) = std::fs::read_dir(rooted(root, dir)) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((base, kind)) = name.rsplit_once('.') else { continue };
            if kind == "service" {
                units.insert(base.to_string());
            } else if UNIT_TYPES.contains(&kind) {
                units.insert(name);
            }
        }
    }
    let mut scripts = BTreeSet::new();
    if let Ok(entries) = std::fs::read_dir(rooted(root, INIT_SCRIPTS)) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let executable = entry.path().metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if executable && !units.contains(&name) {
                scripts.insert(name);
            }
        }
    }
    units.extend(scripts);
    units.into_iter().collect()
}

fn is_active(r: &dyn Runner, name: &str) -> Result<bool, CallError> {
    Ok(r.run(&systemctl(&["is-active"], Some(name), false, None))?.success())
}

fn status(r: &dyn Runner, name: &str, all: impl FnOnce() -> Vec<String>) -> Result<Value, CallError> {
    if !is_glob(name) {
        return Ok(Value::Bool(is_active(r, name)?));
    }
    let mut out = Map::new();
    for service in all().into_iter().filter(|s| fnmatch(name, s)) {
        let active = is_active(r, &service)?;
        out.insert(service, Value::Bool(active));
    }
    Ok(Value::Object(out))
}

/// Whether `name` starts at boot: `systemctl is-enabled`, following an alias to its
/// unit.
fn enabled(r: &dyn Runner, name: &str, root: Option<&str>) -> Result<bool, CallError> {
    let ran = r.run(&systemctl(&["is-enabled"], Some(name), false, root))?;
    let state = ran.stdout.trim();
    if state == "alias" {
        let id = r.run(&systemctl(&["show", "-P", "Id"], Some(name), false, root))?;
        let target = id.stdout.trim();
        if target.is_empty() {
            return Ok(false);
        }
        return Ok(r.run(&systemctl(&["is-enabled"], Some(target), false, root))?.success());
    }
    Ok(ran.success())
}

fn available(r: &dyn Runner, sd: Systemd, name: &str) -> Result<bool, CallError> {
    if !sd.booted {
        return Err(CallError::failed(format!(
            "Cannot run in offline mode. Failed to get information on unit '{name}' (systemd is not running \
             as init on this host)"
        )));
    }
    let cmd = systemctl(&["show", "--property=LoadState"], Some(name), false, None);
    let props = parse_show(&r.run_ok(&cmd)?.stdout);
    match props.get("LoadState") {
        Some(state) => Ok(state != "not-found"),
        None => Err(CallError::failed(format!("Failed to get information on unit '{name}'"))),
    }
}

// ---------------------------------------------------------------------------------
// Functions.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeArgs {
    name: Word,
    #[serde(default)]
    no_block: bool,
    #[serde(default)]
    unmask: bool,
    #[serde(default)]
    unmask_runtime: bool,
}

/// Start, restart and reload: unmask if asked, reload changed unit files, run.
fn change(r: &dyn Runner, sd: Systemd, action: &str, a: &ChangeArgs) -> Result<Value, CallError> {
    let name = a.name.as_str();
    reload_if_changed(r, sd, name, &default_unit_dirs())?;
    unmask_first(r, sd, name, a.unmask, a.unmask_runtime)?;
    sd.run_ok(r, &systemctl(&[action], Some(name), a.no_block, None))?;
    Ok(Value::Bool(true))
}

fn stop(r: &dyn Runner, sd: Systemd, a: &StopArgs) -> Result<Value, CallError> {
    reload_if_changed(r, sd, a.name.as_str(), &default_unit_dirs())?;
    sd.run_ok(r, &systemctl(&["stop"], Some(a.name.as_str()), a.no_block.unwrap_or(false), None))?;
    Ok(Value::Bool(true))
}

/// Enables a unit; with `root`, offline in that tree (nothing loaded to reload or
/// unmask there).
fn enable(r: &dyn Runner, sd: Systemd, a: &EnableArgs) -> Result<Value, CallError> {
    let name = a.name.as_str();
    if a.root.is_none() {
        reload_if_changed(r, sd, name, &default_unit_dirs())?;
        unmask_first(r, sd, name, a.unmask, a.unmask_runtime)?;
    }
    sd.run_ok(r, &systemctl(&["enable"], Some(name), a.no_block, a.root.as_deref()))?;
    Ok(Value::Bool(true))
}

fn disable(r: &dyn Runner, sd: Systemd, a: &DisableArgs) -> Result<Value, CallError> {
    if a.root.is_none() {
        reload_if_changed(r, sd, a.name.as_str(), &default_unit_dirs())?;
    }
    sd.run_ok(r, &systemctl(&["disable"], Some(a.name.as_str()), a.no_block, a.root.as_deref()))?;
    Ok(Value::Bool(true))
}

const CHANGE_PARAMS: &[Param] = &[req("name"), opt("no_block"), opt("unmask"), opt("unmask_runtime")];

pub struct Start;
impl Function for Start {
    const NAME: &'static str = "service.start";
    const DOC: &'static str = "Starts a service and returns True; fails with systemctl's message.\n\n\
        no_block: do not wait for the start to finish. unmask / unmask_runtime: remove a mask (or a \
        runtime mask) first.\n\n\
        CLI example: brine run '*' service.start nginx";
    const PARAMS: &'static [Param] = CHANGE_PARAMS;
    type Args = ChangeArgs;
    fn call(&self, ctx: &Context, a: ChangeArgs) -> Result<Output, CallError> {
        Ok(Output::ok(change(&Host::new(ctx), Systemd::here(), "start", &a)?))
    }
}

pub struct Restart;
impl Function for Restart {
    const NAME: &'static str = "service.restart";
    const DOC: &'static str = "Restarts a service (starting it if stopped) and returns True; fails with \
        systemctl's message.\n\n\
        no_block: do not wait for the restart to finish. unmask / unmask_runtime: remove a mask (or a \
        runtime mask) first.\n\n\
        CLI example: brine run '*' service.restart nginx";
    const PARAMS: &'static [Param] = CHANGE_PARAMS;
    type Args = ChangeArgs;
    fn call(&self, ctx: &Context, a: ChangeArgs) -> Result<Output, CallError> {
        Ok(Output::ok(change(&Host::new(ctx), Systemd::here(), "restart", &a)?))
    }
}

pub struct Reload;
impl Function for Reload {
    const NAME: &'static str = "service.reload";
    const DOC: &'static str = "Reloads a service's configuration and returns True; fails with \
        systemctl's message (for example when the unit cannot reload).\n\n\
        no_block: do not wait for the reload to finish. unmask / unmask_runtime: remove a mask (or a \
        runtime mask) first.\n\n\
        CLI example: brine run '*' service.reload nginx";
    const PARAMS: &'static [Param] = CHANGE_PARAMS;
    type Args = ChangeArgs;
    fn call(&self, ctx: &Context, a: ChangeArgs) -> Result<Output, CallError> {
        Ok(Output::ok(change(&Host::new(ctx), Systemd::here(), "reload", &a)?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopArgs {
    name: Word,
    #[serde(default)]
    no_block: Option<bool>,
}

pub struct Stop;
impl Function for Stop {
    const NAME: &'static str = "service.stop";
    const DOC: &'static str = "Stops a service and returns True; fails with systemctl's message.\n\n\
        no_block: do not wait for the stop to finish.\n\n\
        CLI example: brine run '*' service.stop nginx";
    const PARAMS: &'static [Param] = &[req("name"), opt("no_block")];
    type Args = StopArgs;
    fn call(&self, ctx: &Context, a: StopArgs) -> Result<Output, CallError> {
        Ok(Output::ok(stop(&Host::new(ctx), Systemd::here(), &a)?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusArgs {
    name: Word,
    /// Accepted for Salt's states, which pass it; systemd knows its processes.
    #[serde(default)]
    #[allow(dead_code)]
    sig: Option<Word>,
}

pub struct Status;
impl Function for Status {
    const NAME: &'static str = "service.status";
    const DOC: &'static str = "Returns True if the service is running (systemctl is-active), else False. \
        A glob name (nginx*, ssh?) returns {service: True|False} for every matching service.\n\n\
        sig: accepted and ignored, as on Salt's systemd hosts.\n\n\
        CLI example: brine run '*' service.status nginx";
    const PARAMS: &'static [Param] = &[req("name"), opt("sig")];
    type Args = StatusArgs;
    fn call(&self, ctx: &Context, a: StatusArgs) -> Result<Output, CallError> {
        Ok(Output::ok(status(&Host::new(ctx), a.name.as_str(), || get_all(None))?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnableArgs {
    name: Word,
    #[serde(default)]
    no_block: bool,
    #[serde(default)]
    unmask: bool,
    #[serde(default)]
    unmask_runtime: bool,
    #[serde(default)]
    root: Option<String>,
}

pub struct Enable;
impl Function for Enable {
    const NAME: &'static str = "service.enable";
    const DOC: &'static str = "Enables a service to start at boot and returns True; fails with \
        systemctl's message.\n\n\
        no_block: do not wait. unmask / unmask_runtime: remove a mask (or a runtime mask) first. root: \
        enable in the unit files under that directory (an image or chroot).\n\n\
        CLI example: brine run '*' service.enable nginx";
    const PARAMS: &'static [Param] = &[req("name"), opt("no_block"), opt("unmask"), opt("unmask_runtime"), opt("root")];
    type Args = EnableArgs;
    fn call(&self, ctx: &Context, a: EnableArgs) -> Result<Output, CallError> {
        Ok(Output::ok(enable(&Host::new(ctx), Systemd::here(), &a)?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableArgs {
    name: Word,
    #[serde(default)]
    no_block: bool,
    #[serde(default)]
    root: Option<String>,
}

pub struct Disable;
impl Function for Disable {
    const NAME: &'static str = "service.disable";
    const DOC: &'static str = "Disables a service from starting at boot and returns True; fails with \
        systemctl's message.\n\n\
        no_block: do not wait. root: disable in the unit files under that directory.\n\n\
        CLI example: brine run '*' service.disable nginx";
    const PARAMS: &'static [Param] = &[req("name"), opt("no_block"), opt("root")];
    type Args = DisableArgs;
    fn call(&self, ctx: &Context, a: DisableArgs) -> Result<Output, CallError> {
        Ok(Output::ok(disable(&Host::new(ctx), Systemd::here(), &a)?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnabledArgs {
    name: Word,
    #[serde(default)]
    root: Option<String>,
}

pub struct Enabled;
impl Function for Enabled {
    const NAME: &'static str = "service.enabled";
    const DOC: &'static str = "Returns True if the service starts at boot (systemctl is-enabled, \
        following aliases), else False.\n\n\
        root: look at the unit files under that directory.\n\n\
        CLI example: brine run '*' service.enabled nginx";
    const PARAMS: &'static [Param] = &[req("name"), opt("root")];
    type Args = EnabledArgs;
    fn call(&self, ctx: &Context, a: EnabledArgs) -> Result<Output, CallError> {
        Ok(Output::ok(enabled(&Host::new(ctx), a.name.as_str(), a.root.as_deref())?))
    }
}

pub struct Disabled;
impl Function for Disabled {
    const NAME: &'static str = "service.disabled";
    const DOC: &'static str = "Returns True if the service does not start at boot: the opposite of \
        service.enabled.\n\n\
        root: look at the unit files under that directory.\n\n\
        CLI example: brine run '*' service.disabled nginx";
    const PARAMS: &'static [Param] = &[req("name"), opt("root")];
    type Args = EnabledArgs;
    fn call(&self, ctx: &Context, a: EnabledArgs) -> Result<Output, CallError> {
        Ok(Output::ok(!enabled(&Host::new(ctx), a.name.as_str(), a.root.as_deref())?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetAllArgs {
    #[serde(default)]
    root: Option<String>,
}

pub struct GetAll;
impl Function for GetAll {
    const NAME: &'static str = "service.get_all";
    const DOC: &'static str = "Lists every service and unit, sorted: services by bare name (ssh), other \
        units with their type (ssh.socket), and System V init scripts without a unit.\n\n\
        root: list the unit files under that directory.\n\n\
        CLI example: brine run '*' service.get_all";
    const PARAMS: &'static [Param] = &[opt("root")];
    type Args = GetAllArgs;
    fn call(&self, _: &Context, a: GetAllArgs) -> Result<Output, CallError> {
        Ok(Output::ok(get_all(a.root.as_deref())))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailableArgs {
    name: Word,
}

pub struct Available;
impl Function for Available {
    const NAME: &'static str = "service.available";
    const DOC: &'static str = "Returns True if systemd knows the unit (it has a unit file, even masked), \
        else False. Needs systemd running as init.\n\n\
        CLI example: brine run '*' service.available sshd";
    const PARAMS: &'static [Param] = &[req("name")];
    type Args = AvailableArgs;
    fn call(&self, ctx: &Context, a: AvailableArgs) -> Result<Output, CallError> {
        Ok(Output::ok(available(&Host::new(ctx), Systemd::here(), a.name.as_str())?))
    }
}

/// The `service` execution module.
pub static MODULE: super::Module = super::Module {
    name: "service",
    doc: "Start, stop, enable and query services (systemd).",
    functions: &[
        &Available, &Disable, &Disabled, &Enable, &Enabled, &GetAll, &Reload, &Restart, &Start, &Status, &Stop,
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::host::script::Script;
    use crate::exec::host::Ran;
    use serde_json::json;

    const UP: Systemd = Systemd { booted: true };
    const DOWN: Systemd = Systemd { booted: false };

    fn args<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn names_without_a_unit_type_are_services() {
        assert_eq!(unit_name("nginx"), "nginx.service");
        assert_eq!(unit_name("getty@tty1"), "getty@tty1.service");
        assert_eq!(unit_name("ssh.socket"), "ssh.socket");
        assert_eq!(unit_name("multi-user.target"), "multi-user.target");
        assert_eq!(unit_name("php8.2-fpm"), "php8.2-fpm.service");
        assert_eq!(
            systemctl(&["enable"], Some("nginx"), true, Some("/mnt/img")).to_string(),
            "systemctl --no-block --root /mnt/img enable nginx.service"
        );
    }

    #[test]
    fn start_reloads_changed_unit_files_and_unmasks_when_asked() {
        let script = Script::new()
            .ok(
                "systemctl show --property=LoadState,NeedDaemonReload nginx.service",
                "LoadState=loaded\nNeedDaemonReload=yes\n",
            )
            .ok("systemctl daemon-reload", "")
            .ok("systemctl unmask nginx.service", "")
            .ok("systemctl --no-block start nginx.service", "");
        let got = change(&script, UP, "start", &args(json!({"name": "nginx", "unmask": true, "no_block": true})));
        script.done();
        assert_eq!(got.unwrap(), json!(true));

        // A brand-new unit file systemd has not loaded yet also needs a reload.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("brine-new.service"), "[Service]\nExecStart=/bin/true\n").unwrap();
        let script = Script::new()
            .ok(
                "systemctl show --property=LoadState,NeedDaemonReload brine-new.service",
                "LoadState=not-found\nNeedDaemonReload=no\n",
            )
            .ok("systemctl daemon-reload", "");
        reload_if_changed(&script, UP, "brine-new", &[dir.path().to_path_buf()]).unwrap();
        script.done();
        let script = Script::new().ok(
            "systemctl show --property=LoadState,NeedDaemonReload other.service",
            "LoadState=not-found\nNeedDaemonReload=no\n",
        );
        reload_if_changed(&script, UP, "other", &[dir.path().to_path_buf()]).unwrap();
        script.done();
    }

    #[test]
    fn failures_carry_systemctls_message_and_an_offline_hint() {
        let script = Script::new()
            .ok(
                "systemctl show --property=LoadState,NeedDaemonReload nosuch.service",
                "LoadState=not-found\nNeedDaemonReload=no\n",
            )
            .fails(
                "systemctl restart nosuch.service",
                5,
                "Failed to restart nosuch.service: Unit nosuch.service not found.\n",
            );
        let err = change(&script, UP, "restart", &args(json!({"name": "nosuch"}))).unwrap_err().to_string();
        script.done();
        assert_eq!(
            err,
            "Command 'systemctl restart nosuch.service' failed with exit code 5: Failed to restart nosuch.service: \
             Unit nosuch.service not found."
        );
        let script = Script::new().fails(
            "systemctl start nginx.service",
            1,
            "System has not been booted with systemd as init system (PID 1). Can't operate.",
        );
        let err = change(&script, DOWN, "start", &args(json!({"name": "nginx"}))).unwrap_err().to_string();
        script.done();
        assert!(err.contains("Can't operate.\n(systemd is not running as init on this host"), "{err}");
    }

    #[test]
    fn stop_enable_and_disable_run_systemctl() {
        let script = Script::new()
            .ok(
                "systemctl show --property=LoadState,NeedDaemonReload nginx.service",
                "LoadState=loaded\nNeedDaemonReload=no\n",
            )
            .ok("systemctl stop nginx.service", "")
            .ok(
                "systemctl show --property=LoadState,NeedDaemonReload nginx.service",
                "LoadState=loaded\nNeedDaemonReload=no\n",
            )
            .ok("systemctl unmask --runtime nginx.service", "")
            .ok("systemctl enable nginx.service", "")
            .ok("systemctl disable nginx.service", "");
        assert_eq!(stop(&script, UP, &args(json!({"name": "nginx"}))).unwrap(), json!(true));
        assert_eq!(enable(&script, UP, &args(json!({"name": "nginx", "unmask_runtime": true}))).unwrap(), json!(true));
        // Offline (not booted): no reload check, systemctl edits the links itself.
        assert_eq!(disable(&script, DOWN, &args(json!({"name": "nginx"}))).unwrap(), json!(true));
        script.done();
        let script = Script::new().fails(
            "systemctl --root /img disable nosuch.service",
            1,
            "Failed to disable unit: Unit file nosuch.service does not exist.",
        );
        let err = disable(&script, UP, &args(json!({"name": "nosuch", "root": "/img"}))).unwrap_err().to_string();
        assert!(err.ends_with("Unit file nosuch.service does not exist."), "{err}");
        script.done();
    }

    #[test]
    fn status_is_is_active_and_globs_give_a_map() {
        let script = Script::new()
            .fails("systemctl is-active nginx.service", 3, "")
            .ok("systemctl is-active ssh.service", "active\n")
            .fails("systemctl is-active ssh.socket", 3, "");
        assert_eq!(status(&script, "nginx", Vec::new).unwrap(), json!(false));
        let all = || vec!["cron".to_string(), "ssh".to_string(), "ssh.socket".to_string()];
        assert_eq!(status(&script, "ssh*", all).unwrap(), json!({"ssh": true, "ssh.socket": false}));
        script.done();
    }

    #[test]
    fn enabled_follows_aliases() {
        let script = Script::new()
            .ok("systemctl is-enabled ssh.service", "enabled\n")
            .step(
                "systemctl is-enabled sshd.service",
                Ran { stdout: "alias\n".into(), retcode: 0, ..Default::default() },
            )
            .ok("systemctl show -P Id sshd.service", "ssh.service\n")
            .ok("systemctl is-enabled ssh.service", "enabled\n")
            .step(
                "systemctl --root /img is-enabled cron.service",
                Ran { stdout: "disabled\n".into(), retcode: 1, ..Default::default() },
            );
        assert!(enabled(&script, "ssh", None).unwrap());
        assert!(enabled(&script, "sshd", None).unwrap());
        assert!(!enabled(&script, "cron", Some("/img")).unwrap());
        script.done();
    }

    #[test]
    fn available_reads_the_load_state() {
        let script = Script::new()
            .ok("systemctl show --property=LoadState nginx.service", "LoadState=loaded\n")
            .ok("systemctl show --property=LoadState nosuch.service", "LoadState=not-found\n")
            .ok("systemctl show --property=LoadState masked.service", "LoadState=masked\n");
        assert!(available(&script, UP, "nginx").unwrap());
        assert!(!available(&script, UP, "nosuch").unwrap());
        assert!(available(&script, UP, "masked").unwrap());
        script.done();
        let err = available(&Script::new(), DOWN, "nginx").unwrap_err().to_string();
        assert!(err.starts_with("Cannot run in offline mode. Failed to get information on unit 'nginx'"), "{err}");
    }

    #[test]
    fn get_all_lists_units_and_init_scripts_under_a_root() {
        let root = tempfile::tempdir().unwrap();
        let p = |rel: &str| root.path().join(rel);
        for d in ["lib/systemd/system", "etc/systemd/system", "etc/init.d"] {
            std::fs::create_dir_all(p(d)).unwrap();
        }
        for f in
            ["lib/systemd/system/ssh.service", "lib/systemd/system/ssh.socket", "lib/systemd/system/getty@.service"]
        {
            std::fs::write(p(f), "").unwrap();
        }
        std::fs::write(p("lib/systemd/system/README"), "").unwrap();
        std::fs::write(p("lib/systemd/system/foo.conf"), "").unwrap();
        std::fs::write(p("etc/systemd/system/custom.timer"), "").unwrap();
        for (f, mode) in [("etc/init.d/ssh", 0o755), ("etc/init.d/procps", 0o755), ("etc/init.d/README", 0o644)] {
            std::fs::write(p(f), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p(f), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let root = root.path().to_str().unwrap();
        assert_eq!(get_all(Some(root)), ["custom.timer", "getty@", "procps", "ssh", "ssh.socket"]);
    }

    #[test]
    fn show_output_parses_into_properties() {
        let props = parse_show("Id=ssh.service\nNames=ssh.service sshd.service\nExecStart={ path=/usr/sbin/sshd ; argv[]=/usr/sbin/sshd -D }\n");
        assert_eq!(props["Names"], "ssh.service sshd.service");
        assert_eq!(props["ExecStart"], "{ path=/usr/sbin/sshd ; argv[]=/usr/sbin/sshd -D }");
    }

    /// Read-only checks against the real host's systemd, skipped where it is not init.
    #[test]
    fn real_systemd_queries() {
        let ctx = Context::default();
        let all = crate::exec::call("service.get_all", &ctx, vec![], Map::new()).unwrap().ret;
        assert!(all.is_array());
        if !Systemd::here().booted || super::super::host::which("systemctl").is_none() {
            eprintln!("skipped the live part: systemd is not running as init here");
            let err = crate::exec::call("service.available", &ctx, vec![json!("brine-no-such-unit")], Map::new());
            assert!(err.unwrap_err().to_string().contains("offline mode"));
            return;
        }
        let call = |f: &str| crate::exec::call(f, &ctx, vec![json!("brine-no-such-unit")], Map::new()).unwrap().ret;
        assert_eq!(call("service.available"), json!(false));
        assert_eq!(call("service.status"), json!(false));
        assert_eq!(call("service.enabled"), json!(false));
        assert_eq!(call("service.disabled"), json!(true));
    }
}
