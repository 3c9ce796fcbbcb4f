//! `brine job`: read the job cache.

use super::client::Operator;
use super::{cell, columns, exit, fail, render, Io, OutFormat};
use brine_proto::msg::{CtlOp, CtlResult, JobAction, JobFilter, JobSummary};
use brine_proto::{Jid, Map, Value};
use serde_json::json;

#[derive(Debug, clap::Subcommand)]
pub enum JobCommand {
    /// The newest jobs, newest first, with their totals.
    List {
        /// How many jobs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only jobs of functions matching this glob (`test.*`).
        #[arg(long, short = 'f')]
        function: Option<String>,
        /// Only jobs whose target, as written, matches this glob.
        #[arg(long, short = 't')]
        target: Option<String>,
        /// Only jobs started within this long (`30m`, `2h`, `1d`).
        #[arg(long, value_parser = brine_proto::config::parse_duration)]
        since: Option<std::time::Duration>,
        /// Output format.
        #[arg(long = "out", value_enum, default_value_t = OutFormat::Table)]
        out: OutFormat,
    },
    /// Jobs still running on minions or still waiting for returns.
    Active {
        /// Output format.
        #[arg(long = "out", value_enum, default_value_t = OutFormat::Table)]
        out: OutFormat,
    },
    /// Pause a running orchestration: the running step finishes, the next waits.
    Pause {
        /// The orchestration's job id.
        jid: Jid,
    },
    /// Resume a paused orchestration.
    Resume {
        /// The orchestration's job id.
        jid: Jid,
    },
    /// Stop a running job on every minion that has not returned yet; abort a running
    /// orchestration (its running step is killed, nothing more starts).
    Kill {
        /// The job id.
        jid: Jid,
        /// Seconds to wait for the minions to confirm.
        #[arg(short, long, default_value_t = 5.0)]
        timeout: f64,
    },
    /// One job's returns (like salt-run jobs.lookup_jid), or its totals with --summary.
    Show {
        /// The job id.
        jid: Jid,
        /// Print the job's totals instead of its returns (for state runs, with each
        /// minion's succeeded, changed and failed states).
        #[arg(long)]
        summary: bool,
        /// Output format (default: highstate for the returns of state runs, nested
        /// otherwise).
        #[arg(long = "out", value_enum)]
        out: Option<OutFormat>,
    },
}

fn print(io: &mut Io<'_>, format: OutFormat, doc: &Value) {
    let text = match format {
        OutFormat::Table => table(doc),
        other => render(other, doc, io.color),
    };
    let _ = io.out.write_all(text.as_bytes());
}

