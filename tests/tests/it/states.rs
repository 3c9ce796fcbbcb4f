//! States through a real master: highstate from the master's file server, pillar
//! rendered per minion and given to that minion only, `cp.*`, pillar targets, and the
//! refusals a hostile minion meets.

use brine_proto::envelope::{open, seal, Stamp};
use brine_proto::msg::{Rpc, RpcCall, RpcReply, RpcResult};
use brine_proto::{Map, MinionId};
use brine_tests::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A master serving a state tree and a pillar tree, and minions web1 and db1.
async fn fleet() -> (tempfile::TempDir, TestMaster, Vec<TestMinion>) {
    let trees = tempfile::tempdir().unwrap();
    let (salt, pillar) = (trees.path().join("salt"), trees.path().join("pillar"));
    write(&salt, "top.sls", "base:\n  '*':\n    - common\n  'web*':\n    - web\n");
    write(&salt, "common.sls", "hello:\n  cmd.run:\n    - name: echo role={{ pillar.role }} id={{ grains.id }}\n");
    write(
        &salt,
        "web/init.sls",
        "include:\n  - .extra\nweb-ready:\n  test.succeed_without_changes:\n    - require:\n      - cmd: extra\n\
         app-conf:\n  file.managed:\n    - name: {{ pillar.dest }}/app.conf\n    - source: salt://files/app.conf\n\
         \x20   - template: jinja\n    - makedirs: True\n",
    );
    write(&salt, "files/app.conf", "role={{ pillar.role }}\n");
    write(&salt, "web/extra.sls", "extra:\n  cmd.run:\n    - name: echo extra\n");
    write(&salt, "files/motd", "welcome to {{ nothing }}\n");
    write(&salt, "big.bin", &"x".repeat(1_300_000));
    write(&pillar, "top.sls", "base:\n  'web*':\n    - web\n  'db*':\n    - db\n");
    let dest = trees.path().join("out");
    write(&pillar, "web.sls", &format!("role: web\ndest: {:?}\n", dest.display().to_string()));
    write(&pillar, "db.sls", "role: db\ndb_password: hunter2\n");
    std::fs::write(trees.path().join("outside"), "secret").unwrap();
    let extra = format!(
        "[file_roots]\nbase = [{:?}]\n[pillar_roots]\nbase = [{:?}]\n",
        salt.display().to_string(),
        pillar.display().to_string()
    );
    let master = TestMaster::start(MasterOpts { extra, ..Default::default() }).await;
    let mut minions = Vec::new();
    for id in ["web1", "db1"] {
        let m = TestMinion::start(&master.url(), id, MinionOpts::default()).await;
        master.wait_key(id, "Unaccepted Keys:").await;
        master.accept(&m).await;
        minions.push(m);
    }
    (trees, master, minions)
}

