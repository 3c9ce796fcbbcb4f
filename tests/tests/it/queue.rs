//! Jobs queued for minions that are offline.

use brine_tests::*;
use std::time::{Duration, Instant};

async fn accepted(master: &TestMaster, id: &str) -> TestMinion {
    let m = TestMinion::start(&master.url(), id, MinionOpts::default()).await;
    master.wait_key(id, "Unaccepted Keys:").await;
    master.accept(&m).await;
    m
}

async fn wait_show(master: &TestMaster, jid: &str) -> CliOutput {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = master.cli(&["job", "show", jid]).await;
        if !out.stdout.is_empty() || Instant::now() > deadline {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_reaches_a_minion_that_comes_back() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let mut off = accepted(&master, "off").await;
    let on = accepted(&master, "on").await;
    let dir = off.dir.clone();
    off.stop().await;

    let out = master.cli(&["run", "*", "test.echo", "later", "--queue", "--ttl", "10m", "-t", "1", "-v"]).await;
    assert_eq!(out.code, 1, "off did not return yet: {out:?}");
    let jid = out.stdout.lines().next().unwrap().trim_start_matches("Executing job with jid ").to_string();
    assert!(out.stdout.contains("on:\n    later\n"), "{out:?}");
    assert_eq!(on.minion().counters().jobs_run, 1, "the queued copy is not run twice");

    let back = TestMinion::start_in(&dir, &master.url(), "off", &MinionOpts::default()).await;
    assert!(back.minion().wait_connected(Duration::from_secs(20)).await);
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let out = master.cli(&["job", "show", &jid, "--out", "json"]).await;
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        if v.get("off").is_some() {
            break v;
        }
        assert!(Instant::now() < deadline, "the queued job never ran: {out:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(v, serde_json::json!({"on": "later", "off": "later"}));
    // The live copy's duplicate in `on`'s queue was drained without running again.
    assert!(eventually(Duration::from_secs(5), || on.minion().counters().jobs_refused == 0).await);
    assert_eq!(on.minion().counters().jobs_run, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_queued_job_does_not_run() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let mut off = accepted(&master, "off").await;
    let dir = off.dir.clone();
    off.stop().await;
    let out = master.cli(&["run", "off", "test.echo", "stale", "--queue", "--ttl", "1s", "--async"]).await;
    let jid = out.stdout.trim().strip_prefix("Executed command with job ID: ").unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let back = TestMinion::start_in(&dir, &master.url(), "off", &MinionOpts::default()).await;
    assert!(back.minion().wait_connected(Duration::from_secs(20)).await);
    assert!(eventually(Duration::from_secs(10), || back.minion().counters().jobs_refused == 1).await);
    assert_eq!(back.minion().counters().jobs_run, 0);
    let out = wait_show(&master, &jid).await;
    assert_eq!(out.stdout, "", "{out:?}");
}
