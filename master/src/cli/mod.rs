//! `brine`, the operator CLI: run jobs, manage keys, read the job cache.
//!
//! The commands are library functions over an [`Io`] (stdout, stderr, stdin), so tests
//! run them in-process and check exactly what an operator would see.

mod audit;
pub mod client;
mod events;
mod job;
mod key;
mod minion;
mod orchestrate;
mod run;
mod watch;

pub(crate) use key::past;

use crate::config::MasterConfig;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// Exit codes of `brine`.
pub mod exit {
    /// Everything targeted returned success.
    pub const OK: u8 = 0;
    /// A minion returned a failure or did not return.
    pub const FAILED: u8 = 1;
    /// Nothing ran: no minion matched, the request was refused, or the master could not
    /// be reached.
    pub const NOTHING_RAN: u8 = 2;
    /// The command line was wrong.
    pub const USAGE: u8 = 64;
}

const EXIT_CODES: &str = "\
Exit codes:
  0   every targeted minion returned, and returned success
  1   a minion returned a failure (non-zero retcode) or did not return
  2   nothing ran: no minion matched, the master refused the request, or the
      master could not be reached
  64  the command line is wrong";

/// Run commands and states on a fleet of minions: the brine operator CLI.
#[derive(Debug, Parser)]
#[command(name = "brine", version, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// The master's config file (the CLI finds the master's NATS address and the
    /// operator key through it).
    #[arg(short, long, global = true, env = "BRINE_MASTER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Act as this operator (a name under [operators] in the master's config); the
    /// default is the master's local admin.
    #[arg(long, global = true, env = "BRINE_OPERATOR", value_name = "NAME", default_value = crate::acl::ADMIN)]
    pub operator: String,

    /// The operator's private key (PEM, mode 0600). Default: `<data_dir>/operators/NAME.pem`,
    /// where the master keeps the admin's key.
    #[arg(long, global = true, env = "BRINE_OPERATOR_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Colour: auto (only on a terminal, never with NO_COLOR), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutFormat {
    /// Salt's nested layout (the default).
    Nested,
    /// JSON, one document per minion (or one for all with --static).
    Json,
    /// YAML.
    Yaml,
    /// `id: value` lines.
    Txt,
    /// The layout of state runs: a block per state, then `Summary for <id>` (the
    /// default for state.apply, state.sls, state.highstate, state.single, state.test).
    Highstate,
    /// Print nothing; only the exit code tells.
    Quiet,
    /// Aligned columns (job lists).
    Table,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a function on the targeted minions and print their returns.
    #[command(after_help = EXIT_CODES)]
    Run(run::RunArgs),
    /// Manage minion keys (like salt-key).
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Read the job cache and manage running jobs (like salt-run jobs.*).
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Which minions are up (like salt-run manage.*).
    #[command(subcommand)]
    Minion(minion::MinionCommand),
    /// The fleet's grains as a table, JSON or CSV: the CMDB view.
    Inventory(minion::InventoryArgs),
    /// Run an orchestration on the master: a state file whose steps are jobs on
    /// minions (like salt-run state.orchestrate).
    #[command(after_help = orchestrate::EXIT_CODES)]
    Orchestrate(orchestrate::OrchestrateArgs),
    /// The audit trail: operator requests and commands typed in shells on minions.
    Audit(audit::AuditArgs),
    /// Follow the event bus live (like salt-run state.event).
    Events(events::EventsArgs),
    /// Put an event on the bus.
    #[command(subcommand)]
    Event(events::EventCommand),
    /// The reactor: its configured map, a dry run for an event, what it ran.
    #[command(subcommand)]
    Reactor(events::ReactorCommand),
    /// Print a shell completion script: `brine completions bash > /etc/bash_completion.d/brine`
    /// (the packages install them for bash, zsh and fish).
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: crate::shell::Shell,
    },
    /// Write the man pages of brine and its subcommands into DIR (for packaging).
    #[command(hide = true)]
    Man {
        /// Where to write brine.1, brine-run.1, …
        dir: PathBuf,
    },
}

/// Where a command reads and writes.
pub struct Io<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub input: &'a mut dyn BufRead,
    /// Whether stdout gets colour.
    pub color: bool,
    /// Whether stderr is a terminal (progress is shown there).
    pub progress: bool,
}

