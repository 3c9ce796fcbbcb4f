//! `cron.*` states: jobs in a user's crontab, through the `cron.*` execution
//! functions.
//!
//! Follows Salt's `cron` states: a job is tracked by its identifier (by default the
//! command itself), written as a `# SALT_CRON_IDENTIFIER:<id>` comment above it, so
//! changing a job's schedule or command updates it in place of adding another.
//! Changes are `{user: command}`; comments are Salt's ("Cron /usr/bin/task added to
//! root's crontab", "Cron /usr/bin/task already present"). Test mode reads the crontab
//! and compares with the same rules `cron.set_job` uses.

use super::calls::{py_str, Calls, Live, Ret};
use crate::exec::cron::{matched, needs_change, Tab, When};
use crate::state::{Outcome, StateContext, StateFunction, StateModule};
use brine_proto::{Map, Value};
use serde::Deserialize;
use serde_json::json;

fn root() -> String {
    "root".into()
}

fn star() -> Value {
    json!("*")
}

/// `identifier` as Salt reads it: left out (or False), it is the command; null means
/// none.
/// Keeps an explicit `null` apart from a missing argument.
fn given<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn identifier_of(v: &Option<Value>, name: &str) -> Option<String> {
    match v {
        None | Some(Value::Bool(false)) => Some(name.to_string()),
        Some(Value::Null) => None,
        Some(other) => Some(py_str(other)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresentArgs {
    #[serde(default = "root")]
    user: String,
    #[serde(default = "star")]
    minute: Value,
    #[serde(default = "star")]
    hour: Value,
    #[serde(default = "star")]
    daymonth: Value,
    #[serde(default = "star")]
    month: Value,
    #[serde(default = "star")]
    dayweek: Value,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    commented: bool,
    #[serde(default, deserialize_with = "given")]
    identifier: Option<Value>,
    /// `@reboot`, `@hourly`, …: instead of the five time fields.
    #[serde(default)]
    special: Option<String>,
}

/// What test mode finds (Salt's `_check_cron`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Absent,
    Present,
    Update,
}

/// The wanted job; a `None` field is "whatever it is".
struct Check<'a> {
    cmd: &'a str,
    fields: [Option<String>; 5],
    comment: Option<&'a str>,
    commented: Option<bool>,
    identifier: Option<&'a str>,
    special: Option<&'a str>,
}

fn check(tab: &Tab, w: &Check) -> Found {
    let jobs = if w.special.is_some() { &tab.special } else { &tab.crons };
    let bool_word = |b: bool| if b { "True" } else { "False" };
    let Some(job) = jobs.iter().find(|j| matched(j, w.cmd, w.identifier)) else { return Found::Absent };
    let mut pairs: Vec<(Option<&str>, Option<&str>)> = Vec::new();
    match (&job.when, w.special) {
        (When::Fields(f), None) => {
            for (have, want) in f.iter().zip(&w.fields) {
                pairs.push((Some(have.as_str()), want.as_deref()));
            }
        }
        (When::Special(s), Some(want)) => pairs.push((Some(s.as_str()), Some(want))),
        _ => {}
    }
    pairs.push((job.identifier.as_deref(), w.identifier));
    pairs.push((Some(job.cmd.as_str()), Some(w.cmd)));
    pairs.push((job.comment.as_deref(), w.comment));
    pairs.push((Some(bool_word(job.commented)), w.commented.map(bool_word)));
    if pairs.iter().any(|(o, n)| needs_change(*o, *n)) {
        Found::Update
    } else {
        Found::Present
    }
}

fn read(c: &dyn Calls, user: &str) -> Result<Tab, String> {
    let raw = c.call("cron.raw_cron", vec![json!(user)], Map::new()).map_err(|e| e.to_string())?;
    Ok(Tab::parse(raw.as_str().unwrap_or_default()))
}

fn present(c: &dyn Calls, name: &str, a: &PresentArgs, apply: bool) -> Ret {
    let name = name.trim();
    let identifier = identifier_of(&a.identifier, name);
    let fields = [&a.minute, &a.hour, &a.daymonth, &a.month, &a.dayweek].map(|v| py_str(v).to_lowercase());
    if !apply {
        let tab = match read(c, &a.user) {
            Ok(t) => t,
            Err(e) => return Ret::failed(e),
        };
        let w = Check {
            cmd: name,
            fields: fields.clone().map(Some),
            comment: a.comment.as_deref(),
            commented: Some(a.commented),
            identifier: identifier.as_deref(),
            special: a.special.as_deref(),
        };
        return match check(&tab, &w) {
            Found::Absent => Ret::would(format!("Cron {name} is set to be added")),
            Found::Present => Ret::ok(format!("Cron {name} already present")),
            Found::Update => Ret::would(format!("Cron {name} is set to be updated")),
        };
    }
    let mut kw = Map::new();
    kw.insert("user".into(), json!(a.user));
    let fun = match &a.special {
        None => {
            for (k, v) in ["minute", "hour", "daymonth", "month", "dayweek"].iter().zip(&fields) {
                kw.insert((*k).into(), json!(v));
            }
            "cron.set_job"
        }
        Some(s) => {
            kw.insert("special".into(), json!(s));
            "cron.set_special"
        }
    };
    kw.insert("cmd".into(), json!(name));
    if let Some(comment) = &a.comment {
        kw.insert("comment".into(), json!(comment));
    }
    kw.insert("commented".into(), json!(a.commented));
    if let Some(id) = &identifier {
        kw.insert("identifier".into(), json!(id));
    }
    let user = &a.user;
    match c.call(fun, vec![], kw).map(|v| py_str(&v)) {
        Ok(r) if r == "present" => Ret::ok(format!("Cron {name} already present")),
        Ok(r) if r == "new" || r == "updated" => {
            let comment = if r == "new" {
                format!("Cron {name} added to {user}'s crontab")
            } else {
                format!("Cron {name} updated")
            };
            let mut ret = Ret::ok(comment);
            ret.changes.insert(user.clone(), json!(name));
            ret
        }
        Ok(other) => Ret::failed(format!("Cron {name} for user {user} failed to commit with error \n{other}")),
        Err(e) => Ret::failed(format!("Cron {name} for user {user} failed to commit with error \n{e}")),
    }
}

#[derive(Debug, Deserialize)]
pub struct AbsentArgs {
    #[serde(default = "root")]
    user: String,
    #[serde(default, deserialize_with = "given")]
    identifier: Option<Value>,
    #[serde(default)]
    special: Option<String>,
    /// Salt takes (and ignores) the other `present` arguments, so a state can switch
    /// between the two by name only.
    #[serde(flatten)]
    #[allow(dead_code)]
    other: Map,
}

fn absent(c: &dyn Calls, name: &str, a: &AbsentArgs, apply: bool) -> Ret {
    let name = name.trim();
    let identifier = identifier_of(&a.identifier, name);
    let user = &a.user;
    if !apply {
        let tab = match read(c, user) {
            Ok(t) => t,
            Err(e) => return Ret::failed(e),
        };
        let w = Check {
            cmd: name,
            fields: Default::default(),
            comment: None,
            commented: None,
            identifier: identifier.as_deref(),
            special: None,
        };
        return match check(&tab, &w) {
            Found::Absent => Ret::ok(format!("Cron {name} is absent")),
            _ => Ret::would(format!("Cron {name} is set to be removed")),
        };
    }
    let mut kw = Map::new();
    kw.insert("user".into(), json!(user));
    kw.insert("cmd".into(), json!(name));
    let fun = match &a.special {
        None => "cron.rm_job",
        Some(s) => {
            kw.insert("special".into(), json!(s));
            "cron.rm_special"
        }
    };
    if let Some(id) = &identifier {
        kw.insert("identifier".into(), json!(id));
    }
    match c.call(fun, vec![], kw).map(|v| py_str(&v)) {
        Ok(r) if r == "absent" => Ret::ok(format!("Cron {name} already absent")),
        Ok(r) if r == "removed" => {
            let mut ret = Ret::ok(format!("Cron {name} removed from {user}'s crontab"));
            ret.changes.insert(user.clone(), json!(name));
            ret
        }
        Ok(other) => Ret::failed(format!("Cron {name} for user {user} failed to commit with error {other}")),
        Err(e) => Ret::failed(format!("Cron {name} for user {user} failed to commit with error {e}")),
    }
}

pub struct Present;
impl StateFunction for Present {
    const NAME: &'static str = "cron.present";
    const DOC: &'static str = "Ensures a job (the command in name) is in a user's crontab. user \
        (default root); minute, hour, daymonth, month, dayweek (default *; random picks a value once, \
        a:b one in that range) or special (@reboot, @hourly, …); comment: a comment line above it; \
        commented: keep it disabled; identifier: what tracks the job across edits (default: the \
        command, so changing the command adds a new job unless an identifier is set).\n\nExample:\n  /usr/local/bin/backup:\n    cron.present:\n      - user: root\n      - minute: 30\n      - hour: 2\n      - identifier: nightly-backup";
    type Args = PresentArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: PresentArgs, apply: bool) -> Outcome {
        present(&Live(ctx.exec), name, &a, apply).outcome()
    }
}

