//! Any text as the master's config file: a validated config or an error, never a
//! panic.
#![no_main]

use brine_master::config::MasterConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = MasterConfig::parse(text, None);
});
