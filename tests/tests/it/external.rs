//! The master on an existing NATS server instead of its embedded one.

use brine_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_and_minion_work_over_an_external_server() {
    let nats = NatsServer::start();
    let master = TestMaster::start(MasterOpts { external_url: Some(nats.url()), ..Default::default() }).await;
    assert_eq!(master.url(), nats.url());
    let minion = TestMinion::start(
        &nats.url(),
        "ext1",
        MinionOpts { tables: "[nats]\nauth = \"none\"\n".into(), ..Default::default() },
    )
    .await;
    master.wait_key("ext1", "Unaccepted Keys:").await;
    master.accept(&minion).await;
    let out = master.cli(&["run", "ext1", "test.ping"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "ext1:\n    True\n"), "{out:?}");
    let _ = Duration::ZERO;
}
