//! The master's configuration: `/etc/brine/master.toml` by default.
//!
//! Two layers: [`RawConfig`] is exactly the file (unknown keys are refused with their
//! name and position), [`MasterConfig`] is the validated form the program uses.
//! Every key is optional; the defaults are documented on each field and in
//! `packaging/master.toml`.

use brine_proto::config::duration;
use brine_proto::config::LogFormat;
use brine_proto::Subjects;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the master reads its config when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/brine/master.toml";

/// Why the config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {}{}: {key}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid { path: PathBuf, line: Option<usize>, key: String, message: String },
}

/// The config file as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Keys, job cache and the embedded NATS store. Default `/var/lib/brine/master`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Subject prefix shared with the minions. Default `brine`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Accept every new minion key without an operator. Default `false`.
    #[serde(default)]
    pub auto_accept: bool,
    /// How long a published job stays valid for a minion. Default `10m`.
    #[serde(default = "default_job_ttl", with = "duration")]
    pub job_ttl: Duration,
    /// How long jobs and their returns stay in the job cache. Default `24h`.
    #[serde(default = "default_keep_jobs", with = "duration")]
    pub keep_jobs: Duration,
    /// A minion with no heartbeat for this long counts as offline. Default `30s`.
    #[serde(default = "default_presence_timeout", with = "duration")]
    pub presence_timeout: Duration,
    /// Log level (`error`, `warn`, `info`, `debug`, `trace`); `RUST_LOG` overrides it.
    /// Default `info`.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Log lines as `text` or `json` (one object a line). Default `text`.
    #[serde(default)]
    pub log_format: LogFormat,
    /// The file server's state trees: environment → directories searched in order.
    /// Default `base = ["/srv/salt"]`.
    #[serde(default = "default_file_roots")]
    pub file_roots: std::collections::BTreeMap<String, Vec<PathBuf>>,
    /// Pillar trees, with their own `top.sls`. Default `base = ["/srv/pillar"]`.
    #[serde(default = "default_pillar_roots")]
    pub pillar_roots: std::collections::BTreeMap<String, Vec<PathBuf>>,
    /// NATS: embedded (default) or an existing server.
    #[serde(default)]
    pub nats: RawNats,
    /// TLS of the embedded NATS server.
    #[serde(default)]
    pub tls: RawTls,
    /// Named targets for `-N` and `N@`: a compound expression, or a list of its words.
    #[serde(default)]
    pub nodegroups: std::collections::BTreeMap<String, RawNodegroup>,
    /// Operators besides the local `admin`, by name, with what each may do.
    #[serde(default)]
    pub operators: std::collections::BTreeMap<String, RawOperator>,
    /// The reactor: tag globs and their reaction files (see [`crate::reactor`]).
    #[serde(default)]
    pub reactor: crate::reactor::RawReactor,
    /// The audit trail: keyword rules that raise `brine/audit/alert` (see [`crate::audit`]).
    #[serde(default)]
    pub audit: crate::audit::RawAudit,
    /// Master schedules: `[schedule.<name>]` tables with `function`, `tgt`,
    /// `tgt_type`, `args`, `kwargs` and when they run, as the minion's (docs/schedules.md).
    #[serde(default)]
    pub schedule: toml::Table,
}

/// An `[operators.NAME]` table.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOperator {
    /// The operator's public key: an SPKI PEM file (`openssl pkey -pubout` of an
    /// ed25519 key). A relative path is relative to the config file's directory.
    pub key: PathBuf,
    /// May list, accept, reject, delete and fingerprint minion keys. Default `false`.
    #[serde(default)]
    pub keys: bool,
    /// May read the job cache (`job list|show|active`) and the minion and inventory
    /// views. Default `false`.
    #[serde(default)]
    pub jobs: bool,
    /// Which functions the operator may run on which minions. Default: none.
    #[serde(default)]
    pub acl: Vec<RawAclEntry>,
}

/// An `[[operators.NAME.acl]]` entry.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAclEntry {
    /// A compound target expression (`web* or G@role:web`, `N@group`).
    pub target: String,
    /// Globs on `module.function` (`test.*`, `cmd.run`, `*`).
    pub functions: Vec<String>,
}

/// The `[tls]` table (embedded mode).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// Serve TLS with certificates from the master's own CA. Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Extra host names and addresses for the server certificate (the host's own names
    /// and addresses are always included).
    #[serde(default)]
    pub names: Vec<String>,
}

