//! Beacons: small watchers the minion runs at intervals that fire events when
//! something on the host changes or crosses a threshold, like Salt's.
//!
//! A beacon is configured in the minion config under `[beacons.<name>]` (the module
//! is the name, or `beacon_module`), with the module's options and the common ones:
//! `interval` (seconds or a duration, default 1 s), `disable_during_state_run`,
//! `enabled` and `run_once`. Each firing becomes an event signed by the minion and
//! tagged `brine/beacon/<minion id>/<name>[/<sub tag>]`, its data the module's (Salt's
//! shapes) plus `id`.
//!
//! [`Beacons`] owns the running beacons. The `beacons.*` execution functions change
//! them at run time through the minion's `Host`; each change is applied at once and
//! kept in `<data_dir>/beacons.json` next to the config it was made from, so it
//! survives a restart. When the config file's beacons change, the file wins again.

mod audit;
mod inotify;
mod log;
mod ps;
mod service;
mod status;
mod usage;

use brine_proto::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What one beacon reports when it fires: an optional sub tag (appended to
/// `brine/beacon/<id>/<name>/`) and the event data.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub tag: Option<String>,
    pub data: Map,
}

impl Fired {
    fn new(data: Map) -> Fired {
        Fired { tag: None, data }
    }

    fn tagged(tag: impl Into<String>, data: Map) -> Fired {
        Fired { tag: Some(tag.into()), data }
    }
}

/// A running beacon: polled when its interval comes round.
pub(crate) trait Beacon: Send {
    /// Looks at the host and returns what to report now (often nothing).
    fn poll(&mut self) -> Result<Vec<Fired>, String>;
}

/// What a beacon may need from the minion when it is built.
#[derive(Debug, Clone)]
pub struct Env {
    /// The minion's id.
    pub id: String,
    /// The minion's data dir (the audit beacon keeps its read offsets there).
    pub data_dir: PathBuf,
}

type Build = fn(name: &str, options: &Map, env: &Env) -> Result<Box<dyn Beacon>, String>;

/// Every beacon module, alphabetical: name, what it watches, how to build it.
pub(crate) static MODULES: &[(&str, &str, Build)] = &[
    ("audit", "commands typed in interactive shells (the audit hook's spool)", audit::build),
    ("diskusage", "mounts whose usage is at or above a threshold", usage::build_diskusage),
    ("inotify", "file and directory changes", inotify::build),
    ("load", "load averages outside a range", usage::build_load),
    ("log", "lines of a log file matching regular expressions", log::build),
    ("memusage", "memory usage at or above a threshold", usage::build_memusage),
    ("ps", "processes running or stopped", ps::build),
    ("service", "services starting and stopping", service::build),
    ("status", "status.* functions' data at each interval", status::build),
];

/// The longest tag the master's bus takes.
const MAX_TAG: usize = 1024;

/// Options every beacon takes, handled here rather than by the module.
const COMMON: &[&str] = &["interval", "disable_during_state_run", "enabled", "beacon_module", "run_once"];

/// The names of the beacon modules, alphabetical.
pub fn module_names() -> Vec<String> {
    MODULES.iter().map(|(n, _, _)| n.to_string()).collect()
}

/// How a configured beacon runs.
#[derive(Debug, Clone, PartialEq)]
struct Spec {
    module: String,
    interval: Duration,
    disable_during_state_run: bool,
    enabled: bool,
    run_once: bool,
    /// The module's own options (the common ones taken out).
    options: Map,
}

