//! `cmd.*`: run commands.
//!
//! Commands run through a shell (`/bin/bash`, else `/bin/sh`, or `shell=`) unless
//! `python_shell=False`, which splits the command into words with POSIX shell rules and
//! runs the program directly (no pipes, no variables, no globbing). Salt 3007 defaults to
//! no shell; brine keeps the shell as its default, so `python_shell=False` is opt-in.
//!
//! Every command runs in its own process group, so a timeout or a killed job ends the
//! whole pipeline, not just the shell. With `runas` (and/or `group`) the command runs
//! as that user: uid, primary gid and the user's supplementary groups, never the
//! minion's own groups. The switch is made by exec'ing through util-linux's `setpriv`
//! (or `runuser`), which keeps the crate free of `unsafe` pre-exec code.
//!
//! `cmd.run` returns the combined output with trailing whitespace removed, like Salt;
//! the job's return code is the command's exit status.

use super::host::{quote, word_text, Word};
use super::{opt, opt_or, req, CallError, Context, Function, Output, Param, ParamDefault};
use brine_proto::{Map, Value};
use nix::unistd::{Gid, Group, Uid, User};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::ffi::CString;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Arguments shared by the `cmd.*` functions that run a command.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmdArgs {
    cmd: CommandText,
    #[serde(default)]
    cwd: Option<Word>,
    #[serde(default)]
    stdin: Option<String>,
    /// Run as this user (name, or uid).
    #[serde(default)]
    runas: Option<Word>,
    /// Run with this primary group (name, or gid).
    #[serde(default)]
    group: Option<Word>,
    #[serde(default)]
    shell: Option<String>,
    /// Run through a shell (the default) or split into words and run directly.
    #[serde(default)]
    python_shell: Option<bool>,
    #[serde(default)]
    env: Option<Map>,
    /// Start from an empty environment: only `env` (and, with `runas`, the user's
    /// HOME, USER, LOGNAME and SHELL).
    #[serde(default)]
    clean_env: bool,
    /// Strip trailing whitespace from the output (default true).
    #[serde(default = "yes")]
    rstrip: bool,
    /// Seconds after which the command is killed.
    #[serde(default)]
    timeout: Option<f64>,
    /// Do not mark the job failed when the command exits non-zero.
    #[serde(default)]
    ignore_retcode: bool,
    /// Accepted for compatibility; brine does not log command output.
    #[serde(default)]
    #[allow(dead_code)]
    output_loglevel: Option<String>,
}

fn yes() -> bool {
    true
}

/// Salt's positional order for the `cmd.run` family, as far as brine follows it:
/// `cmd.run ls /tmp '' deploy` runs `ls` in `/tmp` as `deploy`. The other keywords
/// (`rstrip`, `timeout`, `ignore_retcode`, `output_loglevel`) are keyword-only.
const CMD_PARAMS: &[Param] = &[
    req("cmd"),
    opt("cwd"),
    opt("stdin"),
    opt("runas"),
    opt("group"),
    opt("shell"),
    opt("python_shell"),
    opt("env"),
    opt_or("clean_env", ParamDefault::Bool(false)),
];

/// The keyword details every running function documents (a macro so `concat!` can
/// put it in each `DOC`).
macro_rules! keywords_doc {
    () => {
        "Keywords: cwd (default: the runas user's home, else the minion's directory), stdin, \
         runas (user name or uid: runs with that user's uid, primary group and supplementary \
         groups, with HOME, USER, LOGNAME and SHELL set for them; needs root and util-linux's \
         setpriv or runuser), group (primary group for the command), shell, python_shell \
         (default True; False splits the command with POSIX shell quoting and runs it without \
         a shell), env (a map), clean_env (start from an empty environment), timeout (seconds; \
         kills the whole process group), rstrip (default True), ignore_retcode."
    };
}

/// The command: text, or (like Salt) a list of words.
#[derive(Debug, Clone, PartialEq)]
enum CommandText {
    Line(String),
    Words(Vec<String>),
}

impl<'de> Deserialize<'de> for CommandText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CommandText, D::Error> {
        match Value::deserialize(d)? {
            Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    Value::Array(_) | Value::Object(_) => {
                        Err(de::Error::custom(format!("expected a command word, found {v}")))
                    }
                    v => Ok(word_text(v)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(CommandText::Words),
            Value::Object(_) => Err(de::Error::custom("expected a command, got a map")),
            // A YAML-typed word comes back as text, as Salt's `str()` gives it
            // (`cmd.run true` runs `True`).
            v => Ok(CommandText::Line(word_text(&v))),
        }
    }
}

/// The command as shown in messages.
impl fmt::Display for CommandText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandText::Line(line) => f.write_str(line),
            CommandText::Words(words) => f.write_str(&join_quoted(words)),
        }
    }
}

/// Words joined into one shell line, each quoted when a shell would split it.
fn join_quoted(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

/// Why a command line could not be split into words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A quote is opened and never closed.
    #[error("No closing quotation: the {quote} opened at character {at} is never closed")]
    UnclosedQuote { quote: char, at: usize },
    /// The line ends with a backslash that has nothing to escape.
    #[error("No escaped character: the command ends with a lone backslash")]
    TrailingBackslash,
}

/// Splits `line` into words the way a POSIX shell does before any expansion:
/// blanks separate words; `'…'` keeps everything literally; `"…"` keeps everything
/// but lets a backslash escape `"`, `\`, `$`, `` ` `` and a newline; outside quotes a
/// backslash escapes any character (a backslash-newline joins lines). `''` is an empty
/// word, and quoted and unquoted parts next to each other make one word. Nothing is
/// expanded: `$HOME`, `*`, `~`, `;` and `|` are plain characters, `#` too (Salt's
/// `shlex.split` does not treat it as a comment either).
pub fn split_words(line: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // Whether a word has started: `''` starts an empty word.
    let mut started = false;
    let mut chars = line.chars().enumerate().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            '\\' => match chars.next() {
                Some((_, '\n')) => {}
                Some((_, escaped)) => {
                    word.push(escaped);
                    started = true;
                }
                None => return Err(SplitError::TrailingBackslash),
            },
            '\'' => {
                started = true;
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, q)) => word.push(q),
                        None => return Err(SplitError::UnclosedQuote { quote: '\'', at: i + 1 }),
                    }
                }
            }
            '"' => {
                started = true;
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.peek() {
                            Some(&(_, e @ ('"' | '\\' | '$' | '`'))) => {
                                word.push(e);
                                chars.next();
                            }
                            Some(&(_, '\n')) => {
                                chars.next();
                            }
                            _ => word.push('\\'),
                        },
                        Some((_, q)) => word.push(q),
                        None => return Err(SplitError::UnclosedQuote { quote: '"', at: i + 1 }),
                    }
                }
            }
            other => {
                word.push(other);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    Ok(words)
}

