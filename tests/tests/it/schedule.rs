//! Minion and master schedules: scheduled runs land in the job cache, `maxrunning`
//! holds, run-time entries survive a restart, and `schedule.*` manages them.

use brine_master::store::JobCache;
use brine_proto::msg::JobFilter;
use brine_tests::*;
use serde_json::Value;
use std::time::{Duration, Instant};

async fn one_minion(opts: MinionOpts) -> (TestMaster, TestMinion) {
    let master = TestMaster::start(MasterOpts::default()).await;
    let minion = TestMinion::start(&master.url(), "m1", opts).await;
    master.wait_key("m1", "Unaccepted Keys:").await;
    master.accept(&minion).await;
    (master, minion)
}

/// The jobs of `fun` in the job cache recorded as user `schedule`, newest first, as
/// `brine job list --out json` shows them.
async fn scheduled(master: &TestMaster, fun: &str) -> Vec<(String, Value)> {
    let out = master.cli(&["job", "list", "--function", fun, "--out", "json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let doc: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    doc.as_object()
        .map(|jobs| jobs.iter().filter(|(_, j)| j["User"] == "schedule").map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// Waits until at least `n` scheduled jobs of `fun` have returned.
async fn wait_returned(master: &TestMaster, fun: &str, n: usize, within: Duration) -> Vec<(String, Value)> {
    let deadline = Instant::now() + within;
    loop {
        let jobs = scheduled(master, fun).await;
        if jobs.iter().filter(|(_, j)| j["Returned"] == 1).count() >= n {
            return jobs;
        }
        assert!(Instant::now() < deadline, "fewer than {n} scheduled {fun} returns: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn run_json(out: &CliOutput) -> Value {
    assert_eq!(out.code, 0, "{out:?}");
    let doc: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    doc["m1"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_schedule_runs_every_second_into_the_job_cache() {
    let tables = "[schedule.echo]\nfunction = \"test.echo\"\nargs = [\"tick\"]\nseconds = 1\n".to_string();
    let (master, _minion) = one_minion(MinionOpts { tables, ..Default::default() }).await;
    let jobs = wait_returned(&master, "test.echo", 2, Duration::from_secs(15)).await;
    let (jid, job) = &jobs[0];
    assert_eq!(
        (job["Target"].as_str(), job["Targeted"].as_u64(), job["Failed"].as_u64()),
        (Some("L@m1"), Some(1), Some(0))
    );
    let table = master.cli(&["job", "list", "--function", "test.echo"]).await.stdout;
    assert!(table.lines().any(|l| l.starts_with(jid.as_str()) && l.contains("schedule")), "{table}");
    let shown = master.cli(&["job", "show", jid]).await;
    assert_eq!((shown.code, shown.stdout.as_str()), (0, "m1:\n    tick\n"), "{shown:?}");
    // The record names what ran, with its arguments, and only the minion that ran it.
    let stored = master.master().shared().store.job(jid.parse().unwrap()).unwrap().unwrap();
    assert_eq!((stored.user.as_str(), stored.arg.clone()), ("schedule", vec![Value::from("tick")]));
    assert_eq!(stored.minions.iter().map(|m| m.as_str()).collect::<Vec<_>>(), vec!["m1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxrunning_one_never_overlaps_a_slow_function() {
    let (master, _minion) = one_minion(MinionOpts::default()).await;
    let out =
        master.cli(&["run", "m1", "schedule.add", "slow", "function=test.sleep", "job_args=[2]", "seconds=1"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let jobs = wait_returned(&master, "test.sleep", 2, Duration::from_secs(20)).await;
    let store = &master.master().shared().store;
    let mut runs: Vec<(u64, u64)> = jobs
        .iter()
        .flat_map(|(jid, _)| store.returns(jid.parse().unwrap()).unwrap())
        .map(|r| (r.started_at, r.started_at + r.duration_ms))
        .collect();
    runs.sort();
    assert!(runs.len() >= 2, "{runs:?}");
    for pair in runs.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "two runs overlapped: {runs:?}");
    }
    assert!(runs.iter().all(|(s, e)| e - s >= 2000), "each run slept 2 s: {runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_added_at_run_time_survives_a_restart() {
    let (master, mut minion) = one_minion(MinionOpts::default()).await;
    let out =
        master.cli(&["run", "m1", "schedule.add", "ver", "function=test.version", "seconds=1", "--out", "json"]).await;
    assert_eq!(
        run_json(&out),
        serde_json::json!({"comment": "Added job: ver to schedule.", "result": true, "changes": {"ver": "added"}})
    );
    wait_returned(&master, "test.version", 1, Duration::from_secs(10)).await;
    minion.stop().await;
    let stopped = brine_proto::time::now_ms();
    let dir = minion.dir.clone();
    let minion = TestMinion::start_in(&dir, &master.url(), "m1", &MinionOpts::default()).await;
    assert!(minion.minion().wait_connected(Duration::from_secs(20)).await);
    let deadline = Instant::now() + Duration::from_secs(15);
    let store = &master.master().shared().store;
    loop {
        let after = store
            .list(&JobFilter { limit: 100, fun: Some("test.version".into()), ..Default::default() })
            .unwrap()
            .into_iter()
            .filter(|j| j.user == "schedule" && j.started_at > stopped && j.counts.returned == 1)
            .count();
        if after >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the schedule did not run after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = run_json(&master.cli(&["run", "m1", "schedule.list", "--out", "json"]).await);
    assert_eq!(
        listed,
        "schedule:\n  ver:\n    enabled: true\n    function: test.version\n    jid_include: true\n    maxrunning: 1\n    \
         name: ver\n    saved: true\n    seconds: 1\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_list_disable_and_enable() {
    let tables = "[schedule.cfgjob]\nfunction = \"test.ping\"\nhours = 1\n".to_string();
    let (master, _minion) = one_minion(MinionOpts { tables, ..Default::default() }).await;
    let list = |extra: &'static [&'static str]| {
        let master = &master;
        async move {
            let mut args = vec!["run", "m1", "schedule.list", "--out", "json"];
            args.extend_from_slice(extra);
            run_json(&master.cli(&args).await)
        }
    };
    // A config entry is listed as not saved (it lives in the config file).
    assert_eq!(
        list(&[]).await,
        "schedule:\n  cfgjob:\n    enabled: true\n    function: test.ping\n    hours: 1\n    saved: false\n"
    );
    let out =
        master.cli(&["run", "m1", "schedule.add", "tick", "function=test.arg", "job_args=[x]", "seconds=1"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    wait_returned(&master, "test.arg", 1, Duration::from_secs(10)).await;

    let out = run_json(&master.cli(&["run", "m1", "schedule.disable_job", "tick", "--out", "json"]).await);
    assert_eq!(
        out,
        serde_json::json!({"comment": "Disabled Job tick in schedule.", "result": true, "changes": {"tick": "disabled"}})
    );
    let data = list(&["return_yaml=False"]).await;
    assert_eq!(data["tick"]["enabled"], false);
    // Let a run under way finish, then no run starts while disabled.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let before = scheduled(&master, "test.arg").await.len();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(scheduled(&master, "test.arg").await.len(), before, "a disabled job ran");
    let out = run_json(&master.cli(&["run", "m1", "schedule.enable_job", "tick", "--out", "json"]).await);
    assert_eq!(out["changes"], serde_json::json!({"tick": "enabled"}));
    wait_returned(&master, "test.arg", before + 1, Duration::from_secs(10)).await;

    // The whole schedule off, then on.
    let out = run_json(&master.cli(&["run", "m1", "schedule.disable", "--out", "json"]).await);
    assert_eq!(out["comment"], "Disabled schedule on minion.");
    assert_eq!(run_json(&master.cli(&["run", "m1", "schedule.is_enabled", "--out", "json"]).await), false);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let before = scheduled(&master, "test.arg").await.len();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(scheduled(&master, "test.arg").await.len(), before, "a job ran with the schedule disabled");
    let out = run_json(&master.cli(&["run", "m1", "schedule.enable", "--out", "json"]).await);
    assert_eq!(out["changes"], serde_json::json!({"schedule": "enabled"}));
    wait_returned(&master, "test.arg", before + 1, Duration::from_secs(10)).await;

    // run_job starts the hourly job now; delete removes an entry; a bad one is refused.
    let out = run_json(&master.cli(&["run", "m1", "schedule.run_job", "cfgjob", "--out", "json"]).await);
    assert_eq!(out["comment"], "Scheduling Job cfgjob on minion.");
    wait_returned(&master, "test.ping", 1, Duration::from_secs(10)).await;
    let out = run_json(&master.cli(&["run", "m1", "schedule.delete", "tick", "--out", "json"]).await);
    assert_eq!(out["changes"], serde_json::json!({"tick": "removed"}));
    let out =
        master.cli(&["run", "m1", "schedule.add", "bad", "function=test.ping", "cron=* * *", "--out", "json"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("expected 5 fields"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_schedule_runs_a_job_on_its_target() {
    let extra = "[schedule.pingall]\nfunction = \"test.ping\"\ntgt = \"m*\"\nseconds = 1\n".to_string();
    let master = TestMaster::start(MasterOpts { extra, ..Default::default() }).await;
    let minion = TestMinion::start(&master.url(), "m1", MinionOpts::default()).await;
    master.wait_key("m1", "Unaccepted Keys:").await;
    master.accept(&minion).await;
    let jobs = wait_returned(&master, "test.ping", 1, Duration::from_secs(15)).await;
    let (jid, job) = jobs.iter().find(|(_, j)| j["Returned"] == 1).unwrap();
    assert_eq!(job["Target"], "m*");
    let shown = master.cli(&["job", "show", jid]).await;
    assert_eq!(shown.stdout, "m1:\n    True\n", "{shown:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_return_speaks_only_for_its_minion_and_its_own_job() {
    use brine_proto::envelope::{seal, Stamp};
    use brine_proto::msg::{Return, ScheduledRun};
    use brine_proto::{Jid, MinionId};
    let master = TestMaster::start(MasterOpts::default()).await;
    let a = TestMinion::start(&master.url(), "a", MinionOpts::default()).await;
    let b = TestMinion::start(&master.url(), "b", MinionOpts::default()).await;
    for m in [&a, &b] {
        master.wait_key(&m.id, "Unaccepted Keys:").await;
        master.accept(m).await;
    }
    let out = master.cli(&["run", "*", "test.echo", "real", "-v"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let jid: Jid = out.stdout.lines().next().unwrap().trim_start_matches("Executing job with jid ").parse().unwrap();

    let (client, _) = connect_as(&master.url(), &a.key_path(), "_INBOX_a", &master.ca_path()).await;
    let js = async_nats::jetstream::new(client.clone());
    let a_key = brine_proto::keys::load_key(&a.key_path()).unwrap();
    let forged = |id: &str, jid: Jid| Return {
        stamp: Stamp::new(jid.to_string(), Duration::from_secs(600)),
        jid,
        id: MinionId::new(id).unwrap(),
        fun: "test.echo".into(),
        ret: "forged".into(),
        retcode: 0,
        success: true,
        started_at: brine_proto::time::now_ms(),
        duration_ms: 1,
        schedule: Some(Box::new(ScheduledRun {
            name: "x".into(),
            arg: vec!["forged".into()],
            kwarg: Default::default(),
        })),
    };
    let publish = |subject: String, bytes: Vec<u8>| {
        let js = js.clone();
        async move { js.publish(subject, bytes.into()).await.unwrap().await.unwrap() }
    };
    // Marked as scheduled, with the JID of the operator's job: filed as a job of its own.
    let sealed = seal(&forged("a", jid), &a_key).unwrap();
    publish(format!("brine.ret.a.{jid}"), sealed.clone()).await;
    // The same run delivered again is stored once.
    publish(format!("brine.ret.a.{jid}"), sealed).await;
    // Signed by a, claiming to be b's scheduled run.
    publish(format!("brine.ret.a.{jid}"), seal(&forged("b", jid), &a_key).unwrap()).await;

    let m = master.master();
    assert!(
        eventually(Duration::from_secs(10), || {
            let s = m.stats();
            s.returns_malformed == 1 && s.returns_duplicate == 1
        })
        .await,
        "{:?}",
        m.stats()
    );
    let out = master.cli(&["job", "show", &jid.to_string(), "--out", "json"]).await;
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"a": "real", "b": "real"}), "the operator's job is untouched");
    let filed = scheduled(&master, "test.echo").await;
    assert_eq!(filed.len(), 1, "{filed:?}");
    let (filed_jid, job) = &filed[0];
    assert_ne!(filed_jid, &jid.to_string(), "the master issues the JID");
    assert_eq!((job["Target"].as_str(), job["Returned"].as_u64()), (Some("L@a"), Some(1)));
    let shown = master.cli(&["job", "show", filed_jid]).await;
    assert_eq!(shown.stdout, "a:\n    forged\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jid_include_false_keeps_a_run_out_of_saltutil_running() {
    let (master, _minion) = one_minion(MinionOpts::default()).await;
    for (name, include) in [("shown", "True"), ("hidden", "False")] {
        let jid_include = format!("jid_include={include}");
        let args = [
            "run",
            "m1",
            "schedule.add",
            name,
            "function=test.sleep",
            "job_args=[3]",
            "seconds=60",
            "run_on_start=True",
        ];
        let mut args = args.to_vec();
        args.push(&jid_include);
        assert_eq!(master.cli(&args).await.code, 0);
    }
    // Both start at once; only the listed one is in saltutil.running.
    let deadline = Instant::now() + Duration::from_secs(10);
    let running = loop {
        let running = run_json(&master.cli(&["run", "m1", "saltutil.running", "--out", "json"]).await);
        let sleeps: Vec<Value> =
            running.as_array().unwrap().iter().filter(|j| j["fun"] == "test.sleep").cloned().collect();
        if !sleeps.is_empty() {
            break sleeps;
        }
        assert!(Instant::now() < deadline, "no scheduled run showed up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!(running[0]["user"], "schedule");
    // Both return to the job cache.
    wait_returned(&master, "test.sleep", 2, Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_schedule_waits_for_returns_before_the_next_run() {
    let extra = "[schedule.slow]\nfunction = \"test.sleep\"\nargs = [2]\ntgt = \"m1\"\nseconds = 1\n".to_string();
    let master = TestMaster::start(MasterOpts { extra, ..Default::default() }).await;
    let minion = TestMinion::start(&master.url(), "m1", MinionOpts::default()).await;
    master.wait_key("m1", "Unaccepted Keys:").await;
    master.accept(&minion).await;
    let jobs = wait_returned(&master, "test.sleep", 2, Duration::from_secs(20)).await;
    let store = &master.master().shared().store;
    let mut runs: Vec<(u64, u64)> = jobs
        .iter()
        .flat_map(|(jid, _)| store.returns(jid.parse().unwrap()).unwrap())
        .map(|r| (r.started_at, r.started_at + r.duration_ms))
        .collect();
    runs.sort();
    assert!(runs.len() >= 2, "{runs:?}");
    for pair in runs.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "maxrunning 1: two runs overlapped: {runs:?}");
    }
}
