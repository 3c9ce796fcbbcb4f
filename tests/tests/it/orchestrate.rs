//! Orchestration through a real master and minions: steps as jobs with requisites,
//! `failhard`, `retry` and `fail_minions`; results stored as a job; pause, resume and
//! abort; `wait_for_event` on the bus; the exit codes of `brine orchestrate`.

use brine_tests::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A master serving `files` from its file_roots, and minions web1 (grain `web`) and db1.
async fn fleet(files: &[(&str, &str)]) -> (tempfile::TempDir, TestMaster, Vec<TestMinion>) {
    let trees = tempfile::tempdir().unwrap();
    let salt = trees.path().join("salt");
    for (path, text) in files {
        write(&salt, path, text);
    }
    let extra = format!("[file_roots]\nbase = [{:?}]\n", salt.display().to_string());
    let master = TestMaster::start(MasterOpts { extra, ..Default::default() }).await;
    let mut minions = Vec::new();
    for id in ["web1", "db1"] {
        let tables = if id == "web1" { "[grains]\nweb = true\n".to_string() } else { String::new() };
        let m = TestMinion::start(&master.url(), id, MinionOpts { tables, ..Default::default() }).await;
        master.wait_key(id, "Unaccepted Keys:").await;
        master.accept(&m).await;
        minions.push(m);
    }
    (trees, master, minions)
}

fn me() -> String {
    brine_tests::brine_master::orchestrate::master_id()
}

/// The steps of an orchestration's JSON output, by state id.
fn steps(doc: &Value) -> serde_json::Map<String, Value> {
    let run = doc[me()].as_object().unwrap_or_else(|| panic!("no {} in {doc}", me()));
    run.values().map(|s| (s["__id__"].as_str().unwrap().to_string(), s.clone())).collect()
}

fn json_of(out: &CliOutput) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// The JID `brine orchestrate` announced on stderr.
fn announced_jid(out: &CliOutput) -> String {
    let rest = out.stderr.split("Orchestration ").nth(1).unwrap_or_else(|| panic!("no JID: {out:?}"));
    rest.split_whitespace().next().unwrap().to_string()
}

