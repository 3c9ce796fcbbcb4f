//! Benchmarks of the job cache lookups behind `brine job list` and `brine job show`,
//! on a sled store of 1 000 jobs × 1 000 `test.ping` returns (1 000 000 returns, the
//! size the issue sets a ≤ 10 ms lookup target for), with no NATS, TLS or CLI around
//! them:
//!
//! - `list_20` / `list_1000`: [`JobCache::list`] with the CLI's default filter (the
//!   20 newest jobs with their totals) and with `--limit 1000`;
//! - `job`, `counts`, `returns`: one job's record, its totals, its 1 000 returns;
//! - `show`: all three, what the master reads for one `brine job show`.
//!
//! The store is written the way `brine-fill-jobs` writes it (through the job cache's
//! own API, one `put_returns` per job), which takes about half a minute; so it is
//! written once and kept: in `$BRINE_BENCH_JOBCACHE` if set, else under cargo's
//! `target/tmp/`. A `filled` file in that directory marks a complete fill; without it
//! the directory is wiped and filled again. The figures are for a warm cache (every
//! sample repeats lookups that sled and the page cache already hold), what a master
//! that has been answering sees.
//!
//! `cargo bench -p brine-master --bench jobcache`; see BENCHMARKS.md for figures.

use brine_master::store::{put_ping_job, JobCache, Store};
use brine_proto::msg::JobFilter;
use brine_proto::{Jid, MinionId};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const JOBS: u64 = 1_000;
const MINIONS: usize = 1_000;
/// The first JID; jobs are one second apart, so the store is the same on every fill.
const FIRST: u64 = 1_763_000_000_000_000;

fn jid(i: u64) -> Jid {
    Jid::from_micros(FIRST + i * 1_000_000)
}

/// Opens the kept store, filling it first if no complete fill is there.
fn store() -> Store {
    let dir = std::env::var_os("BRINE_BENCH_JOBCACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-jobcache"));
    let marker = dir.join("filled");
    let shape = format!("{JOBS} jobs × {MINIONS} returns\n");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(shape.as_str()) {
        return Store::open(&dir.join("db")).expect("open the kept job cache");
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("remove an incomplete job cache");
    }
    std::fs::create_dir_all(&dir).expect("create the job cache directory");
    let store = Store::open(&dir.join("db")).expect("create the job cache");
    let t0 = Instant::now();
    eprintln!("jobcache: writing {JOBS} × {MINIONS} returns into {} (once)", dir.display());
    let minions: Vec<MinionId> =
        (0..MINIONS).map(|i| MinionId::new(format!("fill-{i:05}")).expect("minion id")).collect();
    for i in 0..JOBS {
        let jid = jid(i);
        let started_at = jid.micros() / 1000;
        put_ping_job(&store, jid, &minions, started_at).expect("fill a job");
    }
    store.flush().expect("flush");
    std::fs::write(&marker, shape).expect("mark the job cache filled");
    eprintln!("jobcache: filled in {:.1} s", t0.elapsed().as_secs_f64());
    store
}

fn lookups(c: &mut Criterion) {
    let store = store();
    let mid = jid(JOBS / 2);
    assert_eq!(store.returns(mid).expect("returns").len(), MINIONS, "the kept store is complete");
    let newest = JobFilter { limit: 20, ..Default::default() };
    let thousand = JobFilter { limit: 1_000, ..Default::default() };
    c.bench_function("list_20", |b| b.iter(|| store.list(black_box(&newest)).expect("list")));
    c.bench_function("list_1000", |b| b.iter(|| store.list(black_box(&thousand)).expect("list")));
    c.bench_function("job", |b| b.iter(|| store.job(black_box(mid)).expect("job")));
    c.bench_function("counts", |b| b.iter(|| store.counts(black_box(mid)).expect("counts")));
    c.bench_function("returns", |b| b.iter(|| store.returns(black_box(mid)).expect("returns")));
    c.bench_function("show", |b| {
        b.iter(|| {
            let mid = black_box(mid);
            (store.job(mid).expect("job"), store.counts(mid).expect("counts"), store.returns(mid).expect("returns"))
        })
    });
}

criterion_group! {
    name = benches;
    // A modest sample: the machine is shared, and `list_1000` takes a while per call.
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1));
    targets = lookups
}
criterion_main!(benches);