/// Whether `path` is a file this process may execute.
fn is_executable(path: &Path) -> bool {
    path.is_file() && nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// The standard system directories, searched after `PATH` as Salt does in case a
/// service's `PATH` is short.
const SYSTEM_DIRS: &[&str] = &["/sbin", "/bin", "/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"];

/// Where `program` is, as Salt's `which` finds it: the name itself when it is an
/// executable file (an absolute path, or relative to the minion's directory), else the
/// first `DIR/program` that is, along `path` and then the standard system directories.
fn which_in(program: &str, path: &str) -> Option<PathBuf> {
    if program.is_empty() {
        return None;
    }
    if is_executable(Path::new(program)) {
        return Some(PathBuf::from(program));
    }
    let listed: Vec<&str> = path.split(':').collect();
    let extra = SYSTEM_DIRS.iter().copied().filter(|d| !listed.contains(d));
    listed
        .iter()
        .copied()
        .filter(|d| !d.is_empty())
        .chain(extra)
        .map(|dir| Path::new(dir).join(program))
        .find(|p| is_executable(p))
}

/// Whether execvp(3) finds `program` for a command started in `dir`: a name with a
/// slash is a path from `dir`; a bare name is looked up along `path` (empty entries
/// meaning `dir`), or the C library's `/bin:/usr/bin` without one.
fn exec_finds(program: &str, path: Option<&str>, dir: &Path) -> bool {
    if program.contains('/') {
        return is_executable(&dir.join(program));
    }
    path.unwrap_or("/bin:/usr/bin")
        .split(':')
        .map(|d| if d.is_empty() { dir.to_path_buf() } else { dir.join(d) })
        .any(|d| is_executable(&d.join(program)))
}

fn minion_path() -> String {
    std::env::var("PATH").unwrap_or_default()
}

/// Who a command runs as when `runas` or `group` is given.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    name: String,
    uid: Uid,
    gid: Gid,
    /// The primary group's name, when `group=` chose it.
    group_name: Option<String>,
    /// Supplementary groups: the user's own, as a login gives them (their primary
    /// group included), never the minion's.
    groups: Vec<(Gid, String)>,
    home: PathBuf,
    shell: PathBuf,
    /// Whether the process must change identity (it differs from the minion's).
    switch: bool,
}

fn lookup_user(word: &str) -> Result<User, CallError> {
    let unknown = || CallError::failed(format!("User '{word}' is not available"));
    match User::from_name(word) {
        Ok(Some(u)) => Ok(u),
        Ok(None) | Err(_) => match word.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)).ok().flatten().ok_or_else(unknown),
            Err(_) => Err(unknown()),
        },
    }
}

fn lookup_group(word: &str) -> Result<Group, CallError> {
    let unknown = || CallError::failed(format!("Group '{word}' is not available"));
    match Group::from_name(word) {
        Ok(Some(g)) => Ok(g),
        Ok(None) | Err(_) => match word.parse::<u32>() {
            Ok(gid) => Group::from_gid(Gid::from_raw(gid)).ok().flatten().ok_or_else(unknown),
            Err(_) => Err(unknown()),
        },
    }
}

/// Resolves `runas` and `group` against the user and group databases. Without `runas`
/// the user is the minion's own; without `group` the primary group is the user's.
fn resolve_identity(runas: Option<&str>, group: Option<&str>) -> Result<Identity, CallError> {
    let me = Uid::effective();
    let user = match runas {
        Some(name) => lookup_user(name)?,
        None => User::from_uid(me)
            .ok()
            .flatten()
            .ok_or_else(|| CallError::failed(format!("the minion's own uid {me} is not in the user database")))?,
    };
    let chosen = group.map(lookup_group).transpose()?;
    let gid = chosen.as_ref().map_or(user.gid, |g| g.gid);
    let cname = CString::new(user.name.clone())
        .map_err(|_| CallError::failed(format!("User '{}' has a NUL in its name", user.name)))?;
    let groups = nix::unistd::getgrouplist(&cname, user.gid)
        .map_err(|e| CallError::failed(format!("cannot list the groups of user '{}': {e}", user.name)))?
        .into_iter()
        .map(|gid| {
            let name = Group::from_gid(gid).ok().flatten().map_or_else(|| gid.to_string(), |g| g.name);
            (gid, name)
        })
        .collect();
    let switch = user.uid != me || gid != Gid::effective();
    Ok(Identity {
        name: user.name,
        uid: user.uid,
        gid,
        group_name: chosen.map(|g| g.name),
        groups,
        home: user.dir,
        shell: user.shell,
        switch,
    })
}

/// A util-linux tool that execs a program under another identity.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Switcher {
    /// `setpriv --reuid --regid --groups`: sets exactly the ids we computed.
    Setpriv(PathBuf),
    /// `runuser -u USER`: initgroups(3) for the user; with `-g GROUP` runuser would
    /// drop the user's other groups, so they are listed again with `-G`.
    Runuser(PathBuf),
}

impl Switcher {
    fn find() -> Option<Switcher> {
        let path = minion_path();
        which_in("setpriv", &path).map(Switcher::Setpriv).or_else(|| which_in("runuser", &path).map(Switcher::Runuser))
    }

