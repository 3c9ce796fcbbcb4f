//! Faults the master must ride out by itself.

use brine_tests::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_restarts_a_dead_embedded_server() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let minion = TestMinion::start(&master.url(), "m1", MinionOpts::default()).await;
    master.wait_key("m1", "Unaccepted Keys:").await;
    master.accept(&minion).await;
    assert_eq!(master.cli(&["run", "m1", "test.ping"]).await.code, 0);

    let pid_file = master.dir.join("master/nats/nats.pid");
    let old: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old), nix::sys::signal::Signal::SIGKILL).unwrap();

    // A new server comes up on the same port; master and minion reconnect on their own
    // and jobs flow again, returns included (the JetStream store survived).
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let out = master.cli(&["run", "m1", "test.echo", "back", "-t", "2"]).await;
        if out.code == 0 {
            assert_eq!(out.stdout, "m1:\n    back\n");
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {out:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let new: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert_ne!(old, new);
}

/// Waits until the job's summary says `n` minions returned, and returns the summary.
async fn wait_returned(
    cli: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = CliOutput>>>,
    n: u64,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = cli().await;
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout) {
            if v["Returned"].as_u64() == Some(n) {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "never got {n} returns: {out:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_master_mid_job_loses_no_return() {
    let mut master = MasterProcess::start("auto_accept = true");
    let url = master.url();
    let mut minions = Vec::new();
    for i in 0..20 {
        minions.push(TestMinion::start(&url, &format!("m{i:02}"), MinionOpts::default()).await);
    }
    for m in &minions {
        assert!(m.minion().wait_connected(Duration::from_secs(30)).await, "{} did not connect", m.id);
    }
    // Every minion reports its grains once connected; wait until all 20 can be targeted.
    let deadline = Instant::now() + Duration::from_secs(30);
    while master.cli(&["run", "*", "test.ping", "--static", "--out", "json"]).await.stdout.matches("true").count() < 20
    {
        assert!(Instant::now() < deadline, "not all minions answer");
    }
    let out = master.cli(&["run", "*", "cmd.run", "sleep 1.5; echo done", "--async"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let jid = out.stdout.trim().strip_prefix("Executed command with job ID: ").unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    master.kill9_and_restart(Duration::from_secs(2)).await;

    let config = master.config_path.clone();
    let v = wait_returned(
        || {
            let (config, jid) = (config.clone(), jid.clone());
            Box::pin(async move { cli_for(&config, &["job", "show", &jid, "--summary", "--out", "json"]).await })
        },
        20,
    )
    .await;
    assert_eq!((v["Targeted"].as_u64(), v["Succeeded"].as_u64(), v["Failed"].as_u64()), (Some(20), Some(20), Some(0)));
    let out = master.cli(&["job", "show", &jid, "--out", "json"]).await;
    let rets: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(rets.as_object().unwrap().len(), 20);
    assert!(rets.as_object().unwrap().values().all(|r| r == "done"), "{rets}");
    // The restarted master adopted the running NATS server: the fleet never dropped.
    assert!(master.process.log().contains("adopting the nats-server"), "{}", master.process.log());
    assert!(minions.iter().all(|m| m.minion().counters().jobs_run == 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_returns_go_to_the_master_directly_and_big_ones_through_the_stream() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let m = TestMinion::start(&master.url(), "m1", MinionOpts::default()).await;
    master.wait_key("m1", "Unaccepted Keys:").await;
    master.accept(&m).await;
    assert!(m.minion().wait_connected(Duration::from_secs(30)).await);
    let stats = || master.master().stats();
    let before = stats();
    assert_eq!(master.cli(&["run", "m1", "test.ping"]).await.code, 0);
    assert_eq!(
        (stats().returns_stored - before.returns_stored, stats().returns_direct - before.returns_direct),
        (1, 1)
    );
    // 300 000 bytes of output: over the direct limit, so through the stream.
    let big = "head -c 300000 /dev/zero | tr '\\0' x";
    let out = master.cli(&["run", "m1", "cmd.run", big, "--out", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["m1"].as_str().map(str::len), Some(300_000));
    let s = stats();
    assert_eq!((s.returns_stored - before.returns_stored, s.returns_direct - before.returns_direct), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_that_does_not_answer_gets_the_return_through_the_stream() {
    // The master's process is frozen (SIGSTOP) while a job finishes: the return handed
    // to it directly is not answered in time, so the minion sends it through the
    // returns stream, and the master stores it once when it runs again.
    let master = MasterProcess::start("auto_accept = true");
    let m = TestMinion::start(&master.url(), "m1", MinionOpts::default()).await;
    assert!(m.minion().wait_connected(Duration::from_secs(30)).await);
    let deadline = Instant::now() + Duration::from_secs(30);
    while master.cli(&["run", "m1", "test.ping"]).await.code != 0 {
        assert!(Instant::now() < deadline, "the minion never answered");
    }
    let out = master.cli(&["run", "m1", "cmd.run", "sleep 0.5; echo late", "--async"]).await;
    let jid = out.stdout.trim().strip_prefix("Executed command with job ID: ").unwrap().to_string();
    let pid = nix::unistd::Pid::from_raw(master.process.pid());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    // Past the minion's 5 s wait for a direct answer.
    tokio::time::sleep(Duration::from_secs(7)).await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = master.cli(&["job", "show", &jid, "--out", "json"]).await;
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        if v.as_object().is_some_and(|o| !o.is_empty()) {
            assert_eq!(v, serde_json::json!({"m1": "late"}));
            break;
        }
        assert!(Instant::now() < deadline, "no return: {}", master.process.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let summary = master.cli(&["job", "show", &jid, "--summary", "--out", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&summary.stdout).unwrap();
    assert_eq!((v["Returned"].as_u64(), v["Succeeded"].as_u64()), (Some(1), Some(1)), "{v}");
    assert_eq!(m.minion().counters().returns_published, 2, "the ping's and the job's, each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_during_a_job_loses_no_return() {
    let mut nats = NatsServer::start();
    let master =
        TestMaster::start(MasterOpts { external_url: Some(nats.url()), auto_accept: true, ..Default::default() }).await;
    let mut minions = Vec::new();
    for i in 0..3 {
        let opts = MinionOpts { tables: "[nats]\nauth = \"none\"\n".into(), ..Default::default() };
        minions.push(TestMinion::start(&nats.url(), &format!("n{i}"), opts).await);
    }
    for m in &minions {
        assert!(m.minion().wait_connected(Duration::from_secs(30)).await);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while master.cli(&["run", "*", "test.ping", "--static", "--out", "json"]).await.stdout.matches("true").count() < 3 {
        assert!(Instant::now() < deadline, "not all minions answer");
    }
    let out = master.cli(&["run", "*", "cmd.run", "sleep 1; echo survived", "--async"]).await;
    let jid = out.stdout.trim().strip_prefix("Executed command with job ID: ").unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    nats.stop();
    // The jobs finish while the server is down; their returns wait in the spools.
    tokio::time::sleep(Duration::from_secs(10)).await;
    nats.restart();
    let config = master.config_path.clone();
    let v = wait_returned(
        || {
            let (config, jid) = (config.clone(), jid.clone());
            Box::pin(async move { cli_for(&config, &["job", "show", &jid, "--summary", "--out", "json"]).await })
        },
        3,
    )
    .await;
    assert_eq!(v["Succeeded"].as_u64(), Some(3));
    // Master and minions reconnect by themselves (each on its own reconnect backoff,
    // slower on a loaded machine): within the deadline a new job works end to end.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = master.cli(&["run", "*", "test.echo", "again", "--static", "--out", "json", "-t", "10"]).await;
        if out.code == 0 {
            assert_eq!(out.stdout.matches("again").count(), 3, "{out:?}");
            break;
        }
        assert!(Instant::now() < deadline, "not every minion answers after the outage: {out:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minion_killed_mid_job_reports_it_interrupted() {
    let master = TestMaster::start(MasterOpts { auto_accept: true, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("minion.toml");
    std::fs::write(
        &conf,
        format!(
            "id = \"k1\"\nmaster = {:?}\ndata_dir = {:?}\nenroll_retry_max = \"200ms\"\npresence_interval = \"1s\"\n",
            master.url(),
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let mut minion =
        Process::start("brine-minion", &[std::ffi::OsStr::new("-c"), conf.as_os_str()], dir.path().join("log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while master.cli(&["run", "k1", "test.ping", "-t", "1"]).await.code != 0 {
        assert!(Instant::now() < deadline, "minion never answered: {}", minion.log());
    }
    let marker = dir.path().join("started");
    let cmd = format!("touch {}; sleep 3", marker.display());
    let out = master.cli(&["run", "k1", "cmd.run", &cmd, "--async"]).await;
    let jid = out.stdout.trim().strip_prefix("Executed command with job ID: ").unwrap().to_string();
    assert!(eventually(Duration::from_secs(10), || marker.exists()).await);
    minion.kill9();
    minion.start_again();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = master.cli(&["job", "show", &jid]).await;
        if !out.stdout.is_empty() {
            assert_eq!(out.stdout, "k1:\n    ERROR: the job was interrupted: the minion stopped while running it\n");
            assert_eq!(out.code, 1);
            break;
        }
        assert!(Instant::now() < deadline, "no return: {}", minion.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A bounded soak: many queued jobs on several minions while the NATS server and a
/// minion restart. Every job must end with exactly one return from every minion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_faults_loses_and_duplicates_nothing() {
    const MINIONS: usize = 6;
    const JOBS: usize = 24;
    let mut nats = NatsServer::start();
    let master =
        TestMaster::start(MasterOpts { external_url: Some(nats.url()), auto_accept: true, ..Default::default() }).await;
    let opts = MinionOpts { tables: "[nats]\nauth = \"none\"\n".into(), ..Default::default() };
    let mut minions = Vec::new();
    for i in 0..MINIONS {
        minions.push(TestMinion::start(&nats.url(), &format!("s{i}"), opts.clone()).await);
    }
    for m in &minions {
        assert!(m.minion().wait_connected(Duration::from_secs(30)).await);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while master.cli(&["run", "*", "test.ping", "--static", "--out", "json"]).await.stdout.matches("true").count()
        < MINIONS
    {
        assert!(Instant::now() < deadline, "not all minions answer");
    }

    let stored_before = master.master().stats().returns_stored;
    let mut jids = Vec::new();
    let mut n = 0;
    while jids.len() < JOBS {
        match jids.len() {
            8 if n == 0 => {
                nats.stop();
                tokio::time::sleep(Duration::from_secs(2)).await;
                nats.restart();
                n = 1;
            }
            16 if n == 1 => {
                let m = minions.remove(0);
                minions.push(m.restart(&nats.url(), &opts, Duration::from_millis(500)).await);
                n = 2;
            }
            _ => {}
        }
        let word = format!("job{}", jids.len());
        let out =
            master.cli(&["run", "*", "cmd.run", &format!("echo {word}"), "--queue", "--ttl", "10m", "--async"]).await;
        match out.stdout.trim().strip_prefix("Executed command with job ID: ") {
            Some(jid) => jids.push((jid.to_string(), word)),
            // The server is coming back: try again.
            None => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }

    let deadline = Instant::now() + Duration::from_secs(90);
    for (jid, word) in &jids {
        loop {
            let out = master.cli(&["job", "show", jid, "--out", "json"]).await;
            let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
            let rets = v.as_object().cloned().unwrap_or_default();
            if rets.len() == MINIONS {
                assert!(rets.values().all(|r| r == word.as_str()), "{jid}: {v}");
                break;
            }
            assert!(Instant::now() < deadline, "job {jid} has {} of {MINIONS} returns: {v}", rets.len());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let out = master.cli(&["job", "show", jid, "--summary", "--out", "json"]).await;
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(
            (v["Targeted"].as_u64(), v["Returned"].as_u64()),
            (Some(MINIONS as u64), Some(MINIONS as u64)),
            "{jid}"
        );
    }
    // Stored exactly once each, whatever was redelivered.
    assert_eq!(master.master().stats().returns_stored - stored_before, (JOBS * MINIONS) as u64);
}
