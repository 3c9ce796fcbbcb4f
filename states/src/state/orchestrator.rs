//! What an orchestration's steps need from the master.
//!
//! An orchestration is a state run on the master: its states (`brine.function`,
//! `brine.state`, `brine.wait_for_event`, and Salt's `salt.*` spellings) start jobs on
//! minions and wait for events instead of changing the host. The master lends them an
//! [`Orchestrator`] through the [`StateContext`](super::StateContext); on a minion there
//! is none, and those states fail saying where they belong. The engine also asks the
//! orchestrator before each state whether to go on, which is how an orchestration is
//! paused and aborted between steps.

use brine_proto::{Map, Target, Value};
use std::time::{Duration, Instant};

/// The master's side of an orchestration. Calls block: the state engine is
/// synchronous and runs on a thread of its own.
pub trait Orchestrator: Sync {
    /// Called before each state runs: waits while the orchestration is paused, and
    /// says `false` once it was aborted (nothing more may start).
    fn proceed(&self) -> bool;
    /// Whether the orchestration was aborted (a running step stops waiting).
    fn aborted(&self) -> bool;
    /// Publishes a job to the minions `job.target` matches and waits for their
    /// returns, up to `job.timeout` (or until the master gives up on silent minions).
    fn run_job(&self, job: &StepJob) -> Result<StepReturns, String>;
    /// Starts following the event bus; events published before this call are not seen.
    fn listen(&self) -> Result<Box<dyn EventListener + '_>, String>;
}

/// A job a step starts.
#[derive(Debug, Clone, PartialEq)]
pub struct StepJob {
    pub target: Target,
    /// `module.function`.
    pub fun: String,
    pub arg: Vec<Value>,
    pub kwarg: Map,
    /// How long to wait for returns; `None`: as long as the minions are running it.
    pub timeout: Option<Duration>,
}

/// A minion's answer to a step's job.
#[derive(Debug, Clone, PartialEq)]
pub struct MinionReturn {
    pub ret: Value,
    pub retcode: i32,
    pub success: bool,
}

/// What came back from a step's job.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepReturns {
    /// The job's id.
    pub jid: String,
    /// Every targeted minion, sorted, with its return (`None`: it did not return).
    pub minions: Vec<(String, Option<MinionReturn>)>,
}

/// Verified events from the bus, in arrival order.
pub trait EventListener {
    /// The next event's tag and data, or `None` once `deadline` passed (or the
    /// orchestration was aborted).
    fn next(&mut self, deadline: Instant) -> Option<(String, Value)>;
}

/// Salt's target types (`tgt_type`) as brine targets.
pub fn target_of(tgt: &Value, tgt_type: &str) -> Result<Target, String> {
    let expr = match tgt {
        Value::String(s) => s.clone(),
        Value::Array(items) if tgt_type == "list" => {
            return Ok(Target::List(
                items.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect(),
            ))
        }
        Value::Array(_) => {
            return Err(format!("tgt is a list, which only tgt_type list takes (tgt_type is {tgt_type})"))
        }
        Value::Null => return Err("tgt is required: the minions to run on".into()),
        other => other.to_string(),
    };
    Ok(match tgt_type {
        "glob" => Target::Glob(expr),
        "list" => Target::list_from_str(&expr),
        "pcre" => Target::Pcre(expr),
        "grain" => Target::Grain(expr),
        "grain_pcre" => Target::GrainPcre(expr),
        "pillar" => Target::Pillar(expr),
        "pillar_pcre" => Target::PillarPcre(expr),
        "ipcidr" => Target::Cidr(expr),
        "nodegroup" => Target::Nodegroup(expr),
        "compound" => Target::Compound(expr),
        other => {
            return Err(format!(
                "tgt_type {other:?} is not one of glob, list, pcre, grain, grain_pcre, pillar, pillar_pcre, ipcidr, \
                 nodegroup, compound"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn salt_target_types_map_to_targets() {
        assert_eq!(target_of(&json!("web*"), "glob").unwrap(), Target::Glob("web*".into()));
        assert_eq!(target_of(&json!(["a", "b"]), "list").unwrap(), Target::List(vec!["a".into(), "b".into()]));
        assert_eq!(target_of(&json!("a, b"), "list").unwrap(), Target::List(vec!["a".into(), "b".into()]));
        assert_eq!(target_of(&json!("G@os:Debian"), "compound").unwrap(), Target::Compound("G@os:Debian".into()));
        assert!(target_of(&json!("x"), "range").unwrap_err().contains("range"));
        assert!(target_of(&json!(["a"]), "glob").is_err());
        assert!(target_of(&Value::Null, "glob").is_err());
    }
}
