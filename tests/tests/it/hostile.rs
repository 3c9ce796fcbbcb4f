//! Garbage, truncated, oversized and replayed messages on every subject: nothing
//! crashes, nothing takes effect, every drop is counted.

use brine_tests::*;
use futures::StreamExt;
use std::time::Duration;

async fn accepted(master: &TestMaster, id: &str) -> TestMinion {
    let minion = TestMinion::start(&master.url(), id, MinionOpts::default()).await;
    master.wait_key(id, "Unaccepted Keys:").await;
    master.accept(&minion).await;
    minion
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_on_every_subject_is_dropped_and_counted() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let a = accepted(&master, "a").await;
    let m = master.master();
    let before = m.stats();
    let junk: Vec<bytes::Bytes> = vec![
        bytes::Bytes::from_static(b""),
        bytes::Bytes::from_static(b"\xc1\xc1\xc1"),
        bytes::Bytes::from_static(b"\x85\xa1v\x01\xa4kind\xa3job"),
        bytes::Bytes::from(vec![0x91u8; 4096]),
        // Big, but under the server's payload limit.
        bytes::Bytes::from(vec![0xdcu8; 6 * 1024 * 1024]),
    ];

    // As a connection without credentials: enrollment.
    let anon = tls(async_nats::ConnectOptions::new().custom_inbox_prefix("_ENROLL"), Some(&master.ca_path()))
        .connect(master.url())
        .await
        .unwrap();
    for j in &junk {
        let _ = tokio::time::timeout(Duration::from_millis(300), anon.request("brine.enroll", j.clone())).await;
    }

    // As minion a: returns, presence, minion requests.
    let (client, _) = connect_as(&master.url(), &a.key_path(), "_INBOX_a", &master.ca_path()).await;
    let js = async_nats::jetstream::new(client.clone());
    for j in &junk {
        js.publish("brine.ret.a.20260101000000000000", j.clone()).await.unwrap().await.unwrap();
        client.publish("brine.presence.a", j.clone()).await.unwrap();
        let _ = tokio::time::timeout(Duration::from_millis(300), client.request("brine.rpc.a.grains", j.clone())).await;
    }
    client.flush().await.unwrap();

    // As the operator: requests.
    let admin = master.dir.join("master/operators/admin.pem");
    let (op, _) = connect_as(&master.url(), &admin, "_OPS_admin", &master.ca_path()).await;
    for j in &junk {
        let _ = tokio::time::timeout(Duration::from_millis(300), op.request("brine.ctl.run", j.clone())).await;
    }

    let n = junk.len() as u64;
    assert!(
        eventually(Duration::from_secs(15), || {
            let s = m.stats();
            s.enroll_refused - before.enroll_refused == n
                && s.returns_malformed - before.returns_malformed == n
                && s.presence_refused - before.presence_refused == n
                && s.rpc_refused - before.rpc_refused == n
                && s.ctl_refused - before.ctl_refused == n
        })
        .await,
        "{:?}",
        m.stats()
    );
    // Nothing was stored, and everything still works.
    assert_eq!(m.stats().returns_stored, before.returns_stored);
    assert_eq!(master.cli(&["run", "a", "test.ping"]).await.code, 0);
    assert_eq!(a.minion().counters().jobs_refused, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_requests_and_returns_have_no_effect() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let a = accepted(&master, "a").await;
    let master_pem = master.dir.join("master/master.pem");
    // The master's own identity may listen everywhere: capture a real request and return.
    let (spy, _) = connect_as(&master.url(), &master_pem, "_INBOX_spy", &master.ca_path()).await;
    let mut ctl = spy.subscribe("brine.ctl.run").await.unwrap();
    // A running master takes returns directly (`brine.dret`), not through the stream.
    let mut rets = spy.subscribe("brine.dret.>").await.unwrap();
    spy.flush().await.unwrap();
    let out = master.cli(&["run", "a", "test.echo", "once", "-v"]).await;
    assert_eq!(out.code, 0);
    let jid = out.stdout.lines().next().unwrap().trim_start_matches("Executing job with jid ").to_string();
    let request = tokio::time::timeout(Duration::from_secs(5), ctl.next()).await.unwrap().unwrap();
    let ret = tokio::time::timeout(Duration::from_secs(5), rets.next()).await.unwrap().unwrap();

    let m = master.master();
    let before = m.stats();
    // The operator's signed request again: refused as a replay, no second job.
    let _ =
        tokio::time::timeout(Duration::from_millis(500), spy.request("brine.ctl.run", request.payload.clone())).await;
    // The minion's signed return again: handed over directly (the master answers that
    // it has it), and through the stream under a new message id so JetStream delivers it.
    let answer = spy.request(ret.subject.clone(), ret.payload.clone()).await.unwrap();
    assert_eq!(answer.payload.as_ref(), brine_proto::msg::RETURN_STORED);
    let js = async_nats::jetstream::new(spy.clone());
    let publish =
        async_nats::jetstream::message::PublishMessage::build().payload(ret.payload.clone()).message_id("replay-1");
    let stream_subject = ret.subject.replacen("brine.dret.", "brine.ret.", 1);
    js.send_publish(stream_subject, publish).await.unwrap().await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            let s = m.stats();
            s.ctl_refused == before.ctl_refused + 1 && s.returns_duplicate == before.returns_duplicate + 2
        })
        .await,
        "{:?}",
        m.stats()
    );
    assert_eq!(m.stats().jobs_published, before.jobs_published);
    let out = master.cli(&["job", "show", &jid, "--summary", "--out", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["Returned"], 1, "the replayed return was not counted twice");
    assert_eq!(a.minion().counters().jobs_run, 1);
}
