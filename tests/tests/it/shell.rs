//! What an operator's shell sees of the binaries without a running fleet:
//! `--check-config`, log formats, completion scripts and man pages.

use brine_tests::*;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn run(bin: &str, args: &[&str]) -> Output {
    assert!(workspace_bin(bin).exists(), "{bin} is not built: run `cargo build --bins` first");
    Command::new(workspace_bin(bin))
        .args(args)
        .env_remove("BRINE_MASTER_CONFIG")
        .env_remove("BRINE_MINION_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run the binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn master_check_config_prints_the_effective_config_or_the_error_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("master.toml");
    std::fs::write(
        &conf,
        "auto_accept = true\nkeep_jobs = \"2h\"\n[nats]\nurl = \"nats://nats1:4222\"\nuser = \"brine\"\npassword = \"hunter2\"\n",
    )
    .unwrap();
    let out = run("brine-master", &["--check-config", "--config", path_str(&conf)]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    // What was written, and the defaults of what was not.
    for line in
        ["auto_accept = true", "keep_jobs = \"2h\"", "job_ttl = \"10m\"", "log_format = \"text\"", "[pillar_roots]"]
    {
        assert!(stdout.lines().any(|l| l == line), "{line:?} missing from:\n{stdout}");
    }
    assert!(!stdout.contains("hunter2") && stdout.contains("password = \"********\""), "{stdout}");
    // The printed config is a config: it loads to what the original loads to.
    let printed = brine_master::MasterConfig::parse(&stdout, None).expect("the printed config parses");
    let original = brine_master::MasterConfig::parse(&std::fs::read_to_string(&conf).unwrap(), None).unwrap();
    assert_eq!(format!("{printed:?}"), format!("{original:?}"));

    // A missing default file means all defaults; the embedded server's address is shown.
    let out = run("brine-master", &["--check-config", "--config", "/nonexistent/master.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read config file /nonexistent/master.toml"), "{}", text(&out.stderr));

    for (body, expected) in [
        ("auto_accept = true\nprefix = \"a b\"\n", ":2: prefix: subject prefix \"a b\" is invalid"),
        ("auto_accept = true\nauto_acept = true\n", "unknown field `auto_acept`"),
        ("log_level = \"inf\"\n", ":1: log_level: \"inf\" is not a log level"),
        ("[nats]\nlisten = \"nowhere\"\n", ":2: nats.listen:"),
    ] {
        std::fs::write(&conf, body).unwrap();
        let out = run("brine-master", &["--check-config", "-c", path_str(&conf)]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{body}: {stderr}");
        assert!(out.stdout.is_empty(), "{body}: printed a config");
        assert!(stderr.contains(path_str(&conf)) && stderr.contains(expected), "{body}: {stderr}");
        if expected.starts_with("unknown") {
            assert!(stderr.contains("line 2"), "{stderr}");
        }
    }
}

#[test]
fn minion_check_config_shows_the_id_and_tls_it_would_use() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("minion.toml");
    std::fs::write(&conf, "id = \"web1.example.com\"\nmaster = \"10.0.0.5\"\nworkers = 3\n").unwrap();
    let out = run("brine-minion", &["--check-config", "--config", path_str(&conf)]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for line in [
        "id = \"web1.example.com\"",
        "workers = 3",
        "presence_interval = \"10s\"",
        "required = true",
        "auth = \"nkey\"",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} missing from:\n{stdout}");
    }
    let printed = brine_minion::MinionConfig::parse(&stdout, None).expect("the printed config parses");
    let original = brine_minion::MinionConfig::parse(&std::fs::read_to_string(&conf).unwrap(), None).unwrap();
    assert_eq!(format!("{printed:?}"), format!("{original:?}"));

    std::fs::write(&conf, "id = \"web1\"\n\nworkers = 0\n").unwrap();
    let out = run("brine-minion", &["--check-config", "-c", path_str(&conf)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("{}:3: workers: 0 is out of range", conf.display())), "{stderr}");
}

/// Reads stderr lines of a running daemon until one satisfies `want`, or 20 s pass.
fn first_line_matching(child: &mut std::process::Child, want: impl Fn(&str) -> bool) -> Option<String> {
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if want(&line) => return Some(line),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    None
}

#[test]
fn log_format_json_writes_one_json_object_a_line_and_bad_levels_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("minion.toml");
    // A master nobody listens on: the minion starts, logs and retries.
    std::fs::write(
        &conf,
        format!(
            "id = \"logs1\"\nmaster = \"127.0.0.1:1\"\ndata_dir = {:?}\nlog_format = \"json\"\n",
            path_str(&dir.path().join("data"))
        ),
    )
    .unwrap();
    let mut child = Command::new(workspace_bin("brine-minion"))
        .args(["--config", path_str(&conf)])
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start brine-minion");
    let line = first_line_matching(&mut child, |l| l.contains("starting brine-minion"));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("brine-minion logged its start");
    let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(event["level"], "INFO", "{line}");
    assert_eq!(event["message"], "starting brine-minion", "{line}");
    assert_eq!(event["id"], "logs1", "{line}");
    assert!(event["timestamp"].is_string(), "{line}");

    // Under `timeout`: accepting the level would start the minion for good.
    let out = Command::new("timeout")
        .arg("20")
        .arg(workspace_bin("brine-minion"))
        .args(["--config", path_str(&conf), "--log-level", "verbose"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run brine-minion");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--log-level: \"verbose\" is not a log level"), "{}", text(&out.stderr));
}

#[test]
fn completions_and_man_pages_come_from_the_command_definitions() {
    let bash = run("brine", &["completions", "bash"]);
    assert_eq!(bash.status.code(), Some(0));
    let bash = text(&bash.stdout);
    assert!(bash.contains("complete -F _brine") && bash.contains("brine__subcmd__key__subcmd__accept"), "{bash}");
    let zsh = text(&run("brine", &["completions", "zsh"]).stdout);
    assert!(zsh.starts_with("#compdef brine"), "{zsh}");
    let fish = text(&run("brine", &["completions", "fish"]).stdout);
    assert!(fish.contains("complete -c brine") && fish.contains("inventory"), "{fish}");
    // The hidden packaging helper is not offered.
    assert!(!fish.contains("-a \"man\""), "{fish}");
    let bad = run("brine", &["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(64));
    assert!(text(&bad.stderr).contains("invalid value 'tcsh'"), "{}", text(&bad.stderr));

    for bin in ["brine-master", "brine-minion", "brine-call"] {
        let out = run(bin, &["--completions", "bash"]);
        assert_eq!(out.status.code(), Some(0), "{bin}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains(&format!("complete -F _{}", bin.replace('-', "__"))), "{bin}");
    }

    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run("brine", &["man", path_str(dir.path())]).status.code(), Some(0));
    assert_eq!(run("brine-minion", &["--man-dir", path_str(dir.path())]).status.code(), Some(0));
    let run_page = std::fs::read_to_string(dir.path().join("brine-run.1")).expect("brine-run.1");
    // Each subcommand's page names the program and its version (the workspace's).
    let title = format!(".TH brine-run 1  \"brine {}\"", env!("CARGO_PKG_VERSION"));
    assert!(run_page.contains(&title) && run_page.contains("\\-\\-batch"), "{run_page}");
    // `brine minion` (section 1) and the brine-minion daemon (section 8) do not collide.
    assert!(dir.path().join("brine-minion.1").exists() && dir.path().join("brine-minion.8").exists());
    assert!(!dir.path().join("brine-man.1").exists());

    // brine-call still wants a function when it is not asked for shell integration.
    let out = run("brine-call", &[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("<FUN>"), "{}", text(&out.stderr));
}