/// Reads a beacon's options: its module and the common options, checked.
fn spec_of(name: &str, value: &Value) -> Result<Spec, String> {
    let Value::Object(all) = value else {
        return Err(format!("beacon {name}: its options must be a table (a map), not {value}"));
    };
    let module = match all.get("beacon_module") {
        None => name.to_string(),
        Some(Value::String(m)) => m.clone(),
        Some(other) => return Err(format!("beacon {name}: beacon_module must be a module name, not {other}")),
    };
    if !MODULES.iter().any(|(n, _, _)| *n == module) {
        return Err(format!(
            "beacon {name}: there is no beacon module {module:?} (available: {}); name the module with beacon_module",
            module_names().join(", ")
        ));
    }
    let flag = |key: &str, default: bool| match all.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("beacon {name}: {key} must be true or false, not {other}")),
    };
    let interval = match all.get("interval") {
        None => Duration::from_secs(1),
        Some(v) => interval_of(v).map_err(|e| format!("beacon {name}: interval: {e}"))?,
    };
    Ok(Spec {
        module,
        interval,
        disable_during_state_run: flag("disable_during_state_run", false)?,
        enabled: flag("enabled", true)?,
        run_once: flag("run_once", false)?,
        options: all
            .iter()
            .filter(|(k, _)| !COMMON.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

/// An interval: seconds (a number) or a duration (`"500ms"`, `"5s"`, `"2m"`), at
/// least 100 ms.
fn interval_of(v: &Value) -> Result<Duration, String> {
    let d = match v {
        Value::Number(n) => {
            let secs = n.as_f64().filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9).ok_or("is out of range")?;
            Duration::from_millis((secs * 1000.0).round() as u64)
        }
        Value::String(s) => brine_proto::config::parse_duration(s)?,
        other => return Err(format!("{other} is not a number of seconds or a duration like \"10s\"")),
    };
    if d < Duration::from_millis(100) {
        return Err("must be at least 100ms".into());
    }
    Ok(d)
}

/// Builds the module of `spec`.
fn build(name: &str, spec: &Spec, env: &Env) -> Result<Box<dyn Beacon>, String> {
    let (_, _, build) = MODULES
        .iter()
        .find(|(n, _, _)| *n == spec.module)
        .ok_or_else(|| format!("beacon {name}: no module {}", spec.module))?;
    build(name, &spec.options, env).map_err(|e| format!("beacon {name} ({}): {e}", spec.module))
}

/// Checks the `[beacons]` of a config file without starting anything: every entry a
/// table naming a known module with well-typed common options.
pub fn check_config(beacons: &Map) -> Result<(), String> {
    for (name, value) in beacons {
        if name == "enabled" {
            if !value.is_boolean() {
                return Err(format!("beacons.enabled must be true or false, not {value}"));
            }
            continue;
        }
        spec_of(name, value)?;
    }
    Ok(())
}

/// A beacon the minion runs.
struct Live {
    spec: Spec,
    /// The config as given, to tell an unchanged beacon (kept running) from a new one.
    raw: Value,
    /// `None` when it could not start (a saved beacon whose file is gone, say).
    beacon: Option<Box<dyn Beacon>>,
    due: Instant,
    /// The last error reported, so a failing beacon does not flood the log.
    last_error: Option<String>,
}

struct State {
    /// Beacon name → options, and the global `enabled` flag: what `beacons.list` shows.
    config: Map,
    live: BTreeMap<String, Live>,
}

/// The minion's beacons.
pub struct Beacons {
    env: Env,
    /// The beacons of the config file.
    base: Map,
    state: Mutex<State>,
}

/// What `<data_dir>/beacons.json` holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    /// The config file's beacons when the change was made.
    base: Map,
    /// The beacons after the run-time changes.
    beacons: Map,
}

impl Beacons {
    /// The beacons of the config file (`base`), or the run-time changes saved in the
    /// data dir if they were made from the same config file. Beacons that cannot start
    /// are reported in the log and listed, not run.
    pub fn load(env: Env, base: Map) -> Beacons {
        let saved = std::fs::read(saved_path(&env.data_dir)).ok().and_then(|bytes| {
            match serde_json::from_slice::<Saved>(&bytes) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(path = %saved_path(&env.data_dir).display(), error = %e, "ignoring the saved beacons");
                    None
                }
            }
        });
        let config = match saved {
            Some(s) if s.base == base => s.beacons,
            Some(_) => {
                tracing::warn!("the config file's beacons changed since beacons were changed at run time; running the config file's");
                let _ = std::fs::remove_file(saved_path(&env.data_dir));
                base.clone()
            }
            None => base.clone(),
        };
        let beacons = Beacons { env, base, state: Mutex::new(State { config: Map::new(), live: BTreeMap::new() }) };
        beacons.apply(config, false).unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the beacons"));
        beacons
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The beacons as `beacons.list` shows them.
    pub fn config(&self) -> Map {
        self.lock().config.clone()
    }

    /// Whether `options` would make a valid beacon called `name`.
    pub fn validate(&self, name: &str, options: &Map) -> Result<(), String> {
        if name == "enabled" || name.is_empty() || name.contains(['/', ' ']) {
            return Err(format!("{name:?} cannot name a beacon (a word without slashes or blanks)"));
        }
        let spec = spec_of(name, &Value::Object(options.clone()))?;
        build(name, &spec, &self.env).map(drop)
    }

    /// Runs `config` from now on (beacons whose options did not change keep running
    /// as they were) and keeps it in the data dir.
    pub fn set(&self, config: Map) -> Result<(), String> {
        self.apply(config, true)?;
        self.save().map(drop)
    }

    /// Back to the config file's beacons; forgets the run-time changes.
    pub fn reset(&self) -> Result<(), String> {
        self.apply(self.base.clone(), false)?;
        match std::fs::remove_file(saved_path(&self.env.data_dir)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("{}: {e}", saved_path(&self.env.data_dir).display())),
        }
    }

    /// Writes the beacons to the data dir; the file written.
    pub fn save(&self) -> Result<PathBuf, String> {
        let saved = Saved { base: self.base.clone(), beacons: self.config() };
        let path = saved_path(&self.env.data_dir);
        let text = serde_json::to_vec_pretty(&saved).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }

    /// Replaces the running beacons. With `strict`, a beacon that cannot start
    /// refuses the whole change; otherwise it is listed but not run.
    fn apply(&self, config: Map, strict: bool) -> Result<(), String> {
        if let Some(v) = config.get("enabled").filter(|v| !v.is_boolean()) {
            return Err(format!("enabled must be true or false, not {v}"));
        }
        let mut state = self.lock();
        let mut live = BTreeMap::new();
        for (name, raw) in config.iter().filter(|(k, _)| k.as_str() != "enabled") {
            if let Some(old) = state.live.remove(name).filter(|old| old.raw == *raw) {
                live.insert(name.clone(), old);
                continue;
            }
            let started = spec_of(name, raw).and_then(|spec| build(name, &spec, &self.env).map(|b| (spec, b)));
            match started {
                Ok((spec, beacon)) => {
                    live.insert(
                        name.clone(),
                        Live { spec, raw: raw.clone(), beacon: Some(beacon), due: Instant::now(), last_error: None },
                    );
                }
                Err(e) if strict => return Err(e),
                Err(e) => {
                    tracing::error!(beacon = %name, error = %e, "beacon configuration invalid, not running");
                    if let Ok(spec) = spec_of(name, raw) {
                        live.insert(
                            name.clone(),
                            Live { spec, raw: raw.clone(), beacon: None, due: Instant::now(), last_error: Some(e) },
                        );
                    }
                }
            }
        }
        state.live = live;
        state.config = config;
        Ok(())
    }

    /// Polls every enabled beacon whose interval came round; `state_run` says whether
    /// a state run is under way (beacons with `disable_during_state_run` skip it).
    /// Returns the events to publish: their tag and data.
    pub fn poll_due(&self, now: Instant, state_run: bool) -> Vec<(String, Value)> {
        let mut state = self.lock();
        if state.config.get("enabled") == Some(&Value::Bool(false)) {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut ran_once = Vec::new();
        for (name, live) in state.live.iter_mut() {
            if !live.spec.enabled || now < live.due {
                continue;
            }
            live.due = now + live.spec.interval;
            if live.spec.disable_during_state_run && state_run {
                tracing::debug!(beacon = %name, "skipped: a state run is under way");
                continue;
            }
            let Some(beacon) = live.beacon.as_mut() else { continue };
            match beacon.poll() {
                Ok(fired) => {
                    live.last_error = None;
                    for f in fired {
                        out.push(self.event(name, f));
                    }
                    if live.spec.run_once {
                        ran_once.push(name.clone());
                    }
                }
                Err(e) => {
                    if live.last_error.as_ref() != Some(&e) {
                        tracing::warn!(beacon = %name, error = %e, "beacon failed");
                        live.last_error = Some(e);
                    }
                }
            }
        }
        // Like Salt, a run_once beacon disables itself after its first run.
        for name in ran_once {
            if let Some(live) = state.live.get_mut(&name) {
                live.spec.enabled = false;
            }
        }
        out
    }

    /// The tag and data of an event from beacon `name`.
    fn event(&self, name: &str, fired: Fired) -> (String, Value) {
        let mut tag = format!("brine/beacon/{}/{name}", self.env.id);
        if let Some(sub) = fired.tag {
            // The bus takes no blanks, control characters or empty words in a tag
            // (the data keeps the exact path or name).
            for seg in sub.split('/').filter(|s| !s.is_empty()) {
                tag.push('/');
                tag.extend(seg.chars().map(|c| if c.is_whitespace() || c.is_control() { '_' } else { c }));
            }
        }
        if tag.len() > MAX_TAG {
            let mut end = MAX_TAG;
            while !tag.is_char_boundary(end) {
                end -= 1;
            }
            tag.truncate(end);
            let trimmed = tag.trim_end_matches('/').len();
            tag.truncate(trimmed);
        }
        let mut data = fired.data;
        data.entry("id").or_insert_with(|| Value::String(self.env.id.clone()));
        (tag, Value::Object(data))
    }
}

