//! `cron.*`: the jobs in a user's crontab, managed the way Salt manages them.
//!
//! Names, arguments, returns and the crontab layout follow Salt's `cron` module, so a
//! crontab Salt wrote is read the same and the other way round: lines the user wrote
//! stay above `# Lines below here are managed by Salt, do not edit`; below it come
//! environment lines, then jobs, each job's comment (and its
//! `SALT_CRON_IDENTIFIER:<id>` marker) on the line before it, a disabled job prefixed
//! `#DISABLED#`, then `@special` jobs. A job is found by its identifier when it has
//! one, else by its command. `set_job` returns `new`, `updated` or `present`;
//! `rm_job` returns `removed` or `absent`.
//!
//! The crontab is read with `crontab -u USER -l` ("no crontab for USER" is an empty
//! one) and replaced with `crontab -u USER -` fed on stdin (without `-u` for the
//! minion's own user). Where Salt returns crontab's error text as the result, brine
//! fails the call with it; a crontab that cannot be read fails the call instead of
//! being taken as empty (and then overwritten).
//!
//! The parsing and editing are pure ([`Tab`]); the state module `cron.present` uses
//! them to predict changes in test mode.

use super::host::{CommandLine, Host, Runner, Word};
use super::{opt, req, CallError, Context, Function, Output, Param};
use brine_proto::{Map, Value};
use serde::Deserialize;
use serde_json::json;

/// The line after which Salt manages the crontab.
pub(crate) const TAG: &str = "# Lines below here are managed by Salt, do not edit";
/// The marker of a job's identifier in its comment line.
pub(crate) const IDENTIFIER: &str = "SALT_CRON_IDENTIFIER";
/// What a job without an identifier is known by when matching.
pub(crate) const NO_ID: &str = "NO ID SET";

/// When a job runs: five time fields, or a special word (`@reboot`, `@hourly`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum When {
    /// minute, hour, day of month, month, day of week.
    Fields([String; 5]),
    Special(String),
}

/// One job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Job {
    pub when: When,
    pub cmd: String,
    pub identifier: Option<String>,
    pub comment: Option<String>,
    /// Disabled: written as `#DISABLED#…`.
    pub commented: bool,
}

impl Job {
    fn field(&self, i: usize) -> Option<&str> {
        match &self.when {
            When::Fields(f) => Some(f[i].as_str()),
            When::Special(_) => None,
        }
    }

    fn spec(&self) -> Option<&str> {
        match &self.when {
            When::Special(s) => Some(s.as_str()),
            When::Fields(_) => None,
        }
    }

    /// The comment line(s) before the job, if any.
    fn comment_line(&self, trim: bool) -> Option<String> {
        if self.comment.is_none() && self.identifier.is_none() {
            return None;
        }
        let mut line = String::from("#");
        if let Some(c) = self.comment.as_deref().filter(|c| !c.is_empty()) {
            let c = if trim { c.trim_end() } else { c };
            line.push_str(&format!(" {}", c.replace('\n', "\n# ")));
        }
        if let Some(id) = self.identifier.as_deref().filter(|i| !i.is_empty()) {
            line.push_str(&format!(" {IDENTIFIER}:{id}"));
        }
        Some(line)
    }

    fn to_value(&self) -> Value {
        let mut m = Map::new();
        match &self.when {
            When::Fields(f) => {
                for (k, v) in ["minute", "hour", "daymonth", "month", "dayweek"].iter().zip(f) {
                    m.insert((*k).into(), json!(v));
                }
            }
            When::Special(s) => {
                m.insert("spec".into(), json!(s));
            }
        }
        m.insert("cmd".into(), json!(self.cmd));
        m.insert("identifier".into(), json!(self.identifier));
        m.insert("comment".into(), json!(self.comment));
        m.insert("commented".into(), json!(self.commented));
        Value::Object(m)
    }
}

/// A crontab as Salt reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Tab {
    /// Lines above the managed part, as they are.
    pub pre: Vec<String>,
    /// `NAME=value` lines.
    pub env: Vec<(String, String)>,
    pub crons: Vec<Job>,
    pub special: Vec<Job>,
}

