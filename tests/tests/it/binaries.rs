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
    let mconf = dir.path().join("master.toml");
    std::fs::write(
        &mconf,
        format!(
            "data_dir = {:?}\n[nats]\nlisten = \"127.0.0.1:0\"\nserver_bin = {:?}\n",
            dir.path().join("m").display().to_string(),
            nats_server_bin().display().to_string()
        ),
    )
    .unwrap();
    let _master =
        Kill(Command::new(workspace_bin("brine-master")).arg("-c").arg(&mconf).stderr(Stdio::null()).spawn().unwrap());
    let url_file = dir.path().join("m/nats-url");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !url_file.exists() {
        assert!(Instant::now() < deadline, "master did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = std::fs::read_to_string(&url_file).unwrap().trim().to_string();
    let nconf = dir.path().join("minion.toml");
    std::fs::write(
        &nconf,
        format!(
            "id = \"bin1\"\nmaster = {url:?}\ndata_dir = {:?}\nenroll_retry_max = \"200ms\"\n",
            dir.path().join("n").display().to_string()
        ),
    )
    .unwrap();
    let _minion =
        Kill(Command::new(workspace_bin("brine-minion")).arg("-c").arg(&nconf).stderr(Stdio::null()).spawn().unwrap());
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
