//! `brine-fill-jobs`: fills a stopped master's job cache with many jobs and returns,
//! through the job cache's own API, for benchmarks of `brine job show` and
//! `brine job list` on a large cache (`scripts/bench-fleet`).
#![forbid(unsafe_code)]

use anyhow::Context as _;
use brine_master::store::{put_ping_job, JobCache, Store};
use brine_proto::{JidGenerator, MinionId};
use clap::Parser;
use std::path::PathBuf;
use std::time::Instant;

/// Writes JOBS `test.ping` jobs of MINIONS returns each into the job cache of the
/// master configured by --config (the master must be stopped: the cache is opened
/// directly). Prints the JIDs of the first, middle and last job.
#[derive(Debug, Parser)]
#[command(name = "brine-fill-jobs", version)]
struct Args {
    /// The master's config (its data_dir holds the job cache).
    #[arg(short = 'c', long, env = "BRINE_MASTER_CONFIG")]
    config: Option<PathBuf>,
    /// How many jobs.
    #[arg(long, default_value_t = 1000)]
    jobs: usize,
    /// Returns per job (minions `fill-00000`…).
    #[arg(long, default_value_t = 1000)]
    minions: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg = brine_master::MasterConfig::load(args.config.as_deref()).context("the master's config")?;
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("{}", cfg.data_dir.display()))?;
    let store = Store::open(&cfg.db_path()).context("the job cache")?;
    let minions: Vec<MinionId> =
        (0..args.minions).map(|i| MinionId::new(format!("fill-{i:05}"))).collect::<Result<_, _>>()?;
    let jids = JidGenerator::starting_after(store.latest_jid()?);
    let t0 = Instant::now();
    let mut marks = Vec::new();
    for j in 0..args.jobs {
        let jid = jids.next();
        let now = brine_proto::time::now_ms();
        put_ping_job(&store, jid, &minions, now)?;
        if j == 0 || j == args.jobs / 2 || j + 1 == args.jobs {
            marks.push(jid);
        }
        if (j + 1) % 100 == 0 {
            eprintln!(
                "brine-fill-jobs: {} jobs, {} returns, {:.1} s",
                j + 1,
                (j + 1) * args.minions,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    store.flush()?;
    eprintln!("brine-fill-jobs: wrote {} returns in {:.1} s", args.jobs * args.minions, t0.elapsed().as_secs_f64());
    for jid in marks {
        println!("{jid}");
    }
    Ok(())
}
