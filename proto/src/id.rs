//! Minion ids and their subject-token encoding.
//!
//! A minion id is usually a host name or FQDN, so it contains dots, but a NATS subject
//! token cannot. Every id therefore goes through one reversible encoding before it
//! becomes part of a subject, an inbox prefix or a JetStream consumer name:
//!
//! - `A-Z a-z 0-9 _ -` stand for themselves,
//! - `.` becomes `~` (so `web1.example.com` reads as `web1~example~com`),
//! - every other byte becomes `%HH` (upper-case hex).
//!
//! The encoding is injective, so a token names exactly one id and NATS permissions
//! granted on a token grant nothing on any other id.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest accepted minion id, in bytes (a DNS name is at most 253).
pub const MAX_ID_LEN: usize = 253;

/// Why a string is not a valid minion id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id was empty.
    #[error("minion id is empty")]
    Empty,
    /// The id was longer than [`MAX_ID_LEN`] bytes.
    #[error("minion id is {0} bytes long; at most {MAX_ID_LEN} are allowed")]
    TooLong(usize),
    /// The id contained whitespace, a control character or a character that would
    /// be ambiguous in targets or file names.
    #[error("minion id {id:?} contains {ch:?}, which is not allowed (use letters, digits and . _ - @ : +)")]
    BadChar { id: String, ch: char },
    /// The id was `.` or `..`, or started with a dot or a dash.
    #[error("minion id {0:?} may not start with '.' or '-'")]
    BadStart(String),
    /// A subject token did not decode to an id.
    #[error("subject token {0:?} does not encode a minion id")]
    BadToken(String),
}

/// A validated minion id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MinionId(String);

fn allowed(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-' | '@' | ':' | '+')
}

impl MinionId {
    /// Validates `id`: 1 to 253 bytes of letters, digits and `. _ - @ : +`, not
    /// starting with `.` or `-`.
    pub fn new(id: impl Into<String>) -> Result<MinionId, IdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(IdError::Empty);
        }
        if id.len() > MAX_ID_LEN {
            return Err(IdError::TooLong(id.len()));
        }
        if let Some(ch) = id.chars().find(|c| !allowed(*c)) {
            return Err(IdError::BadChar { id, ch });
        }
        if id.starts_with('.') || id.starts_with('-') {
            return Err(IdError::BadStart(id));
        }
        Ok(MinionId(id))
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The subject token for this id (see the module docs).
    pub fn token(&self) -> String {
        encode_token(&self.0)
    }

    /// Decodes a subject token back into the id it encodes.
    pub fn from_token(token: &str) -> Result<MinionId, IdError> {
        let decoded = decode_token(token).ok_or_else(|| IdError::BadToken(token.to_string()))?;
        MinionId::new(decoded)
    }
}

/// Encodes any string as one subject token (see the module docs).
pub fn encode_token(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => out.push(b as char),
            b'.' => out.push('~'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
    out
}

/// Decodes a token made by [`encode_token`]; `None` if it is not one (a token with
/// lower-case hex, say, is refused so that every string has exactly one token).
pub fn decode_token(token: &str) -> Option<String> {
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => out.push(bytes[i]),
            b'~' => out.push(b'.'),
            b'%' => {
                let hex = |b: u8| match b {
                    b'0'..=b'9' => Some(b - b'0'),
                    b'A'..=b'F' => Some(b - b'A' + 10),
                    _ => None,
                };
                let hi = hex(*bytes.get(i + 1)?)?;
                let lo = hex(*bytes.get(i + 2)?)?;
                let b = hi << 4 | lo;
                // A byte that has a shorter spelling must use it.
                if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.') {
                    return None;
                }
                out.push(b);
                i += 2;
            }
            _ => return None,
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

impl TryFrom<String> for MinionId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        MinionId::new(s)
    }
}

impl From<MinionId> for String {
    fn from(id: MinionId) -> String {
        id.0
    }
}

impl std::str::FromStr for MinionId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        MinionId::new(s)
    }
}

impl fmt::Display for MinionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MinionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for MinionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_never_contain_subject_metacharacters() {
        for id in ["web1", "web1.example.com", "db_2-a", "user@host:22+x", "a.b.c.d"] {
            let id = MinionId::new(id).unwrap();
            let token = id.token();
            assert!(!token.contains(['.', '*', '>', ' ']), "{token}");
            assert_eq!(MinionId::from_token(&token).unwrap(), id);
        }
        assert_eq!(MinionId::new("web1.example.com").unwrap().token(), "web1~example~com");
        assert_eq!(encode_token("a@b"), "a%40b");
    }

    #[test]
    fn distinct_ids_have_distinct_tokens() {
        // `~` and `%` in the input are escaped, so they cannot alias a dot or an escape.
        let a = encode_token("a.b");
        let b = encode_token("a~b");
        let c = encode_token("a%7Eb");
        assert_ne!(a, b);
        assert_ne!(b, c);
        assert_eq!(decode_token(&b).unwrap(), "a~b");
        assert_eq!(decode_token(&c).unwrap(), "a%7Eb");
    }

    #[test]
    fn non_canonical_tokens_are_refused() {
        assert_eq!(decode_token("a%2Eb"), None); // '.' must be '~'
        assert_eq!(decode_token("a%41"), None); // 'A' must be literal
        assert_eq!(decode_token("a%4"), None);
        assert_eq!(decode_token("a%zz"), None);
        assert_eq!(decode_token("a.b"), None);
        assert_eq!(decode_token("a%40b").unwrap(), "a@b");
    }

    #[test]
    fn invalid_ids_say_why() {
        assert_eq!(MinionId::new(""), Err(IdError::Empty));
        assert!(matches!(MinionId::new("a b"), Err(IdError::BadChar { ch: ' ', .. })));
        assert!(matches!(MinionId::new("web*"), Err(IdError::BadChar { ch: '*', .. })));
        assert!(matches!(MinionId::new("a/b"), Err(IdError::BadChar { ch: '/', .. })));
        assert!(matches!(MinionId::new(".."), Err(IdError::BadStart(_))));
        assert!(matches!(MinionId::new("x".repeat(254)), Err(IdError::TooLong(254))));
        let msg = MinionId::new("bad id").unwrap_err().to_string();
        assert!(msg.contains("\"bad id\"") && msg.contains("' '"), "{msg}");
    }
}