impl Tab {
    /// Reads a crontab (Salt's `list_tab`). Below the tag, lines that are no job,
    /// comment or environment line are dropped, as Salt drops them.
    pub fn parse(text: &str) -> Tab {
        let mut tab = Tab::default();
        let mut managed = false;
        let mut comment: Option<String> = None;
        let mut identifier: Option<String> = None;
        for raw in text.lines() {
            if raw == TAG {
                managed = true;
                continue;
            }
            if !managed {
                tab.pre.push(raw.to_string());
                continue;
            }
            let (line, commented) = match raw.strip_prefix("#DISABLED#") {
                Some(rest) => (rest, true),
                None => (raw, false),
            };
            if line.starts_with('@') {
                let mut words = line.split_whitespace();
                let (Some(spec), rest) = (words.next(), words.collect::<Vec<_>>()) else { continue };
                if rest.is_empty() {
                    continue;
                }
                tab.special.push(Job {
                    when: When::Special(spec.to_string()),
                    cmd: rest.join(" "),
                    identifier: identifier.take(),
                    comment: comment.take(),
                    commented,
                });
            } else if line.starts_with('#') {
                let mut text = line.trim_start_matches(['#', ' ']).to_string();
                if let Some(at) = text.find(IDENTIFIER) {
                    let after = &text[at + IDENTIFIER.len()..];
                    if after.chars().count() > 1 {
                        identifier = Some(after.chars().skip(1).collect());
                    }
                    text = text[..at].trim_end().to_string();
                }
                comment = Some(match comment.take() {
                    None => text,
                    Some(c) => format!("{c}\n{text}"),
                });
            } else if line.find('=').is_some_and(|eq| eq > 0 && line.find(' ').is_none_or(|sp| eq < sp)) {
                if let Some((k, v)) = line.split_once('=') {
                    tab.env.push((k.to_string(), v.to_string()));
                }
            } else {
                let words: Vec<&str> = line.split(' ').collect();
                if words.len() > 5 {
                    let fields = [words[0], words[1], words[2], words[3], words[4]].map(String::from);
                    tab.crons.push(Job {
                        when: When::Fields(fields),
                        cmd: words[5..].join(" "),
                        identifier: identifier.take(),
                        comment: comment.take(),
                        commented,
                    });
                }
            }
        }
        tab
    }

    /// Writes the crontab back (Salt's `_render_tab`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for p in &self.pre {
            out.push_str(p);
            out.push('\n');
        }
        out.push_str(TAG);
        out.push('\n');
        for (k, v) in &self.env {
            out.push_str(&if v.is_empty() { format!("{k}=\"\"\n") } else { format!("{k}={v}\n") });
        }
        for (jobs, special) in [(&self.crons, false), (&self.special, true)] {
            for j in jobs {
                if let Some(c) = j.comment_line(special) {
                    out.push_str(&c);
                    out.push('\n');
                }
                let when = match &j.when {
                    When::Fields(f) => f.join(" "),
                    When::Special(s) => s.clone(),
                };
                out.push_str(&format!("{}{when} {}\n", if j.commented { "#DISABLED#" } else { "" }, j.cmd));
            }
        }
        out
    }

    /// Salt's `list_tab` map.
    pub fn to_value(&self) -> Value {
        json!({
            "pre": self.pre,
            "crons": self.crons.iter().map(Job::to_value).collect::<Vec<_>>(),
            "special": self.special.iter().map(Job::to_value).collect::<Vec<_>>(),
            "env": self.env.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
        })
    }
}

/// Whether a job is the one asked for: by identifier when it has one, else by
/// command (Salt's `_cron_matched`).
pub(crate) fn matched(job: &Job, cmd: &str, identifier: Option<&str>) -> bool {
    match &job.identifier {
        None => job.cmd == cmd,
        Some(id) => identifier.filter(|i| !i.is_empty()).unwrap_or(NO_ID) == id,
    }
}

/// Whether a value must change from `old` to `new`: an absent `new` means "keep", and
/// `random` keeps any concrete value (Salt's `_needs_change`).
pub(crate) fn needs_change(old: Option<&str>, new: Option<&str>) -> bool {
    if old == new {
        return false;
    }
    match new {
        Some("random") => old == Some("*"),
        Some(_) => true,
        None => false,
    }
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// What `set_job` and `set_special` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Set {
    Present,
    New,
    Updated,
}

impl Set {
    fn word(self) -> &'static str {
        match self {
            Set::Present => "present",
            Set::New => "new",
            Set::Updated => "updated",
        }
    }
}

