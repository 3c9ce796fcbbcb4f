//! `brine run`: publish a job and print the returns as they arrive.

use super::client::Operator;
use super::{exit, fail, Io, OutFormat};
use brine_proto::msg::{CtlErrorKind, CtlOp, CtlResult, RunRequest};
use brine_proto::output::{self, Color};
use brine_proto::{Map, Target, Value};
use futures::StreamExt;
use std::collections::BTreeSet;
use std::time::Duration;

/// How to read the target expression (at most one; glob on the id by default).
#[derive(Debug, Clone, Default, clap::Args)]
#[group(multiple = false)]
pub struct TargetKind {
    /// The target is a comma-separated list of minion ids.
    #[arg(short = 'L', long = "list")]
    pub list: bool,
    /// The target is a regular expression on the minion id.
    #[arg(short = 'E', long = "pcre")]
    pub pcre: bool,
    /// The target is a grain glob, `path:pattern` (e.g. `os:Debian`).
    #[arg(short = 'G', long = "grain")]
    pub grain: bool,
    /// The target is a grain regular expression, `path:regex`.
    #[arg(short = 'P', long = "grain-pcre")]
    pub grain_pcre: bool,
    /// The target is a pillar glob, `path:pattern`.
    #[arg(short = 'I', long = "pillar")]
    pub pillar: bool,
    /// The target is a pillar regular expression, `path:regex`.
    #[arg(short = 'J', long = "pillar-pcre")]
    pub pillar_pcre: bool,
    /// The target is an address or CIDR network of the minions' IPs.
    #[arg(short = 'S', long = "ipcidr")]
    pub cidr: bool,
    /// The target is a nodegroup from the master's config.
    #[arg(short = 'N', long = "nodegroup")]
    pub nodegroup: bool,
    /// The target is a compound expression: `G@os:Debian and web* or L@a,b and not E@db\d+`.
    #[arg(short = 'C', long = "compound")]
    pub compound: bool,
}

