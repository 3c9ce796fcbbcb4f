//! `group.*` states: local groups and their members.
//!
//! Follows Salt's `group` states: `present` creates a group (changes: the new group as
//! `group.info` shows it) or brings its gid and members in line (changes:
//! `{"Final": "All changes applied successfully"}`, or `{"Failed": {…}}` for what
//! would not change); test mode lists "The following group attributes are set to be
//! changed". Members change with `gpasswd` (`--add`, `--del`, `--members`) and the gid
//! with `groupmod -g`, as Salt's `groupadd` module does; the group is created and
//! deleted by the `group.add` and `group.delete` execution functions.
//!
//! Unlike Salt, conflicting options (`members` with `addusers`/`delusers`, or one user
//! both added and deleted) and a gid that is not a number fail the state rather than
//! returning `None` outside test mode, and a command that fails adds its message to
//! the comment.

use super::calls::{py_repr, py_str, run, word_list, Calls, Live, Ret};
use crate::exec::CallError;
use crate::state::{Outcome, StateContext, StateFunction, StateModule};
use brine_proto::{Map, Value};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeSet;

/// A group as the database shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    gid: i64,
    members: Vec<String>,
}

/// Reads `group.info`'s answer; `None` for `{}` (no such group).
fn parse_info(v: &Value) -> Option<Group> {
    let gid = v.get("gid")?.as_i64()?;
    let members = v.get("members").map(word_list).unwrap_or_default();
    Some(Group { gid, members })
}

fn info(c: &dyn Calls, name: &str) -> Result<(Option<Group>, Value), CallError> {
    let v = c.call("group.info", vec![Value::String(name.to_string())], Map::new())?;
    Ok((parse_info(&v), v))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PresentArgs {
    #[serde(default)]
    gid: Option<Value>,
    #[serde(default)]
    system: bool,
    #[serde(default)]
    addusers: Option<Value>,
    #[serde(default)]
    delusers: Option<Value>,
    #[serde(default)]
    members: Option<Value>,
    #[serde(default)]
    non_unique: bool,
    /// libuser's tools, which brine does not drive (`group.add` says so).
    #[serde(default)]
    local: bool,
}

/// The wanted membership, read once.
struct Wanted {
    gid: Option<i64>,
    addusers: Option<Vec<String>>,
    delusers: Option<Vec<String>>,
    members: Option<Vec<String>>,
}

/// One attribute to change, in the order Salt lists them.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    Gid(i64),
    /// Remove every member (an empty `members` list).
    ClearMembers(Vec<String>),
    Members(Vec<String>),
    AddUsers(Vec<String>),
    DelUsers(Vec<String>),
}

impl Change {
    fn key(&self) -> &'static str {
        match self {
            Change::Gid(_) => "gid",
            Change::ClearMembers(_) | Change::DelUsers(_) => "delusers",
            Change::Members(_) => "members",
            Change::AddUsers(_) => "addusers",
        }
    }

    fn value(&self) -> Value {
        match self {
            Change::Gid(g) => json!(g),
            Change::ClearMembers(v) | Change::Members(v) | Change::AddUsers(v) | Change::DelUsers(v) => json!(v),
        }
    }

    /// The value as Salt's comment prints it (an emptied member list is a Python set).
    fn shown(&self) -> String {
        match self {
            Change::ClearMembers(v) => {
                let set: BTreeSet<&String> = v.iter().collect();
                format!("{{{}}}", set.iter().map(|m| py_repr(&json!(m))).collect::<Vec<_>>().join(", "))
            }
            other => py_repr(&other.value()),
        }
    }
}