/// A small source of randomness for `random` and `a:b` time fields.
struct Dice(u64);

impl Dice {
    fn new() -> Dice {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Dice(nanos ^ (u64::from(std::process::id()) << 32) | 1)
    }

    /// A number in `lo..=hi`.
    fn roll(&mut self, lo: u32, hi: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let span = u64::from(hi.saturating_sub(lo)) + 1;
        lo + (self.0 % span) as u32
    }
}

/// The time fields of a new job: `random` picks a value, `a:b` one in that range
/// (Salt's `_get_cron_date_time`).
fn resolve(fields: &[String; 5], dice: &mut Dice) -> [String; 5] {
    let ranges = [(0, 59), (0, 23), (1, 28), (1, 12), (0, 6)];
    let mut out = fields.clone();
    for i in [0, 1, 3, 4] {
        let v = fields[i].to_lowercase();
        if v == "random" {
            out[i] = dice.roll(ranges[i].0, ranges[i].1).to_string();
        } else if let Some((a, b)) = v.split_once(':').filter(|(a, b)| !b.contains(':') && !a.is_empty()) {
            if let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
                out[i] = dice.roll(a.min(b), a.max(b)).to_string();
            }
        }
    }
    if fields[2].to_lowercase() == "random" {
        let max = match out[3].as_str() {
            "1" | "3" | "5" | "7" | "8" | "10" | "12" => 31,
            "4" | "6" | "9" | "11" => 30,
            _ => 28,
        };
        out[2] = dice.roll(1, max).to_string();
    }
    out
}

/// Sets a job (Salt's `set_job` and `set_special`): a matching job that differs is
/// taken out and written again with the new values, keeping old ones where no new
/// value was asked for.
pub(crate) fn set(tab: &mut Tab, mut want: Job) -> Set {
    set_with(tab, &mut want, &mut Dice::new())
}

fn set_with(tab: &mut Tab, want: &mut Job, dice: &mut Dice) -> Set {
    let found = tab
        .crons
        .iter()
        .enumerate()
        .map(|(i, j)| (false, i, j))
        .chain(tab.special.iter().enumerate().map(|(i, j)| (true, i, j)))
        .find(|(_, _, j)| matched(j, &want.cmd, want.identifier.as_deref()))
        .map(|(special, i, j)| (special, i, j.clone()));
    let Some((special, index, cron)) = found else {
        if let When::Fields(f) = &want.when {
            want.when = When::Fields(resolve(f, dice));
        }
        match want.when {
            When::Fields(_) => tab.crons.push(want.clone()),
            When::Special(_) => tab.special.push(want.clone()),
        }
        return Set::New;
    };
    let cid = cron.identifier.clone().unwrap_or_else(|| NO_ID.to_string());
    let mut tests: Vec<(Option<&str>, Option<&str>)> = vec![
        (cron.comment.as_deref(), want.comment.as_deref()),
        (Some(py_bool(cron.commented)), Some(py_bool(want.commented))),
        (want.identifier.as_deref(), Some(cid.as_str())),
    ];
    for i in 0..5 {
        tests.push((cron.field(i), want.field(i)));
    }
    tests.push((cron.spec(), want.spec()));
    tests.push((Some(cron.cmd.as_str()), Some(want.cmd.as_str())));
    if !tests.iter().any(|(o, n)| needs_change(*o, *n)) {
        return Set::Present;
    }
    if special {
        tab.special.remove(index);
    } else {
        tab.crons.remove(index);
    }
    match (&mut want.when, &cron.when) {
        (When::Fields(new), When::Fields(old)) => {
            for i in 0..5 {
                if !needs_change(Some(&old[i]), Some(&new[i])) {
                    new[i] = old[i].clone();
                }
            }
        }
        (When::Special(new), When::Special(old)) if !needs_change(Some(old), Some(new)) => *new = old.clone(),
        _ => {}
    }
    if !needs_change(cron.comment.as_deref(), want.comment.as_deref()) {
        want.comment = cron.comment.clone();
    }
    let mut cid = Some(cid);
    if !needs_change(Some(&cron.cmd), Some(&want.cmd)) {
        want.cmd = cron.cmd.clone();
        if cid.as_deref() == Some(NO_ID) {
            if let Some(i) = want.identifier.clone().filter(|i| !i.is_empty()) {
                cid = Some(i);
            }
            if cid.as_deref() == Some(NO_ID) && cron.identifier.is_none() {
                cid = None;
            }
        }
    }
    if cid.is_none() || !needs_change(cid.as_deref(), want.identifier.as_deref()) {
        want.identifier = cid;
    }
    match set_with(tab, want, dice) {
        Set::New => Set::Updated,
        other => other,
    }
}

