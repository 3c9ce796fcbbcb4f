//! The minion's configuration: `/etc/brine/minion.toml` by default.
//!
//! Like the master's, two layers: [`RawConfig`] mirrors the file and refuses unknown
//! keys by name, [`MinionConfig`] is what the program uses. Every key is optional.

use brine_proto::config::duration;
use brine_proto::config::LogFormat;
use brine_proto::keys::Fingerprint;
use brine_proto::{Map, MinionId, Subjects};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the minion reads its config when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/brine/minion.toml";

/// Why the config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {}{}: {key}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid { path: PathBuf, line: Option<usize>, key: &'static str, message: String },
}

/// The config file as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// This minion's id. Default: the host's fully qualified name.
    #[serde(default)]
    pub id: Option<String>,
    /// The master's NATS address: `host`, `host:port` or `nats://host:port`.
    /// Default `brine` (port 4222), like Salt's default master name `salt`.
    #[serde(default = "default_master")]
    pub master: String,
    /// The master's key fingerprint (`brine key finger` on the master shows it). When
    /// set, the minion trusts only that key; otherwise it trusts the first master that
    /// answers and pins its key.
    #[serde(default)]
    pub master_finger: Option<String>,
    /// Key, pinned master key and job bookkeeping. Default `/var/lib/brine/minion`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Subject prefix shared with the master. Default `brine`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Jobs run at the same time; more wait. Default 8.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// How often the minion tells the master it is up. Default `10s`.
    #[serde(default = "default_presence_interval", with = "duration")]
    pub presence_interval: Duration,
    /// First wait between enrollment attempts while the key is pending; doubles up to
    /// `enroll_retry_max`. Default `1s`.
    #[serde(default = "default_retry_min", with = "duration")]
    pub enroll_retry_min: Duration,
    /// Longest wait between enrollment attempts. Default `30s`.
    #[serde(default = "default_retry_max", with = "duration")]
    pub enroll_retry_max: Duration,
    /// Log level; `RUST_LOG` overrides it. Default `info`.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Log lines as `text` or `json` (one object a line). Default `text`.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Static custom grains, merged over the collected ones.
    #[serde(default)]
    pub grains: toml::Table,
    /// Beacons: `[beacons.<name>]` tables with the module's options and `interval`,
    /// `disable_during_state_run`, `enabled`, `beacon_module`, `run_once`
    /// (docs/beacons.md).
    #[serde(default)]
    pub beacons: toml::Table,
    /// Schedule entries: `[schedule.<name>]` tables with `function`, `args`, `kwargs`
    /// and `seconds`/`minutes`/`hours`/`days`, `cron` or `once`, as Salt's
    /// (docs/schedules.md).
    #[serde(default)]
    pub schedule: toml::Table,
    /// NATS connection options.
    #[serde(default)]
    pub nats: RawNats,
    /// TLS to the master's NATS.
    #[serde(default)]
    pub tls: RawTls,
}

/// The `[tls]` table.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// The CA (PEM) to trust for the master's NATS. Unset: the CA the master sends in
    /// its signed enrollment answer, kept in `data_dir/master-ca.pem`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Refuse a connection without TLS: `true`, `false`, or `"auto"` (the default:
    /// required unless the master is on this host).
    #[serde(default)]
    pub required: Option<toml::Value>,
}

/// The `[nats]` table.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawNats {
    /// `nkey` (default): once accepted, connect with the minion's own key, as the
    /// master's embedded server expects. `none`: connect without credentials (an
    /// external server that does not authenticate minions).
    #[serde(default)]
    pub auth: Option<String>,
}

fn default_master() -> String {
    "brine".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/brine/minion")
}
fn default_prefix() -> String {
    brine_proto::subject::DEFAULT_PREFIX.into()
}
fn default_workers() -> usize {
    8
}
fn default_presence_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_retry_min() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(30)
}
fn default_log_level() -> String {
    "info".into()
}