/// What differs between the group and the wanted state (Salt's `_changes`).
fn changes(g: &Group, w: &Wanted) -> Vec<Change> {
    let mut out = Vec::new();
    if let Some(gid) = w.gid.filter(|gid| *gid != g.gid) {
        out.push(Change::Gid(gid));
    }
    let current: BTreeSet<&String> = g.members.iter().collect();
    match &w.members {
        Some(m) if m.is_empty() && !current.is_empty() => out.push(Change::ClearMembers(g.members.clone())),
        Some(m) if m.is_empty() => {}
        Some(m) => {
            let wanted: BTreeSet<&String> = m.iter().collect();
            if wanted != current {
                out.push(Change::Members(m.clone()));
            }
        }
        None => {}
    }
    if let Some(add) = &w.addusers {
        let missing: Vec<String> = add.iter().filter(|u| !g.members.contains(u)).cloned().collect();
        if !missing.is_empty() {
            out.push(Change::AddUsers(missing));
        }
    }
    if let Some(del) = &w.delusers {
        let present: Vec<String> = del.iter().filter(|u| g.members.contains(u)).cloned().collect();
        if !present.is_empty() {
            out.push(Change::DelUsers(present));
        }
    }
    out
}

fn as_map(cs: &[Change]) -> Map {
    cs.iter().map(|c| (c.key().to_string(), c.value())).collect()
}

/// Runs one command; its failure message, if it failed.
fn attempt(c: &dyn Calls, argv: &[&str]) -> Option<String> {
    match run(c, argv, None) {
        Ok(r) if r.retcode == 0 => None,
        Ok(r) => Some(r.failure(argv).to_string()),
        Err(e) => Some(e.to_string()),
    }
}

fn make_changes(c: &dyn Calls, name: &str, cs: &[Change], non_unique: bool) -> Vec<String> {
    let mut errors = Vec::new();
    for ch in cs {
        match ch {
            Change::Gid(gid) => {
                let gid = gid.to_string();
                let mut argv = vec!["groupmod", "-g", gid.as_str()];
                if non_unique {
                    argv.push("-o");
                }
                argv.push(name);
                errors.extend(attempt(c, &argv));
            }
            Change::AddUsers(users) => {
                for u in users {
                    errors.extend(attempt(c, &["gpasswd", "--add", u, name]));
                }
            }
            Change::DelUsers(users) | Change::ClearMembers(users) => {
                for u in users {
                    errors.extend(attempt(c, &["gpasswd", "--del", u, name]));
                }
            }
            Change::Members(users) => {
                errors.extend(attempt(c, &["gpasswd", "--members", &users.join(","), name]));
            }
        }
    }
    errors
}

/// Adds the commands' messages to a comment.
fn with_errors(comment: String, errors: &[String]) -> String {
    if errors.is_empty() {
        comment
    } else {
        format!("{comment}\n{}", errors.join("\n"))
    }
}

fn present(c: &dyn Calls, name: &str, a: &PresentArgs, apply: bool) -> Ret {
    let list = |v: &Option<Value>| v.as_ref().filter(|v| !v.is_null()).map(word_list);
    let w = Wanted { gid: None, addusers: list(&a.addusers), delusers: list(&a.delusers), members: list(&a.members) };
    if w.members.is_some() && (w.addusers.is_some() || w.delusers.is_some()) {
        return Ret::failed(
            "Error: Conflicting options \"members\" with \"addusers\" and/or \"delusers\" can not be used together. ",
        );
    }
    if let (Some(add), Some(del)) = (&w.addusers, &w.delusers) {
        if add.iter().any(|u| del.contains(u)) {
            return Ret::failed("Error. Same user(s) can not be added and deleted simultaneously");
        }
    }
    let gid = match a.gid.as_ref().filter(|g| !g.is_null() && !py_str(g).is_empty()) {
        None => None,
        Some(g) => match py_str(g).trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return Ret::failed("Invalid gid"),
        },
    };
    let w = Wanted { gid, ..w };
    let (group, _) = match info(c, name) {
        Ok(found) => found,
        Err(e) => return Ret::failed(e.to_string()),
    };
    match group {
        Some(g) => update(c, name, &g, &w, a.non_unique, apply),
        None => create(c, name, &w, a, apply),
    }
}

