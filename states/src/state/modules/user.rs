//! `user.*` states: local user accounts.
//!
//! Follows Salt's `user` states. `present` creates a missing account with `user.add`
//! (changes: the account as `user.info` shows it, plus `password: XXX-REDACTED-XXX`
//! when a hash was set) or brings an existing one in line: uid and gid (only with
//! `allow_uid_change` / `allow_gid_change`), supplementary groups, home, shell, GECOS
//! fields, password hash and shadow ageing fields. The changes are whatever differs in
//! `user.info` and the shadow entry before and after, so they show what happened, not
//! what was asked; test mode lists "The following user attributes are set to be
//! changed". `absent` deletes the account (`purge` removes its home too) and reports
//! the groups that went with it.
//!
//! The changes run as Salt's `useradd` and `shadow` modules run them: `usermod` for
//! uid, gid, home, GECOS and groups, `user.chshell` for the shell, `chpasswd -e` for
//! the hash (fed on stdin, so it never shows in the process list), `chage` for the
//! ageing fields, `passwd -d` for an empty password, `usermod -L`/`-U` for locking.
//! Salt's clear-text `hash_password` is not supported: give a hash
//! (`mkpasswd -m sha-512`).

use super::calls::{py_repr, py_str, run, truthy, word_list, Calls, Live, Ret};
use crate::exec::CallError;
use crate::state::{Outcome, StateContext, StateFunction, StateModule};
use brine_proto::{Map, Value};
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What Salt's comments show instead of a password hash.
const REDACTED: &str = "XXX-REDACTED-XXX";

/// The hash Linux gives an account without a password (Salt's `shadow.default_hash`).
const DEFAULT_HASH: &str = "!";

/// An account as `user.info` shows it.
#[derive(Debug, Clone, PartialEq)]
struct Account {
    uid: i64,
    gid: i64,
    /// Every group the user is in, the primary one included, sorted.
    groups: Vec<String>,
    home: String,
    shell: String,
    gecos: [String; 5],
    /// The whole `user.info` map, for reporting what changed.
    raw: Map,
}

const GECOS: [&str; 5] = ["fullname", "roomnumber", "workphone", "homephone", "other"];

fn parse_account(v: &Value) -> Option<Account> {
    let m = v.as_object()?;
    let text = |k: &str| m.get(k).map(py_str).unwrap_or_default();
    Some(Account {
        uid: m.get("uid")?.as_i64()?,
        gid: m.get("gid")?.as_i64()?,
        groups: m.get("groups").map(word_list).unwrap_or_default(),
        home: text("home"),
        shell: text("shell"),
        gecos: GECOS.map(text),
        raw: m.clone(),
    })
}

/// The shadow entry (`getent shadow NAME`), with empty numbers as -1 like Python's
/// `spwd`.
#[derive(Debug, Clone, PartialEq)]
struct Shadow {
    passwd: String,
    lstchg: i64,
    min: i64,
    max: i64,
    warn: i64,
    inact: i64,
    expire: i64,
}

impl Shadow {
    fn parse(line: &str) -> Option<Shadow> {
        let f: Vec<&str> = line.trim_end().split(':').collect();
        if f.len() < 8 {
            return None;
        }
        let n = |s: &str| s.trim().parse::<i64>().unwrap_or(-1);
        Some(Shadow {
            passwd: f[1].into(),
            lstchg: n(f[2]),
            min: n(f[3]),
            max: n(f[4]),
            warn: n(f[5]),
            inact: n(f[6]),
            expire: n(f[7]),
        })
    }

    /// Salt's `shadow.info` keys, in its order.
    fn fields(&self) -> [(&'static str, Value); 7] {
        [
            ("passwd", json!(self.passwd)),
            ("lstchg", json!(self.lstchg)),
            ("min", json!(self.min)),
            ("max", json!(self.max)),
            ("warn", json!(self.warn)),
            ("inact", json!(self.inact)),
            ("expire", json!(self.expire)),
        ]
    }
}

/// Reads one number of a shadow entry.
type ShadowField = fn(&Shadow) -> i64;

/// A group's name and gid.
#[derive(Debug, Clone, PartialEq)]
struct GroupId {
    name: String,
    gid: i64,
}

/// What the host says, read once per look.
#[derive(Debug, Clone)]
struct Facts {
    account: Option<Account>,
    shadow: Option<Shadow>,
    groups: Vec<GroupId>,
}

impl Facts {
    fn gid_of(&self, group: &str) -> Option<i64> {
        group.parse().ok().or_else(|| self.groups.iter().find(|g| g.name == group).map(|g| g.gid))
    }

    fn group_named(&self, gid: i64) -> Option<&str> {
        self.groups.iter().find(|g| g.gid == gid).map(|g| g.name.as_str())
    }

    fn exists(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g.name == group)
    }
}