pub struct Absent;
impl StateFunction for Absent {
    const NAME: &'static str = "cron.absent";
    const DOC: &'static str = "Ensures a job is not in a user's crontab. user (default root); \
        identifier: the job's identifier (default: the command); special: for an @special job.\
        \n\nExample:\n  /usr/local/bin/old-job:\n    cron.absent:\n      - user: root";
    type Args = AbsentArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: AbsentArgs, apply: bool) -> Outcome {
        absent(&Live(ctx.exec), name, &a, apply).outcome()
    }
}

/// The `cron` state module.
pub static MODULE: StateModule =
    StateModule { name: "cron", doc: "Jobs in users' crontabs.", functions: &[&Absent, &Present] };

#[cfg(test)]
mod tests {
    use super::super::calls::script::Script;
    use super::*;

    fn pargs(v: Value) -> PresentArgs {
        serde_json::from_value(v).unwrap()
    }

    fn aargs(v: Value) -> AbsentArgs {
        serde_json::from_value(v).unwrap()
    }

    const TAB: &str = "# Lines below here are managed by Salt, do not edit\n\
        # SALT_CRON_IDENTIFIER:backup\n30 2 * * * /usr/local/bin/backup\n\
        # SALT_CRON_IDENTIFIER:/usr/bin/legacy\n0 0 * * * /usr/bin/legacy\n";