fn update(c: &dyn Calls, name: &str, g: &Group, w: &Wanted, non_unique: bool, apply: bool) -> Ret {
    let cs = changes(g, w);
    if cs.is_empty() {
        return Ret::ok(format!("Group {name} is present and up to date"));
    }
    let mut comment = String::from("The following group attributes are set to be changed:\n");
    for ch in &cs {
        comment.push_str(&format!("{}: {}\n", ch.key(), ch.shown()));
    }
    if !apply {
        return Ret::would(comment);
    }
    let errors = make_changes(c, name, &cs, non_unique);
    let left = match info(c, name) {
        Ok((Some(after), _)) => changes(&after, w),
        Ok((None, _)) => cs.clone(),
        Err(e) => return Ret::failed(format!("{comment}{e}")),
    };
    if left.is_empty() {
        let mut ret = Ret::ok(comment);
        ret.changes.insert("Final".into(), json!("All changes applied successfully"));
        return ret;
    }
    let mut ret = Ret::failed(with_errors(format!("{comment}Some changes could not be applied"), &errors));
    ret.changes.insert("Failed".into(), Value::Object(as_map(&left)));
    ret
}

fn create(c: &dyn Calls, name: &str, w: &Wanted, a: &PresentArgs, apply: bool) -> Ret {
    if !apply {
        return Ret::would(format!("Group {name} set to be added"));
    }
    if let (Some(gid), false) = (w.gid, a.non_unique) {
        let all = match c.call("group.getent", vec![], Map::new()) {
            Ok(v) => v,
            Err(e) => return Ret::failed(e.to_string()),
        };
        let taken = all.as_array().and_then(|groups| {
            groups.iter().find(|g| g.get("gid").and_then(Value::as_i64) == Some(gid)).and_then(|g| g.get("name"))
        });
        if let Some(other) = taken {
            return Ret::failed(format!(
                "Group {name} is not present but gid {gid} is already taken by group {}",
                py_str(other)
            ));
        }
    }
    let mut kwargs = Map::new();
    if let Some(gid) = w.gid {
        kwargs.insert("gid".into(), json!(gid));
    }
    kwargs.insert("system".into(), json!(a.system));
    kwargs.insert("non_unique".into(), json!(a.non_unique));
    if a.local {
        kwargs.insert("local".into(), json!(true));
    }
    if let Err(e) = c.call("group.add", vec![Value::String(name.to_string())], kwargs) {
        return Ret::failed(format!("Failed to create new group {name}\n{e}"));
    }
    let members = w.addusers.as_ref().filter(|m| !m.is_empty()).or(w.members.as_ref().filter(|m| !m.is_empty()));
    let mut errors = Vec::new();
    if let Some(m) = members {
        errors.extend(attempt(c, &["gpasswd", "--members", &m.join(","), name]));
    }
    let (after, shown) = match info(c, name) {
        Ok(found) => found,
        Err(e) => return Ret::failed(e.to_string()),
    };
    let left = after.as_ref().map(|g| changes(g, w)).unwrap_or_default();
    if after.is_none() || !left.is_empty() {
        let mut ret = Ret::failed(with_errors(
            format!("Group {name} has been created but, some changes could not be applied"),
            &errors,
        ));
        ret.changes.insert("Failed".into(), Value::Object(as_map(&left)));
        return ret;
    }
    let mut ret = Ret::ok(format!("New group {name} created"));
    ret.changes = shown.as_object().cloned().unwrap_or_default();
    ret
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AbsentArgs {
    #[serde(default)]
    local: bool,
}

fn absent(c: &dyn Calls, name: &str, a: &AbsentArgs, apply: bool) -> Ret {
    match info(c, name) {
        Ok((None, _)) => Ret::ok("Group not present"),
        Err(e) => Ret::failed(e.to_string()),
        Ok((Some(_), _)) if !apply => Ret::would(format!("Group {name} is set for removal")),
        Ok((Some(_), _)) => {
            let mut kwargs = Map::new();
            if a.local {
                kwargs.insert("local".into(), json!(true));
            }
            match c.call("group.delete", vec![Value::String(name.to_string())], kwargs) {
                Ok(_) => {
                    let mut ret = Ret::ok(format!("Removed group {name}"));
                    ret.changes.insert(name.to_string(), json!(""));
                    ret
                }
                Err(e) => Ret::failed(format!("Failed to remove group {name}\n{e}")),
            }
        }
    }
}

pub struct Present;
impl StateFunction for Present {
    const NAME: &'static str = "group.present";
    const DOC: &'static str = "Ensures a group exists with the given gid and members. gid: the group \
        id. system: create a system group. members: exactly these members (an empty list removes \
        all); or addusers / delusers: members to add or remove (not with members). non_unique: allow \
        a duplicate gid.\n\nExample:\n  web:\n    group.present:\n      - gid: 3456\n      - addusers:\n        - deploy";
    type Args = PresentArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: PresentArgs, apply: bool) -> Outcome {
        present(&Live(ctx.exec), name, &a, apply).outcome()
    }
}

