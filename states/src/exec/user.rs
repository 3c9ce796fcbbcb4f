//! `user.*`: add, delete, look up and change local user accounts (`useradd`,
//! `userdel`, `usermod`, and the passwd database).
//!
//! Lookups go through NSS (`getent passwd`) like Salt's use of Python's `pwd`; with
//! `root=DIR` they read `DIR/etc/passwd` and `DIR/etc/group` instead. `user.info`
//! returns Salt's map (`gid, groups, home, name, passwd, shell, uid` and the five GECOS
//! fields), `{}` for an unknown user. `user.add` passes the supplementary groups and
//! the GECOS fields to `useradd` itself, so the account is created whole or not at
//! all; where Salt returns False because `useradd`/`userdel` failed, brine fails the
//! call with the tool's message. On Alpine the shadow tools come from `apk add shadow`.

use super::group::{account_db, groups, GroupEntry};
use super::host::{CommandLine, Host, Runner, Word, WordList};
use super::{opt, req, CallError, Context, Function, Output, Param};
use brine_proto::Value;
use serde::Deserialize;
use serde_json::json;
use std::path::Path;

/// One line of the passwd database.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UserEntry {
    name: String,
    passwd: String,
    uid: u32,
    gid: u32,
    gecos: String,
    home: String,
    shell: String,
}

/// Parses `/etc/passwd` (or `getent passwd`) lines:
/// `name:passwd:uid:gid:gecos:home:shell`. Comments, NIS `+`/`-` lines and malformed
/// lines are skipped.
fn parse_passwd(text: &str) -> Vec<UserEntry> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with(['#', '+', '-']))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let [name, passwd, uid, gid, gecos, home, shell] = f[..] else { return None };
            Some(UserEntry {
                name: name.into(),
                passwd: passwd.into(),
                uid: uid.trim().parse().ok()?,
                gid: gid.trim().parse().ok()?,
                gecos: gecos.into(),
                home: home.into(),
                shell: shell.into(),
            })
        })
        .collect()
}

/// The groups `user` belongs to, its primary group included, sorted.
fn group_names(user: &UserEntry, all: &[GroupEntry]) -> Vec<String> {
    let mut names: Vec<String> =
        all.iter().filter(|g| g.gid == user.gid || g.members.contains(&user.name)).map(|g| g.name.clone()).collect();
    names.sort();
    names.dedup();
    names
}

/// Salt's `user.info` map.
fn user_value(user: &UserEntry, all: &[GroupEntry]) -> Value {
    // GECOS is "full name,room,work phone,home phone,other"; missing fields are "".
    let mut gecos = user.gecos.splitn(5, ',').map(String::from).collect::<Vec<_>>();
    gecos.resize(5, String::new());
    json!({
        "gid": user.gid,
        "groups": group_names(user, all),
        "home": user.home,
        "name": user.name,
        "passwd": user.passwd,
        "shell": user.shell,
        "uid": user.uid,
        "fullname": gecos[0],
        "roomnumber": gecos[1],
        "workphone": gecos[2],
        "homephone": gecos[3],
        "other": gecos[4],
    })
}

fn find(r: &dyn Runner, name: &str, root: Option<&str>) -> Result<Option<UserEntry>, CallError> {
    Ok(parse_passwd(&account_db(r, "passwd", Some(name), root)?).into_iter().find(|u| u.name == name))
}

fn info(r: &dyn Runner, name: &str, root: Option<&str>) -> Result<Value, CallError> {
    match find(r, name, root)? {
        Some(user) => Ok(user_value(&user, &groups(r, root)?)),
        None => Ok(json!({})),
    }
}

/// `-R ROOT` for the shadow tools when a root is given.
fn root_args(root: Option<&str>) -> Vec<String> {
    root.map(|r| vec!["-R".to_string(), r.to_string()]).unwrap_or_default()
}