/// Removes the first matching job whose given time fields match (Salt's `rm_job`);
/// whether one was removed.
pub(crate) fn rm_job(tab: &mut Tab, cmd: &str, fields: &[Option<String>; 5], identifier: Option<&str>) -> bool {
    let at = tab.crons.iter().position(|j| {
        matched(j, cmd, identifier)
            && fields.iter().enumerate().all(|(i, f)| match f {
                None => true,
                Some(f) => {
                    j.field(i) == Some(f.as_str()) || (f.eq_ignore_ascii_case("random") && j.field(i) != Some("*"))
                }
            })
    });
    at.map(|i| tab.crons.remove(i)).is_some()
}

/// Removes the first matching special job, of `special` if given (Salt's
/// `rm_special`); whether one was removed.
pub(crate) fn rm_special(tab: &mut Tab, cmd: &str, special: Option<&str>, identifier: Option<&str>) -> bool {
    let at =
        tab.special.iter().position(|j| matched(j, cmd, identifier) && special.is_none_or(|s| j.spec() == Some(s)));
    at.map(|i| tab.special.remove(i)).is_some()
}

// ---------------------------------------------------------------------------------
// Reading and writing crontabs.

/// Whether `user` is the user the minion runs as (then `crontab` needs no `-u`).
fn is_me(user: &str) -> bool {
    nix::unistd::User::from_uid(nix::unistd::geteuid()).ok().flatten().is_some_and(|u| u.name == user)
}

/// `crontab [-u USER] ACTION`.
fn crontab(user: &str, me: bool, action: &str) -> CommandLine {
    let c = CommandLine::new("crontab");
    let c = if me { c } else { c.args(["-u", user]) };
    c.arg(action)
}

/// A user's crontab text, `""` when there is none (Salt's `raw_cron`).
fn read(r: &dyn Runner, user: &str, me: bool) -> Result<String, CallError> {
    let cmd = crontab(user, me, "-l");
    let ran = r.run(&cmd)?;
    if !ran.success() {
        if ran.stderr.contains("no crontab for") {
            return Ok(String::new());
        }
        return Err(ran.failure(&cmd));
    }
    let mut lines: Vec<&str> = ran.stdout.split_inclusive('\n').collect();
    if lines.first().is_some_and(|l| l.starts_with("# DO NOT EDIT THIS FILE - edit the master and reinstall.")) {
        lines.drain(..lines.len().min(3));
    }
    Ok(lines.concat())
}

/// Replaces a user's crontab, fed to `crontab [-u USER] -` on stdin.
fn write(ctx: &Context, user: &str, me: bool, text: &str) -> Result<(), CallError> {
    let cmd = crontab(user, me, "-");
    let mut words = vec![Value::String(cmd.program.clone())];
    words.extend(cmd.args.iter().map(|a| Value::String(a.clone())));
    let mut kw = Map::new();
    kw.insert("python_shell".into(), json!(false));
    kw.insert("ignore_retcode".into(), json!(true));
    kw.insert("stdin".into(), json!(text));
    kw.insert("env".into(), json!({"LC_ALL": "C"}));
    let out = super::call("cmd.run_all", ctx, vec![Value::Array(words)], kw)?;
    let retcode = out.ret.get("retcode").and_then(Value::as_i64).unwrap_or(1);
    if retcode == 0 {
        return Ok(());
    }
    let stderr = out.ret.get("stderr").and_then(Value::as_str).unwrap_or_default().trim().to_string();
    Err(CallError::failed(format!("Command '{cmd}' failed with exit code {retcode}: {stderr}")))
}

/// Where crontabs come from and go: the host, or memory in tests.
trait Store {
    fn read(&self, user: &str) -> Result<String, CallError>;
    fn write(&self, user: &str, text: &str) -> Result<(), CallError>;
}

/// The host's crontabs.
struct Crontabs<'a> {
    ctx: &'a Context,
}

