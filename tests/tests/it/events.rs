//! The event bus and the reactor: `brine events` sees minion and master events,
//! forged events are dropped and counted, reactions run jobs whose returns land in the
//! job cache, a reaction loop stops at the depth limit, `brine reactor test` shows
//! what would run.

use brine_proto::envelope::{seal, Stamp};
use brine_proto::msg::Event;
use brine_tests::*;
use serde_json::{json, Value};
use std::time::Duration;

async fn accepted(master: &TestMaster, id: &str) -> TestMinion {
    let minion = TestMinion::start(&master.url(), id, MinionOpts::default()).await;
    master.wait_key(id, "Unaccepted Keys:").await;
    master.accept(&minion).await;
    minion
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"))).collect()
}

/// Runs `brine events ARGS` while `action` runs a second later.
async fn follow_while<F: std::future::Future<Output = CliOutput>>(
    master: &TestMaster,
    args: &[&str],
    action: F,
) -> (CliOutput, CliOutput) {
    let mut argv = vec!["events", "--out", "json", "--timeout", "20s"];
    argv.extend_from_slice(args);
    let delayed = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        action.await
    };
    tokio::join!(master.cli(&argv), delayed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brine_events_sees_minion_events_and_job_events() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let _a = accepted(&master, "a").await;

    let (events, run) = follow_while(
        &master,
        &["--count", "1", "myapp/*"],
        master.cli(&["run", "a", "event.send", "myapp/hello", "{x: 1}"]),
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("True"), "{run:?}");
    assert_eq!(events.code, 0, "{events:?}");
    let got = json_lines(&events.stdout);
    assert_eq!(got.len(), 1, "{events:?}");
    assert_eq!(got[0]["tag"], "myapp/hello");
    assert_eq!(got[0]["source"], "a");
    assert_eq!(got[0]["data"]["x"], 1);
    assert!(got[0]["jid"].is_string(), "fired inside a job: {got:?}");

    let (events, run) =
        follow_while(&master, &["--count", "2", "brine/job/*"], master.cli(&["run", "a", "test.echo", "hi"])).await;
    assert_eq!(run.code, 0, "{run:?}");
    let got = json_lines(&events.stdout);
    assert_eq!(got.len(), 2, "{events:?}");
    let new = got.iter().find(|e| e["tag"].as_str().unwrap().ends_with("/new")).expect("new event");
    assert_eq!(new["source"], "master");
    assert_eq!(new["data"]["fun"], "test.echo");
    assert_eq!(new["data"]["arg"], json!(["hi"]));
    assert_eq!(new["data"]["tgt"], "a");
    assert_eq!(new["data"]["tgt_type"], "glob");
    assert_eq!(new["data"]["minions"], json!(["a"]));
    assert_eq!(new["data"]["user"], "admin");
    let jid = new["data"]["jid"].as_str().unwrap();
    let ret = got.iter().find(|e| e["tag"] == format!("brine/job/{jid}/ret/a")).expect("ret event");
    assert_eq!(ret["data"]["return"], "hi");
    assert_eq!(ret["data"]["retcode"], 0);
    assert_eq!(ret["data"]["success"], true);

    // The operator's own events, and a timeout with too few events exits 1.
    let (events, sent) =
        follow_while(&master, &["--count", "1", "ops/*"], master.cli(&["event", "send", "ops/note", "{a: b}"])).await;
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(json_lines(&events.stdout)[0]["data"], json!({"a": "b", "__operator__": "admin"}));
    let quiet = master.cli(&["events", "--count", "1", "--timeout", "300ms", "nothing/*"]).await;
    assert_eq!(quiet.code, 1, "{quiet:?}");
    let bad = master.cli(&["event", "send", "a//b"]).await;
    assert_eq!(bad.code, 64, "{bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_foreign_events_are_dropped_and_counted() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let a = accepted(&master, "a").await;
    let _b = accepted(&master, "b").await;
    let m = master.master();
    let mut bus = m.shared().subscribe();
    let before = m.stats();

    let (client, _) = connect_as(&master.url(), &a.key_path(), "_INBOX_a", &master.ca_path()).await;
    let a_key = brine_proto::keys::load_key(&a.key_path()).unwrap();
    let stranger = brine_proto::keys::generate_key();
    let event = |tag: &str| Event::new(Stamp::random(Duration::from_secs(60)), tag, json!({"forged": true}));
    // Signed by a key that is not a's.
    client.publish("brine.event.a.myapp.x", seal(&event("myapp/x"), &stranger).unwrap().into()).await.unwrap();
    // a's key, but b's tag space, and the master's.
    let foreign = seal(&event("brine/minion/b/start"), &a_key).unwrap();
    client.publish("brine.event.a.brine.minion.b.start", foreign.into()).await.unwrap();
    let master_tag = seal(&event("brine/key/accept"), &a_key).unwrap();
    client.publish("brine.event.a.brine.key.accept", master_tag.into()).await.unwrap();
    // A body whose tag is not the subject's.
    client.publish("brine.event.a.myapp.y", seal(&event("myapp/z"), &a_key).unwrap().into()).await.unwrap();
    // Garbage, and a replay of a good event.
    client.publish("brine.event.a.myapp.g", bytes::Bytes::from_static(b"\xc1junk")).await.unwrap();
    let good = bytes::Bytes::from(seal(&event("myapp/ok"), &a_key).unwrap());
    client.publish("brine.event.a.myapp.ok", good.clone()).await.unwrap();
    client.publish("brine.event.a.myapp.ok", good).await.unwrap();
    client.flush().await.unwrap();

    assert!(
        eventually(Duration::from_secs(10), || {
            let s = m.stats();
            s.events_bad_signature - before.events_bad_signature == 1
                && s.events_foreign_tag - before.events_foreign_tag == 2
                && s.events_malformed - before.events_malformed == 2
                && s.events_stale - before.events_stale == 1
                && s.events_refused - before.events_refused == 6
        })
        .await,
        "{:?}",
        m.stats()
    );
    // Only the good event reached the bus's subscribers.
    let mut seen = Vec::new();
    while let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_millis(500), bus.recv()).await {
        if ev.source == "a" {
            seen.push(ev.tag.clone());
        }
    }
    assert_eq!(seen, vec!["myapp/ok".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_signed_together_each_arrive_and_each_is_checked() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let m = master.master();
    let shared = m.shared().clone();
    let batch = |prefix: &str| -> Vec<Event> {
        (0..5)
            .map(|i| Event::new(Stamp::random(Duration::from_secs(60)), format!("{prefix}/{i}"), json!({ "n": i })))
            .collect()
    };

    // One signature for five events (what ingestion does with a group's ret events):
    // `brine events` checks and prints each.
    let events = batch("batch");
    let sealed = brine_proto::envelope::seal_tree(&events, &shared.key);
    assert_eq!(brine_proto::Envelope::decode(sealed[0].as_ref().unwrap()).unwrap().v, 2);
    let emit = async {
        shared.emit_many(events).await;
        CliOutput { code: 0, stdout: String::new(), stderr: String::new() }
    };
    let (followed, _) = follow_while(&master, &["--count", "5", "batch/*"], emit).await;
    assert_eq!(followed.code, 0, "{followed:?}");
    let got: Vec<(String, Value)> = json_lines(&followed.stdout)
        .into_iter()
        .map(|e| (e["tag"].as_str().unwrap().to_string(), e["data"].clone()))
        .collect();
    let want: Vec<(String, Value)> = (0..5).map(|i| (format!("batch/{i}"), json!({ "n": i }))).collect();
    assert_eq!(got, want);

    // From another connection with the master's key (as a second master would send
    // them), a tree's events are checked one by one: a changed path or body is
    // dropped as a bad signature, the rest of the tree gets through, a replay is
    // refused.
    let mut bus = shared.subscribe();
    let before = m.stats();
    let cfg = brine_master::config::MasterConfig::load(Some(&master.config_path)).unwrap();
    let (client, _) = connect_as(&master.url(), &cfg.master_key_path(), "_INBOX_m2", &master.ca_path()).await;
    let events = batch("peer");
    let wire: Vec<Vec<u8>> =
        brine_proto::envelope::seal_tree(&events, &shared.key).into_iter().map(Result::unwrap).collect();
    let subject = |i: usize| format!("brine.event.master.peer.{i}");
    let mut bad_path = brine_proto::Envelope::decode(&wire[1]).unwrap();
    bad_path.tree.as_mut().unwrap().path[0] ^= 1;
    let mut bad_body = brine_proto::Envelope::decode(&wire[2]).unwrap();
    bad_body.body[5] ^= 1;
    for (i, bytes) in wire.iter().enumerate() {
        let bytes = match i {
            1 => rmp_serde::to_vec_named(&bad_path).unwrap(),
            2 => rmp_serde::to_vec_named(&bad_body).unwrap(),
            _ => bytes.clone(),
        };
        client.publish(subject(i), bytes.into()).await.unwrap();
    }
    client.publish(subject(0), wire[0].clone().into()).await.unwrap();
    client.flush().await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            let s = m.stats();
            s.events_bad_signature - before.events_bad_signature == 2 && s.events_stale - before.events_stale == 1
        })
        .await,
        "{:?}",
        m.stats()
    );
    let mut seen = Vec::new();
    while let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_millis(500), bus.recv()).await {
        seen.push(ev.tag.clone());
    }
    assert_eq!(seen, ["peer/0", "peer/3", "peer/4"]);
}

