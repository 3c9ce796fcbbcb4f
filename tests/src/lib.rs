//! The end-to-end test harness: real `nats-server` processes on free ports, masters
//! and minions in-process (or as the real binaries), and the `brine` CLI run
//! in-process with its stdout, stderr and exit code captured.
#![forbid(unsafe_code)]

use brine_master::cli::{Cli, Io};
use brine_master::{Master, MasterConfig};
use brine_minion::{Minion, MinionConfig};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use brine_master;
pub use brine_minion;
pub use brine_proto;

pub mod swarm;

/// The nats-server binary: `$NATS_SERVER`, else `nats-server` on PATH.
pub fn nats_server_bin() -> PathBuf {
    std::env::var_os("NATS_SERVER").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("nats-server"))
}

/// Logs to the test output when `BRINE_TEST_LOG` is set (e.g. `BRINE_TEST_LOG=debug`).
pub fn init_logging() {
    if let Ok(level) = std::env::var("BRINE_TEST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(level).with_test_writer().try_init();
    }
}

/// A standalone nats-server with JetStream, for tests of the external-NATS mode.
/// Killed and cleaned up on drop.
pub struct NatsServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl NatsServer {
    /// Starts a server on a free port.
    pub fn start() -> NatsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut s = NatsServer { child: None, dir, port: 0 };
        s.spawn(None);
        s
    }

    fn spawn(&mut self, port: Option<u16>) {
        let ports = self.dir.path().join("ports");
        let _ = std::fs::remove_dir_all(&ports);
        std::fs::create_dir_all(&ports).expect("ports dir");
        let conf = self.dir.path().join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "host: \"127.0.0.1\"\nport: {}\nports_file_dir: {:?}\njetstream {{ store_dir: {:?} }}\nmax_payload: 8388608\n",
                port.map_or(-1, i32::from),
                ports.display().to_string(),
                self.dir.path().join("js").display().to_string()
            ),
        )
        .expect("write nats.conf");
        let child = Command::new(nats_server_bin())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start nats-server (run packaging/install-nats-server)");
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let file = ports
                .join(format!("{}_{pid}.ports", nats_server_bin().file_name().unwrap_or_default().to_string_lossy()));
            if let Ok(text) = std::fs::read_to_string(&file) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    let url = v.get("nats").or_else(|| v.get("client")).and_then(|c| c.get(0)).and_then(|u| u.as_str());
                    if let Some(p) = url.and_then(|u| u.rsplit(':').next()).and_then(|p| p.parse().ok()) {
                        if std::net::TcpStream::connect(("127.0.0.1", p)).is_ok() {
                            self.port = p;
                            return;
                        }
                    }
                }
            }
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (it can be restarted on the same port).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port, with the same JetStream store.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port;
        self.spawn(Some(port));
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Options for a test master.
#[derive(Debug, Clone, Default)]
pub struct MasterOpts {
    pub auto_accept: bool,
    /// Use this external server instead of the embedded one.
    pub external_url: Option<String>,
    /// Extra lines for master.toml.
    pub extra: String,
}

/// A master running in-process on its own temp dir.
pub struct TestMaster {
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub master: Option<Master>,
    _tmp: Option<tempfile::TempDir>,
}

impl TestMaster {
    /// Starts a master with the embedded NATS on a free port.
    pub async fn start(opts: MasterOpts) -> TestMaster {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut m = TestMaster::start_in(&dir, &opts).await;
        m._tmp = Some(tmp);
        m
    }

    /// Starts a master on an existing directory (a restart).
    pub async fn start_in(dir: &Path, opts: &MasterOpts) -> TestMaster {
        init_logging();
        let nats = match &opts.external_url {
            Some(url) => format!("[nats]\nurl = {url:?}\n"),
            None => format!(
                "[nats]\nlisten = \"127.0.0.1:0\"\nserver_bin = {:?}\n",
                nats_server_bin().display().to_string()
            ),
        };
        let text = format!(
            "data_dir = {:?}\nauto_accept = {}\npresence_timeout = \"3s\"\n{}\n{nats}",
            dir.join("master").display().to_string(),
            opts.auto_accept,
            opts.extra
        );
        let config_path = dir.join("master.toml");
        std::fs::write(&config_path, &text).expect("write master.toml");
        let cfg = MasterConfig::load(Some(&config_path)).expect("master config");
        let master = Master::start(cfg).await.expect("master starts");
        TestMaster { dir: dir.to_path_buf(), config_path, master: Some(master), _tmp: None }
    }

    pub fn master(&self) -> &Master {
        self.master.as_ref().expect("master running")
    }

    /// The NATS URL minions use.
    pub fn url(&self) -> String {
        self.master().nats_url()
    }

    /// Stops the master (keeping its directory).
    pub async fn stop(&mut self) {
        if let Some(m) = self.master.take() {
            m.shutdown().await;
        }
    }

