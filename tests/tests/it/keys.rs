//! Enrollment and key management, as an operator sees it.

use brine_minion::Status;
use brine_proto::msg::KeyStatus;
use brine_tests::*;
use futures::StreamExt;
use std::time::Duration;

async fn wait_status(minion: &TestMinion, want: Status) {
    let mut rx = minion.minion().status();
    let got = tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|s| *s == want)).await.is_ok();
    assert!(got, "{} never reached {want:?}; now {:?}", minion.id, *rx.borrow());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_gets_no_jobs() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let minion = TestMinion::start(&master.url(), "m1", MinionOpts::default()).await;
    master.wait_key("m1", "Unaccepted Keys:").await;
    let out = master.cli(&["key", "reject", "m1", "-y"]).await;
    assert_eq!(
        out.stdout,
        "The following keys are going to be rejected:\nUnaccepted Keys:\nm1\nKey for minion m1 rejected.\n"
    );
    wait_status(&minion, Status::Enrolling(Some(KeyStatus::Rejected))).await;
    let out = master.cli(&["run", "*", "test.ping"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(
        master.cli(&["key", "list"]).await.stdout,
        "Accepted Keys:\nDenied Keys:\nUnaccepted Keys:\nRejected Keys:\nm1\n"
    );
    // A plain accept does not take a rejected key...
    let out = master.cli(&["key", "accept", "m1", "-y"]).await;
    assert_eq!(out.stdout, "The key glob 'm1' does not match any unaccepted keys.\n");
    // ...--include-rejected does.
    let out = master.cli(&["key", "accept", "m1", "-y", "--include-rejected"]).await;
    assert!(out.stdout.ends_with("Key for minion m1 accepted.\n"), "{out:?}");
    assert!(minion.minion().wait_connected(Duration::from_secs(20)).await);
    assert_eq!(master.cli(&["run", "m1", "test.ping"]).await.code, 0);
    assert_eq!(minion.minion().counters().jobs_run, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_key_disconnects_the_minion() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let minion = TestMinion::start(&master.url(), "m1", MinionOpts::default()).await;
    master.wait_key("m1", "Unaccepted Keys:").await;
    master.accept(&minion).await;
    assert_eq!(master.cli(&["run", "m1", "test.ping"]).await.code, 0);

    // Declining the prompt changes nothing.
    let out = master.cli_with_input(&["key", "delete", "m1"], "\n").await;
    assert_eq!(out.stdout, "The following keys are going to be deleted:\nAccepted Keys:\nm1\nProceed? [N/y] ");
    assert_eq!(master.master().shared().registry.accepted().len(), 1);

    let out = master.cli_with_input(&["key", "delete", "m1"], "y\n").await;
    assert!(out.stdout.ends_with("Key for minion m1 deleted.\n"), "{out:?}");
    // Someone holding the stolen, now revoked key cannot log in with it.
    let key = brine_proto::keys::load_key(&minion.key_path()).unwrap();
    let seed = brine_master::nats::nkey_seed(&key).unwrap();
    let rogue = tls(async_nats::ConnectOptions::with_nkey(seed), Some(&master.ca_path())).connect(master.url()).await;
    assert!(rogue.is_err(), "a revoked key must not connect");
    // The server drops the session; the minion notices and enrolls again, as pending.
    wait_status(&minion, Status::Enrolling(Some(KeyStatus::Pending))).await;
    master.wait_key("m1", "Unaccepted Keys:").await;
    let out = master.cli(&["run", "*", "test.ping"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(minion.minion().counters().jobs_run, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_key_for_an_accepted_id_is_denied() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let real = TestMinion::start(&master.url(), "web1", MinionOpts::default()).await;
    master.wait_key("web1", "Unaccepted Keys:").await;
    master.accept(&real).await;

    let impostor = TestMinion::start(&master.url(), "web1", MinionOpts::default()).await;
    wait_status(&impostor, Status::Enrolling(Some(KeyStatus::Denied))).await;
    master.wait_key("web1", "Denied Keys:").await;
    let listing = master.cli(&["key", "list"]).await.stdout;
    assert_eq!(section(&listing, "Accepted Keys:"), vec!["web1"]);

    // `accept --all` takes pending keys only: the denied key stays denied.
    let out = master.cli(&["key", "accept", "--all", "-y"]).await;
    assert_eq!(out.stdout, "There are no unaccepted keys.\n");

    let out = master.cli(&["run", "*", "test.ping"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "web1:\n    True\n"));
    assert_eq!(real.minion().counters().jobs_run, 1);
    assert_eq!(impostor.minion().counters().jobs_run, 0);

    // Fingerprints tell the two keys apart.
    let out = master.cli(&["key", "finger", "web1"]).await;
    let real_fp = brine_proto::keys::Fingerprint::of(&real.minion().public_key()).to_string();
    let fake_fp = brine_proto::keys::Fingerprint::of(&impostor.minion().public_key()).to_string();
    assert_eq!(out.stdout, format!("Accepted Keys:\nweb1:  {real_fp}\nDenied Keys:\nweb1:  {fake_fp}\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_accept_lets_minions_straight_in_and_key_changes_are_events() {
    let master = TestMaster::start(MasterOpts { auto_accept: true, ..Default::default() }).await;
    let admin_key = master.dir.join("master/operators/admin.pem");
    let (watcher, _ev) = connect_as(&master.url(), &admin_key, "_OPS_admin", &master.ca_path()).await;
    let mut events = watcher.subscribe("brine.event.master.brine.key.>").await.unwrap();
    watcher.flush().await.unwrap();

    let minion = TestMinion::start(&master.url(), "auto1", MinionOpts::default()).await;
    assert!(minion.minion().wait_connected(Duration::from_secs(20)).await);
    assert_eq!(master.cli(&["run", "auto1", "test.ping"]).await.code, 0);
    assert_eq!(master.cli(&["key", "delete", "auto1", "-y"]).await.code, 0);

    let mut tags = Vec::new();
    while tags.len() < 2 {
        let msg = tokio::time::timeout(Duration::from_secs(10), events.next()).await.expect("event").expect("open");
        let ev: brine_proto::msg::Event =
            brine_proto::envelope::open(&msg.payload, &master.master().public_key(), brine_proto::time::now_ms())
                .expect("events are signed by the master");
        assert_eq!(ev.data["id"], "auto1");
        tags.push(ev.tag);
    }
    assert_eq!(tags, vec!["brine/key/accept", "brine/key/delete"]);
}
