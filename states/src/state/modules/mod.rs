//! The state modules, one file each.

pub mod cmd;
pub mod file;
pub mod test;
