//! The daemon's logs: `tracing` events on stderr, which systemd hands to the journal.
//!
//! The level comes from `--log-level`, else the config's `log_level`; `RUST_LOG`
//! overrides both. `log_format = "json"` writes one JSON object a line. Under
//! systemd (`JOURNAL_STREAM` set) text lines carry no timestamp or colour: the journal
//! stamps each line itself.

use brine_proto::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Fails only when `level` is not a valid filter
/// (the config checks its own `log_level`; a `--log-level` flag is checked here).
pub fn init(level: &str, format: LogFormat) -> Result<(), String> {
    brine_proto::config::check_log_filter(level)?;
    let filter = match EnvFilter::try_from_default_env() {
        Ok(f) => f,
        Err(_) => EnvFilter::try_new(format!("{level},sled=warn,async_nats=warn"))
            .map_err(|e| format!("{level:?} is not a log level or filter: {e}"))?,
    };
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text if journal => builder.without_time().with_ansi(false).init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}