impl Store for Crontabs<'_> {
    fn read(&self, user: &str) -> Result<String, CallError> {
        read(&Host::new(self.ctx), user, is_me(user))
    }
    fn write(&self, user: &str, text: &str) -> Result<(), CallError> {
        write(self.ctx, user, is_me(user), text)
    }
}

/// Reads, edits and (if `edit` says it changed) writes back a crontab.
fn edit<T>(s: &dyn Store, user: &str, f: impl FnOnce(&mut Tab) -> (T, bool)) -> Result<T, CallError> {
    let mut tab = Tab::parse(&s.read(user)?);
    let (ret, changed) = f(&mut tab);
    if changed {
        s.write(user, &tab.render())?;
    }
    Ok(ret)
}

fn word(w: &Word) -> String {
    w.as_str().to_lowercase()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserArgs {
    user: Word,
}

pub struct RawCron;
impl Function for RawCron {
    const NAME: &'static str = "cron.raw_cron";
    const DOC: &'static str = "Returns the text of a user's crontab (\"\" when there is none).\n\n\
        CLI example: brine run '*' cron.raw_cron root";
    const PARAMS: &'static [Param] = &[req("user")];
    type Args = UserArgs;
    fn call(&self, ctx: &Context, a: UserArgs) -> Result<Output, CallError> {
        Ok(Output::ok(Crontabs { ctx }.read(a.user.as_str())?))
    }
}

pub struct ListTab;
impl Function for ListTab {
    const NAME: &'static str = "cron.list_tab";
    const DOC: &'static str = "Returns a user's crontab as {pre, crons, special, env}: the lines above \
        Salt's managed part, the jobs (minute, hour, daymonth, month, dayweek, cmd, identifier, \
        comment, commented), the @special jobs, and the environment lines.\n\n\
        CLI example: brine run '*' cron.list_tab root";
    const PARAMS: &'static [Param] = &[req("user")];
    type Args = UserArgs;
    fn call(&self, ctx: &Context, a: UserArgs) -> Result<Output, CallError> {
        Ok(Output::ok(Tab::parse(&Crontabs { ctx }.read(a.user.as_str())?).to_value()))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetJobArgs {
    user: Word,
    minute: Word,
    hour: Word,
    daymonth: Word,
    month: Word,
    dayweek: Word,
    cmd: String,
    #[serde(default)]
    commented: bool,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    identifier: Option<Word>,
}

fn set_job(s: &dyn Store, a: &SetJobArgs) -> Result<Set, CallError> {
    let want = Job {
        when: When::Fields([word(&a.minute), word(&a.hour), word(&a.daymonth), word(&a.month), word(&a.dayweek)]),
        cmd: a.cmd.clone(),
        identifier: a.identifier.as_ref().map(|w| w.0.clone()),
        comment: a.comment.clone(),
        commented: a.commented,
    };
    edit(s, a.user.as_str(), |tab| {
        let r = set(tab, want);
        (r, r != Set::Present)
    })
}

pub struct SetJob;
impl Function for SetJob {
    const NAME: &'static str = "cron.set_job";
    const DOC: &'static str = "Sets a job in a user's crontab and returns new, updated or present.\n\n\
        minute, hour, daymonth, month, dayweek: the schedule (random picks a value once; a:b one in \
        that range). commented: write it disabled. comment: a comment line before it. identifier: find \
        the job by this rather than by its command.\n\n\
        CLI example: brine run '*' cron.set_job root '*' '*' '*' '*' 1 /usr/local/bin/weekly";
    const PARAMS: &'static [Param] = &[
        req("user"),
        req("minute"),
        req("hour"),
        req("daymonth"),
        req("month"),
        req("dayweek"),
        req("cmd"),
        opt("commented"),
        opt("comment"),
        opt("identifier"),
    ];
    type Args = SetJobArgs;
    fn call(&self, ctx: &Context, a: SetJobArgs) -> Result<Output, CallError> {
        Ok(Output::ok(set_job(&Crontabs { ctx }, &a)?.word()))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSpecialArgs {
    user: Word,
    special: String,
    cmd: String,
    #[serde(default)]
    commented: bool,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    identifier: Option<Word>,
}

fn set_special(s: &dyn Store, a: &SetSpecialArgs) -> Result<Set, CallError> {
    let want = Job {
        when: When::Special(a.special.clone()),
        cmd: a.cmd.clone(),
        identifier: a.identifier.as_ref().map(|w| w.0.clone()),
        comment: a.comment.clone(),
        commented: a.commented,
    };
    edit(s, a.user.as_str(), |tab| {
        let r = set(tab, want);
        (r, r != Set::Present)
    })
}

pub struct SetSpecial;
impl Function for SetSpecial {
    const NAME: &'static str = "cron.set_special";
    const DOC: &'static str = "Sets an @special job (@reboot, @hourly, @daily…) in a user's crontab and \
        returns new, updated or present. commented, comment, identifier as for cron.set_job.\n\n\
        CLI example: brine run '*' cron.set_special root @hourly 'echo foobar'";
    const PARAMS: &'static [Param] =
        &[req("user"), req("special"), req("cmd"), opt("commented"), opt("comment"), opt("identifier")];
    type Args = SetSpecialArgs;
    fn call(&self, ctx: &Context, a: SetSpecialArgs) -> Result<Output, CallError> {
        Ok(Output::ok(set_special(&Crontabs { ctx }, &a)?.word()))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RmJobArgs {
    user: Word,
    cmd: String,
    #[serde(default)]
    minute: Option<Word>,
    #[serde(default)]
    hour: Option<Word>,
    #[serde(default)]
    daymonth: Option<Word>,
    #[serde(default)]
    month: Option<Word>,
    #[serde(default)]
    dayweek: Option<Word>,
    #[serde(default)]
    identifier: Option<Word>,
}

fn removed(done: bool) -> &'static str {
    if done {
        "removed"
    } else {
        "absent"
    }
}

pub struct RmJob;
impl Function for RmJob {
    const NAME: &'static str = "cron.rm_job";
    const DOC: &'static str = "Removes a job from a user's crontab and returns removed or absent. Given \
        minute, hour, daymonth, month or dayweek, only a job with those values is removed. identifier: \
        find the job by this rather than by its command.\n\n\
        CLI example: brine run '*' cron.rm_job root /usr/local/bin/weekly dayweek=1";
    const PARAMS: &'static [Param] = &[
        req("user"),
        req("cmd"),
        opt("minute"),
        opt("hour"),
        opt("daymonth"),
        opt("month"),
        opt("dayweek"),
        opt("identifier"),
    ];
    type Args = RmJobArgs;
    fn call(&self, ctx: &Context, a: RmJobArgs) -> Result<Output, CallError> {
        let fields = [&a.minute, &a.hour, &a.daymonth, &a.month, &a.dayweek].map(|f| f.as_ref().map(|w| w.0.clone()));
        let id = a.identifier.as_ref().map(|w| w.0.clone());
        let done = edit(&Crontabs { ctx }, a.user.as_str(), |tab| {
            let done = rm_job(tab, &a.cmd, &fields, id.as_deref());
            (done, done)
        })?;
        Ok(Output::ok(removed(done)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RmSpecialArgs {
    user: Word,
    cmd: String,
    #[serde(default)]
    special: Option<String>,
    #[serde(default)]
    identifier: Option<Word>,
}

pub struct RmSpecial;
impl Function for RmSpecial {
    const NAME: &'static str = "cron.rm_special";
    const DOC: &'static str = "Removes an @special job from a user's crontab and returns removed or \
        absent. special: only a job with that schedule. identifier: find the job by this rather than \
        by its command.\n\n\
        CLI example: brine run '*' cron.rm_special root /usr/bin/foo";
    const PARAMS: &'static [Param] = &[req("user"), req("cmd"), opt("special"), opt("identifier")];
    type Args = RmSpecialArgs;
    fn call(&self, ctx: &Context, a: RmSpecialArgs) -> Result<Output, CallError> {
        let id = a.identifier.as_ref().map(|w| w.0.clone());
        let done = edit(&Crontabs { ctx }, a.user.as_str(), |tab| {
            let done = rm_special(tab, &a.cmd, a.special.as_deref(), id.as_deref());
            (done, done)
        })?;
        Ok(Output::ok(removed(done)))
    }
}

/// The `cron` execution module.
pub static MODULE: super::Module = super::Module {
    name: "cron",
    doc: "Jobs in users' crontabs, managed as Salt manages them.",
    functions: &[&ListTab, &RawCron, &RmJob, &RmSpecial, &SetJob, &SetSpecial],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::host::script::Script;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// Crontabs in memory.
    #[derive(Default)]
    struct Memory(RefCell<BTreeMap<String, String>>);

    impl Store for Memory {
        fn read(&self, user: &str) -> Result<String, CallError> {
            Ok(self.0.borrow().get(user).cloned().unwrap_or_default())
        }
        fn write(&self, user: &str, text: &str) -> Result<(), CallError> {
            self.0.borrow_mut().insert(user.into(), text.into());
            Ok(())
        }
    }

    /// A crontab as Salt 3007 writes it.
    const SALTED: &str = "\
MAILTO=ops@example.com
0 3 * * * /usr/local/bin/backup
# Lines below here are managed by Salt, do not edit
SHELL=/bin/bash
# nightly report SALT_CRON_IDENTIFIER:report
30 2 * * 1-5 /usr/bin/report --all
# SALT_CRON_IDENTIFIER:echo hi
#DISABLED#*/5 * * * * echo hi
0 0 * * * /usr/bin/legacy
# SALT_CRON_IDENTIFIER:boot
@reboot /usr/bin/on-boot
";

    fn job(fields: [&str; 5], cmd: &str, id: Option<&str>) -> Job {
        Job {
            when: When::Fields(fields.map(String::from)),
            cmd: cmd.into(),
            identifier: id.map(String::from),
            comment: None,
            commented: false,
        }
    }

    #[test]
    fn a_salt_crontab_reads_and_writes_back_the_same() {
        let tab = Tab::parse(SALTED);
        assert_eq!(tab.pre, ["MAILTO=ops@example.com", "0 3 * * * /usr/local/bin/backup"]);
        assert_eq!(tab.env, [("SHELL".to_string(), "/bin/bash".to_string())]);
        assert_eq!(tab.crons.len(), 3);
        assert_eq!(tab.crons[0].comment.as_deref(), Some("nightly report"));
        assert_eq!(tab.crons[0].identifier.as_deref(), Some("report"));
        assert_eq!(tab.crons[0].cmd, "/usr/bin/report --all");
        assert!(tab.crons[1].commented && tab.crons[1].comment.as_deref() == Some(""));
        assert_eq!(tab.crons[2].identifier, None);
        assert_eq!(tab.special[0].spec(), Some("@reboot"));
        assert_eq!(tab.render(), SALTED);
        let v = tab.to_value();
        assert_eq!(v["crons"][0]["dayweek"], "1-5");
        assert_eq!(
            v["special"][0],
            json!({"spec": "@reboot", "cmd": "/usr/bin/on-boot", "identifier": "boot", "comment": "", "commented": false})
        );
    }

    #[test]
    fn set_adds_then_finds_then_updates_in_salts_way() {
        let mut tab = Tab::parse("");
        let want = job(["0", "4", "*", "*", "*"], "/usr/bin/task", Some("task"));
        assert_eq!(set(&mut tab, want.clone()), Set::New);
        assert_eq!(tab.render(), format!("{TAG}\n# {IDENTIFIER}:task\n0 4 * * * /usr/bin/task\n"));
        assert_eq!(set(&mut Tab::parse(&tab.render()), want.clone()), Set::Present);
        // A new schedule, a new command: the same identifier finds it.
        let mut tab = Tab::parse(&tab.render());
        assert_eq!(set(&mut tab, job(["30", "4", "*", "*", "*"], "/usr/bin/task --v2", Some("task"))), Set::Updated);
        assert_eq!(tab.render(), format!("{TAG}\n# {IDENTIFIER}:task\n30 4 * * * /usr/bin/task --v2\n"));
        // A legacy job without identifier is matched by command and gets one.
        let mut tab = Tab::parse(&format!("{TAG}\n0 0 * * * /usr/bin/legacy\n"));
        assert_eq!(
            set(&mut tab, job(["0", "0", "*", "*", "*"], "/usr/bin/legacy", Some("/usr/bin/legacy"))),
            Set::Updated
        );
        assert_eq!(tab.crons[0].identifier.as_deref(), Some("/usr/bin/legacy"));
        // An updated job moves to the end, as Salt rewrites it.
        let mut tab = Tab::parse(SALTED);
        let mut w = job(["0", "2", "*", "*", "1-5"], "/usr/bin/report --all", Some("report"));
        w.comment = Some("nightly report".into());
        assert_eq!(set(&mut tab, w), Set::Updated);
        assert_eq!(tab.crons.last().map(|j| j.field(0)), Some(Some("0")));
    }

    #[test]
    fn random_fields_are_chosen_once() {
        let mut tab = Tab::default();
        assert_eq!(set(&mut tab, job(["random", "2:4", "random", "2", "*"], "x", Some("x"))), Set::New);
        let f: Vec<u32> = (0..4).map(|i| tab.crons[0].field(i).unwrap().parse().unwrap()).collect();
        assert!(f[0] < 60 && (2..=4).contains(&f[1]) && (1..=28).contains(&f[2]) && f[3] == 2, "{f:?}");
        assert_eq!(
            set(&mut tab, job(["random", "2:4", "random", "2", "*"], "x", Some("x"))),
            Set::Updated,
            "2:4 is not random"
        );
        let hour = tab.crons[0].field(1).unwrap_or_default().to_string();
        assert_eq!(set(&mut tab, job(["random", &hour, "random", "2", "*"], "x", Some("x"))), Set::Present);
        assert!(needs_change(Some("*"), Some("random")) && !needs_change(Some("5"), Some("random")));
        let mut dice = Dice::new();
        // The widest range does not overflow.
        dice.roll(0, u32::MAX);
        assert_eq!(dice.roll(7, 7), 7);
        assert!(!needs_change(Some("x"), None));
    }

    #[test]
    fn removing_jobs_and_specials() {
        let mut tab = Tab::parse(SALTED);
        assert!(
            !rm_job(&mut tab, "/usr/bin/report --all", &Default::default(), None),
            "an identified job needs its identifier"
        );
        assert!(rm_job(&mut tab, "anything", &[None, Some("2".into()), None, None, None], Some("report")));
        assert!(rm_job(&mut tab, "/usr/bin/legacy", &Default::default(), Some("other")));
        assert!(!rm_special(&mut tab, "/usr/bin/on-boot", Some("@daily"), Some("boot")));
        assert!(rm_special(&mut tab, "/usr/bin/on-boot", None, Some("boot")));
        assert_eq!(tab.crons.len(), 1);
    }

    #[test]
    fn functions_read_and_write_through_the_store() {
        let m = Memory::default();
        let a: SetJobArgs = serde_json::from_value(json!({
            "user": "web", "minute": 5, "hour": "*", "daymonth": "*", "month": "*", "dayweek": "*",
            "cmd": "/bin/true", "identifier": "t", "comment": "keep alive"
        }))
        .unwrap();
        assert_eq!(set_job(&m, &a).unwrap(), Set::New);
        assert_eq!(m.read("web").unwrap(), format!("{TAG}\n# keep alive {IDENTIFIER}:t\n5 * * * * /bin/true\n"));
        assert_eq!(set_job(&m, &a).unwrap(), Set::Present);
        let s: SetSpecialArgs =
            serde_json::from_value(json!({"user": "web", "special": "@hourly", "cmd": "/bin/x"})).unwrap();
        assert_eq!(set_special(&m, &s).unwrap(), Set::New);
        assert!(m.read("web").unwrap().ends_with("5 * * * * /bin/true\n@hourly /bin/x\n"));
    }

    #[test]
    fn crontab_is_read_with_its_header_dropped_and_none_is_empty() {
        let s = Script::new()
            .step(
                "crontab -u web -l",
                crate::exec::host::Ran {
                    stdout: "# DO NOT EDIT THIS FILE - edit the master and reinstall.\n# (x)\n# (y)\n* * * * * a\n"
                        .into(),
                    stderr: String::new(),
                    retcode: 0,
                },
            )
            .fails("crontab -u web -l", 1, "no crontab for web\n")
            .fails("crontab -u ghost -l", 1, "crontab: user 'ghost' unknown\n")
            .ok("crontab -l", "");
        assert_eq!(read(&s, "web", false).unwrap(), "* * * * * a\n");
        assert_eq!(read(&s, "web", false).unwrap(), "");
        let err = read(&s, "ghost", false).unwrap_err().to_string();
        assert_eq!(err, "Command 'crontab -u ghost -l' failed with exit code 1: crontab: user 'ghost' unknown");
        assert_eq!(read(&s, "me", true).unwrap(), "");
        s.done();
        assert_eq!(crontab("web", false, "-").to_string(), "crontab -u web -");
    }
}