/// How the minion authenticates its session to NATS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsAuth {
    Nkey,
    None,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct MinionConfig {
    pub path: Option<PathBuf>,
    pub id: MinionId,
    pub master_url: String,
    pub master_finger: Option<Fingerprint>,
    pub data_dir: PathBuf,
    pub subjects: Subjects,
    pub workers: usize,
    pub presence_interval: Duration,
    pub enroll_retry_min: Duration,
    pub enroll_retry_max: Duration,
    pub log_level: String,
    pub log_format: LogFormat,
    pub grains: Map,
    /// The beacons of the config file, checked (module names, common options).
    pub beacons: Map,
    /// The schedule entries of the config file, each checked.
    pub schedule: Map,
    pub nats_auth: NatsAuth,
    /// A configured CA file for the master's NATS.
    pub tls_ca_file: Option<PathBuf>,
    /// Whether a connection without TLS is refused.
    pub tls_required: bool,
}

/// The host's fully qualified name, the default minion id.
pub fn default_id() -> String {
    let grains = brine_states::grains::collect("", &Map::new());
    grains.get("fqdn").and_then(|v| v.as_str()).filter(|s| !s.is_empty()).unwrap_or("localhost").to_string()
}

/// Turns `host`, `host:port` or a URL into a NATS URL.
fn master_url(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.contains("://") {
        return Ok(s.to_string());
    }
    if s.contains(char::is_whitespace) {
        return Err(format!("{s:?} is not a host name or URL"));
    }
    let has_port = s.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !s.starts_with('[');
    Ok(if has_port { format!("nats://{s}") } else { format!("nats://{s}:4222") })
}

impl MinionConfig {
    /// Loads `path`, or the default path if `None` (missing default file: defaults).
    pub fn load(path: Option<&Path>) -> Result<MinionConfig, ConfigError> {
        let (text, path) = read(path)?;
        MinionConfig::parse(&text, path.as_deref())
    }

    /// Loads and checks the config like [`MinionConfig::load`], then writes it back as
    /// TOML with every default filled in (`brine-minion --check-config`), including
    /// the id this host would use and whether TLS is required.
    pub fn effective_toml(path: Option<&Path>) -> Result<String, ConfigError> {
        let (text, path) = read(path)?;
        let cfg = MinionConfig::parse(&text, path.as_deref())?;
        let shown = path.clone().unwrap_or_else(|| PathBuf::from("(defaults)"));
        let unreadable = |e: &dyn std::fmt::Display| ConfigError::Parse { path: shown.clone(), message: e.to_string() };
        let mut raw: RawConfig = toml::from_str(&text).map_err(|e| unreadable(&e))?;
        raw.id = Some(cfg.id.to_string());
        raw.nats.auth = Some(match cfg.nats_auth {
            NatsAuth::Nkey => "nkey".into(),
            NatsAuth::None => "none".into(),
        });
        raw.tls.required = Some(toml::Value::Boolean(cfg.tls_required));
        let body = toml::to_string(&raw).map_err(|e| unreadable(&e))?;
        let source = match &path {
            Some(p) => format!("{}", p.display()),
            None => format!("no file ({DEFAULT_CONFIG_PATH} does not exist)"),
        };
        Ok(format!("# brine-minion: the effective configuration, defaults filled in.\n# Read from {source}.\n\n{body}"))
    }

