//! Any text as the minion's config file: a validated config or an error, never a
//! panic. The text always starts with an `id`: without one the parser asks the host
//! for its fully qualified name (a DNS lookup), which is slow and not under test.
#![no_main]

use brine_minion::config::MinionConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = MinionConfig::parse(&format!("id = \"fuzz\"\n{text}"), None);
});