pub struct Absent;
impl StateFunction for Absent {
    const NAME: &'static str = "group.absent";
    const DOC: &'static str = "Ensures a group does not exist.\n\nExample:\n  games:\n    group.absent";
    type Args = AbsentArgs;
    fn check_apply(&self, ctx: &StateContext, name: &str, a: AbsentArgs, apply: bool) -> Outcome {
        absent(&Live(ctx.exec), name, &a, apply).outcome()
    }
}

/// The `group` state module.
pub static MODULE: StateModule =
    StateModule { name: "group", doc: "Local groups and their members.", functions: &[&Absent, &Present] };

#[cfg(test)]
mod tests {
    use super::super::calls::script::Script;
    use super::*;

    fn args(v: Value) -> PresentArgs {
        serde_json::from_value(v).unwrap()
    }

    const WEB: &str = r#"{"name": "web", "passwd": "x", "gid": 3456, "members": ["alice", "bob"]}"#;

    fn web() -> Value {
        serde_json::from_str(WEB).unwrap()
    }

    #[test]
    fn test_mode_lists_the_attributes_to_change_as_salt_prints_them() {
        let s = Script::new().call("group.info web", web());
        let ret = present(&s, "web", &args(json!({"gid": 99, "members": ["root", "bin"]})), false);
        assert_eq!(
            ret,
            Ret::would("The following group attributes are set to be changed:\ngid: 99\nmembers: ['root', 'bin']\n")
        );
        let s = Script::new().call("group.info web", web());
        let ret = present(&s, "web", &args(json!({"addusers": ["carol", "alice"], "delusers": "bob,dave"})), false);
        assert_eq!(
            ret.comment,
            "The following group attributes are set to be changed:\naddusers: ['carol']\ndelusers: ['bob']\n"
        );
        let s = Script::new().call("group.info web", web());
        let ret = present(&s, "web", &args(json!({"members": []})), false);
        assert_eq!(ret.comment, "The following group attributes are set to be changed:\ndelusers: {'alice', 'bob'}\n");
        let s = Script::new().call("group.info web", web());
        let ret = present(&s, "web", &args(json!({"gid": "3456", "members": ["bob", "alice"]})), false);
        assert_eq!(ret, Ret::ok("Group web is present and up to date"));
        let s = Script::new().call("group.info new", json!({}));
        assert_eq!(present(&s, "new", &args(json!({})), false), Ret::would("Group new set to be added"));
    }

