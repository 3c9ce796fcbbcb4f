//! `brine-call`: run one function on this host and print its return as
//! `{"local": <return>}`, like `salt-call`.

use crate::config::MinionConfig;
use brine_proto::output::{self, Color};
use brine_proto::{Map, Value};
use brine_states::exec::{CallError, Context};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Exit codes of `brine-call`, as `salt-call` uses them.
pub mod exit {
    pub const OK: u8 = 0;
    /// The function failed or returned a non-zero retcode.
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 64;
    /// No such function.
    pub const UNKNOWN_FUNCTION: u8 = 255;
}

const EXIT_CODES: &str = "\
Exit codes:
  0    the function succeeded
  1    the function failed or its retcode is non-zero (with --retcode-passthrough:
       the retcode itself)
  64   the command line is wrong
  255  no such function";

/// Run a function on this host and print its return.
#[derive(Debug, clap::Parser)]
#[command(name = "brine-call", version, after_help = EXIT_CODES,
          override_usage = "brine-call [OPTIONS] <FUN> [ARGS]...")]
pub struct CallArgs {
    /// Run without a master (the functions that need none run the same either way).
    #[arg(long)]
    pub local: bool,
    /// The minion config file (for the id and custom grains).
    #[arg(short, long, env = "BRINE_MINION_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Minion id to report (default: from the config, else the host's FQDN).
    #[arg(long)]
    pub id: Option<String>,
    /// A state tree directory for the `base` environment (repeat for more, searched in
    /// order). Default with --local: /srv/salt.
    #[arg(long = "file-root", value_name = "DIR")]
    pub file_root: Vec<PathBuf>,
    /// A pillar tree directory (with its own top.sls). Default with --local: /srv/pillar.
    #[arg(long = "pillar-root", value_name = "DIR")]
    pub pillar_root: Vec<PathBuf>,
    /// Where fetched files are cached (accepted for salt-call compatibility; local file
    /// roots need no cache).
    #[arg(long = "cache-dir", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Output format (default: highstate for state runs, nested otherwise).
    #[arg(long = "out", value_parser = ["nested", "highstate", "json", "yaml", "txt", "quiet"])]
    pub out: Option<String>,
    /// With highstate output: `full`, `terse` (one line per state), `mixed` (failures in
    /// full), `changes` (changes and failures in full), each also as `*_id`.
    #[arg(long, default_value = "full", value_name = "MODE",
          value_parser = ["full", "terse", "mixed", "changes", "full_id", "terse_id", "mixed_id", "changes_id"])]
    pub state_output: String,
    /// With highstate output: `false` hides states that succeeded without changes.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub state_verbose: bool,
    /// Exit with the function's retcode instead of 0/1.
    #[arg(long)]
    pub retcode_passthrough: bool,
    /// Colour: auto, always, never.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,
    /// Print the shell completion script for SHELL and exit.
    #[arg(long, value_name = "SHELL", hide = true)]
    pub completions: Option<crate::shell::Shell>,
    /// Write the man page into DIR and exit.
    #[arg(long, value_name = "DIR", hide = true)]
    pub man_dir: Option<PathBuf>,
    /// The function, `module.function` (required; optional only to clap, so that the
    /// hidden shell-integration flags need none).
    #[arg(value_name = "FUN")]
    pub fun: Option<String>,
    /// Arguments: positional words, then `key=value` keywords, each read as YAML.
    pub args: Vec<String>,
}