fn look(c: &dyn Calls, name: &str) -> Result<Facts, CallError> {
    let account = parse_account(&c.call("user.info", vec![json!(name)], Map::new())?);
    let shadow = match account {
        Some(_) => {
            let ran = run(c, &["getent", "shadow", name], None)?;
            if ran.retcode == 0 {
                ran.stdout.lines().find(|l| l.split(':').next() == Some(name)).and_then(Shadow::parse)
            } else {
                None
            }
        }
        None => None,
    };
    let all = c.call("group.getent", vec![], Map::new())?;
    let groups = all
        .as_array()
        .map(|gs| {
            gs.iter()
                .filter_map(|g| Some(GroupId { name: py_str(g.get("name")?), gid: g.get("gid")?.as_i64()? }))
                .collect()
        })
        .unwrap_or_default();
    Ok(Facts { account, shadow, groups })
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PresentArgs {
    #[serde(default)]
    uid: Option<Value>,
    #[serde(default)]
    gid: Option<Value>,
    #[serde(default)]
    usergroup: Option<bool>,
    #[serde(default)]
    groups: Option<Value>,
    #[serde(default)]
    optional_groups: Option<Value>,
    #[serde(default = "yes")]
    remove_groups: bool,
    #[serde(default)]
    home: Option<String>,
    #[serde(default = "yes")]
    createhome: bool,
    /// A hash (`$6$…`), not a clear-text password.
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    hash_password: bool,
    #[serde(default = "yes")]
    enforce_password: bool,
    #[serde(default)]
    empty_password: bool,
    #[serde(default)]
    shell: Option<String>,
    #[serde(default = "yes")]
    unique: bool,
    #[serde(default)]
    system: bool,
    #[serde(default)]
    fullname: Option<Value>,
    #[serde(default)]
    roomnumber: Option<Value>,
    #[serde(default)]
    workphone: Option<Value>,
    #[serde(default)]
    homephone: Option<Value>,
    #[serde(default)]
    other: Option<Value>,
    /// BSD only; accepted and ignored, as Salt does on Linux.
    #[serde(default)]
    #[allow(dead_code)]
    loginclass: Option<Value>,
    #[serde(default)]
    date: Option<i64>,
    #[serde(default)]
    mindays: Option<i64>,
    #[serde(default)]
    maxdays: Option<i64>,
    #[serde(default)]
    inactdays: Option<i64>,
    #[serde(default)]
    warndays: Option<i64>,
    #[serde(default)]
    expire: Option<i64>,
    /// Windows only (these four); accepted and ignored, as Salt does elsewhere.
    #[serde(default)]
    #[allow(dead_code)]
    win_homedrive: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    win_profile: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    win_logonscript: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    win_description: Option<Value>,
    #[serde(default)]
    nologinit: bool,
    #[serde(default)]
    allow_uid_change: bool,
    #[serde(default)]
    allow_gid_change: bool,
    #[serde(default)]
    password_lock: Option<bool>,
    #[serde(default)]
    local: bool,
}

impl PresentArgs {
    fn gecos(&self) -> [Option<String>; 5] {
        [&self.fullname, &self.roomnumber, &self.workphone, &self.homephone, &self.other]
            .map(|v| v.as_ref().filter(|v| !v.is_null()).map(py_str))
    }

    fn uid(&self) -> Option<i64> {
        self.uid.as_ref().filter(|v| truthy(v)).and_then(|v| py_str(v).trim().parse().ok())
    }

    /// The wanted primary group as given (a name or a number).
    fn gid_word(&self) -> Option<String> {
        self.gid.as_ref().filter(|v| !v.is_null()).map(py_str).filter(|s| !s.is_empty())
    }

    fn list(v: &Option<Value>) -> Option<Vec<String>> {
        v.as_ref().filter(|v| !v.is_null()).map(word_list)
    }
}

/// One attribute to change, keyed as Salt's `_changes` keys them.
type Changes = Vec<(&'static str, Value)>;

/// What differs between the account and the wanted state (Salt's `_changes`), or the
/// error that forbids changing it. `home_exists` asks the filesystem.
fn changes(
    name: &str,
    f: &Facts,
    a: &PresentArgs,
    optional: &[String],
    gid_word: Option<&str>,
    (allow_uid, allow_gid): (bool, bool),
    home_exists: &dyn Fn(&str) -> bool,
) -> Result<Changes, String> {
    let Some(u) = &f.account else { return Ok(Vec::new()) };
    let mut out: Changes = Vec::new();
    let groups = PresentArgs::list(&a.groups);
    let mut wanted: BTreeSet<String> = groups.iter().flatten().chain(optional).cloned().collect();
    if !a.remove_groups || (groups.is_none() && optional.is_empty()) {
        wanted.extend(u.groups.iter().cloned());
    }
    let uid = a.uid();
    if let Some(uid) = uid.filter(|uid| *uid != u.uid) {
        out.push(("uid", json!(uid)));
    }
    let wanted_gid = gid_word.map(|g| f.gid_of(g));
    if let Some(g) = gid_word {
        if wanted_gid.flatten() != Some(u.gid) {
            out.push(("gid", gid_value(g)));
        }
    }
    let default_grp = f.group_named(wanted_gid.flatten().unwrap_or(u.gid)).map(String::from);
    let old_default = f.group_named(u.gid).map(String::from);
    let mut current: BTreeSet<String> = u.groups.iter().cloned().collect();
    if let Some(d) = &default_grp {
        current.remove(d);
        wanted.remove(d);
    }
    if let Some(old) = old_default.filter(|o| Some(o) != default_grp.as_ref()) {
        current.remove(&old);
    }
    if current.contains(name) && !wanted.contains(name) {
        current.remove(name);
    }
    if group_changes(&current, &wanted, a.remove_groups, f) && (!wanted.is_empty() || a.remove_groups) {
        out.push(("groups", json!(wanted.iter().collect::<Vec<_>>())));
    }
    if let Some(home) = a.home.as_deref().filter(|h| !h.is_empty() && *h != u.home) {
        out.push(("home", json!(home)));
    }
    if a.createhome {
        let newhome = a.home.as_deref().filter(|h| !h.is_empty()).unwrap_or(&u.home);
        if !home_exists(newhome) {
            out.push(("homeDoesNotExist", json!(newhome)));
        }
    }
    if let Some(shell) = a.shell.as_deref().filter(|s| !s.is_empty() && *s != u.shell) {
        out.push(("shell", json!(shell)));
    }
    if let Some(sh) = &f.shadow {
        if let Some(pw) = a.password.as_deref().filter(|p| !p.is_empty() && !a.empty_password) {
            if (sh.passwd == DEFAULT_HASH || a.enforce_password) && sh.passwd != pw {
                out.push(("passwd", json!(pw)));
            }
        }
        if a.empty_password && !sh.passwd.is_empty() {
            out.push(("empty_password", json!(true)));
        }
        for (key, want, have) in [
            ("date", a.date, sh.lstchg),
            ("mindays", a.mindays, sh.min),
            ("maxdays", a.maxdays, sh.max),
            ("inactdays", a.inactdays, sh.inact),
            ("warndays", a.warndays, sh.warn),
        ] {
            if let Some(w) = want.filter(|w| *w != have) {
                out.push((key, json!(w)));
            }
        }
        if let Some(e) = a.expire.filter(|e| *e != 0 && *e != sh.expire) {
            out.push(("expire", json!(e)));
        }
        let locked = sh.passwd.starts_with('!');
        match a.password_lock {
            Some(true) if !locked => out.push(("password_lock", json!(true))),
            Some(false) if locked => out.push(("password_lock", json!(false))),
            _ => {}
        }
    }
    for ((key, want), have) in GECOS.iter().zip(a.gecos()).zip(&u.gecos) {
        if let Some(w) = want.filter(|w| w != have) {
            out.push((key, json!(w)));
        }
    }
    let mut errors = Vec::new();
    if !allow_uid {
        if let Some((_, v)) = out.iter().find(|(k, _)| *k == "uid") {
            errors.push(format!(
                "- Changing uid ({} -> {}) not permitted, set allow_uid_change to True to force this change. \
                 Note that this will not change file ownership.",
                u.uid,
                py_str(v)
            ));
        }
    }
    if !allow_gid {
        if let Some((_, v)) = out.iter().find(|(k, _)| *k == "gid") {
            errors.push(format!(
                "- Changing gid ({} -> {}) not permitted, set allow_gid_change to True to force this change. \
                 Note that this will not change file ownership.",
                u.gid,
                py_str(v)
            ));
        }
    }
    if !errors.is_empty() {
        return Err(format!(
            "Encountered error checking for needed changes. Additional info follows:\n\n{}",
            errors.join("\n")
        ));
    }
    Ok(out)
}

/// A gid as given: a number stays a number, a name a string.
fn gid_value(g: &str) -> Value {
    g.parse::<i64>().map(|n| json!(n)).unwrap_or_else(|_| json!(g))
}

/// Whether the supplementary groups must change (Salt's `_group_changes`): groups
/// that share a gid with another group in play do not count.
fn group_changes(cur: &BTreeSet<String>, wanted: &BTreeSet<String>, remove: bool, f: &Facts) -> bool {
    if cur == wanted || (!remove && wanted.is_subset(cur)) {
        return false;
    }
    let diff: Vec<&String> =
        if remove { cur.symmetric_difference(wanted).collect() } else { wanted.difference(cur).collect() };
    let gid = |g: &str| f.groups.iter().find(|x| x.name == g).map(|x| x.gid);
    let all: BTreeSet<&String> = cur.union(wanted).collect();
    diff.iter().any(|d| {
        let mine = gid(d);
        !all.iter().any(|other| other != d && mine.is_some() && gid(other) == mine)
    })
}

/// The comment line of one change: its value as Python's `str()` prints it.
fn shown(key: &str, v: &Value) -> String {
    if key == "passwd" {
        return format!("{key}: {REDACTED}");
    }
    format!("{key}: {}", py_str(v))
}

/// Runs one command; its failure message, if it failed.
fn attempt(c: &dyn Calls, argv: &[&str], stdin: Option<&str>) -> Option<String> {
    match run(c, argv, stdin) {
        Ok(r) if r.retcode == 0 => None,
        Ok(r) => Some(r.failure(argv).to_string()),
        Err(e) => Some(e.to_string()),
    }
}

/// Sets a password hash through `chpasswd -e`, which also records the change date.
fn set_password(c: &dyn Calls, name: &str, hash: &str) -> Option<String> {
    attempt(c, &["chpasswd", "-e"], Some(&format!("{name}:{hash}\n")))
}

/// The `chage` flag for a shadow ageing field.
fn chage_flag(key: &str) -> Option<&'static str> {
    match key {
        "date" => Some("-d"),
        "mindays" => Some("-m"),
        "maxdays" => Some("-M"),
        "inactdays" => Some("-I"),
        "warndays" => Some("-W"),
        "expire" => Some("-E"),
        _ => None,
    }
}

/// Makes the changes in Salt's order: password and shadow fields, home, then uid,
/// gid, shell and GECOS, groups last (after the primary group moved).
fn make_changes(c: &dyn Calls, name: &str, u: &Account, cs: &Changes, a: &PresentArgs) -> Vec<String> {
    let mut errors = Vec::new();
    let get = |k: &str| cs.iter().find(|(key, _)| *key == k).map(|(_, v)| v);
    if let Some(pw) = get("passwd") {
        errors.extend(set_password(c, name, &py_str(pw)));
    }
    if get("empty_password").is_some() {
        errors.extend(attempt(c, &["passwd", "-d", name], None));
    }
    if let Some(lock) = get("password_lock") {
        errors.extend(attempt(c, &["usermod", if lock == &json!(true) { "-L" } else { "-U" }, name], None));
    }
    if let Some(d) = get("date") {
        errors.extend(attempt(c, &["chage", "-d", &py_str(d), name], None));
    }
    let home = get("home").map(py_str);
    let missing = get("homeDoesNotExist").map(py_str);
    if let Some(h) = home.as_ref().or(missing.as_ref()) {
        errors.extend(attempt(c, &["usermod", "-d", h, name], None));
    }
    if let Some(h) = &missing {
        if let Err(e) = c.call("file.mkdir", vec![json!(h), json!(u.uid), json!(u.gid), json!("755")], Map::new()) {
            errors.push(e.to_string());
        }
    }
    for key in ["mindays", "maxdays", "inactdays", "warndays", "expire"] {
        if let (Some(v), Some(flag)) = (get(key), chage_flag(key)) {
            errors.extend(attempt(c, &["chage", flag, &py_str(v), name], None));
        }
    }
    if let Some(uid) = get("uid") {
        errors.extend(attempt(c, &["usermod", "-u", &py_str(uid), name], None));
    }
    if let Some(gid) = get("gid") {
        errors.extend(attempt(c, &["usermod", "-g", &py_str(gid), name], None));
    }
    if let Some(shell) = get("shell") {
        if let Err(e) = c.call("user.chshell", vec![json!(name), shell.clone()], Map::new()) {
            errors.push(e.to_string());
        }
    }
    if GECOS.iter().any(|k| get(k).is_some()) {
        let mut fields = u.gecos.clone();
        for (i, key) in GECOS.iter().enumerate() {
            if let Some(v) = get(key) {
                fields[i] = py_str(v);
            }
        }
        let joined = fields.join(",");
        errors.extend(attempt(c, &["usermod", "-c", joined.trim_end_matches(','), name], None));
    }
    if let Some(groups) = get("groups") {
        let list = word_list(groups).join(",");
        let argv: Vec<&str> =
            if a.remove_groups { vec!["usermod", "-G", &list, name] } else { vec!["usermod", "-a", "-G", &list, name] };
        errors.extend(attempt(c, &argv, None));
    }
    errors
}

fn present(c: &dyn Calls, name: &str, a: &PresentArgs, apply: bool, home_exists: &dyn Fn(&str) -> bool) -> Ret {
    if a.password.is_some() && a.hash_password {
        return Ret::failed(
            "hash_password is not supported: give the password as a hash (for example from mkpasswd -m sha-512)",
        );
    }
    for field in a.gecos()[..3].iter().flatten() {
        if field.contains(',') {
            return Ret::failed(format!("Unsupported char ',' in {field}"));
        }
    }
    let f = match look(c, name) {
        Ok(f) => f,
        Err(e) => return Ret::failed(e.to_string()),
    };
    let groups = PresentArgs::list(&a.groups);
    if let Some(g) = &groups {
        let missing: Vec<&str> = g.iter().filter(|g| !f.exists(g)).map(String::as_str).collect();
        if !missing.is_empty() {
            return Ret::failed(format!("The following group(s) are not present: {}", missing.join(",")));
        }
    }
    let optional: Vec<String> =
        PresentArgs::list(&a.optional_groups).unwrap_or_default().into_iter().filter(|g| f.exists(g)).collect();
    let gid_word = if a.usergroup == Some(true) && f.exists(name) { Some(name.to_string()) } else { a.gid_word() };
    let Some(before) = f.account.clone() else {
        return create(c, name, a, &groups, &optional, apply);
    };
    let cs = match changes(
        name,
        &f,
        a,
        &optional,
        gid_word.as_deref(),
        (a.allow_uid_change, a.allow_gid_change),
        home_exists,
    ) {
        Ok(cs) => cs,
        Err(e) => return Ret::failed(e),
    };
    let mut ret = Ret::ok(format!("User {name} is present and up to date"));
    if cs.is_empty() {
        return ret;
    }
    if !apply {
        let mut comment = String::from("The following user attributes are set to be changed:\n");
        for (k, v) in &cs {
            comment.push_str(&shown(k, v));
            comment.push('\n');
        }
        return Ret::would(comment);
    }
    let errors = make_changes(c, name, &before, &cs, a);
    let after = match look(c, name) {
        Ok(f) => f,
        Err(e) => return Ret::failed(e.to_string()),
    };
    if let Some(post) = &after.account {
        for (k, v) in &post.raw {
            if before.raw.get(k) != Some(v) {
                ret.changes.insert(k.clone(), v.clone());
            }
        }
    }
    if let (Some(pre), Some(post)) = (&f.shadow, &after.shadow) {
        for ((k, old), (_, new)) in pre.fields().into_iter().zip(post.fields()) {
            if old != new {
                ret.changes.insert(k.into(), if k == "passwd" { json!(REDACTED) } else { new });
            }
        }
    }
    if !ret.changes.is_empty() {
        ret.comment = format!("Updated user {name}");
    }
    let left = match changes(name, &after, a, &optional, gid_word.as_deref(), (true, true), home_exists) {
        Ok(left) => left,
        Err(e) => return Ret { result: Some(false), comment: e, changes: ret.changes },
    };
    if !left.is_empty() {
        ret.result = Some(false);
        let dict: Vec<String> = left
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}: {}",
                    py_repr(&json!(k)),
                    if *k == "passwd" { py_repr(&json!(REDACTED)) } else { py_repr(v) }
                )
            })
            .collect();
        ret.comment = format!("These values could not be changed: {{{}}}", dict.join(", "));
        if !errors.is_empty() {
            ret.comment = format!("{}\n{}", ret.comment, errors.join("\n"));
        }
    }
    ret
}

