//! How the system modules (`pkg`, `service`, `user`, `group`, `status`, `disk`,
//! `network`) touch the host.
//!
//! A module builds each [`CommandLine`] with a pure function and hands it to a
//! [`Runner`]: [`Host`] runs it for real (no shell, `LC_ALL=C` so the output parses the
//! same everywhere, stdout and stderr captured apart); in fixture tests a script of
//! captured outputs stands in, so a test states the exact commands a call runs and
//! what the module makes of their output, without root or a package manager.

use super::{CallError, Context};
use brine_proto::Value;
use serde::de::{self, Deserialize, Deserializer};
use std::fmt;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a killed job's command gets to stop after SIGTERM before SIGKILL: package
/// managers interrupted mid-way by SIGKILL can leave their database locked.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// A program and its arguments, run without a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub program: String,
    pub args: Vec<String>,
    /// Extra environment, on top of the minion's.
    pub env: Vec<(String, String)>,
}

impl CommandLine {
    /// A command line with no arguments yet.
    pub fn new(program: impl Into<String>) -> CommandLine {
        CommandLine { program: program.into(), args: Vec::new(), env: Vec::new() }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> CommandLine {
        self.args.push(arg.into());
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(mut self, args: I) -> CommandLine
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the command.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> CommandLine {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The command as a shell would read it, environment first: `K=V prog arg…`.
    /// Fixture tests compare this.
    #[cfg(test)]
    pub fn shell_form(&self) -> String {
        let mut words: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
        words.push(self.to_string());
        words.join(" ")
    }
}

/// The program and arguments, quoted where needed (environment left out: error
/// messages name the command, not its setup).
impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&quote(&self.program))?;
        for a in &self.args {
            write!(f, " {}", quote(a))?;
        }
        Ok(())
    }
}

/// Single-quotes a word for display when it holds anything a shell would split on.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%^~".contains(c) || !c.is_ascii());
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What a finished command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
    /// The exit status; `-signal` when a signal ended it.
    pub retcode: i32,
}

impl Ran {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.retcode == 0
    }

    /// The error for this command having failed: names the command, its exit status and
    /// what it printed on stderr (or stdout, when stderr is empty).
    pub fn failure(&self, cmd: &CommandLine) -> CallError {
        let said = match (self.stderr.trim(), self.stdout.trim()) {
            ("", "") => String::new(),
            ("", out) => format!(": {out}"),
            (err, _) => format!(": {err}"),
        };
        CallError::failed(format!("Command '{cmd}' failed with exit code {}{said}", self.retcode))
    }
}

/// Runs command lines: the real host, or a script in tests.
pub trait Runner {
    /// Runs `cmd` to completion. An error means it could not run at all (not found,
    /// killed); a non-zero exit is a normal [`Ran`].
    fn run(&self, cmd: &CommandLine) -> Result<Ran, CallError>;

    /// Runs `cmd` and fails unless it exits 0.
    fn run_ok(&self, cmd: &CommandLine) -> Result<Ran, CallError> {
        let ran = self.run(cmd)?;
        if ran.success() {
            Ok(ran)
        } else {
            Err(ran.failure(cmd))
        }
    }
}

/// The real host. Commands run in their own process group and stop when the job is
/// killed (SIGTERM, then SIGKILL after a grace period).
pub struct Host<'a> {
    ctx: &'a Context,
}

impl<'a> Host<'a> {
    pub fn new(ctx: &'a Context) -> Host<'a> {
        Host { ctx }
    }
}

impl Runner for Host<'_> {
    fn run(&self, cmd: &CommandLine) -> Result<Ran, CallError> {
        let mut command = Command::new(&cmd.program);
        command
            .args(&cmd.args)
            .env("LC_ALL", "C")
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                CallError::failed(format!("Command '{}' cannot be found (is it installed and in PATH?)", cmd.program))
            } else {
                CallError::failed(format!("Unable to run command '{cmd}': {e}"))
            }
        })?;
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
        let out = reader(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
        let err = reader(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));

        let group = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
        let mut terminated: Option<Instant> = None;
        let mut nap = Duration::from_micros(200);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => return Err(CallError::failed(format!("cannot wait for command '{cmd}': {e}"))),
            }
            if self.ctx.cancel.is_cancelled() {
                match terminated {
                    None => {
                        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
                        terminated = Some(Instant::now());
                    }
                    Some(at) if at.elapsed() >= KILL_GRACE => {
                        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                    }
                    Some(_) => {}
                }
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(20));
        };
        let join =
            |t: Option<std::thread::JoinHandle<String>>| t.map(|t| t.join().unwrap_or_default()).unwrap_or_default();
        let stdout = join(out);
        let stderr = join(err);
        if terminated.is_some() {
            return Err(CallError::failed(format!("killed while running '{cmd}'")));
        }
        let retcode = status.code().unwrap_or_else(|| -status.signal().unwrap_or(0));
        Ok(Ran { stdout, stderr, retcode })
    }
}

