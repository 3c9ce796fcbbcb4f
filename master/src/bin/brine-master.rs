//! `brine-master`: the master daemon. Parses flags, loads the config, runs the master
//! until SIGINT or SIGTERM.

use anyhow::Context;
use brine_master::{Master, MasterConfig};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// The brine master: key registry, embedded NATS, jobs and the job cache.
#[derive(Debug, Parser)]
#[command(name = "brine-master", version, about)]
struct Args {
    /// Config file [default: /etc/brine/master.toml; a missing default file means all defaults].
    #[arg(short, long, env = "BRINE_MASTER_CONFIG", value_name = "FILE")]
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
    let cfg = MasterConfig::load(args.config.as_deref())?;
    init_logging(args.log_level.as_deref().unwrap_or(&cfg.log_level));
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
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
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