    #[test]
    fn conflicting_options_fail_before_looking() {
        let s = Script::new();
        let ret = present(&s, "web", &args(json!({"members": ["a"], "addusers": ["b"]})), true);
        assert_eq!(ret.result, Some(false));
        assert!(ret.comment.starts_with("Error: Conflicting options \"members\""), "{}", ret.comment);
        let ret = present(&s, "web", &args(json!({"addusers": ["b"], "delusers": ["b"]})), true);
        assert_eq!(ret, Ret::failed("Error. Same user(s) can not be added and deleted simultaneously"));
        assert_eq!(present(&s, "web", &args(json!({"gid": "abc"})), true), Ret::failed("Invalid gid"));
        assert!(serde_json::from_value::<PresentArgs>(json!({"members": [], "memebrs": []})).is_err());
    }

    #[test]
    fn changes_are_made_with_groupmod_and_gpasswd_then_checked() {
        let after = json!({"name": "web", "passwd": "x", "gid": 4000, "members": ["alice", "carol"]});
        let s = Script::new()
            .call("group.info web", web())
            .cmd("$ groupmod -g 4000 web", 0, "", "")
            .cmd("$ gpasswd --add carol web", 0, "Adding user carol to group web", "")
            .cmd("$ gpasswd --del bob web", 0, "Removing user bob from group web", "")
            .call("group.info web", after);
        let ret = present(&s, "web", &args(json!({"gid": 4000, "addusers": ["carol"], "delusers": ["bob"]})), true);
        s.done();
        assert_eq!(ret.result, Some(true));
        assert_eq!(Value::Object(ret.changes), json!({"Final": "All changes applied successfully"}));

        let s = Script::new()
            .call("group.info web", web())
            .cmd("$ gpasswd --members alice,zed web", 3, "", "gpasswd: user 'zed' does not exist\n")
            .call("group.info web", web());
        let ret = present(&s, "web", &args(json!({"members": ["alice", "zed"]})), true);
        s.done();
        assert_eq!(ret.result, Some(false));
        assert_eq!(Value::Object(ret.changes), json!({"Failed": {"members": ["alice", "zed"]}}));
        assert!(ret.comment.ends_with(
            "Some changes could not be applied\nCommand 'gpasswd --members alice,zed web' failed with exit code 3: \
             gpasswd: user 'zed' does not exist"
        ));
    }

    #[test]
    fn a_new_group_reports_what_group_info_shows() {
        let made = json!({"name": "ops", "passwd": "x", "gid": 5000, "members": ["alice"]});
        let s = Script::new()
            .call("group.info ops", json!({}))
            .call("group.getent", json!([{"name": "web", "gid": 3456, "passwd": "x", "members": []}]))
            .call("group.add ops gid=5000 system=true non_unique=false", json!(true))
            .cmd("$ gpasswd --members alice ops", 0, "", "")
            .call("group.info ops", made.clone());
        let ret = present(&s, "ops", &args(json!({"gid": 5000, "system": true, "members": ["alice"]})), true);
        s.done();
        assert_eq!(ret.comment, "New group ops created");
        assert_eq!(Value::Object(ret.changes), made);

        let s = Script::new()
            .call("group.info ops", json!({}))
            .call("group.getent", json!([{"name": "web", "gid": 3456, "passwd": "x", "members": []}]));
        let ret = present(&s, "ops", &args(json!({"gid": 3456})), true);
        assert_eq!(ret, Ret::failed("Group ops is not present but gid 3456 is already taken by group web"));
    }

    #[test]
    fn absent_removes_a_group() {
        let s = Script::new().call("group.info web", web()).call("group.delete web", json!(true));
        let ret = absent(&s, "web", &AbsentArgs::default(), true);
        s.done();
        assert_eq!((ret.comment.as_str(), Value::Object(ret.changes)), ("Removed group web", json!({"web": ""})));
        let s = Script::new().call("group.info web", web());
        assert_eq!(absent(&s, "web", &AbsentArgs::default(), false), Ret::would("Group web is set for removal"));
        let s = Script::new().call("group.info gone", json!({}));
        assert_eq!(absent(&s, "gone", &AbsentArgs::default(), true), Ret::ok("Group not present"));
    }
}