    /// Runs the `brine` CLI in-process against this master.
    pub async fn cli(&self, args: &[&str]) -> CliOutput {
        self.cli_with_input(args, "").await
    }

    /// Runs the `brine` CLI with `input` on stdin (answers to prompts).
    pub async fn cli_with_input(&self, args: &[&str], input: &str) -> CliOutput {
        let mut argv = vec!["brine", "--color", "never", "--config", self.config_path.to_str().unwrap_or_default()];
        argv.extend_from_slice(args);
        let cli = match Cli::try_parse_from(&argv) {
            Ok(c) => c,
            Err(e) => return CliOutput { code: 64, stdout: String::new(), stderr: e.to_string() },
        };
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut input = std::io::Cursor::new(input.as_bytes().to_vec());
        let mut io = Io { out: &mut out, err: &mut err, input: &mut input, color: false, progress: false };
        let code = brine_master::cli::run(cli, &mut io).await;
        CliOutput {
            code,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        }
    }

    /// Accepts `id` and waits until the minion is connected.
    pub async fn accept(&self, minion: &TestMinion) {
        let out = self.cli(&["key", "accept", "-y", minion.id.as_str()]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(minion.minion().wait_connected(Duration::from_secs(20)).await, "minion {} did not connect", minion.id);
        let id = brine_proto::MinionId::new(minion.id.clone()).expect("id");
        let shared = self.master().shared().clone();
        assert!(
            eventually(Duration::from_secs(20), || shared.grains.get(&id).is_some()).await,
            "the master never got {}'s grains",
            minion.id
        );
    }

    /// Waits until `id` shows up with `status` in the key list.
    pub async fn wait_key(&self, id: &str, heading: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.cli(&["key", "list"]).await;
            if section(&out.stdout, heading).iter().any(|l| l == id) {
                return;
            }
            assert!(Instant::now() < deadline, "{id} never appeared under {heading}: {}", out.stdout);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The lines under a `salt-key` style heading.
pub fn section(listing: &str, heading: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in listing.lines() {
        if line.ends_with("Keys:") {
            inside = line == heading;
        } else if inside {
            out.push(line.to_string());
        }
    }
    out
}

/// What a CLI run printed and returned.
#[derive(Debug, Clone)]
pub struct CliOutput {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

/// Options for a test minion.
#[derive(Debug, Clone, Default)]
pub struct MinionOpts {
    /// Extra lines for minion.toml (before any table).
    pub extra: String,
    /// Extra tables (e.g. `[grains]`).
    pub tables: String,
}

/// A minion running in-process on its own temp dir.
pub struct TestMinion {
    pub id: String,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub minion: Option<Minion>,
    _tmp: Option<tempfile::TempDir>,
}

impl TestMinion {
    /// Starts a minion that enrolls with the master at `url`.
    pub async fn start(url: &str, id: &str, opts: MinionOpts) -> TestMinion {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut m = TestMinion::start_in(&dir, url, id, &opts).await;
        m._tmp = Some(tmp);
        m
    }

    /// Starts a minion on an existing directory (a restart keeps its key).
    pub async fn start_in(dir: &Path, url: &str, id: &str, opts: &MinionOpts) -> TestMinion {
        init_logging();
        let text = format!(
            "id = {id:?}\nmaster = {url:?}\ndata_dir = {:?}\nenroll_retry_min = \"50ms\"\nenroll_retry_max = \"200ms\"\npresence_interval = \"1s\"\n{}\n{}",
            dir.join("minion").display().to_string(),
            opts.extra,
            opts.tables
        );
        let config_path = dir.join("minion.toml");
        std::fs::write(&config_path, &text).expect("write minion.toml");
        let cfg = MinionConfig::load(Some(&config_path)).expect("minion config");
        let minion = Minion::start(cfg).await.expect("minion starts");
        TestMinion { id: id.to_string(), dir: dir.to_path_buf(), config_path, minion: Some(minion), _tmp: None }
    }

    pub fn minion(&self) -> &Minion {
        self.minion.as_ref().expect("minion running")
    }

    /// Stops the minion (keeping its directory).
    pub async fn stop(&mut self) {
        if let Some(m) = self.minion.take() {
            m.shutdown().await;
        }
    }

    /// Stops the minion and starts it again in the same directory, after `pause`; the
    /// new one owns the directory from then on (it is deleted when that one is dropped).
    pub async fn restart(mut self, url: &str, opts: &MinionOpts, pause: Duration) -> TestMinion {
        self.stop().await;
        tokio::time::sleep(pause).await;
        let mut again = TestMinion::start_in(&self.dir, url, &self.id, opts).await;
        again._tmp = self._tmp.take();
        again
    }

    /// The minion's private key file.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("minion").join("minion.pem")
    }
}

/// Polls `check` every 20 ms until it holds or `timeout` passes.
pub async fn eventually<F: FnMut() -> bool>(timeout: Duration, mut check: F) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A binary of this workspace, next to the test executable (`cargo build --bins`
/// puts it there).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| if d.ends_with("deps") { d.parent() } else { Some(d) }).expect("target dir");
    dir.join(name)
}

/// Connects to NATS with a raw ed25519 key file as nkey (to act as a given identity).
pub async fn connect_as(
    url: &str,
    key_file: &Path,
    inbox: &str,
    ca: &Path,
) -> (async_nats::Client, tokio::sync::mpsc::UnboundedReceiver<async_nats::Event>) {
    let ca = Some(ca.to_path_buf());
    let key = brine_proto::keys::load_key(key_file).expect("key");
    let seed = brine_master::nats::nkey_seed(&key).expect("seed");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let client = tls(async_nats::ConnectOptions::with_nkey(seed), ca.as_deref())
        .custom_inbox_prefix(inbox)
        .event_callback(move |ev| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(ev);
            }
        })
        .connect(url)
        .await
        .expect("connect");
    (client, rx)
}

/// Runs the `brine` CLI in-process against the master configured at `config_path`.
pub async fn cli_for(config_path: &Path, args: &[&str]) -> CliOutput {
    let mut argv = vec!["brine", "--color", "never", "--config", config_path.to_str().unwrap_or_default()];
    argv.extend_from_slice(args);
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => return CliOutput { code: 64, stdout: String::new(), stderr: e.to_string() },
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input = std::io::Cursor::new(Vec::new());
    let mut io = Io { out: &mut out, err: &mut err, input: &mut input, color: false, progress: false };
    let code = brine_master::cli::run(cli, &mut io).await;
    CliOutput {
        code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// A real process of one of the workspace's binaries, killed on drop.
pub struct Process {
    bin: &'static str,
    args: Vec<std::ffi::OsString>,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    /// Starts `bin` with `args`, its stderr going to `log`.
    pub fn start(bin: &'static str, args: &[&std::ffi::OsStr], log: PathBuf) -> Process {
        let mut p = Process { bin, args: args.iter().map(|a| a.to_os_string()).collect(), child: None, log };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let path = workspace_bin(self.bin);
        assert!(path.exists(), "{} is not built: run `cargo build --bins` first", path.display());
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let child = Command::new(path).args(&self.args).stdout(Stdio::null()).stderr(log).spawn().expect("spawn");
        self.child = Some(child);
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: an orderly stop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the process again with the same arguments.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts the process again after a kill.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn();
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `brine-master` process on its own temp dir with the embedded NATS.
pub struct MasterProcess {
    pub process: Process,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl MasterProcess {
    /// Starts the binary and waits until it is up.
    pub fn start(extra: &str) -> MasterProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("master.toml");
        std::fs::write(
            &config_path,
            format!(
                "data_dir = {:?}\npresence_timeout = \"3s\"\n{extra}\n[nats]\nlisten = \"127.0.0.1:0\"\nserver_bin = {:?}\n",
                dir.path().join("master").display().to_string(),
                nats_server_bin().display().to_string()
            ),
        )
        .expect("write master.toml");
        let log = dir.path().join("master.log");
        let process = Process::start("brine-master", &[std::ffi::OsStr::new("-c"), config_path.as_os_str()], log);
        let m = MasterProcess { process, dir, config_path };
        m.wait_up();
        m
    }

    fn url_file(&self) -> PathBuf {
        self.dir.path().join("master/nats-url")
    }

    /// Waits until the master has written its NATS URL and answers requests.
    pub fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.url_file().exists() {
            assert!(Instant::now() < deadline, "master did not start: {}", self.process.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The NATS URL minions use.
    pub fn url(&self) -> String {
        std::fs::read_to_string(self.url_file()).unwrap_or_default().trim().to_string()
    }

    /// Runs the CLI against it.
    pub async fn cli(&self, args: &[&str]) -> CliOutput {
        cli_for(&self.config_path, args).await
    }

    /// Kills the master with SIGKILL and starts it again.
    pub async fn kill9_and_restart(&mut self, down_for: Duration) {
        let _ = std::fs::remove_file(self.url_file());
        self.process.kill9();
        tokio::time::sleep(down_for).await;
        self.process.start_again();
        self.wait_up();
    }
}

/// Adds TLS trusting the CA at `ca` (a master's `tls/ca.pem`), if given.
pub fn tls(opts: async_nats::ConnectOptions, ca: Option<&Path>) -> async_nats::ConnectOptions {
    match ca {
        Some(path) => {
            let roots = brine_proto::tls::certs_from_file(path).expect("CA");
            opts.tls_client_config(brine_proto::tls::client_config(&roots).expect("TLS config")).require_tls(true)
        }
        None => opts,
    }
}

impl TestMaster {
    /// The CA of the embedded NATS server's TLS certificate.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("master/tls/ca.pem")
    }
}
