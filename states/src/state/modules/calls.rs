//! How the system state modules (`pkg`, `service`, `user`, `group`, `cron`, `sysctl`)
//! reach the host: through execution functions, by name.
//!
//! A state asks what is there and changes it only through execution functions — the
//! same code `brine run` calls, so each command line is built in one place. It takes a
//! [`Calls`]: [`Live`] runs the functions for real; fixture tests hand it a script of
//! the calls the state must make, each with a canned answer, so a test says what a
//! state asks and what it makes of the answers, without root, systemd or a package
//! manager. Commands no execution function wraps yet (`usermod`, `gpasswd`, `sysctl`)
//! run through `cmd.run_all` without a shell ([`run`]), so scripts see them too.
//!
//! The second half prints values the way Salt's comments do (Python's `str()` and
//! `repr()`), since Salt users read, and scripts match, those comments.

use crate::exec::{CallError, Context};
use crate::state::Outcome;
use brine_proto::{Map, Value};

/// Runs execution functions: the real host, or a script in tests.
pub trait Calls {
    /// Calls `fun` with positional and keyword arguments; its return value.
    fn call(&self, fun: &str, args: Vec<Value>, kwargs: Map) -> Result<Value, CallError>;
}

/// The real host.
pub struct Live<'a>(pub &'a Context);

impl Calls for Live<'_> {
    fn call(&self, fun: &str, args: Vec<Value>, kwargs: Map) -> Result<Value, CallError> {
        crate::exec::call(fun, self.0, args, kwargs).map(|out| out.ret)
    }
}

/// Keyword arguments from pairs.
pub fn kw<const N: usize>(pairs: [(&str, Value); N]) -> Map {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// What a command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
    pub retcode: i64,
}

impl Ran {
    /// The error for this command having failed, with what it said.
    pub fn failure(&self, argv: &[&str]) -> CallError {
        let said = match (self.stderr.trim(), self.stdout.trim()) {
            ("", "") => String::new(),
            ("", out) => format!(": {out}"),
            (err, _) => format!(": {err}"),
        };
        CallError::failed(format!("Command '{}' failed with exit code {}{said}", argv.join(" "), self.retcode))
    }
}

/// Runs a program directly (no shell, `LC_ALL=C` so its output parses the same
/// everywhere) through `cmd.run_all`, optionally feeding it `stdin`. A non-zero exit is
/// a normal [`Ran`]; an error means it could not run at all.
pub fn run(c: &dyn Calls, argv: &[&str], stdin: Option<&str>) -> Result<Ran, CallError> {
    let words: Vec<Value> = argv.iter().map(|w| Value::String(w.to_string())).collect();
    let mut kwargs = kw([
        ("python_shell", Value::Bool(false)),
        ("ignore_retcode", Value::Bool(true)),
        ("env", serde_json::json!({"LC_ALL": "C"})),
    ]);
    if let Some(input) = stdin {
        kwargs.insert("stdin".into(), Value::String(input.to_string()));
    }
    let ret = c.call("cmd.run_all", vec![Value::Array(words)], kwargs)?;
    let text = |k: &str| ret.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    Ok(Ran {
        stdout: text("stdout"),
        stderr: text("stderr"),
        retcode: ret.get("retcode").and_then(Value::as_i64).unwrap_or(1),
    })
}

/// Calls a function that answers True or False.
pub fn yes_no(c: &dyn Calls, fun: &str, args: Vec<Value>, kwargs: Map) -> Result<bool, CallError> {
    Ok(truthy(&c.call(fun, args, kwargs)?))
}

/// A state's answer, built the way Salt's state functions build theirs: `result`
/// `None` means "would change" (test mode), whether or not changes can be predicted.
#[derive(Debug, Clone, PartialEq)]
pub struct Ret {
    pub result: Option<bool>,
    pub changes: Map,
    pub comment: String,
}

impl Ret {
    /// Success with a comment and no changes.
    pub fn ok(comment: impl Into<String>) -> Ret {
        Ret { result: Some(true), changes: Map::new(), comment: comment.into() }
    }

    /// A failure with a comment.
    pub fn failed(comment: impl Into<String>) -> Ret {
        Ret { result: Some(false), changes: Map::new(), comment: comment.into() }
    }

    /// Something would change (test mode).
    pub fn would(comment: impl Into<String>) -> Ret {
        Ret { result: None, changes: Map::new(), comment: comment.into() }
    }

    /// The engine's view: `None` becomes a prediction, which test mode reports as
    /// `result: None`.
    pub fn outcome(self) -> Outcome {
        Outcome {
            ok: self.result != Some(false),
            changes: self.changes,
            comment: self.comment,
            predicted: self.result.is_none(),
        }
    }
}

// ---------------------------------------------------------------------------------
// Values as Salt prints them.

/// Whether Python would take the value as true.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// Salt's `is_true` for a flag given as a word (`"yes"`, `"True"`, `1`).
pub fn flag(v: &Value) -> bool {
    match v {
        Value::String(s) => matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "yes" | "1" | "on"),
        other => truthy(other),
    }
}