    /// The program and arguments that run `argv` as `who`.
    fn wrap(&self, who: &Identity, argv: Vec<String>) -> (PathBuf, Vec<String>) {
        match self {
            Switcher::Setpriv(tool) => {
                let mut args = vec![format!("--reuid={}", who.uid), format!("--regid={}", who.gid)];
                if who.groups.is_empty() {
                    args.push("--clear-groups".into());
                } else {
                    let list: Vec<String> = who.groups.iter().map(|(gid, _)| gid.to_string()).collect();
                    args.push(format!("--groups={}", list.join(",")));
                }
                args.push("--".into());
                args.extend(argv);
                (tool.clone(), args)
            }
            Switcher::Runuser(tool) => {
                let mut args = vec!["-u".to_string(), who.name.clone()];
                if let Some(g) = &who.group_name {
                    args.extend(["-g".to_string(), g.clone()]);
                    for (_, name) in &who.groups {
                        args.extend(["-G".to_string(), name.clone()]);
                    }
                }
                args.push("--".into());
                args.extend(argv);
                (tool.clone(), args)
            }
        }
    }
}

fn default_shell() -> &'static str {
    if Path::new("/bin/bash").exists() {
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

/// What a finished command produced.
#[derive(Debug)]
struct Finished {
    stdout: String,
    stderr: String,
    retcode: i32,
    pid: u32,
}

/// Builds the process for `a`: the argument vector (shell or split words), the
/// identity switch, the environment and the directory.
fn prepare(a: &CmdArgs) -> Result<Command, CallError> {
    let use_shell = a.python_shell.unwrap_or(true);
    let shell = a.shell.as_deref().unwrap_or(default_shell());
    let argv: Vec<String> = if use_shell {
        if !is_executable(Path::new(shell)) {
            return Err(CallError::failed(format!("The shell {shell} is not available")));
        }
        let line = match &a.cmd {
            CommandText::Line(line) => line.clone(),
            CommandText::Words(words) => join_quoted(words),
        };
        vec![shell.to_string(), "-c".into(), line]
    } else {
        match &a.cmd {
            CommandText::Line(line) => split_words(line)
                .map_err(|e| CallError::failed(format!("Unable to split command '{line}' into words: {e}")))?,
            CommandText::Words(words) => words.clone(),
        }
    };
    if argv.first().is_none_or(|p| p.is_empty()) {
        return Err(CallError::failed("The command is empty"));
    }

    let runas = a.runas.as_ref().map(Word::as_str).filter(|s| !s.is_empty());
    let group = a.group.as_ref().map(Word::as_str).filter(|s| !s.is_empty());
    let who = if runas.is_some() || group.is_some() { Some(resolve_identity(runas, group)?) } else { None };

    let cwd = match &a.cwd {
        Some(c) if !c.as_str().is_empty() => {
            let c = Path::new(c.as_str());
            if !c.is_absolute() || !c.is_dir() {
                return Err(CallError::failed(format!(
                    "Specified cwd '{}' either not absolute or does not exist",
                    c.display()
                )));
            }
            Some(c.to_path_buf())
        }
        // Salt starts a runas command in the user's home, or `/` without one.
        _ => {
            who.as_ref().filter(|_| runas.is_some()).map(|w| if w.home.is_dir() { w.home.clone() } else { "/".into() })
        }
    };

    // Later entries win: `env` may change LOGNAME and SHELL, but Salt forces HOME and
    // USER to the runas user's whatever `env` says.
    let runas_user = who.as_ref().filter(|_| runas.is_some());
    let mut env: Vec<(String, String)> = Vec::new();
    if let Some(w) = runas_user {
        env.push(("LOGNAME".into(), w.name.clone()));
        env.push(("SHELL".into(), w.shell.to_string_lossy().into_owned()));
    }
    env.extend(a.env.iter().flatten().map(|(k, v)| (k.clone(), env_value(v))));
    if let Some(w) = runas_user {
        env.push(("HOME".into(), w.home.to_string_lossy().into_owned()));
        env.push(("USER".into(), w.name.clone()));
    }

    let (program, args) = match who.as_ref().filter(|w| w.switch) {
        None => (PathBuf::from(&argv[0]), argv[1..].to_vec()),
        Some(w) => {
            if !Uid::effective().is_root() {
                return Err(CallError::failed(format!(
                    "Cannot run as user '{}' (group {}): brine-minion runs as uid {}, and only root may switch users",
                    w.name,
                    w.gid,
                    Uid::effective()
                )));
            }
            let switcher = Switcher::find().ok_or_else(|| {
                CallError::failed(
                    "runas/group need util-linux's setpriv or runuser to switch user with the user's \
                     supplementary groups; neither is installed (install util-linux)",
                )
            })?;
            if !use_shell {
                // The switcher would report a missing program as its own failure (exit
                // 127); say it the way an unswitched run does.
                let path = env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone());
                let path = path.or_else(|| if a.clean_env { None } else { std::env::var("PATH").ok() });
                let dir = cwd.clone().or_else(|| std::env::current_dir().ok()).unwrap_or_else(|| "/".into());
                if !exec_finds(&argv[0], path.as_deref(), &dir) {
                    return Err(CallError::failed(format!(
                        "Unable to run command '{}': No such file or directory: '{}'",
                        a.cmd, argv[0]
                    )));
                }
            }
            switcher.wrap(w, argv)
        }
    };

    let mut cmd = Command::new(program);
    cmd.args(args).process_group(0);
    if a.clean_env {
        cmd.env_clear();
    }
    cmd.envs(env);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    Ok(cmd)
}

