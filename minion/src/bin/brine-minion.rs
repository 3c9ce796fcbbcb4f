//! `brine-minion`: the agent. Parses flags, loads the config, runs the minion until
//! SIGINT or SIGTERM.

use anyhow::Context;
use brine_minion::{Minion, MinionConfig};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// The brine minion: enrolls with the master, takes jobs, returns results.
#[derive(Debug, Parser)]
#[command(name = "brine-minion", version, about)]
struct Args {
    /// Config file [default: /etc/brine/minion.toml; a missing default file means all defaults].
    #[arg(short, long, env = "BRINE_MINION_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log level (overrides the config's log_level; RUST_LOG overrides both).
    #[arg(short, long, value_name = "LEVEL")]
    log_level: Option<String>,
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},sled=warn,async_nats=warn")));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let cfg = MinionConfig::load(args.config.as_deref())?;
    init_logging(args.log_level.as_deref().unwrap_or(&cfg.log_level));
    tracing::info!(id = %cfg.id, master = %cfg.master_url, "starting brine-minion");
    let minion = Minion::start(cfg).await.context("cannot start brine-minion")?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    minion.shutdown().await;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ERROR: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            ExitCode::FAILURE
        }
    }
}
