//! Operator ACLs (like Salt's publisher_acl) and the audit log of operator requests.

use brine_proto::envelope::{open, seal, Stamp};
use brine_proto::keys::Fingerprint;
use brine_proto::msg::{Ctl, CtlErrorKind, CtlOp, CtlReply, CtlResult};
use brine_tests::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A key pair written the way an operator would keep it: private 0600, public SPKI.
fn operator_key(dir: &Path, name: &str) -> (PathBuf, ed25519_dalek::VerifyingKey) {
    let key = brine_proto::keys::generate_key();
    let private = dir.join(format!("{name}.pem"));
    brine_proto::keys::write_private_key(&private, &key).unwrap();
    brine_proto::keys::write_public_key(&dir.join(format!("{name}.pub")), &key.verifying_key()).unwrap();
    (private, key.verifying_key())
}

struct Fleet {
    master: TestMaster,
    minions: Vec<TestMinion>,
    keys: tempfile::TempDir,
}

impl Fleet {
    /// web1 and app1 (grain role: web) and db1 (role: db); alice may run `test.*` on
    /// `web* or G@role:web` and nothing else; carol may manage keys and read jobs but
    /// run nothing.
    async fn start() -> Fleet {
        let keys = tempfile::tempdir().unwrap();
        operator_key(keys.path(), "alice");
        operator_key(keys.path(), "carol");
        let extra = format!(
            "[operators.alice]\nkey = {:?}\n\n[[operators.alice.acl]]\ntarget = \"web* or G@role:web\"\n\
             functions = [\"test.*\"]\n\n[operators.carol]\nkey = {:?}\nkeys = true\njobs = true\n",
            keys.path().join("alice.pub").display().to_string(),
            keys.path().join("carol.pub").display().to_string(),
        );
        let master = TestMaster::start(MasterOpts { extra, ..Default::default() }).await;
        let mut minions = Vec::new();
        for (id, role) in [("web1", "web"), ("app1", "web"), ("db1", "db")] {
            let tables = format!("[grains]\nrole = \"{role}\"\n");
            let m = TestMinion::start(&master.url(), id, MinionOpts { tables, ..Default::default() }).await;
            master.wait_key(id, "Unaccepted Keys:").await;
            minions.push(m);
        }
        for m in &minions {
            master.accept(m).await;
        }
        Fleet { master, minions, keys }
    }

    /// Runs the CLI as a named operator with its key.
    async fn cli_as(&self, name: &str, args: &[&str]) -> CliOutput {
        self.cli_as_with_key(name, name, args).await
    }

    /// Runs the CLI as operator `name` with the key of operator `key`.
    async fn cli_as_with_key(&self, name: &str, key: &str, args: &[&str]) -> CliOutput {
        let key = self.keys.path().join(format!("{key}.pem"));
        let mut argv = vec!["--operator", name, "--key", key.to_str().unwrap()];
        argv.extend_from_slice(args);
        self.master.cli(&argv).await
    }

    fn jobs_run(&self) -> Vec<u64> {
        self.minions.iter().map(|m| m.minion().counters().jobs_run).collect()
    }

    fn audit(&self) -> (String, Vec<Value>) {
        let text = std::fs::read_to_string(self.master.dir.join("master/audit.log")).unwrap();
        let lines = text.lines().map(|l| serde_json::from_str(l).expect("one JSON document a line")).collect();
        (text, lines)
    }
}