/// Creates the account with `user.add`, then sets the password and ageing fields.
fn create(
    c: &dyn Calls,
    name: &str,
    a: &PresentArgs,
    groups: &Option<Vec<String>>,
    optional: &[String],
    apply: bool,
) -> Ret {
    if !apply {
        return Ret::would(format!("User {name} set to be added"));
    }
    let mut all_groups: Vec<String> = groups.clone().unwrap_or_default();
    all_groups.extend(optional.iter().cloned());
    let mut kwargs = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v.filter(|v| !v.is_null()) {
            kwargs.insert(k.into(), v);
        }
    };
    put("uid", a.uid.clone());
    put("gid", a.gid.clone());
    put("groups", (groups.is_some() || !optional.is_empty()).then(|| json!(all_groups)));
    put("home", a.home.clone().map(Value::String));
    put("shell", a.shell.clone().map(Value::String));
    put("unique", Some(json!(a.unique)));
    put("system", Some(json!(a.system)));
    for (key, v) in GECOS.iter().zip(a.gecos()) {
        put(key, v.map(Value::String));
    }
    put("createhome", Some(json!(a.createhome)));
    put("nologinit", Some(json!(a.nologinit)));
    put("usergroup", a.usergroup.map(Value::Bool));
    if a.local {
        put("local", Some(json!(true)));
    }
    if let Err(e) = c.call("user.add", vec![json!(name)], kwargs) {
        return Ret::failed(format!("Failed to create new user {name}\n{e}"));
    }
    let mut ret = Ret::ok(format!("New user {name} created"));
    match c.call("user.info", vec![json!(name)], Map::new()) {
        Ok(Value::Object(m)) => ret.changes = m,
        Ok(_) => {}
        Err(e) => return Ret::failed(e.to_string()),
    }
    if !a.createhome {
        ret.changes.insert("home".into(), json!(""));
    }
    let shadow = |c: &dyn Calls| -> Option<Shadow> {
        let ran = run(c, &["getent", "shadow", name], None).ok()?;
        ran.stdout.lines().find(|l| l.split(':').next() == Some(name)).and_then(Shadow::parse)
    };
    if let Some(pw) = a.password.as_deref().filter(|p| !p.is_empty() && !a.empty_password) {
        let error = set_password(c, name, pw);
        if shadow(c).map(|s| s.passwd) != Some(pw.to_string()) {
            ret.result = Some(false);
            ret.comment = format!("User {name} created but failed to set password to {REDACTED}");
            if let Some(e) = error {
                ret.comment = format!("{}\n{e}", ret.comment);
            }
        }
        ret.changes.insert("password".into(), json!(REDACTED));
    }
    if a.empty_password && a.password.as_deref().unwrap_or_default().is_empty() {
        let _ = attempt(c, &["passwd", "-d", name], None);
        if shadow(c).map(|s| s.passwd) != Some(String::new()) {
            ret.result = Some(false);
            ret.comment = format!("User {name} created but failed to empty password");
        }
        ret.changes.insert("password".into(), json!(""));
    }
    let ageing: [(&str, Option<i64>, &str, ShadowField); 6] = [
        ("date", a.date, "last change date", |s| s.lstchg),
        ("mindays", a.mindays.filter(|d| *d != 0), "minimum days", |s| s.min),
        ("maxdays", a.maxdays.filter(|d| *d != 0), "maximum days", |s| s.max),
        ("inactdays", a.inactdays.filter(|d| *d != 0), "inactive days", |s| s.inact),
        ("warndays", a.warndays.filter(|d| *d != 0), "warn days", |s| s.warn),
        ("expire", a.expire.filter(|d| *d != 0), "expire days", |s| s.expire),
    ];
    for (key, want, what, field) in ageing {
        let (Some(want), Some(flag)) = (want, chage_flag(key)) else { continue };
        let _ = attempt(c, &["chage", flag, &want.to_string(), name], None);
        if shadow(c).map(|s| field(&s)) != Some(want) {
            ret.result = Some(false);
            ret.comment = format!("User {name} created but failed to set {what} to {want}");
        }
        ret.changes.insert(key.into(), json!(want));
    }
    ret
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AbsentArgs {
    /// Also remove the home directory and mail spool.
    #[serde(default)]
    purge: bool,
    /// Remove the user even while logged in.
    #[serde(default)]
    force: bool,
    #[serde(default)]
    local: bool,
}