    /// Parses config text; `path` names the file in errors.
    pub fn parse(text: &str, path: Option<&Path>) -> Result<MinionConfig, ConfigError> {
        let shown = path.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("(defaults)"));
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: shown.clone(), message: e.to_string().trim_end().to_string() })?;
        let invalid = |key, message: String| ConfigError::Invalid {
            path: shown.clone(),
            line: brine_proto::config::line_of(text, key),
            key,
            message,
        };
        brine_proto::config::check_log_filter(&raw.log_level)
            .and_then(|()| tracing_subscriber::EnvFilter::try_new(&raw.log_level).map(drop).map_err(|e| e.to_string()))
            .map_err(|e| invalid("log_level", e))?;
        let id = MinionId::new(raw.id.unwrap_or_else(default_id)).map_err(|e| invalid("id", e.to_string()))?;
        let master_url = master_url(&raw.master).map_err(|m| invalid("master", m))?;
        let master_finger = match raw.master_finger.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(f) => Some(Fingerprint::parse(f).ok_or_else(|| {
                invalid("master_finger", format!("{f:?} is not a fingerprint (64 hex digits, colons allowed)"))
            })?),
            None => None,
        };
        let subjects = Subjects::new(&raw.prefix).map_err(|e| invalid("prefix", e.to_string()))?;
        if raw.workers == 0 || raw.workers > 1024 {
            return Err(invalid("workers", format!("{} is out of range (1 to 1024)", raw.workers)));
        }
        if raw.enroll_retry_min.is_zero() || raw.enroll_retry_max.is_zero() {
            return Err(invalid("enroll_retry_min", "enroll_retry_min and enroll_retry_max must be above zero".into()));
        }
        if raw.presence_interval < Duration::from_millis(100) {
            return Err(invalid("presence_interval", "must be at least 100ms".into()));
        }
        let nats_auth = match raw.nats.auth.as_deref() {
            None | Some("nkey") => NatsAuth::Nkey,
            Some("none") => NatsAuth::None,
            Some(other) => return Err(invalid("nats.auth", format!("{other:?} is not one of \"nkey\", \"none\""))),
        };
        let tls_required = match &raw.tls.required {
            None => !brine_proto::tls::is_loopback_url(&master_url),
            Some(toml::Value::Boolean(b)) => *b,
            Some(toml::Value::String(s)) if s == "auto" => !brine_proto::tls::is_loopback_url(&master_url),
            Some(other) => return Err(invalid("tls.required", format!("{other} is not true, false or \"auto\""))),
        };
        let grains: Map =
            serde_json::to_value(raw.grains).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default();
        let beacons: Map =
            serde_json::to_value(raw.beacons).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default();
        crate::beacons::check_config(&beacons).map_err(|m| invalid("beacons", m))?;
        let schedule: Map =
            serde_json::to_value(raw.schedule).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default();
        for (name, item) in &schedule {
            let item = item.as_object().cloned().unwrap_or_default();
            brine_proto::schedule::Entry::parse(name, &item, false).map_err(|e| ConfigError::Invalid {
                path: shown.clone(),
                line: brine_proto::config::line_of(text, &format!("schedule.{name}")),
                key: "schedule",
                message: e.to_string(),
            })?;
        }
        Ok(MinionConfig {
            path: path.map(Path::to_path_buf),
            id,
            master_url,
            master_finger,
            data_dir: raw.data_dir,
            subjects,
            workers: raw.workers,
            presence_interval: raw.presence_interval,
            // A lowered maximum also lowers the first wait.
            enroll_retry_min: raw.enroll_retry_min.min(raw.enroll_retry_max),
            enroll_retry_max: raw.enroll_retry_max,
            log_level: raw.log_level,
            log_format: raw.log_format,
            grains,
            beacons,
            schedule,
            nats_auth,
            tls_ca_file: raw.tls.ca_file,
            tls_required,
        })
    }

    /// The minion's private key.
    pub fn key_path(&self) -> PathBuf {
        self.data_dir.join("minion.pem")
    }

    /// The schedule saved by `schedule.*` (Salt's `_schedule.conf`).
    pub fn schedule_path(&self) -> PathBuf {
        self.data_dir.join("schedule.json")
    }

    /// The pinned master key.
    pub fn master_pub_path(&self) -> PathBuf {
        self.data_dir.join("master.pub")
    }

    /// Grains set with `grains.setval` (YAML), under the config's static grains.
    pub fn grains_path(&self) -> PathBuf {
        self.data_dir.join("grains")
    }

    /// Files fetched from the master's file server (`cp.cache_file`, SLS trees).
    pub fn cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache")
    }

    /// The CA of the master's NATS, as the master sent it.
    pub fn master_ca_path(&self) -> PathBuf {
        self.data_dir.join("master-ca.pem")
    }

    /// The minion's job records: accepted JIDs, jobs in flight, spooled returns
    /// (see [`crate::ledger`]).
    pub fn jobs_dir(&self) -> PathBuf {
        self.data_dir.join("jobs")
    }

    /// Where earlier versions kept the same records, in a sled database; moved into
    /// [`MinionConfig::jobs_dir`] on the first start.
    pub fn old_db_path(&self) -> PathBuf {
        self.data_dir.join("db")
    }
}