/// The full path of `program` found in `PATH`, like `which`.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Whether `name` matches the shell glob `pattern` (`*`, `?`, `[seq]`, `[!seq]`), the
/// way Salt's `fnmatch` matches package, service and interface names.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matching with one backtrack point for the last `*` seen.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => match class(&p, pi, n[ni]) {
                Some((true, next)) => Some(next),
                Some((false, _)) => None,
                // An unclosed `[` is a literal character.
                None => (n[ni] == '[').then_some(pi + 1),
            },
            Some(c) => (*c == n[ni]).then_some(pi + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ni += 1;
            }
            (None, Some((sp, sn))) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the `[…]` class starting at `p[start]`: whether it matched and
/// where the pattern continues, or `None` when the class is not closed.
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|hi| *hi != ']') {
            let hi = p[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
}

/// Whether `pattern` has glob characters (Salt's test for "this name is a glob").
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?']) || pattern.find('[').is_some_and(|i| pattern[i..].contains(']'))
}

/// A command-line word taken as text. Salt reads `pkg.install 1.10` or `uid=1001` as
/// numbers; the modules want the text back (`1.1`, `1001`), as Salt's `str()` gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word(pub String);

impl Word {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Word {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Word, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Word(s)),
            v @ (Value::Number(_) | Value::Bool(_)) => Ok(Word(word_text(&v))),
            Value::Null => Err(de::Error::custom("expected a word, got None")),
            other => Err(de::Error::custom(format!("expected a word, got {other}"))),
        }
    }
}

/// The text of a scalar the way Python's `str()` prints it (`True`, `1.1`).
pub fn word_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// A list given either as a list or as one comma-separated word (`groups=wheel,adm`),
/// as Salt accepts both.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WordList(pub Vec<String>);

impl<'de> Deserialize<'de> for WordList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WordList, D::Error> {
        match Value::deserialize(d)? {
            Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    Value::Array(_) | Value::Object(_) | Value::Null => {
                        Err(de::Error::custom(format!("expected a list of words, found {v}")))
                    }
                    v => Ok(word_text(v)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(WordList),
            Value::Null => Ok(WordList(Vec::new())),
            Value::Object(_) => Err(de::Error::custom("expected a list or a comma-separated word, got a map")),
            v => Ok(WordList(
                word_text(&v).split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
            )),
        }
    }
}

/// A name no account or group on this host has, for tests that create one for real:
/// `brine-test-<kind><pid>-<nanos>`.
#[cfg(test)]
pub fn tests_unique_name(kind: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("brine-test-{kind}{}-{}", std::process::id(), nanos % 100_000)
}

/// A fake host for fixture tests: the commands a call must run, in order, each with
/// the output it gets back.
#[cfg(test)]
pub mod script {
    use super::{CommandLine, Ran, Runner};
    use crate::exec::CallError;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    /// Expected command lines (in [`CommandLine::shell_form`]) and their outputs.
    #[derive(Default)]
    pub struct Script {
        steps: RefCell<VecDeque<(String, Ran)>>,
    }

    impl Script {
        pub fn new() -> Script {
            Script::default()
        }

        /// Expects `cmd` next; it prints `stdout` and exits 0.
        pub fn ok(self, cmd: &str, stdout: &str) -> Script {
            self.step(cmd, Ran { stdout: stdout.into(), stderr: String::new(), retcode: 0 })
        }

        /// Expects `cmd` next; it prints `stderr` and exits `retcode`.
        pub fn fails(self, cmd: &str, retcode: i32, stderr: &str) -> Script {
            self.step(cmd, Ran { stdout: String::new(), stderr: stderr.into(), retcode })
        }

        /// Expects `cmd` next with a full result.
        pub fn step(self, cmd: &str, ran: Ran) -> Script {
            self.steps.borrow_mut().push_back((cmd.to_string(), ran));
            self
        }

