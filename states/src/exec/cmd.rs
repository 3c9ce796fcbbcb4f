//! `cmd.*`: run shell commands.
//!
//! Commands run through a shell (`/bin/bash`, else `/bin/sh`, or `shell=`) in their
//! own process group, so a timeout or a killed job ends the whole pipeline, not just
//! the shell. `cmd.run` returns the combined output with trailing whitespace removed,
//! like Salt; the job's return code is the command's exit status.

use super::{opt, req, CallError, Context, Function, Output, Param};
use brine_proto::{Map, Value};
use serde::Deserialize;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Arguments shared by the `cmd.*` functions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmdArgs {
    cmd: String,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    env: Option<Map>,
    #[serde(default)]
    shell: Option<String>,
    #[serde(default)]
    stdin: Option<String>,
    /// Seconds after which the command is killed.
    #[serde(default)]
    timeout: Option<f64>,
    /// Strip trailing whitespace from the output (default true).
    #[serde(default = "yes")]
    rstrip: bool,
    /// Do not mark the job failed when the command exits non-zero.
    #[serde(default)]
    ignore_retcode: bool,
    /// Accepted for compatibility; brine always logs command output at debug level.
    #[serde(default)]
    #[allow(dead_code)]
    output_loglevel: Option<String>,
    /// Accepted for compatibility; commands always run through a shell.
    #[serde(default)]
    #[allow(dead_code)]
    python_shell: Option<bool>,
}

fn yes() -> bool {
    true
}

const CMD_PARAMS: &[Param] = &[req("cmd"), opt("cwd"), opt("stdin")];

/// What a finished command produced.
#[derive(Debug)]
struct Finished {
    stdout: String,
    stderr: String,
    retcode: i32,
    pid: u32,
}

fn default_shell() -> &'static str {
    if std::path::Path::new("/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    }
}

fn env_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Runs the command; with `merge`, stderr goes into the same pipe as stdout so the
/// two interleave as they would on a terminal.
fn run(a: &CmdArgs, ctx: &Context, merge: bool) -> Result<Finished, CallError> {
    let shell: &str = a.shell.as_deref().unwrap_or(default_shell());
    let mut cmd = Command::new(shell);
    cmd.arg("-c").arg(&a.cmd).process_group(0);
    if let Some(cwd) = &a.cwd {
        cmd.current_dir(cwd);
    }
    if let Some(env) = &a.env {
        for (k, v) in env {
            cmd.env(k, env_value(v));
        }
    }
    cmd.stdin(if a.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let (out_read, err_read) = if merge {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| CallError::failed(format!("cannot create a pipe: {e}")))?;
        let w2 = w.try_clone().map_err(|e| CallError::failed(format!("cannot create a pipe: {e}")))?;
        cmd.stdout(Stdio::from(w)).stderr(Stdio::from(w2));
        (Some(std::fs::File::from(r)), None)
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        (None, None::<std::fs::File>)
    };
    let mut child = cmd.spawn().map_err(|e| {
        let place = a.cwd.as_deref().map(|c| format!(" in {c}")).unwrap_or_default();
        CallError::failed(format!("Unable to run command '{}' with {shell}{place}: {e}", a.cmd))
    })?;
    // The Command still holds our copies of the pipe's write end; drop them so the
    // reader sees end-of-file when the command exits.
    drop(cmd);
    let pid = child.id();

    let reader = |src: Option<Box<dyn Read + Send>>| {
        src.map(|mut r| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                String::from_utf8_lossy(&buf).into_owned()
            })
        })
    };
    let out_thread = reader(match out_read {
        Some(f) => Some(Box::new(f)),
        None => child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    });
    let err_thread = reader(match err_read {
        Some(f) => Some(Box::new(f)),
        None => child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    });
    if let (Some(input), Some(mut stdin)) = (a.stdin.clone(), child.stdin.take()) {
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
    }

    let deadline = a.timeout.filter(|t| t.is_finite() && *t > 0.0).map(|t| Instant::now() + Duration::from_secs_f64(t));
    let mut nap = Duration::from_micros(200);
    let mut stopped: Option<String> = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(CallError::failed(format!("cannot wait for command: {e}"))),
        }
        let why = if ctx.cancel.is_cancelled() {
            Some("killed".to_string())
        } else if deadline.is_some_and(|d| Instant::now() >= d) {
            Some(format!("Timed out after {} seconds", a.timeout.unwrap_or_default()))
        } else {
            None
        };
        if let Some(why) = why {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            stopped = Some(why);
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    };
    let join = |t: Option<std::thread::JoinHandle<String>>| t.map(|t| t.join().unwrap_or_default()).unwrap_or_default();
    let mut stdout = join(out_thread);
    let mut stderr = join(err_thread);
    if a.rstrip {
        stdout.truncate(stdout.trim_end().len());
        stderr.truncate(stderr.trim_end().len());
    }
    if let Some(why) = stopped {
        return Err(CallError::failed(if stdout.is_empty() { why } else { format!("{why}\n{stdout}") }));
    }
    let retcode = status.code().unwrap_or_else(|| -status.signal().unwrap_or(0));
    Ok(Finished { stdout, stderr, retcode, pid })
}

