//! brine's shared protocol: everything master, minion and CLI must agree on, with no
//! runtime and no I/O beyond key files.
//!
//! - [`envelope`]: the signed envelope every authority-carrying message travels in.
//! - [`msg`]: the message bodies (enroll, job, return, ctl, event, presence).
//! - [`id`]: validated minion ids and their reversible subject-token encoding.
//! - [`subject`]: the NATS subject scheme under a configurable prefix.
//! - [`jid`]: job ids, 20-digit timestamps that strictly increase.
//! - [`keys`]: ed25519 key files and fingerprints.
//! - [`target`]: target expressions and the matcher that decides who is targeted.
//! - [`schedule`], [`cron`]: when schedule entries run (shared by minion and master).
//! - [`replay`]: the bookkeeping that refuses a message id seen before.
//! - [`shape`]: the depth and size limits checked before any MessagePack is decoded.
//! - [`tree`]: hash trees, for one signature over many messages.
//! - [`alloc`]: the daemons' allocator set-up (the crate's one `unsafe` call).
#![deny(unsafe_code)]

pub mod alloc;
pub mod args;
pub mod config;
pub mod cron;
pub mod envelope;
pub mod id;
pub mod jid;
pub mod keys;
pub mod msg;
pub mod output;
pub mod replay;
pub mod schedule;
pub mod shape;
pub mod subject;
pub mod target;
pub mod time;
#[cfg(feature = "tls")]
pub mod tls;
pub mod tree;

/// The dynamic value type of arguments, return data and event payloads. It maps 1:1
/// onto JSON (what `--out json` prints) and onto MessagePack on the wire.
pub type Value = serde_json::Value;

/// A map of keyword arguments or of a return's fields, in insertion order.
pub type Map = serde_json::Map<String, Value>;

pub use envelope::{Envelope, Kind, Message, OpenError, Opened};
pub use id::{IdError, MinionId};
pub use jid::{Jid, JidGenerator};
pub use subject::Subjects;
pub use target::{Target, TargetError, TargetMatcher};

/// The brine version, shared by every binary (`test.version` reports it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