/// Runs `brine-call`; returns the exit code.
pub fn run(args: CallArgs, out: &mut dyn Write, err: &mut dyn Write, terminal: bool) -> u8 {
    use clap::CommandFactory;
    if let Some(shell) = args.completions {
        return match crate::shell::completions(CallArgs::command(), shell, out) {
            Ok(()) => exit::OK,
            Err(e) => {
                let _ = writeln!(err, "ERROR: cannot write the completion script: {e}");
                exit::FAILED
            }
        };
    }
    if let Some(dir) = &args.man_dir {
        return match crate::shell::man_pages(CallArgs::command(), dir, "1") {
            Ok(_) => exit::OK,
            Err(e) => {
                let _ = writeln!(err, "ERROR: cannot write man pages into {}: {e}", dir.display());
                exit::FAILED
            }
        };
    }
    let Some(fun) = args.fun.clone() else {
        let e = CallArgs::command().error(
            clap::error::ErrorKind::MissingRequiredArgument,
            "the following required arguments were not provided:\n  <FUN>",
        );
        let _ = write!(err, "{}", e.render());
        return exit::USAGE;
    };
    let mut cfg = match MinionConfig::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "ERROR: {e}");
            return exit::FAILED;
        }
    };
    if let Some(id) = &args.id {
        match brine_proto::MinionId::new(id.clone()) {
            Ok(id) => cfg.id = id,
            Err(e) => {
                let _ = writeln!(err, "ERROR: --id: {e}");
                return exit::USAGE;
            }
        }
    }
    let grains = Arc::new(crate::runner::collect_grains(cfg.id.as_str(), &cfg.grains_path(), &cfg.grains));
    let mut ctx = Context { grains: grains.clone(), grains_file: Some(cfg.grains_path()), ..Context::default() };
    let roots = |dirs: Vec<PathBuf>, default: &str| {
        let dirs = if dirs.is_empty() && args.local { vec![PathBuf::from(default)] } else { dirs };
        (!dirs.is_empty()).then(|| {
            let mut r = brine_states::files::LocalRoots::default();
            r.roots.insert("base".into(), dirs);
            r
        })
    };
    if let Some(files) = roots(args.file_root.clone(), "/srv/salt") {
        ctx.files = Some(Arc::new(files));
    }
    if let Some(pillar_roots) = roots(args.pillar_root.clone(), "/srv/pillar") {
        // Rendered here, as the master would for this minion; errors are kept under
        // `_errors`, and state runs refuse to start with them.
        ctx.pillar = Arc::new(match brine_states::pillar::compile(Arc::new(pillar_roots), grains, &ctx) {
            Ok(p) => p,
            Err(errors) => {
                let mut m = Map::new();
                m.insert("_errors".into(), Value::Array(errors.into_iter().map(Value::String).collect()));
                m
            }
        });
    }
    let (pos, kw) = brine_proto::args::parse_cli_args(&args.args);
    let output = match brine_states::exec::call(&fun, &ctx, pos, kw) {
        Ok(o) => o,
        Err(e @ CallError::Unknown(_)) => {
            let _ = writeln!(err, "{e}");
            return exit::UNKNOWN_FUNCTION;
        }
        Err(e) => {
            let _ = writeln!(err, "Error running '{}': {e}", fun);
            return exit::FAILED;
        }
    };
    let mut doc = Map::new();
    doc.insert("local".into(), output.ret.clone());
    let doc = Value::Object(doc);
    let color = match args.color.as_str() {
        "always" => true,
        "never" => false,
        _ => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    let state_run = output::highstate::runs_states(&fun);
    let format = args.out.clone().unwrap_or_else(|| if state_run { "highstate" } else { "nested" }.into());
    let text = match format.as_str() {
        "highstate" => {
            let mut opts =
                output::highstate::HighstateOptions { verbose: args.state_verbose, color, ..Default::default() };
            let _ = opts.parse_mode(&args.state_output);
            format!("{}\n", output::highstate::highstate("local", &output.ret, &opts))
        }
        "json" => output::json(&doc),
        "yaml" => output::yaml(&doc),
        "txt" => output::txt("local", &output.ret),
        "quiet" => String::new(),
        _ => output::nested(
            &doc,
            match (color, output.retcode != 0) {
                (false, _) => Color::Off,
                (true, false) => Color::Ok,
                (true, true) => Color::Failed,
            },
        ),
    };
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    match (output.retcode, args.retcode_passthrough) {
        (0, _) => exit::OK,
        (code, true) => u8::try_from(code).unwrap_or(exit::FAILED),
        (_, false) => exit::FAILED,
    }
}
