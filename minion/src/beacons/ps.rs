//! The `ps` beacon, as Salt's: `processes = { nginx = "running", cron = "stopped" }`
//! fires `{nginx: "Running"}` at each interval while a process of that name runs and
//! `{cron: "Stopped"}` while none does. Names are the kernel's process names
//! (`/proc/<pid>/comm`, extended from the command line when the kernel cut it at 15
//! characters), as psutil reports them.

use super::{only_keys, Beacon, Env, Fired};
use brine_proto::{Map, Value};
use std::collections::BTreeSet;

/// What a watched process should be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Running,
    Stopped,
}

struct Ps {
    processes: Vec<(String, Want)>,
}

pub(crate) fn build(_: &str, options: &Map, _: &Env) -> Result<Box<dyn Beacon>, String> {
    only_keys(options, &["processes"])?;
    let Some(Value::Object(procs)) = options.get("processes") else {
        return Err("ps requires processes, e.g. processes = { nginx = \"running\" }".into());
    };
    let processes = procs
        .iter()
        .map(|(name, want)| match want.as_str() {
            Some("running") => Ok((name.clone(), Want::Running)),
            Some("stopped") => Ok((name.clone(), Want::Stopped)),
            _ => Err(format!("processes.{name} must be \"running\" or \"stopped\", not {want}")),
        })
        .collect::<Result<_, _>>()?;
    Ok(Box::new(Ps { processes }))
}

/// The names of the processes running now.
pub(crate) fn process_names() -> Result<BTreeSet<String>, String> {
    let dir = std::fs::read_dir("/proc").map_err(|e| format!("/proc: {e}"))?;
    let mut names = BTreeSet::new();
    for entry in dir.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().filter(|s| s.bytes().all(|b| b.is_ascii_digit())) else { continue };
        // A process may end while we look: skip it.
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else { continue };
        let comm = comm.trim_end_matches('\n').to_string();
        let name = if comm.len() >= 15 {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .ok()
                .and_then(|c| {
                    let first = c.split(|b| *b == 0).next()?.to_vec();
                    let first = String::from_utf8(first).ok()?;
                    let base = first.rsplit('/').next()?.to_string();
                    base.starts_with(&comm).then_some(base)
                })
                .unwrap_or(comm)
        } else {
            comm
        };
        names.insert(name);
    }
    Ok(names)
}

impl Beacon for Ps {
    fn poll(&mut self) -> Result<Vec<Fired>, String> {
        let running = process_names()?;
        let mut out = Vec::new();
        for (name, want) in &self.processes {
            let is_running = running.contains(name);
            let word = match (want, is_running) {
                (Want::Running, true) => "Running",
                (Want::Stopped, false) => "Stopped",
                _ => continue,
            };
            let mut data = Map::new();
            data.insert(name.clone(), Value::String(word.into()));
            out.push(Fired::new(data));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ps_reports_running_and_stopped_processes() {
        let env = Env { id: "m".into(), data_dir: std::env::temp_dir() };
        let me = process_names().unwrap();
        assert!(!me.is_empty());
        let opts = json!({"processes": {"no-such-proc-x": "stopped", "no-such-proc-y": "running"}});
        let fired = build("ps", opts.as_object().unwrap(), &env).unwrap().poll().unwrap();
        assert_eq!(fired.len(), 1);
        assert_eq!(Value::Object(fired[0].data.clone()), json!({"no-such-proc-x": "Stopped"}));
        let bad = json!({"processes": {"x": "up"}});
        assert!(build("ps", bad.as_object().unwrap(), &env).err().unwrap().contains("running"));
    }
}
