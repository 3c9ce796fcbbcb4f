//! The signed envelope and every message body: seal → open round trips, tampering,
//! the shape limits, and arbitrary bytes at every decoder.

use crate::cases;
use crate::strategies::{any_message, message_like_bytes, signing_key, value, NOW};
use brine_proto::envelope::{open_self_signed, seal, Envelope, Kind, Stamp, ENVELOPE_VERSION};
use brine_proto::msg::Event;
use brine_proto::shape::MAX_DEPTH;
use brine_proto::{OpenError, Value};
use ed25519_dalek::{Signer, SigningKey};
use proptest::prelude::*;

/// Wire bytes of an envelope of `kind` around `body`, properly signed by `key`
/// whatever `body` holds: what a sender with a valid key can put in front of a body
/// decoder.
fn sign_any_body(kind: Kind, body: Vec<u8>, key: &SigningKey) -> Vec<u8> {
    // The signed bytes as `envelope.rs` defines them: domain tag, kind tag, body.
    let tag = match kind {
        Kind::Enroll => 1,
        Kind::EnrollReply => 2,
        Kind::Job => 3,
        Kind::Return => 4,
        Kind::Ctl => 5,
        Kind::CtlReply => 6,
        Kind::Event => 7,
        Kind::Presence => 8,
        Kind::Rpc => 9,
        Kind::RpcReply => 10,
    };
    let mut signed = b"brine-envelope-v1\0".to_vec();
    signed.push(tag);
    signed.extend_from_slice(&body);
    let sig = key.sign(&signed).to_bytes();
    let env = Envelope { v: ENVELOPE_VERSION, kind, signer: key.verifying_key().to_bytes(), body, sig, tree: None };
    rmp_serde::to_vec_named(&env).unwrap()
}

/// Opens `bytes` as every message type; whatever a type decodes must seal and open
/// again to the same message.
fn open_as_every_type(bytes: &[u8], key: &SigningKey) -> Result<(), TestCaseError> {
    crate::for_every_message_type!(M => {
        if let Ok(opened) = open_self_signed::<M>(bytes, NOW) {
            let again = seal(&opened.msg, key).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back = open_self_signed::<M>(&again, NOW).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back.msg, opened.msg);
        }
    });
    Ok(())
}

