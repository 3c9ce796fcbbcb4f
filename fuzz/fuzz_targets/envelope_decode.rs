//! Any bytes as a signed envelope: decoding refuses or accepts without panicking,
//! verification of what decodes likewise, and a decoded envelope encodes and decodes
//! back to itself.
#![no_main]

use brine_proto::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(env) = Envelope::decode(data) else { return };
    let _ = env.verify_self();
    let again = rmp_serde::to_vec_named(&env).expect("a decoded envelope encodes");
    assert_eq!(Envelope::decode(&again).as_ref(), Ok(&env));
});
