//! The minion swarm against a real master: many simulated minions enroll, connect
//! under their own identities and answer real jobs, none missing.

use brine_tests::swarm::{Swarm, SwarmOpts};
use brine_tests::*;
use std::time::Duration;

async fn swarm_of(master: &TestMaster, n: usize, tweak: impl FnOnce(&mut SwarmOpts)) -> (Swarm, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut opts = SwarmOpts::new(&master.url(), n, dir.path().to_path_buf());
    opts.master_key = Some(master.master().public_key());
    tweak(&mut opts);
    let swarm = Swarm::start(opts).await.expect("swarm starts");
    assert!(swarm.wait_connected(n, Duration::from_secs(60)).await, "swarm not up: {}", swarm.snapshot());
    (swarm, dir)
}

fn json_of(out: &CliOutput) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::from_str(&out.stdout) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => panic!("not a JSON object: {out:?}"),
    }
}

/// The CI-sized smoke run: every minion of the swarm answers, none missing.
const SMOKE: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_swarm_minions_all_answer_a_ping() {
    let master = TestMaster::start(MasterOpts { auto_accept: true, ..Default::default() }).await;
    let (swarm, _dir) = swarm_of(&master, SMOKE, |_| {}).await;
    let out = master.cli(&["key", "list", "--out", "json"]).await;
    let keys: serde_json::Value = serde_json::from_str(&out.stdout).expect("key list json");
    assert_eq!(keys["minions"].as_array().map(Vec::len), Some(SMOKE), "every key accepted: {out:?}");

    for _ in 0..2 {
        let out = master.cli(&["run", "*", "test.ping", "--out", "json", "--static"]).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        let rets = json_of(&out);
        let missing: Vec<String> = swarm.ids().into_iter().filter(|id| rets.get(id) != Some(&true.into())).collect();
        assert!(missing.is_empty(), "no return from {missing:?}");
        assert_eq!(rets.len(), SMOKE);
    }
    // Grains reached the master: a grain target picks exactly the web quarter.
    let out = master.cli(&["run", "-G", "role:web", "test.echo", "hi", "--out", "json", "--static"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rets = json_of(&out);
    assert_eq!(rets.len(), SMOKE / 4);
    assert!(rets.values().all(|v| v == "hi"), "{rets:?}");
    // The master answers a return handed to it directly as it stores it, so the last
    // answers may reach the swarm just after the CLI printed the returns.
    let published = 2 * SMOKE as u64 + SMOKE as u64 / 4;
    eventually(Duration::from_secs(10), || swarm.snapshot().returns_published >= published).await;
    let s = swarm.snapshot();
    assert_eq!((s.returns_published, s.jobs_refused, s.return_errors), (published, 0, 0), "{s}");
    swarm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_minions_run_states_and_silent_ones_are_reported_missing() {
    let roots = tempfile::tempdir().expect("temp dir");
    let target = roots.path().join("out");
    std::fs::create_dir_all(roots.path().join("salt")).expect("salt dir");
    std::fs::write(roots.path().join("salt/top.sls"), "base:\n  '*':\n    - hello\n").expect("top.sls");
    std::fs::write(
        roots.path().join("salt/hello.sls"),
        format!(
            "{{{{ grains['id'] }}}} file:\n  file.managed:\n    - name: {}/{{{{ grains['id'] }}}}\n    - makedirs: True\n    - contents: hello {{{{ grains['role'] }}}}\n",
            target.display()
        ),
    )
    .expect("hello.sls");
    let extra = format!("file_roots = {{ base = [{:?}] }}", roots.path().join("salt").display().to_string());
    let master = TestMaster::start(MasterOpts { auto_accept: true, extra, ..Default::default() }).await;
    // One in five never answers.
    let (swarm, _dir) = swarm_of(&master, 10, |o| o.silent = 0.2).await;

    let out = master.cli(&["run", "*", "state.apply", "--out", "json", "--static", "-t", "3", "--max-wait", "3"]).await;
    assert_eq!(out.code, 1, "two minions did not return: {out:?}");
    let rets = json_of(&out);
    let mut answered = 0;
    for (i, id) in swarm.ids().iter().enumerate() {
        let silent = i == 4 || i == 9;
        match rets.get(id) {
            Some(serde_json::Value::Object(states)) if !silent => {
                answered += 1;
                assert!(states.values().all(|s| s["result"] == true), "{id}: {states:?}");
                let role = ["web", "db", "cache", "worker"][i % 4];
                assert_eq!(std::fs::read_to_string(target.join(id)).expect("file written"), format!("hello {role}\n"));
            }
            Some(other) if silent => {
                assert!(other.to_string().contains("Minion did not return"), "{id}: {other}");
                assert!(!target.join(id).exists());
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    assert_eq!(answered, 8);
    swarm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_on_shared_connections_to_an_external_nats() {
    let nats = NatsServer::start();
    let master =
        TestMaster::start(MasterOpts { auto_accept: true, external_url: Some(nats.url()), ..Default::default() }).await;
    let (swarm, _dir) = swarm_of(&master, 100, |o| o.connections = brine_tests::swarm::Connections::Shared(3)).await;
    let out = master.cli(&["run", "*", "test.ping", "--out", "json", "--static"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rets = json_of(&out);
    assert_eq!(rets.len(), 100);
    assert!(rets.values().all(|v| v == true), "{rets:?}");
    swarm.shutdown().await;
}