impl Default for RawTls {
    fn default() -> Self {
        RawTls { enabled: true, names: Vec::new() }
    }
}

fn yes() -> bool {
    true
}

/// A nodegroup definition: `web = "G@role:web or L@a,b"` or `web = ["L@a,b", "or", "G@role:web"]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawNodegroup {
    Expr(String),
    Words(Vec<String>),
}

/// The `[nats]` table.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawNats {
    /// URL of an existing NATS server. Unset (the default): the master runs its own.
    #[serde(default)]
    pub url: Option<String>,
    /// Embedded mode: address the server listens on. Default `0.0.0.0:4222`; port 0
    /// picks a free port.
    #[serde(default)]
    pub listen: Option<String>,
    /// Embedded mode: the `nats-server` binary. Default: `$NATS_SERVER`, else
    /// `nats-server` on `PATH`.
    #[serde(default)]
    pub server_bin: Option<PathBuf>,
    /// External mode: user name, with `password`.
    #[serde(default)]
    pub user: Option<String>,
    /// External mode: password, with `user`.
    #[serde(default)]
    pub password: Option<String>,
    /// External mode: a NATS credentials file.
    #[serde(default)]
    pub creds_file: Option<PathBuf>,
    /// External mode: the CA (PEM) of the server's TLS certificate. Minions receive it
    /// in the master's signed enrollment answer.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/brine/master")
}
fn default_prefix() -> String {
    brine_proto::subject::DEFAULT_PREFIX.to_string()
}
fn default_job_ttl() -> Duration {
    Duration::from_secs(600)
}
fn default_keep_jobs() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_presence_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_log_level() -> String {
    "info".into()
}
fn default_file_roots() -> std::collections::BTreeMap<String, Vec<PathBuf>> {
    [("base".to_string(), vec![PathBuf::from("/srv/salt")])].into()
}
fn default_pillar_roots() -> std::collections::BTreeMap<String, Vec<PathBuf>> {
    [("base".to_string(), vec![PathBuf::from("/srv/pillar")])].into()
}

/// Checks environment names and makes relative directories relative to `base`.
fn roots(
    key: &'static str,
    raw: std::collections::BTreeMap<String, Vec<PathBuf>>,
    base: &Path,
) -> Result<brine_states::files::LocalRoots, String> {
    let mut out = brine_states::files::LocalRoots::default();
    for (env, dirs) in raw {
        if env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')) {
            return Err(format!("{env:?} is not an environment name (letters, digits, _ -)"));
        }
        if dirs.is_empty() {
            return Err(format!("{key}.{env}: give at least one directory"));
        }
        out.roots.insert(env, dirs.into_iter().map(|d| if d.is_relative() { base.join(d) } else { d }).collect());
    }
    Ok(out)
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// The file it came from, if any.
    pub path: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub subjects: Subjects,
    pub auto_accept: bool,
    pub job_ttl: Duration,
    pub keep_jobs: Duration,
    pub presence_timeout: Duration,
    pub log_level: String,
    pub log_format: LogFormat,
    /// The file server's trees (`file_roots`).
    pub file_roots: brine_states::files::LocalRoots,
    /// The pillar trees (`pillar_roots`).
    pub pillar_roots: brine_states::files::LocalRoots,
    pub nats: NatsMode,
    pub nodegroups: brine_proto::target::Nodegroups,
    /// Named operators (not `admin`), by name.
    pub operators: std::collections::BTreeMap<String, crate::acl::NamedOperator>,
    /// The reactor's rules and limits.
    pub reactor: crate::reactor::ReactorConfig,
    /// The audit trail's alert keywords.
    pub audit: crate::audit::AuditConfig,
    /// The master's schedule entries, each checked (timing and target).
    pub schedule: brine_proto::Map,
}

/// How the master reaches NATS.
#[derive(Debug, Clone)]
pub enum NatsMode {
    /// The master runs and supervises its own `nats-server`; with `tls`, it serves TLS
    /// with certificates from the master's CA covering these extra names.
    Embedded { listen: SocketAddr, server_bin: PathBuf, tls: Option<Vec<String>> },
    /// The master uses an existing server, trusting `tls_ca` for its TLS if given.
    External { url: String, auth: ExternalAuth, tls_ca: Option<PathBuf> },
}

/// Credentials for an external NATS server.
#[derive(Clone)]
pub enum ExternalAuth {
    None,
    UserPassword { user: String, password: String },
    CredsFile(PathBuf),
}

