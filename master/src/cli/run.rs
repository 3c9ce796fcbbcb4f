//! `brine run`: publish a job and print the returns as they arrive.

use super::client::Operator;
use super::watch::{Event, Missing, StartError, Step, Watcher};
use super::{exit, fail, render, Io, OutFormat};
use brine_proto::msg::{CtlErrorKind, CtlOp, CtlResult, RunRequest};
use brine_proto::output::highstate::HighstateOptions;
use brine_proto::output::{self, Color};
use brine_proto::{Map, Target, Value};
use std::io::Write;
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
    /// Seconds to wait for returns; minions still running the job then get more time.
    #[arg(short, long, default_value_t = 5.0, value_name = "SECONDS")]
    pub timeout: f64,
    /// Longest extra wait for minions that are still running the job, in seconds.
    #[arg(long, default_value_t = 600.0, value_name = "SECONDS")]
    pub max_wait: f64,
    /// Output format (default: highstate for state runs, nested otherwise).
    #[arg(long = "out", value_enum)]
    pub out: Option<OutFormat>,
    /// With highstate output: `full`, `terse` (one line per state), `mixed` (failures in
    /// full), `changes` (changes and failures in full), each also as `*_id`.
    #[arg(long, default_value = "full", value_name = "MODE", value_parser = STATE_OUTPUTS)]
    pub state_output: String,
    /// With highstate output: `false` hides states that succeeded without changes.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub state_verbose: bool,
    /// Write the output to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out_file: Option<std::path::PathBuf>,
    /// Print all returns together at the end (one document with --out json).
    #[arg(long = "static")]
    pub static_out: bool,
    /// Print the JID and return at once; read the returns later with `brine job show`.
    #[arg(long = "async", conflicts_with = "batch")]
    pub async_: bool,
    /// Queue the job for minions that are offline: it runs when they come back (the JID
    /// is printed after the job was put in the queue).
    #[arg(long, conflicts_with = "batch")]
    pub queue: bool,
    /// How long a queued job stays valid (`30m`, `2h`, `1d`; at most 7d).
    #[arg(long, default_value = "1h", value_parser = brine_proto::config::parse_duration, requires = "queue")]
    pub ttl: Duration,
    /// Run on N minions at a time (or N% of the targeted minions), starting the next as
    /// each finishes.
    #[arg(short, long, value_name = "N|N%")]
    pub batch: Option<String>,
    /// Seconds to wait after a minion finishes before starting the next (with --batch).
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS", requires = "batch")]
    pub batch_wait: f64,
    /// Show the JID, and list the minions that did not return by reason.
    #[arg(short, long)]
    pub verbose: bool,
    /// Do not list minions that did not return (they then do not fail the command).
    #[arg(long)]
    pub hide_timeout: bool,
}

impl RunArgs {
    /// Arguments for a run started by another command (`brine job kill`).
    pub fn internal(list: String, fun: &str, args: Vec<String>, timeout: f64) -> RunArgs {
        RunArgs {
            target: list,
            fun: fun.to_string(),
            args,
            kind: TargetKind { list: true, ..TargetKind::default() },
            timeout,
            max_wait: 0.0,
            out: Some(OutFormat::Nested),
            state_output: "full".into(),
            state_verbose: true,
            out_file: None,
            static_out: false,
            async_: false,
            batch: None,
            batch_wait: 0.0,
            queue: false,
            ttl: Duration::from_secs(3600),
            verbose: false,
            hide_timeout: false,
        }
    }
}

fn secs(name: &str, v: f64) -> Result<Duration, String> {
    if (0.0..1e9).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!("{name} {v} is not a number of seconds"))
    }
}

/// How many minions a batch runs at once: `N` or `N%` of `total` (at least one).
pub fn batch_size(spec: &str, total: usize) -> Result<usize, String> {
    let bad = || format!("--batch {spec:?} is not a count (10) or a percentage (25%)");
    let n = match spec.trim().strip_suffix('%') {
        Some(p) => {
            let pct: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(pct > 0.0 && pct <= 100.0) {
                return Err(bad());
            }
            ((total as f64) * pct / 100.0).ceil() as usize
        }
        None => spec.trim().parse::<usize>().map_err(|_| bad())?,
    };
    if n == 0 {
        return Err(bad());
    }
    Ok(n.max(1))
}

/// Where returns are written and how.
struct Printer {
    format: OutFormat,
    highstate: HighstateOptions,
    color: bool,
    static_out: bool,
    hide_timeout: bool,
    collected: Map,
    failed: bool,
    missing: Vec<(String, Missing)>,
}

