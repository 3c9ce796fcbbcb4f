//! Everything that runs on a managed host, synchronously and without NATS: the
//! execution modules (`test.ping`, `cmd.run`, …) behind one registry, and grains.
//! The minion and `brine-call` call into [`exec::call`]; tests drive it directly.
#![forbid(unsafe_code)]

pub mod exec;
pub mod files;
pub mod grains;
pub mod pillar;
pub mod sls;
pub mod state;

pub use exec::{call, CallError, Context, Output};
