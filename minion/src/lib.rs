//! The brine minion: the agent that runs on every managed host, and `brine-call`.
//!
//! - [`config`]: the `minion.toml` file.
//! - [`minion`]: enrollment, the NATS session, job checks and execution, returns.
//! - [`ledger`]: the on-disk record of accepted jobs, jobs in flight and spooled returns.
//! - [`runner`]: where a job's function runs: in the minion, or in a child process.
//! - [`logging`]: the daemon's logs; [`shell`]: completions and man pages.
#![forbid(unsafe_code)]

pub mod beacons;
pub mod call;
pub mod config;
pub mod files;
pub mod ledger;
pub mod logging;
pub mod minion;
pub mod runner;
pub mod schedule;
pub mod shell;

pub use config::MinionConfig;
pub use minion::{Minion, Status};
