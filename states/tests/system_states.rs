//! The system state modules (`host`, `sysctl`, `user`, `group`, `cron`, `service`,
//! `pkg`) on this real host, through `state.single` as a job runs them: apply, apply
//! again (no changes), break the host, apply (changes back), with test mode predicting.
//!
//! Each test touches only what it owns — a temporary hosts or sysctl file, accounts
//! named `brine-test-*` removed on drop — and skips (saying why) what is not safe
//! here: accounts and crontabs need root, kernel parameters a writable `/proc/sys`,
//! and services are never started or stopped on a host where systemd runs. Packages
//! are only looked at, never installed or removed. The fixture tests next to each
//! module cover the rest without root.

use brine_proto::{Map, Value};
use brine_states::exec::{call, Context};
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// Runs one state function and returns its result (`result`, `changes`, `comment`…).
fn single(fun: &str, name: &str, args: Value, test: bool) -> Value {
    let mut kw: Map = args.as_object().cloned().unwrap_or_default();
    kw.insert("test".into(), json!(test));
    kw.insert("queue".into(), json!(true));
    let out = call("state.single", &Context::default(), vec![json!(fun), json!(name)], kw)
        .unwrap_or_else(|e| panic!("state.single {fun} {name}: {e}"));
    let results = out.ret.as_object().cloned().unwrap_or_default();
    assert_eq!(results.len(), 1, "one state ran: {}", out.ret);
    results.into_iter().next().map(|(_, v)| v).unwrap_or_default()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn have(program: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {program}")]).output().is_ok_and(|o| o.status.success())
}

fn sh(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).output().is_ok_and(|o| o.status.success())
}

/// A name no account or group on this host has.
fn unique(kind: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("brine-test-{kind}{}-{}", std::process::id(), nanos % 100_000)
}

/// Removes test accounts however the test ends.
struct Accounts {
    users: Vec<String>,
    groups: Vec<String>,
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for u in &self.users {
            let _ = Command::new("crontab").args(["-u", u, "-r"]).output();
            let _ = Command::new("userdel").args(["-r", u]).output();
        }
        for g in &self.groups {
            let _ = Command::new("groupdel").arg(g).output();
        }
    }
}

fn changes(r: &Value) -> &Map {
    r["changes"].as_object().expect("changes is a map")
}

#[test]
fn hosts_file_converges() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts");
    std::fs::write(&file, "127.0.0.1\tlocalhost\n\n# office\n10.1.0.9  printer\n").unwrap();
    let args = json!({"ip": ["10.1.0.5", "10.1.0.9"], "comment": "app", "hosts_file": file});

    let r = single("host.present", "app.internal", args.clone(), true);
    assert_eq!(r["result"], Value::Null, "{r}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "127.0.0.1\tlocalhost\n\n# office\n10.1.0.9  printer\n");

    let r = single("host.present", "app.internal", args.clone(), false);
    assert_eq!(r["result"], json!(true), "{r}");
    assert_eq!(
        r["changes"],
        json!({"added": {"10.1.0.5": ["app.internal"], "10.1.0.9": ["app.internal"]},
               "comment_added": {"10.1.0.5": ["app"], "10.1.0.9": ["app"]}})
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "127.0.0.1\tlocalhost\n\n# office\n10.1.0.9\t\tprinter app.internal\t\t# app\n10.1.0.5\t\tapp.internal\t\t# app\n"
    );

    let r = single("host.present", "app.internal", args.clone(), false);
    assert!(changes(&r).is_empty(), "{r}");
    // In file order, as Salt reports them.
    assert_eq!(
        r["comment"],
        "Host app.internal (10.1.0.9) already present\nHost app.internal (10.1.0.5) already present"
    );

    // Someone edits the file by hand. (Salt sets the comment of an address it adds the
    // name to even when the comment is already there, and says so.)
    std::fs::write(&file, "127.0.0.1\tlocalhost\n10.1.0.9\t\tprinter\t\t# app\n").unwrap();
    let r = single("host.present", "app.internal", args.clone(), false);
    assert_eq!(
        r["changes"],
        json!({"added": {"10.1.0.5": ["app.internal"], "10.1.0.9": ["app.internal"]},
                                    "comment_added": {"10.1.0.5": ["app"], "10.1.0.9": ["app"]}})
    );
    assert!(changes(&single("host.present", "app.internal", args.clone(), false)).is_empty());

    let gone = json!({"ip": ["10.1.0.5", "10.1.0.9"], "hosts_file": file});
    let r = single("host.absent", "app.internal", gone.clone(), false);
    assert_eq!(r["changes"], json!({"host": "app.internal"}));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "127.0.0.1\tlocalhost\n10.1.0.9\t\tprinter\t\t# app\n");
    let r = single("host.absent", "app.internal", gone, false);
    assert!(changes(&r).is_empty() && r["result"] == json!(true), "{r}");
}

