//! `audit.*`: the shell hook of the audit beacon.
//!
//! The hook is a bash snippet for `/etc/profile.d/`: in every interactive bash shell
//! it appends one JSON line per command typed (time, user, uid, tty, cwd, pid,
//! command) to `<spool_dir>/<uid>`, a file the user owns in a root-owned directory of
//! mode 1733 (anyone may create a file there, nobody may list, delete or rename
//! another's). The minion's `audit` beacon reads those files and names the user by
//! the file's owner, never by what the line says: a user can forge or erase their
//! own lines before they are shipped, not anyone else's. docs/beacons.md says more.

use super::{opt_or, CallError, Context, Function, Output, Param, ParamDefault};
use brine_proto::Value;
use serde::Deserialize;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Where the hook writes and the audit beacon reads, unless configured otherwise.
pub const DEFAULT_SPOOL_DIR: &str = "/var/spool/brine/audit";

/// Where `audit.install_hook` puts the hook by default.
pub const DEFAULT_HOOK_PATH: &str = "/etc/profile.d/brine-audit.sh";

const HOOK: &str = include_str!("audit_hook.sh");

/// The hook script writing to `spool_dir`.
pub fn hook_script(spool_dir: &str) -> Result<String, String> {
    if !spool_dir.starts_with('/') || spool_dir.contains(['\'', '\n', '\0']) {
        return Err(format!("spool_dir {spool_dir:?} must be an absolute path without quotes or newlines"));
    }
    Ok(HOOK.replace("@SPOOL_DIR@", spool_dir))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptArgs {
    #[serde(default = "default_spool")]
    spool_dir: String,
}

fn default_spool() -> String {
    DEFAULT_SPOOL_DIR.into()
}

fn default_hook() -> String {
    DEFAULT_HOOK_PATH.into()
}

pub struct HookScript;
impl Function for HookScript {
    const NAME: &'static str = "audit.hook_script";
    const DOC: &'static str = "Returns the bash hook that records the commands typed in interactive \
        shells for the audit beacon (for a file.managed of your own).\n\n\
        CLI example: brine run '*' audit.hook_script spool_dir=/var/spool/brine/audit";
    const PARAMS: &'static [Param] = &[opt_or("spool_dir", ParamDefault::Str(DEFAULT_SPOOL_DIR))];
    type Args = ScriptArgs;
    fn call(&self, _: &Context, a: ScriptArgs) -> Result<Output, CallError> {
        hook_script(&a.spool_dir).map(|s| Output::ok(Value::String(s))).map_err(CallError::Failed)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallArgs {
    #[serde(default = "default_hook")]
    path: String,
    #[serde(default = "default_spool")]
    spool_dir: String,
    #[serde(default)]
    test: bool,
}

/// Creates the spool directory (root's, mode 1733) or fixes its mode; whether it
/// changed anything.
fn ensure_spool_dir(dir: &Path, test: bool) -> Result<bool, String> {
    let err = |e: std::io::Error| format!("{}: {e}", dir.display());
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            if meta.permissions().mode() & 0o7777 == 0o1733 {
                return Ok(false);
            }
            if !test {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1733)).map_err(err)?;
            }
            Ok(true)
        }
        Ok(_) => Err(format!("{} exists and is not a directory", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !test {
                std::fs::create_dir_all(dir).map_err(err)?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1733)).map_err(err)?;
            }
            Ok(true)
        }
        Err(e) => Err(err(e)),
    }
}

pub struct InstallHook;
impl Function for InstallHook {
    const NAME: &'static str = "audit.install_hook";
    const DOC: &'static str = "Installs the audit hook for interactive bash shells (default \
        /etc/profile.d/brine-audit.sh, mode 0644) and its spool directory (default \
        /var/spool/brine/audit, mode 1733); shells started afterwards record each command for the \
        audit beacon. Returns Salt's result/comment/changes.\n\n\
        CLI example: brine run '*' audit.install_hook";
    const PARAMS: &'static [Param] = &[
        opt_or("path", ParamDefault::Str(DEFAULT_HOOK_PATH)),
        opt_or("spool_dir", ParamDefault::Str(DEFAULT_SPOOL_DIR)),
        opt_or("test", ParamDefault::Bool(false)),
    ];
    type Args = InstallArgs;
    fn call(&self, _: &Context, a: InstallArgs) -> Result<Output, CallError> {
        let script = hook_script(&a.spool_dir).map_err(CallError::Failed)?;
        let path = Path::new(&a.path);
        if !path.is_absolute() {
            return Err(CallError::failed(format!("path {:?} must be absolute", a.path)));
        }
        let mut changes = serde_json::Map::new();
        if ensure_spool_dir(Path::new(&a.spool_dir), a.test).map_err(CallError::Failed)? {
            changes.insert(a.spool_dir.clone(), json!({"mode": "1733"}));
        }
        let current = std::fs::read_to_string(path).ok();
        if current.as_deref() != Some(script.as_str()) {
            if !a.test {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| CallError::failed(format!("{}: {e}", parent.display())))?;
                }
                let tmp = path.with_extension("brine-tmp");
                std::fs::write(&tmp, &script)
                    .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)))
                    .and_then(|()| std::fs::rename(&tmp, path))
                    .map_err(|e| CallError::failed(format!("{}: {e}", path.display())))?;
            }
            changes.insert(a.path.clone(), json!({"diff": if current.is_some() { "replaced" } else { "new file" }}));
        }
        let comment = match (changes.is_empty(), a.test) {
            (true, _) => "The audit hook is in place".to_string(),
            (false, true) => format!("The audit hook would be installed in {}", a.path),
            (false, false) => format!("Installed the audit hook in {}; new interactive shells record commands", a.path),
        };
        let result = if a.test && !changes.is_empty() { Value::Null } else { Value::Bool(true) };
        Ok(Output::ok(json!({"result": result, "comment": comment, "changes": changes})))
    }
}