impl TargetKind {
    /// The target `expr` read as this kind.
    pub fn target(&self, expr: &str) -> Target {
        let e = expr.to_string();
        if self.list {
            Target::list_from_str(expr)
        } else if self.pcre {
            Target::Pcre(e)
        } else if self.grain {
            Target::Grain(e)
        } else if self.grain_pcre {
            Target::GrainPcre(e)
        } else if self.pillar {
            Target::Pillar(e)
        } else if self.pillar_pcre {
            Target::PillarPcre(e)
        } else if self.cidr {
            Target::Cidr(e)
        } else if self.nodegroup {
            Target::Nodegroup(e)
        } else if self.compound {
            Target::Compound(e)
        } else {
            Target::Glob(e)
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Which minions: a glob on the minion id (`web*`) unless a target type is given.
    pub target: String,
    /// The function to run, `module.function` (see `sys.list_functions`).
    pub fun: String,
    /// Arguments: positional words, then `key=value` keywords; each is read as YAML
    /// (`1` is a number, `yes` is true, `[a, b]` a list). Put `--` before arguments
    /// that start with `-`.
    pub args: Vec<String>,
    #[command(flatten)]
    pub kind: TargetKind,
    /// Seconds to wait for returns.
    #[arg(short, long, default_value_t = 5.0, value_name = "SECONDS")]
    pub timeout: f64,
    /// Output format.
    #[arg(long = "out", value_enum, default_value_t = OutFormat::Nested)]
    pub out: OutFormat,
    /// Print all returns together at the end (one document with --out json).
    #[arg(long = "static")]
    pub static_out: bool,
    /// Print the JID and return at once; read the returns later with `brine job show`.
    #[arg(long = "async")]
    pub async_: bool,
    /// Show the JID and which minions did not return.
    #[arg(short, long)]
    pub verbose: bool,
    /// Do not list minions that did not return (they then do not fail the command).
    #[arg(long)]
    pub hide_timeout: bool,
}

fn print_one(io: &mut Io<'_>, format: OutFormat, id: &str, ret: &Value, failed: bool) {
    let mut doc = Map::new();
    doc.insert(id.to_string(), ret.clone());
    let doc = Value::Object(doc);
    let text = match format {
        OutFormat::Nested => {
            let color = match (io.color, failed) {
                (false, _) => Color::Off,
                (true, false) => Color::Ok,
                (true, true) => Color::Failed,
            };
            output::nested(&doc, color)
        }
        OutFormat::Json => output::json(&doc),
        OutFormat::Yaml => output::yaml(&doc),
        OutFormat::Txt => output::txt(id, ret),
        OutFormat::Quiet => String::new(),
        OutFormat::Table => output::nested(&doc, Color::Off),
    };
    let _ = io.out.write_all(text.as_bytes());
    let _ = io.out.flush();
}

pub async fn run(op: &Operator, args: RunArgs, io: &mut Io<'_>) -> u8 {
    let target = args.kind.target(&args.target);
    if !(args.timeout.is_finite() && args.timeout >= 0.0) {
        return fail(io, format!("--timeout {} is not a number of seconds", args.timeout));
    }
    let (arg, kwarg) = brine_proto::args::parse_cli_args(&args.args);
    let stream_to = (!args.async_).then(|| op.stream_subject());
    let mut stream = match &stream_to {
        Some(s) => match op.client.subscribe(s.clone()).await {
            Ok(sub) => Some(sub),
            Err(e) => return fail(io, e),
        },
        None => None,
    };
    let req = RunRequest { target, fun: args.fun.clone(), arg, kwarg, stream_to };
    let started = match op.request(CtlOp::Run(req)).await {
        Ok(CtlResult::RunStarted(s)) => s,
        Ok(CtlResult::Error(e)) if e.kind == CtlErrorKind::NoMatch => {
            let _ = writeln!(io.out, "{}", e.message);
            let _ = writeln!(io.err, "ERROR: No return received");
            return exit::NOTHING_RAN;
        }
        Ok(CtlResult::Error(e)) => return fail(io, e.message),
        Ok(other) => return fail(io, format!("unexpected answer {other:?}")),
        Err(e) => return fail(io, e),
    };
    let jid = started.jid;
    if args.async_ {
        let _ = writeln!(io.out, "Executed command with job ID: {jid}");
        return exit::OK;
    }
    if args.verbose {
        let line = format!("Executing job with jid {jid}");
        let _ = writeln!(io.out, "{line}\n{}\n", "-".repeat(line.len()));
    }
    let targeted: BTreeSet<String> = started.minions.iter().map(|m| m.to_string()).collect();
    let offline: BTreeSet<String> = started.offline.iter().map(|m| m.to_string()).collect();
    let mut returned: BTreeSet<String> = BTreeSet::new();
    let mut any_failed = false;
    let mut collected = Map::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.timeout);
    let Some(sub) = stream.as_mut() else {
        return exit::OK;
    };
    // Offline minions cannot receive the job, so stop once everyone else answered.
    let waiting_for =
        |returned: &BTreeSet<String>| targeted.iter().any(|m| !returned.contains(m) && !offline.contains(m));
    while waiting_for(&returned) {
        let msg = match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => break,
        };
        let reply = match op.open_reply(&msg.payload) {
            Ok(r) => r,
            Err(e) => {
                let _ = writeln!(io.err, "WARNING: ignoring a message: {e}");
                continue;
            }
        };
        let CtlResult::Returns(rets) = reply.result else {
            continue;
        };
        for r in rets {
            if r.jid != jid || !targeted.contains(r.id.as_str()) || !returned.insert(r.id.to_string()) {
                continue;
            }
            let failed = !r.success;
            any_failed |= failed;
            if args.static_out {
                collected.insert(r.id.to_string(), r.ret);
            } else {
                print_one(io, args.out, r.id.as_str(), &r.ret, failed);
            }
        }
    }
    let mut missing: Vec<(String, bool)> =
        targeted.iter().filter(|m| !returned.contains(*m)).map(|m| (m.clone(), offline.contains(m))).collect();
    missing.extend(started.missing.iter().map(|m| (m.clone(), false)));
    if !args.hide_timeout {
        for (id, is_offline) in &missing {
            let text = if *is_offline {
                "Minion did not return. [Not connected]".to_string()
            } else {
                format!(
                    "Minion did not return. [No response]\nThe minions may not have all finished running and any \
                     remaining minions will return upon completion. To look up the return data for this job later, \
                     run the following command:\n\nbrine job show {jid}"
                )
            };
            if args.static_out {
                collected.insert(id.clone(), Value::String(text));
            } else {
                print_one(io, args.out, id, &Value::String(text), true);
            }
        }
    }
    if args.static_out {
        let doc = Value::Object(collected);
        let text = match args.out {
            OutFormat::Nested => output::nested(&doc, if io.color { Color::Ok } else { Color::Off }),
            OutFormat::Json => output::json(&doc),
            OutFormat::Yaml => output::yaml(&doc),
            OutFormat::Txt => {
                doc.as_object().map(|m| m.iter().map(|(k, v)| output::txt(k, v)).collect()).unwrap_or_default()
            }
            OutFormat::Quiet => String::new(),
            OutFormat::Table => output::nested(&doc, Color::Off),
        };
        let _ = io.out.write_all(text.as_bytes());
    }
    if args.verbose && !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|(m, _)| m.as_str()).collect();
        let _ = writeln!(io.err, "Minions that did not return: {}", names.join(" "));
    }
    let missing_fails = !args.hide_timeout && !missing.is_empty();
    if any_failed || missing_fails {
        let _ = writeln!(io.err, "ERROR: Minions returned with non-zero exit code");
        exit::FAILED
    } else {
        exit::OK
    }
}
