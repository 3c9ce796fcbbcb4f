//! Beacons and the audit trail, end to end: beacon events from a real minion reach
//! the master's verified event bus with Salt's tags and data; beacons.* changes made
//! with `brine run` survive a minion restart; an operator's job and a command typed
//! in a real interactive bash (through the installed hook and the audit beacon) both
//! appear in `brine audit`, and keyword rules raise `brine/audit/alert`.
//!
//! systemd does not run in the test containers: the service beacon's tests put a
//! stand-in `systemctl` first on PATH (everything after it is the real path), and its
//! decision logic is also tested with a status source the test controls
//! (minion/src/beacons/service.rs).

use brine_master::events::BusEvent;
use brine_tests::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::Receiver;

async fn accepted(master: &TestMaster, id: &str, tables: &str) -> TestMinion {
    let opts = MinionOpts { tables: tables.to_string(), ..Default::default() };
    let minion = TestMinion::start(&master.url(), id, opts).await;
    master.wait_key(id, "Unaccepted Keys:").await;
    master.accept(&minion).await;
    minion
}

/// Waits for the first bus event that `want` accepts.
async fn next_event(bus: &mut Receiver<Arc<BusEvent>>, secs: u64, want: impl Fn(&BusEvent) -> bool) -> Arc<BusEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, bus.recv()).await {
            Ok(Ok(ev)) if want(&ev) => return ev,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            other => panic!("no matching event within {secs}s: {other:?}"),
        }
    }
}

/// Every event that arrives within `secs`.
async fn events_for(bus: &mut Receiver<Arc<BusEvent>>, secs: f64) -> Vec<Arc<BusEvent>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    let mut out = Vec::new();
    while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, bus.recv()).await {
        out.push(ev);
    }
    out
}

fn json_of(out: &CliOutput) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{out:?}: {e}"))
}