/// The config text and the file it came from: `path`, or the default path if `None`
/// (a missing default file means all defaults; a missing explicit file is an error).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_addresses_become_urls() {
        assert_eq!(master_url("brine").unwrap(), "nats://brine:4222");
        assert_eq!(master_url("10.0.0.1:4333").unwrap(), "nats://10.0.0.1:4333");
        assert_eq!(master_url("nats://h:1").unwrap(), "nats://h:1");
        assert!(master_url("a b").is_err());
    }

    #[test]
    fn config_parses_and_refuses_unknown_keys() {
        let c =
            MinionConfig::parse("id = \"web1.example.com\"\nmaster = \"m:4000\"\n[grains]\nroles = [\"web\"]\n", None)
                .unwrap();
        assert_eq!(c.id.as_str(), "web1.example.com");
        assert_eq!(c.master_url, "nats://m:4000");
        assert_eq!(c.grains["roles"], serde_json::json!(["web"]));
        let err = MinionConfig::parse("id = \"x\"\nmastr = \"m\"\n", Some(Path::new("/etc/brine/minion.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("mastr") && err.contains("/etc/brine/minion.toml") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("id = \"bad id\"", "id"),
            ("id = \"x\"\nmaster_finger = \"zz\"", "master_finger"),
            ("id = \"x\"\nworkers = 0", "workers"),
            ("id = \"x\"\n[nats]\nauth = \"jwt\"", "nats.auth"),
            ("id = \"x\"\npresence_interval = \"1ms\"", "presence_interval"),
        ] {
            let err = MinionConfig::parse(text, None).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod packaged_defaults {
    use super::*;

    /// The default config shipped in packaging/ documents every key with its default.
    #[test]
    fn packaged_minion_toml_documents_the_defaults() {
        let text = include_str!("../../packaging/minion.toml");
        let examples = ["id", "roles", "datacenter", "ca_file", "function", "hours", "splay", "\"/\"", "interval"];
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.contains(" = ") && !examples.iter().any(|k| rest.starts_with(&format!("{k} "))) => {
                    rest
                }
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        for key in [
            "master",
            "master_finger",
            "data_dir",
            "prefix",
            "workers",
            "presence_interval",
            "enroll_retry_min",
            "enroll_retry_max",
            "log_level",
            "auth",
            "required",
        ] {
            assert!(uncommented.lines().any(|l| l.starts_with(&format!("{key} = "))), "{key} is not documented");
        }
        let documented = MinionConfig::parse(&format!("id = \"x\"\n{uncommented}"), None).unwrap();
        let defaults = MinionConfig::parse("id = \"x\"", None).unwrap();
        assert_eq!(format!("{documented:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn a_bad_schedule_entry_is_refused_with_its_line() {
        let text = "id = \"x\"\n\n[schedule.ok]\nfunction = \"test.ping\"\nseconds = 5\n\n[schedule.disk]\nfunction = \"disk.usage\"\ncron = \"*/15 * *\"\n";
        let e = MinionConfig::parse(text, Some(Path::new("/etc/brine/minion.toml"))).unwrap_err().to_string();
        assert_eq!(
            e,
            "config file /etc/brine/minion.toml:7: schedule: schedule entry \"disk\": invalid cron expression \"*/15 * *\": \
             expected 5 fields (minute hour day-of-month month day-of-week), found 3"
        );
        let ok = MinionConfig::parse(&text.replace("*/15 * *", "*/15 * * * *"), None).unwrap();
        assert_eq!(ok.schedule["disk"]["cron"], "*/15 * * * *");
        // An unquoted TOML date-time is a date and time too.
        let once = "id = \"x\"\n[schedule.o]\nfunction = \"test.ping\"\nonce = 2030-01-02T03:04:05Z\n";
        assert!(MinionConfig::parse(once, None).is_ok());
    }
}
