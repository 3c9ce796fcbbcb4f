//! Running jobs through the CLI: output, exit codes, stored data.

use brine_tests::*;
use std::time::Duration;

async fn one_minion(id: &str) -> (TestMaster, TestMinion) {
    let master = TestMaster::start(MasterOpts::default()).await;
    let minion = TestMinion::start(&master.url(), id, MinionOpts::default()).await;
    master.wait_key(id, "Unaccepted Keys:").await;
    master.accept(&minion).await;
    (master, minion)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_accept_then_ping_and_cmd_run() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let minion = TestMinion::start(&master.url(), "web1.example.com", MinionOpts::default()).await;
    master.wait_key("web1.example.com", "Unaccepted Keys:").await;
    // Pending keys get no jobs: the target matches nobody yet.
    let out = master.cli(&["run", "*", "test.ping"]).await;
    assert_eq!(out.code, 2, "{out:?}");

    let out = master.cli_with_input(&["key", "accept", "web*"], "y\n").await;
    assert_eq!(
        out.stdout,
        "The following keys are going to be accepted:\nUnaccepted Keys:\nweb1.example.com\nProceed? [n/Y] Key for minion web1.example.com accepted.\n"
    );
    assert!(minion.minion().wait_connected(Duration::from_secs(20)).await);

    let out = master.cli(&["run", "*", "test.ping"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "web1.example.com:\n    True\n"), "{out:?}");
    let out = master.cli(&["run", "web1.example.com", "cmd.run", "echo hi"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "web1.example.com:\n    hi\n"), "{out:?}");
    let out = master.cli(&["run", "*", "test.ping", "--out", "json"]).await;
    assert_eq!(out.stdout, "{\n    \"web1.example.com\": true\n}\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_set_the_exit_code_and_are_counted() {
    let (master, _minion) = one_minion("m1").await;
    let out = master.cli(&["run", "m1", "cmd.run", "echo oops; exit 3"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "m1:\n    oops\n");
    assert_eq!(out.stderr, "ERROR: Minions returned with non-zero exit code\n");

    let out = master.cli(&["run", "m1", "cmd.run_all", "echo a; echo b >&2; exit 3", "--out", "json"]).await;
    assert_eq!(out.code, 1);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["m1"]["retcode"], 3);
    assert_eq!(v["m1"]["stdout"], "a");
    assert_eq!(v["m1"]["stderr"], "b");

    let out = master.cli(&["job", "list"]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out:?}");
    assert!(lines[0].starts_with("JID") && lines[0].contains("FUNCTION") && lines[0].contains("RETURNED"), "{out:?}");
    assert!(lines[1].contains("cmd.run_all") && lines[1].contains("1/1"), "newest first: {out:?}");
    let out = master.cli(&["job", "list", "--out", "json"]).await;
    let jobs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let failed: Vec<_> = jobs.as_object().unwrap().values().filter(|j| j["Failed"] == 1).collect();
    assert_eq!(failed.len(), 2, "{jobs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_functions_and_empty_targets_are_clear_errors() {
    let (master, _minion) = one_minion("m1").await;
    let out = master.cli(&["run", "*", "nope.fun"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "m1:\n    'nope.fun' is not available.\n");

    let out = master.cli(&["run", "db*", "test.ping"]).await;
    assert_eq!(out.code, 2);
    assert_eq!(out.stdout, "No minions matched the target. No command was sent, no jid was assigned.\n");
    assert_eq!(out.stderr, "ERROR: No return received\n");

    let out = master.cli(&["run", "web[", "test.ping"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("bad target at \"web[\" (character 0): bad glob"), "{out:?}");

    let out = master.cli(&["run", "*", "notafunction"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("module.function"), "{out:?}");

    let out = master.cli(&["run", "*", "test.echo"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("missing required argument 'text'"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_are_typed_and_list_targets_report_unknown_ids() {
    let (master, _minion) = one_minion("m1").await;
    let out = master.cli(&["run", "m1", "test.arg", "1", "yes", "[a, b]", "name=web", "--out", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["m1"], serde_json::json!({"args": [1, true, ["a", "b"]], "kwargs": {"name": "web"}}));

    let out = master.cli(&["run", "-L", "m1,ghost", "test.ping", "-t", "1"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.starts_with("m1:\n    True\nghost:\n    Minion did not return. [No response]\n"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_minions_are_reported_at_the_timeout() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let mut a = TestMinion::start(&master.url(), "a", MinionOpts::default()).await;
    let b = TestMinion::start(&master.url(), "b", MinionOpts::default()).await;
    master.wait_key("a", "Unaccepted Keys:").await;
    master.wait_key("b", "Unaccepted Keys:").await;
    master.accept(&a).await;
    master.accept(&b).await;
    a.stop().await;
    // b answers; a is gone and is reported once presence lapses, or at the timeout.
    let out = master.cli(&["run", "*", "test.ping", "-t", "2", "--static", "--out", "json"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["b"], true);
    assert!(v["a"].as_str().unwrap().starts_with("Minion did not return."), "{v}");
    let out = master.cli(&["run", "*", "test.ping", "-t", "1", "--hide-timeout"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "b:\n    True\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_survive_a_master_restart() {
    let (mut master, _minion) = one_minion("m1").await;
    let out = master.cli(&["run", "m1", "test.echo", "kept", "-v"]).await;
    assert_eq!(out.code, 0);
    let jid = out.stdout.lines().next().unwrap().trim_start_matches("Executing job with jid ").to_string();
    assert_eq!(jid.len(), 20, "{out:?}");
    let dir = master.dir.clone();
    master.stop().await;
    let restarted = TestMaster::start_in(&dir, &MasterOpts::default()).await;
    let out = restarted.cli(&["job", "show", &jid]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "m1:\n    kept\n"), "{out:?}");
    let out = restarted.cli(&["job", "show", &jid, "--summary", "--out", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!((v["Targeted"].as_u64(), v["Returned"].as_u64(), v["Succeeded"].as_u64()), (Some(1), Some(1), Some(1)));
    let out = restarted.cli(&["job", "show", "20000101000000000000"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no job 20000101000000000000"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_jobs_print_the_jid_and_land_in_the_cache() {
    let (master, _minion) = one_minion("m1").await;
    let out = master.cli(&["run", "m1", "test.echo", "later", "--async"]).await;
    assert_eq!(out.code, 0);
    let jid = out.stdout.trim().strip_prefix("Executed command with job ID: ").expect("jid line").to_string();
    let mut shown = String::new();
    for _ in 0..100 {
        shown = master.cli(&["job", "show", &jid]).await.stdout;
        if !shown.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(shown, "m1:\n    later\n");
}
