//! The brine master and the operator CLI.
//!
//! - [`config`]: the `master.toml` file.
//! - [`acl`]: what each operator may do; [`audit`]: the log of their requests.
//! - [`master`]: the running master and its shared state.
//! - [`keys`]: the key registry (pending / accepted / rejected / denied).
//! - [`nats`]: the embedded, supervised `nats-server`.
//! - [`enroll`], [`ctl`], [`ingest`], [`presence`], [`rpc`]: the services.
//! - [`events`]: the event bus as the master verifies and fans it out; [`reactor`]:
//!   events to jobs.
//! - [`grains`]: the cache of minions' grains.
//! - [`store`]: the job cache.
//! - [`cli`]: the `brine` command.
//! - [`logging`]: the daemon's logs; [`shell`]: completions and man pages.
#![forbid(unsafe_code)]

pub mod acl;
pub mod audit;
pub mod cli;
pub mod config;
pub mod ctl;
pub mod enroll;
pub mod events;
pub mod fileserver;
pub mod grains;
pub mod ingest;
pub mod keys;
pub mod logging;
pub mod master;
pub mod nats;
pub mod orchestrate;
pub mod presence;
pub mod queue;
pub mod reactor;
pub mod rpc;
pub mod schedule;
pub mod shell;
pub mod stats;
pub mod store;
pub mod tls;

pub use config::MasterConfig;
pub use master::Master;
