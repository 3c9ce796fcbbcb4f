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
