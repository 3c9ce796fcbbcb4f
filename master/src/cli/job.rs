//! `brine job`: read the job cache.

use super::client::Operator;
use super::{exit, fail, Io, OutFormat};
use brine_proto::msg::{CtlOp, CtlResult};
use brine_proto::output::{self, Color};
use brine_proto::{Jid, Map, Value};
use serde_json::json;

#[derive(Debug, clap::Subcommand)]
pub enum JobCommand {
    /// The newest jobs, newest first, with their totals.
    List {
        /// How many jobs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Output format.
        #[arg(long = "out", value_enum, default_value_t = OutFormat::Table)]
        out: OutFormat,
    },
    /// One job's returns (like salt-run jobs.lookup_jid), or its totals with --summary.
    Show {
        /// The job id.
        jid: Jid,
        /// Print the job's totals instead of its returns.
        #[arg(long)]
        summary: bool,
        /// Output format.
        #[arg(long = "out", value_enum, default_value_t = OutFormat::Nested)]
        out: OutFormat,
    },
}

fn print(io: &mut Io<'_>, format: OutFormat, doc: &Value) {
    let text = match format {
        OutFormat::Nested => output::nested(doc, if io.color { Color::Ok } else { Color::Off }),
        OutFormat::Json => output::json(doc),
        OutFormat::Yaml => output::yaml(doc),
        OutFormat::Txt => {
            doc.as_object().map(|m| m.iter().map(|(k, v)| output::txt(k, v)).collect()).unwrap_or_default()
        }
        OutFormat::Quiet => String::new(),
        OutFormat::Table => table(doc),
    };
    let _ = io.out.write_all(text.as_bytes());
}

/// Jobs as aligned columns, in the order the master listed them (newest first).
fn table(doc: &Value) -> String {
    let Some(jobs) = doc.as_object() else {
        return String::new();
    };
    let cell = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut rows =
        vec![["JID", "FUNCTION", "TARGET", "USER", "RETURNED", "FAILED", "STARTED"].map(String::from).to_vec()];
    for (jid, j) in jobs.iter() {
        rows.push(vec![
            jid.clone(),
            cell(&j["Function"]),
            cell(&j["Target"]),
            cell(&j["User"]),
            format!("{}/{}", cell(&j["Returned"]), cell(&j["Targeted"])),
            cell(&j["Failed"]),
            cell(&j["StartTime"]),
        ]);
    }
    let widths: Vec<usize> = (0..7).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub async fn run(op: &Operator, cmd: JobCommand, io: &mut Io<'_>) -> u8 {
    match cmd {
        JobCommand::List { limit, out } => match op.request(CtlOp::JobList { limit }).await {
            Ok(CtlResult::Jobs(jobs)) => {
                let mut doc = Map::new();
                for j in jobs {
                    doc.insert(
                        j.jid.to_string(),
                        json!({
                            "Function": j.fun,
                            "Target": j.target.to_string(),
                            "User": j.user,
                            "StartTime": brine_proto::time::format_ms(j.started_at),
                            "Targeted": j.counts.targeted,
                            "Returned": j.counts.returned,
                            "Succeeded": j.counts.succeeded,
                            "Failed": j.counts.failed,
                        }),
                    );
                }
                print(io, out, &Value::Object(doc));
                exit::OK
            }
            Ok(CtlResult::Error(e)) => fail(io, e.message),
            Ok(other) => fail(io, format!("unexpected answer {other:?}")),
            Err(e) => fail(io, e),
        },
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
                    print(io, out, &doc);
                    return exit::OK;
                }
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
