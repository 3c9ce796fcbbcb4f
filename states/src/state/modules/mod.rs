//! The state modules, one file each.

pub mod cmd;
pub mod test;