/// Whether to colour, given the choice and whether stdout is a terminal.
pub fn use_color(choice: ColorChoice, is_terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

/// Runs a parsed command line; returns the exit code.
pub async fn run(cli: Cli, io: &mut Io<'_>) -> u8 {
    use clap::CommandFactory;
    // Shell integration needs no master.
    match &cli.command {
        Command::Completions { shell } => {
            return match crate::shell::completions(Cli::command(), *shell, io.out) {
                Ok(()) => exit::OK,
                Err(e) => fail(io, format_args!("cannot write the completion script: {e}")),
            };
        }
        Command::Man { dir } => {
            return match crate::shell::man_pages(Cli::command(), dir, "1") {
                Ok(_) => exit::OK,
                Err(e) => fail(io, format_args!("cannot write man pages into {}: {e}", dir.display())),
            };
        }
        _ => {}
    }
    let cfg = match MasterConfig::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(io.err, "ERROR: {e}");
            return exit::NOTHING_RAN;
        }
    };
    // The reactor's map and dry run need only the config, not a running master.
    if let Command::Reactor(cmd @ (events::ReactorCommand::List | events::ReactorCommand::Test { .. })) = &cli.command {
        let code = events::reactor_local(&cfg, cmd, io);
        let _ = io.out.flush();
        return code;
    }
    let op = match client::Operator::connect(&cfg, &cli.operator, cli.key.as_deref()).await {
        Ok(op) => op,
        Err(e) => {
            let _ = writeln!(io.err, "ERROR: {e}");
            return exit::NOTHING_RAN;
        }
    };
    let code = match cli.command {
        Command::Run(args) => run::run(&op, args, io).await,
        Command::Key(cmd) => key::run(&op, cmd, io).await,
        Command::Job(cmd) => job::run(&op, cmd, io).await,
        Command::Minion(cmd) => minion::run(&op, cmd, io).await,
        Command::Inventory(args) => minion::inventory(&op, args, io).await,
        Command::Orchestrate(args) => orchestrate::run(&op, args, io).await,
        Command::Audit(args) => audit::run(&op, args, io).await,
        Command::Events(args) => events::follow(&op, args, io).await,
        Command::Event(cmd) => events::send(&op, cmd, io).await,
        Command::Reactor(events::ReactorCommand::History { limit, json }) => {
            events::history(&op, limit, json, io).await
        }
        Command::Reactor(cmd) => events::reactor_local(&cfg, &cmd, io),
        Command::Completions { .. } | Command::Man { .. } => exit::OK,
    };
    let _ = op.client.flush().await;
    let _ = io.out.flush();
    code
}

/// A document in the chosen format. `Table` renders `{id: value}` as two columns.
pub(crate) fn render(format: OutFormat, doc: &brine_proto::Value, color: bool) -> String {
    use brine_proto::output::{self, Color};
    match format {
        OutFormat::Nested => output::nested(doc, if color { Color::Ok } else { Color::Off }),
        OutFormat::Json => output::json(doc),
        OutFormat::Yaml => output::yaml(doc),
        OutFormat::Txt => {
            doc.as_object().map(|m| m.iter().map(|(k, v)| output::txt(k, v)).collect()).unwrap_or_default()
        }
        OutFormat::Quiet => String::new(),
        OutFormat::Highstate => {
            let opts = output::highstate::HighstateOptions { color, ..Default::default() };
            doc.as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{}\n", output::highstate::highstate(k, v, &opts))).collect())
                .unwrap_or_default()
        }
        OutFormat::Table => {
            let rows =
                doc.as_object().map(|m| m.iter().map(|(k, v)| vec![k.clone(), cell(v)]).collect()).unwrap_or_default();
            columns(&["MINION", "RETURN"], rows)
        }
    }
}

/// A value in one table cell: strings as they are, the rest as compact JSON.
pub(crate) fn cell(v: &brine_proto::Value) -> String {
    match v {
        brine_proto::Value::String(s) => s.replace('\n', " "),
        other => other.to_string(),
    }
}

/// Aligned columns under a header.
pub(crate) fn columns(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let n = header.len();
    let mut all = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    all.extend(rows);
    let widths: Vec<usize> =
        (0..n).map(|c| all.iter().map(|r| r.get(c).map_or(0, |s| s.chars().count())).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in all {
        let line: Vec<String> =
            (0..n).map(|c| format!("{:<w$}", r.get(c).map_or("", String::as_str), w = widths[c])).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Reports a failed request; always "nothing ran".
pub(crate) fn fail(io: &mut Io<'_>, e: impl std::fmt::Display) -> u8 {
    let _ = writeln!(io.err, "ERROR: {e}");
    exit::NOTHING_RAN
}