/// Waits until `brine job show JID` has the orchestration's return.
async fn finished(master: &TestMaster, jid: &str) -> CliOutput {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = master.cli(&["job", "show", jid, "--out", "json"]).await;
        if out.stdout.trim() != "{}" && !out.stdout.trim().is_empty() {
            return out;
        }
        assert!(Instant::now() < deadline, "orchestration {jid} did not finish: {out:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Jobs of `fun` in the cache, as `brine job list` shows them.
async fn jobs_of(master: &TestMaster, fun: &str) -> serde_json::Map<String, Value> {
    let out = master.cli(&["job", "list", "-f", fun, "--out", "json"]).await;
    json_of(&out).as_object().cloned().unwrap_or_default()
}

const DEPLOY: &str = "\
prepare:
  brine.function:
    - name: test.ping
    - tgt: '*'

deploy:
  salt.function:
    - name: cmd.run
    - tgt: web1
    - arg:
      - exit 3
    - require:
      - brine: prepare

rollback:
  brine.function:
    - name: test.echo
    - tgt: db1
    - arg:
      - rolled back
    - onfail:
      - salt: deploy

gate:
  brine.function:
    - name: test.false
    - tgt: '*'
    - failhard: True

after:
  brine.function:
    - name: test.ping
    - tgt: '*'
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_runs_its_onfail_step_and_failhard_stops_the_rest() {
    let (_trees, master, _minions) = fleet(&[("orch/deploy.sls", DEPLOY)]).await;
    let out = master.cli(&["orchestrate", "orch.deploy", "--out", "json"]).await;
    assert_eq!(out.code, 1, "a step failed: {out:?}");
    let jid = announced_jid(&out);
    let doc = json_of(&out);
    let s = steps(&doc);
    assert_eq!(s.keys().collect::<Vec<_>>(), ["prepare", "deploy", "rollback", "gate"], "after never ran");
    assert_eq!(s["prepare"]["result"], json!(true));
    assert_eq!(s["prepare"]["changes"]["ret"], json!({"db1": true, "web1": true}));
    assert!(
        s["prepare"]["comment"]
            .as_str()
            .unwrap()
            .starts_with("Function ran successfully. Function test.ping ran on db1, web1."),
        "{}",
        s["prepare"]["comment"]
    );
    assert_eq!(s["deploy"]["result"], json!(false));
    assert!(s["deploy"]["comment"].as_str().unwrap().starts_with("Running function cmd.run failed on minions: web1"));
    assert_eq!(s["rollback"]["result"], json!(true), "the onfail step ran");
    assert_eq!(s["rollback"]["changes"]["ret"], json!({"db1": "rolled back"}));
    assert_eq!(s["gate"]["result"], json!(false));
    let order: Vec<u64> =
        ["prepare", "deploy", "rollback", "gate"].iter().map(|k| s[*k]["__run_num__"].as_u64().unwrap()).collect();
    assert_eq!(order, [0, 1, 2, 3]);
    // The key is Salt's: module, id, name, function.
    assert!(doc[me()].get("salt_|-deploy_|-cmd.run_|-function").is_some());

    // Stored as a job of the master; `job show` prints it again (highstate by default).
    let shown = master.cli(&["job", "show", &jid, "--out", "json"]).await;
    assert_eq!(shown.code, 1);
    assert_eq!(json_of(&shown), doc);
    let shown = master.cli(&["job", "show", &jid]).await;
    assert!(shown.stdout.contains(&format!("Summary for {}", me())), "{shown:?}");
    assert!(shown.stdout.contains("          ID: rollback"), "{shown:?}");
    let listed = jobs_of(&master, "state.orchestrate").await;
    assert_eq!(listed[&jid]["User"], json!("admin"));
    assert_eq!(listed[&jid]["Failed"], json!(1));
    // Each step was a job of its own.
    assert_eq!(jobs_of(&master, "test.ping").await.len(), 1, "prepare only: after never ran");
    assert_eq!(jobs_of(&master, "test.echo").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_fail_minions_state_steps_and_exit_codes() {
    let marker = tempfile::tempdir().unwrap();
    let marker = marker.path().join("flaky");
    let retry = format!(
        "flaky:\n  brine.function:\n    - name: cmd.run\n    - tgt: web1\n    - arg:\n      - test -e {m} || (touch {m}; exit 1)\n    \
         - retry:\n        attempts: 3\n        interval: 0\n\
         tolerant:\n  brine.function:\n    - name: grains.has_value\n    - tgt: '*'\n    - arg: [web]\n    - fail_minions: 50%\n\
         named:\n  brine.function:\n    - name: grains.has_value\n    - tgt: '*'\n    - arg: [web]\n    - fail_minions: [db1]\n\
         states:\n  brine.state:\n    - tgt: db1\n    - sls: hello\n\
         watcher:\n  brine.state:\n    - tgt: db1\n    - sls: quiet\n    - watch:\n      - brine: states\n\
         strict:\n  brine.function:\n    - name: grains.has_value\n    - tgt: '*'\n    - arg: [web]\n",
        m = marker.display()
    );
    let files = [
        ("orch/retry.sls", retry.as_str()),
        ("hello.sls", "hi:\n  test.succeed_with_changes\n"),
        ("quiet.sls", "calm:\n  test.succeed_without_changes\n"),
        ("orch/ok.sls", "one:\n  brine.function:\n    - name: test.ping\n    - tgt: 'web*'\n"),
        ("orch/broken.sls", "one:\n  brine.function:\n    - name: test.ping\n    - tgt: [unclosed\n"),
        ("orch/all.sls", "all:\n  brine.function:\n    - name: test.ping\n    - tgt: '*'\n"),
        (
            "orch/slow.sls",
            "slow:\n  brine.function:\n    - name: cmd.run\n    - tgt: web1\n    - arg: ['sleep 5']\n    - timeout: 1\n",
        ),
    ];
    let (_trees, master, mut minions) = fleet(&files).await;

    // Test mode runs no function: every function step would run; states run with test=True.
    let out = master.cli(&["orchestrate", "orch.retry", "--test", "--out", "json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let s = steps(&json_of(&out));
    assert_eq!(s["flaky"]["result"], Value::Null);
    assert_eq!(
        s["flaky"]["comment"],
        json!("Function cmd.run would be executed on target web1  The state would be retried every 0 seconds (with a splay of up to 0 seconds) a maximum of 3 times or until a result of True is returned")
    );
    assert_eq!(s["states"]["result"], Value::Null, "would change: {}", s["states"]);
    assert!(!marker.exists(), "nothing ran");

    let out = master.cli(&["orchestrate", "orch.retry", "--out", "json"]).await;
    assert_eq!(out.code, 1, "strict failed: {out:?}");
    let s = steps(&json_of(&out));
    assert_eq!(s["flaky"]["result"], json!(true), "the second attempt succeeded: {}", s["flaky"]);
    assert!(
        s["flaky"]["comment"].as_str().unwrap().starts_with("Attempt 1: Returned a result of \"False\", with the following comment: \"Running function cmd.run failed on minions: web1"),
        "{}",
        s["flaky"]["comment"]
    );
    assert_eq!(s["tolerant"]["result"], json!(true), "{}", s["tolerant"]);
    assert!(s["tolerant"]["comment"].as_str().unwrap().contains("Failures tolerated (fail_minions): db1."));
    assert_eq!(s["tolerant"]["changes"]["ret"], json!({"db1": false, "web1": true}));
    assert_eq!(s["named"]["result"], json!(true));
    assert_eq!(s["strict"]["result"], json!(false));
    assert!(s["strict"]["comment"]
        .as_str()
        .unwrap()
        .starts_with("Running function grains.has_value failed on minions: db1"));
    assert_eq!(s["states"]["result"], json!(true), "{}", s["states"]);
    assert!(s["states"]["comment"].as_str().unwrap().starts_with("States ran successfully. Updating db1."));
    assert_eq!(s["states"]["changes"]["ret"]["db1"]["test_|-hi_|-hi_|-succeed_with_changes"]["result"], json!(true));
    // A step has no watch action: a watch that fired works like require (runs once).
    assert_eq!(
        s["watcher"]["comment"].as_str().unwrap().split(" Job ").next(),
        Some("States ran successfully. No changes made to db1.")
    );
    let runs = jobs_of(&master, "state.sls").await.len();
    assert_eq!(runs, 4, "test mode and real runs of states and watcher, once each");

    // Success, a file of the operator's own, and nothing ran.
    let out = master.cli(&["orchestrate", "orch.ok"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Function ran successfully. Function test.ping ran on web1."), "{out:?}");
    let own = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(own.path(), "own:\n  salt.function:\n    - name: test.echo\n    - tgt: db1\n    - arg: [mine]\n")
        .unwrap();
    let out = master.cli(&["orchestrate", own.path().to_str().unwrap(), "--out", "json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(steps(&json_of(&out))["own"]["changes"]["ret"], json!({"db1": "mine"}));
    let out = master.cli(&["orchestrate", "orch.missing"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("No matching sls found for 'orch.missing'"), "{out:?}");
    let out = master.cli(&["orchestrate", "orch.broken"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("orch/broken.sls:"), "the file and line are named: {out:?}");
    let out = master.cli(&["orchestrate", "orch.ok", "--pillar", "[1, 2]"]).await;
    assert_eq!(out.code, 64, "{out:?}");
    assert_eq!(jobs_of(&master, "state.orchestrate").await.len(), 4, "refused runs leave no job");

    // Minions that do not return fail the step: past its timeout, or gone.
    let out = master.cli(&["orchestrate", "orch.slow", "--out", "json"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let s = steps(&json_of(&out));
    assert!(s["slow"]["comment"].as_str().unwrap().contains("Minions that did not return: web1."), "{}", s["slow"]);
    minions[1].stop().await;
    let started = Instant::now();
    let out = master.cli(&["orchestrate", "orch.all", "--out", "json"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "the master gave up on db1");
    let s = steps(&json_of(&out));
    assert_eq!(s["all"]["changes"]["ret"], json!({"web1": true}));
    let comment = s["all"]["comment"].as_str().unwrap();
    assert!(comment.starts_with("Running function test.ping failed on minions: db1"), "{comment}");
    assert!(comment.contains("Minions that did not return: db1."), "{comment}");
}

const SLOW: &str = "\
first:
  brine.function:
    - name: cmd.run
    - tgt: web1
    - arg:
      - sleep 2; echo first

second:
  brine.function:
    - name: test.echo
    - tgt: db1
    - arg:
      - second
";

const LONG: &str = "\
wait:
  brine.function:
    - name: cmd.run
    - tgt: web1
    - arg:
      - sleep 30

next:
  brine.function:
    - name: test.ping
    - tgt: '*'
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_orchestration_pauses_resumes_and_aborts() {
    let (_trees, master, _minions) = fleet(&[("orch/slow.sls", SLOW), ("orch/long.sls", LONG)]).await;
    let out = master.cli(&["orchestrate", "orch.slow", "--async"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let jid = out.stdout.trim().to_string();
    let out = master.cli(&["job", "pause", &jid]).await;
    assert_eq!((out.code, out.stdout.contains("is pausing")), (0, true), "{out:?}");
    let out = master.cli(&["job", "pause", &jid]).await;
    assert!(out.stdout.contains("already paused"), "{out:?}");

    // The running step finishes; the next one does not start while paused.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let jobs = jobs_of(&master, "cmd.run").await;
        if jobs.values().any(|j| j["Returned"] == json!(1)) {
            break;
        }
        assert!(Instant::now() < deadline, "the first step did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(jobs_of(&master, "test.echo").await.is_empty(), "the second step started while paused");
    let shown = master.cli(&["job", "show", &jid, "--out", "json"]).await;
    assert_eq!(shown.stdout.trim(), "{}", "still running: {shown:?}");
    let active = master.cli(&["job", "active"]).await;
    assert!(active.stdout.contains(&jid) && active.stdout.contains("state.orchestrate"), "{active:?}");

    let out = master.cli(&["job", "resume", &jid]).await;
    assert_eq!((out.code, out.stdout.trim()), (0, format!("Orchestration {jid} resumed.").as_str()), "{out:?}");
    let done = finished(&master, &jid).await;
    assert_eq!(done.code, 0, "{done:?}");
    let s = steps(&json_of(&done));
    assert_eq!(s["first"]["changes"]["ret"], json!({"web1": "first"}));
    assert_eq!(s["second"]["changes"]["ret"], json!({"db1": "second"}));
    let out = master.cli(&["job", "resume", &jid]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("is not running: it has finished"), "{out:?}");

    // Abort: the running step's job is killed on its minion and nothing more starts.
    let out = master.cli(&["orchestrate", "orch.long", "--async"]).await;
    let jid = out.stdout.trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while jobs_of(&master, "cmd.run").await.len() < 2 {
        assert!(Instant::now() < deadline, "the long step did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    let out = master.cli(&["job", "kill", &jid]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("is being aborted"), "{out:?}");
    let done = finished(&master, &jid).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(done.code, 1, "an aborted orchestration failed: {done:?}");
    let s = steps(&json_of(&done));
    assert_eq!(s.keys().collect::<Vec<_>>(), ["wait"], "next never started");
    assert_eq!(s["wait"]["result"], json!(false));
    assert!(s["wait"]["comment"].as_str().unwrap().contains("aborted"), "{}", s["wait"]);
    assert!(jobs_of(&master, "test.ping").await.is_empty());
    // The minion was told to stop the step's job.
    assert!(!jobs_of(&master, "saltutil.kill_job").await.is_empty());
    let out = master.cli(&["job", "kill", &jid]).await;
    assert_eq!(out.code, 2, "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_event_counts_ids_from_matching_events() {
    let wait = "\
ready:
  brine.wait_for_event:
    - name: myapp/*/ready
    - id_list:
      - web1
      - db1
    - timeout: 20

go:
  brine.function:
    - name: test.ping
    - tgt: '*'
    - require:
      - brine: ready

short:
  salt.wait_for_event:
    - name: never/*
    - id_list: [web1]
    - timeout: 1
";
    let (_trees, master, _minions) = fleet(&[("orch/wait.sls", wait)]).await;
    let out = master.cli(&["orchestrate", "orch.wait", "--async"]).await;
    let jid = out.stdout.trim().to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Events that do not match (tag or id) are skipped; each id counts once.
    for (tag, data) in
        [("other/x/ready", "{id: web1}"), ("myapp/a/ready", "{id: nobody}"), ("myapp/a/ready", "{id: web1}")]
    {
        let out = master.cli(&["event", "send", tag, data]).await;
        assert_eq!(out.code, 0, "{out:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        // Sent again until seen: the step may not have been listening yet.
        for (tag, data) in [("myapp/a/ready", "{id: web1}"), ("myapp/b/ready", "{data: {id: [db1]}}")] {
            let out = master.cli(&["event", "send", tag, data]).await;
            assert_eq!(out.code, 0, "{out:?}");
        }
        let shown = master.cli(&["job", "show", &jid, "--out", "json"]).await;
        if shown.stdout.trim() != "{}" {
            break shown;
        }
        assert!(Instant::now() < deadline, "the orchestration did not see the events");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(done.code, 1, "short timed out: {done:?}");
    let s = steps(&json_of(&done));
    assert_eq!(s["ready"]["result"], json!(true), "{}", s["ready"]);
    assert_eq!(s["ready"]["changes"]["minions_seen"], json!(["web1", "db1"]));
    assert!(s["ready"]["comment"].as_str().unwrap().starts_with("All events seen in "));
    assert_eq!(s["go"]["result"], json!(true));
    assert_eq!(s["short"]["result"], json!(false));
    assert_eq!(s["short"]["comment"], json!("Timeout value reached."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_operators_need_an_acl_entry_and_the_masters_files() {
    let keys = tempfile::tempdir().unwrap();
    for name in ["alice", "bob"] {
        let key = brine_proto::keys::generate_key();
        brine_proto::keys::write_private_key(&keys.path().join(format!("{name}.pem")), &key).unwrap();
        brine_proto::keys::write_public_key(&keys.path().join(format!("{name}.pub")), &key.verifying_key()).unwrap();
    }
    let trees = tempfile::tempdir().unwrap();
    let salt = trees.path().join("salt");
    write(&salt, "orch/ok.sls", "one:\n  brine.function:\n    - name: test.ping\n    - tgt: '*'\n");
    let extra = format!(
        "[file_roots]\nbase = [{:?}]\n\n[operators.alice]\nkey = {:?}\n\n[[operators.alice.acl]]\ntarget = \"*\"\n\
         functions = [\"state.orchestrate\"]\n\n[operators.bob]\nkey = {:?}\n\n[[operators.bob.acl]]\n\
         target = \"*\"\nfunctions = [\"test.*\"]\n",
        salt.display().to_string(),
        keys.path().join("alice.pub").display().to_string(),
        keys.path().join("bob.pub").display().to_string(),
    );
    let master = TestMaster::start(MasterOpts { extra, ..Default::default() }).await;
    let m = TestMinion::start(&master.url(), "web1", MinionOpts::default()).await;
    master.wait_key("web1", "Unaccepted Keys:").await;
    master.accept(&m).await;
    let key_of = |name: &str| keys.path().join(format!("{name}.pem")).display().to_string();
    let as_op = |name: &'static str, args: &[&str]| {
        let mut argv = vec!["--operator".to_string(), name.to_string(), "--key".to_string(), key_of(name)];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    };

    let argv = as_op("bob", &["orchestrate", "orch.ok"]);
    let out = master.cli(&argv.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("operator bob may not run orchestrations"), "{out:?}");

    let argv = as_op("alice", &["orchestrate", "orch.ok", "--out", "json"]);
    let out = master.cli(&argv.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(steps(&json_of(&out))["one"]["changes"]["ret"], json!({"web1": true}));
    let listed = jobs_of(&master, "test.ping").await;
    assert_eq!(listed.values().next().unwrap()["User"], json!("alice"), "steps run as the operator");

    let own = trees.path().join("own.sls");
    std::fs::write(&own, "x:\n  brine.function:\n    - name: cmd.run\n    - tgt: '*'\n    - arg: [id]\n").unwrap();
    let argv = as_op("alice", &["orchestrate", own.to_str().unwrap()]);
    let out = master.cli(&argv.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("only orchestrations from the master's file_roots"), "{out:?}");

    // Every orchestration request is in the audit log, refused or not.
    let audit = std::fs::read_to_string(master.dir.join("master/audit.log")).unwrap();
    let lines: Vec<Value> =
        audit.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).filter(|l| l["op"] == "orchestrate").collect();
    assert_eq!(lines.len(), 3, "{audit}");
    assert_eq!((lines[1]["operator"].clone(), lines[1]["fun"].clone()), (json!("alice"), json!("state.orchestrate")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_master_aborts_orchestrations_and_a_crashed_ones_are_closed() {
    let trees = tempfile::tempdir().unwrap();
    let salt = trees.path().join("salt");
    write(&salt, "orch/long.sls", LONG);
    let opts = MasterOpts {
        extra: format!("[file_roots]\nbase = [{:?}]\n", salt.display().to_string()),
        ..Default::default()
    };
    let mut master = TestMaster::start(opts.clone()).await;
    let m = TestMinion::start(&master.url(), "web1", MinionOpts::default()).await;
    master.wait_key("web1", "Unaccepted Keys:").await;
    master.accept(&m).await;
    let out = master.cli(&["orchestrate", "orch.long", "--async"]).await;
    let jid = out.stdout.trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while jobs_of(&master, "cmd.run").await.is_empty() {
        assert!(Instant::now() < deadline, "the long step did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    master.stop().await;
    assert!(started.elapsed() < Duration::from_secs(10), "the master stopped without waiting for the step");

    // A crash leaves an orchestration without a result: the next start closes it.
    let cfg = brine_tests::brine_master::MasterConfig::load(Some(&master.config_path)).unwrap();
    let crashed = brine_proto::Jid::from_micros(brine_proto::time::now_micros());
    {
        use brine_tests::brine_master::store::JobCache;
        let store = brine_tests::brine_master::store::Store::open(&cfg.db_path()).unwrap();
        let record = brine_proto::msg::JobRecord {
            jid: crashed,
            target: brine_proto::Target::List(vec![me()]),
            fun: "state.orchestrate".into(),
            arg: vec![json!("orch.long")],
            kwarg: Default::default(),
            user: "admin".into(),
            minions: vec![brine_proto::MinionId::new(me()).unwrap()],
            started_at: brine_proto::time::now_ms(),
        };
        store.put_job(&record).unwrap();
        store.flush().unwrap();
    }
    let again = TestMaster::start_in(&master.dir, &opts).await;
    let done = again.cli(&["job", "show", &jid, "--out", "json"]).await;
    assert_eq!(done.code, 1, "{done:?}");
    let s = steps(&json_of(&done));
    assert_eq!(s["wait"]["result"], json!(false));
    assert!(s["wait"]["comment"].as_str().unwrap().contains("aborted"), "{}", s["wait"]);
    let closed = again.cli(&["job", "show", &crashed.to_string(), "--out", "json"]).await;
    assert_eq!(closed.code, 1, "{closed:?}");
    assert_eq!(
        json_of(&closed),
        json!({ me(): ["The master stopped while this orchestration ran; it was not resumed."] })
    );
}
