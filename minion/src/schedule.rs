//! The minion's scheduler: the `[schedule.<name>]` entries of the config file and
//! the run-time changes made with `schedule.*` (kept in `data_dir/schedule.json`,
//! Salt's `_schedule.conf`), and when each runs next ([`brine_proto::schedule`]).
//!
//! The minion's task asks [`MinionSchedule::due`] what to start, runs each like a
//! job of its own (user `schedule`, a JID the minion makes) and reports the end with
//! [`MinionSchedule::finished`], which is what `maxrunning` counts.

use brine_proto::schedule::{random_splay, EntryError, Launch, Schedule, Skipped};
use brine_proto::{Jid, JidGenerator, Map, Value};
use brine_states::exec::schedule::ScheduleChange;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The schedule of a running minion.
pub struct MinionSchedule {
    state: Mutex<Schedule>,
    /// Runs asked for with `schedule.run_job`, started by the scheduler task.
    asked: Mutex<Vec<Launch>>,
    wake: tokio::sync::Notify,
    path: PathBuf,
    jids: JidGenerator,
}

/// The saved schedule: `{"schedule": {...}}`, or empty if there is no file.
fn read_saved(path: &Path) -> Result<Map, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(format!("cannot read the saved schedule {}: {e}", path.display())),
    };
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| format!("the saved schedule {} is not valid JSON: {e}", path.display()))?;
    Ok(doc.get("schedule").and_then(Value::as_object).cloned().unwrap_or_default())
}

impl MinionSchedule {
    /// The config's entries with the saved schedule over them (a saved entry replaces
    /// the config's of the same name, as Salt's `_schedule.conf` does). Entries that
    /// do not validate are left out and returned as warnings.
    pub fn load(config: &Map, path: PathBuf, now: u64) -> (MinionSchedule, Vec<String>) {
        let mut warnings = Vec::new();
        let mut items = config.clone();
        match read_saved(&path) {
            Ok(saved) => items.extend(saved),
            Err(e) => warnings.push(e),
        }
        let (state, errors) = Schedule::load(&items, false, now, &mut random_splay);
        warnings.extend(errors.iter().map(EntryError::to_string));
        let jids = JidGenerator::starting_after(None);
        let s = MinionSchedule {
            state: Mutex::new(state),
            asked: Mutex::new(Vec::new()),
            wake: Default::default(),
            path,
            jids,
        };
        (s, warnings)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The schedule as it runs now.
    pub fn current(&self) -> Map {
        self.state().to_map()
    }

    /// The schedule saved in the data dir.
    pub fn saved(&self) -> Result<Map, String> {
        read_saved(&self.path)
    }

    /// Writes the running schedule to the data dir (atomically, owner-only).
    fn save(&self, schedule: &Map) -> Result<(), String> {
        let text = serde_json::to_string_pretty(&serde_json::json!({ "schedule": schedule }))
            .map_err(|e| format!("cannot encode the schedule: {e}"))?;
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| format!("cannot save the schedule to {}: {e}", self.path.display()))
    }

    /// Applies a `schedule.*` change and returns the schedule after it.
    pub fn change(&self, change: ScheduleChange) -> Result<Map, String> {
        let now = brine_proto::time::now_ms();
        let (after, persist) = {
            let mut s = self.state();
            let persist = match change {
                ScheduleChange::Set { name, item, persist } => {
                    s.set(&name, item, now, &mut random_splay).map_err(|e| e.to_string())?;
                    persist
                }
                ScheduleChange::Delete { name, persist } => {
                    s.remove(&name);
                    persist
                }
                ScheduleChange::EnableJob { name, enabled, persist } => {
                    s.set_entry_enabled(&name, enabled);
                    persist
                }
                ScheduleChange::Enable { enabled, persist } => {
                    s.set_enabled(enabled);
                    persist
                }
                ScheduleChange::RunJob { name, force } => {
                    match s.run_now(&name, force) {
                        Ok(launch) => self.asked.lock().unwrap_or_else(|e| e.into_inner()).push(launch),
                        Err(why) => tracing::warn!(name, ?why, "schedule.run_job: not started"),
                    }
                    false
                }
                ScheduleChange::Save => true,
            };
            (s.to_map(), persist)
        };
        self.wake.notify_one();
        if persist {
            self.save(&after)?;
        }
        Ok(after)
    }