    #[test]
    fn test_mode_compares_like_set_job() {
        let s = Script::new().call("cron.raw_cron root", json!(TAB));
        let a = pargs(json!({"minute": 30, "hour": 2, "identifier": "backup"}));
        assert_eq!(
            present(&s, "/usr/local/bin/backup", &a, false),
            Ret::ok("Cron /usr/local/bin/backup already present")
        );
        let s = Script::new().call("cron.raw_cron root", json!(TAB));
        let a = pargs(json!({"minute": 45, "hour": 2, "identifier": "backup"}));
        assert_eq!(
            present(&s, "/usr/local/bin/backup --full", &a, false),
            Ret::would("Cron /usr/local/bin/backup --full is set to be updated")
        );
        let s = Script::new().call("cron.raw_cron web", json!(""));
        let a = pargs(json!({"user": "web"}));
        assert_eq!(present(&s, "  /bin/true ", &a, false), Ret::would("Cron /bin/true is set to be added"));
        let s = Script::new().call("cron.raw_cron root", json!(TAB));
        assert_eq!(
            absent(&s, "/usr/bin/legacy", &aargs(json!({"minute": 5})), false),
            Ret::would("Cron /usr/bin/legacy is set to be removed")
        );
        let s = Script::new().call("cron.raw_cron root", json!(TAB));
        assert_eq!(
            absent(&s, "/usr/local/bin/backup", &aargs(json!({})), false),
            Ret::ok("Cron /usr/local/bin/backup is absent")
        );
    }

    #[test]
    fn apply_reports_like_salt() {
        let s = Script::new().call(
            "cron.set_job user=web minute=*/5 hour=* daymonth=* month=* dayweek=* cmd=/bin/true comment=alive commented=false identifier=/bin/true",
            json!("new"),
        );
        let ret = present(&s, "/bin/true", &pargs(json!({"user": "web", "minute": "*/5", "comment": "alive"})), true);
        s.done();
        assert_eq!(ret.comment, "Cron /bin/true added to web's crontab");
        assert_eq!(Value::Object(ret.changes), json!({"web": "/bin/true"}));
        let s = Script::new().call(
            "cron.set_special user=root special=@reboot cmd=/bin/boot commented=false identifier=b",
            json!("updated"),
        );
        let ret = present(&s, "/bin/boot", &pargs(json!({"special": "@reboot", "identifier": "b"})), true);
        assert_eq!(ret.comment, "Cron /bin/boot updated");
        let s = Script::new().fails(
            "cron.set_job user=nosuch minute=* hour=* daymonth=* month=* dayweek=* cmd=x commented=false identifier=x",
            "Command 'crontab -u nosuch -l' failed with exit code 1: crontab: user 'nosuch' unknown",
        );
        let ret = present(&s, "x", &pargs(json!({"user": "nosuch"})), true);
        assert_eq!(ret.result, Some(false));
        assert!(
            ret.comment.starts_with("Cron x for user nosuch failed to commit with error \nCommand 'crontab"),
            "{}",
            ret.comment
        );
        let s = Script::new().call("cron.rm_job user=root cmd=/bin/x identifier=/bin/x", json!("removed"));
        let ret = absent(&s, "/bin/x", &aargs(json!({})), true);
        assert_eq!(
            (ret.comment.as_str(), Value::Object(ret.changes)),
            ("Cron /bin/x removed from root's crontab", json!({"root": "/bin/x"}))
        );
        let s = Script::new().call("cron.rm_job user=root cmd=/bin/x", json!("absent"));
        assert_eq!(
            absent(&s, "/bin/x", &aargs(json!({"identifier": null})), true),
            Ret::ok("Cron /bin/x already absent")
        );
    }
}