fn absent(c: &dyn Calls, name: &str, a: &AbsentArgs, apply: bool) -> Ret {
    let account = match c.call("user.info", vec![json!(name)], Map::new()) {
        Ok(v) => parse_account(&v),
        Err(e) => return Ret::failed(e.to_string()),
    };
    let Some(u) = account else { return Ret::ok(format!("User {name} is not present")) };
    if !apply {
        return Ret::would(format!("User {name} set for removal"));
    }
    let mut kwargs = Map::new();
    kwargs.insert("remove".into(), json!(a.purge));
    kwargs.insert("force".into(), json!(a.force));
    if a.local {
        kwargs.insert("local".into(), json!(true));
    }
    if let Err(e) = c.call("user.delete", vec![json!(name)], kwargs) {
        return Ret::failed(format!("Failed to remove user {name}\n{e}"));
    }
    let mut ret = Ret::ok(format!("Removed user {name}"));
    let mut gone: BTreeMap<String, Value> = BTreeMap::new();
    for g in &u.groups {
        match c.call("group.info", vec![json!(g)], Map::new()) {
            Ok(v) if v.as_object().is_some_and(|m| !m.is_empty()) => {}
            _ => {
                gone.insert(format!("{g} group"), json!("removed"));
            }
        }
    }
    ret.changes.extend(gone);
    ret.changes.insert(name.to_string(), json!("removed"));
    ret
}

