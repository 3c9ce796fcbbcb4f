//! `sysctl.present`: a kernel parameter set now and in a configuration file, so it
//! survives a reboot.
//!
//! Follows Salt's `sysctl.present` and its `linux_sysctl` module: the value is read
//! with `sysctl -n`, set with `sysctl -w` (and checked against what `sysctl` echoes),
//! and written as `name = value` to `config` — by default `/etc/sysctl.d/99-salt.conf`
//! where systemd runs as init (it ignores `/etc/sysctl.conf`), else
//! `/etc/sysctl.conf`. Values compare with their whitespace runs as one tab, as the
//! kernel prints them. Changes are `{name: value}`; comments are Salt's ("Updated
//! sysctl value vm.swappiness = 20", "Sysctl value vm.swappiness = 20 is already set").
//!
//! Where brine differs: test mode reports "already set" only when the configuration
//! file has the value too (Salt says so whenever the file names the parameter, then
//! rewrites the file when applying); a parameter the kernel does not have fails before
//! the file is touched; every line naming the parameter is brought in line, not just
//! the first.

use super::calls::{py_str, run, Calls, Live, Ret};
use crate::exec::CallError;
use crate::state::{Outcome, StateContext, StateFunction, StateModule};
use brine_proto::Value;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What Salt writes at the top of a configuration file it creates.
const HEADER: &str = "#\n# Kernel sysctl configuration\n#\n";

/// The configuration file when none is given.
fn default_config(booted: bool) -> PathBuf {
    PathBuf::from(if booted { "/etc/sysctl.d/99-salt.conf" } else { "/etc/sysctl.conf" })
}

/// The file under `/proc/sys` of a parameter (`net.ipv4.ip_forward` →
/// `net/ipv4/ip_forward`; a `/` in a name, as in VLAN interfaces, becomes `.`).
fn proc_path(name: &str) -> PathBuf {
    let swapped: String = name
        .chars()
        .map(|c| {
            if c == '.' {
                '/'
            } else if c == '/' {
                '.'
            } else {
                c
            }
        })
        .collect();
    Path::new("/proc/sys").join(swapped)
}

/// Whitespace runs as one tab, as `/proc/sys` prints multi-value parameters.
fn sanitize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join("\t")
}

/// The parameters a configuration file sets (Salt's `sysctl.show(config_file=…)`).
fn configured(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim_end().to_string(), v.trim_start().to_string()))
        .collect()
}

/// The file's text with `name = value` set: every line naming it rewritten unless its
/// value already matches, or a line appended. `None` when nothing changes.
fn persisted(text: &str, name: &str, value: &str) -> Option<String> {
    let want = sanitize(value);
    let mut found = false;
    let mut changed = false;
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let key = line.split_once('=').map(|(k, v)| (k.trim(), v.trim()));
        match key {
            Some((k, v)) if !k.starts_with('#') && k == name => {
                found = true;
                if sanitize(v) == want {
                    out.push_str(line);
                } else {
                    changed = true;
                    out.push_str(&format!("{name} = {value}\n"));
                }
            }
            _ => out.push_str(line),
        }
    }
    if !found {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{name} = {value}\n"));
        changed = true;
    }
    changed.then_some(out)
}

/// The running value (`sysctl -n`), or `None` when the kernel has no such parameter.
fn current(c: &dyn Calls, name: &str) -> Result<Option<String>, CallError> {
    let ran = run(c, &["sysctl", "-n", name], None)?;
    Ok((ran.retcode == 0).then(|| ran.stdout.trim_end_matches('\n').to_string()))
}

