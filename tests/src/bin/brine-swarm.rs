//! `brine-swarm`: runs many simulated minions in one process against a real master,
//! as load for benchmarks and soak tests (see `brine_tests::swarm`).
#![forbid(unsafe_code)]

use brine_tests::swarm::{Connections, Swarm, SwarmOpts};
use clap::Parser;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Simulated minions against a real brine master: each with its own key, enrolled,
/// connected under its own NATS identity, answering real jobs with signed returns.
///
/// Prints `ready N` on stdout once N minions are connected, then a status line every
/// `--report` seconds on stderr, until interrupted.
#[derive(Debug, Parser)]
#[command(name = "brine-swarm", version)]
struct Args {
    /// How many minions.
    #[arg(short = 'n', long, default_value_t = 100)]
    count: usize,
    /// The master's config (its NATS address and key are read from its data_dir).
    #[arg(short = 'c', long, env = "BRINE_MASTER_CONFIG", conflicts_with = "url")]
    config: Option<PathBuf>,
    /// The master's NATS URL (instead of --config); the master key and TLS CA are then
    /// pinned from the first signed enrollment answer.
    #[arg(long)]
    url: Option<String>,
    /// Minion ids are PREFIX followed by a five-digit index.
    #[arg(long, default_value = "swarm-")]
    id_prefix: String,
    /// per-minion (one NATS connection and identity each, as real minions) or
    /// shared:N (N connections without credentials; external NATS only).
    #[arg(long, default_value = "per-minion")]
    connections: Connections,
    /// Minions started per second (default: all at once).
    #[arg(long)]
    join_rate: Option<f64>,
    /// Share of minions (0 to 1) that answer each job only after --slow-delay.
    #[arg(long, default_value_t = 0.0)]
    slow: f64,
    /// How long slow minions take, in seconds.
    #[arg(long, default_value_t = 2.0)]
    slow_delay: f64,
    /// Share of minions (0 to 1) that take jobs and never answer.
    #[arg(long, default_value_t = 0.0)]
    silent: f64,
    /// Share of minions (0 to 1) that leave every --churn-every seconds and come back
    /// --churn-down seconds later.
    #[arg(long, default_value_t = 0.0)]
    churn: f64,
    #[arg(long, default_value_t = 30.0)]
    churn_every: f64,
    #[arg(long, default_value_t = 5.0)]
    churn_down: f64,
    /// Heartbeat interval in seconds.
    #[arg(long, default_value_t = 10.0)]
    presence_interval: f64,
    /// Connections being set up at the same time.
    #[arg(long, default_value_t = 64)]
    connect_parallelism: usize,
    /// Check the master's signature on every minion's copy of a job, as N real
    /// minions would on their own hosts (default: once per distinct job envelope, so
    /// the swarm leaves more of the shared cores to the master; subject, expiry,
    /// target and replay are checked per minion either way).
    #[arg(long)]
    verify_every_copy: bool,
    /// Send every return through the JetStream returns stream, never handed to the
    /// master directly (what minions do while the master is away; the backlog
    /// benchmark measures the master draining that stream).
    #[arg(long)]
    no_direct: bool,
    /// Where the minions' file caches go (default: a temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Seconds between status lines.
    #[arg(long, default_value_t = 5.0)]
    report: f64,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    duration: Option<f64>,
}

fn secs(name: &str, v: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).map_err(|_| anyhow::anyhow!("--{name} must be a number of seconds ≥ 0, not {v}"))
}

async fn run(args: Args) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let work_dir = args.work_dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let (url, master_key, tls_ca, subjects) = match (&args.config, &args.url) {
        (_, Some(url)) => (url.clone(), None, None, brine_proto::Subjects::default()),
        (config, None) => {
            let cfg = brine_master::MasterConfig::load(config.as_deref()).context("the master's config")?;
            let path = cfg.client_url_path();
            let url = std::fs::read_to_string(&path)
                .with_context(|| format!("{} (is brine-master running?)", path.display()))?
                .trim()
                .to_string();
            let key = brine_proto::keys::load_public_key(&cfg.data_dir.join("master.pub"))
                .context("the master's public key")?;
            let ca = match cfg.tls_ca_path() {
                Some(p) => {
                    Some(brine_proto::tls::certs_from_file(&p).context("the master's TLS CA")?.remove(0).to_vec())
                }
                None => None,
            };
            (url, Some(key), ca, cfg.subjects.clone())
        }
    };
    let mut opts = SwarmOpts::new(&url, args.count, work_dir);
    opts.id_prefix = args.id_prefix;
    opts.subjects = subjects;
    opts.master_key = master_key;
    opts.tls_ca = tls_ca;
    opts.connections = args.connections;
    opts.join_rate = args.join_rate;
    opts.slow = args.slow;
    opts.slow_delay = secs("slow-delay", args.slow_delay)?;
    opts.silent = args.silent;
    opts.churn = args.churn;
    opts.churn_every = secs("churn-every", args.churn_every)?;
    opts.churn_down = secs("churn-down", args.churn_down)?;
    opts.presence_interval = secs("presence-interval", args.presence_interval)?.max(Duration::from_millis(100));
    opts.connect_parallelism = args.connect_parallelism;
    opts.verify_every_copy = args.verify_every_copy;
    opts.direct_returns = !args.no_direct;
    let report = secs("report", args.report)?.max(Duration::from_millis(100));
    let t0 = Instant::now();
    let swarm = Swarm::start(opts).await?;
    let stop_at = args.duration.map(|d| secs("duration", d)).transpose()?.map(|d| tokio::time::Instant::now() + d);
    let mut ready = false;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last_report = Instant::now();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
        let s = swarm.snapshot();
        if !ready && s.connected >= args.count {
            ready = true;
            println!("ready {} in {:.2} s", s.connected, t0.elapsed().as_secs_f64());
            eprintln!("brine-swarm: {s}");
        }
        if last_report.elapsed() >= report {
            last_report = Instant::now();
            eprintln!("brine-swarm: {s}");
        }
        if stop_at.is_some_and(|at| tokio::time::Instant::now() >= at) {
            break;
        }
    }
    eprintln!("brine-swarm: stopping: {}", swarm.snapshot());
    swarm.shutdown().await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("BRINE_SWARM_LOG").unwrap_or_else(|_| "error".into()))
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("brine-swarm: cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("brine-swarm: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