/// Runs the command; with `merge`, stderr goes into the same pipe as stdout so the
/// two interleave as they would on a terminal.
fn run(a: &CmdArgs, ctx: &Context, merge: bool) -> Result<Finished, CallError> {
    let mut cmd = prepare(a)?;
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
        let how = if a.python_shell.unwrap_or(true) {
            format!(" with {}", a.shell.as_deref().unwrap_or(default_shell()))
        } else {
            String::new()
        };
        let place = a.cwd.as_ref().map(|c| format!(" in {c}")).unwrap_or_default();
        CallError::failed(format!("Unable to run command '{}'{how}{place}: {e}", a.cmd))
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
    let group = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
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
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
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

impl CmdArgs {
    /// The job's return code for a command that exited with `retcode`.
    fn job_retcode(&self, retcode: i32) -> i32 {
        if self.ignore_retcode {
            0
        } else {
            retcode
        }
    }
}

pub struct Run;
impl Function for Run {
    const NAME: &'static str = "cmd.run";
    const DOC: &'static str = concat!(
        "Runs a command and returns its output (stdout and stderr \
        combined, trailing whitespace removed). The job fails when the command exits non-zero.\n\n",
        keywords_doc!(),
        "\n\nCLI example: brine run '*' cmd.run 'uptime'\n\
         CLI example: brine run '*' cmd.run 'id -un' runas=www-data"
    );
    const PARAMS: &'static [Param] = CMD_PARAMS;
    type Args = CmdArgs;
    fn call(&self, ctx: &Context, a: CmdArgs) -> Result<Output, CallError> {
        let f = run(&a, ctx, true)?;
        Ok(Output { ret: Value::String(f.stdout), retcode: a.job_retcode(f.retcode) })
    }
}

pub struct RunAll;
impl Function for RunAll {
    const NAME: &'static str = "cmd.run_all";
    const DOC: &'static str = concat!(
        "Runs a command and returns a map of pid, retcode, stdout and stderr. The job fails \
         when the command exits non-zero.\n\n",
        keywords_doc!(),
        "\n\nCLI example: brine run '*' cmd.run_all 'ls /nonexistent'"
    );
    const PARAMS: &'static [Param] = CMD_PARAMS;
    type Args = CmdArgs;
    fn call(&self, ctx: &Context, a: CmdArgs) -> Result<Output, CallError> {
        let f = run(&a, ctx, false)?;
        let mut m = Map::new();
        m.insert("pid".into(), f.pid.into());
        m.insert("retcode".into(), f.retcode.into());
        m.insert("stdout".into(), f.stdout.into());
        m.insert("stderr".into(), f.stderr.into());
        Ok(Output { ret: Value::Object(m), retcode: a.job_retcode(f.retcode) })
    }
}

pub struct RunStdout;
impl Function for RunStdout {
    const NAME: &'static str = "cmd.run_stdout";
    const DOC: &'static str = concat!(
        "Runs a command and returns only its standard output (trailing \
        whitespace removed); stderr is read and dropped. The job fails when the command exits \
        non-zero.\n\n",
        keywords_doc!(),
        "\n\nCLI example: brine run '*' cmd.run_stdout 'ls /etc'"
    );
    const PARAMS: &'static [Param] = CMD_PARAMS;
    type Args = CmdArgs;
    fn call(&self, ctx: &Context, a: CmdArgs) -> Result<Output, CallError> {
        let f = run(&a, ctx, false)?;
        Ok(Output { ret: Value::String(f.stdout), retcode: a.job_retcode(f.retcode) })
    }
}

pub struct RunStderr;
impl Function for RunStderr {
    const NAME: &'static str = "cmd.run_stderr";
    const DOC: &'static str = concat!(
        "Runs a command and returns only its standard error (trailing \
        whitespace removed); stdout is read and dropped. The job fails when the command exits \
        non-zero.\n\n",
        keywords_doc!(),
        "\n\nCLI example: brine run '*' cmd.run_stderr 'ls /nonexistent'"
    );
    const PARAMS: &'static [Param] = CMD_PARAMS;
    type Args = CmdArgs;
    fn call(&self, ctx: &Context, a: CmdArgs) -> Result<Output, CallError> {
        let f = run(&a, ctx, false)?;
        Ok(Output { ret: Value::String(f.stderr), retcode: a.job_retcode(f.retcode) })
    }
}

pub struct Retcode;
impl Function for Retcode {
    const NAME: &'static str = "cmd.retcode";
    const DOC: &'static str = concat!(
        "Runs a command and returns only its exit status (output is read \
        and dropped). The job's return code is that status too, unless ignore_retcode=True.\n\n",
        keywords_doc!(),
        "\n\nCLI example: brine run '*' cmd.retcode 'test -f /etc/motd'"
    );
    const PARAMS: &'static [Param] = CMD_PARAMS;
    type Args = CmdArgs;
    fn call(&self, ctx: &Context, a: CmdArgs) -> Result<Output, CallError> {
        let f = run(&a, ctx, false)?;
        Ok(Output { ret: f.retcode.into(), retcode: a.job_retcode(f.retcode) })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramArgs {
    cmd: Word,
}

pub struct Which;
impl Function for Which {
    const NAME: &'static str = "cmd.which";
    const DOC: &'static str = "Returns the full path of an executable, or None when there is none. \
        The name itself counts when it is an executable file; otherwise PATH is searched, then \
        /sbin, /bin, /usr/sbin, /usr/bin, /usr/local/sbin and /usr/local/bin.\n\n\
        CLI example: brine run '*' cmd.which cat";
    const PARAMS: &'static [Param] = &[req("cmd")];
    type Args = ProgramArgs;
    fn call(&self, _: &Context, a: ProgramArgs) -> Result<Output, CallError> {
        let found = which_in(a.cmd.as_str(), &minion_path());
        Ok(Output::ok(found.map_or(Value::Null, |p| p.to_string_lossy().into_owned().into())))
    }
}

pub struct HasExec;
impl Function for HasExec {
    const NAME: &'static str = "cmd.has_exec";
    const DOC: &'static str = "Returns True when cmd.which finds the executable, else False.\n\n\
        CLI example: brine run '*' cmd.has_exec cat";
    const PARAMS: &'static [Param] = &[req("cmd")];
    type Args = ProgramArgs;
    fn call(&self, _: &Context, a: ProgramArgs) -> Result<Output, CallError> {
        Ok(Output::ok(which_in(a.cmd.as_str(), &minion_path()).is_some()))
    }
}

/// Arguments of `cmd.script`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptArgs {
    source: String,
    #[serde(default)]
    args: Option<Value>,
    #[serde(default)]
    cwd: Option<Word>,
    #[serde(default)]
    stdin: Option<String>,
    #[serde(default)]
    runas: Option<Word>,
    #[serde(default)]
    group: Option<Word>,
    #[serde(default)]
    shell: Option<String>,
    #[serde(default)]
    python_shell: Option<bool>,
    #[serde(default)]
    env: Option<Map>,
    #[serde(default)]
    clean_env: bool,
    /// Render the script first (`jinja`), with grains and pillar.
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    timeout: Option<f64>,
    #[serde(default)]
    ignore_retcode: bool,
    #[serde(default)]
    saltenv: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    output_loglevel: Option<String>,
}