/// `sysctl -w name=value`, checked against what sysctl echoes back.
fn assign(c: &dyn Calls, name: &str, value: &str) -> Result<(), String> {
    let setting = format!("{name}={value}");
    let ran = run(c, &["sysctl", "-w", &setting], None).map_err(|e| e.to_string())?;
    let echoed = ran.stdout.trim_end().split_once(" = ").map(|(k, v)| (k.to_string(), v.to_string()));
    let matched = echoed.is_some_and(|(k, v)| k == name && sanitize(&v) == sanitize(value));
    if matched && !ran.stderr.contains("Invalid argument") {
        return Ok(());
    }
    let said = if ran.retcode != 0 && !ran.stderr.trim().is_empty() { ran.stderr.trim() } else { ran.stdout.trim() };
    Err(format!("sysctl -w failed: {said}"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresentArgs {
    value: Value,
    #[serde(default)]
    config: Option<String>,
}

/// How the host answers: the `sysctl` command, and whether a parameter exists.
struct Kernel<'a> {
    calls: &'a dyn Calls,
    exists: &'a dyn Fn(&str) -> bool,
}

/// Salt's `sysctl.persist`: whether anything was updated.
fn persist(k: &Kernel, name: &str, value: &str, config: &Path) -> Result<bool, String> {
    let text = match std::fs::read_to_string(config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HEADER.to_string(),
        Err(_) => return Err(format!("Could not read from file: {}", config.display())),
    };
    let new_text = persisted(&text, name, value);
    let running = current(k.calls, name).map_err(|e| e.to_string())?;
    if new_text.is_none() && running.as_deref().map(sanitize) == Some(sanitize(value)) {
        return Ok(false);
    }
    if !(k.exists)(name) {
        return Err(format!("sysctl {name} does not exist"));
    }
    if let Some(t) = new_text {
        if let Some(dir) = config.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|_| format!("Could not write to file: {}", config.display()))?;
        }
        std::fs::write(config, t).map_err(|_| format!("Could not write to file: {}", config.display()))?;
    }
    assign(k.calls, name, value)?;
    Ok(true)
}

fn present(k: &Kernel, name: &str, a: &PresentArgs, config: &Path, apply: bool) -> Ret {
    let value = py_str(&a.value);
    if !apply {
        return predict(k, name, &value, config);
    }
    match persist(k, name, &value, config) {
        Ok(true) => {
            let mut ret = Ret::ok(format!("Updated sysctl value {name} = {value}"));
            ret.changes.insert(name.to_string(), a.value.clone());
            ret
        }
        Ok(false) => Ret::ok(format!("Sysctl value {name} = {value} is already set")),
        Err(e) => Ret::failed(format!("Failed to set {name} to {value}: {e}")),
    }
}

/// Test mode: what applying would do, in Salt's words.
fn predict(k: &Kernel, name: &str, value: &str, config: &Path) -> Ret {
    let set = match std::fs::read_to_string(config) {
        Ok(t) => configured(&t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(_) => {
            return Ret::would(format!(
                "Sysctl option {name} might be changed, we failed to check config file at {}. The file is either \
                 unreadable, or missing.",
                config.display()
            ))
        }
    };
    let in_file: Vec<&String> = set.iter().filter(|(k, _)| k == name).map(|(_, v)| v).collect();
    // Salt reads the value with `cmd.run`, so sysctl's complaint about a missing
    // parameter counts as a (different) running value; its comments follow from that.
    let running = match run(k.calls, &["sysctl", "-n", name], None) {
        Ok(r) if r.retcode == 0 => Some(r.stdout),
        Ok(r) => Some(format!("{}{}", r.stdout, r.stderr)),
        Err(e) => return Ret::failed(e.to_string()),
    }
    .map(|r| r.trim_end_matches('\n').to_string())
    .filter(|r| !r.is_empty());
    let spaced = |s: &str| s.split([' ', '\t']).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ");
    match running {
        Some(cur) if !in_file.is_empty() => {
            let file_ok = in_file.iter().all(|v| sanitize(v) == sanitize(value));
            if file_ok && value.split_whitespace().eq(cur.split_whitespace()) {
                return Ret::ok(format!("Sysctl value {name} = {value} is already set"));
            }
        }
        Some(cur) => {
            return Ret::would(if spaced(&cur) != spaced(value) {
                format!("Sysctl option {name} set to be changed to {value}")
            } else {
                format!(
                    "Sysctl value is currently set on the running system but not in a config file. Sysctl option \
                     {name} set to be changed to {value} in config file."
                )
            })
        }
        None if !in_file.is_empty() => {
            return Ret::would(format!(
                "Sysctl value {name} is present in configuration file but is not present in the running config. The \
                 value {name} is set to be changed to {value}"
            ))
        }
        None => {}
    }
    Ret::would(format!("Sysctl option {name} would be changed to {value}"))
}

fn proc_exists(name: &str) -> bool {
    proc_path(name).exists()
}

pub struct Present;
impl StateFunction for Present {
    const NAME: &'static str = "sysctl.present";
    const DOC: &'static str = "Ensures a kernel parameter has a value now (sysctl -w) and after a reboot \
        (config: the file to persist it in; default /etc/sysctl.d/99-salt.conf under systemd, else \
        /etc/sysctl.conf). Give the value as the kernel prints it (1-3, not 1,2,3), or the state \
        keeps reporting changes.\n\nExample:\n  vm.swappiness:\n    sysctl.present:\n      - value: 10";
    type Args = PresentArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: PresentArgs, apply: bool) -> Outcome {
        let booted = Path::new("/run/systemd/system").is_dir();
        let config = a.config.clone().map(PathBuf::from).unwrap_or_else(|| default_config(booted));
        let k = Kernel { calls: &Live(ctx.exec), exists: &proc_exists };
        present(&k, name, &a, &config, apply).outcome()
    }
}

