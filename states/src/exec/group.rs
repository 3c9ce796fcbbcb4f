//! `group.*`: add, delete and look up local groups (`groupadd`, `groupdel`, and the
//! group database).
//!
//! Lookups go through NSS (`getent group`) like Salt's use of Python's `grp`, so
//! LDAP or SSSD groups show too; with `root=DIR` they read `DIR/etc/group` instead,
//! for images and chroots. Returns follow Salt's `groupadd` module:
//! `{name, passwd, gid, members}`, `{}` for a group that does not exist. Where Salt
//! returns False because `groupadd`/`groupdel` failed, brine fails the call with the
//! tool's message (`groupadd: group 'web' already exists`).

use super::host::{which, CommandLine, Host, Runner, Word};
use super::{opt, req, CallError, Context, Function, Output, Param};
use brine_proto::Value;
use serde::Deserialize;
use serde_json::json;
use std::path::Path;

/// One line of the group database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GroupEntry {
    pub name: String,
    pub passwd: String,
    pub gid: u32,
    pub members: Vec<String>,
}

impl GroupEntry {
    /// Salt's shape: `{name, passwd, gid, members}`.
    fn to_value(&self) -> Value {
        json!({"name": self.name, "passwd": self.passwd, "gid": self.gid, "members": self.members})
    }
}

/// Parses `/etc/group` (or `getent group`) lines: `name:passwd:gid:member,member`.
/// Comments, NIS `+`/`-` lines and malformed lines are skipped.
pub(super) fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with(['#', '+', '-']))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let [name, passwd, gid, members] = f[..] else { return None };
            Some(GroupEntry {
                name: name.to_string(),
                passwd: passwd.to_string(),
                gid: gid.trim().parse().ok()?,
                members: members.split(',').map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect(),
            })
        })
        .collect()
}

/// Reads an account database: `getent DB [KEY]` on the live host (NSS), or
/// `ROOT/etc/DB` under a root directory (also when `getent` is missing). A key
/// `getent` does not know gives no lines.
pub(super) fn account_db(r: &dyn Runner, db: &str, key: Option<&str>, root: Option<&str>) -> Result<String, CallError> {
    let file = |dir: &Path| {
        let path = dir.join("etc").join(db);
        std::fs::read_to_string(&path).map_err(|e| CallError::failed(format!("cannot read {}: {e}", path.display())))
    };
    if let Some(root) = root {
        return file(Path::new(root));
    }
    if which("getent").is_none() {
        return file(Path::new("/"));
    }
    let cmd = CommandLine::new("getent").arg(db).args(key);
    let ran = r.run(&cmd)?;
    match ran.retcode {
        // 2: the key is not in the database.
        0 | 2 => Ok(ran.stdout),
        _ => Err(ran.failure(&cmd)),
    }
}

/// Every group, in database order.
pub(super) fn groups(r: &dyn Runner, root: Option<&str>) -> Result<Vec<GroupEntry>, CallError> {
    Ok(parse_group(&account_db(r, "group", None, root)?))
}

fn info(r: &dyn Runner, name: &str, root: Option<&str>) -> Result<Value, CallError> {
    let found = parse_group(&account_db(r, "group", Some(name), root)?).into_iter().find(|g| g.name == name);
    Ok(found.map(|g| g.to_value()).unwrap_or_else(|| json!({})))
}