pub struct Run;
impl Function for Run {
    const NAME: &'static str = "cmd.run";
    const DOC: &'static str = "Runs a shell command and returns its output (stdout and stderr \
        combined, trailing whitespace removed). The job fails when the command exits non-zero.\n\n\
        Keywords: cwd, env (a map), shell, stdin, timeout (seconds), rstrip, ignore_retcode.\n\n\
        CLI example: brine run '*' cmd.run 'uptime'";
    const PARAMS: &'static [Param] = CMD_PARAMS;
    type Args = CmdArgs;
    fn call(&self, ctx: &Context, a: CmdArgs) -> Result<Output, CallError> {
        let f = run(&a, ctx, true)?;
        let retcode = if a.ignore_retcode { 0 } else { f.retcode };
        Ok(Output { ret: Value::String(f.stdout), retcode })
    }
}

pub struct RunAll;
impl Function for RunAll {
    const NAME: &'static str = "cmd.run_all";
    const DOC: &'static str = "Runs a shell command and returns a map of pid, retcode, stdout and \
        stderr. The job fails when the command exits non-zero.\n\n\
        Keywords: cwd, env (a map), shell, stdin, timeout (seconds), rstrip, ignore_retcode.\n\n\
        CLI example: brine run '*' cmd.run_all 'ls /nonexistent'";
    const PARAMS: &'static [Param] = CMD_PARAMS;
    type Args = CmdArgs;
    fn call(&self, ctx: &Context, a: CmdArgs) -> Result<Output, CallError> {
        let f = run(&a, ctx, false)?;
        let mut m = Map::new();
        m.insert("pid".into(), f.pid.into());
        m.insert("retcode".into(), f.retcode.into());
        m.insert("stdout".into(), f.stdout.into());
        m.insert("stderr".into(), f.stderr.into());
        let retcode = if a.ignore_retcode { 0 } else { f.retcode };
        Ok(Output { ret: Value::Object(m), retcode })
    }
}

/// The `cmd` execution module.
pub static MODULE: super::Module =
    super::Module { name: "cmd", doc: "Run shell commands.", functions: &[&Run, &RunAll] };

#[cfg(test)]
mod tests {
    use crate::exec::{call, Context};
    use brine_proto::Map;
    use serde_json::json;

    fn kw(pairs: &[(&str, serde_json::Value)]) -> Map {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn run_returns_combined_output_and_exit_status() {
        let out = call("cmd.run", &Context::default(), vec![json!("echo a; echo b >&2; exit 3")], Map::new()).unwrap();
        assert_eq!(out.ret, json!("a\nb"));
        assert_eq!(out.retcode, 3);
        let out = call("cmd.run", &Context::default(), vec![json!("echo hi")], Map::new()).unwrap();
        assert_eq!((out.ret, out.retcode), (json!("hi"), 0));
    }

    #[test]
    fn run_all_separates_the_streams() {
        let out =
            call("cmd.run_all", &Context::default(), vec![json!("echo a; echo b >&2; exit 3")], Map::new()).unwrap();
        assert_eq!(out.ret["stdout"], json!("a"));
        assert_eq!(out.ret["stderr"], json!("b"));
        assert_eq!(out.ret["retcode"], json!(3));
        assert!(out.ret["pid"].as_u64().unwrap() > 0);
        assert_eq!(out.retcode, 3);
    }

    #[test]
    fn cwd_env_and_stdin_are_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let out = call(
            "cmd.run",
            &Context::default(),
            vec![json!("pwd; echo $GREETING; cat")],
            kw(&[
                ("cwd", json!(dir.path().to_str().unwrap())),
                ("env", json!({"GREETING": "hello"})),
                ("stdin", json!("from stdin")),
            ]),
        )
        .unwrap();
        let canon = dir.path().canonicalize().unwrap();
        assert_eq!(out.ret, json!(format!("{}\nhello\nfrom stdin", canon.display())));
    }

    #[test]
    fn timeout_kills_the_whole_process_group() {
        let started = std::time::Instant::now();
        let err =
            call("cmd.run", &Context::default(), vec![json!("sleep 30 | sleep 30")], kw(&[("timeout", json!(0.3))]))
                .unwrap_err();
        assert!(err.to_string().contains("Timed out after 0.3 seconds"), "{err}");
        assert!(started.elapsed().as_secs() < 10);
    }

    #[test]
    fn a_missing_cwd_is_a_clear_error() {
        let err = call("cmd.run", &Context::default(), vec![json!("true")], kw(&[("cwd", json!("/nonexistent/dir"))]))
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/dir"), "{err}");
    }
}