fn saved_path(data_dir: &Path) -> PathBuf {
    data_dir.join("beacons.json")
}

/// A number, or a string like `"90%"` or `"90"`, as a float (Salt accepts both).
fn percent_of(v: &Value) -> Result<f64, String> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().trim_end_matches('%').trim().parse::<f64>().ok(),
        _ => None,
    };
    n.filter(|n| n.is_finite()).ok_or_else(|| format!("{v} is not a percentage like 90 or \"90%\""))
}

/// Reads a whole small file (`/proc/...`).
fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

/// Takes the options of a module that has exactly these keys; an unknown key is an
/// error naming the known ones.
fn only_keys(options: &Map, known: &[&str]) -> Result<(), String> {
    match options.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown option {k:?} (options: {})", known.join(", "))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(dir: &Path) -> Env {
        Env { id: "m1".into(), data_dir: dir.to_path_buf() }
    }

    fn map(v: Value) -> Map {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn sub_tags_become_words_the_bus_takes() {
        let dir = tempfile::tempdir().unwrap();
        let b = Beacons::load(env(dir.path()), Map::new());
        let (tag, data) = b.event("inotify", Fired::tagged("/srv/my app//x\n", map(json!({"path": "/srv/my app/x"}))));
        assert_eq!(tag, "brine/beacon/m1/inotify/srv/my_app/x_");
        assert_eq!(data["path"], "/srv/my app/x");
        let (long, _) = b.event("log", Fired::tagged("é".repeat(600), Map::new()));
        assert!(long.len() <= MAX_TAG && long.starts_with("brine/beacon/m1/log/é"), "{}", long.len());
    }

    #[test]
    fn common_options_are_checked_and_named() {
        for (v, want) in [
            (json!({"beacon_module": "nope"}), "no beacon module \"nope\""),
            (json!({"interval": "fast"}), "interval"),
            (json!({"interval": 0.01}), "at least 100ms"),
            (json!({"enabled": "yes"}), "enabled must be true or false"),
            (json!(5), "must be a table"),
        ] {
            let err = spec_of("ps", &v).unwrap_err();
            assert!(err.contains(want) && err.contains("beacon ps"), "{v}: {err}");
        }
        let spec = spec_of("watch", &json!({"beacon_module": "ps", "interval": 2.5, "processes": {}})).unwrap();
        assert_eq!((spec.module.as_str(), spec.interval), ("ps", Duration::from_millis(2500)));
        assert_eq!(spec.options, map(json!({"processes": {}})));
        assert!(check_config(&map(json!({"enabled": 3}))).is_err());
    }

    #[test]
    fn run_time_changes_survive_a_restart_until_the_config_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let base = map(json!({"load": {"averages": {"1m": [0.0, 1000.0]}}}));
        let b = Beacons::load(env(dir.path()), base.clone());
        let mut config = b.config();
        config.insert("memusage".into(), json!({"percent": "101%", "interval": 5}));
        b.set(config.clone()).unwrap();
        // A restart with the same config file: the change is still there.
        let again = Beacons::load(env(dir.path()), base.clone());
        assert_eq!(again.config(), config);
        // An invalid beacon is refused and changes nothing.
        let mut bad = config.clone();
        bad.insert("ps".into(), json!({"processes": "x"}));
        assert!(again.set(bad).is_err());
        assert_eq!(again.config(), config);
        // reset: back to the file.
        again.reset().unwrap();
        assert_eq!(again.config(), base);
        assert_eq!(Beacons::load(env(dir.path()), base.clone()).config(), base);
        // A changed config file wins over older run-time changes.
        again.set(config).unwrap();
        let other = map(json!({"ps": {"processes": {"init": "running"}}}));
        assert_eq!(Beacons::load(env(dir.path()), other.clone()).config(), other);
    }

    #[test]
    fn due_beacons_fire_with_salts_tags_and_respect_interval_enabled_and_state_runs() {
        let dir = tempfile::tempdir().unwrap();
        // Memory is always at least 0 % used: fires at every interval.
        let b = Beacons::load(
            env(dir.path()),
            map(json!({"mem": {"beacon_module": "memusage", "percent": "0%", "interval": 10,
                                "disable_during_state_run": true}})),
        );
        let t0 = Instant::now();
        let fired = b.poll_due(t0, false);
        assert_eq!(fired.len(), 1);
        let (tag, data) = &fired[0];
        assert_eq!(tag, "brine/beacon/m1/mem");
        assert_eq!(data["id"], "m1");
        assert!(data["memusage"].as_f64().unwrap() > 0.0, "{data}");
        assert!(b.poll_due(t0 + Duration::from_secs(1), false).is_empty(), "the interval has not come round");
        assert!(b.poll_due(t0 + Duration::from_secs(11), true).is_empty(), "skipped during a state run");
        assert_eq!(b.poll_due(t0 + Duration::from_secs(22), false).len(), 1);
        let mut off = b.config();
        off.insert("enabled".into(), json!(false));
        b.set(off).unwrap();
        assert!(b.poll_due(t0 + Duration::from_secs(60), false).is_empty());
    }
}