/// `-R ROOT` for the shadow tools when a root is given.
fn root_args(root: Option<&str>) -> Vec<String> {
    root.map(|r| vec!["-R".to_string(), r.to_string()]).unwrap_or_default()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddArgs {
    name: Word,
    #[serde(default)]
    gid: Option<Word>,
    #[serde(default)]
    system: bool,
    #[serde(default)]
    root: Option<String>,
    #[serde(default)]
    non_unique: bool,
    /// libuser's `lgroupadd`, which brine does not drive.
    #[serde(default)]
    local: bool,
}

fn add_command(a: &AddArgs) -> CommandLine {
    let mut c = CommandLine::new("groupadd").args(root_args(a.root.as_deref()));
    if let Some(gid) = a.gid.as_ref().filter(|g| !g.as_str().is_empty()) {
        c = c.args(["-g", gid.as_str()]);
        if a.non_unique {
            c = c.arg("-o");
        }
    }
    if a.system {
        c = c.arg("-r");
    }
    c.arg(a.name.as_str())
}

fn add(r: &dyn Runner, a: &AddArgs) -> Result<Value, CallError> {
    if a.local {
        return Err(CallError::failed("local=True (libuser's lgroupadd) is not supported; leave it out"));
    }
    r.run_ok(&add_command(a))?;
    Ok(Value::Bool(true))
}

pub struct Add;
impl Function for Add {
    const NAME: &'static str = "group.add";
    const DOC: &'static str = "Creates a group and returns True; fails with groupadd's message.\n\n\
        gid: the group id. system: create a system group. non_unique: allow a duplicate gid. root: \
        create it in the files under that directory.\n\n\
        CLI example: brine run '*' group.add web 3456";
    const PARAMS: &'static [Param] =
        &[req("name"), opt("gid"), opt("system"), opt("root"), opt("non_unique"), opt("local")];
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
    root: Option<String>,
    #[serde(default)]
    local: bool,
}

fn delete(r: &dyn Runner, a: &DeleteArgs) -> Result<Value, CallError> {
    if a.local {
        return Err(CallError::failed("local=True (libuser's lgroupdel) is not supported; leave it out"));
    }
    r.run_ok(&CommandLine::new("groupdel").args(root_args(a.root.as_deref())).arg(a.name.as_str()))?;
    Ok(Value::Bool(true))
}

pub struct Delete;
impl Function for Delete {
    const NAME: &'static str = "group.delete";
    const DOC: &'static str = "Deletes a group and returns True; fails with groupdel's message.\n\n\
        root: delete it from the files under that directory.\n\n\
        CLI example: brine run '*' group.delete web";
    const PARAMS: &'static [Param] = &[req("name"), opt("root"), opt("local")];
    type Args = DeleteArgs;
    fn call(&self, ctx: &Context, a: DeleteArgs) -> Result<Output, CallError> {
        Ok(Output::ok(delete(&Host::new(ctx), &a)?))
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
    const NAME: &'static str = "group.info";
    const DOC: &'static str = "Returns a group as {name, passwd, gid, members}, or {} if there is no \
        such group.\n\n\
        root: read the group file under that directory.\n\n\
        CLI example: brine run '*' group.info root";
    const PARAMS: &'static [Param] = &[req("name"), opt("root")];
    type Args = InfoArgs;
    fn call(&self, ctx: &Context, a: InfoArgs) -> Result<Output, CallError> {
        Ok(Output::ok(info(&Host::new(ctx), a.name.as_str(), a.root.as_deref())?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetentArgs {
    /// Salt caches the list per run; brine always reads it fresh.
    #[serde(default)]
    #[allow(dead_code)]
    refresh: bool,
    #[serde(default)]
    root: Option<String>,
}

pub struct Getent;
impl Function for Getent {
    const NAME: &'static str = "group.getent";
    const DOC: &'static str = "Returns every group as a list of {name, passwd, gid, members}, in \
        database order.\n\n\
        refresh: accepted for Salt compatibility (brine never caches). root: read the group file \
        under that directory.\n\n\
        CLI example: brine run '*' group.getent";
    const PARAMS: &'static [Param] = &[opt("refresh"), opt("root")];
    type Args = GetentArgs;
    fn call(&self, ctx: &Context, a: GetentArgs) -> Result<Output, CallError> {
        let all = groups(&Host::new(ctx), a.root.as_deref())?;
        Ok(Output::ok(Value::Array(all.iter().map(GroupEntry::to_value).collect())))
    }
}

/// The `group` execution module.
pub static MODULE: super::Module = super::Module {
    name: "group",
    doc: "Add, delete and look up groups.",
    functions: &[&Add, &Delete, &Getent, &Info],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::host::script::Script;
    use crate::exec::{call, Context};
    use brine_proto::Map;

    const GROUP: &str = "\
root:x:0:
adm:x:4:syslog,alice
# a comment
+nisgroup
broken:x:notanumber:
web:!:3456:alice, bob
";

    fn args<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn root_with_group() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/group"), GROUP).unwrap();
        dir
    }

    #[test]
    fn group_files_parse_into_salts_shape() {
        let all = parse_group(GROUP);
        assert_eq!(all.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["root", "adm", "web"]);
        assert_eq!(all[2].to_value(), json!({"name": "web", "passwd": "!", "gid": 3456, "members": ["alice", "bob"]}));
        assert_eq!(all[0].to_value(), json!({"name": "root", "passwd": "x", "gid": 0, "members": []}));
    }

    #[test]
    fn info_and_getent_read_a_root_directory() {
        let dir = root_with_group();
        let root = dir.path().to_str().unwrap();
        let ctx = Context::default();
        let kw = |v: Value| -> Map { serde_json::from_value(v).unwrap() };
        let got = call("group.info", &ctx, vec![json!("adm")], kw(json!({"root": root}))).unwrap().ret;
        assert_eq!(got, json!({"name": "adm", "passwd": "x", "gid": 4, "members": ["syslog", "alice"]}));
        let got = call("group.info", &ctx, vec![json!("nosuch")], kw(json!({"root": root}))).unwrap().ret;
        assert_eq!(got, json!({}));
        let got = call("group.getent", &ctx, vec![], kw(json!({"root": root}))).unwrap().ret;
        assert_eq!(got.as_array().map(Vec::len), Some(3));
        let err = call("group.info", &ctx, vec![json!("x")], kw(json!({"root": "/nonexistent"}))).unwrap_err();
        assert_eq!(err.to_string(), "cannot read /nonexistent/etc/group: No such file or directory (os error 2)");
    }

    #[test]
    fn add_and_delete_build_groupadd_and_groupdel_lines() {
        let a: AddArgs = args(json!({"name": "web", "gid": 3456, "system": true, "non_unique": true, "root": "/img"}));
        assert_eq!(add_command(&a).to_string(), "groupadd -R /img -g 3456 -o -r web");
        let script = Script::new()
            .ok("groupadd web", "")
            .fails("groupadd root", 9, "groupadd: group 'root' already exists\n")
            .ok("groupdel web", "");
        assert_eq!(add(&script, &args(json!({"name": "web"}))).unwrap(), json!(true));
        let err = add(&script, &args(json!({"name": "root"}))).unwrap_err().to_string();
        assert_eq!(err, "Command 'groupadd root' failed with exit code 9: groupadd: group 'root' already exists");
        assert_eq!(delete(&script, &args(json!({"name": "web"}))).unwrap(), json!(true));
        script.done();
        assert!(add(&script, &args(json!({"name": "web", "local": true}))).is_err());
    }

    /// Against the host's real group database, with a unique temporary group.
    #[test]
    fn real_groups_can_be_added_looked_up_and_deleted() {
        let ctx = Context::default();
        let root = call("group.info", &ctx, vec![json!("root")], Map::new()).unwrap().ret;
        assert_eq!(root["gid"], json!(0));
        assert_eq!(call("group.info", &ctx, vec![json!("brine-no-such-group")], Map::new()).unwrap().ret, json!({}));
        if !nix::unistd::Uid::effective().is_root() || which("groupadd").is_none() {
            eprintln!("skipped adding a group: needs root and groupadd");
            return;
        }
        let name = super::super::host::tests_unique_name("g");
        struct Cleanup(String);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                let _ = std::process::Command::new("groupdel").arg(&self.0).output();
            }
        }
        let _cleanup = Cleanup(name.clone());
        assert_eq!(call("group.add", &ctx, vec![json!(name)], Map::new()).unwrap().ret, json!(true));
        let got = call("group.info", &ctx, vec![json!(name)], Map::new()).unwrap().ret;
        assert_eq!(got["name"], json!(name));
        assert_eq!(got["members"], json!([]));
        let all = call("group.getent", &ctx, vec![], Map::new()).unwrap().ret;
        assert!(all.as_array().unwrap().iter().any(|g| g["name"] == json!(name)));
        let err = call("group.add", &ctx, vec![json!(name)], Map::new()).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(call("group.delete", &ctx, vec![json!(name)], Map::new()).unwrap().ret, json!(true));
        assert_eq!(call("group.info", &ctx, vec![json!(name)], Map::new()).unwrap().ret, json!({}));
    }
}
