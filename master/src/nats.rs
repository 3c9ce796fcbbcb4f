//! The embedded NATS server: when no `nats.url` is configured, the master runs its own
//! `nats-server` child, writes its config (users and permissions derived from the key
//! registry), reloads it on every key change and restarts it if it dies.
//!
//! Identities on the server:
//! - the master: its own key as an nkey, allowed everything;
//! - `brine-enroll`, the user every connection without credentials becomes (it has
//!   no password: it grants nothing an anonymous connection should not have): it may
//!   only publish `P.enroll` and read the replies in `_ENROLL.>`;
//! - each operator: its key as an nkey, allowed `P.ctl.>` and its own inbox;
//! - each accepted minion: its key as an nkey, confined to its own subjects (see
//!   [`minion_permissions`]).
//!
//! Deleting or rejecting a key removes the user; on reload the server closes that
//! user's connections.

use brine_proto::{MinionId, Subjects};
use ed25519_dalek::VerifyingKey;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

/// Largest message the embedded server accepts (returns carry command output).
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;

/// The name connections without credentials are given.
pub const ENROLL_USER: &str = "brine-enroll";

/// Starting or running the embedded server failed.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("cannot start {bin}: {source} (install nats-server or set nats.server_bin / $NATS_SERVER)")]
    Spawn { bin: PathBuf, source: std::io::Error },
    #[error("nats-server did not start: {0}")]
    NotReady(String),
    #[error("embedded NATS directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the embedded NATS supervisor has stopped")]
    Gone,
}

/// An ed25519 public key in NATS's nkey text form for a user (`U…`).
pub fn nkey_public(key: &VerifyingKey) -> String {
    const PREFIX_USER: u8 = 20 << 3;
    let mut raw = Vec::with_capacity(35);
    raw.push(PREFIX_USER);
    raw.extend_from_slice(key.as_bytes());
    let crc = crc16_xmodem(&raw);
    raw.extend_from_slice(&crc.to_le_bytes());
    base32_nopad(&raw)
}

/// An ed25519 private key as an nkey user seed (`SU…`), for connecting.
pub fn nkey_seed(key: &ed25519_dalek::SigningKey) -> Result<String, String> {
    nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, key.to_bytes())
        .and_then(|kp| kp.seed())
        .map_err(|e| e.to_string())
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