impl std::fmt::Debug for ExternalAuth {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExternalAuth::None => f.write_str("None"),
            ExternalAuth::UserPassword { user, .. } => write!(f, "UserPassword({user}, ***)"),
            ExternalAuth::CredsFile(p) => write!(f, "CredsFile({})", p.display()),
        }
    }
}

impl MasterConfig {
    /// Loads `path`, or the default path if `None` (a missing default file means
    /// all defaults; a missing explicit file is an error).
    pub fn load(path: Option<&Path>) -> Result<MasterConfig, ConfigError> {
        let (text, path) = read(path)?;
        MasterConfig::parse(&text, path.as_deref())
    }

    /// Loads and checks the config like [`MasterConfig::load`], then writes it back as
    /// TOML with every default filled in (`brine-master --check-config`). An external
    /// server's password is masked.
    pub fn effective_toml(path: Option<&Path>) -> Result<String, ConfigError> {
        let (text, path) = read(path)?;
        let cfg = MasterConfig::parse(&text, path.as_deref())?;
        let shown = path.clone().unwrap_or_else(|| PathBuf::from("(defaults)"));
        let unreadable = |e: &dyn std::fmt::Display| ConfigError::Parse { path: shown.clone(), message: e.to_string() };
        let mut raw: RawConfig = toml::from_str(&text).map_err(|e| unreadable(&e))?;
        match &cfg.nats {
            NatsMode::Embedded { listen, server_bin, .. } => {
                raw.nats.listen = Some(listen.to_string());
                raw.nats.server_bin = Some(server_bin.clone());
            }
            NatsMode::External { .. } => {
                if let Some(p) = raw.nats.password.as_mut() {
                    *p = "********".into();
                }
            }
        }
        let body = toml::to_string(&raw).map_err(|e| unreadable(&e))?;
        let source = match &path {
            Some(p) => format!("{}", p.display()),
            None => format!("no file ({DEFAULT_CONFIG_PATH} does not exist)"),
        };
        Ok(format!("# brine-master: the effective configuration, defaults filled in.\n# Read from {source}.\n\n{body}"))
    }

