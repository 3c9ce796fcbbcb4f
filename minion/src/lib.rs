//! The brine minion: the agent that runs on every managed host, and `brine-call`.
//!
//! - [`config`]: the `minion.toml` file.
//! - [`minion`]: enrollment, the NATS session, job checks and execution, returns.
//! - [`replay`]: the on-disk memory of accepted jobs.
#![forbid(unsafe_code)]

pub mod call;
pub mod config;
pub mod files;
pub mod minion;
pub mod replay;
pub mod spool;

pub use config::MinionConfig;
pub use minion::{Minion, Status};