fn home_is_dir(path: &str) -> bool {
    Path::new(path).is_dir()
}

pub struct Present;
impl StateFunction for Present {
    const NAME: &'static str = "user.present";
    const DOC: &'static str = "Ensures a user account exists with the given properties; properties \
        left out are left alone. uid, gid (name or number; changing them needs allow_uid_change / \
        allow_gid_change), groups (exactly these supplementary groups, all must exist; remove_groups: \
        False only adds), optional_groups (added when they exist), home, createhome (default True: \
        create a missing home), shell, fullname, roomnumber, workphone, homephone, other, password (a \
        hash; enforce_password: False keeps a hash set by hand), empty_password, password_lock, date, \
        mindays, maxdays, inactdays, warndays, expire (shadow fields), system, unique, usergroup, \
        nologinit.\n\nExample:\n  deploy:\n    user.present:\n      - shell: /bin/bash\n      - home: /srv/deploy\n      - groups:\n        - www-data";
    type Args = PresentArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: PresentArgs, apply: bool) -> Outcome {
        present(&Live(ctx.exec), name, &a, apply, &home_is_dir).outcome()
    }
}

pub struct Absent;
impl StateFunction for Absent {
    const NAME: &'static str = "user.absent";
    const DOC: &'static str = "Ensures a user account does not exist. purge: also remove its home \
        directory and mail spool. force: remove it even while the user is logged in.\n\nExample:\n  olduser:\n    user.absent:\n      - purge: True";
    type Args = AbsentArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: AbsentArgs, apply: bool) -> Outcome {
        absent(&Live(ctx.exec), name, &a, apply).outcome()
    }
}