fn base32_nopad(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buf: u32 = 0;
    let mut bits = 0;
    for &b in data {
        buf = (buf << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Who may connect to the embedded server.
#[derive(Debug, Clone)]
pub struct Users {
    pub master: VerifyingKey,
    /// Operator name and key.
    pub operators: Vec<(String, VerifyingKey)>,
    /// Operators that may follow the whole event bus, which carries every job's
    /// arguments and returns: the admin and those allowed to read the job cache.
    pub bus_readers: Vec<String>,
    /// Accepted minions.
    pub minions: Vec<(MinionId, VerifyingKey)>,
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The subjects one minion may publish and subscribe to.
pub fn minion_permissions(subjects: &Subjects, id: &MinionId) -> (Vec<String>, Vec<String>) {
    let publish = vec![
        subjects.direct_rets_of(id),
        subjects.rets_of(id),
        subjects.events_of(id.as_str()),
        subjects.rpc_of(id),
        subjects.presence(id),
        // Its own job queue, and nothing else of JetStream's API.
        subjects.queue_next(id),
        subjects.queue_acks(id),
    ];
    let subscribe = vec![subjects.jobs_of(id), format!("{}.>", subjects.minion_inbox(id))];
    (publish, subscribe)
}

/// Renders the `authorization` and `no_auth_user` part of the server config.
pub fn render_users(users: &Users, subjects: &Subjects) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "no_auth_user: {}", quote(ENROLL_USER));
    s.push_str("authorization {\n  users: [\n");
    let _ = writeln!(
        s,
        "    {{ nkey: {}, permissions: {{ publish: \">\", subscribe: \">\" }} }}",
        quote(&nkey_public(&users.master))
    );
    let _ = writeln!(
        s,
        "    {{ user: {}, permissions: {{ publish: {{ allow: {} }}, subscribe: {{ allow: {} }} }} }}",
        quote(ENROLL_USER),
        list(&[subjects.enroll()]),
        list(&[format!("{}.>", subjects.enroll_inbox())]),
    );
    for (name, key) in &users.operators {
        let _ = writeln!(
            s,
            "    {{ nkey: {}, permissions: {{ publish: {{ allow: {} }}, subscribe: {{ allow: {} }} }} }}",
            quote(&nkey_public(key)),
            list(&[subjects.all_ctl()]),
            list(&if users.bus_readers.contains(name) {
                vec![format!("{}.>", subjects.operator_inbox(name)), subjects.all_events()]
            } else {
                vec![format!("{}.>", subjects.operator_inbox(name))]
            }),
        );
    }
    for (id, key) in &users.minions {
        let (publish, subscribe) = minion_permissions(subjects, id);
        let _ = writeln!(
            s,
            "    {{ nkey: {}, permissions: {{ publish: {{ allow: {} }}, subscribe: {{ allow: {} }} }} }}",
            quote(&nkey_public(key)),
            list(&publish),
            list(&subscribe),
        );
    }
    s.push_str("  ]\n}\n");
    s
}

/// Where the embedded server keeps its files.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    pub bin: PathBuf,
    pub listen: SocketAddr,
    /// Serve TLS with these files.
    pub tls: Option<crate::tls::TlsMaterial>,
}

impl Layout {
    fn conf(&self) -> PathBuf {
        self.dir.join("nats.conf")
    }
    fn pid_file(&self) -> PathBuf {
        self.dir.join("nats.pid")
    }
    fn log_file(&self) -> PathBuf {
        self.dir.join("nats-server.log")
    }
    fn ports_dir(&self) -> PathBuf {
        self.dir.join("ports")
    }

    fn render(&self, port: Option<u16>, users_section: &str) -> String {
        let port = port.map_or("-1".to_string(), |p| p.to_string());
        format!(
            "# Generated by brine-master; rewritten on every key change. Do not edit.\n\
             server_name: \"brine-master\"\n\
             host: {host}\n\
             port: {port}\n\
             max_payload: {MAX_PAYLOAD}\n\
             pid_file: {pid}\n\
             ports_file_dir: {ports}\n\
             log_file: {log}\n\
             jetstream {{\n  store_dir: {js}\n}}\n\
             {tls}\
             {users_section}",
            tls = match &self.tls {
                Some(t) => format!(
                    "tls {{\n  cert_file: {}\n  key_file: {}\n  timeout: 5\n}}\n",
                    quote(&t.cert_path().display().to_string()),
                    quote(&t.key_path().display().to_string())
                ),
                None => String::new(),
            },
            host = quote(&self.listen.ip().to_string()),
            pid = quote(&self.pid_file().display().to_string()),
            ports = quote(&self.ports_dir().display().to_string()),
            log = quote(&self.log_file().display().to_string()),
            js = quote(&self.dir.join("jetstream").display().to_string()),
        )
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> NatsError + '_ {
        let path = path.to_path_buf();
        move |source| NatsError::Io { path, source }
    }

    fn write_conf(&self, text: &str) -> Result<(), NatsError> {
        let tmp = self.dir.join("nats.conf.tmp");
        std::fs::write(&tmp, text).map_err(self.io(&tmp))?;
        std::fs::rename(&tmp, self.conf()).map_err(self.io(&self.conf()))
    }

    /// A server left running by a master that died without stopping it: its pid and
    /// client port, if it runs our config.
    fn left_running(&self) -> Option<(i32, u16)> {
        let pid: i32 = std::fs::read_to_string(self.pid_file()).ok()?.trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let conf = self.conf().display().to_string();
        if !String::from_utf8_lossy(&cmdline).contains(&conf) {
            return None;
        }
        let port = self.read_port(Some(pid as u32), None)?;
        Some((pid, port))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Spawns the server and waits until it accepts connections; returns the child and
    /// the port it listens on.
    async fn spawn(&self, port: Option<u16>) -> Result<(Child, u16), NatsError> {
        let ports_dir = self.ports_dir();
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir).map_err(self.io(&ports_dir))?;
        let mut child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.conf())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| NatsError::Spawn { bin: self.bin.clone(), source })?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(NatsError::NotReady(format!("it exited with {status}: {}", self.log_tail())));
            }
            if let Some(found) = self.read_port(child.id(), port) {
                let addr = SocketAddr::new(loopback_for(self.listen.ip()), found);
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    return Ok((child, found));
                }
            }
            if tokio::time::Instant::now() > deadline {
                let _ = child.kill().await;
                return Err(NatsError::NotReady(format!("not listening after 15 s: {}", self.log_tail())));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The client port from the server's ports file.
    fn read_port(&self, pid: Option<u32>, configured: Option<u16>) -> Option<u16> {
        let pid = pid?;
        let text = std::fs::read_to_string(
            self.ports_dir().join(format!("{}_{pid}.ports", self.bin.file_name()?.to_string_lossy())),
        )
        .ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        // 2.10+ name the client ports "nats"; older servers "client".
        let url = v.get("nats").or_else(|| v.get("client"))?.get(0)?.as_str()?;
        let port = url.rsplit(':').next()?.parse().ok()?;
        configured.map_or(Some(port), |c| (c == port).then_some(port))
    }
}

