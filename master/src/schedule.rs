//! The master's schedule: `[schedule.<name>]` entries of `master.toml` that run a
//! job on targets (`function`, `tgt`, `tgt_type`, `args`, `kwargs`) by interval,
//! cron expression or once, like a `brine run` from the master. Jobs are published
//! through [`crate::ctl::start_job`] as user `schedule` and land in the job cache like
//! any job. A run counts against `maxrunning` until every targeted minion returned
//! (or `job_ttl` passed).
//!
//! Minions' own schedules are in `brine-minion`; their returns are filed by
//! [`crate::ingest`].

use crate::master::Shared;
use brine_proto::msg::RunRequest;
use brine_proto::schedule::{random_splay, Entry, Launch, Schedule, Skipped};
use brine_proto::{Map, TargetMatcher, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The user scheduled jobs are recorded under.
pub const USER: &str = "schedule";

/// Checks the `[schedule]` tables of the config: every entry's timing, function and
/// target. Returns the entries as data, or the faulty entry's key
/// (`schedule.<name>`) and what is wrong.
pub fn check_config(raw: toml::Table) -> Result<Map, (String, String)> {
    let items: Map = serde_json::to_value(raw).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default();
    for (name, item) in &items {
        let fail = |m: String| (format!("schedule.{name}"), m);
        let Some(table) = item.as_object() else {
            return Err(fail("must be a table of settings".into()));
        };
        let entry = Entry::parse(name, table, true).map_err(|e| fail(e.reason))?;
        let tgt = Value::String(entry.tgt.clone().unwrap_or_default());
        let target = crate::events::target_from_salt(&tgt, &entry.tgt_type).map_err(fail)?;
        if !matches!(target, brine_proto::Target::Nodegroup(_)) {
            TargetMatcher::compile(&target).map_err(|e| fail(format!("tgt: {e}")))?;
        }
    }
    Ok(items)
}

/// Runs the master's schedule until the task is aborted.
pub async fn run(shared: Arc<Shared>) {
    let (schedule, errors) = Schedule::load(&shared.cfg.schedule, true, brine_proto::time::now_ms(), &mut random_splay);
    for e in errors {
        // Checked when the config was loaded; nothing should be left here.
        tracing::error!("master schedule: {e}; left out");
    }
    if schedule.next_wake().is_none() {
        return;
    }
    let schedule = Arc::new(Mutex::new(schedule));
    loop {
        let now = brine_proto::time::now_ms();
        let next = schedule.lock().unwrap_or_else(|e| e.into_inner()).next_wake();
        let Some(next) = next else { return };
        if next > now {
            tokio::time::sleep(Duration::from_millis((next - now).min(1000))).await;
            continue;
        }
        let (due, skipped) = schedule.lock().unwrap_or_else(|e| e.into_inner()).due(now, &mut random_splay);
        for (name, why) in skipped {
            if let Skipped::MaxRunning(n) = why {
                tracing::info!(name, maxrunning = n, "master schedule: skipped, earlier runs still going");
            }
        }
        for launch in due {
            let (shared, schedule) = (shared.clone(), schedule.clone());
            tokio::spawn(async move {
                let name = launch.name.clone();
                launch_job(&shared, launch).await;
                schedule.lock().unwrap_or_else(|e| e.into_inner()).finished(&name);
            });
        }
    }
}

/// Publishes one scheduled job and waits until it is done (every targeted minion
/// returned, or `job_ttl` passed).
async fn launch_job(shared: &Arc<Shared>, launch: Launch) {
    let tgt = Value::String(launch.tgt.clone().unwrap_or_default());
    let target = match crate::events::target_from_salt(&tgt, &launch.tgt_type) {
        Ok(t) => t,
        Err(e) => return tracing::error!(name = %launch.name, error = %e, "master schedule: bad target"),
    };
    let run = RunRequest {
        target,
        fun: launch.function.clone(),
        arg: launch.args,
        kwarg: launch.kwargs,
        stream_to: None,
        queue_ttl_ms: None,
    };
    let started = match crate::ctl::start_job(shared, USER, run, 0).await {
        Ok(s) => s,
        Err(e) => {
            return tracing::warn!(name = %launch.name, fun = %launch.function, error = %e.message, "master schedule: the job did not start")
        }
    };
    tracing::info!(name = %launch.name, jid = %started.jid, fun = %launch.function, minions = started.minions.len(), "master schedule: job published");
    let since = Instant::now();
    while since.elapsed() < shared.cfg.job_ttl {
        if !shared.active.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&started.jid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_entries_need_a_valid_target() {
        let table = |s: &str| -> toml::Table { toml::from_str(s).unwrap() };
        let ok = check_config(table("[ping]\nfunction = \"test.ping\"\ntgt = \"web*\"\nseconds = 60\n")).unwrap();
        assert_eq!(ok["ping"]["tgt"], "web*");
        for (text, why) in [
            ("[p]\nfunction = \"test.ping\"\nseconds = 60\n", "needs tgt"),
            ("[p]\nfunction = \"test.ping\"\ntgt = \"x\"\ntgt_type = \"nope\"\nseconds = 60\n", "unknown tgt_type"),
            ("[p]\nfunction = \"test.ping\"\ntgt = \"G@\"\ntgt_type = \"compound\"\nseconds = 60\n", "tgt:"),
            ("[p]\nfunction = \"test.ping\"\ntgt = \"*\"\ncron = \"61 * * * *\"\n", "minute 61"),
        ] {
            let (key, e) = check_config(table(text)).unwrap_err();
            assert_eq!(key, "schedule.p");
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