/// The `user` state module.
pub static MODULE: StateModule =
    StateModule { name: "user", doc: "Local user accounts.", functions: &[&Absent, &Present] };

#[cfg(test)]
mod tests {
    use super::super::calls::script::Script;
    use super::*;

    fn args(v: Value) -> PresentArgs {
        serde_json::from_value(v).unwrap()
    }

    fn alice() -> Value {
        json!({"gid": 1000, "groups": ["adm", "alice"], "home": "/home/alice", "name": "alice", "passwd": "x",
               "shell": "/bin/bash", "uid": 1000, "fullname": "Alice", "roomnumber": "", "workphone": "",
               "homephone": "", "other": ""})
    }

    fn groups() -> Value {
        json!([{"name": "root", "gid": 0, "passwd": "x", "members": []},
               {"name": "adm", "gid": 4, "passwd": "x", "members": ["alice"]},
               {"name": "alice", "gid": 1000, "passwd": "x", "members": []},
               {"name": "web", "gid": 3456, "passwd": "x", "members": []},
               {"name": "www", "gid": 3456, "passwd": "x", "members": []}])
    }

    const SHADOW: &str = "alice:$6$old:19000:0:99999:7:::\n";

    fn looked(s: Script, user: Value, shadow: &str) -> Script {
        let s = s.call("user.info alice", user);
        let s = s.cmd("$ getent shadow alice", 0, shadow, "");
        s.call("group.getent", groups())
    }

