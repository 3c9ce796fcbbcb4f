//! The brine minion: the agent that runs on every managed host, and `brine-call`.
//!
//! - [`config`]: the `minion.toml` file.
//! - [`minion`]: enrollment, the NATS session, job checks and execution, returns.
//! - [`replay`]: the on-disk memory of accepted jobs.
//! - [`logging`]: the daemon's logs; [`shell`]: completions and man pages.
#![forbid(unsafe_code)]

pub mod beacons;
pub mod call;
pub mod config;
pub mod files;
pub mod logging;
pub mod minion;
pub mod replay;
pub mod schedule;
pub mod shell;
pub mod spool;

pub use config::MinionConfig;
pub use minion::{Minion, Status};
