//! Every target type against three minions with different custom grains.

use brine_tests::*;
use std::collections::BTreeSet;

async fn fleet() -> (TestMaster, Vec<TestMinion>) {
    let master = TestMaster::start(MasterOpts {
        extra: "[nodegroups]\neu = \"G@dc:eu\"\nwebeu = [\"N@eu\", \"and\", \"G@role:web\"]\n".into(),
        ..Default::default()
    })
    .await;
    let mut minions = Vec::new();
    for (id, role, dc) in [("web1", "web", "eu"), ("web2.example.com", "web", "us"), ("db1", "db", "eu")] {
        let tables = format!("[grains]\nrole = {role:?}\ndc = {dc:?}\nroles = [{role:?}, \"base\"]\n");
        let m = TestMinion::start(&master.url(), id, MinionOpts { tables, ..Default::default() }).await;
        master.wait_key(id, "Unaccepted Keys:").await;
        minions.push(m);
    }
    for m in &minions {
        master.accept(m).await;
    }
    (master, minions)
}

/// Who answered `test.ping` for the target.
async fn who(master: &TestMaster, args: &[&str]) -> BTreeSet<String> {
    let mut argv = vec!["run"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["test.ping", "--static", "--out", "json"]);
    let out = master.cli(&argv).await;
    if out.code == 2 {
        assert!(out.stdout.starts_with("No minions matched"), "{out:?}");
        return BTreeSet::new();
    }
    assert_eq!(out.code, 0, "{args:?}: {out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_target_type_reaches_exactly_the_right_minions() {
    let (master, _minions) = fleet().await;
    let all = set(&["web1", "web2.example.com", "db1"]);
    assert_eq!(who(&master, &["*"]).await, all);
    assert_eq!(who(&master, &["web*"]).await, set(&["web1", "web2.example.com"]));
    assert_eq!(who(&master, &["web?"]).await, set(&["web1"]));
    assert_eq!(who(&master, &["-L", "web1,db1"]).await, set(&["web1", "db1"]));
    assert_eq!(who(&master, &["-E", r"web\d\.example"]).await, set(&["web2.example.com"]));
    assert_eq!(who(&master, &["-G", "role:web"]).await, set(&["web1", "web2.example.com"]));
    assert_eq!(who(&master, &["-G", "roles:db"]).await, set(&["db1"]), "list grains match any element");
    assert_eq!(who(&master, &["-G", "dc:EU"]).await, set(&["web1", "db1"]), "grain values ignore case");
    assert_eq!(who(&master, &["-P", "dc:(eu|us)"]).await, all);
    assert_eq!(who(&master, &["-S", "127.0.0.0/8"]).await, all);
    assert_eq!(who(&master, &["-S", "192.0.2.254"]).await, set(&[]));
    assert_eq!(who(&master, &["-N", "eu"]).await, set(&["web1", "db1"]));
    assert_eq!(who(&master, &["-N", "webeu"]).await, set(&["web1"]));
    assert_eq!(who(&master, &["-C", "G@role:web and not G@dc:us"]).await, set(&["web1"]));
    assert_eq!(who(&master, &["-C", "G@role:db or E@web2"]).await, set(&["db1", "web2.example.com"]));
    assert_eq!(who(&master, &["-C", "( web* or db* ) and N@eu"]).await, set(&["web1", "db1"]));
    assert_eq!(who(&master, &["-C", "L@web1,web2.example.com not web1"]).await, set(&["web2.example.com"]));
    assert_eq!(who(&master, &["-I", "role:web"]).await, set(&[]), "no pillar yet: pillar targets match nobody");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_targets_are_refused_before_anything_is_sent() {
    let (master, minions) = fleet().await;
    for (args, needle) in [
        (vec!["-C", "G@role:web and"], "ends where a term was expected"),
        (vec!["-C", "web* and or db*"], "bad target at \"or\""),
        (vec!["-C", "Z@x"], "unknown target type Z@"),
        (vec!["-E", "web("], "bad regular expression"),
        (vec!["-G", "role"], "needs a path and a pattern"),
        (vec!["-S", "10.0.0.0/99"], "not an address or CIDR"),
        (vec!["-N", "nope"], "no such nodegroup"),
    ] {
        let mut argv = vec!["run"];
        argv.extend_from_slice(&args);
        argv.push("test.ping");
        let out = master.cli(&argv).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains(needle), "{args:?}: {out:?}");
    }
    assert!(minions.iter().all(|m| m.minion().counters().jobs_run == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minions_recheck_the_target_and_refresh_their_grains() {
    let (master, minions) = fleet().await;
    // A refreshed grain reaches the master's cache and targeting.
    let out = master.cli(&["run", "db1", "saltutil.refresh_grains"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "db1:\n    True\n"), "{out:?}");
    let out = master.cli(&["run", "-G", "role:db", "grains.get", "dc"]).await;
    assert_eq!(out.stdout, "db1:\n    eu\n");
    assert_eq!(minions[2].minion().counters().jobs_refused, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grains_set_on_a_minion_persist_and_target() {
    let (master, mut minions) = fleet().await;
    let out = master.cli(&["run", "web1", "grains.setval", "tier", "gold"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(who(&master, &["-G", "tier:gold"]).await, set(&["web1"]));
    // The grain survives a restart of the minion.
    let web1 = minions.remove(0);
    let dir = web1.dir.clone();
    let mut web1 = web1;
    web1.stop().await;
    let back = TestMinion::start_in(&dir, &master.url(), "web1", &MinionOpts::default()).await;
    assert!(back.minion().wait_connected(std::time::Duration::from_secs(20)).await);
    let out = master.cli(&["run", "web1", "grains.get", "tier"]).await;
    assert_eq!(out.stdout, "web1:\n    gold\n");
}