    /// Parses config text; `path` names the file in errors.
    pub fn parse(text: &str, path: Option<&Path>) -> Result<MasterConfig, ConfigError> {
        let shown = path.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("(defaults)"));
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: shown.clone(), message: e.to_string().trim_end().to_string() })?;
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: shown.clone(),
            line: brine_proto::config::line_of(text, key),
            key: key.to_string(),
            message,
        };
        brine_proto::config::check_log_filter(&raw.log_level)
            .and_then(|()| tracing_subscriber::EnvFilter::try_new(&raw.log_level).map(drop).map_err(|e| e.to_string()))
            .map_err(|e| invalid("log_level", e))?;
        let subjects = Subjects::new(&raw.prefix).map_err(|e| invalid("prefix", e.to_string()))?;
        if raw.keep_jobs < Duration::from_secs(60) {
            return Err(invalid("keep_jobs", "must be at least 1m".into()));
        }
        if raw.job_ttl < Duration::from_secs(1) || raw.job_ttl > brine_proto::envelope::MAX_TTL {
            return Err(invalid("job_ttl", "must be between 1s and 7d".into()));
        }
        let nats = match raw.nats.url {
            Some(url) => {
                if raw.nats.listen.is_some() || raw.nats.server_bin.is_some() || !raw.tls.names.is_empty() {
                    return Err(invalid(
                        "nats.url",
                        "cannot be combined with nats.listen or nats.server_bin (those configure the embedded server)"
                            .into(),
                    ));
                }
                let auth = match (raw.nats.user, raw.nats.password, raw.nats.creds_file) {
                    (None, None, None) => ExternalAuth::None,
                    (Some(user), Some(password), None) => ExternalAuth::UserPassword { user, password },
                    (None, None, Some(creds)) => ExternalAuth::CredsFile(creds),
                    _ => return Err(invalid("nats", "use either user and password, or creds_file".into())),
                };
                NatsMode::External { url, auth, tls_ca: raw.nats.tls_ca_file }
            }
            None => {
                if raw.nats.user.is_some()
                    || raw.nats.password.is_some()
                    || raw.nats.creds_file.is_some()
                    || raw.nats.tls_ca_file.is_some()
                {
                    return Err(invalid(
                        "nats",
                        "user, password, creds_file and tls_ca_file need nats.url (an external server)".into(),
                    ));
                }
                let listen = raw.nats.listen.as_deref().unwrap_or("0.0.0.0:4222");
                let listen: SocketAddr = listen
                    .parse()
                    .map_err(|_| invalid("nats.listen", format!("{listen:?} is not an address like 0.0.0.0:4222")))?;
                let server_bin = raw
                    .nats
                    .server_bin
                    .or_else(|| std::env::var_os("NATS_SERVER").map(PathBuf::from))
                    .unwrap_or_else(|| PathBuf::from("nats-server"));
                NatsMode::Embedded { listen, server_bin, tls: raw.tls.enabled.then_some(raw.tls.names) }
            }
        };
        let mut nodegroups = brine_proto::target::Nodegroups::new();
        for (name, def) in raw.nodegroups {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
                return Err(invalid(
                    "nodegroups",
                    format!("{name:?} is not a nodegroup name (letters, digits, _ - .)"),
                ));
            }
            let expr = match def {
                RawNodegroup::Expr(e) => e,
                RawNodegroup::Words(w) => w.join(" "),
            };
            nodegroups.insert(name, expr);
        }
        for name in nodegroups.keys() {
            let target = brine_proto::Target::Nodegroup(name.clone());
            target
                .expand_nodegroups(&nodegroups)
                .and_then(|t| brine_proto::TargetMatcher::compile(&t).map(|_| ()))
                .map_err(|e| invalid("nodegroups", format!("{name}: {e}")))?;
        }
        let base = path.and_then(Path::parent).unwrap_or(Path::new("."));
        let file_roots = roots("file_roots", raw.file_roots, base).map_err(|m| invalid("file_roots", m))?;
        let pillar_roots = roots("pillar_roots", raw.pillar_roots, base).map_err(|m| invalid("pillar_roots", m))?;
        let operators = named_operators(raw.operators, &nodegroups, base).map_err(|(key, m)| invalid(&key, m))?;
        let audit = crate::audit::AuditConfig::from_raw(raw.audit).map_err(|(key, m)| invalid(&key, m))?;
        let reactor =
            crate::reactor::ReactorConfig::from_raw(raw.reactor, base).map_err(|(key, m)| invalid(&key, m))?;
        let schedule = crate::schedule::check_config(raw.schedule).map_err(|(key, m)| invalid(&key, m))?;
        Ok(MasterConfig {
            path: path.map(Path::to_path_buf),
            data_dir: raw.data_dir,
            subjects,
            auto_accept: raw.auto_accept,
            job_ttl: raw.job_ttl,
            keep_jobs: raw.keep_jobs,
            presence_timeout: raw.presence_timeout,
            log_level: raw.log_level,
            log_format: raw.log_format,
            file_roots,
            pillar_roots,
            nats,
            nodegroups,
            operators,
            reactor,
            audit,
            schedule,
        })
    }

    /// The master's own key.
    pub fn master_key_path(&self) -> PathBuf {
        self.data_dir.join("master.pem")
    }

    /// The local admin operator's key, used by the `brine` CLI on this host.
    pub fn admin_key_path(&self) -> PathBuf {
        self.data_dir.join("operators").join("admin.pem")
    }

    /// The audit log of operator requests (one JSON document a line).
    pub fn audit_log_path(&self) -> PathBuf {
        self.data_dir.join("audit.log")
    }

    /// The sled database.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("db")
    }

    /// The embedded NATS server's directory (config, JetStream store, pid).
    pub fn nats_dir(&self) -> PathBuf {
        self.data_dir.join("nats")
    }

    /// The embedded server's TLS files (CA, certificate, key).
    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }

    /// The CA local clients trust for the master's NATS, if it serves TLS.
    pub fn tls_ca_path(&self) -> Option<PathBuf> {
        match &self.nats {
            NatsMode::Embedded { tls: Some(_), .. } => Some(self.tls_dir().join("ca.pem")),
            NatsMode::Embedded { tls: None, .. } => None,
            NatsMode::External { tls_ca, .. } => tls_ca.clone(),
        }
    }

    /// Where the master records the URL clients on this host should use.
    pub fn client_url_path(&self) -> PathBuf {
        self.data_dir.join("nats-url")
    }
}