fn loopback_for(ip: std::net::IpAddr) -> std::net::IpAddr {
    if ip.is_unspecified() {
        match ip {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        }
    } else {
        ip
    }
}

enum Cmd {
    Reload(String, oneshot::Sender<Result<(), NatsError>>),
    Shutdown(oneshot::Sender<()>),
}

/// The server process being supervised: our child, or one a previous master started.
enum Server {
    Child(Child),
    /// Adopted by pid: it cannot be waited for, only watched.
    Adopted(i32),
}

impl Server {
    fn pid(&self) -> Option<i32> {
        match self {
            Server::Child(c) => c.id().map(|p| p as i32),
            Server::Adopted(pid) => Some(*pid),
        }
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        }
    }

    /// Resolves when the process has exited.
    async fn exited(&mut self) {
        match self {
            Server::Child(c) => {
                let _ = c.wait().await;
            }
            Server::Adopted(pid) => {
                let pid = nix::unistd::Pid::from_raw(*pid);
                while nix::sys::signal::kill(pid, None).is_ok() && !is_zombie(pid.as_raw()) {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }

    async fn stop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(5), self.exited()).await.is_ok() {
            return;
        }
        self.signal(nix::sys::signal::Signal::SIGKILL);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.exited()).await;
    }
}

/// Whether a process has exited and waits for its parent to reap it.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(true)
}

/// Handle to the supervised server.
#[derive(Clone)]
pub struct EmbeddedNats {
    tx: mpsc::Sender<Cmd>,
    client_url: String,
    port: u16,
}

impl EmbeddedNats {
    /// Writes the config and starts the server, or adopts the one a crashed master left
    /// running (so the fleet stays connected across a master crash), and starts the
    /// task that supervises it.
    pub async fn start(layout: Layout, users_section: String) -> Result<EmbeddedNats, NatsError> {
        std::fs::create_dir_all(&layout.dir).map_err(layout.io(&layout.dir))?;
        let fixed = (layout.listen.port() != 0).then_some(layout.listen.port());
        let (server, port) = match layout.left_running() {
            Some((pid, port)) if fixed.is_none_or(|f| f == port) => {
                tracing::warn!(pid, port, "adopting the nats-server a previous master left running");
                layout.write_conf(&layout.render(Some(port), &users_section))?;
                let server = Server::Adopted(pid);
                server.signal(nix::sys::signal::Signal::SIGHUP);
                (server, port)
            }
            other => {
                if let Some((pid, _)) = other {
                    tracing::warn!(pid, "stopping a nats-server left running on another port");
                    Server::Adopted(pid).stop().await;
                }
                layout.write_conf(&layout.render(fixed, &users_section))?;
                let (child, port) = layout.spawn(fixed).await?;
                (Server::Child(child), port)
            }
        };
        // From now on the port is fixed, so a restarted server keeps its address.
        layout.write_conf(&layout.render(Some(port), &users_section))?;
        let client_url = format!("nats://{}", SocketAddr::new(loopback_for(layout.listen.ip()), port));
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(supervise(layout, server, port, rx));
        Ok(EmbeddedNats { tx, client_url, port })
    }