/// Jobs as aligned columns, in the order the master listed them (newest first).
fn table(doc: &Value) -> String {
    let rows = doc
        .as_object()
        .map(|jobs| {
            jobs.iter()
                .map(|(jid, j)| {
                    vec![
                        jid.clone(),
                        cell(&j["Function"]),
                        cell(&j["Target"]),
                        cell(&j["User"]),
                        format!("{}/{}", cell(&j["Returned"]), cell(&j["Targeted"])),
                        cell(&j["Failed"]),
                        cell(&j["StartTime"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    columns(&["JID", "FUNCTION", "TARGET", "USER", "RETURNED", "FAILED", "STARTED"], rows)
}

fn summary_doc(j: &JobSummary) -> Value {
    json!({
        "Function": j.fun,
        "Target": j.target.to_string(),
        "User": j.user,
        "StartTime": brine_proto::time::format_ms(j.started_at),
        "Targeted": j.counts.targeted,
        "Returned": j.counts.returned,
        "Succeeded": j.counts.succeeded,
        "Failed": j.counts.failed,
    })
}

pub async fn run(op: &Operator, cmd: JobCommand, io: &mut Io<'_>) -> u8 {
    match cmd {
        JobCommand::List { limit, function, target, since, out } => {
            let since_ms = since.map(|d| brine_proto::time::now_ms().saturating_sub(d.as_millis() as u64));
            let filter = JobFilter { limit, fun: function, target, since_ms };
            match op.request(CtlOp::JobList(filter)).await {
                Ok(CtlResult::Jobs(jobs)) => {
                    let doc: Map = jobs.iter().map(|j| (j.jid.to_string(), summary_doc(j))).collect();
                    print(io, out, &Value::Object(doc));
                    exit::OK
                }
                Ok(CtlResult::Error(e)) => fail(io, e.message),
                Ok(other) => fail(io, format!("unexpected answer {other:?}")),
                Err(e) => fail(io, e),
            }
        }
        JobCommand::Active { out } => match op.request(CtlOp::JobActive).await {
            Ok(CtlResult::Active(jobs)) => {
                if out == OutFormat::Table {
                    let rows = jobs
                        .iter()
                        .map(|a| {
                            let j = &a.summary;
                            let running: Vec<&str> = a.running.iter().map(|m| m.as_str()).collect();
                            vec![
                                j.jid.to_string(),
                                j.fun.clone(),
                                j.target.to_string(),
                                format!("{}/{}", j.counts.returned, j.counts.targeted),
                                running.join(","),
                                brine_proto::time::format_ms(j.started_at),
                            ]
                        })
                        .collect();
                    let text = columns(&["JID", "FUNCTION", "TARGET", "RETURNED", "RUNNING ON", "STARTED"], rows);
                    let _ = io.out.write_all(text.as_bytes());
                } else {
                    let doc: Map = jobs
                        .iter()
                        .map(|a| {
                            let mut d = summary_doc(&a.summary);
                            d["Running"] = json!(a.running);
                            (a.summary.jid.to_string(), d)
                        })
                        .collect();
                    print(io, out, &Value::Object(doc));
                }
                exit::OK
            }
            Ok(CtlResult::Error(e)) => fail(io, e.message),
            Ok(other) => fail(io, format!("unexpected answer {other:?}")),
            Err(e) => fail(io, e),
        },
        JobCommand::Kill { jid, timeout } => kill(op, jid, timeout, io).await,
        JobCommand::Pause { jid } => control(op, jid, JobAction::Pause, io).await,
        JobCommand::Resume { jid } => control(op, jid, JobAction::Resume, io).await,
        JobCommand::Show { jid, summary, out } => match op.request(CtlOp::JobShow { jid }).await {
            Ok(CtlResult::Job(report)) => {
                let c = &report.counts;
                if summary {
                    let doc = json!({
                        "jid": jid.to_string(),
                        "Function": report.job.fun,
                        "Target": report.job.target.to_string(),
                        "User": report.job.user,
                        "StartTime": brine_proto::time::format_ms(report.job.started_at),
                        "Targeted": c.targeted,
                        "Returned": c.returned,
                        "Succeeded": c.succeeded,
                        "Failed": c.failed,
                        "Did not return": c.missing(),
                    });
                    let mut doc = doc;
                    let states: Map = report
                        .returns
                        .iter()
                        .filter_map(|r| {
                            let n = brine_proto::output::highstate::counts(&r.ret)?;
                            Some((
                                r.id.to_string(),
                                json!({"succeeded": n.succeeded, "changed": n.changed, "failed": n.failed}),
                            ))
                        })
                        .collect();
                    if !states.is_empty() {
                        doc["States"] = Value::Object(states);
                    }
                    print(io, out.unwrap_or(OutFormat::Nested), &doc);
                    return exit::OK;
                }
                let out = out.unwrap_or(if brine_proto::output::highstate::runs_states(&report.job.fun) {
                    OutFormat::Highstate
                } else {
                    OutFormat::Nested
                });
                let mut doc = Map::new();
                for r in &report.returns {
                    doc.insert(r.id.to_string(), r.ret.clone());
                }
                print(io, out, &Value::Object(doc));
                if c.failed > 0 {
                    exit::FAILED
                } else {
                    exit::OK
                }
            }
            Ok(CtlResult::Error(e)) => fail(io, e.message),
            Ok(other) => fail(io, format!("unexpected answer {other:?}")),
            Err(e) => fail(io, e),
        },
    }
}

/// Sends `saltutil.kill_job JID` to the job's minions that have not returned.
async fn kill(op: &Operator, jid: Jid, timeout: f64, io: &mut Io<'_>) -> u8 {
    let report = match op.request(CtlOp::JobShow { jid }).await {
        Ok(CtlResult::Job(r)) => r,
        Ok(CtlResult::Error(e)) => return fail(io, e.message),
        Ok(other) => return fail(io, format!("unexpected answer {other:?}")),
        Err(e) => return fail(io, e),
    };
    if report.job.fun == crate::orchestrate::FUN {
        return control(op, jid, JobAction::Kill, io).await;
    }
    let returned: Vec<&str> = report.returns.iter().map(|r| r.id.as_str()).collect();
    let pending: Vec<String> =
        report.job.minions.iter().filter(|m| !returned.contains(&m.as_str())).map(|m| m.to_string()).collect();
    if pending.is_empty() {
        let _ = writeln!(io.out, "Job {jid} is not running: every minion has returned.");
        return exit::OK;
    }
    let args = super::run::RunArgs::internal(pending.join(","), "saltutil.kill_job", vec![jid.to_string()], timeout);
    super::run::run(op, args, io).await
}

/// Pauses, resumes or aborts an orchestration.
async fn control(op: &Operator, jid: Jid, action: JobAction, io: &mut Io<'_>) -> u8 {
    match op.request(CtlOp::JobControl { jid, action }).await {
        Ok(CtlResult::JobControlled(words)) => {
            let _ = writeln!(io.out, "{words}");
            exit::OK
        }
        Ok(CtlResult::Error(e)) => fail(io, e.message),
        Ok(other) => fail(io, format!("unexpected answer {other:?}")),
        Err(e) => fail(io, e),
    }
}
