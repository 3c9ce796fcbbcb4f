//! Watching, killing, batching and finding jobs; presence and inventory.

use brine_tests::*;
use std::time::{Duration, Instant};

async fn fleet(ids: &[&str]) -> (TestMaster, Vec<TestMinion>) {
    let master = TestMaster::start(MasterOpts::default()).await;
    let mut minions = Vec::new();
    for id in ids {
        let tables = format!("[grains]\nrole = \"r-{id}\"\n");
        let m = TestMinion::start(&master.url(), id, MinionOpts { tables, ..Default::default() }).await;
        master.wait_key(id, "Unaccepted Keys:").await;
        minions.push(m);
    }
    for m in &minions {
        master.accept(m).await;
    }
    (master, minions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_kill_stops_a_running_command() {
    let (master, minions) = fleet(&["m1"]).await;
    let marker = tempfile::tempdir().unwrap();
    let pidfile = marker.path().join("pid");
    let cmd = format!("echo $$ > {}; sleep 60", pidfile.display());
    let out = master.cli(&["run", "m1", "cmd.run", &cmd, "--async"]).await;
    let jid = out.stdout.trim().strip_prefix("Executed command with job ID: ").unwrap().to_string();
    assert!(eventually(Duration::from_secs(10), || pidfile.exists()).await);

    let out = master.cli(&["job", "active"]).await;
    assert!(out.stdout.contains(&jid) && out.stdout.contains("cmd.run"), "{out:?}");
    let started = Instant::now();
    let out = master.cli(&["job", "kill", &jid]).await;
    assert_eq!((out.code, out.stdout.clone()), (0, format!("m1:\n    Signal 9 sent to job {jid}\n")), "{out:?}");
    // The killed job returns promptly, its shell gone.
    let mut shown = String::new();
    while started.elapsed() < Duration::from_secs(20) {
        shown = master.cli(&["job", "show", &jid]).await.stdout;
        if !shown.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(shown, "m1:\n    ERROR: killed\n");
    assert!(started.elapsed() < Duration::from_secs(20));
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err(), "the shell {pid} still runs");
    let out = master.cli(&["job", "kill", &jid]).await;
    assert_eq!(out.stdout, format!("Job {jid} is not running: every minion has returned.\n"));
    assert_eq!(minions[0].minion().counters().jobs_run, 2, "the command and the kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minions_still_running_at_the_timeout_are_waited_for() {
    let (master, _minions) = fleet(&["slow", "fast"]).await;
    // `slow` needs 2.5 s, longer than the 1 s timeout; find_job keeps the CLI waiting.
    let started = Instant::now();
    let out =
        master.cli(&["run", "*", "cmd.run", "sleep 2.5; echo done", "-t", "1", "--static", "--out", "json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"slow": "done", "fast": "done"}));
    assert!(started.elapsed() >= Duration::from_millis(2500));

    // With --max-wait 0 the CLI gives up at the timeout and says why.
    let out = master.cli(&["run", "slow", "cmd.run", "sleep 3", "-t", "0.5", "--max-wait", "1", "-v"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("slow:\n    Minion did not return. [Still running]"), "{out:?}");
    assert!(out.stderr.contains("Minions still running: slow"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_one_runs_one_minion_at_a_time() {
    let (master, _minions) = fleet(&["a", "b", "c"]).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let cmd = format!("echo start >> {0}; sleep 0.3; echo end >> {0}", log.display());
    let out = master.cli(&["run", "*", "cmd.run", &cmd, "--batch", "1"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.matches("Executing run on ['").count(), 3, "{out:?}");
    let lines: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_string).collect();
    assert_eq!(lines, ["start", "end", "start", "end", "start", "end"], "never more than one at a time");

    // A percentage of three minions, with JSON output: every minion exactly once.
    let out = master.cli(&["run", "*", "test.ping", "--batch", "50%", "--static", "--out", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"a": true, "b": true, "c": true}));
    let out = master.cli(&["run", "*", "test.ping", "--batch", "0"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--batch \"0\""), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minion_list_up_down_and_inventory() {
    let (master, mut minions) = fleet(&["a", "b"]).await;
    let out = master.cli(&["minion", "up"]).await;
    assert_eq!(out.stdout, "- a\n- b\n");
    let out = master.cli(&["minion", "list"]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("MINION") && lines[0].contains("STATUS") && lines[0].contains("OS"), "{out:?}");
    assert!(lines[1].starts_with("a ") && lines[1].contains(" up "), "{out:?}");

    let out = master.cli(&["inventory", "--grains", "id,role", "--out", "csv"]).await;
    assert_eq!(out.stdout, "id,id,role\na,a,r-a\nb,b,r-b\n");
    let out = master.cli(&["inventory", "-G", "role:r-b", "--grains", "role,nothing", "--out", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"b": {"role": "r-b", "nothing": ""}}));

    // A stopped minion goes down once its heartbeats stop (presence_timeout is 3 s here).
    minions[0].stop().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = master.cli(&["minion", "down"]).await;
        if out.stdout == "- a\n" {
            break;
        }
        assert!(Instant::now() < deadline, "a never went down: {out:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ...and jobs report it as not connected at once instead of waiting.
    let started = Instant::now();
    let out = master.cli(&["run", "*", "test.ping", "-t", "10"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("a:\n    Minion did not return. [Not connected]\n"), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_list_filters_and_pruning() {
    let (mut master, _minions) = fleet(&["m1"]).await;
    for args in [&["test.ping"][..], &["test.echo", "x"], &["cmd.run", "echo ok"]] {
        let mut argv = vec!["run", "m1"];
        argv.extend_from_slice(args);
        assert_eq!(master.cli(&argv).await.code, 0);
    }
    let count = |out: &CliOutput| out.stdout.lines().count().saturating_sub(1);
    assert_eq!(count(&master.cli(&["job", "list"]).await), 3);
    assert_eq!(count(&master.cli(&["job", "list", "--function", "test.*"]).await), 2);
    assert_eq!(count(&master.cli(&["job", "list", "-f", "cmd.run"]).await), 1);
    assert_eq!(count(&master.cli(&["job", "list", "--target", "m*"]).await), 3);
    assert_eq!(count(&master.cli(&["job", "list", "--target", "db*"]).await), 0);
    assert_eq!(count(&master.cli(&["job", "list", "--since", "1h"]).await), 3);
    assert_eq!(count(&master.cli(&["job", "list", "--limit", "1"]).await), 1);

    // After a restart the jobs are still there; pruning two days later removes them.
    let dir = master.dir.clone();
    master.stop().await;
    let master = TestMaster::start_in(&dir, &MasterOpts::default()).await;
    assert_eq!(count(&master.cli(&["job", "list"]).await), 3);
    let two_days = 2 * 24 * 3600 * 1_000_000;
    master.master().shared().prune_jobs_at(brine_proto::time::now_micros() + two_days).await;
    assert_eq!(count(&master.cli(&["job", "list"]).await), 0);
}