const REACT: &str = "\
echo_back:
  local.test.echo:
    - tgt: {{ data['id'] }}
    - arg:
      - reacted to {{ tag }}
";

const LOOP: &str = "\
{% set n = data.get('n', 0) + 1 %}
again:
  event.send:
    - tag: loop/{{ n }}
    - data: {n: {{ n }}}
";

/// A loop through a minion: the reaction makes the minion send the event again.
const MINION_LOOP: &str = "\
again:
  local.event.send:
    - tgt: {{ data['id'] }}
    - arg:
      - mloop/next
";

fn reactor_master_opts(dir: &std::path::Path) -> MasterOpts {
    let file = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).unwrap();
        dir.join(name).display().to_string()
    };
    MasterOpts {
        extra: format!(
            "[reactor]\nmax_depth = 3\n[[reactor.rules]]\ntag = \"myapp/deploy\"\nfiles = [{:?}]\n\
             [[reactor.rules]]\ntag = \"loop/*\"\nfiles = [{:?}]\n[[reactor.rules]]\ntag = \"mloop/*\"\nfiles = [{:?}]\n",
            file("react.sls", REACT),
            file("loop.sls", LOOP),
            file("mloop.sls", MINION_LOOP),
        ),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minion_event_makes_the_reactor_run_a_job_and_loops_stop_at_the_limit() {
    let files = tempfile::tempdir().unwrap();
    let master = TestMaster::start(reactor_master_opts(files.path())).await;
    let _a = accepted(&master, "a").await;
    let m = master.master();

    // The dry run shows what would run, without a master round trip.
    let test = master.cli(&["reactor", "test", "myapp/deploy", "{id: a}"]).await;
    assert_eq!(test.code, 0, "{test:?}");
    assert!(test.stdout.contains("echo_back"), "{}", test.stdout);
    assert!(test.stdout.contains("local.test.echo"), "{}", test.stdout);
    assert!(test.stdout.contains("tgt: a"), "{}", test.stdout);
    assert!(test.stdout.contains("reacted to myapp/deploy"), "{}", test.stdout);
    let list = master.cli(&["reactor", "list"]).await;
    assert!(list.stdout.contains("myapp/deploy") && list.stdout.contains("react.sls"), "{list:?}");
    assert_eq!(
        master.cli(&["reactor", "test", "nothing/here"]).await.stdout.trim(),
        "No reaction matches nothing/here."
    );

    // A minion's event → a job on that minion → its return in the job cache.
    let sent = master.cli(&["run", "a", "event.send", "myapp/deploy"]).await;
    assert_eq!(sent.code, 0, "{sent:?}");
    let mut jid = String::new();
    assert!(
        eventually(Duration::from_secs(15), || {
            let h = m.shared().clone();
            match brine_master::reactor::history(&h, 10) {
                Ok(r) => match r.iter().find(|r| r.tag == "myapp/deploy" && !r.jids.is_empty()) {
                    Some(r) => {
                        jid = r.jids[0].to_string();
                        true
                    }
                    None => false,
                },
                Err(_) => false,
            }
        })
        .await,
        "no reaction recorded"
    );
    let mut shown = CliOutput { code: 1, stdout: String::new(), stderr: String::new() };
    for _ in 0..50 {
        shown = master.cli(&["job", "show", &jid, "--out", "json"]).await;
        if shown.stdout.contains("reacted to myapp/deploy") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(shown.stdout.contains("reacted to myapp/deploy"), "{shown:?}");
    let jobs = master.cli(&["job", "list", "--function", "test.echo"]).await;
    assert!(jobs.stdout.contains("reactor"), "the job's user is reactor: {jobs:?}");
    let history = master.cli(&["reactor", "history"]).await;
    assert_eq!(history.code, 0, "{history:?}");
    assert!(history.stdout.contains(&jid) && history.stdout.contains("echo_back local.test.echo"), "{history:?}");
    assert!(history.stdout.contains("1/1 returned, 0 failed"), "{history:?}");

    // A reaction that answers its own event: depth 0, 1 and 2 react, depth 3 stops.
    let before = m.stats();
    assert_eq!(master.cli(&["event", "send", "loop/0"]).await.code, 0);
    assert!(
        eventually(Duration::from_secs(10), || m.stats().reactions_loop_stopped - before.reactions_loop_stopped == 1)
            .await,
        "{:?}",
        m.stats()
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let s = m.stats();
    assert_eq!(s.reactions_loop_stopped - before.reactions_loop_stopped, 1);
    assert_eq!(s.reactions_run - before.reactions_run, 3);
    let records = brine_master::reactor::history(m.shared(), 100).unwrap();
    let looped: Vec<_> = records.iter().filter(|r| r.tag.starts_with("loop/")).collect();
    assert_eq!(looped.len(), 4, "{looped:?}");
    // Reactions run concurrently: the stop at loop/3 may be recorded before the
    // reaction to loop/1 finishes recording, so the records' order is not checked.
    let stopped: Vec<_> = looped.iter().filter(|r| !r.ok).collect();
    assert_eq!(stopped.len(), 1, "{looped:?}");
    assert!(stopped[0].tag == "loop/3" && stopped[0].result.contains("max_depth"), "{:?}", stopped[0]);
    let mut reacted: Vec<&str> = looped.iter().filter(|r| r.ok).map(|r| r.tag.as_str()).collect();
    reacted.sort_unstable();
    assert_eq!(reacted, ["loop/0", "loop/1", "loop/2"]);

    // The same through a minion: its event.send inside a reaction's job carries the
    // job's JID, so the chain is followed and stops too.
    let before = m.stats();
    assert_eq!(master.cli(&["run", "a", "event.send", "mloop/start"]).await.code, 0);
    assert!(
        eventually(Duration::from_secs(20), || m.stats().reactions_loop_stopped - before.reactions_loop_stopped == 1)
            .await,
        "{:?}",
        m.stats()
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(m.stats().reactions_run - before.reactions_run, 3);
    let jobs = master.cli(&["job", "list", "--function", "event.send", "--out", "json"]).await;
    let by_reactor = jobs.stdout.matches("\"reactor\"").count();
    assert_eq!(by_reactor, 3, "{jobs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minion_start_presence_and_state_events_reach_subscribers() {
    let master = TestMaster::start(MasterOpts::default()).await;
    let mut bus = master.master().shared().subscribe();
    let a = accepted(&master, "a").await;
    let mut tags = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !(tags.iter().any(|t| t == "brine/minion/a/start") && tags.iter().any(|t| t == "brine/presence/change")) {
        match tokio::time::timeout_at(deadline, bus.recv()).await {
            Ok(Ok(ev)) => {
                if ev.tag == "brine/minion/a/start" {
                    assert_eq!(ev.source, "a", "signed by the minion");
                    assert_eq!(ev.data["id"], "a");
                }
                if ev.tag == "brine/presence/change" {
                    assert_eq!(ev.data["new"], json!(["a"]));
                }
                tags.push(ev.tag.clone());
            }
            other => panic!("{other:?}; saw {tags:?}"),
        }
    }
    assert!(tags.iter().any(|t| t == "brine/auth"), "{tags:?}");
    assert!(tags.iter().any(|t| t == "brine/key/accept"), "{tags:?}");

    // Salt's event.send state: changes {tag, data}; test mode sends nothing.
    let (events, run) = follow_while(
        &master,
        &["--count", "1", "myapp/*"],
        master.cli(&["run", "a", "state.single", "event.send", "name=myapp/state", "data={k: v}", "--out", "json"]),
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let ret: Value = serde_json::from_str(&run.stdout).unwrap();
    let state = ret["a"].as_object().unwrap().values().next().unwrap().clone();
    assert_eq!(state["result"], true, "{state}");
    assert_eq!(state["comment"], "Event fired");
    assert_eq!(state["changes"], json!({"tag": "myapp/state", "data": {"k": "v"}}));
    assert_eq!(json_lines(&events.stdout)[0]["data"], json!({"k": "v"}));
    let test =
        master.cli(&["run", "a", "state.single", "event.send", "name=myapp/t", "test=True", "--out", "json"]).await;
    let ret: Value = serde_json::from_str(&test.stdout).unwrap();
    let state = ret["a"].as_object().unwrap().values().next().unwrap().clone();
    assert_eq!(state["result"], Value::Null, "{state}");
    assert_eq!(state["comment"], "Event would have been fired");
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_operators_need_rights_to_read_and_send_events() {
    let keys = tempfile::tempdir().unwrap();
    for name in ["alice", "carol"] {
        let key = brine_proto::keys::generate_key();
        brine_proto::keys::write_private_key(&keys.path().join(format!("{name}.pem")), &key).unwrap();
        brine_proto::keys::write_public_key(&keys.path().join(format!("{name}.pub")), &key.verifying_key()).unwrap();
    }
    // alice may send events but not read the job cache; carol may read it.
    let extra = format!(
        "[operators.alice]\nkey = {:?}\n[[operators.alice.acl]]\ntarget = \"*\"\nfunctions = [\"event.send\"]\n\
         [operators.carol]\nkey = {:?}\njobs = true\n",
        keys.path().join("alice.pub").display().to_string(),
        keys.path().join("carol.pub").display().to_string(),
    );
    let master = TestMaster::start(MasterOpts { extra, ..Default::default() }).await;
    let as_op = |name: &'static str, args: &'static [&'static str]| {
        let key = keys.path().join(format!("{name}.pem")).display().to_string();
        let config = master.config_path.clone();
        async move {
            let mut argv = vec!["--operator", name, "--key", key.as_str()];
            argv.extend_from_slice(args);
            cli_for(&config, &argv).await
        }
    };

    // The bus carries every job's returns: reading it takes `jobs`.
    let alice = as_op("alice", &["events", "--timeout", "5s"]).await;
    assert_eq!(alice.code, 2, "{alice:?}");
    assert!(alice.stderr.contains("may not follow the event bus"), "{alice:?}");
    let (seen, sent) =
        follow_while(&master, &["--count", "1", "team/*"], as_op("alice", &["event", "send", "team/hello", "{a: 1}"]))
            .await;
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(json_lines(&seen.stdout)[0]["data"], json!({"a": 1, "__operator__": "alice"}));
    let carol = as_op("carol", &["events", "--timeout", "300ms"]).await;
    assert_eq!(carol.code, 0, "{carol:?}");

    // Sending needs an ACL entry allowing event.send; brine/ tags are the admin's.
    let denied = as_op("carol", &["event", "send", "team/x"]).await;
    assert_eq!(denied.code, 2, "{denied:?}");
    assert!(denied.stderr.contains("may not send events"), "{denied:?}");
    let reserved = as_op("alice", &["event", "send", "brine/minion/x/start"]).await;
    assert_eq!(reserved.code, 2, "{reserved:?}");
    assert!(reserved.stderr.contains("the master's own"), "{reserved:?}");
    let audit = std::fs::read_to_string(master.dir.join("master/audit.log")).unwrap();
    assert!(audit.lines().any(|l| l.contains("\"event.send\"") && l.contains("alice")), "{audit}");
}

/// The scenario: a file changes on a minion → its inotify beacon's event → a
/// reaction runs a job on that minion → the job's return is in the job cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_on_a_minion_triggers_a_job_through_its_beacon() {
    let tmp = tempfile::tempdir().unwrap();
    let watched = tmp.path().join("watched");
    std::fs::create_dir(&watched).unwrap();
    let reaction = tmp.path().join("changed.sls");
    std::fs::write(
        &reaction,
        "record_change:\n  local.cmd.run:\n    - tgt: {{ data['id'] }}\n    - arg:\n      - echo changed {{ data['path'] }} \
         {{ data['change'] }}\n",
    )
    .unwrap();
    let extra = format!(
        "[[reactor.rules]]\ntag = \"brine/beacon/*/inotify/*\"\nfiles = [{:?}]\n",
        reaction.display().to_string()
    );
    let master = TestMaster::start(MasterOpts { extra, ..Default::default() }).await;
    let tables = format!(
        "[beacons.inotify]\ninterval = 0.2\nfiles = {{ {w:?} = {{ mask = [\"create\"] }} }}\n",
        w = watched.display().to_string()
    );
    let minion = TestMinion::start(&master.url(), "m1", MinionOpts { tables, ..Default::default() }).await;
    master.wait_key("m1", "Unaccepted Keys:").await;
    master.accept(&minion).await;

    let file = watched.join("app.conf");
    std::fs::write(&file, "x").unwrap();
    let m = master.master();
    let mut jid = String::new();
    assert!(
        eventually(Duration::from_secs(20), || {
            let found = brine_master::reactor::history(m.shared(), 10)
                .ok()
                .and_then(|r| r.into_iter().find(|r| r.name == "record_change" && r.ok));
            if let Some(r) = &found {
                jid = r.jids[0].to_string();
            }
            found.is_some()
        })
        .await,
        "no reaction to the beacon event: {:?}",
        brine_master::reactor::history(m.shared(), 10)
    );
    let want = format!("changed {} IN_CREATE", file.display());
    let mut shown = CliOutput { code: 1, stdout: String::new(), stderr: String::new() };
    for _ in 0..50 {
        shown = master.cli(&["job", "show", &jid, "--out", "json"]).await;
        if shown.stdout.contains(&want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(shown.stdout.contains(&want), "{want} not in {shown:?}");
}
