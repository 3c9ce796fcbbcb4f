//! The real binaries, as an operator starts them.

use brine_tests::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn brine(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(workspace_bin("brine")).arg("--config").arg(config).args(args).output().expect("run brine")
}

#[test]
fn binaries_run_a_job_and_exit_with_documented_codes() {
    for bin in ["brine", "brine-master", "brine-minion", "brine-call"] {
        assert!(workspace_bin(bin).exists(), "{bin} is not built: run `cargo build --bins` first");
    }
    let dir = tempfile::tempdir().unwrap();
    let (mconf, _master) = start_master(dir.path(), "");
    let _minion = start_minion(dir.path(), "bin1", &mconf, Stdio::null());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = brine(&mconf, &["key", "accept", "bin1", "-y"]);
        if String::from_utf8_lossy(&out.stdout).contains("Key for minion bin1 accepted.") {
            break;
        }
        assert!(Instant::now() < deadline, "key never pending: {out:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = brine(&mconf, &["run", "bin1", "cmd.run", "echo from-binary", "-t", "1"]);
        if out.status.code() == Some(0) {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "bin1:\n    from-binary\n");
            break;
        }
        assert!(Instant::now() < deadline, "job never ran: {out:?}");
    }
    let out = brine(&mconf, &["run", "nobody", "test.ping"]);
    assert_eq!(out.status.code(), Some(2));
    let out = brine(&mconf, &["run"]);
    assert_eq!(out.status.code(), Some(64), "usage errors exit 64");
    let out = Command::new(workspace_bin("brine"))
        .args(["--config", "/nonexistent/master.toml", "key", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/master.toml"), "{out:?}");

    // brine-call runs locally, prints {"local": ...} and exits like salt-call.
    let out =
        Command::new(workspace_bin("brine-call")).args(["--local", "--id", "x", "test.echo", "hi"]).output().unwrap();
    assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stdout).as_ref()), (Some(0), "local:\n    hi\n"));
    let out = Command::new(workspace_bin("brine-call"))
        .args(["--local", "--id", "x", "--out", "json", "cmd.run", "exit 4"])
        .output()
        .unwrap();
    assert_eq!(
        (out.status.code(), String::from_utf8_lossy(&out.stdout).as_ref()),
        (Some(1), "{\n    \"local\": \"\"\n}\n")
    );
    let out = Command::new(workspace_bin("brine-call"))
        .args(["--local", "--id", "x", "--retcode-passthrough", "cmd.run", "exit 4"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let out = Command::new(workspace_bin("brine-call")).args(["--local", "--id", "x", "no.such"]).output().unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "'no.such' is not available.\n");
}

/// A master and a `brine-minion` as operators start them, the minion accepted.
/// (Fields drop in order: the processes stop before their directory goes.)
struct Pair {
    minion: Kill,
    _master: Kill,
    mconf: std::path::PathBuf,
    dir: tempfile::TempDir,
}

/// A `brine-master` on a free port with its config in `dir` (plus `extra` lines);
/// returns the config's path once the master listens.
fn start_master(dir: &std::path::Path, extra: &str) -> (std::path::PathBuf, Kill) {
    let mconf = dir.join("master.toml");
    std::fs::write(
        &mconf,
        format!(
            "data_dir = {:?}\n{extra}\n[nats]\nlisten = \"127.0.0.1:0\"\nserver_bin = {:?}\n",
            dir.join("m").display().to_string(),
            nats_server_bin().display().to_string()
        ),
    )
    .unwrap();
    let master =
        Kill(Command::new(workspace_bin("brine-master")).arg("-c").arg(&mconf).stderr(Stdio::null()).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.join("m/nats-url").exists() {
        assert!(Instant::now() < deadline, "master did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (mconf, master)
}

/// A `brine-minion` called `id` with its data in `dir`, for the master of `mconf`.
fn start_minion(dir: &std::path::Path, id: &str, mconf: &std::path::Path, stderr: impl Into<Stdio>) -> Kill {
    let url_file = mconf.parent().unwrap().join("m/nats-url");
    let url = std::fs::read_to_string(url_file).unwrap().trim().to_string();
    let nconf = dir.join("minion.toml");
    std::fs::write(
        &nconf,
        format!(
            "id = {id:?}\nmaster = {url:?}\ndata_dir = {:?}\nenroll_retry_max = \"200ms\"\n",
            dir.join("n").display().to_string()
        ),
    )
    .unwrap();
    Kill(Command::new(workspace_bin("brine-minion")).arg("-c").arg(&nconf).stderr(stderr).spawn().unwrap())
}

/// A master that accepts keys itself and its minion `id`, answering jobs.
fn start_pair(id: &str, master_extra: &str) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let (mconf, master) = start_master(dir.path(), &format!("auto_accept = true\n{master_extra}"));
    let log = std::fs::File::create(dir.path().join("minion.log")).unwrap();
    let minion = start_minion(dir.path(), id, &mconf, log);
    let deadline = Instant::now() + Duration::from_secs(30);
    while brine(&mconf, &["run", id, "test.ping", "-t", "1"]).status.code() != Some(0) {
        assert!(Instant::now() < deadline, "the minion never answered");
    }
    Pair { minion, _master: master, mconf, dir }
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        // pid (comm) state ppid ...: the comm may hold spaces, the last ')' ends it.
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        if after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            kids.push(child);
        }
    }
    kids
}