/// The `audit` execution module.
pub static MODULE: super::Module = super::Module {
    name: "audit",
    doc: "The shell hook of the audit beacon: commands typed in interactive shells.",
    functions: &[&HookScript, &InstallHook],
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn install_is_idempotent_and_the_hook_records_commands_typed_in_bash() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let hook = dir.path().join("profile.d/brine-audit.sh");
        let call = |test: bool| {
            let mut kw = brine_proto::Map::new();
            kw.insert("path".into(), json!(hook.to_str().unwrap()));
            kw.insert("spool_dir".into(), json!(spool.to_str().unwrap()));
            kw.insert("test".into(), json!(test));
            super::super::call("audit.install_hook", &Context::default(), vec![], kw).unwrap().ret
        };
        assert_eq!(call(true)["result"], Value::Null);
        assert!(!hook.exists());
        let first = call(false);
        assert_eq!(first["result"], true, "{first}");
        assert_eq!(first["changes"].as_object().unwrap().len(), 2, "{first}");
        assert_eq!(std::fs::metadata(&spool).unwrap().permissions().mode() & 0o7777, 0o1733);
        assert_eq!(call(false)["changes"], json!({}));

        // A real interactive bash with the hook: each typed command becomes a line.
        if Command::new("bash").arg("--version").output().is_err() {
            return;
        }
        let mut child = Command::new("bash")
            .args(["--norc", "--noprofile", "-i"])
            .env("HOME", dir.path())
            .env("HISTFILE", dir.path().join("history"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let input = format!("source {}\necho 'a \"quoted\" word'\ncd /\n\nexit\n", hook.display());
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
        let uid = nix::unistd::getuid();
        let text = std::fs::read_to_string(spool.join(uid.to_string())).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["command"], "echo 'a \"quoted\" word'");
        assert_eq!((lines[1]["command"].as_str(), lines[1]["cwd"].as_str()), (Some("cd /"), Some("/")));
        assert_eq!(lines[0]["uid"], uid.as_raw());
        assert!(lines[0]["time"].as_u64().unwrap() > 1_600_000_000);
        let mode = std::fs::metadata(spool.join(uid.to_string())).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        // A spool file of our name that someone else owns is never written to.
        if uid.is_root() {
            let theirs = dir.path().join("theirs");
            std::fs::create_dir(&theirs).unwrap();
            std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o1733)).unwrap();
            let planted = theirs.join("0");
            std::fs::write(&planted, "").unwrap();
            std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
            nix::unistd::chown(&planted, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
            let other_hook = dir.path().join("other-hook.sh");
            std::fs::write(&other_hook, hook_script(theirs.to_str().unwrap()).unwrap()).unwrap();
            let mut child = Command::new("bash")
                .args(["--norc", "--noprofile", "-i"])
                .env("HOME", dir.path())
                .env("HISTFILE", dir.path().join("history2"))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let input = format!("source {}\necho secret\n\nexit\n", other_hook.display());
            std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
            assert!(child.wait().unwrap().success());
            assert_eq!(std::fs::read_to_string(&planted).unwrap(), "", "nothing written to a file another user owns");
        }
    }

    #[test]
    fn a_spool_dir_that_would_break_the_script_is_refused() {
        assert!(hook_script("relative").is_err());
        assert!(hook_script("/x'y").is_err());
        assert!(hook_script("/var/spool/brine/audit").unwrap().contains("__brine_audit_dir='/var/spool/brine/audit'"));
    }
}