async fn json_run(master: &TestMaster, args: &[&str]) -> (u8, Value) {
    let mut argv = vec!["run"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--static", "--out", "json"]);
    let out = master.cli(&argv).await;
    let v = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    (out.code, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn highstate_pillar_and_files_come_from_the_master() {
    let (trees, master, minions) = fleet().await;

    // Highstate: the top file, the SLS files and the pillar all from the master.
    let (code, v) = json_run(&master, &["*", "state.apply"]).await;
    assert_eq!(code, 0, "{v}");
    let web = v["web1"].as_object().unwrap();
    let hello = &web["cmd_|-hello_|-echo role=web id=web1_|-run"];
    assert_eq!(hello["changes"]["stdout"], json!("role=web id=web1"));
    let order: Vec<(&str, u64)> =
        web.values().map(|s| (s["__id__"].as_str().unwrap(), s["__run_num__"].as_u64().unwrap())).collect();
    let mut order = order;
    order.sort_by_key(|(_, n)| *n);
    assert_eq!(order.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ["hello", "extra", "web-ready", "app-conf"]);
    // A templated file from the master's file server, rendered with the minion's pillar.
    assert_eq!(std::fs::read_to_string(trees.path().join("out/app.conf")).unwrap(), "role=web\n");
    assert_eq!(v["db1"]["cmd_|-hello_|-echo role=db id=db1_|-run"]["result"], json!(true));
    assert_eq!(v["db1"].as_object().unwrap().len(), 1, "db1 gets only common");

    // The default output of a state run is Salt's highstate layout, one summary per
    // minion; --state-output terse gives one line per state.
    let out = master.cli(&["run", "web1", "state.apply"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.starts_with("web1:\n----------\n          ID: hello\n    Function: cmd.run\n"),
        "{}",
        out.stdout
    );
    // Applied again: the file is in place, only the commands run.
    assert!(out.stdout.contains("\nSummary for web1\n------------\nSucceeded: 4 (changed=2)\nFailed:    0\n"));
    let out = master.cli(&["run", "web1", "state.apply", "--state-output", "terse"]).await;
    assert!(out
        .stdout
        .contains("\n  Name: web-ready - Function: test.succeed_without_changes - Result: Clean - Started: "));
    let out = master.cli(&["run", "web1", "state.apply", "--state-output", "sideways"]).await;
    assert_eq!(out.code, 64, "{out:?}");
    // A failing state run: exit 1, and the job's summary counts states per minion.
    let out = master.cli(&["run", "db1", "state.single", "test.fail_with_changes", "name=x", "-v"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("Succeeded: 0 (changed=1)\nFailed:    1\n"), "{}", out.stdout);
    let jid = out.stdout.lines().next().unwrap().trim_start_matches("Executing job with jid ").to_string();
    let out = master.cli(&["job", "show", &jid, "--summary", "--out", "json"]).await;
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["States"]["db1"], json!({"succeeded": 0, "changed": 1, "failed": 1}));
    let out = master.cli(&["job", "show", &jid]).await;
    assert!(out.stdout.contains("Summary for db1"), "{}", out.stdout);

    // Template and YAML errors reach the operator with the file and line; nothing runs.
    write(&trees.path().join("salt"), "broken/jinja.sls", "ok:\n  test.nop\n{{ nope.attr }}\n");
    write(&trees.path().join("salt"), "broken/yaml.sls", "ok:\n  test.nop:\n    - name: x\n   bad: [\n");
    let out = master.cli(&["run", "web1", "state.apply", "broken.jinja"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.starts_with("web1:\n    Data failed to compile:\n----------\n"), "{}", out.stdout);
    assert!(out.stdout.contains("broken/jinja.sls:3") && out.stdout.contains("nope"), "{}", out.stdout);
    let out = master.cli(&["run", "web1", "state.apply", "broken.yaml"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("broken/yaml.sls:4:"), "{}", out.stdout);

    // Each minion sees its own pillar, and only its own.
    let (_, v) = json_run(&master, &["*", "pillar.items"]).await;
    assert_eq!(v["db1"], json!({"role": "db", "db_password": "hunter2"}));
    assert_eq!(v["web1"]["role"], json!("web"));
    assert!(v["web1"].get("db_password").is_none());
    let (_, v) = json_run(&master, &["web1", "pillar.get", "db_password", "none"]).await;
    assert_eq!(v["web1"], json!("none"));

    // Pillar targets, on the master and the minions.
    let (_, v) = json_run(&master, &["-I", "role:db", "test.ping"]).await;
    assert_eq!(v.as_object().unwrap().keys().cloned().collect::<BTreeSet<_>>(), BTreeSet::from(["db1".to_string()]));
    let (_, v) = json_run(&master, &["-C", "I@role:web or db*", "test.ping"]).await;
    assert_eq!(v.as_object().unwrap().len(), 2);

    // cp: a file (raw, not templated) and a file larger than one chunk, hash-checked.
    let dest = minions[0].dir.join("motd");
    let (_, v) = json_run(&master, &["web1", "cp.get_file", "salt://files/motd", dest.to_str().unwrap()]).await;
    assert_eq!(v["web1"], json!(dest.to_str().unwrap()));
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "welcome to {{ nothing }}\n");
    let (_, v) = json_run(&master, &["web1", "cp.cache_file", "salt://big.bin"]).await;
    let cached = v["web1"].as_str().unwrap().to_string();
    assert!(cached.starts_with(minions[0].dir.to_str().unwrap()), "{cached}");
    assert_eq!(std::fs::metadata(&cached).unwrap().len(), 1_300_000);
    let (_, v) = json_run(&master, &["web1", "cp.get_file_str", "salt://../outside"]).await;
    assert!(v["web1"].as_str().unwrap().contains("not allowed"), "{v}");
    let (_, v) = json_run(&master, &["web1", "cp.list_states"]).await;
    assert_eq!(v["web1"], json!(["broken.jinja", "broken.yaml", "common", "top", "web", "web.extra"]));

    // cmd.script from the file server.
    write(&trees.path().join("salt"), "scripts/hello.sh", "#!/bin/sh\necho \"hello $1\"\n");
    let (code, v) = json_run(&master, &["db1", "cmd.script", "salt://scripts/hello.sh", "world"]).await;
    assert_eq!((code, v["db1"]["stdout"].clone(), v["db1"]["retcode"].clone()), (0, json!("hello world"), json!(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minion_cannot_get_another_minions_pillar_or_leave_the_file_roots() {
    let (_trees, master, minions) = fleet().await;
    let web1 = &minions[0];
    let (client, mut events) = connect_as(&master.url(), &web1.key_path(), "_INBOX_web1", &master.ca_path()).await;
    let key = brine_proto::keys::load_key(&web1.key_path()).unwrap();
    let master_pub = brine_proto::keys::load_public_key(&master.dir.join("master/master.pub")).unwrap();
    let ask = |subject_id: &str, body_id: &str, call: RpcCall| {
        let rpc = Rpc { stamp: Stamp::random(Duration::from_secs(60)), id: MinionId::new(body_id).unwrap(), call };
        let subject = format!("brine.rpc.{subject_id}.{}", rpc.call.op());
        (subject, seal(&rpc, &key).unwrap(), rpc.stamp.id)
    };
    let pillar_call = || RpcCall::Pillar { grains: Map::new() };

    // Its own pillar, asked honestly: answered, with web1's pillar even though the
    // grains it sent claim nothing (the id comes from the authenticated subject).
    let (subject, bytes, id) = ask("web1", "web1", pillar_call());
    let answer = client.request(subject, bytes.into()).await.unwrap();
    let reply: RpcReply = open(&answer.payload, &master_pub, brine_proto::time::now_ms()).unwrap();
    assert_eq!(reply.request, id);
    assert!(matches!(&reply.result, RpcResult::Pillar { pillar, .. } if pillar.get("role") == Some(&json!("web"))));

    // db1's subject: NATS refuses the publish (permissions), so no answer ever comes.
    let (subject, bytes, _) = ask("db1", "db1", pillar_call());
    assert!(tokio::time::timeout(Duration::from_secs(2), client.request(subject, bytes.into()))
        .await
        .is_err_or_no_reply());
    // Its own subject, claiming to be db1 in the signed body: refused by the master.
    let before = master.master().stats().rpc_refused;
    let (subject, bytes, _) = ask("web1", "db1", pillar_call());
    assert!(tokio::time::timeout(Duration::from_secs(2), client.request(subject, bytes.into()))
        .await
        .is_err_or_no_reply());
    assert!(master.master().stats().rpc_refused > before);
    let mut violations = 0;
    while let Ok(ev) = events.try_recv() {
        if ev.to_string().to_lowercase().contains("permissions violation") {
            violations += 1;
        }
    }
    assert!(violations >= 1, "publishing on db1's subject is a permissions violation");

    // Paths out of the roots are refused by the file server itself.
    for path in ["../outside", "files/../../outside", "/../outside"] {
        let (subject, bytes, _) = ask("web1", "web1", RpcCall::FileHash { env: "base".into(), path: path.into() });
        let answer = client.request(subject, bytes.into()).await.unwrap();
        let reply: RpcReply = open(&answer.payload, &master_pub, brine_proto::time::now_ms()).unwrap();
        assert!(matches!(reply.result, RpcResult::BadPath(_)), "{path}: {:?}", reply.result);
    }
    let (subject, bytes, _) =
        ask("web1", "web1", RpcCall::FileRead { env: "base".into(), path: "../outside".into(), offset: 0 });
    let answer = client.request(subject, bytes.into()).await.unwrap();
    let reply: RpcReply = open(&answer.payload, &master_pub, brine_proto::time::now_ms()).unwrap();
    assert!(matches!(reply.result, RpcResult::BadPath(_)), "{:?}", reply.result);
}

/// A request that timed out or was answered by NATS with "no responders".
trait NoReply {
    fn is_err_or_no_reply(&self) -> bool;
}

impl<T, E> NoReply for Result<Result<T, E>, tokio::time::error::Elapsed> {
    fn is_err_or_no_reply(&self) -> bool {
        !matches!(self, Ok(Ok(_)))
    }
}