/// What `cmd.script` returns when the script cannot be had (Salt's shape).
fn cache_error() -> Output {
    let ret = serde_json::json!({"pid": 0, "retcode": 1, "stdout": "", "stderr": "", "cache_error": true});
    Output { ret, retcode: 1 }
}

/// Removes the temporary script when the run is over.
struct TempScript(PathBuf);

impl Drop for TempScript {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub struct Script;
impl Function for Script {
    const NAME: &'static str = "cmd.script";
    const DOC: &'static str = concat!(
        "Fetches a script (salt:// or brine:// from the master's file server, or a local \
         path), optionally renders it (template=jinja), and runs it with `args` through the shell. \
         Returns pid, retcode, stdout and stderr; a script that cannot be fetched gives retcode 1 and \
         cache_error True. The job fails when the script exits non-zero.\n\n",
        keywords_doc!(),
        " Also: saltenv (default base).\n\nCLI example: brine run '*' cmd.script salt://scripts/setup.sh args='-v --force'"
    );
    const PARAMS: &'static [Param] = &[
        req("source"),
        opt("args"),
        opt("cwd"),
        opt("stdin"),
        opt("runas"),
        opt("group"),
        opt("shell"),
        opt("python_shell"),
        opt("env"),
        opt("template"),
    ];
    type Args = ScriptArgs;
    fn call(&self, ctx: &Context, a: ScriptArgs) -> Result<Output, CallError> {
        let env = a.saltenv.clone().unwrap_or_else(|| "base".into());
        let body = if crate::files::is_server_url(&a.source) {
            let Some(files) = ctx.files.as_ref() else {
                return Err(CallError::failed(
                    "no file server is available: run under a master or give brine-call --file-root",
                ));
            };
            let (env, path) = crate::files::split_url(&a.source, &env);
            match files.read(&env, &path) {
                Ok(b) => b,
                Err(crate::files::FileError::NotFound { .. }) => return Ok(cache_error()),
                Err(e) => return Err(CallError::failed(e.to_string())),
            }
        } else {
            match std::fs::read(&a.source) {
                Ok(b) => b,
                Err(_) => return Ok(cache_error()),
            }
        };
        let body = match a.template.as_deref() {
            None => body,
            Some("jinja") => {
                let text = String::from_utf8(body).map_err(|_| {
                    CallError::failed(format!("{} is not UTF-8 text; it cannot be a template", a.source))
                })?;
                let rctx = crate::sls::render::RenderContext {
                    grains: ctx.grains.clone(),
                    pillar: ctx.pillar.clone(),
                    opts: Map::new(),
                    saltenv: env.clone(),
                    sls: String::new(),
                    slspath: String::new(),
                    extra: Map::new(),
                    exec: ctx.clone(),
                };
                crate::sls::render::render_jinja(&a.source, &text, &rctx, None)
                    .map_err(|e| CallError::failed(e.to_string()))?
                    .into_bytes()
            }
            Some(other) => return Err(CallError::failed(format!("template {other:?} is not supported (jinja is)"))),
        };
        let who = match (a.runas.as_ref().map(Word::as_str), a.group.as_ref().map(Word::as_str)) {
            (None, None) => None,
            (u, g) => Some(resolve_identity(u, g)?),
        };
        let name = crate::files::clean_path(&a.source)
            .ok()
            .and_then(|p| Path::new(&p).extension().map(|e| format!(".{}", e.to_string_lossy())))
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!(
            "__brine.tmp.{}.{}{name}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
        ));
        let written = (|| -> std::io::Result<()> {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o700).open(&path)?;
            f.write_all(&body)?;
            if let Some(w) = &who {
                std::os::unix::fs::chown(&path, Some(w.uid.as_raw()), Some(w.gid.as_raw()))?;
            }
            Ok(())
        })();
        let script = TempScript(path.clone());
        written.map_err(|e| CallError::failed(format!("cannot write the script to {}: {e}", path.display())))?;
        let args = match a.args {
            None | Some(Value::Null) => String::new(),
            Some(Value::Array(words)) => format!(" {}", join_quoted(&words.iter().map(word_text).collect::<Vec<_>>())),
            Some(v) => format!(" {}", word_text(&v)),
        };
        let cmd = CmdArgs {
            cmd: CommandText::Line(format!("{}{args}", quote(&script.0.to_string_lossy()))),
            cwd: a.cwd,
            stdin: a.stdin,
            runas: a.runas,
            group: a.group,
            shell: a.shell,
            python_shell: a.python_shell,
            env: a.env,
            clean_env: a.clean_env,
            rstrip: true,
            timeout: a.timeout,
            ignore_retcode: a.ignore_retcode,
            output_loglevel: None,
        };
        let f = run(&cmd, ctx, false)?;
        drop(script);
        let mut m = Map::new();
        m.insert("pid".into(), f.pid.into());
        m.insert("retcode".into(), f.retcode.into());
        m.insert("stdout".into(), f.stdout.into());
        m.insert("stderr".into(), f.stderr.into());
        Ok(Output { ret: Value::Object(m), retcode: cmd.job_retcode(f.retcode) })
    }
}