/// Levels of arrays and maps in `v`; empty ones do not count, as the decoder does
/// not descend into them.
fn nesting(v: &Value) -> usize {
    match v {
        Value::Array(a) if !a.is_empty() => 1 + a.iter().map(nesting).max().unwrap_or(0),
        Value::Object(m) if !m.is_empty() => 1 + m.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

#[test]
fn the_signing_scheme_copied_here_is_the_real_one() {
    // `sign_any_body` duplicates the envelope's signed-bytes layout; if that layout
    // changes, the properties below would only test refusals.
    let key = SigningKey::from_bytes(&[9; 32]);
    let event = Event::new(Stamp { id: "x".into(), issued_at: NOW, expires_at: NOW + 1 }, "t", Value::Null);
    let body = rmp_serde::to_vec_named(&event).unwrap();
    let bytes = sign_any_body(Kind::Event, body, &key);
    assert_eq!(open_self_signed::<Event>(&bytes, NOW).unwrap().msg, event);
    assert_eq!(bytes, seal(&event, &key).unwrap());
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn every_message_type_round_trips(msg in any_message(), key in signing_key()) {
        let bytes = msg.seal(&key);
        let (back, signer) = msg.open_same_type(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &msg);
        prop_assert_eq!(signer, key.verifying_key());
        prop_assert_eq!(msg.open_trusted(&bytes, &key.verifying_key()), Ok(()));
    }

    #[test]
    fn another_key_is_not_trusted(msg in any_message(), key in signing_key(), other in signing_key()) {
        prop_assume!(key.verifying_key() != other.verifying_key());
        let bytes = msg.seal(&key);
        let err = msg.open_trusted(&bytes, &other.verifying_key()).unwrap_err();
        prop_assert!(matches!(err, OpenError::WrongSigner(_)), "{}", err);
    }

    /// A changed byte never changes what a receiver acts on: the envelope is refused,
    /// or — when the change only re-spells the envelope's framing, such as a binary
    /// field marked as a string of the same bytes — it opens to the very same message
    /// from the very same signer. Any change inside the signed body or the signature
    /// is refused.
    #[test]
    fn a_changed_byte_is_refused_or_changes_nothing(
        msg in any_message(),
        key in signing_key(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..,
    ) {
        let mut bytes = msg.seal(&key);
        let env = Envelope::decode(&bytes).unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        let signed_region = |needle: &[u8]| {
            let start = msg.seal(&key).windows(needle.len()).position(|w| w == needle).unwrap();
            start..start + needle.len()
        };
        match msg.open_same_type(&bytes) {
            Err(_) => {}
            Ok((back, signer)) => {
                prop_assert_eq!(&back, &msg, "byte {} changed the message", i);
                prop_assert_eq!(signer, key.verifying_key());
                prop_assert!(!signed_region(&env.body).contains(&i), "a change in the body at {} opened", i);
                prop_assert!(!signed_region(&env.sig).contains(&i), "a change in the signature at {} opened", i);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_envelope_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Envelope::decode(&bytes).map(|env| env.verify_self());
        let key = SigningKey::from_bytes(&[1; 32]);
        open_as_every_type(&bytes, &key)?;
    }

    #[test]
    fn message_like_envelopes_never_panic_the_decoder(bytes in message_like_bytes()) {
        let _ = Envelope::decode(&bytes).map(|env| env.verify_self());
    }

    #[test]
    fn edited_envelopes_never_panic_a_decoder(
        msg in any_message(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6),
    ) {
        let key = SigningKey::from_bytes(&[2; 32]);
        let mut bytes = msg.seal(&key);
        for (at, byte, how) in edits {
            let i = at.index(bytes.len() + 1);
            match how {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        open_as_every_type(&bytes, &key)?;
    }

    /// Whatever a key holder signs, every body decoder refuses or accepts it without
    /// panicking, and what it accepts re-seals to the same message.
    #[test]
    fn signed_arbitrary_bodies_never_panic_a_body_decoder(
        body in prop_oneof![message_like_bytes(), prop::collection::vec(any::<u8>(), 0..256)],
        key in signing_key(),
    ) {
        crate::for_every_message_type!(M => {
            use brine_proto::envelope::Message;
            let bytes = sign_any_body(<M as Message>::KIND, body.clone(), &key);
            open_as_every_type(&bytes, &key)?;
        });
    }

    /// Nesting at or under the limit seals and opens; one level more is refused by
    /// both, so a sender never makes what its receiver would drop.
    #[test]
    fn seal_and_open_agree_on_the_depth_limit(depth in 100usize..160, maps in any::<u64>(), leaf in value()) {
        let mut data = leaf.clone();
        let mut levels = 0;
        let base = nesting(&leaf);
        while levels + base < depth {
            data = if maps >> (levels % 64) & 1 == 1 {
                Value::Object([("k".to_string(), data)].into_iter().collect())
            } else {
                Value::Array(vec![data])
            };
            levels += 1;
        }
        // The event's own map is the first level.
        let total = 1 + levels + base;
        let event = Event::new(Stamp { id: "x".into(), issued_at: NOW, expires_at: NOW + 1 }, "t", data);
        let key = SigningKey::from_bytes(&[3; 32]);
        let sealed = seal(&event, &key);
        let body = rmp_serde::to_vec_named(&event).unwrap();
        let opened = open_self_signed::<Event>(&sign_any_body(Kind::Event, body, &key), NOW);
        if total <= MAX_DEPTH {
            prop_assert!(sealed.is_ok());
            prop_assert_eq!(opened.map(|o| o.msg), Ok(event));
        } else {
            prop_assert!(sealed.is_err());
            prop_assert_eq!(opened.map(|o| o.msg), Err(OpenError::TooDeep { max: MAX_DEPTH }));
        }
    }
}