#[test]
fn unknown_arguments_fail_the_state_like_salt() {
    let r = single("host.present", "x", json!({"ip": "10.0.0.1", "ipp": "10.0.0.2"}), true);
    assert_eq!(r["result"], json!(false));
    assert!(r["comment"].as_str().unwrap_or_default().contains("unknown field `ipp`"), "{r}");
}

#[test]
fn sysctl_persists_the_running_value() {
    let knob = "/proc/sys/vm/swappiness";
    let writable = std::fs::OpenOptions::new().write(true).open(knob).is_ok();
    if !is_root() || !writable || !have("sysctl") {
        eprintln!("skipped: needs root, sysctl and a writable {knob}");
        return;
    }
    // The value the kernel already has: setting it again changes nothing on the host.
    let now = std::fs::read_to_string(knob).unwrap().trim().to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sysctl.d/99-brine-test.conf");
    let args = json!({"value": now.parse::<i64>().unwrap(), "config": config});

    let r = single("sysctl.present", "vm.swappiness", args.clone(), true);
    assert_eq!(r["result"], Value::Null, "{r}");
    assert!(r["comment"].as_str().unwrap().starts_with("Sysctl value is currently set on the running system"), "{r}");
    assert!(!config.exists(), "test mode writes nothing");

    let r = single("sysctl.present", "vm.swappiness", args.clone(), false);
    assert_eq!(r["comment"], format!("Updated sysctl value vm.swappiness = {now}"), "{r}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        format!("#\n# Kernel sysctl configuration\n#\nvm.swappiness = {now}\n")
    );

    let r = single("sysctl.present", "vm.swappiness", args.clone(), false);
    assert!(changes(&r).is_empty(), "{r}");
    assert_eq!(r["comment"], format!("Sysctl value vm.swappiness = {now} is already set"));
    assert_eq!(single("sysctl.present", "vm.swappiness", args.clone(), true)["result"], json!(true));

    // The file drifts; the state puts it back.
    std::fs::write(&config, "vm.swappiness = 1\n").unwrap();
    let r = single("sysctl.present", "vm.swappiness", args.clone(), true);
    assert_eq!(r["result"], Value::Null, "a file that differs is a change: {r}");
    let r = single("sysctl.present", "vm.swappiness", args, false);
    assert_eq!(r["result"], json!(true), "{r}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), format!("vm.swappiness = {now}\n"));
    assert_eq!(std::fs::read_to_string(knob).unwrap().trim(), now);
}

#[test]
fn users_and_groups_converge() {
    if !is_root() || !have("useradd") || !have("gpasswd") {
        eprintln!("skipped: needs root, useradd and gpasswd");
        return;
    }
    let (user, group) = (unique("u"), unique("g"));
    let _cleanup = Accounts { users: vec![user.clone()], groups: vec![group.clone(), user.clone()] };

    let r = single("group.present", &group, json!({}), true);
    assert_eq!(
        (r["result"].clone(), r["comment"].clone()),
        (Value::Null, json!(format!("Group {group} set to be added")))
    );
    let r = single("group.present", &group, json!({}), false);
    assert_eq!(r["comment"], format!("New group {group} created"), "{r}");
    assert_eq!(r["changes"]["name"], json!(group));
    let r = single("group.present", &group, json!({}), false);
    assert_eq!(r["comment"], format!("Group {group} is present and up to date"));

    // A hash for the password "brine" (mkpasswd -m sha-512 -S brinesalt brine).
    let hash = "$6$brinesalt$0b6W6xL5eZ5eFAHvKxCAPc8kq5f9yU0Pa8XzGIz3fGGF6AAwDzdsdmgs8oPFsn.B.IF4hfiRl2ZVdqRQuvkPd/";
    let args = json!({"shell": "/bin/sh", "groups": [group], "fullname": "Brine Test", "password": hash});
    let r = single("user.present", &user, args.clone(), true);
    assert_eq!(r["comment"], format!("User {user} set to be added"));
    let r = single("user.present", &user, args.clone(), false);
    assert_eq!(r["result"], json!(true), "{r}");
    assert_eq!(r["comment"], format!("New user {user} created"));
    assert_eq!(r["changes"]["shell"], "/bin/sh");
    assert_eq!(r["changes"]["fullname"], "Brine Test");
    assert_eq!(r["changes"]["password"], "XXX-REDACTED-XXX");
    assert!(r["changes"]["groups"].as_array().unwrap().contains(&json!(group)), "{r}");

    let r = single("user.present", &user, args.clone(), false);
    assert!(changes(&r).is_empty(), "{r}");
    assert_eq!(r["comment"], format!("User {user} is present and up to date"));

    // Someone changes the account by hand.
    assert!(sh("usermod", &["-s", "/bin/bash", "-c", "Someone", &user]));
    assert!(sh("gpasswd", &["-d", &user, &group]));
    let r = single("user.present", &user, args.clone(), true);
    assert_eq!(r["result"], Value::Null);
    assert_eq!(
        r["comment"],
        format!("The following user attributes are set to be changed:\ngroups: ['{group}']\nshell: /bin/sh\nfullname: Brine Test\n")
    );
    let r = single("user.present", &user, args.clone(), false);
    assert_eq!(r["comment"], format!("Updated user {user}"), "{r}");
    assert_eq!(r["changes"]["shell"], "/bin/sh");
    assert_eq!(r["changes"]["fullname"], "Brine Test");
    assert!(changes(&single("user.present", &user, args.clone(), false)).is_empty());

    // An id change needs permission.
    let r = single("user.present", &user, json!({"uid": 4242}), false);
    assert_eq!(r["result"], json!(false));
    assert!(r["comment"].as_str().unwrap().contains("not permitted, set allow_uid_change to True"), "{r}");

    // Emptying the group takes the user out; the account state then puts it back.
    let r = single("group.present", &group, json!({"members": []}), false);
    assert_eq!(r["changes"], json!({"Final": "All changes applied successfully"}), "{r}");
    let r = single("group.present", &group, json!({"addusers": [user]}), false);
    assert_eq!(r["changes"], json!({"Final": "All changes applied successfully"}), "{r}");
    assert_eq!(single("group.present", &group, json!({"addusers": [user]}), false)["changes"], json!({}));

    let r = single("user.absent", &user, json!({"purge": true}), true);
    assert_eq!(r["comment"], format!("User {user} set for removal"));
    let r = single("user.absent", &user, json!({"purge": true}), false);
    assert_eq!(r["comment"], format!("Removed user {user}"), "{r}");
    assert_eq!(r["changes"][&user], "removed");
    assert_eq!(single("user.absent", &user, json!({}), false)["comment"], format!("User {user} is not present"));

    let r = single("group.absent", &group, json!({}), false);
    assert_eq!(r["changes"], json!({group.clone(): ""}));
    assert_eq!(single("group.absent", &group, json!({}), false)["comment"], "Group not present");
}

#[test]
fn cron_jobs_converge_for_a_test_user() {
    if !is_root() || !have("crontab") || !have("useradd") {
        eprintln!("skipped: needs root, crontab and useradd");
        return;
    }
    let user = unique("c");
    let _cleanup = Accounts { users: vec![user.clone()], groups: vec![user.clone()] };
    assert!(sh("useradd", &["-M", &user]));
    let job = "/bin/echo brine";
    let args = json!({"user": user, "minute": 5, "hour": 3, "identifier": "brine-job", "comment": "a test"});

    let r = single("cron.present", job, args.clone(), true);
    assert_eq!(r["comment"], format!("Cron {job} is set to be added"));
    let r = single("cron.present", job, args.clone(), false);
    assert_eq!(r["changes"], json!({user.clone(): job}), "{r}");
    let tab = call("cron.raw_cron", &Context::default(), vec![json!(user)], Map::new()).unwrap().ret;
    assert!(
        tab.as_str().unwrap().ends_with(
            "# Lines below here are managed by Salt, do not edit\n# a test SALT_CRON_IDENTIFIER:brine-job\n5 3 * * * /bin/echo brine\n"
        ),
        "{tab}"
    );
    let r = single("cron.present", job, args.clone(), false);
    assert_eq!(r["comment"], format!("Cron {job} already present"));

    let moved = json!({"user": user, "minute": 10, "hour": 3, "identifier": "brine-job", "comment": "a test"});
    assert_eq!(single("cron.present", job, moved.clone(), true)["comment"], format!("Cron {job} is set to be updated"));
    assert_eq!(single("cron.present", job, moved, false)["comment"], format!("Cron {job} updated"));

    let gone = json!({"user": user, "identifier": "brine-job"});
    let r = single("cron.absent", job, gone.clone(), false);
    assert_eq!(r["comment"], format!("Cron {job} removed from {user}'s crontab"), "{r}");
    assert_eq!(single("cron.absent", job, gone, false)["comment"], format!("Cron {job} already absent"));
}

#[test]
fn services_do_nothing_where_systemd_is_not_init() {
    if Path::new("/run/systemd/system").is_dir() || !have("systemctl") {
        eprintln!("skipped: systemd runs here (services are never started or stopped by tests), or is missing");
        return;
    }
    let r = single("service.running", "brine-test-nonexistent", json!({"enable": true}), false);
    assert_eq!(
        (r["result"].clone(), r["comment"].clone()),
        (json!(true), json!("Running in OFFLINE mode. Nothing to do"))
    );
    let r = single("service.dead", "brine-test-nonexistent", json!({}), true);
    assert_eq!(r["comment"], "Running in OFFLINE mode. Nothing to do");
    // Offline, a unit that has no file is not there to enable.
    let r = single("service.enabled", "brine-test-nonexistent", json!({}), false);
    assert_eq!(
        (r["result"].clone(), r["comment"].clone()),
        (json!(false), json!("The named service brine-test-nonexistent is not available"))
    );
    let r = single("service.disabled", "brine-test-nonexistent", json!({}), false);
    assert_eq!(
        (r["result"].clone(), r["comment"].clone()),
        (json!(true), json!("The named service brine-test-nonexistent is not available"))
    );
}

#[test]
fn packages_are_looked_at_but_never_changed() {
    if !have("dpkg-query") {
        eprintln!("skipped: no dpkg-query (the read-only checks use apt's database)");
        return;
    }
    let r = single("pkg.installed", "dpkg", json!({}), true);
    assert_eq!(
        (r["result"].clone(), r["comment"].clone()),
        (json!(true), json!("All specified packages are already installed"))
    );
    let r = single("pkg.installed", "x", json!({"pkgs": ["dpkg", "coreutils"]}), false);
    assert_eq!(r["comment"], "All specified packages are already installed");
    // Nothing to remove: nothing runs but the package listing.
    let r = single("pkg.removed", "brine-test-nonexistent", json!({}), false);
    assert_eq!(r["comment"], "All specified packages are already absent");
    let r = single("pkg.purged", "brine-test-nonexistent", json!({}), false);
    assert_eq!(r["comment"], "None of the targeted packages are installed or partially installed");
    let r = single("pkg.installed", "dpkg", json!({"version": ">=1.0"}), true);
    assert_eq!(r["result"], json!(false), "{r}");
}
