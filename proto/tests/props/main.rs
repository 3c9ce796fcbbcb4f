//! Property tests of every decoder in `brine-proto`: round trips, tamper resistance,
//! and "never panics" on arbitrary input. Case counts are kept small so that
//! `cargo test` stays quick; `PROPTEST_CASES=5000 cargo test -p brine-proto --test props`
//! runs longer. The fuzz targets in `fuzz/` cover the same decoders coverage-guided.

mod envelope;
mod seeds;
mod strategies;
mod text;

use proptest::test_runner::Config;

/// `n` cases per property, unless `PROPTEST_CASES` asks for another number.
pub fn cases(n: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = n;
    }
    config
}