    fn always(_: &str) -> bool {
        true
    }

    #[test]
    fn an_account_in_line_is_up_to_date() {
        let s = looked(Script::new(), alice(), SHADOW);
        let a =
            args(json!({"uid": 1000, "gid": "alice", "groups": ["adm"], "home": "/home/alice", "shell": "/bin/bash",
                            "fullname": "Alice", "password": "$6$old"}));
        assert_eq!(present(&s, "alice", &a, true, &always), Ret::ok("User alice is present and up to date"));
        s.done();
    }

    #[test]
    fn test_mode_lists_changes_with_the_hash_redacted() {
        let s = looked(Script::new(), alice(), SHADOW);
        let a =
            args(json!({"shell": "/bin/zsh", "groups": ["adm", "web"], "fullname": "Alice L", "password": "$6$new",
                            "maxdays": 90}));
        let ret = present(&s, "alice", &a, false, &|p| p != "/home/alice");
        s.done();
        assert_eq!(
            ret,
            Ret::would(
                "The following user attributes are set to be changed:\ngroups: ['adm', 'web']\n\
                 homeDoesNotExist: /home/alice\nshell: /bin/zsh\npasswd: XXX-REDACTED-XXX\nmaxdays: 90\n\
                 fullname: Alice L\n"
            )
        );
    }

    #[test]
    fn ids_change_only_when_allowed_and_groups_must_exist() {
        let s = looked(Script::new(), alice(), SHADOW);
        let ret = present(&s, "alice", &args(json!({"uid": 1500})), false, &always);
        assert_eq!(
            ret,
            Ret::failed(
                "Encountered error checking for needed changes. Additional info follows:\n\n- Changing uid (1000 -> \
                 1500) not permitted, set allow_uid_change to True to force this change. Note that this will not \
                 change file ownership."
            )
        );
        let s = looked(Script::new(), alice(), SHADOW);
        let ret = present(&s, "alice", &args(json!({"groups": ["adm", "nosuch", "other"]})), false, &always);
        assert_eq!(ret, Ret::failed("The following group(s) are not present: nosuch,other"));
        let ret = present(&Script::new(), "alice", &args(json!({"fullname": "Liddell, Alice"})), false, &always);
        assert_eq!(ret, Ret::failed("Unsupported char ',' in Liddell, Alice"));
    }

    #[test]
    fn group_rules_follow_salt() {
        let f = Facts {
            account: parse_account(&alice()),
            shadow: None,
            groups: serde_json::from_value::<Vec<Value>>(groups())
                .unwrap()
                .iter()
                .map(|g| GroupId { name: py_str(&g["name"]), gid: g["gid"].as_i64().unwrap() })
                .collect(),
        };
        let ch = |v: Value| {
            let a = args(v);
            changes("alice", &f, &a, &[], a.gid_word().as_deref(), (true, true), &always).unwrap()
        };
        // No groups given: membership is left alone.
        assert!(ch(json!({})).is_empty());
        // The user's own group is never a supplementary group to add or drop.
        assert!(ch(json!({"groups": ["adm"]})).is_empty());
        assert_eq!(ch(json!({"groups": []})), vec![("groups", json!([]))]);
        // remove_groups False only adds.
        assert!(ch(json!({"groups": [], "remove_groups": false})).is_empty());
        assert_eq!(ch(json!({"groups": ["web"], "remove_groups": false})), vec![("groups", json!(["adm", "web"]))]);
        // A primary group change by name.
        assert_eq!(ch(json!({"gid": "web", "groups": ["adm"]}))[0], ("gid", json!("web")));
        assert!(ch(json!({"gid": 1000})).is_empty());
    }