impl Printer {
    fn one(&mut self, out: &mut dyn Write, id: &str, ret: &Value, failed: bool) {
        if self.static_out {
            self.collected.insert(id.to_string(), ret.clone());
            return;
        }
        let mut doc = Map::new();
        doc.insert(id.to_string(), ret.clone());
        let doc = Value::Object(doc);
        let text = match self.format {
            OutFormat::Nested => {
                let color = match (self.color, failed) {
                    (false, _) => Color::Off,
                    (true, false) => Color::Ok,
                    (true, true) => Color::Failed,
                };
                output::nested(&doc, color)
            }
            OutFormat::Txt => output::txt(id, ret),
            OutFormat::Highstate => format!("{}\n", output::highstate::highstate(id, ret, &self.highstate)),
            other => render(other, &doc, false),
        };
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    fn event(&mut self, out: &mut dyn Write, ev: Event) {
        match ev {
            Event::Return(r) => {
                self.failed |= !r.success;
                self.one(out, r.id.as_str(), &r.ret, !r.success);
            }
            Event::Finished { jid, missing } => {
                if self.hide_timeout {
                    return;
                }
                for (id, why) in &missing {
                    let text = match why {
                        Missing::NotConnected => "Minion did not return. [Not connected]".to_string(),
                        Missing::Queued => format!(
                            "Minion did not return. [Queued]\nThe minion is offline; the job waits in its queue and runs \
                             when it reconnects. To look up the return data for this job later, run the following \
                             command:\n\nbrine job show {jid}"
                        ),
                        Missing::StillRunning => format!(
                            "Minion did not return. [Still running]\nThe job is still running on this minion. To look \
                             up the return data for this job later, run the following command:\n\nbrine job show {jid}"
                        ),
                        Missing::NoResponse => format!(
                            "Minion did not return. [No response]\nThe minions may not have all finished running and any \
                             remaining minions will return upon completion. To look up the return data for this job later, \
                             run the following command:\n\nbrine job show {jid}"
                        ),
                    };
                    self.one(out, id, &Value::String(text), true);
                }
                self.missing.extend(missing);
            }
        }
    }

    fn finish(&mut self, out: &mut dyn Write) {
        if self.static_out {
            let doc = Value::Object(std::mem::take(&mut self.collected));
            let text = match self.format {
                OutFormat::Nested => output::nested(&doc, if self.color { Color::Ok } else { Color::Off }),
                OutFormat::Highstate => doc
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(id, ret)| format!("{}\n", output::highstate::highstate(id, ret, &self.highstate)))
                    .collect(),
                other => render(other, &doc, false),
            };
            let _ = out.write_all(text.as_bytes());
        }
        let _ = out.flush();
    }
}

