//! The state modules, one file each.

pub mod brine;
mod calls;
pub mod cmd;
pub mod cron;
pub mod event;
pub mod file;
pub mod group;
pub mod host;
pub mod pkg;
pub mod service;
pub mod sysctl;
pub mod test;
pub mod user;