        /// Asserts every expected command ran.
        pub fn done(&self) {
            let left: Vec<String> = self.steps.borrow().iter().map(|(c, _)| c.clone()).collect();
            assert!(left.is_empty(), "commands expected but not run: {left:#?}");
        }
    }

    impl Runner for Script {
        fn run(&self, cmd: &CommandLine) -> Result<Ran, CallError> {
            let got = cmd.shell_form();
            let (want, ran) =
                self.steps.borrow_mut().pop_front().unwrap_or_else(|| panic!("unexpected command: {got}"));
            assert_eq!(got, want, "commands differ");
            Ok(ran)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs_match_like_fnmatch() {
        let cases = [
            ("bas*", "bash", true),
            ("bas*", "base-files", true),
            ("bas*", "dash", false),
            ("*", "", true),
            ("lib?", "libc", true),
            ("lib?", "lib", false),
            ("eth[0-2]", "eth1", true),
            ("eth[0-2]", "eth3", false),
            ("eth[!0]", "eth1", true),
            ("eth[!0]", "eth0", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("[]]x", "]x", true),
            ("x[", "x[", true),
            ("ssh", "sshd", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(fnmatch(pattern, name), want, "{pattern} vs {name}");
        }
        assert!(is_glob("salt*") && is_glob("eth[01]") && !is_glob("ssh") && !is_glob("x["));
    }

    #[test]
    fn command_lines_display_quoted_and_with_environment() {
        let c =
            CommandLine::new("apt-get").args(["-q", "install", "a b", "it's"]).env("DEBIAN_FRONTEND", "noninteractive");
        assert_eq!(c.to_string(), r"apt-get -q install 'a b' 'it'\''s'");
        assert_eq!(c.shell_form(), r"DEBIAN_FRONTEND=noninteractive apt-get -q install 'a b' 'it'\''s'");
    }

    #[test]
    fn failures_name_the_command_and_what_it_said() {
        let c = CommandLine::new("useradd").arg("root");
        let ran = Ran { stdout: String::new(), stderr: "useradd: user 'root' already exists\n".into(), retcode: 9 };
        assert_eq!(
            ran.failure(&c).to_string(),
            "Command 'useradd root' failed with exit code 9: useradd: user 'root' already exists"
        );
    }

    #[test]
    fn words_and_word_lists_accept_what_the_cli_types() {
        let w: Word = serde_json::from_value(json!(1.1)).unwrap();
        assert_eq!(w.as_str(), "1.1");
        let w: Word = serde_json::from_value(json!(1001)).unwrap();
        assert_eq!(w.as_str(), "1001");
        assert!(serde_json::from_value::<Word>(json!([1])).is_err());
        let l: WordList = serde_json::from_value(json!("wheel, adm")).unwrap();
        assert_eq!(l.0, ["wheel", "adm"]);
        let l: WordList = serde_json::from_value(json!(["wheel", 10])).unwrap();
        assert_eq!(l.0, ["wheel", "10"]);
    }

    #[test]
    fn the_real_host_captures_streams_and_status() {
        let ctx = Context::default();
        let host = Host::new(&ctx);
        let ran = host.run(&CommandLine::new("sh").args(["-c", "echo out; echo err >&2; exit 3"])).unwrap();
        assert_eq!((ran.stdout.as_str(), ran.stderr.as_str(), ran.retcode), ("out\n", "err\n", 3));
        let err = host.run_ok(&CommandLine::new("sh").args(["-c", "echo nope >&2; exit 1"])).unwrap_err();
        assert_eq!(err.to_string(), "Command 'sh -c 'echo nope >&2; exit 1'' failed with exit code 1: nope");
        let err = host.run(&CommandLine::new("brine-no-such-program")).unwrap_err();
        assert!(err.to_string().contains("'brine-no-such-program' cannot be found"), "{err}");
        let ran = host.run(&CommandLine::new("sh").args(["-c", "echo $LC_ALL $X"]).env("X", "y")).unwrap();
        assert_eq!(ran.stdout, "C y\n");
    }

    #[test]
    fn a_killed_job_stops_its_command() {
        let ctx = Context::default();
        ctx.cancel.cancel();
        let started = Instant::now();
        let err = Host::new(&ctx).run(&CommandLine::new("sleep").arg("30")).unwrap_err();
        assert!(err.to_string().contains("killed while running 'sleep 30'"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(8));
    }
}
