//! `brine-master`: the master daemon. Parses flags, loads the config, runs the master
//! until SIGINT or SIGTERM.

use anyhow::Context;
use brine_master::{shell, Master, MasterConfig};
use clap::{CommandFactory, Parser};
use std::path::PathBuf;
use std::process::ExitCode;

/// The brine master: key registry, embedded NATS, jobs and the job cache.
#[derive(Debug, Parser)]
#[command(name = "brine-master", version)]
struct Args {
    /// Config file [default: /etc/brine/master.toml; a missing default file means all defaults].
    #[arg(short, long, env = "BRINE_MASTER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log level (overrides the config's log_level; RUST_LOG overrides both).
    #[arg(short, long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Check the config file, print the effective config (defaults filled in) as TOML
    /// and exit: 0 when it is valid, 1 with the file, line and key when it is not.
    #[arg(long)]
    check_config: bool,
    /// Print the shell completion script for SHELL and exit.
    #[arg(long, value_name = "SHELL", hide = true)]
    completions: Option<shell::Shell>,
    /// Write the man page into DIR and exit.
    #[arg(long, value_name = "DIR", hide = true)]
    man_dir: Option<PathBuf>,
}

async fn serve(cfg: MasterConfig) -> anyhow::Result<()> {
    let master = Master::start(cfg).await.context("cannot start brine-master")?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    master.shutdown().await;
    Ok(())
}

fn main() -> ExitCode {
    brine_proto::alloc::limit_malloc_arenas(2);
    let args = Args::parse();
    if let Some(sh) = args.completions {
        return match shell::completions(Args::command(), sh, &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ERROR: cannot write the completion script: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(dir) = &args.man_dir {
        return match shell::man_pages(Args::command(), dir, "8") {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ERROR: cannot write man pages into {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        };
    }
    if args.check_config {
        return match MasterConfig::effective_toml(args.config.as_deref()) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ERROR: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let cfg = match MasterConfig::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = brine_master::logging::init(args.log_level.as_deref().unwrap_or(&cfg.log_level), cfg.log_format) {
        eprintln!("ERROR: --log-level: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ERROR: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            ExitCode::FAILURE
        }
    }
}
