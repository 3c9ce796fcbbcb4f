//! Command-line words (NUL-separated) typed as function arguments: never a panic, and
//! a word typed as a string is the word itself unless it was quoted.
#![no_main]

use brine_proto::args::{parse_cli_args, type_word};
use brine_proto::Value;
use libfuzzer_sys::fuzz_target;

fn quoted(word: &str) -> bool {
    let t = word.trim();
    t.len() >= 2 && ((t.starts_with('"') && t.ends_with('"')) || (t.starts_with('\'') && t.ends_with('\'')))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let words: Vec<&str> = text.split('\0').collect();
    let (args, kwargs) = parse_cli_args(&words);
    assert!(args.len() + kwargs.len() <= words.len());
    for word in &words {
        if let Value::String(s) = type_word(word) {
            assert!(quoted(word) || s == *word, "{word:?} became {s:?}");
        }
    }
});