fn jid_of(out: &CliOutput) -> String {
    out.stdout.trim().strip_prefix("Executed command with job ID: ").expect("a jid").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_run_only_what_their_acl_allows_and_every_request_is_audited() {
    let fleet = Fleet::start().await;
    let admin_job = fleet.master.cli(&["run", "db1", "test.ping", "--async"]).await;
    let admin_jid = jid_of(&admin_job);
    assert!(eventually(Duration::from_secs(10), || fleet.jobs_run() == [0, 0, 1]).await);

    // Allowed: test.* on web1, and on app1 through its grain.
    let out = fleet.cli_as("alice", &["run", "web1", "test.ping"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "web1:\n    True\n"), "{out:?}");
    let out = fleet.cli_as("alice", &["run", "-L", "web1,app1", "test.ping", "--static", "--out", "json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(serde_json::from_str::<Value>(&out.stdout).unwrap(), serde_json::json!({"web1": true, "app1": true}));
    assert!(eventually(Duration::from_secs(10), || fleet.jobs_run() == [2, 1, 1]).await, "{:?}", fleet.jobs_run());

    // Refused: a function outside the ACL, and a target reaching one minion too many.
    let published = fleet.master.master().stats().jobs_published;
    let out = fleet.cli_as("alice", &["run", "web1", "cmd.run", "echo hi"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("operator alice may not run cmd.run on web1:"), "{out:?}");
    assert!(out.stderr.contains("Nothing was run."), "{out:?}");
    let out = fleet.cli_as("alice", &["run", "*", "test.ping"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("may not run test.ping on db1:"), "only db1 is named: {out:?}");
    // With --batch the target itself is checked first.
    let out = fleet.cli_as("alice", &["run", "*", "test.ping", "--batch", "1"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("operator alice may not target db1"), "{out:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fleet.jobs_run(), [2, 1, 1], "a refused job reached a minion");
    assert_eq!(fleet.master.master().stats().jobs_published, published);
    let out = fleet.cli_as("alice", &["run", "web*", "test.ping", "--batch", "1", "--out", "txt"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "web1: True\n"), "{out:?}");

    // At the timeout, brine run asks whether the minion still runs the job
    // (saltutil.find_job): allowed for the operator's own job without an ACL entry.
    let out = fleet.cli_as("alice", &["run", "web1", "test.sleep", "1.5", "-t", "0.3"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "web1:\n    True\n"), "{out:?}");

    // Secrets in keyword arguments: the minion gets them, the audit log never does.
    let out = fleet.cli_as("alice", &["run", "web1", "test.arg", "keep-me", "password=hunter2", "user=bob"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("hunter2"), "{out:?}");

    // Keys, the job cache, the minion and inventory views need `keys` / `jobs`.
    for (args, what) in [
        (&["key", "list"][..], "may not list or change minion keys"),
        (&["key", "delete", "-y", "db1"], "may not list or change minion keys"),
        (&["job", "list"], "may not read the job cache"),
        (&["job", "show", &admin_jid], "may not read the job cache"),
        (&["minion", "list"], "may not read the job cache, the minion list or the inventory"),
        (&["inventory"], "may not read the job cache"),
    ] {
        let out = fleet.cli_as("alice", args).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains(what) && out.stderr.contains("operators.alice."), "{args:?}: {out:?}");
    }
    assert!(section(&fleet.master.cli(&["key", "list"]).await.stdout, "Accepted Keys:").contains(&"db1".to_string()));
    let out = fleet.cli_as("carol", &["key", "list"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = fleet.cli_as("carol", &["job", "show", &admin_jid]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "db1:\n    True\n"), "{out:?}");
    let out = fleet.cli_as("carol", &["run", "web1", "test.ping"]).await;
    assert_eq!(out.code, 2, "carol's ACL is empty: {out:?}");

    // An operator reads back its own jobs; killing one is a run of saltutil.kill_job,
    // which alice's ACL does not allow.
    let jid = jid_of(&fleet.cli_as("alice", &["run", "web1", "test.sleep", "30", "--async"]).await);
    let out = fleet.cli_as("alice", &["job", "show", &jid, "--summary", "--out", "json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = fleet.cli_as("alice", &["job", "kill", &jid]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("may not run saltutil.kill_job on web1"), "{out:?}");
    assert_eq!(fleet.master.cli(&["job", "kill", &jid]).await.code, 0);

    // The audit log: one line per request, in order, with its result.
    let (text, lines) = fleet.audit();
    assert!(!text.contains("hunter2"), "{text}");
    let (alice, find_job): (Vec<&Value>, Vec<&Value>) =
        lines.iter().filter(|l| l["operator"] == "alice").partition(|l| l["fun"] != "saltutil.find_job");
    assert!(!find_job.is_empty() && find_job.iter().all(|l| l["result"] == "accepted"), "{text}");
    let summary: Vec<(String, String, String)> = alice
        .iter()
        .map(|l| {
            let result = l["result"].as_str().unwrap();
            let result = if result.starts_with("refused: denied: ") { "denied" } else { result };
            (l["op"].as_str().unwrap().into(), l["fun"].as_str().unwrap_or("-").into(), result.into())
        })
        .collect();
    let expected = [
        ("run", "test.ping", "accepted"),
        ("run", "test.ping", "accepted"),
        ("run", "cmd.run", "denied"),
        ("run", "test.ping", "denied"),
        ("resolve", "-", "denied"),
        ("resolve", "-", "accepted"),
        ("run", "test.ping", "accepted"),
        ("run", "test.sleep", "accepted"),
        ("run", "test.arg", "accepted"),
        ("key.list", "-", "denied"),
        ("key.list", "-", "denied"),
        ("job.list", "-", "denied"),
        ("job.show", "-", "denied"),
        ("minion.list", "-", "denied"),
        ("inventory", "-", "denied"),
        ("run", "test.sleep", "accepted"),
        ("job.show", "-", "accepted"),
        ("job.show", "-", "accepted"),
        ("run", "saltutil.kill_job", "denied"),
    ];
    let expected: Vec<(String, String, String)> =
        expected.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(summary, expected, "{text}");

    let first = alice[0];
    assert_eq!((first["target"].as_str(), first["minions"].as_u64()), (Some("web1"), Some(1)));
    assert!(first["jid"].as_str().is_some_and(|j| j.len() == 20), "{first}");
    assert_eq!(alice[1]["target"], "L@web1,app1");
    assert_eq!(alice[1]["minions"], 2);
    assert_eq!(alice[3]["minions"], 3, "the refused run on * matched three minions");
    assert!(alice[3]["jid"].is_null());
    assert!(alice[2]["result"].as_str().unwrap().contains("cmd.run on web1"));
    let arg = alice[8];
    assert_eq!(arg["arg"], serde_json::json!(["keep-me"]));
    assert_eq!(arg["kwarg"], serde_json::json!({"password": "***", "user": "bob"}));
    let alice_fp = Fingerprint::of(&brine_proto::keys::load_public_key(&fleet.keys.path().join("alice.pub")).unwrap());
    assert!(alice.iter().all(|l| l["fingerprint"] == alice_fp.to_string()));
    assert_eq!(alice[15]["jid"].as_str(), Some(jid.as_str()));
    let time = first["time"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    // The admin and carol are audited too.
    assert!(lines.iter().any(|l| l["operator"] == "admin" && l["op"] == "key.accept" && l["result"] == "accepted"));
    let carol: Vec<&str> =
        lines.iter().filter(|l| l["operator"] == "carol").map(|l| l["result"].as_str().unwrap()).collect();
    assert_eq!(carol.len(), 3, "{carol:?}");
    assert!(carol[2].starts_with("refused: denied: operator carol may not run test.ping on web1"), "{carol:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_are_refused_and_audited() {
    let fleet = Fleet::start().await;
    let (mallory_pem, mallory) = operator_key(fleet.keys.path(), "mallory");

    // A key the master does not know is not even a NATS user.
    let out = fleet.master.cli(&["--operator", "mallory", "--key", mallory_pem.to_str().unwrap(), "key", "list"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.to_lowercase().contains("authorization"), "{out:?}");

    // A name that does not go with the key: the server keeps the connection out of
    // that operator's inbox, and the CLI says so.
    let out = fleet.cli_as_with_key("carol", "alice", &["key", "list"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("is carol the name the key is configured under"), "{out:?}");

    // Through a real operator's NATS connection, a request signed with an unknown key
    // is refused by the master.
    let alice_pem = fleet.keys.path().join("alice.pem");
    let (client, _) = connect_as(&fleet.master.url(), &alice_pem, "_OPS_alice", &fleet.master.ca_path()).await;
    let signer = brine_proto::keys::load_key(&mallory_pem).unwrap();
    let ctl = Ctl { stamp: Stamp::random(Duration::from_secs(60)), op: CtlOp::KeyList };
    let reply = client.request("brine.ctl.key.list", seal(&ctl, &signer).unwrap().into()).await.unwrap();
    let master_pub = brine_proto::keys::load_public_key(&fleet.master.dir.join("master/master.pub")).unwrap();
    let reply: CtlReply = open(&reply.payload, &master_pub, brine_proto::time::now_ms()).unwrap();
    match reply.result {
        CtlResult::Error(e) => {
            assert_eq!(e.kind, CtlErrorKind::Denied);
            assert!(e.message.contains("is not an operator of this master"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }

    let (text, lines) = fleet.audit();
    let unknown: Vec<&Value> = lines.iter().filter(|l| l["operator"] == "unknown").collect();
    assert_eq!(unknown.len(), 1, "{text}");
    assert_eq!(unknown[0]["fingerprint"], Fingerprint::of(&mallory).to_string());
    assert_eq!(unknown[0]["op"], "key.list");
    assert!(unknown[0]["result"].as_str().unwrap().starts_with("refused: denied: key "), "{text}");
}