/// A copy of `sleep` under a name no other process has, so the ps beacon watches
/// exactly the process this test starts and stops.
fn unique_sleep(dir: &Path) -> (std::path::PathBuf, String) {
    let name = format!("bslp{}", std::process::id() % 100_000);
    let sleep = ["/bin/sleep", "/usr/bin/sleep"].into_iter().find(|p| Path::new(p).exists()).expect("sleep");
    let path = dir.join(&name);
    std::fs::copy(sleep, &path).unwrap();
    (path, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inotify_ps_and_diskusage_beacons_fire_salt_shaped_events() {
    let tmp = tempfile::tempdir().unwrap();
    let watched = tmp.path().join("watched");
    std::fs::create_dir(&watched).unwrap();
    let (sleep, proc_name) = unique_sleep(tmp.path());
    let master = TestMaster::start(MasterOpts::default()).await;
    let mut bus = master.master().shared().subscribe();
    let tables = format!(
        "[beacons.inotify]\ninterval = 0.2\nfiles = {{ {w:?} = {{ mask = [\"create\", \"modify\"] }} }}\n\
         [beacons.ps]\ninterval = 0.3\nprocesses = {{ {proc_name} = \"running\" }}\n\
         [beacons.diskusage]\ninterval = 1\n\"/\" = \"0%\"\n\
         [beacons.nodisk]\nbeacon_module = \"diskusage\"\ninterval = 1\n\"/\" = \"100.1%\"\n",
        w = watched.display().to_string()
    );
    let _minion = accepted(&master, "m1", &tables).await;

    // inotify: a new file, tagged with the watched path, Salt's {path, change}.
    std::fs::write(watched.join("new.conf"), "x").unwrap();
    let ev = next_event(&mut bus, 15, |e| e.tag.starts_with("brine/beacon/m1/inotify")).await;
    let watched_tag = watched.to_string_lossy().trim_start_matches('/').to_string();
    assert_eq!(ev.tag, format!("brine/beacon/m1/inotify/{watched_tag}"));
    assert_eq!(ev.source, "m1", "signed by the minion");
    assert_eq!(ev.data, json!({"path": watched.join("new.conf").to_string_lossy(), "change": "IN_CREATE", "id": "m1"}));

    // diskusage: "/" is at least 0 % used; nothing is above 100.1 %.
    let ev = next_event(&mut bus, 15, |e| e.tag.starts_with("brine/beacon/m1/diskusage")).await;
    assert_eq!(ev.tag, "brine/beacon/m1/diskusage");
    assert_eq!(ev.data["mount"], "/");
    assert!(ev.data["diskusage"].as_f64().is_some_and(|p| (0.0..=100.0).contains(&p)), "{}", ev.data);

    // ps: nothing while the process does not run, {name: "Running"} while it does.
    let before = events_for(&mut bus, 1.0).await;
    assert!(!before.iter().any(|e| e.tag == "brine/beacon/m1/ps"), "{before:?}");
    let mut child = Command::new(&sleep).arg("60").stdout(Stdio::null()).spawn().unwrap();
    let ev = next_event(&mut bus, 15, |e| e.tag == "brine/beacon/m1/ps").await;
    assert_eq!(ev.data, json!({ proc_name.clone(): "Running", "id": "m1" }));
    let _ = child.kill();
    let _ = child.wait();
    // Once it is gone (and what was queued has drained), the beacon is quiet again.
    let _ = events_for(&mut bus, 1.0).await;
    let after = events_for(&mut bus, 1.5).await;
    assert!(!after.iter().any(|e| e.tag == "brine/beacon/m1/ps"), "{after:?}");
    assert!(!after.iter().chain(&before).any(|e| e.tag.contains("nodisk")), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beacons_changed_with_brine_run_are_kept_across_a_minion_restart() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let mut bus = master.master().shared().subscribe();
    let mut minion = accepted(&master, "m1", "").await;
    let run = |args: &'static [&'static str]| {
        let master = &master;
        async move {
            let mut argv = vec!["run", "m1"];
            argv.extend_from_slice(args);
            argv.extend_from_slice(&["--out", "json"]);
            let out = master.cli(&argv).await;
            assert_eq!(out.code, 0, "{out:?}");
            json_of(&out)["m1"].clone()
        }
    };
    assert_eq!(run(&["beacons.list"]).await, json!("beacons: {}\n"));
    assert_eq!(run(&["beacons.list_available", "return_yaml=False"]).await.as_array().unwrap().len(), 9);
    let added = run(&["beacons.add", "mem", "[{beacon_module: memusage}, {percent: '0%'}, {interval: 1}]"]).await;
    assert_eq!(added, json!({"comment": "Added beacon: mem.", "result": true}));
    let bad = run(&["beacons.add", "ps", "[{processes: {x: sometimes}}]"]).await;
    assert_eq!(bad["result"], false);
    assert!(bad["comment"].as_str().unwrap().starts_with("Beacon ps configuration invalid, not adding."), "{bad}");
    let ev = next_event(&mut bus, 15, |e| e.tag == "brine/beacon/m1/mem").await;
    assert!(ev.data["memusage"].as_f64().is_some(), "{}", ev.data);
    let listed = json!({"mem": [{"beacon_module": "memusage"}, {"percent": "0%"}, {"interval": 1}]});
    assert_eq!(run(&["beacons.list", "return_yaml=False"]).await, listed);

    // A restart keeps the beacon added at run time, and it fires again.
    minion.stop().await;
    let opts = MinionOpts::default();
    let minion2 = TestMinion::start_in(&minion.dir, &master.url(), "m1", &opts).await;
    assert!(minion2.minion().wait_connected(Duration::from_secs(20)).await);
    assert_eq!(run(&["beacons.list", "return_yaml=False"]).await, listed);
    let _ = events_for(&mut bus, 0.1).await;
    next_event(&mut bus, 15, |e| e.tag == "brine/beacon/m1/mem").await;

    // Disabled, it is listed as such and stays quiet; deleted, it is gone for good.
    assert_eq!(
        run(&["beacons.disable_beacon", "mem"]).await,
        json!({"comment": "Disabled beacon mem on minion.", "result": true})
    );
    let _ = events_for(&mut bus, 1.2).await;
    let quiet = events_for(&mut bus, 1.5).await;
    assert!(!quiet.iter().any(|e| e.tag == "brine/beacon/m1/mem"), "{quiet:?}");
    assert_eq!(run(&["beacons.delete", "mem"]).await, json!({"comment": "Deleted beacon: mem.", "result": true}));
    let mut minion2 = minion2;
    minion2.stop().await;
    let minion3 = TestMinion::start_in(&minion.dir, &master.url(), "m1", &opts).await;
    assert!(minion3.minion().wait_connected(Duration::from_secs(20)).await);
    assert_eq!(run(&["beacons.list"]).await, json!("beacons: {}\n"));
    drop(minion3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_jobs_and_commands_typed_in_a_shell_are_in_brine_audit_and_keywords_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("spool");
    let hook = tmp.path().join("profile.d/brine-audit.sh");
    let opts = MasterOpts { extra: "[audit]\nalert = [\"mkfs\", \"iptables -F\"]\n".into(), ..Default::default() };
    let master = TestMaster::start(opts).await;
    let mut bus = master.master().shared().subscribe();
    let tables = format!("[beacons.audit]\ninterval = 0.2\nspool_dir = {:?}\n", spool.display().to_string());
    let _minion = accepted(&master, "m1", &tables).await;

    // The hook, installed by the minion like any job.
    let (hook_arg, spool_arg) = (format!("path={}", hook.display()), format!("spool_dir={}", spool.display()));
    let out = master.cli(&["run", "m1", "audit.install_hook", &hook_arg, &spool_arg, "--out", "json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(json_of(&out)["m1"]["result"], true, "{out:?}");

    // An operator's job whose command sets off a rule (echo: nothing is formatted).
    let out = master.cli(&["run", "m1", "cmd.run", "echo mkfs", "--out", "json"]).await;
    assert_eq!(json_of(&out)["m1"], "mkfs");
    let alert = next_event(&mut bus, 10, |e| e.tag == "brine/audit/alert").await;
    assert_eq!(alert.source, "master");
    assert_eq!(
        (alert.data["source"].as_str(), alert.data["rule"].as_str(), alert.data["operator"].as_str()),
        (Some("operator"), Some("mkfs"), Some("admin"))
    );
    assert_eq!(alert.data["arg"], json!(["echo mkfs"]));

    // Commands typed in a real interactive bash with the hook loaded.
    let mut bash = Command::new("bash")
        .args(["--norc", "--noprofile", "-i"])
        .env("HOME", tmp.path())
        .env("HISTFILE", tmp.path().join("history"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bash");
    let typed = format!("source {}\ncd /\necho 'iptables -F'\nexit\n", hook.display());
    std::io::Write::write_all(bash.stdin.as_mut().unwrap(), typed.as_bytes()).unwrap();
    assert!(bash.wait().unwrap().success());
    let alert = next_event(&mut bus, 15, |e| e.tag == "brine/audit/alert").await;
    assert_eq!(
        (alert.data["source"].as_str(), alert.data["rule"].as_str(), alert.data["minion"].as_str()),
        (Some("shell"), Some("iptables -F"), Some("m1"))
    );
    assert_eq!(alert.data["command"], "echo 'iptables -F'");

    // Both are in brine audit, with who and where.
    let me = nix::unistd::User::from_uid(nix::unistd::getuid()).unwrap().unwrap().name;
    let audit = master.cli(&["audit", "--out", "json"]).await;
    assert_eq!(audit.code, 0, "{audit:?}");
    let lines = json_of(&audit);
    let lines = lines.as_array().unwrap();
    let job = lines.iter().find(|l| l["fun"] == "cmd.run").unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!((job["operator"].as_str(), job["arg"].clone()), (Some("admin"), json!(["echo mkfs"])));
    let typed: Vec<&Value> = lines.iter().filter(|l| l["op"] == "shell").collect();
    let commands: Vec<&str> = typed.iter().map(|l| l["command"].as_str().unwrap()).collect();
    assert_eq!(commands, ["cd /", "echo 'iptables -F'"]);
    assert_eq!((typed[1]["minion"].as_str(), typed[1]["user"].as_str()), (Some("m1"), Some(me.as_str())));
    assert_eq!(typed[1]["cwd"], "/");

    // The filters.
    let grep = json_of(&master.cli(&["audit", "--minion", "m1", "--grep", "IPTABLES", "--out", "json"]).await);
    assert_eq!(grep.as_array().unwrap().len(), 1, "{grep}");
    let by_minion = json_of(&master.cli(&["audit", "--minion", "m*", "--out", "json"]).await);
    assert!(by_minion.as_array().unwrap().iter().any(|l| l["fun"] == "cmd.run"), "jobs that targeted m1: {by_minion}");
    let nobody = master.cli(&["audit", "--user", "nobody-at-all", "--since", "1h"]).await;
    assert_eq!((nobody.code, nobody.stdout.as_str()), (0, ""));
    let text = master.cli(&["audit", "--grep", "iptables"]).await;
    assert!(text.stdout.starts_with("TIME") && text.stdout.contains("$ echo 'iptables -F'"), "{}", text.stdout);
    let bad = master.cli(&["audit", "--user", "["]).await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("glob"), "{bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_the_audit_trail_needs_the_jobs_right() {
    let keys = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for name in ["alice", "carol"] {
        let key = brine_proto::keys::generate_key();
        let private = keys.path().join(format!("{name}.pem"));
        brine_proto::keys::write_private_key(&private, &key).unwrap();
        brine_proto::keys::write_public_key(&keys.path().join(format!("{name}.pub")), &key.verifying_key()).unwrap();
        files.push(private.display().to_string());
    }
    let extra = format!(
        "[operators.alice]\nkey = {:?}\n\n[operators.carol]\nkey = {:?}\njobs = true\n",
        keys.path().join("alice.pub").display().to_string(),
        keys.path().join("carol.pub").display().to_string(),
    );
    let master = TestMaster::start(MasterOpts { extra, ..Default::default() }).await;
    let alice = master.cli(&["--operator", "alice", "--key", &files[0], "audit"]).await;
    assert_eq!(alice.code, 2, "{alice:?}");
    assert!(alice.stderr.contains("operator alice may not read the audit log"), "{alice:?}");
    let carol = master.cli(&["--operator", "carol", "--key", &files[1], "audit", "--out", "json"]).await;
    assert_eq!(carol.code, 0, "{carol:?}");
    let lines = json_of(&carol);
    let refused = lines.as_array().unwrap().iter().find(|l| l["operator"] == "alice").expect("alice's refusal");
    assert_eq!(refused["op"], "audit.query");
    assert!(refused["result"].as_str().unwrap().starts_with("refused: denied"), "{refused}");
}

/// The service beacon end to end: its state comes from `service.status`, which asks
/// `systemctl is-active`. systemd does not run in test containers, so a stand-in
/// `systemctl` first on PATH answers from a marker file the test creates and removes
/// (everything after it — the execution function, the beacon, the signed event, the
/// master's bus — is the real path). PATH is per process, so this runs only where
/// each test has its own process (cargo nextest); the decision logic is also tested
/// without systemctl in minion/src/beacons/service.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_beacon_reports_a_service_stopping_and_starting() {
    if std::env::var("NEXTEST_EXECUTION_MODE").as_deref() != Ok("process-per-test") {
        eprintln!("skipped: needs a process of its own to put a stand-in systemctl on PATH (cargo nextest)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let marker = tmp.path().join("running-brinetestd.service");
    let script = format!(
        "#!/bin/sh\n# stand-in: only `systemctl is-active UNIT`, from a marker file\n\
         [ \"$1\" = is-active ] || exit 3\n[ -e {:?}/running-\"$2\" ]\n",
        tmp.path().display().to_string()
    );
    std::fs::write(bin.join("systemctl"), script).unwrap();
    std::fs::set_permissions(bin.join("systemctl"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    std::env::set_var("PATH", path);
    std::fs::write(&marker, "").unwrap();

    let master = TestMaster::start(MasterOpts::default()).await;
    let mut bus = master.master().shared().subscribe();
    let tables = "[beacons.service]\ninterval = 0.3\nservices = { brinetestd = { onchangeonly = true } }\n";
    let _minion = accepted(&master, "m1", tables).await;
    let tag = "brine/beacon/m1/service/brinetestd";
    let ev = next_event(&mut bus, 15, |e| e.tag == tag).await;
    assert_eq!(ev.data, json!({"brinetestd": {"running": true}, "service_name": "brinetestd", "id": "m1"}));
    // onchangeonly: nothing more until it changes.
    assert!(!events_for(&mut bus, 1.0).await.iter().any(|e| e.tag == tag));
    std::fs::remove_file(&marker).unwrap();
    let ev = next_event(&mut bus, 15, |e| e.tag == tag).await;
    assert_eq!(ev.data["brinetestd"], json!({"running": false}));
    std::fs::write(&marker, "").unwrap();
    let ev = next_event(&mut bus, 15, |e| e.tag == tag).await;
    assert_eq!(ev.data["brinetestd"], json!({"running": true}));
}

/// The scenario: a service stops on a minion → its service beacon fires →
/// the master's reactor runs `service.restart` on that minion → the service runs
/// again and the beacon says so. The stand-in `systemctl` (see above) answers
/// `is-active` from a marker file and `restart` creates the marker and logs the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_is_restarted_by_a_reaction_to_its_beacon() {
    if std::env::var("NEXTEST_EXECUTION_MODE").as_deref() != Ok("process-per-test") {
        eprintln!("skipped: needs a process of its own to put a stand-in systemctl on PATH (cargo nextest)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().display().to_string();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\n# stand-in: `systemctl is-active UNIT` from a marker file; restart creates it\n\
         case \"$1\" in\n  is-active) [ -e {dir:?}/running-\"$2\" ] ;;\n  \
         restart) touch {dir:?}/running-\"$2\" && echo \"$1 $2\" >>{dir:?}/calls ;;\n  *) exit 3 ;;\nesac\n"
    );
    std::fs::write(bin.join("systemctl"), script).unwrap();
    std::fs::set_permissions(bin.join("systemctl"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    std::env::set_var("PATH", path);
    let marker = tmp.path().join("running-brinetestd.service");
    std::fs::write(&marker, "").unwrap();

    let reaction = tmp.path().join("restart.sls");
    std::fs::write(
        &reaction,
        "{% set name = data['service_name'] %}\n{% if not data[name]['running'] %}\n\
         restart_stopped_service:\n  local.service.restart:\n    - tgt: {{ data['id'] }}\n    - arg:\n      - {{ name }}\n\
         {% endif %}\n",
    )
    .unwrap();
    let extra = format!(
        "[[reactor.rules]]\ntag = \"brine/beacon/*/service/*\"\nfiles = [{:?}]\n",
        reaction.display().to_string()
    );
    let master = TestMaster::start(MasterOpts { extra, ..Default::default() }).await;
    let mut bus = master.master().shared().subscribe();
    let tables = "[beacons.service]\ninterval = 0.3\nservices = { brinetestd = { onchangeonly = true } }\n";
    let _minion = accepted(&master, "m1", tables).await;
    let tag = "brine/beacon/m1/service/brinetestd";
    let ev = next_event(&mut bus, 15, |e| e.tag == tag).await;
    assert_eq!(ev.data["brinetestd"], json!({"running": true}));

    // The service stops: the beacon reports it, the reaction restarts it, the beacon
    // reports it running again.
    std::fs::remove_file(&marker).unwrap();
    let ev = next_event(&mut bus, 15, |e| e.tag == tag).await;
    assert_eq!(ev.data["brinetestd"], json!({"running": false}));
    let ev = next_event(&mut bus, 20, |e| e.tag == tag).await;
    assert_eq!(ev.data["brinetestd"], json!({"running": true}), "the reaction did not restart the service");
    assert!(marker.exists());
    let calls = std::fs::read_to_string(tmp.path().join("calls")).unwrap();
    assert_eq!(calls, "restart brinetestd.service\n", "restarted once, by the reaction");

    // The reaction is on record, its job was run by the reactor and returned True.
    let m = master.master();
    let mut jid = String::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            let found = brine_master::reactor::history(m.shared(), 10)
                .ok()
                .and_then(|r| r.into_iter().find(|r| r.name == "restart_stopped_service" && r.ok));
            if let Some(r) = &found {
                jid = r.jids[0].to_string();
            }
            found.is_some()
        })
        .await,
        "no reaction on record: {:?}",
        brine_master::reactor::history(m.shared(), 10)
    );
    let mut shown = master.cli(&["job", "show", &jid, "--out", "json"]).await;
    for _ in 0..50 {
        if shown.stdout.contains("\"m1\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        shown = master.cli(&["job", "show", &jid, "--out", "json"]).await;
    }
    let ret: Value = serde_json::from_str(&shown.stdout).unwrap_or_else(|e| panic!("{e}: {shown:?}"));
    assert_eq!(ret["m1"], json!(true), "{shown:?}");
}