/// The `sysctl` state module.
pub static MODULE: StateModule =
    StateModule { name: "sysctl", doc: "Kernel parameters, set now and persisted.", functions: &[&Present] };

#[cfg(test)]
mod tests {
    use super::super::calls::script::Script;
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> PresentArgs {
        serde_json::from_value(v).unwrap()
    }

    fn yes(_: &str) -> bool {
        true
    }

    #[test]
    fn the_config_file_is_edited_line_by_line() {
        assert_eq!(persisted("# x\nvm.swappiness = 10\n", "vm.swappiness", "10"), None);
        assert_eq!(persisted("# x\nvm.swappiness=10\n", "vm.swappiness", "20").unwrap(), "# x\nvm.swappiness = 20\n");
        assert_eq!(persisted("a = 1", "b", "2").unwrap(), "a = 1\nb = 2\n");
        assert_eq!(
            persisted("#vm.swappiness = 1\n", "vm.swappiness", "2").unwrap(),
            "#vm.swappiness = 1\nvm.swappiness = 2\n"
        );
        assert_eq!(
            persisted("net.ipv4.tcp_rmem = 4096  87380 6291456\n", "net.ipv4.tcp_rmem", "4096 87380\t6291456"),
            None
        );
        assert_eq!(
            configured("# c\n a = 1\nb=2 3\n#c = 4\nnoeq\n"),
            vec![("a".into(), "1".into()), ("b".into(), "2 3".into())]
        );
        assert_eq!(
            proc_path("net.ipv4.conf.eth0/100.rp_filter"),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/rp_filter")
        );
        assert_eq!(default_config(true), PathBuf::from("/etc/sysctl.d/99-salt.conf"));
    }

    #[test]
    fn apply_writes_the_file_then_sets_the_kernel_and_converges() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sysctl.d/99-salt.conf");
        let s = Script::new().cmd("$ sysctl -n vm.swappiness", 0, "60", "").cmd(
            "$ sysctl -w vm.swappiness=20",
            0,
            "vm.swappiness = 20",
            "",
        );
        let k = Kernel { calls: &s, exists: &yes };
        let ret = present(&k, "vm.swappiness", &args(json!({"value": 20})), &config, true);
        s.done();
        assert_eq!(ret.comment, "Updated sysctl value vm.swappiness = 20");
        assert_eq!(Value::Object(ret.changes), json!({"vm.swappiness": 20}));
        assert_eq!(std::fs::read_to_string(&config).unwrap(), format!("{HEADER}vm.swappiness = 20\n"));