#[test]
fn brine_minion_runs_each_job_in_a_child_that_reaches_the_minion_and_the_file_server() {
    let roots = tempfile::tempdir().unwrap();
    let salt = roots.path().join("salt");
    let target = roots.path().join("out");
    std::fs::create_dir_all(salt.join("web")).unwrap();
    std::fs::write(salt.join("top.sls"), "base:\n  '*':\n    - web\n").unwrap();
    std::fs::write(salt.join("web/motd"), "served by the master\n").unwrap();
    std::fs::write(
        salt.join("web/init.sls"),
        format!(
            "motd:\n  file.managed:\n    - name: {}/motd\n    - source: salt://web/motd\n    - makedirs: true\n\
             announce:\n  event.send:\n    - name: myapp/child\n    - data:\n        from: the child\n",
            target.display()
        ),
    )
    .unwrap();
    let pair = start_pair("child1", &format!("file_roots = {{ base = [{:?}] }}", salt.display().to_string()));
    let minion_pid = pair.minion.0.id();

    // A state run: the tree and the salt:// file come through the minion's file
    // server cache, the event through the minion's signed event stream.
    let events = Command::new(workspace_bin("brine"))
        .arg("--config")
        .arg(&pair.mconf)
        .args(["events", "myapp/*", "--count", "1", "--timeout", "30s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let out = brine(&pair.mconf, &["run", "child1", "state.apply", "--out", "json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(std::fs::read_to_string(target.join("motd")).unwrap(), "served by the master\n");
    let states: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let states = states["child1"].as_object().expect("a state run's return");
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(states.values().all(|s| s["result"] == true), "{states:?}");
    let events = events.wait_with_output().unwrap();
    let watched = String::from_utf8_lossy(&events.stdout);
    assert!(watched.contains("myapp/child") && watched.contains("the child"), "{watched}");
    let cached = pair.dir.path().join("n");
    let cached: Vec<_> = walk(&cached).into_iter().filter(|p| p.ends_with("files/base/web/motd")).collect();
    assert_eq!(cached.len(), 1, "the file went through the minion's cache");

    // The grains, collected by a runner child when the minion started, reach the jobs
    // (and the saved ones of grains.setval, written by a child, a refresh).
    let out = brine(&pair.mconf, &["run", "child1", "grains.item", "id", "kernel", "--out", "json"]);
    let grains: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(grains["child1"], serde_json::json!({"id": "child1", "kernel": "Linux"}), "{out:?}");
    let out = brine(&pair.mconf, &["run", "child1", "grains.setval", "role", "web", "--out", "json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = brine(&pair.mconf, &["run", "child1", "saltutil.refresh_grains", "--out", "json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = brine(&pair.mconf, &["run", "child1", "grains.item", "role", "--out", "json"]);
    let grains: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(grains["child1"], serde_json::json!({"role": "web"}), "{out:?}");

    // A function's failure comes back as it would from the minion itself.
    let out = brine(&pair.mconf, &["run", "child1", "no.such", "--out", "json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("'no.such' is not available."), "{out:?}");

    // A running job is a child process of the minion; kill_job stops it.
    let slow = Command::new(workspace_bin("brine"))
        .arg("--config")
        .arg(&pair.mconf)
        .args(["run", "child1", "cmd.run", "sleep 60", "--out", "json", "-t", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let jid = loop {
        let out = brine(&pair.mconf, &["run", "child1", "saltutil.running", "--out", "json"]);
        let running: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let jid = running["child1"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["fun"] == "cmd.run"))
            .and_then(|j| j["jid"].as_str().map(str::to_string));
        if let Some(jid) = jid {
            break jid;
        }
        assert!(Instant::now() < deadline, "cmd.run never showed as running: {out:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(children_of(minion_pid).len(), 1, "the job runs in one child of the minion");
    let started = Instant::now();
    let out = brine(&pair.mconf, &["run", "child1", "saltutil.kill_job", &jid, "--out", "json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = slow.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "the kill did not stop the job");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !children_of(minion_pid).is_empty() {
        assert!(Instant::now() < deadline, "the runner outlived its job");
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(pair.dir.path().join("minion.log")).unwrap();
    assert!(!log.contains("ended without a result"), "{log}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn brine_minion_without_brine_call_refuses_to_start_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let lonely = dir.path().join("brine-minion");
    std::fs::copy(workspace_bin("brine-minion"), &lonely).unwrap();
    let conf = dir.path().join("minion.toml");
    std::fs::write(&conf, format!("id = \"alone\"\ndata_dir = {:?}\n", dir.path().join("n").display().to_string()))
        .unwrap();
    let out = Command::new(&lonely).arg("-c").arg(&conf).env("PATH", dir.path().join("empty")).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "ERROR: cannot find brine-call beside {} or on PATH: brine-minion runs each job with it; install both",
            lonely.display()
        )),
        "{stderr}"
    );
}