/// A scalar's text the way Python's `str()` prints it (`True`, `1.1`, `None`).
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        Value::Array(_) | Value::Object(_) => py_repr(v),
        other => other.to_string(),
    }
}

/// A value the way Python's `repr()` prints it: `['adm', 'web']`, `{'a': 1}`.
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::String(s) => {
            if s.contains('\'') && !s.contains('"') {
                format!("\"{s}\"")
            } else {
                format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
            }
        }
        Value::Array(items) => format!("[{}]", items.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&Value::String(k.clone())), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => py_str(other),
    }
}

/// A list of words given as a list, or as one comma-separated word, as Salt accepts
/// both (`groups: wheel,adm`).
pub fn word_list(v: &Value) -> Vec<String> {
    match v {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().map(py_str).collect(),
        other => py_str(other).split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
    }
}

/// A fake host for fixture tests: the calls a state must make, in order, each with
/// its answer.
#[cfg(test)]
pub mod script {
    use super::{Calls, Value};
    use crate::exec::CallError;
    use brine_proto::Map;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    /// Expected calls (as [`render`] writes them) and their answers.
    #[derive(Default)]
    pub struct Script {
        steps: RefCell<VecDeque<(String, Result<Value, String>)>>,
    }

    /// A call as text: `fun arg… key=value…`, values as JSON unless they are plain
    /// strings; a command run through `cmd.run_all` is `$ argv…` (plus `<<< stdin`).
    pub fn render(fun: &str, args: &[Value], kwargs: &Map) -> String {
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if fun == "cmd.run_all" {
            if let Some(Value::Array(words)) = args.first() {
                let mut line = format!("$ {}", words.iter().map(text).collect::<Vec<_>>().join(" "));
                if let Some(stdin) = kwargs.get("stdin") {
                    line.push_str(&format!(" <<< {}", text(stdin)));
                }
                return line;
            }
        }
        let mut parts = vec![fun.to_string()];
        parts.extend(args.iter().map(text));
        parts.extend(kwargs.iter().map(|(k, v)| format!("{k}={}", text(v))));
        parts.join(" ")
    }

    impl Script {
        pub fn new() -> Script {
            Script::default()
        }

        /// Expects `call` next; it returns `ret`.
        pub fn call(self, call: &str, ret: Value) -> Script {
            self.steps.borrow_mut().push_back((call.to_string(), Ok(ret)));
            self
        }

        /// Expects `call` next; it fails with `err`.
        pub fn fails(self, call: &str, err: &str) -> Script {
            self.steps.borrow_mut().push_back((call.to_string(), Err(err.to_string())));
            self
        }

        /// Expects the command `line` (`$ prog args…`) next; it exits `retcode`
        /// printing `stdout` and `stderr`.
        pub fn cmd(self, line: &str, retcode: i64, stdout: &str, stderr: &str) -> Script {
            let ret = serde_json::json!({"pid": 1, "retcode": retcode, "stdout": stdout, "stderr": stderr});
            self.call(line, ret)
        }

        /// Asserts every expected call was made.
        pub fn done(&self) {
            let left: Vec<String> = self.steps.borrow().iter().map(|(c, _)| c.clone()).collect();
            assert!(left.is_empty(), "calls expected but not made: {left:#?}");
        }
    }

    impl Calls for Script {
        fn call(&self, fun: &str, args: Vec<Value>, kwargs: Map) -> Result<Value, CallError> {
            let got = render(fun, &args, &kwargs);
            let (want, ret) = self.steps.borrow_mut().pop_front().unwrap_or_else(|| panic!("unexpected call: {got}"));
            assert_eq!(got, want, "calls differ");
            ret.map_err(CallError::Failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::script::Script;
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_run_without_a_shell_and_report_failures() {
        let s = Script::new().cmd("$ gpasswd --add bob web", 0, "Adding user bob to group web", "").cmd(
            "$ chpasswd -e <<< bob:$6$x",
            1,
            "",
            "chpasswd: line 1: user 'bob' does not exist\n",
        );
        assert_eq!(run(&s, &["gpasswd", "--add", "bob", "web"], None).unwrap().retcode, 0);
        let ran = run(&s, &["chpasswd", "-e"], Some("bob:$6$x")).unwrap();
        let err = ran.failure(&["chpasswd", "-e"]).to_string();
        assert_eq!(err, "Command 'chpasswd -e' failed with exit code 1: chpasswd: line 1: user 'bob' does not exist");
        s.done();
    }

    #[test]
    fn values_print_as_python_does() {
        assert_eq!(py_repr(&json!(["adm", "it's", 3, true, null])), "['adm', \"it's\", 3, True, None]");
        assert_eq!(py_str(&json!(1.5)), "1.5");
        assert_eq!(py_str(&json!(false)), "False");
        assert_eq!(py_repr(&json!({"a": "b"})), "{'a': 'b'}");
        assert_eq!(word_list(&json!("wheel, adm")), ["wheel", "adm"]);
        assert_eq!(word_list(&json!(["wheel", 10])), ["wheel", "10"]);
        assert!(flag(&json!("Yes")) && flag(&json!(1)) && !flag(&json!("no")) && !flag(&json!(null)));
    }
}
