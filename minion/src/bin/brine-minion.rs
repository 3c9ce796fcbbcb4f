//! `brine-minion`: the agent. Parses flags, loads the config, runs the minion until
//! SIGINT or SIGTERM.

use anyhow::Context;
use brine_minion::runner::ChildRunner;
use brine_minion::{shell, Minion, MinionConfig};
use clap::{CommandFactory, Parser};
use std::path::PathBuf;
use std::process::ExitCode;

/// The brine minion: enrolls with the master, takes jobs, returns results.
#[derive(Debug, Parser)]
#[command(name = "brine-minion", version)]
struct Args {
    /// Config file [default: /etc/brine/minion.toml; a missing default file means all defaults].
    #[arg(short, long, env = "BRINE_MINION_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log level (overrides the config's log_level; RUST_LOG overrides both).
    #[arg(short, long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Check the config file, print the effective config (defaults filled in, with the
    /// id this host would use) as TOML and exit: 0 when it is valid, 1 with the file,
    /// line and key when it is not.
    #[arg(long)]
    check_config: bool,
    /// Print the shell completion script for SHELL and exit.
    #[arg(long, value_name = "SHELL", hide = true)]
    completions: Option<shell::Shell>,
    /// Write the man page into DIR and exit.
    #[arg(long, value_name = "DIR", hide = true)]
    man_dir: Option<PathBuf>,
}

async fn serve(cfg: MinionConfig, log_level: String) -> anyhow::Result<()> {
    tracing::info!(id = %cfg.id, master = %cfg.master_url, "starting brine-minion");
    // Each job runs in a brine-call child (brine_minion::runner): the agent itself
    // never maps the state system.
    let Some(program) = ChildRunner::find() else {
        anyhow::bail!(
            "cannot find brine-call beside {} or on PATH: brine-minion runs each job with it; install both",
            std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "brine-minion".into())
        );
    };
    tracing::debug!(runner = %program.display(), "jobs run in child processes");
    let runner = ChildRunner::new(program, &log_level, cfg.log_format == brine_proto::config::LogFormat::Json);
    let minion = Minion::start_with(cfg, std::sync::Arc::new(runner)).await.context("cannot start brine-minion")?;
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
    // One async thread and a few blocking ones: one arena is plenty.
    brine_proto::alloc::limit_malloc_arenas(1);
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
        return match MinionConfig::effective_toml(args.config.as_deref()) {
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
    let cfg = match MinionConfig::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return ExitCode::FAILURE;
        }
    };
    let log_level = args.log_level.clone().unwrap_or_else(|| cfg.log_level.clone());
    if let Err(e) = brine_minion::logging::init(&log_level, cfg.log_format) {
        eprintln!("ERROR: --log-level: {e}");
        return ExitCode::FAILURE;
    }
    // One async thread: the minion's async work is small (NATS, signatures, timers)
    // and everything that can take long (state runs, cmd.run, disk syncs, beacons)
    // runs on spawn_blocking threads, so heartbeats and jobs never wait behind it.
    // Each extra worker thread cost the idle minion a stack and a malloc arena.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ERROR: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(cfg, log_level)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            ExitCode::FAILURE
        }
    }
}
