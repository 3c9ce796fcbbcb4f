//! Job ids: 20-digit UTC timestamps `YYYYMMDDhhmmssffffff`, as Salt users know them.
//!
//! Internally a JID is the microsecond it stands for, so it sorts by time, keys the job
//! cache as eight big-endian bytes, and a generator can make each one strictly larger
//! than the last even when the clock stands still or steps back.

use crate::time::Civil;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A job id. Displayed and serialized as its 20-digit string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Jid(u64);

/// A string that is not a JID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a job id (expected 20 digits, YYYYMMDDhhmmssffffff)")]
pub struct JidError(pub String);

impl Jid {
    /// The JID for a moment in Unix microseconds.
    pub fn from_micros(micros: u64) -> Jid {
        Jid(micros)
    }

    /// The moment this JID stands for, in Unix microseconds.
    pub fn micros(self) -> u64 {
        self.0
    }

    /// Eight big-endian bytes that sort like the JIDs: the job cache key.
    pub fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// The inverse of [`Jid::to_be_bytes`].
    pub fn from_be_bytes(bytes: [u8; 8]) -> Jid {
        Jid(u64::from_be_bytes(bytes))
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = Civil::from_unix_micros(self.0);
        write!(f, "{:04}{:02}{:02}{:02}{:02}{:02}{:06}", c.year, c.month, c.day, c.hour, c.minute, c.second, c.micros)
    }
}

impl fmt::Debug for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jid({self})")
    }
}

impl std::str::FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Jid, JidError> {
        let err = || JidError(s.to_string());
        if s.len() != 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().map_err(|_| err());
        let civil = Civil {
            year: num(0..4)? as i64,
            month: num(4..6)?,
            day: num(6..8)?,
            hour: num(8..10)?,
            minute: num(10..12)?,
            second: num(12..14)?,
            micros: num(14..20)?,
        };
        civil.to_unix_micros().map(Jid).ok_or_else(err)
    }
}

impl TryFrom<String> for Jid {
    type Error = JidError;
    fn try_from(s: String) -> Result<Jid, JidError> {
        s.parse()
    }
}

impl From<Jid> for String {
    fn from(j: Jid) -> String {
        j.to_string()
    }
}

/// Hands out strictly increasing JIDs; shared by reference between tasks.
#[derive(Debug, Default)]
pub struct JidGenerator {
    last: AtomicU64,
}

impl JidGenerator {
    /// A generator whose JIDs are all later than `floor` (the newest JID already in the
    /// job cache, so that a restarted master never reuses one).
    pub fn starting_after(floor: Option<Jid>) -> JidGenerator {
        JidGenerator { last: AtomicU64::new(floor.map_or(0, |j| j.0)) }
    }

    /// The next JID for the current time.
    pub fn next(&self) -> Jid {
        self.next_at(crate::time::now_micros())
    }

    /// The next JID for `now_micros`: that moment, or one microsecond after the last
    /// JID handed out if the clock has not moved past it.
    pub fn next_at(&self, now_micros: u64) -> Jid {
        let prev = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| Some(now_micros.max(last + 1)))
            .unwrap_or_else(|v| v);
        Jid(now_micros.max(prev + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jid_is_twenty_digits_and_round_trips() {
        let jid = Jid::from_micros(1_700_000_000_123_456);
        let s = jid.to_string();
        assert_eq!(s, "20231114221320123456");
        assert_eq!(s.parse::<Jid>().unwrap(), jid);
        let back: Jid = rmp_serde::from_slice(&rmp_serde::to_vec(&jid).unwrap()).unwrap();
        assert_eq!(back, jid);
    }

    #[test]
    fn malformed_jids_are_refused() {
        for bad in ["", "2023111422132012345", "2023111422132012345x", "20231314221320123456", "20230229000000000000"] {
            assert!(bad.parse::<Jid>().is_err(), "{bad}");
        }
    }

    #[test]
    fn generator_is_strictly_increasing_even_when_time_stands_still_or_goes_back() {
        let g = JidGenerator::default();
        let a = g.next_at(1_000);
        let b = g.next_at(1_000);
        let c = g.next_at(500);
        let d = g.next_at(5_000);
        assert!(a < b && b < c && c < d, "{a:?} {b:?} {c:?} {d:?}");
        assert_eq!(d.micros(), 5_000);
    }

    #[test]
    fn generator_starts_after_the_floor() {
        let g = JidGenerator::starting_after(Some(Jid::from_micros(9_000)));
        assert_eq!(g.next_at(1).micros(), 9_001);
    }

    #[test]
    fn byte_order_matches_jid_order() {
        let a = Jid::from_micros(255);
        let b = Jid::from_micros(256);
        assert!(a.to_be_bytes() < b.to_be_bytes());
        assert_eq!(Jid::from_be_bytes(b.to_be_bytes()), b);
    }
}