    /// The URL clients on this host use.
    pub fn client_url(&self) -> &str {
        &self.client_url
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Rewrites the users and permissions and makes the server reload them.
    pub async fn reload(&self, users_section: String) -> Result<(), NatsError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Reload(users_section, tx)).await.map_err(|_| NatsError::Gone)?;
        rx.await.map_err(|_| NatsError::Gone)?
    }

    /// Stops the server and its supervisor.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

// The config file always holds the current users, so a restart simply reuses it.
async fn supervise(layout: Layout, mut server: Server, port: u16, mut rx: mpsc::Receiver<Cmd>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        tokio::select! {
            () = server.exited() => {
                tracing::error!(log = %layout.log_tail(), "embedded nats-server exited; restarting");
                loop {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    match layout.spawn(Some(port)).await {
                        Ok((c, _)) => {
                            tracing::info!(port, "embedded nats-server restarted");
                            server = Server::Child(c);
                            backoff = Duration::from_millis(200);
                            break;
                        }
                        Err(e) => tracing::error!(error = %e, "cannot restart the embedded nats-server"),
                    }
                    // A shutdown request while restarting ends the loop.
                    if let Ok(Cmd::Shutdown(done)) = rx.try_recv() {
                        let _ = done.send(());
                        return;
                    }
                }
            }
            cmd = rx.recv() => match cmd {
                Some(Cmd::Reload(section, done)) => {
                    let result = layout
                        .write_conf(&layout.render(Some(port), &section))
                        .map(|()| server.signal(nix::sys::signal::Signal::SIGHUP));
                    let _ = done.send(result);
                }
                Some(Cmd::Shutdown(done)) => {
                    server.stop().await;
                    let _ = done.send(());
                    return;
                }
                None => {
                    server.stop().await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nkey_encoding_matches_the_nkeys_crate() {
        for seed in [[1u8; 32], [200u8; 32], [0u8; 32]] {
            let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
            let kp = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, seed).unwrap();
            assert_eq!(nkey_public(&sk.verifying_key()), kp.public_key());
            assert!(nkeys::KeyPair::from_public_key(&nkey_public(&sk.verifying_key())).is_ok());
        }
    }

    #[test]
    fn each_minion_is_confined_to_its_own_subjects() {
        let subjects = Subjects::default();
        let id = MinionId::new("web1.example.com").unwrap();
        let (publish, subscribe) = minion_permissions(&subjects, &id);
        assert_eq!(
            publish,
            vec![
                "brine.dret.web1~example~com.>",
                "brine.ret.web1~example~com.>",
                "brine.event.web1~example~com.>",
                "brine.rpc.web1~example~com.>",
                "brine.presence.web1~example~com",
                "$JS.API.CONSUMER.MSG.NEXT.BRINE_QJOBS.q-web1~example~com",
                "$JS.ACK.BRINE_QJOBS.q-web1~example~com.>",
            ]
        );
        assert_eq!(subscribe, vec!["brine.job.web1~example~com.>", "_INBOX_web1~example~com.>"]);
        for s in publish.iter().chain(&subscribe) {
            assert!(!s.contains('*') && !s.starts_with('>') && !s.contains("$JS.API.>"), "{s}");
            assert!(s.contains("web1~example~com"), "{s} is not confined to the minion");
        }
    }

    #[test]
    fn rendered_users_name_every_identity_once() {
        let k = |n: u8| ed25519_dalek::SigningKey::from_bytes(&[n; 32]).verifying_key();
        let users = Users {
            master: k(1),
            operators: vec![("admin".into(), k(2)), ("bob".into(), k(4))],
            bus_readers: vec!["admin".into()],
            minions: vec![(MinionId::new("m1").unwrap(), k(3))],
        };
        let text = render_users(&users, &Subjects::default());
        for key in [k(1), k(2), k(3), k(4)] {
            assert_eq!(text.matches(&nkey_public(&key)).count(), 1);
        }
        assert!(text.contains("no_auth_user: \"brine-enroll\""));
        assert!(text.contains("\"brine.enroll\""));
        assert!(text.contains("\"_OPS_admin.>\""));
        // Only bus readers may follow events (they carry every job's returns).
        assert_eq!(text.matches("\"brine.event.>\"").count(), 1);
        let bob = text.lines().find(|l| l.contains(&nkey_public(&k(4)))).unwrap();
        assert!(!bob.contains("brine.event"), "{bob}");
    }
}