    #[test]
    fn changes_run_and_report_what_really_changed() {
        let mut after = alice();
        after["shell"] = json!("/bin/zsh");
        after["groups"] = json!(["adm", "alice", "web"]);
        after["fullname"] = json!("Alice L");
        let s = looked(Script::new(), alice(), SHADOW)
            .cmd("$ chpasswd -e <<< alice:$6$new\n", 0, "", "")
            .call("user.chshell alice /bin/zsh", json!(true))
            .cmd("$ usermod -c Alice L alice", 0, "", "")
            .cmd("$ usermod -G adm,web alice", 0, "", "");
        let s = looked(s, after, "alice:$6$new:19500:0:99999:7:::\n");
        let a =
            args(json!({"shell": "/bin/zsh", "groups": ["adm", "web"], "fullname": "Alice L", "password": "$6$new"}));
        let ret = present(&s, "alice", &a, true, &always);
        s.done();
        assert_eq!(ret.comment, "Updated user alice");
        assert_eq!(ret.result, Some(true));
        assert_eq!(
            Value::Object(ret.changes),
            json!({"groups": ["adm", "alice", "web"], "shell": "/bin/zsh", "fullname": "Alice L",
                   "passwd": "XXX-REDACTED-XXX", "lstchg": 19500})
        );
    }

    #[test]
    fn what_would_not_change_fails_the_state() {
        let s = looked(Script::new(), alice(), SHADOW).cmd(
            "$ usermod -G adm,web alice",
            6,
            "",
            "usermod: group 'web' is odd\n",
        );
        let s = looked(s, alice(), SHADOW);
        let ret = present(&s, "alice", &args(json!({"groups": ["adm", "web"]})), true, &always);
        s.done();
        assert_eq!(ret.result, Some(false));
        assert_eq!(
            ret.comment,
            "These values could not be changed: {'groups': ['adm', 'web']}\nCommand 'usermod -G adm,web alice' failed \
             with exit code 6: usermod: group 'web' is odd"
        );
    }

    #[test]
    fn a_new_user_reports_its_account_and_password() {
        let made = json!({"gid": 1001, "groups": ["bob"], "home": "/home/bob", "name": "bob", "passwd": "x",
                          "shell": "/bin/sh", "uid": 1001, "fullname": "", "roomnumber": "", "workphone": "",
                          "homephone": "", "other": ""});
        let s = Script::new()
            .call("user.info bob", json!({}))
            .call("group.getent", groups())
            .call(
                "user.add bob groups=[\"adm\"] shell=/bin/sh unique=true system=false createhome=true nologinit=false",
                json!(true),
            )
            .call("user.info bob", made.clone())
            .cmd("$ chpasswd -e <<< bob:$6$h\n", 0, "", "")
            .cmd("$ getent shadow bob", 0, "bob:$6$h:19500:0:99999:7:::\n", "");
        let ret = present(
            &s,
            "bob",
            &args(json!({"shell": "/bin/sh", "groups": ["adm"], "password": "$6$h"})),
            true,
            &always,
        );
        s.done();
        assert_eq!(ret.comment, "New user bob created");
        let mut want = made;
        want["password"] = json!("XXX-REDACTED-XXX");
        assert_eq!(Value::Object(ret.changes), want);
        let s = Script::new().call("user.info bob", json!({})).call("group.getent", groups());
        assert_eq!(present(&s, "bob", &args(json!({})), false, &always), Ret::would("User bob set to be added"));
    }

    #[test]
    fn absent_reports_the_groups_that_went_too() {
        let s = Script::new()
            .call("user.info alice", alice())
            .call("user.delete alice remove=true force=false", json!(true))
            .call("group.info adm", json!({"name": "adm", "gid": 4, "passwd": "x", "members": []}))
            .call("group.info alice", json!({}));
        let ret = absent(&s, "alice", &AbsentArgs { purge: true, ..Default::default() }, true);
        s.done();
        assert_eq!(ret.comment, "Removed user alice");
        assert_eq!(Value::Object(ret.changes), json!({"alice group": "removed", "alice": "removed"}));
        let s = Script::new().call("user.info alice", alice());
        assert_eq!(absent(&s, "alice", &AbsentArgs::default(), false), Ret::would("User alice set for removal"));
        let s = Script::new().call("user.info nobody2", json!({}));
        assert_eq!(absent(&s, "nobody2", &AbsentArgs::default(), true), Ret::ok("User nobody2 is not present"));
    }
}