pub async fn run(op: &Operator, args: RunArgs, io: &mut Io<'_>) -> u8 {
    let (timeout, max_wait, batch_wait) = match (
        secs("--timeout", args.timeout),
        secs("--max-wait", args.max_wait),
        secs("--batch-wait", args.batch_wait),
    ) {
        (Ok(t), Ok(m), Ok(b)) => (t, m, b),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return fail(io, e),
    };
    let mut file;
    let out: &mut dyn Write = match &args.out_file {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => {
                file = f;
                &mut file
            }
            Err(e) => return fail(io, format!("cannot write {}: {e}", path.display())),
        },
        None => &mut *io.out,
    };
    let target = args.kind.target(&args.target);
    let (arg, kwarg) = brine_proto::args::parse_cli_args(&args.args);
    let format = args.out.unwrap_or(if output::highstate::runs_states(&args.fun) {
        OutFormat::Highstate
    } else {
        OutFormat::Nested
    });
    let mut highstate = HighstateOptions {
        verbose: args.state_verbose,
        color: io.color && args.out_file.is_none(),
        ..Default::default()
    };
    // Checked by clap against STATE_OUTPUTS.
    let _ = highstate.parse_mode(&args.state_output);
    let mut printer = Printer {
        format,
        highstate,
        color: io.color && args.out_file.is_none(),
        static_out: args.static_out,
        hide_timeout: args.hide_timeout,
        collected: Map::new(),
        failed: false,
        missing: Vec::new(),
    };

    if args.async_ {
        let queue_ttl_ms = args.queue.then_some(args.ttl.as_millis() as u64);
        let req = RunRequest { target, fun: args.fun.clone(), arg, kwarg, stream_to: None, queue_ttl_ms };
        return match op.request(CtlOp::Run(req)).await {
            Ok(CtlResult::RunStarted(s)) => {
                let _ = writeln!(out, "Executed command with job ID: {}", s.jid);
                exit::OK
            }
            Ok(CtlResult::Error(e)) => refused(out, io.err, e.kind, &e.message),
            Ok(other) => report(io.err, format!("unexpected answer {other:?}")),
            Err(e) => report(io.err, e),
        };
    }

    let mut watcher = match Watcher::new(op, timeout, max_wait).await {
        Ok(w) => w,
        Err(e) => return report(io.err, e),
    };
    watcher.queue_ttl = args.queue.then_some(args.ttl);
    match &args.batch {
        None => {
            match watcher.start(target, &args.fun, arg, kwarg).await {
                Ok(started) => {
                    if args.verbose {
                        let line = format!("Executing job with jid {}", started.jid);
                        let _ = writeln!(out, "{line}\n{}\n", "-".repeat(line.len()));
                    }
                }
                Err(StartError::Refused { kind, message }) => return refused(out, io.err, kind, &message),
                Err(StartError::Client(e)) => return report(io.err, e),
            }
            while let Step::Event(ev) = watcher.next(None).await {
                printer.event(out, ev);
            }
        }
        Some(spec) => {
            let minions = match op.request(CtlOp::Resolve { target }).await {
                Ok(CtlResult::Minions(m)) => m,
                Ok(CtlResult::Error(e)) => return refused(out, io.err, e.kind, &e.message),
                Ok(other) => return report(io.err, format!("unexpected answer {other:?}")),
                Err(e) => return report(io.err, e),
            };
            if minions.is_empty() {
                return refused(out, io.err, CtlErrorKind::NoMatch, NO_MATCH);
            }
            let size = match batch_size(spec, minions.len()) {
                Ok(n) => n,
                Err(e) => return report(io.err, e),
            };
            let total = minions.len();
            let mut done = 0;
            let mut queue: std::collections::VecDeque<_> = minions.into_iter().collect();
            let mut next_start = tokio::time::Instant::now();
            loop {
                let now = tokio::time::Instant::now();
                while watcher.in_flight() < size && now >= next_start {
                    let Some(m) = queue.pop_front() else { break };
                    if matches!(printer.format, OutFormat::Nested | OutFormat::Highstate) && !printer.static_out {
                        let _ = writeln!(out, "\nExecuting run on ['{m}']\n");
                    }
                    match watcher.start(Target::List(vec![m.to_string()]), &args.fun, arg.clone(), kwarg.clone()).await
                    {
                        Ok(started) if args.verbose => {
                            let _ = writeln!(out, "jid:\n    {}", started.jid);
                        }
                        Ok(_) => {}
                        Err(StartError::Refused { message, .. }) => {
                            printer.failed = true;
                            let _ = writeln!(io.err, "ERROR: {m}: {message}");
                        }
                        Err(StartError::Client(e)) => return report(io.err, e),
                    }
                }
                let until = (!queue.is_empty() && watcher.in_flight() < size).then_some(next_start);
                match watcher.next(until).await {
                    Step::Event(ev) => {
                        if matches!(ev, Event::Finished { .. }) {
                            next_start = tokio::time::Instant::now() + batch_wait;
                            done += 1;
                            if io.progress {
                                let _ = write!(io.err, "\r{done}/{total} minions done");
                                let _ = io.err.flush();
                            }
                        }
                        printer.event(out, ev);
                    }
                    Step::Timeout => {}
                    Step::Idle if queue.is_empty() => {
                        if io.progress {
                            let _ = writeln!(io.err);
                        }
                        break;
                    }
                    Step::Idle => {
                        if let Some(wait) = next_start.checked_duration_since(tokio::time::Instant::now()) {
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            }
        }
    }
    printer.finish(out);
    if args.verbose && !printer.missing.is_empty() {
        for (label, kind) in [
            ("Minions not connected", Missing::NotConnected),
            ("Minions still running", Missing::StillRunning),
            ("Minions not responding", Missing::NoResponse),
            ("Minions queued", Missing::Queued),
        ] {
            let ids: Vec<&str> = printer.missing.iter().filter(|(_, k)| *k == kind).map(|(m, _)| m.as_str()).collect();
            if !ids.is_empty() {
                let _ = writeln!(io.err, "{label}: {}", ids.join(" "));
            }
        }
    }
    let missing_fails = !args.hide_timeout && !printer.missing.is_empty();
    if printer.failed || missing_fails {
        let _ = writeln!(io.err, "ERROR: Minions returned with non-zero exit code");
        exit::FAILED
    } else {
        exit::OK
    }
}

/// The `--state-output` modes.
pub const STATE_OUTPUTS: [&str; 8] =
    ["full", "terse", "mixed", "changes", "full_id", "terse_id", "mixed_id", "changes_id"];

const NO_MATCH: &str = "No minions matched the target. No command was sent, no jid was assigned.";

/// A refused request: nothing ran.
fn refused(out: &mut dyn Write, err: &mut dyn Write, kind: CtlErrorKind, message: &str) -> u8 {
    if kind == CtlErrorKind::NoMatch {
        let _ = writeln!(out, "{message}");
        let _ = writeln!(err, "ERROR: No return received");
    } else {
        let _ = writeln!(err, "ERROR: {message}");
    }
    exit::NOTHING_RAN
}

fn report(err: &mut dyn Write, e: impl std::fmt::Display) -> u8 {
    let _ = writeln!(err, "ERROR: {e}");
    exit::NOTHING_RAN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_are_counts_or_percentages() {
        assert_eq!(batch_size("1", 3), Ok(1));
        assert_eq!(batch_size("10", 3), Ok(10));
        assert_eq!(batch_size("50%", 3), Ok(2));
        assert_eq!(batch_size("1%", 3), Ok(1));
        assert_eq!(batch_size("100%", 7), Ok(7));
        for bad in ["0", "0%", "-1", "abc", "150%", ""] {
            assert!(batch_size(bad, 3).is_err(), "{bad}");
        }
    }
}