/// The `cmd` execution module.
pub static MODULE: super::Module = super::Module {
    name: "cmd",
    doc: "Run commands, through a shell or not, as any user.",
    functions: &[&HasExec, &Retcode, &Run, &RunAll, &RunStderr, &RunStdout, &Script, &Which],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::call;
    use serde_json::json;

    fn kw(pairs: &[(&str, serde_json::Value)]) -> Map {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn run_ok(fun: &str, cmd: &str, kwargs: &[(&str, serde_json::Value)]) -> Output {
        call(fun, &Context::default(), vec![json!(cmd)], kw(kwargs)).unwrap_or_else(|e| panic!("{fun} {cmd}: {e}"))
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
        let keys: Vec<&String> = out.ret.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["pid", "retcode", "stdout", "stderr"], "Salt's key order");
    }

    #[test]
    fn script_fetches_renders_runs_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
        std::fs::write(dir.path().join("scripts/s.sh"), "#!/bin/sh\necho \"$0|$1|$2|{{ grains.id }}\"\nexit 4\n")
            .unwrap();
        let grains = json!({"id": "m1"}).as_object().unwrap().clone();
        let ctx = Context {
            files: Some(std::sync::Arc::new(crate::files::LocalRoots::base(dir.path()))),
            grains: std::sync::Arc::new(grains),
            ..Context::default()
        };
        let out = call("cmd.script", &ctx, vec![json!("salt://scripts/s.sh"), json!("'a b' c")], kw(&[])).unwrap();
        assert_eq!(out.retcode, 4);
        let stdout = out.ret["stdout"].as_str().unwrap().to_string();
        let (script, rest) = stdout.split_once('|').unwrap();
        assert_eq!(rest, "a b|c|{{ grains.id }}", "arguments split by the shell, no template unless asked");
        assert!(script.ends_with(".sh") && !Path::new(script).exists(), "the temporary script is removed");
        let out =
            call("cmd.script", &ctx, vec![json!("salt://scripts/s.sh")], kw(&[("template", json!("jinja"))])).unwrap();
        assert!(out.ret["stdout"].as_str().unwrap().ends_with("|||m1"));
        let missing = call("cmd.script", &ctx, vec![json!("salt://nope.sh")], kw(&[])).unwrap();
        assert_eq!((missing.ret["cache_error"].clone(), missing.retcode), (json!(true), 1));
        let escape = call("cmd.script", &ctx, vec![json!("salt://../x.sh")], kw(&[])).unwrap_err();
        assert!(escape.to_string().contains("not allowed"), "{escape}");
    }

    #[test]
    fn run_stdout_run_stderr_and_retcode_return_one_part() {
        let script = "echo a; echo b >&2; exit 3";
        let out = run_ok("cmd.run_stdout", script, &[]);
        assert_eq!((out.ret, out.retcode), (json!("a"), 3));
        let out = run_ok("cmd.run_stderr", script, &[]);
        assert_eq!((out.ret, out.retcode), (json!("b"), 3));
        let out = run_ok("cmd.retcode", script, &[]);
        assert_eq!((out.ret, out.retcode), (json!(3), 3));
        let out = run_ok("cmd.retcode", script, &[("ignore_retcode", json!(true))]);
        assert_eq!((out.ret, out.retcode), (json!(3), 0));
        let out = run_ok("cmd.run_stdout", "printf 'x  \\n\\n'", &[("rstrip", json!(false))]);
        assert_eq!(out.ret, json!("x  \n\n"));
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
    fn positional_arguments_follow_salts_order() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().canonicalize().unwrap();
        // cmd, cwd, stdin, runas, group, shell, python_shell, env
        let args = vec![
            json!("pwd; cat; echo $X"),
            json!(cwd.to_str().unwrap()),
            json!("in\n"),
            json!(null),
            json!(null),
            json!("/bin/sh"),
            json!(true),
            json!({"X": "y"}),
        ];
        let out = call("cmd.run", &Context::default(), args, Map::new()).unwrap();
        assert_eq!(out.ret, json!(format!("{}\nin\ny", cwd.display())));
    }

    #[test]
    fn clean_env_keeps_only_the_given_variables() {
        let no_shell = ("python_shell", json!(false));
        let out = run_ok("cmd.run", "env", &[no_shell.clone(), ("clean_env", json!(true)), ("env", json!({"A": 1}))]);
        assert_eq!(out.ret, json!("A=1"));
        let out = run_ok("cmd.run", "env", &[no_shell, ("env", json!({"A": 1}))]);
        let text = out.ret.as_str().unwrap();
        assert!(text.lines().any(|l| l == "A=1") && text.lines().count() > 1, "{text}");
    }

    #[test]
    fn without_a_shell_the_command_is_split_into_words() {
        // Salt 3007's own example: no shell, so `;` and `>&2` are words for echo.
        let out = run_ok("cmd.run", "echo a; echo b >&2; exit 3", &[("python_shell", json!(false))]);
        assert_eq!((out.ret, out.retcode), (json!("a; echo b >&2; exit 3"), 0));
        let out = run_ok("cmd.run", r#"printf '[%s]' "a b" 'c  d' e\ f $HOME '' *"#, &[("python_shell", json!(false))]);
        assert_eq!(out.ret, json!("[a b][c  d][e f][$HOME][][*]"));
        // A list is the word vector as is.
        let out = call(
            "cmd.run",
            &Context::default(),
            vec![json!(["printf", "[%s]", "x y"])],
            kw(&[("python_shell", json!(false))]),
        )
        .unwrap();
        assert_eq!(out.ret, json!("[x y]"));
        let err =
            call("cmd.run", &Context::default(), vec![json!("echo 'oops")], kw(&[("python_shell", json!(false))]))
                .unwrap_err()
                .to_string();
        assert!(err.contains("No closing quotation: the ' opened at character 6"), "{err}");
        let err = call(
            "cmd.run",
            &Context::default(),
            vec![json!("brine-no-such-program x")],
            kw(&[("python_shell", json!(false))]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("Unable to run command 'brine-no-such-program x'"), "{err}");
    }

    #[test]
    fn shell_words_split_like_a_posix_shell() {
        let ok = |line: &str| split_words(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(ok("  ls   -l\t/tmp\n"), ["ls", "-l", "/tmp"]);
        assert_eq!(ok(""), Vec::<String>::new());
        assert_eq!(ok("   "), Vec::<String>::new());
        assert_eq!(ok("a '' b \"\""), ["a", "", "b", ""]);
        assert_eq!(ok(r#"a'b c'd"e f"g"#), ["ab cde fg"]);
        assert_eq!(ok(r"'it''s' 'a\b'"), ["its", r"a\b"]);
        assert_eq!(ok(r#""\"q\" \\ \$x \` \a""#), [r#""q" \ $x ` \a"#]);
        assert_eq!(ok(r"a\ b \'c\' \\"), ["a b", "'c'", r"\"]);
        assert_eq!(ok("one\\\ntwo \"x\\\ny\""), ["onetwo", "xy"]);
        assert_eq!(ok("echo $HOME ~ * ; | # x"), ["echo", "$HOME", "~", "*", ";", "|", "#", "x"]);
        assert_eq!(ok("é 'ü x'"), ["é", "ü x"]);
        assert_eq!(split_words("a 'b"), Err(SplitError::UnclosedQuote { quote: '\'', at: 3 }));
        assert_eq!(split_words("a \"b\\\""), Err(SplitError::UnclosedQuote { quote: '"', at: 3 }));
        assert_eq!(split_words("a\\"), Err(SplitError::TrailingBackslash));
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
    fn a_killed_job_stops_its_command() {
        let ctx = Context::default();
        ctx.cancel.cancel();
        let started = std::time::Instant::now();
        let err = call("cmd.run", &ctx, vec![json!("sleep 30")], kw(&[("python_shell", json!(false))])).unwrap_err();
        assert_eq!(err.to_string(), "killed");
        assert!(started.elapsed().as_secs() < 10);
    }

    #[test]
    fn a_missing_cwd_or_shell_is_a_clear_error() {
        let err = call("cmd.run", &Context::default(), vec![json!("true")], kw(&[("cwd", json!("/nonexistent/dir"))]))
            .unwrap_err();
        assert_eq!(err.to_string(), "Specified cwd '/nonexistent/dir' either not absolute or does not exist");
        let err = call("cmd.run", &Context::default(), vec![json!("true")], kw(&[("shell", json!("/bin/nosuchsh"))]))
            .unwrap_err();
        assert_eq!(err.to_string(), "The shell /bin/nosuchsh is not available");
    }

    #[test]
    fn unknown_users_and_groups_are_named() {
        let err =
            call("cmd.run", &Context::default(), vec![json!("id")], kw(&[("runas", json!("brine-no-such-user"))]))
                .unwrap_err();
        assert_eq!(err.to_string(), "User 'brine-no-such-user' is not available");
        let err =
            call("cmd.run", &Context::default(), vec![json!("id")], kw(&[("group", json!("brine-no-such-group"))]))
                .unwrap_err();
        assert_eq!(err.to_string(), "Group 'brine-no-such-group' is not available");
    }

    #[test]
    fn which_and_has_exec_find_programs_like_salt() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("brine-tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("/nonexistent:{}", dir.path().display());
        assert_eq!(which_in("brine-tool", &path), Some(tool.clone()));
        assert_eq!(which_in(tool.to_str().unwrap(), ""), Some(tool.clone()));
        assert_eq!(which_in("plain", &path), None, "not executable");
        assert_eq!(which_in(plain.to_str().unwrap(), &path), None);
        assert!(exec_finds("brine-tool", Some(&path), Path::new("/")));
        assert!(exec_finds("./brine-tool", None, dir.path()), "relative to the command's directory");
        assert!(!exec_finds("./brine-tool", Some(&path), Path::new("/")));
        assert!(exec_finds("brine-tool", Some("/nonexistent:"), dir.path()), "an empty entry is the directory");
        assert!(exec_finds("sh", None, Path::new("/")), "the C library's default path");
        assert!(!exec_finds("brine-tool", None, dir.path()));
        // The system directories are searched even when PATH lacks them.
        assert_eq!(which_in("sh", "/nonexistent"), Some(PathBuf::from("/bin/sh")));
        assert_eq!(which_in("", &path), None);

        let ctx = Context::default();
        let found = call("cmd.which", &ctx, vec![json!("sh")], Map::new()).unwrap().ret;
        assert!(found.as_str().is_some_and(|p| p.ends_with("/sh")), "{found}");
        assert_eq!(call("cmd.which", &ctx, vec![json!("brine-no-such-program")], Map::new()).unwrap().ret, json!(null));
        assert_eq!(call("cmd.has_exec", &ctx, vec![json!("sh")], Map::new()).unwrap().ret, json!(true));
        assert_eq!(
            call("cmd.has_exec", &ctx, vec![json!("brine-no-such-program")], Map::new()).unwrap().ret,
            json!(false)
        );
    }

    #[test]
    fn switchers_get_exactly_the_users_ids() {
        let who = Identity {
            name: "deploy".into(),
            uid: Uid::from_raw(1001),
            gid: Gid::from_raw(1001),
            group_name: None,
            groups: vec![(Gid::from_raw(1001), "deploy".into()), (Gid::from_raw(27), "sudo".into())],
            home: "/home/deploy".into(),
            shell: "/bin/bash".into(),
            switch: true,
        };
        let argv = vec!["/bin/bash".to_string(), "-c".into(), "id".into()];
        let (prog, args) = Switcher::Setpriv("/usr/bin/setpriv".into()).wrap(&who, argv.clone());
        assert_eq!(prog, PathBuf::from("/usr/bin/setpriv"));
        assert_eq!(args, ["--reuid=1001", "--regid=1001", "--groups=1001,27", "--", "/bin/bash", "-c", "id"]);
        let lonely = Identity { groups: vec![], ..who.clone() };
        let (_, args) = Switcher::Setpriv("/usr/bin/setpriv".into()).wrap(&lonely, vec!["id".into()]);
        assert_eq!(args, ["--reuid=1001", "--regid=1001", "--clear-groups", "--", "id"]);
        let (prog, args) = Switcher::Runuser("/usr/sbin/runuser".into()).wrap(&who, argv.clone());
        assert_eq!(prog, PathBuf::from("/usr/sbin/runuser"));
        assert_eq!(args, ["-u", "deploy", "--", "/bin/bash", "-c", "id"]);
        let staff = Identity { group_name: Some("staff".into()), gid: Gid::from_raw(50), ..who };
        let (_, args) = Switcher::Runuser("/usr/sbin/runuser".into()).wrap(&staff, argv);
        assert_eq!(args, ["-u", "deploy", "-g", "staff", "-G", "deploy", "-G", "sudo", "--", "/bin/bash", "-c", "id"]);
    }

    /// A throwaway user with a home and one supplementary group, removed on drop.
    struct TempUser {
        name: String,
        group: String,
        home: tempfile::TempDir,
    }

    impl TempUser {
        fn create() -> Option<TempUser> {
            let root = Uid::effective().is_root();
            let tools =
                ["useradd", "userdel", "groupadd", "groupdel"].iter().all(|t| which_in(t, &minion_path()).is_some());
            if !root || !tools || Switcher::find().is_none() {
                eprintln!("skipped: runas tests need root, shadow tools and setpriv or runuser");
                return None;
            }
            let name = crate::exec::host::tests_unique_name("r");
            let group = format!("{name}g");
            let home = tempfile::tempdir().unwrap();
            // The user must be able to reach its home inside the 0700 temp dir.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let user = TempUser { name, group, home };
            let run = |prog: &str, args: &[&str]| {
                let out = Command::new(prog).args(args).output().unwrap();
                assert!(out.status.success(), "{prog} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            };
            run("groupadd", &[&user.group]);
            let home_dir = user.home_dir();
            run("useradd", &["-m", "-d", home_dir.to_str().unwrap(), "-s", "/bin/sh", "-G", &user.group, &user.name]);
            Some(user)
        }

        fn home_dir(&self) -> PathBuf {
            self.home.path().join("home")
        }
    }

    impl Drop for TempUser {
        fn drop(&mut self) {
            let _ = Command::new("userdel").arg(&self.name).output();
            let _ = Command::new("groupdel").arg(&self.name).output();
            let _ = Command::new("groupdel").arg(&self.group).output();
        }
    }

    #[test]
    fn runas_gives_the_users_ids_groups_environment_and_home() {
        let Some(user) = TempUser::create() else { return };
        let u = User::from_name(&user.name).unwrap().unwrap();
        let extra = Group::from_name(&user.group).unwrap().unwrap();
        let who = [("runas", json!(user.name))];

        let out = run_ok("cmd.run", "id -u; id -g; id -G; pwd; echo $HOME $USER $LOGNAME $SHELL", &who);
        let home = user.home_dir();
        let mut want_groups = [u.gid.as_raw(), extra.gid.as_raw()];
        want_groups.sort();
        let lines: Vec<&str> = out.ret.as_str().unwrap().lines().collect();
        assert_eq!(lines[0], u.uid.to_string());
        assert_eq!(lines[1], u.gid.to_string());
        let mut got_groups: Vec<u32> = lines[2].split_whitespace().map(|g| g.parse().unwrap()).collect();
        got_groups.sort();
        assert_eq!(got_groups, want_groups, "the user's groups and none of root's");
        assert_eq!(lines[3], home.to_str().unwrap(), "starts in the user's home");
        assert_eq!(lines[4], format!("{} {} {} /bin/sh", home.display(), user.name, user.name));

        // Without a shell, and with every function of the family.
        let out = run_ok("cmd.run_stdout", "id -un", &[("runas", json!(user.name)), ("python_shell", json!(false))]);
        assert_eq!(out.ret, json!(user.name));
        let out = run_ok("cmd.run_all", "id -un >&2", &who);
        assert_eq!(out.ret["stderr"], json!(user.name));
        let out = run_ok("cmd.retcode", "test \"$(id -u)\" = 0", &who);
        assert_eq!(out.ret, json!(1), "not root");

        // group= changes the primary group; the supplementary groups stay the user's.
        let out = run_ok("cmd.run", "id -g; id -G", &[("runas", json!(user.name)), ("group", json!(user.group))]);
        let lines: Vec<&str> = out.ret.as_str().unwrap().lines().collect();
        assert_eq!(lines[0], extra.gid.to_string());
        let mut got_groups: Vec<u32> = lines[1].split_whitespace().map(|g| g.parse().unwrap()).collect();
        got_groups.sort();
        assert_eq!(got_groups, want_groups);

        // Both switchers give the same ids, whichever this host would pick.
        let who = resolve_identity(Some(&user.name), Some(&user.group)).unwrap();
        let path = minion_path();
        let switchers =
            [which_in("setpriv", &path).map(Switcher::Setpriv), which_in("runuser", &path).map(Switcher::Runuser)];
        for switcher in switchers.into_iter().flatten() {
            let (prog, args) = switcher.wrap(&who, vec!["sh".into(), "-c".into(), "id -u; id -g; id -G".into()]);
            let out = Command::new(prog).args(args).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines[..2], [u.uid.to_string(), extra.gid.to_string()], "{switcher:?}");
            let mut got: Vec<u32> = lines[2].split_whitespace().map(|g| g.parse().unwrap()).collect();
            got.sort();
            assert_eq!(got, want_groups, "{switcher:?}");
        }

        // env= cannot move HOME or USER away from the user; cwd= still wins.
        let out = run_ok(
            "cmd.run",
            "pwd; echo $HOME $USER $X",
            &[("runas", json!(user.name)), ("env", json!({"HOME": "/x", "USER": "y", "X": "z"})), ("cwd", json!("/"))],
        );
        assert_eq!(out.ret, json!(format!("/\n{} {} z", home.display(), user.name)));

        // A relative program is found from the command's directory (the user's home).
        let script = home.join("hello.sh");
        std::fs::write(&script, "#!/bin/sh\nid -un\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = run_ok("cmd.run", "./hello.sh", &[("runas", json!(user.name)), ("python_shell", json!(false))]);
        assert_eq!(out.ret, json!(user.name));

        // A missing program is reported as such, not as the switcher's failure.
        let err = call(
            "cmd.run",
            &Context::default(),
            vec![json!("brine-no-such-program")],
            kw(&[("runas", json!(user.name)), ("python_shell", json!(false))]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("Unable to run command 'brine-no-such-program'"), "{err}");

        // The process-group kill still reaches the user's processes.
        let started = Instant::now();
        let err = call(
            "cmd.run",
            &Context::default(),
            vec![json!("sleep 30 | sleep 30")],
            kw(&[("runas", json!(user.name)), ("timeout", json!(0.3))]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("Timed out"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
