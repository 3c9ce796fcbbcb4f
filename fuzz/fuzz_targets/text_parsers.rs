//! The small text parsers: durations, fingerprints, JIDs, minion ids, subject tokens,
//! subject prefixes, subjects, cron expressions and schedule times. None may panic; those with a canonical form must
//! give it back.
#![no_main]

use brine_proto::config::{format_duration, parse_duration};
use brine_proto::id::{decode_token, encode_token};
use brine_proto::keys::Fingerprint;
use brine_proto::{Jid, MinionId, Subjects};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(d) = parse_duration(&s) {
        // What formats at millisecond precision parses back to the same.
        let ms = std::time::Duration::from_millis(d.as_millis() as u64);
        assert_eq!(parse_duration(&format_duration(ms)), Ok(ms));
    }
    if let Some(fp) = Fingerprint::parse(&s) {
        assert_eq!(Fingerprint::parse(&fp.to_string()), Some(fp));
    }
    if let Ok(jid) = s.parse::<Jid>() {
        assert_eq!(jid.to_string(), s);
    }
    if let Some(decoded) = decode_token(&s) {
        assert_eq!(encode_token(&decoded), s);
    }
    assert_eq!(decode_token(&encode_token(&s)).as_deref(), Some(&*s));
    if let Ok(id) = MinionId::new(s.to_string()) {
        assert_eq!(MinionId::from_token(&id.token()), Ok(id));
    }
    let _ = MinionId::from_token(&s);
    let _ = Subjects::new(&s);
    let subjects = Subjects::default();
    let _ = (subjects.parse_ret(&s), subjects.parse_job(&s), subjects.parse_rpc(&s), subjects.parse_presence(&s));
    if let Ok(cron) = s.parse::<brine_proto::cron::Cron>() {
        if let Some(next) = cron.next_after(1_795_428_420_000) {
            assert!(next > 1_795_428_420_000 && next % 60_000 == 0);
        }
    }
    let _ = (brine_proto::schedule::parse_datetime(&s), brine_proto::schedule::parse_moment(&s));
});
