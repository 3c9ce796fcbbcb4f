//! Every message body decoder, behind a valid signature: the first byte picks the
//! message type (in the order of `TYPES` below) and the rest is the body, which this
//! target signs with a fixed key before opening it at a fixed moment. So the fuzzer
//! reaches what a sender holding a valid key can put before a receiver. Whatever opens
//! must seal and open again to the same message.
//!
//! With the top bit of the first byte set, the rest is taken as a whole envelope
//! instead (signature and all), the way a receiver without the sender's key sees it.
#![no_main]

use brine_proto::envelope::{open_self_signed, seal, Envelope, Kind, Message, Stamp, ENVELOPE_VERSION};
use brine_proto::msg::*;
use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;

/// The moment messages are opened at; seeds are stamped around it.
const NOW: u64 = 1_700_000_000_000;

/// The message types, in the order the first input byte selects them (mod 10): the
/// order of their tags in the signed bytes, so a type's tag is its index plus one.
const TYPES: [Kind; 10] = [
    Kind::Enroll,
    Kind::EnrollReply,
    Kind::Job,
    Kind::Return,
    Kind::Ctl,
    Kind::CtlReply,
    Kind::Event,
    Kind::Presence,
    Kind::Rpc,
    Kind::RpcReply,
];

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// Wire bytes of an envelope around `body`, signed with the fixed key whatever `body`
/// holds. The signed bytes are laid out as `proto/src/envelope.rs` lays them out (the
/// init check below keeps the two in step).
fn sign_any_body(kind: Kind, body: &[u8]) -> Vec<u8> {
    let tag = TYPES.iter().position(|k| *k == kind).expect("every kind is listed") as u8 + 1;
    let mut signed = b"brine-envelope-v1\0".to_vec();
    signed.push(tag);
    signed.extend_from_slice(body);
    let key = key();
    let env = Envelope {
        v: ENVELOPE_VERSION,
        kind,
        signer: key.verifying_key().to_bytes(),
        body: body.to_vec(),
        sig: key.sign(&signed).to_bytes(),
        tree: None,
    };
    rmp_serde::to_vec_named(&env).expect("an envelope encodes")
}

/// Panics unless [`sign_any_body`] signs exactly as `seal` does: otherwise every input
/// would only exercise the signature check.
fn check_signing_matches_seal() {
    fn same<M: Message>(msg: M) {
        let sealed = seal(&msg, &key()).expect("seals");
        let body = Envelope::decode(&sealed).expect("decodes").body;
        assert_eq!(sign_any_body(M::KIND, &body), sealed, "{:?}", M::KIND);
    }
    let stamp = || Stamp { id: "x".into(), issued_at: NOW, expires_at: NOW + 1 };
    let id = || brine_proto::MinionId::new("m").expect("an id");
    let jid = brine_proto::Jid::from_micros(NOW * 1000);
    let target = || brine_proto::Target::Glob("*".into());
    same(EnrollRequest { stamp: stamp(), id: id(), key: [1; 32], version: String::new() });
    same(EnrollReply { stamp: stamp(), request: "r".into(), id: id(), status: KeyStatus::Pending, tls_ca: None });
    let (fun, arg, kwarg) = (String::new(), Vec::new(), brine_proto::Map::new());
    same(Job { stamp: stamp(), jid, target: target(), fun, arg, kwarg, user: String::new(), queued: false });
    let ret = brine_proto::Value::Null;
    let fun = String::new();
    same(Return { stamp: stamp(), jid, id: id(), fun, ret, retcode: 0, success: true, started_at: 0, duration_ms: 0, schedule: None });
    same(Ctl { stamp: stamp(), op: CtlOp::KeyList });
    let result = CtlResult::Minions(Vec::new());
    same(CtlReply { stamp: stamp(), request: "r".into(), result });
    same(Event::new(stamp(), "t", brine_proto::Value::Null));
    same(Presence { stamp: stamp(), id: id(), version: String::new(), started_at: 0, running: Vec::new() });
    let call = RpcCall::PutGrains { grains: brine_proto::Map::new() };
    same(Rpc { stamp: stamp(), id: id(), call });
    same(RpcReply { stamp: stamp(), request: "r".into(), result: RpcResult::Ok });
}

fn open_as<M: Message + PartialEq + std::fmt::Debug>(wire: &[u8]) {
    let Ok(opened) = open_self_signed::<M>(wire, NOW) else { return };
    // Too large or too deep to send is a refusal, not a failure.
    let Ok(again) = seal(&opened.msg, &key()) else { return };
    let back = open_self_signed::<M>(&again, NOW).expect("a re-sealed message opens");
    assert_eq!(back.msg, opened.msg);
}

fuzz_target!(init: check_signing_matches_seal(), |data: &[u8]| {
    let Some((&select, rest)) = data.split_first() else { return };
    let kind = TYPES[usize::from(select & 0x7f) % TYPES.len()];
    let wire = if select & 0x80 == 0 { sign_any_body(kind, rest) } else { rest.to_vec() };
    match kind {
        Kind::Enroll => open_as::<EnrollRequest>(&wire),
        Kind::EnrollReply => open_as::<EnrollReply>(&wire),
        Kind::Job => open_as::<Job>(&wire),
        Kind::Return => open_as::<Return>(&wire),
        Kind::Presence => open_as::<Presence>(&wire),
        Kind::Event => open_as::<Event>(&wire),
        Kind::Ctl => open_as::<Ctl>(&wire),
        Kind::CtlReply => open_as::<CtlReply>(&wire),
        Kind::Rpc => open_as::<Rpc>(&wire),
        Kind::RpcReply => open_as::<RpcReply>(&wire),
    }
});