/// The config text and the file it came from: `path`, or the default path if `None`
/// (a missing default file means all defaults: empty text and no file; a missing
/// explicit file is an error).
fn read(path: Option<&Path>) -> Result<(String, Option<PathBuf>), ConfigError> {
    let (path, explicit) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((text, Some(path))),
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => Ok((String::new(), None)),
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

/// Validates the `[operators]` tables; an error names the key (`operators.alice.key`).
fn named_operators(
    raw: std::collections::BTreeMap<String, RawOperator>,
    nodegroups: &brine_proto::target::Nodegroups,
    base: &Path,
) -> Result<std::collections::BTreeMap<String, crate::acl::NamedOperator>, (String, String)> {
    let mut out = std::collections::BTreeMap::new();
    let mut seen: std::collections::HashMap<[u8; 32], String> = std::collections::HashMap::new();
    for (name, op) in raw {
        let at = |field: &str| format!("operators.{name}{field}");
        if name == crate::acl::ADMIN {
            return Err((
                at(""),
                "admin is the master's local operator and always has every right; choose another name".into(),
            ));
        }
        if name == crate::schedule::USER {
            // Scheduled jobs are recorded as user `schedule`: an operator of that name
            // would read them all as its own.
            return Err((at(""), "schedule is the user of scheduled jobs; choose another name".into()));
        }
        if name.is_empty()
            || name.len() > 64
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        {
            return Err((at(""), format!("{name:?} is not an operator name (letters, digits, _ and -, at most 64)")));
        }
        let key_path = base.join(&op.key);
        let key = brine_proto::keys::load_public_key(&key_path).map_err(|e| (at(".key"), e.to_string()))?;
        if let Some(other) = seen.insert(key.to_bytes(), name.clone()) {
            return Err((
                at(".key"),
                format!("{} is also the key of operators.{other}; each operator needs its own key", key_path.display()),
            ));
        }
        let mut acl = Vec::with_capacity(op.acl.len());
        for (i, entry) in op.acl.iter().enumerate() {
            let entry = crate::acl::AclEntry::new(&entry.target, &entry.functions, nodegroups)
                .map_err(|e| (at(&format!(".acl[{i}]")), e.to_string()))?;
            acl.push(entry);
        }
        out.insert(name.clone(), crate::acl::NamedOperator { name, key, keys: op.keys, jobs: op.jobs, acl });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_means_defaults() {
        let c = MasterConfig::parse("", None).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/brine/master"));
        assert_eq!(c.subjects.prefix(), "brine");
        assert!(!c.auto_accept);
        assert!(matches!(c.nats, NatsMode::Embedded { listen, .. } if listen.port() == 4222));
    }

    #[test]
    fn unknown_keys_are_refused_by_name_and_line() {
        let err = MasterConfig::parse("auto_accept = true\nauto_acept = true\n", Some(Path::new("/x/master.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/x/master.toml") && err.contains("auto_acept") && err.contains("line 2"), "{err}");
        let err = MasterConfig::parse("[nats]\nurll = \"x\"\n", None).unwrap_err().to_string();
        assert!(err.contains("urll"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = MasterConfig::parse("prefix = \"a b\"", None).unwrap_err().to_string();
        assert!(err.contains("prefix"), "{err}");
        let err = MasterConfig::parse("job_ttl = \"forever\"", None).unwrap_err().to_string();
        assert!(err.contains("forever"), "{err}");
        let err = MasterConfig::parse("[nats]\nlisten = \"nowhere\"", None).unwrap_err().to_string();
        assert!(err.contains("nats.listen"), "{err}");
        let err =
            MasterConfig::parse("[nats]\nurl = \"nats://x\"\nlisten = \"0.0.0.0:1\"", None).unwrap_err().to_string();
        assert!(err.contains("cannot be combined"), "{err}");
    }

    #[test]
    fn nodegroups_are_checked_at_load() {
        let c = MasterConfig::parse(
            "[nodegroups]\nweb = \"G@role:web or L@a,b\"\ndbs = [\"L@db1,db2\", \"or\", \"N@web\"]\n",
            None,
        )
        .unwrap();
        assert_eq!(c.nodegroups["dbs"], "L@db1,db2 or N@web");
        let err = MasterConfig::parse("[nodegroups]\nweb = \"G@role:web or\"\n", None).unwrap_err().to_string();
        assert!(
            err.contains("nodegroups") && err.contains("web:") && err.contains("expected a target before ')'"),
            "{err}"
        );
        let err = MasterConfig::parse("[nodegroups]\na = \"N@b\"\nb = \"N@a\"\n", None).unwrap_err().to_string();
        assert!(err.contains("includes itself"), "{err}");
    }

    #[test]
    fn operators_are_loaded_and_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let key = brine_proto::keys::generate_key().verifying_key();
        brine_proto::keys::write_public_key(&dir.path().join("alice.pub"), &key).unwrap();
        let config = dir.path().join("master.toml");
        let parse = |text: &str| MasterConfig::parse(text, Some(&config)).map_err(|e| e.to_string());
        // A relative key path is relative to the config file.
        let c = parse(
            "[nodegroups]\nweb = \"L@web1,web2\"\n[operators.alice]\nkey = \"alice.pub\"\njobs = true\n\
             [[operators.alice.acl]]\ntarget = \"N@web or G@role:web\"\nfunctions = [\"test.*\", \"cmd.run\"]\n",
        )
        .unwrap();
        let alice = &c.operators["alice"];
        assert_eq!((alice.key, alice.keys, alice.jobs, alice.acl.len()), (key, false, true, 1));
        assert!(alice.may_run("cmd.run", &brine_proto::target::Facts::id("web2")));

        let op = |body: &str| format!("[operators.alice]\nkey = \"alice.pub\"\n{body}");
        for (text, expected) in [
            (
                op("[[operators.alice.acl]]\ntarget = \"web* and\"\nfunctions = [\"test.*\"]\n"),
                "operators.alice.acl[0]: target",
            ),
            (
                op("[[operators.alice.acl]]\ntarget = \"*\"\nfunctions = [\"test.[\"]\n"),
                "operators.alice.acl[0]: functions",
            ),
            (op("[[operators.alice.acl]]\ntarget = \"*\"\nfunctions = []\n"), "operators.alice.acl[0]: functions"),
            (op("[[operators.alice.acl]]\ntarget = \"*\"\n"), "missing field `functions`"),
            (op("keyz = true\n"), "unknown field `keyz`"),
            ("[operators.alice]\nkey = \"nowhere.pub\"\n".into(), "operators.alice.key: key file"),
            ("[operators.alice]\nkey = \"master.toml\"\n".into(), "operators.alice.key: key file"),
            (
                "[operators.admin]\nkey = \"alice.pub\"\n".into(),
                "operators.admin: admin is the master's local operator",
            ),
            ("[operators.\"a b\"]\nkey = \"alice.pub\"\n".into(), "is not an operator name"),
            (op("[operators.bob]\nkey = \"alice.pub\"\n"), "operators.bob.key: "),
        ] {
            std::fs::write(&config, &text).unwrap();
            let err = parse(&text).unwrap_err();
            assert!(err.contains(expected), "{text}\n=> {err}");
        }
    }

    #[test]
    fn external_mode_keeps_the_password_out_of_debug_output() {
        let c =
            MasterConfig::parse("[nats]\nurl = \"nats://h:4222\"\nuser = \"u\"\npassword = \"s3cret\"", None).unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod packaged_defaults {
    use super::*;

    /// The default config shipped in packaging/ documents every key with its default:
    /// uncommented, it must parse to exactly the built-in defaults.
    #[test]
    fn packaged_master_toml_documents_the_defaults() {
        let text = include_str!("../../packaging/master.toml");
        // External-mode keys conflict with the embedded ones; server_bin's default
        // depends on $NATS_SERVER.
        // The operator example names a key file that does not exist here.
        let skip = [
            "url",
            "user",
            "password",
            "creds_file",
            "tls_ca_file",
            "server_bin",
            "web",
            "eu_web",
            "names",
            "key",
            "keys",
            "jobs",
            "target",
            "functions",
            "tag",
            "files",
            "function",
            "tgt",
            "cron",
        ];
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.contains(" = ") && !skip.iter().any(|k| rest.starts_with(&format!("{k} "))) => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        for key in [
            "data_dir",
            "prefix",
            "auto_accept",
            "job_ttl",
            "keep_jobs",
            "presence_timeout",
            "log_level",
            "listen",
            "enabled",
            "max_depth",
            "max_concurrent",
            "alert",
        ] {
            assert!(uncommented.lines().any(|l| l.starts_with(&format!("{key} = "))), "{key} is not documented");
        }
        for key in &skip[..6] {
            assert!(text.lines().any(|l| l.starts_with(&format!("#{key} = "))), "{key} is not documented");
        }
        let documented = MasterConfig::parse(&uncommented, None).unwrap();
        let defaults = MasterConfig::parse("", None).unwrap();
        assert_eq!(format!("{documented:?}"), format!("{defaults:?}"));
    }
}