    /// The runs to start now (counted as running until [`MinionSchedule::finished`]).
    pub fn due(&self, now: u64) -> Vec<Launch> {
        let mut launches = std::mem::take(&mut *self.asked.lock().unwrap_or_else(|e| e.into_inner()));
        let (due, skipped) = self.state().due(now, &mut random_splay);
        for (name, why) in skipped {
            match why {
                Skipped::MaxRunning(n) => {
                    tracing::info!(name, maxrunning = n, "scheduled job skipped: maxrunning runs still going")
                }
                Skipped::OutOfRange => tracing::debug!(name, "scheduled job skipped: outside its range"),
                Skipped::Disabled => tracing::debug!(name, "scheduled job skipped: disabled"),
            }
        }
        launches.extend(due);
        launches
    }

    /// A run of `name` ended.
    pub fn finished(&self, name: &str) {
        self.state().finished(name);
    }

    /// A fresh JID for a scheduled run.
    pub fn next_jid(&self) -> Jid {
        self.jids.next()
    }

    /// Waits until an entry may be due or the schedule changed (at most a second, so
    /// a clock step is noticed).
    pub async fn wait(&self) {
        let now = brine_proto::time::now_ms();
        let next = self.state().next_wake().unwrap_or(u64::MAX);
        let wait = Duration::from_millis(next.saturating_sub(now).min(1000));
        let _ = tokio::time::timeout(wait, self.wake.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn changes_persist_and_load_over_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("schedule.json");
        let config = map(json!({"cfg": {"function": "test.ping", "minutes": 5}}));
        let (s, warnings) = MinionSchedule::load(&config, path.clone(), 0);
        assert!(warnings.is_empty(), "{warnings:?}");
        let item = map(json!({"function": "test.echo", "args": ["hi"], "seconds": 30}));
        s.change(ScheduleChange::Set { name: "rt".into(), item, persist: true }).unwrap();
        s.change(ScheduleChange::EnableJob { name: "cfg".into(), enabled: false, persist: true }).unwrap();
        let item = map(json!({"function": "test.ping", "seconds": 30}));
        s.change(ScheduleChange::Set { name: "temp".into(), item, persist: false }).unwrap();
        assert_eq!(s.current().len(), 3);
        let (again, warnings) = MinionSchedule::load(&config, path.clone(), 0);
        assert!(warnings.is_empty(), "{warnings:?}");
        let now = again.current();
        assert_eq!(now["rt"]["args"], json!(["hi"]));
        assert_eq!(now["cfg"]["enabled"], json!(false), "the saved entry replaces the config's");
        assert!(!now.contains_key("temp"), "persist=False changes only the running schedule");
        // The next persisted change saves the whole running schedule, as Salt's does.
        s.change(ScheduleChange::Enable { enabled: false, persist: true }).unwrap();
        let reloaded = MinionSchedule::load(&config, path.clone(), 0).0.current();
        assert_eq!((reloaded["enabled"].clone(), reloaded.contains_key("temp")), (json!(false), true));
        std::fs::write(&path, "not json").unwrap();
        let (broken, warnings) = MinionSchedule::load(&config, path, 0);
        assert!(warnings[0].contains("is not valid JSON"), "{warnings:?}");
        assert_eq!(broken.current().len(), 1, "the config's entries still run");
    }

    #[test]
    fn run_job_queues_a_launch() {
        let dir = tempfile::tempdir().unwrap();
        let config = map(json!({"j": {"function": "test.ping", "hours": 1}}));
        let (s, _) = MinionSchedule::load(&config, dir.path().join("schedule.json"), 0);
        s.change(ScheduleChange::RunJob { name: "j".into(), force: false }).unwrap();
        let due = s.due(1);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].function, "test.ping");
        s.change(ScheduleChange::RunJob { name: "j".into(), force: false }).unwrap();
        assert!(s.due(2).is_empty(), "maxrunning 1: the first run has not finished");
        s.finished("j");
        s.change(ScheduleChange::RunJob { name: "j".into(), force: false }).unwrap();
        assert_eq!(s.due(3).len(), 1);
    }
}