/// Whether `login.defs` text turns on per-user groups (`USERGROUPS_ENAB yes`).
fn usergroups_enabled(login_defs: &str) -> bool {
    login_defs
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("USERGROUPS_ENAB"))
        .is_some_and(|l| l.split_whitespace().nth(1).is_some_and(|v| v.eq_ignore_ascii_case("yes")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddArgs {
    name: Word,
    #[serde(default)]
    uid: Option<Word>,
    #[serde(default)]
    gid: Option<Word>,
    #[serde(default)]
    groups: Option<WordList>,
    #[serde(default)]
    home: Option<String>,
    #[serde(default)]
    shell: Option<String>,
    #[serde(default = "yes")]
    unique: bool,
    #[serde(default)]
    system: bool,
    #[serde(default)]
    fullname: Option<Word>,
    #[serde(default)]
    roomnumber: Option<Word>,
    #[serde(default)]
    workphone: Option<Word>,
    #[serde(default)]
    homephone: Option<Word>,
    #[serde(default)]
    other: Option<Word>,
    #[serde(default = "yes")]
    createhome: bool,
    /// OpenBSD only; ignored on Linux, as Salt does.
    #[serde(default)]
    #[allow(dead_code)]
    loginclass: Option<String>,
    #[serde(default)]
    nologinit: bool,
    #[serde(default)]
    root: Option<String>,
    #[serde(default)]
    usergroup: Option<bool>,
    /// libuser's `luseradd`, which brine does not drive.
    #[serde(default)]
    local: bool,
}

fn yes() -> bool {
    true
}

/// The GECOS field from its five parts, trailing empty parts dropped.
fn gecos(a: &AddArgs) -> String {
    let part = |w: &Option<Word>| w.as_ref().map(|w| w.0.clone()).unwrap_or_default();
    let joined =
        [part(&a.fullname), part(&a.roomnumber), part(&a.workphone), part(&a.homephone), part(&a.other)].join(",");
    joined.trim_end_matches(',').to_string()
}

/// The `useradd` line. `login_defs` is consulted only when the supplementary groups
/// name the user's own group: with per-user groups on, that group becomes the primary
/// one (`-g NAME`), as Salt does.
fn add_command(a: &AddArgs, login_defs: impl FnOnce() -> String) -> CommandLine {
    let name = a.name.as_str();
    let mut c = CommandLine::new("useradd").args(root_args(a.root.as_deref()));
    if let Some(shell) = a.shell.as_deref().filter(|s| !s.is_empty()) {
        c = c.args(["-s", shell]);
    }
    if let Some(uid) = a.uid.as_ref().filter(|u| !u.as_str().is_empty()) {
        c = c.args(["-u", uid.as_str()]);
    }
    let groups: Vec<String> = a.groups.as_ref().map(|g| g.0.clone()).unwrap_or_default();
    if let Some(gid) = a.gid.as_ref().filter(|g| !g.as_str().is_empty()) {
        c = c.args(["-g", gid.as_str()]);
    } else if a.usergroup == Some(true) {
        c = c.arg("-U");
    } else if groups.iter().any(|g| g == name) && usergroups_enabled(&login_defs()) {
        c = c.args(["-g", name]);
    }
    if a.usergroup == Some(false) {
        c = c.arg("-N");
    }
    c = c.arg(if a.createhome { "-m" } else { "-M" });
    if a.nologinit {
        c = c.arg("-l");
    }
    if let Some(home) = &a.home {
        c = c.args(["-d", home.as_str()]);
    }
    if !a.unique {
        c = c.arg("-o");
    }
    if a.system {
        c = c.arg("-r");
    }
    if !groups.is_empty() {
        c = c.args(["-G".to_string(), groups.join(",")]);
    }
    let gecos = gecos(a);
    if !gecos.is_empty() {
        c = c.args(["-c".to_string(), gecos]);
    }
    c.arg(name)
}

fn add(r: &dyn Runner, a: &AddArgs) -> Result<Value, CallError> {
    if a.local {
        return Err(CallError::failed("local=True (libuser's luseradd) is not supported; leave it out"));
    }
    let defs = || {
        let dir = a.root.as_deref().unwrap_or("/");
        std::fs::read_to_string(Path::new(dir).join("etc/login.defs")).unwrap_or_default()
    };
    r.run_ok(&add_command(a, defs))?;
    Ok(Value::Bool(true))
}

pub struct Add;
impl Function for Add {
    const NAME: &'static str = "user.add";
    const DOC: &'static str = "Creates a user account and returns True; fails with useradd's message.\n\n\
        uid, gid (name or number), groups (a list or comma-separated supplementary groups), home, \
        shell. unique=False allows a duplicate uid. system: a system account. fullname, roomnumber, \
        workphone, homephone, other: the GECOS fields. createhome (default True): create the home \
        directory. nologinit: keep it out of lastlog/faillog. usergroup: True creates a group named \
        after the user, False does not (default: the system's setting). root: create it in the files \
        under that directory.\n\n\
        CLI example: brine run '*' user.add deploy shell=/bin/bash groups=adm,www-data";
    const PARAMS: &'static [Param] = &[
        req("name"),
        opt("uid"),
        opt("gid"),
        opt("groups"),
        opt("home"),
        opt("shell"),
        opt("unique"),
        opt("system"),
        opt("fullname"),
        opt("roomnumber"),
        opt("workphone"),
        opt("homephone"),
        opt("other"),
        opt("createhome"),
        opt("loginclass"),
        opt("nologinit"),
        opt("root"),
        opt("usergroup"),
        opt("local"),
    ];
    type Args = AddArgs;
    fn call(&self, ctx: &Context, a: AddArgs) -> Result<Output, CallError> {
        Ok(Output::ok(add(&Host::new(ctx), &a)?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteArgs {
    name: Word,
    #[serde(default)]
    remove: bool,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    root: Option<String>,
    #[serde(default)]
    local: bool,
}

fn delete(r: &dyn Runner, a: &DeleteArgs, os_family: Option<&str>) -> Result<Value, CallError> {
    if a.local {
        return Err(CallError::failed("local=True (libuser's luserdel) is not supported; leave it out"));
    }
    let mut cmd = CommandLine::new("userdel").args(root_args(a.root.as_deref()));
    if a.remove {
        cmd = cmd.arg("-r");
    }
    if a.force {
        cmd = cmd.arg("-f");
    }
    let cmd = cmd.arg(a.name.as_str());
    let ran = r.run(&cmd)?;
    // Debian's userdel exits 12 when the user had no mail spool to remove, after
    // deleting the account: that is a success.
    let mail_spool = ran.retcode == 12
        && os_family == Some("Debian")
        && (ran.stderr.contains("var/mail") || ran.stderr.contains("var/spool/mail"));
    if ran.success() || mail_spool {
        Ok(Value::Bool(true))
    } else {
        Err(ran.failure(&cmd))
    }
}

pub struct Delete;
impl Function for Delete {
    const NAME: &'static str = "user.delete";
    const DOC: &'static str = "Deletes a user account and returns True; fails with userdel's message.\n\n\
        remove: also remove the home directory and mail spool. force: delete even if the user is \
        logged in. root: delete it from the files under that directory.\n\n\
        CLI example: brine run '*' user.delete deploy remove=True";
    const PARAMS: &'static [Param] = &[req("name"), opt("remove"), opt("force"), opt("root"), opt("local")];
    type Args = DeleteArgs;
    fn call(&self, ctx: &Context, a: DeleteArgs) -> Result<Output, CallError> {
        let family = ctx.grains.get("os_family").and_then(Value::as_str);
        Ok(Output::ok(delete(&Host::new(ctx), &a, family)?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfoArgs {
    name: Word,
    #[serde(default)]
    root: Option<String>,
}

pub struct Info;
impl Function for Info {
    const NAME: &'static str = "user.info";
    const DOC: &'static str = "Returns a user as {gid, groups, home, name, passwd, shell, uid, fullname, \
        roomnumber, workphone, homephone, other}, or {} if there is no such user.\n\n\
        root: read the passwd and group files under that directory.\n\n\
        CLI example: brine run '*' user.info root";
    const PARAMS: &'static [Param] = &[req("name"), opt("root")];
    type Args = InfoArgs;
    fn call(&self, ctx: &Context, a: InfoArgs) -> Result<Output, CallError> {
        Ok(Output::ok(info(&Host::new(ctx), a.name.as_str(), a.root.as_deref())?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    #[serde(default)]
    root: Option<String>,
}

pub struct ListUsers;
impl Function for ListUsers {
    const NAME: &'static str = "user.list_users";
    const DOC: &'static str = "Returns the sorted names of every user.\n\n\
        root: read the passwd file under that directory.\n\n\
        CLI example: brine run '*' user.list_users";
    const PARAMS: &'static [Param] = &[opt("root")];
    type Args = ListArgs;
    fn call(&self, ctx: &Context, a: ListArgs) -> Result<Output, CallError> {
        let text = account_db(&Host::new(ctx), "passwd", None, a.root.as_deref())?;
        let mut names: Vec<String> = parse_passwd(&text).into_iter().map(|u| u.name).collect();
        names.sort();
        names.dedup();
        Ok(Output::ok(names))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChshellArgs {
    name: Word,
    shell: String,
    #[serde(default)]
    root: Option<String>,
}

/// Sets the login shell with `usermod -s` unless it is already that; True when the
/// passwd database shows the new shell afterwards.
fn chshell(r: &dyn Runner, a: &ChshellArgs) -> Result<Value, CallError> {
    let (name, root) = (a.name.as_str(), a.root.as_deref());
    let Some(before) = find(r, name, root)? else {
        return Err(CallError::failed(format!("User '{name}' does not exist")));
    };
    if before.shell == a.shell {
        return Ok(Value::Bool(true));
    }
    r.run_ok(&CommandLine::new("usermod").args(root_args(root)).args(["-s", a.shell.as_str(), name]))?;
    Ok(Value::Bool(find(r, name, root)?.is_some_and(|u| u.shell == a.shell)))
}

pub struct Chshell;
impl Function for Chshell {
    const NAME: &'static str = "user.chshell";
    const DOC: &'static str = "Changes a user's login shell and returns True once the passwd database \
        shows it (True at once if it already was); fails if the user does not exist.\n\n\
        root: change it in the files under that directory.\n\n\
        CLI example: brine run '*' user.chshell deploy /bin/zsh";
    const PARAMS: &'static [Param] = &[req("name"), req("shell"), opt("root")];
    type Args = ChshellArgs;
    fn call(&self, ctx: &Context, a: ChshellArgs) -> Result<Output, CallError> {
        Ok(Output::ok(chshell(&Host::new(ctx), &a)?))
    }
}

/// The `user` execution module.
pub static MODULE: super::Module = super::Module {
    name: "user",
    doc: "Add, delete, look up and change user accounts.",
    functions: &[&Add, &Chshell, &Delete, &Info, &ListUsers],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::host::script::Script;
    use crate::exec::host::which;
    use crate::exec::{call, Context};
    use brine_proto::Map;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
alice:x:1000:1000:Alice Liddell,12,555-1234:/home/alice:/bin/zsh
# comment
+@netgroup
svc:*:998:998::/nonexistent:/usr/sbin/nologin
bad:x:notanumber:1::/:/bin/sh
";
    const GROUP: &str = "\
root:x:0:
adm:x:4:syslog,alice
alice:x:1000:
web:x:3456:bob,alice
svc:x:998:
";

    fn args<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn root_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(dir.path().join("etc/group"), GROUP).unwrap();
        dir
    }

    #[test]
    fn info_has_salts_keys_groups_and_gecos_fields() {
        let dir = root_dir();
        let root = dir.path().to_str().unwrap();
        let got = info(&Script::new(), "alice", Some(root)).unwrap();
        assert_eq!(
            got,
            json!({"gid": 1000, "groups": ["adm", "alice", "web"], "home": "/home/alice", "name": "alice",
                   "passwd": "x", "shell": "/bin/zsh", "uid": 1000, "fullname": "Alice Liddell",
                   "roomnumber": "12", "workphone": "555-1234", "homephone": "", "other": ""})
        );
        let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
        assert_eq!(keys[..3], ["gid", "groups", "home"], "Salt's key order");
        assert_eq!(info(&Script::new(), "nosuch", Some(root)).unwrap(), json!({}));
        let kw: Map = serde_json::from_value(json!({"root": root})).unwrap();
        let users = call("user.list_users", &Context::default(), vec![], kw).unwrap().ret;
        assert_eq!(users, json!(["alice", "root", "svc"]));
    }

    #[test]
    fn add_builds_one_useradd_line() {
        let a: AddArgs = args(json!({
            "name": "deploy", "uid": 1500, "gid": "web", "groups": "adm,www-data", "home": "/srv/deploy",
            "shell": "/bin/bash", "system": true, "fullname": "Deploy Bot", "workphone": 42, "root": "/img"
        }));
        let never = || -> String { panic!("login.defs is not needed here") };
        assert_eq!(
            add_command(&a, never).to_string(),
            "useradd -R /img -s /bin/bash -u 1500 -g web -m -d /srv/deploy -r -G adm,www-data -c 'Deploy Bot,,42' deploy"
        );
        let a: AddArgs =
            args(json!({"name": "x", "createhome": false, "unique": false, "usergroup": false, "nologinit": true}));
        assert_eq!(add_command(&a, String::new).to_string(), "useradd -N -M -l -o x");
        let a: AddArgs = args(json!({"name": "x", "usergroup": true}));
        assert_eq!(add_command(&a, String::new).to_string(), "useradd -U -m x");
        // The user's own group among its groups becomes the primary group when the
        // system makes per-user groups.
        let a: AddArgs = args(json!({"name": "web", "groups": ["web", "adm"]}));
        assert_eq!(add_command(&a, || "USERGROUPS_ENAB yes\n".into()).to_string(), "useradd -g web -m -G web,adm web");
        assert_eq!(add_command(&a, || "USERGROUPS_ENAB no\n".into()).to_string(), "useradd -m -G web,adm web");
        assert!(usergroups_enabled("# USERGROUPS_ENAB no\nUSERGROUPS_ENAB  yes\n"));
    }

    #[test]
    fn add_and_delete_fail_with_the_tools_message() {
        let script = Script::new()
            .fails("useradd -m root", 9, "useradd: user 'root' already exists\n")
            .fails("userdel nosuch", 6, "userdel: user 'nosuch' does not exist\n")
            .fails("userdel -r olduser", 12, "userdel: olduser mail spool (/var/mail/olduser) not found\n")
            .fails("userdel -r olduser", 12, "userdel: olduser mail spool (/var/mail/olduser) not found\n");
        let err = add(&script, &args(json!({"name": "root"}))).unwrap_err().to_string();
        assert_eq!(err, "Command 'useradd -m root' failed with exit code 9: useradd: user 'root' already exists");
        let err = delete(&script, &args(json!({"name": "nosuch"})), Some("Debian")).unwrap_err().to_string();
        assert!(err.ends_with("userdel: user 'nosuch' does not exist"), "{err}");
        let a: DeleteArgs = args(json!({"name": "olduser", "remove": true}));
        assert_eq!(delete(&script, &a, Some("Debian")).unwrap(), json!(true), "Debian's missing mail spool");
        assert!(delete(&script, &a, Some("RedHat")).is_err());
        script.done();
    }

    #[test]
    fn chshell_checks_the_user_and_skips_a_no_op() {
        let dir = root_dir();
        let root = dir.path().to_str().unwrap();
        let script = Script::new();
        let a: ChshellArgs = args(json!({"name": "nosuch", "shell": "/bin/sh", "root": root}));
        assert_eq!(chshell(&script, &a).unwrap_err().to_string(), "User 'nosuch' does not exist");
        let a: ChshellArgs = args(json!({"name": "alice", "shell": "/bin/zsh", "root": root}));
        assert_eq!(chshell(&script, &a).unwrap(), json!(true));
        script.done();
        // The script does not edit the file, so the change is not seen: False, as Salt.
        let script = Script::new().ok(&format!("usermod -R {root} -s /bin/sh alice"), "");
        let a: ChshellArgs = args(json!({"name": "alice", "shell": "/bin/sh", "root": root}));
        assert_eq!(chshell(&script, &a).unwrap(), json!(false));
        script.done();
    }

    /// Against the host's real accounts, with a unique temporary user removed on drop.
    #[test]
    fn real_users_can_be_added_changed_and_deleted() {
        let ctx = Context::default();
        let root = call("user.info", &ctx, vec![json!("root")], Map::new()).unwrap().ret;
        assert_eq!((root["uid"].clone(), root["home"].clone()), (json!(0), json!("/root")));
        assert!(root["groups"].as_array().unwrap().contains(&json!("root")));
        assert_eq!(call("user.info", &ctx, vec![json!("brine-no-such-user")], Map::new()).unwrap().ret, json!({}));
        let users = call("user.list_users", &ctx, vec![], Map::new()).unwrap().ret;
        assert!(users.as_array().unwrap().contains(&json!("root")));
        if !nix::unistd::Uid::effective().is_root() || which("useradd").is_none() {
            eprintln!("skipped adding a user: needs root and useradd");
            return;
        }
        let name = crate::exec::host::tests_unique_name("u");
        struct Cleanup(String);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                let _ = std::process::Command::new("userdel").args(["-r", &self.0]).output();
                let _ = std::process::Command::new("groupdel").arg(&self.0).output();
            }
        }
        let _cleanup = Cleanup(name.clone());
        let kw: Map =
            serde_json::from_value(json!({"shell": "/bin/sh", "createhome": false, "fullname": "Brine Test"})).unwrap();
        assert_eq!(call("user.add", &ctx, vec![json!(name)], kw).unwrap().ret, json!(true));
        let got = call("user.info", &ctx, vec![json!(name)], Map::new()).unwrap().ret;
        assert_eq!((got["shell"].clone(), got["fullname"].clone()), (json!("/bin/sh"), json!("Brine Test")));
        let args = vec![json!(name), json!("/bin/bash")];
        assert_eq!(call("user.chshell", &ctx, args, Map::new()).unwrap().ret, json!(true));
        let got = call("user.info", &ctx, vec![json!(name)], Map::new()).unwrap().ret;
        assert_eq!(got["shell"], json!("/bin/bash"));
        let err = call("user.add", &ctx, vec![json!(name)], Map::new()).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(call("user.delete", &ctx, vec![json!(name)], Map::new()).unwrap().ret, json!(true));
        assert_eq!(call("user.info", &ctx, vec![json!(name)], Map::new()).unwrap().ret, json!({}));
    }
}
