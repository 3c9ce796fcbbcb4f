//! `brine orchestrate`: run an orchestration on the master (like `salt-run
//! state.orchestrate`) and print its results in the highstate layout.

use super::client::Operator;
use super::run::STATE_OUTPUTS;
use super::{exit, fail, render, Io, OutFormat};
use brine_proto::msg::{CtlOp, CtlResult, OrchestrateRequest};
use brine_proto::output::highstate::{highstate, HighstateOptions};
use brine_proto::{Map, Value};
use futures::StreamExt;
use std::path::Path;

/// Exit codes of `brine orchestrate`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0   every step succeeded (in test mode: would succeed)
  1   a step failed, the orchestration was aborted (brine job kill), or the
      master was lost while it ran
  2   nothing ran: the file did not render or compile, the master refused the
      request, or the master could not be reached
  64  the command line is wrong";

#[derive(Debug, clap::Args)]
pub struct OrchestrateArgs {
    /// The orchestration: an SLS name in the master's file_roots (`orch.deploy` is
    /// orch/deploy.sls), or the path of a file on this host (admin only).
    #[arg(value_name = "FILE|SLS")]
    pub sls: String,
    /// The environment of the master's file_roots to read.
    #[arg(long, default_value = "base", value_name = "ENV")]
    pub saltenv: String,
    /// Pillar for rendering the file, as a YAML or JSON map: --pillar '{version: 1.2}'.
    #[arg(long, value_name = "MAP")]
    pub pillar: Option<String>,
    /// Test mode: run no function, apply states with test=True, report what would
    /// happen.
    #[arg(long)]
    pub test: bool,
    /// Print the JID and return at once; `brine job show JID` reads the results later.
    #[arg(long = "async")]
    pub async_: bool,
    /// Output format (default: highstate).
    #[arg(long = "out", value_enum)]
    pub out: Option<OutFormat>,
    /// With highstate output: `full`, `terse`, `mixed`, `changes`, each also as `*_id`.
    #[arg(long, default_value = "full", value_name = "MODE", value_parser = STATE_OUTPUTS)]
    pub state_output: String,
    /// With highstate output: `false` hides steps that succeeded without changes.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub state_verbose: bool,
}

/// The SLS name and, for a file on this host, its text.
fn source(arg: &str) -> Result<(String, Option<String>), String> {
    let path = Path::new(arg);
    if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {arg}: {e}"))?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| arg.to_string());
        return Ok((name, Some(text)));
    }
    if arg.contains('/') {
        return Err(format!("{arg} is not a file on this host (an SLS name is written like orch.deploy)"));
    }
    Ok((arg.strip_suffix(".sls").unwrap_or(arg).to_string(), None))
}

pub async fn run(op: &Operator, args: OrchestrateArgs, io: &mut Io<'_>) -> u8 {
    let pillar: Map = match args.pillar.as_deref().map(brine_proto::args::type_word) {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            let _ = writeln!(io.err, "ERROR: --pillar must be a map, like --pillar '{{version: 1.2}}'");
            return exit::USAGE;
        }
    };
    let (sls, text) = match source(&args.sls) {
        Ok(s) => s,
        Err(e) => return fail(io, e),
    };
    let subject = op.stream_subject();
    let mut results = match op.client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => return fail(io, format_args!("cannot follow the orchestration: {e}")),
    };
    let request = OrchestrateRequest {
        sls: vec![sls],
        text,
        saltenv: Some(args.saltenv.clone()),
        pillar,
        test: args.test,
        stream_to: (!args.async_).then_some(subject),
    };
    let started = match op.request(CtlOp::Orchestrate(request)).await {
        Ok(CtlResult::RunStarted(s)) => s,
        Ok(CtlResult::Error(e)) => return fail(io, e.message),
        Ok(other) => return fail(io, format_args!("unexpected answer {other:?}")),
        Err(e) => return fail(io, e),
    };
    if args.async_ {
        let _ = writeln!(io.out, "{}", started.jid);
        return exit::OK;
    }
    let _ = writeln!(
        io.err,
        "Orchestration {} started; `brine job pause|resume|kill {}` controls it.",
        started.jid, started.jid
    );
    // The result comes on our subject; the job cache is asked now and then too, so a
    // lost message or a master that went away does not leave the CLI waiting forever.
    let mut check = tokio::time::interval(std::time::Duration::from_secs(10));
    check.tick().await;
    let ret = loop {
        tokio::select! {
            msg = results.next() => {
                let Some(msg) = msg else {
                    return lost(io, started.jid, "the connection closed");
                };
                let Ok(reply) = op.open_reply(&msg.payload) else { continue };
                if let CtlResult::Returns(rets) = reply.result {
                    if let Some(r) = rets.into_iter().find(|r| r.jid == started.jid) {
                        break r;
                    }
                }
            }
            _ = check.tick() => match op.request(CtlOp::JobShow { jid: started.jid }).await {
                Ok(CtlResult::Job(report)) => {
                    if let Some(r) = report.returns.into_iter().next() {
                        break r;
                    }
                }
                Ok(_) => {}
                Err(e) => return lost(io, started.jid, e),
            },
        }
    };
    let text = match args.out.unwrap_or(OutFormat::Highstate) {
        OutFormat::Highstate => {
            let mut opts = HighstateOptions { verbose: args.state_verbose, color: io.color, ..Default::default() };
            // Checked by clap against STATE_OUTPUTS.
            let _ = opts.parse_mode(&args.state_output);
            format!("{}\n", highstate(ret.id.as_str(), &ret.ret, &opts))
        }
        other => {
            let mut doc = Map::new();
            doc.insert(ret.id.to_string(), ret.ret.clone());
            render(other, &Value::Object(doc), io.color)
        }
    };
    let _ = io.out.write_all(text.as_bytes());
    if ret.success {
        exit::OK
    } else {
        exit::FAILED
    }
}

/// The master went away while the orchestration ran: its outcome is unknown here.
fn lost(io: &mut Io<'_>, jid: brine_proto::Jid, why: impl std::fmt::Display) -> u8 {
    let _ = writeln!(
        io.err,
        "ERROR: lost the master while orchestration {jid} ran ({why}); `brine job show {jid}` tells how it ended"
    );
    exit::FAILED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_on_this_host_are_sent_as_text_and_names_as_sls() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("deploy.sls");
        std::fs::write(&file, "a:\n  test.nop\n").unwrap();
        let (name, text) = source(file.to_str().unwrap()).unwrap();
        assert_eq!((name.as_str(), text.as_deref()), ("deploy", Some("a:\n  test.nop\n")));
        assert_eq!(source("orch.deploy").unwrap(), ("orch.deploy".to_string(), None));
        assert_eq!(source("orch.deploy.sls").unwrap(), ("orch.deploy".to_string(), None));
        assert!(source("/no/such/file.sls").unwrap_err().contains("not a file"));
    }
}