        let s = Script::new().cmd("$ sysctl -n vm.swappiness", 0, "20", "");
        let k = Kernel { calls: &s, exists: &yes };
        assert_eq!(
            present(&k, "vm.swappiness", &args(json!({"value": 20})), &config, true),
            Ret::ok("Sysctl value vm.swappiness = 20 is already set")
        );
        // The kernel drifted: only the kernel is set again.
        let s = Script::new().cmd("$ sysctl -n vm.swappiness", 0, "60", "").cmd(
            "$ sysctl -w vm.swappiness=20",
            0,
            "vm.swappiness = 20",
            "",
        );
        let k = Kernel { calls: &s, exists: &yes };
        assert_eq!(
            present(&k, "vm.swappiness", &args(json!({"value": 20})), &config, true).comment,
            "Updated sysctl value vm.swappiness = 20"
        );
        s.done();
    }

    #[test]
    fn failures_leave_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("s.conf");
        let s = Script::new().cmd(
            "$ sysctl -n no.such",
            255,
            "",
            "sysctl: cannot stat /proc/sys/no/such: No such file or directory",
        );
        let k = Kernel { calls: &s, exists: &|_| false };
        let ret = present(&k, "no.such", &args(json!({"value": 1})), &config, true);
        assert_eq!(ret, Ret::failed("Failed to set no.such to 1: sysctl no.such does not exist"));
        assert!(!config.exists());
        let s = Script::new().cmd("$ sysctl -n kernel.x", 0, "1", "").cmd(
            "$ sysctl -w kernel.x=abc",
            255,
            "",
            "sysctl: setting key \"kernel.x\": Invalid argument",
        );
        let k = Kernel { calls: &s, exists: &yes };
        let ret = present(&k, "kernel.x", &args(json!({"value": "abc"})), &config, true);
        assert_eq!(
            ret,
            Ret::failed(
                "Failed to set kernel.x to abc: sysctl -w failed: sysctl: setting key \"kernel.x\": Invalid argument"
            )
        );
    }

    #[test]
    fn test_mode_speaks_salts_sentences() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("s.conf");
        let k_with = |out: &'static str| Script::new().cmd("$ sysctl -n vm.swappiness", 0, out, "");
        let s = k_with("60");
        let k = Kernel { calls: &s, exists: &yes };
        assert_eq!(
            predict(&k, "vm.swappiness", "20", &config),
            Ret::would("Sysctl option vm.swappiness set to be changed to 20")
        );
        let s = k_with("20");
        let k = Kernel { calls: &s, exists: &yes };
        assert!(predict(&k, "vm.swappiness", "20", &config)
            .comment
            .starts_with("Sysctl value is currently set on the running system but not in a config file."));
        std::fs::write(&config, "vm.swappiness = 20\n").unwrap();
        let s = k_with("20");
        let k = Kernel { calls: &s, exists: &yes };
        assert_eq!(
            predict(&k, "vm.swappiness", "20", &config),
            Ret::ok("Sysctl value vm.swappiness = 20 is already set")
        );
        std::fs::write(&config, "vm.swappiness = 30\n").unwrap();
        let s = k_with("20");
        let k = Kernel { calls: &s, exists: &yes };
        assert_eq!(
            predict(&k, "vm.swappiness", "20", &config),
            Ret::would("Sysctl option vm.swappiness would be changed to 20")
        );
        let s = Script::new().cmd("$ sysctl -n vm.swappiness", 255, "", "");
        let k = Kernel { calls: &s, exists: &yes };
        assert!(predict(&k, "vm.swappiness", "20", &config)
            .comment
            .starts_with("Sysctl value vm.swappiness is present in configuration file"));
        let s = Script::new().cmd(
            "$ sysctl -n no.such",
            255,
            "",
            "sysctl: cannot stat /proc/sys/no/such: No such file or directory",
        );
        let k = Kernel { calls: &s, exists: &yes };
        assert_eq!(predict(&k, "no.such", "1", &config), Ret::would("Sysctl option no.such set to be changed to 1"));
    }
}
