//! Forged, replayed, expired and misrouted messages; NATS confinement of minions.

use brine_proto::envelope::{seal, Stamp};
use brine_proto::msg::{Job, Return};
use brine_proto::{Jid, MinionId, Target};
use brine_tests::*;
use futures::StreamExt;
use std::time::Duration;

async fn accepted(master: &TestMaster, id: &str) -> TestMinion {
    let minion = TestMinion::start(&master.url(), id, MinionOpts::default()).await;
    master.wait_key(id, "Unaccepted Keys:").await;
    master.accept(&minion).await;
    minion
}

fn job(jid: Jid, target: Target, issued_at: u64, expires_at: u64) -> Job {
    Job {
        stamp: Stamp { id: jid.to_string(), issued_at, expires_at },
        jid,
        target,
        fun: "test.ping".into(),
        arg: vec![],
        kwarg: Default::default(),
        user: "mallory".into(),
        queued: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_expired_and_misdirected_jobs_are_refused() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let mut minion = accepted(&master, "m1").await;
    let master_pem = master.dir.join("master/master.pem");
    let master_key = brine_proto::keys::load_key(&master_pem).unwrap();
    // Listen to the job subject with the master's own NATS identity to capture a real job.
    let (spy, _) = connect_as(&master.url(), &master_pem, "_INBOX_spy", &master.ca_path()).await;
    let mut jobs = spy.subscribe("brine.job.>").await.unwrap();
    spy.flush().await.unwrap();
    assert_eq!(master.cli(&["run", "m1", "test.ping"]).await.code, 0);
    let real = tokio::time::timeout(Duration::from_secs(5), jobs.next()).await.unwrap().unwrap();
    let m = minion.minion();
    assert_eq!((m.counters().jobs_run, m.counters().jobs_refused), (1, 0));

    let refused_after = |n: u64| {
        let m = minion.minion();
        async move { eventually(Duration::from_secs(10), || m.counters().jobs_refused >= n).await }
    };

    // 1. The same job again: refused as a replay.
    spy.publish(real.subject.clone(), real.payload.clone()).await.unwrap();
    assert!(refused_after(1).await);

    let now = brine_proto::time::now_ms();
    let id = MinionId::new("m1").unwrap();
    let subjects = brine_proto::Subjects::default();
    // 2. Signed by a key that is not the pinned master key.
    let jid = Jid::from_micros(brine_proto::time::now_micros());
    let rogue = brine_proto::keys::generate_key();
    let forged = seal(&job(jid, Target::Glob("*".into()), now, now + 60_000), &rogue).unwrap();
    spy.publish(subjects.job(&id, jid), forged.into()).await.unwrap();
    assert!(refused_after(2).await);

    // 3. Signed by the master but expired.
    let jid = Jid::from_micros(brine_proto::time::now_micros());
    let stale = seal(&job(jid, Target::Glob("*".into()), now - 1_200_000, now - 600_000), &master_key).unwrap();
    spy.publish(subjects.job(&id, jid), stale.into()).await.unwrap();
    assert!(refused_after(3).await);
    let why = minion.minion().last_refusal().unwrap();
    assert!(why.contains("clock is about 1200s ahead of the master's") && why.contains("NTP"), "{why}");

    // 4. Signed by the master, in date, but targeting someone else.
    let jid = Jid::from_micros(brine_proto::time::now_micros());
    let elsewhere = seal(&job(jid, Target::Glob("db*".into()), now, now + 60_000), &master_key).unwrap();
    spy.publish(subjects.job(&id, jid), elsewhere.into()).await.unwrap();
    assert!(refused_after(4).await);

    // 5. A valid job published on a subject that does not match its JID.
    let jid = Jid::from_micros(brine_proto::time::now_micros());
    let other_jid = Jid::from_micros(jid.micros() + 1);
    let moved = seal(&job(jid, Target::Glob("*".into()), now, now + 60_000), &master_key).unwrap();
    spy.publish(subjects.job(&id, other_jid), moved.into()).await.unwrap();
    assert!(refused_after(5).await);

    // 6. Garbage.
    spy.publish(subjects.job(&id, jid), "not a job".into()).await.unwrap();
    assert!(refused_after(6).await);
    assert_eq!(minion.minion().counters().jobs_run, 1);

    // 7. The replay is still refused after the minion restarts.
    let dir = minion.dir.clone();
    minion.stop().await;
    let restarted = TestMinion::start_in(&dir, &master.url(), "m1", &MinionOpts::default()).await;
    assert!(restarted.minion().wait_connected(Duration::from_secs(20)).await);
    // Connected is not yet subscribed: publish until the minion has seen the replay.
    let m = restarted.minion();
    let mut refused = false;
    for _ in 0..20 {
        spy.publish(real.subject.clone(), real.payload.clone()).await.unwrap();
        if eventually(Duration::from_millis(500), || m.counters().jobs_refused >= 1).await {
            refused = true;
            break;
        }
    }
    assert!(refused, "the replayed job was never refused after the restart");
    assert_eq!(m.counters().jobs_run, 0);
    // And a fresh job still runs.
    assert_eq!(master.cli(&["run", "m1", "test.ping"]).await.code, 0);
}

fn violations(events: &mut tokio::sync::mpsc::UnboundedReceiver<async_nats::Event>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let async_nats::Event::ServerError(e) = ev {
            out.push(e.to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minion_cannot_reach_another_minions_subjects() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let a = accepted(&master, "a").await;
    let b = accepted(&master, "b").await;
    // Mallory holds a's key and talks to NATS directly.
    let (client, mut events) = connect_as(&master.url(), &a.key_path(), "_INBOX_a", &master.ca_path()).await;
    let _sub_jobs = client.subscribe("brine.job.b.>").await.unwrap();
    let _sub_inbox = client.subscribe("_INBOX_b.>").await.unwrap();
    let _sub_rets = client.subscribe("brine.ret.>").await.unwrap();
    let _sub_direct = client.subscribe("brine.dret.>").await.unwrap();
    client.publish("brine.ret.b.20260101000000000000", "x".into()).await.unwrap();
    client.publish("brine.dret.b.20260101000000000000", "x".into()).await.unwrap();
    client.publish("brine.job.b.20260101000000000000", "x".into()).await.unwrap();
    client.publish("brine.ctl.run", "x".into()).await.unwrap();
    client.publish("brine.event.b.brine.beacon", "x".into()).await.unwrap();
    client.publish("$JS.API.STREAM.LIST", "x".into()).await.unwrap();
    client.publish("$JS.API.CONSUMER.MSG.NEXT.BRINE_QJOBS.q-b", "x".into()).await.unwrap();
    client.flush().await.unwrap();
    let mut seen = Vec::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            seen.extend(violations(&mut events));
            seen.len() >= 11
        })
        .await,
        "{seen:?}"
    );
    let lines: Vec<String> = seen.iter().map(|l| l.to_lowercase()).collect();
    for subject in [
        "brine.job.b.>",
        "_inbox_b.>",
        "brine.ret.>",
        "brine.ret.b.2026",
        "brine.dret.>",
        "brine.dret.b.2026",
        "brine.job.b.2026",
        "brine.ctl.run",
        "brine.event.b.brine.beacon",
        "$js.api.stream.list",
        "$js.api.consumer.msg.next.brine_qjobs.q-b",
    ] {
        assert!(
            lines.iter().any(|l| l.contains("permissions violation") && l.contains(subject)),
            "no violation for {subject}: {seen:?}"
        );
    }
    // b still works, and a's own subjects are open to a.
    assert_eq!(master.cli(&["run", "b", "test.ping"]).await.code, 0);
    assert_eq!(b.minion().counters().jobs_run, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_garbage_returns_are_dropped_and_counted() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let a = accepted(&master, "a").await;
    let _b = accepted(&master, "b").await;
    let out = master.cli(&["run", "*", "test.ping", "-v"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let jid: Jid = out.stdout.lines().next().unwrap().trim_start_matches("Executing job with jid ").parse().unwrap();

    let (client, _) = connect_as(&master.url(), &a.key_path(), "_INBOX_a", &master.ca_path()).await;
    let js = async_nats::jetstream::new(client.clone());
    let a_key = brine_proto::keys::load_key(&a.key_path()).unwrap();
    let ret = |id: &str, ret: serde_json::Value| Return {
        stamp: Stamp::new(jid.to_string(), Duration::from_secs(600)),
        jid,
        id: MinionId::new(id).unwrap(),
        fun: "test.ping".into(),
        ret,
        retcode: 0,
        success: true,
        started_at: brine_proto::time::now_ms(),
        duration_ms: 1,
        schedule: None,
    };
    let publish = |subject: String, bytes: Vec<u8>| {
        let js = js.clone();
        async move { js.publish(subject, bytes.into()).await.unwrap().await.unwrap() }
    };
    // Signed by a key that is not a's accepted key.
    let rogue = brine_proto::keys::generate_key();
    publish(format!("brine.ret.a.{jid}"), seal(&ret("a", "forged".into()), &rogue).unwrap()).await;
    // Signed by a, but claiming to be b's return.
    publish(format!("brine.ret.a.{jid}"), seal(&ret("b", "forged".into()), &a_key).unwrap()).await;
    // Garbage.
    publish(format!("brine.ret.a.{jid}"), b"\x00\x01garbage".to_vec()).await;
    // A return for a job that never targeted a.
    let other = Jid::from_micros(jid.micros() + 1);
    let mut stray = ret("a", true.into());
    stray.jid = other;
    stray.stamp.id = other.to_string();
    publish(format!("brine.ret.a.{other}"), seal(&stray, &a_key).unwrap()).await;
    // Handed to the master directly, as minions do: a forgery and garbage are dropped
    // and counted the same way (and answered, so a minion would not send them again).
    for bytes in [seal(&ret("a", "forged".into()), &rogue).unwrap(), b"\xc1".to_vec()] {
        let answer = client.request(format!("brine.dret.a.{jid}"), bytes.into()).await.unwrap();
        assert_eq!(answer.payload.as_ref(), brine_proto::msg::RETURN_STORED);
    }

    let m = master.master();
    assert!(
        eventually(Duration::from_secs(10), || {
            let s = m.stats();
            s.returns_bad_signature == 2 && s.returns_malformed == 3 && s.returns_unexpected == 1
        })
        .await,
        "{:?}",
        m.stats()
    );
    // The stored returns are the real ones.
    let out = master.cli(&["job", "show", &jid.to_string(), "--out", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"a": true, "b": true}));
    assert_eq!(m.stats().returns_stored, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_without_credentials_reach_nothing_but_enrollment() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let _a = accepted(&master, "a").await;
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let anon = tls(async_nats::ConnectOptions::new(), Some(&master.ca_path()))
        .custom_inbox_prefix("_ENROLL")
        .event_callback(move |ev| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(ev);
            }
        })
        .connect(master.url())
        .await
        .unwrap();
    let _s = anon.subscribe("brine.job.a.>").await.unwrap();
    anon.publish("brine.ret.a.1", "x".into()).await.unwrap();
    anon.publish("brine.ctl.run", "x".into()).await.unwrap();
    anon.flush().await.unwrap();
    let mut seen = Vec::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            seen.extend(violations(&mut events));
            seen.len() >= 3
        })
        .await,
        "{seen:?}"
    );
    // A key that is not accepted cannot log in as a minion either.
    let stranger = tempfile::tempdir().unwrap();
    let path = stranger.path().join("k.pem");
    brine_proto::keys::load_or_create_key(&path).unwrap();
    let key = brine_proto::keys::load_key(&path).unwrap();
    let seed = brine_master::nats::nkey_seed(&key).unwrap();
    let err = tls(async_nats::ConnectOptions::with_nkey(seed), Some(&master.ca_path())).connect(master.url()).await;
    assert!(err.is_err(), "an unknown nkey must not connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_traffic_is_tls_and_minions_pin_the_ca_the_master_signs_for() {
    let master = TestMaster::start(MasterOpts::default()).await;
    // A client that does not speak TLS cannot connect at all.
    let plain =
        async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(2)).connect(master.url()).await;
    assert!(plain.is_err(), "the embedded server must require TLS");
    let m = accepted(&master, "m1").await;
    let pinned = std::fs::read_to_string(m.dir.join("minion/master-ca.pem")).unwrap();
    assert_eq!(pinned.trim(), std::fs::read_to_string(master.ca_path()).unwrap().trim());
    assert_eq!(master.cli(&["run", "m1", "test.ping"]).await.code, 0);

    // A minion told to trust another master key never enrolls, and pins nothing.
    let wrong = "00:".repeat(31) + "00";
    let impostor_of = TestMinion::start(
        &master.url(),
        "m2",
        MinionOpts { extra: format!("master_finger = {wrong:?}"), ..Default::default() },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(*impostor_of.minion().status().borrow(), brine_minion::Status::Enrolling(None));
    assert!(!impostor_of.dir.join("minion/master-ca.pem").exists());
    assert!(!impostor_of.dir.join("minion/master.pub").exists());
}
