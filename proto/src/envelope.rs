//! The signed envelope.
//!
//! Every message that carries authority travels as
//! `Envelope { v, kind, signer, body, sig }`, MessagePack with named fields. `sig` is an
//! ed25519 signature by `signer` over a domain tag, the kind and the body bytes exactly
//! as received; receivers never re-serialize before verifying, because MessagePack is
//! not canonical. Verification is always `verify_strict`.
//!
//! Every body starts with a [`Stamp`]: a unique id, the time it was issued and the time
//! it expires. [`open`] refuses stale messages and messages from a clock too far
//! ahead; refusing a *repeated* id is the receiver's job (see [`crate::replay`]),
//! because only it knows what it has seen.
//!
//! Nothing reaches a decoder unmeasured: an envelope larger than
//! [`MAX_ENVELOPE_BYTES`], or an envelope or body nested deeper or holding more values
//! than [`crate::shape`] allows, is refused before decoding, and [`seal`] refuses to
//! make such a message in the first place.
//!
//! **Many messages, one signature.** A sender with many messages of one kind to send
//! at once (the master's one event per return) can [`seal_tree`] them: the bodies
//! become the leaves of a hash tree ([`crate::tree`]) whose root is signed once, and
//! each envelope (version [`TREE_ENVELOPE_VERSION`]) carries its [`TreePosition`] —
//! where its body sits and the sibling hashes up to the root. Verifying one such
//! envelope recomputes the root from its own body and checks the signature over that
//! root with `verify_strict`, so each message still stands alone; a receiver that
//! keeps [`TreeRoots`] checks each tree's signature only once.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Envelope format version of a message signed on its own, what [`seal`] writes.
pub const ENVELOPE_VERSION: u8 = 1;

/// Envelope format version of a message signed as one leaf of a hash tree, what
/// [`seal_tree`] writes. This build reads both.
pub const TREE_ENVELOPE_VERSION: u8 = 2;

/// Largest encoded envelope accepted from the wire, and the largest [`seal`] makes.
/// Returns can carry command output, so this is generous; anything larger is refused
/// before decoding. It equals the `max_payload` the master gives its embedded
/// nats-server (`MAX_PAYLOAD` in `master/src/nats.rs`): NATS would not carry a larger
/// message anyway.
pub const MAX_ENVELOPE_BYTES: usize = 8 * 1024 * 1024;

/// How far a sender's clock may run ahead of ours before its messages are refused.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(120);

/// Longest validity a message may claim. Bounds how long a receiver must remember ids
/// to refuse replays.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The domain tag mixed into every signature, so that a brine signature can never be
/// mistaken for a signature over anything else made with the same key.
const DOMAIN: &[u8] = b"brine-envelope-v1\0";

/// The domain tag of a signature over a hash tree's root: never the same bytes as a
/// signature over a single message.
const TREE_DOMAIN: &[u8] = b"brine-envelope-tree-v1\0";

/// What an envelope's body is. Part of the signed bytes, so a signature over a return
/// can never be replayed as a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Enroll,
    EnrollReply,
    Job,
    Return,
    Ctl,
    CtlReply,
    Event,
    Presence,
    Rpc,
    RpcReply,
}

impl Kind {
    fn tag(self) -> u8 {
        match self {
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
        }
    }
}

/// The envelope as it appears on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Format version, [`ENVELOPE_VERSION`].
    pub v: u8,
    /// What the body is.
    pub kind: Kind,
    /// The signer's ed25519 public key.
    #[serde(with = "serde_bytes")]
    pub signer: [u8; 32],
    /// The MessagePack-encoded message body, signed as is.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// ed25519 signature over the domain tag, the kind tag and `body` (version 1), or
    /// over the tree domain tag, the kind tag, the tree's size and its root (version 2).
    #[serde(with = "serde_bytes")]
    pub sig: [u8; 64],
    /// Version 2 only: where `body` sits in the hash tree whose root `sig` signs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<TreePosition>,
}

/// Where a message sits in the hash tree whose root its envelope's signature signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreePosition {
    /// The message's leaf, counted from 0.
    pub index: u32,
    /// How many leaves the tree has (signed together with the root).
    pub size: u32,
    /// The inclusion path: sibling hashes from the leaf up, 32 bytes each.
    #[serde(with = "serde_bytes")]
    pub path: Vec<u8>,
}

impl TreePosition {
    /// The root this position and path lead to from `body`, if they fit together.
    fn root(&self, kind: Kind, body: &[u8]) -> Option<crate::tree::Hash> {
        let path: Vec<crate::tree::Hash> =
            self.path.chunks_exact(32).map(|c| c.try_into().expect("chunks of 32")).collect();
        crate::tree::root_from_path(self.index.into(), self.size.into(), crate::tree::leaf(kind.tag(), body), &path)
    }
}

/// Identity and lifetime of a message, the first field of every body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// Unique id: the JID for jobs and returns, random otherwise.
    pub id: String,
    /// Unix milliseconds when the sender made the message.
    pub issued_at: u64,
    /// Unix milliseconds after which no receiver may act on it.
    pub expires_at: u64,
}

impl Stamp {
    /// A stamp with the given id, issued now and valid for `ttl`.
    pub fn new(id: impl Into<String>, ttl: Duration) -> Stamp {
        let now = crate::time::now_ms();
        Stamp { id: id.into(), issued_at: now, expires_at: now + ttl.as_millis() as u64 }
    }

    /// A stamp with a fresh random id, issued now and valid for `ttl`.
    pub fn random(ttl: Duration) -> Stamp {
        Stamp::new(random_id(), ttl)
    }

    /// `n` stamps with distinct fresh ids ([`random_ids`]), issued now and valid for
    /// `ttl`: for many messages made at once.
    pub fn random_many(n: usize, ttl: Duration) -> Vec<Stamp> {
        let now = crate::time::now_ms();
        let expires_at = now + ttl.as_millis() as u64;
        random_ids(n).into_iter().map(|id| Stamp { id, issued_at: now, expires_at }).collect()
    }
}

/// 128 random bits as 32 hex digits, for message ids.
pub fn random_id() -> String {
    hex_id(random_u128())
}

/// `n` distinct message ids for messages made together: 128 random bits for the first,
/// counting up from there for the rest (one call to the OS random source, not `n`).
/// Distinct from every other id as [`random_id`]'s are: another run of ids collides
/// with this one only if its random start falls within `n` of this one's.
pub fn random_ids(n: usize) -> Vec<String> {
    let start = random_u128();
    (0..n as u128).map(|i| hex_id(start.wrapping_add(i))).collect()
}

fn random_u128() -> u128 {
    let mut b = [0u8; 16];
    // The OS random source failing is not recoverable in any useful way; fall back to
    // the clock so ids stay unique within a process rather than aborting.
    if getrandom::getrandom(&mut b).is_err() {
        b[..8].copy_from_slice(&crate::time::now_micros().to_be_bytes());
    }
    u128::from_be_bytes(b)
}

fn hex_id(n: u128) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let bytes = n.to_be_bytes();
    let mut out = String::with_capacity(32);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// A message body type: its kind and where its stamp is.
pub trait Message: Serialize + DeserializeOwned {
    /// The envelope kind this body travels as.
    const KIND: Kind;
    /// The body's stamp.
    fn stamp(&self) -> &Stamp;
}

/// Why a message was refused. Every variant is a reason to drop the message and count
/// it, never to crash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// More bytes than [`MAX_ENVELOPE_BYTES`].
    #[error("message of {size} bytes exceeds the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    /// Arrays and maps nested deeper than [`crate::shape::MAX_DEPTH`], refused before
    /// decoding because decoding recurses once per level.
    #[error("message is nested more than {max} levels deep; refused before decoding")]
    TooDeep { max: usize },
    /// More values than [`crate::shape::MAX_VALUES`], refused before decoding because
    /// each decoded value costs far more memory than its bytes on the wire.
    #[error("message holds more than {max} values; refused before decoding")]
    TooManyValues { max: usize },
    /// Not a MessagePack envelope, or a body that does not decode as its kind.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// An envelope version this build does not speak.
    #[error("unsupported envelope version {0} (this build speaks {ENVELOPE_VERSION} and {TREE_ENVELOPE_VERSION})")]
    Version(u8),
    /// The envelope is of another kind than the subject carries.
    #[error("expected a {expected:?} message, got {got:?}")]
    WrongKind { expected: Kind, got: Kind },
    /// Signed by a key other than the one this receiver trusts for the sender.
    #[error("signed by an untrusted key {}", fingerprint_short(.0))]
    WrongSigner([u8; 32]),
    /// The signature does not verify (tampered, truncated or forged).
    #[error("bad signature")]
    BadSignature,
    /// The message expired before it arrived.
    #[error("message expired {0} ms ago")]
    Expired(u64),
    /// The sender's clock is ahead of ours by more than [`MAX_CLOCK_SKEW`].
    #[error("message is issued {0} ms in the future; the sender's clock or ours is wrong (allowed skew {max} s)", max = MAX_CLOCK_SKEW.as_secs())]
    FromTheFuture(u64),
    /// The stamp's times make no sense (expiry before issue, or too long a validity).
    #[error("message stamp is invalid: {0}")]
    BadStamp(&'static str),
}

fn fingerprint_short(key: &[u8; 32]) -> String {
    crate::keys::Fingerprint::of_bytes(key).short()
}

/// Why a message could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The message does not encode as MessagePack.
    #[error("cannot encode message: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// The message is too large or too deeply nested: every receiver would refuse it,
    /// so it is refused here, where the sender can still report it.
    #[error("cannot send message: {0}")]
    Refused(OpenError),
}

impl From<crate::shape::ShapeError> for OpenError {
    fn from(e: crate::shape::ShapeError) -> OpenError {
        use crate::shape::ShapeError;
        match e {
            ShapeError::TooDeep { max } => OpenError::TooDeep { max },
            ShapeError::TooManyValues { max } => OpenError::TooManyValues { max },
            e @ (ShapeError::Truncated { .. } | ShapeError::Reserved { .. }) => OpenError::Malformed(e.to_string()),
        }
    }
}

/// Decodes MessagePack that passed the shape check.
fn decode_checked<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, OpenError> {
    crate::shape::check(bytes)?;
    rmp_serde::from_slice(bytes).map_err(|e| OpenError::Malformed(e.to_string()))
}

fn signed_bytes(kind: Kind, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(DOMAIN.len() + 1 + body.len());
    msg.extend_from_slice(DOMAIN);
    msg.push(kind.tag());
    msg.extend_from_slice(body);
    msg
}

/// Encodes `msg`, signs it with `key` and returns the envelope's wire bytes.
pub fn seal<M: Message>(msg: &M, key: &SigningKey) -> Result<Vec<u8>, SealError> {
    let body = rmp_serde::to_vec_named(msg)?;
    crate::shape::check(&body).map_err(|e| SealError::Refused(e.into()))?;
    let sig = key.sign(&signed_bytes(M::KIND, &body));
    let env = Envelope {
        v: ENVELOPE_VERSION,
        kind: M::KIND,
        signer: key.verifying_key().to_bytes(),
        body,
        sig: sig.to_bytes(),
        tree: None,
    };
    encode_envelope(&env)
}

fn encode_envelope(env: &Envelope) -> Result<Vec<u8>, SealError> {
    let bytes = rmp_serde::to_vec_named(env)?;
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(SealError::Refused(OpenError::TooLarge { size: bytes.len(), max: MAX_ENVELOPE_BYTES }));
    }
    Ok(bytes)
}

fn tree_signed_bytes(kind: Kind, size: u32, root: &crate::tree::Hash) -> Vec<u8> {
    let mut msg = Vec::with_capacity(TREE_DOMAIN.len() + 1 + 4 + root.len());
    msg.extend_from_slice(TREE_DOMAIN);
    msg.push(kind.tag());
    msg.extend_from_slice(&size.to_be_bytes());
    msg.extend_from_slice(root);
    msg
}

/// Seals many messages of one kind with one signature per tree of up to
/// [`crate::tree::MAX_LEAVES`]: the wire bytes of each, in order, or why it could not
/// be sealed (a message that does not encode, or would be refused, is left out of the
/// tree; the others are unaffected). A tree of one is sealed as [`seal`] does.
///
/// Signing is the costly part of sealing, and here it is paid once per tree; each
/// message costs a few SHA-256 hashes and up to 384 bytes of inclusion path.
pub fn seal_tree<M: Message>(msgs: &[M], key: &SigningKey) -> Vec<Result<Vec<u8>, SealError>> {
    let mut out: Vec<Option<Result<Vec<u8>, SealError>>> = Vec::with_capacity(msgs.len());
    let mut bodies: Vec<(usize, Vec<u8>)> = Vec::with_capacity(msgs.len());
    for (i, msg) in msgs.iter().enumerate() {
        let body = rmp_serde::to_vec_named(msg)
            .map_err(SealError::from)
            .and_then(|b| crate::shape::check(&b).map(|()| b).map_err(|e| SealError::Refused(e.into())));
        match body {
            Ok(b) => {
                bodies.push((i, b));
                out.push(None);
            }
            Err(e) => out.push(Some(Err(e))),
        }
    }
    let signer = key.verifying_key().to_bytes();
    for chunk in bodies.chunks(crate::tree::MAX_LEAVES) {
        if let [(i, body)] = chunk {
            let sig = key.sign(&signed_bytes(M::KIND, body)).to_bytes();
            let env = Envelope { v: ENVELOPE_VERSION, kind: M::KIND, signer, body: body.clone(), sig, tree: None };
            out[*i] = Some(encode_envelope(&env));
            continue;
        }
        let leaves: Vec<crate::tree::Hash> = chunk.iter().map(|(_, b)| crate::tree::leaf(M::KIND.tag(), b)).collect();
        let (root, paths) = crate::tree::build(&leaves);
        let size = chunk.len() as u32;
        let sig = key.sign(&tree_signed_bytes(M::KIND, size, &root)).to_bytes();
        for (index, ((i, body), path)) in chunk.iter().zip(paths).enumerate() {
            let env = Envelope {
                v: TREE_ENVELOPE_VERSION,
                kind: M::KIND,
                signer,
                body: body.clone(),
                sig,
                tree: Some(TreePosition { index: index as u32, size, path: path.concat() }),
            };
            out[*i] = Some(encode_envelope(&env));
        }
    }
    out.into_iter().map(|r| r.expect("every message is sealed or refused")).collect()
}

/// Tree signatures this receiver has already checked (the last [`TreeRoots::KEEP`]),
/// so that the many messages of one tree cost one signature check between them; see
/// [`Envelope::verify_cached`].
#[derive(Debug, Default)]
pub struct TreeRoots {
    /// (signer, signed bytes — tree domain, kind, size and root —, signature).
    checked: std::collections::VecDeque<([u8; 32], Vec<u8>, [u8; 64])>,
}

impl TreeRoots {
    /// How many checked tree signatures are remembered.
    pub const KEEP: usize = 64;

    fn contains(&self, signer: &[u8; 32], signed: &[u8], sig: &[u8; 64]) -> bool {
        self.checked.iter().any(|(k, m, s)| k == signer && s == sig && m == signed)
    }

    fn remember(&mut self, signer: [u8; 32], signed: Vec<u8>, sig: [u8; 64]) {
        if self.checked.len() == Self::KEEP {
            self.checked.pop_front();
        }
        self.checked.push_back((signer, signed, sig));
    }
}

impl Envelope {
    /// Decodes wire bytes into an envelope without verifying anything but its shape.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, OpenError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(OpenError::TooLarge { size: bytes.len(), max: MAX_ENVELOPE_BYTES });
        }
        let env: Envelope = decode_checked(bytes)?;
        match (env.v, &env.tree) {
            (ENVELOPE_VERSION, None) => {}
            (ENVELOPE_VERSION, Some(_)) => {
                return Err(OpenError::Malformed("a version 1 envelope with a hash-tree position".into()))
            }
            (TREE_ENVELOPE_VERSION, Some(t)) => {
                if t.path.len() % 32 != 0 || t.path.len() > 32 * crate::tree::MAX_PATH || t.index >= t.size {
                    return Err(OpenError::Malformed("a hash-tree position that does not fit its tree".into()));
                }
            }
            (TREE_ENVELOPE_VERSION, None) => {
                return Err(OpenError::Malformed("a version 2 envelope without its hash-tree position".into()))
            }
            (v, _) => return Err(OpenError::Version(v)),
        }
        Ok(env)
    }

    /// The bytes `sig` must be a signature over: the domain tag, kind and body of a
    /// version 1 envelope; the tree domain tag, kind, size and the root recomputed
    /// from the body and its inclusion path of a version 2 one.
    fn signed_message(&self) -> Result<Vec<u8>, OpenError> {
        match &self.tree {
            None => Ok(signed_bytes(self.kind, &self.body)),
            Some(t) => {
                // A path that leads to no root cannot carry a good signature.
                let root = t.root(self.kind, &self.body).ok_or(OpenError::BadSignature)?;
                Ok(tree_signed_bytes(self.kind, t.size, &root))
            }
        }
    }

    /// Checks the signature with `key`, which must be the envelope's signer.
    pub fn verify_with(&self, key: &VerifyingKey) -> Result<(), OpenError> {
        if key.as_bytes() != &self.signer {
            return Err(OpenError::WrongSigner(self.signer));
        }
        let sig = Signature::from_bytes(&self.sig);
        key.verify_strict(&self.signed_message()?, &sig).map_err(|_| OpenError::BadSignature)
    }

    /// [`Envelope::verify_with`], checking a tree's signature only the first time one
    /// of its messages arrives: the root recomputed from this body and path must equal
    /// one whose signature `roots` has seen verified, with the same signature and
    /// signer. A single-message envelope is always checked in full.
    pub fn verify_cached(&self, key: &VerifyingKey, roots: &mut TreeRoots) -> Result<(), OpenError> {
        if self.tree.is_none() {
            return self.verify_with(key);
        }
        if key.as_bytes() != &self.signer {
            return Err(OpenError::WrongSigner(self.signer));
        }
        let signed = self.signed_message()?;
        if roots.contains(&self.signer, &signed, &self.sig) {
            return Ok(());
        }
        key.verify_strict(&signed, &Signature::from_bytes(&self.sig)).map_err(|_| OpenError::BadSignature)?;
        roots.remember(self.signer, signed, self.sig);
        Ok(())
    }

    /// Checks many envelopes' signatures at once, each against its key, with ed25519
    /// batch verification (about twice as fast as one by one for a few hundred).
    /// `true`: every signature is valid. `false`: at least one is not (or a key is
    /// weak, or a signer differs): check them one by one with [`Envelope::verify_with`]
    /// to find which.
    ///
    /// A fast path only, never the last word on a refusal: the batch equation is
    /// cofactored and admits a few encodings `verify_strict` refuses (a small-order
    /// component in `R`), which only the holder of the key can produce, for a message
    /// it signed anyway.
    pub fn verify_batch(items: &[(&Envelope, &VerifyingKey)]) -> bool {
        if items.iter().any(|(env, key)| key.as_bytes() != &env.signer || key.is_weak()) {
            return false;
        }
        let Ok(messages) = items.iter().map(|(env, _)| env.signed_message()).collect::<Result<Vec<Vec<u8>>, _>>()
        else {
            return false;
        };
        let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let signatures: Vec<Signature> = items.iter().map(|(env, _)| Signature::from_bytes(&env.sig)).collect();
        let keys: Vec<VerifyingKey> = items.iter().map(|(_, key)| **key).collect();
        ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
    }

    /// Checks the signature against the key the envelope names (self-certifying:
    /// the caller must still decide whether it trusts that key).
    pub fn verify_self(&self) -> Result<VerifyingKey, OpenError> {
        let key = VerifyingKey::from_bytes(&self.signer).map_err(|_| OpenError::BadSignature)?;
        self.verify_with(&key)?;
        Ok(key)
    }

    /// Decodes the body as `M`, checking the kind and the stamp against `now_ms`.
    pub fn body<M: Message>(&self, now_ms: u64) -> Result<M, OpenError> {
        if self.kind != M::KIND {
            return Err(OpenError::WrongKind { expected: M::KIND, got: self.kind });
        }
        let msg: M = decode_checked(&self.body)?;
        check_stamp(msg.stamp(), now_ms)?;
        Ok(msg)
    }
}

/// Checks a stamp's lifetime against `now_ms`.
pub fn check_stamp(stamp: &Stamp, now_ms: u64) -> Result<(), OpenError> {
    if stamp.expires_at < stamp.issued_at {
        return Err(OpenError::BadStamp("expires before it is issued"));
    }
    if stamp.expires_at - stamp.issued_at > MAX_TTL.as_millis() as u64 {
        return Err(OpenError::BadStamp("validity longer than allowed"));
    }
    if stamp.issued_at > now_ms + MAX_CLOCK_SKEW.as_millis() as u64 {
        return Err(OpenError::FromTheFuture(stamp.issued_at - now_ms));
    }
    if now_ms > stamp.expires_at {
        return Err(OpenError::Expired(now_ms - stamp.expires_at));
    }
    Ok(())
}

/// A verified message and who signed it.
#[derive(Debug, Clone)]
pub struct Opened<M> {
    /// The verified signer.
    pub signer: VerifyingKey,
    /// The decoded, in-date body.
    pub msg: M,
}

/// Decodes, verifies against `trusted`, and checks kind and stamp: the usual way to
/// read a message from a known sender.
pub fn open<M: Message>(bytes: &[u8], trusted: &VerifyingKey, now_ms: u64) -> Result<M, OpenError> {
    let env = Envelope::decode(bytes)?;
    if env.kind != M::KIND {
        return Err(OpenError::WrongKind { expected: M::KIND, got: env.kind });
    }
    env.verify_with(trusted)?;
    env.body(now_ms)
}

/// [`open`] for many messages at once, each from its own trusted key: the signatures
/// are checked together with [`Envelope::verify_batch`], and one by one only if that
/// fails. The results are in the order of `items`.
pub fn open_many<M: Message>(items: &[(&[u8], &VerifyingKey)], now_ms: u64) -> Vec<Result<M, OpenError>> {
    let decoded: Vec<Result<Envelope, OpenError>> = items
        .iter()
        .map(|(bytes, key)| {
            let env = Envelope::decode(bytes)?;
            if env.kind != M::KIND {
                return Err(OpenError::WrongKind { expected: M::KIND, got: env.kind });
            }
            if key.as_bytes() != &env.signer {
                return Err(OpenError::WrongSigner(env.signer));
            }
            Ok(env)
        })
        .collect();
    let pairs: Vec<(&Envelope, &VerifyingKey)> =
        decoded.iter().zip(items).filter_map(|(env, (_, key))| Some((env.as_ref().ok()?, *key))).collect();
    let all_signed = pairs.len() > 1 && Envelope::verify_batch(&pairs);
    decoded
        .into_iter()
        .zip(items)
        .map(|(env, (_, key))| {
            let env = env?;
            if !all_signed {
                env.verify_with(key)?;
            }
            env.body(now_ms)
        })
        .collect()
}

/// Decodes and verifies against the key the envelope names, then checks kind and stamp.
/// For messages whose signer is looked up afterwards (operators) or is itself the
/// claim (enrollment).
pub fn open_self_signed<M: Message>(bytes: &[u8], now_ms: u64) -> Result<Opened<M>, OpenError> {
    let env = Envelope::decode(bytes)?;
    if env.kind != M::KIND {
        return Err(OpenError::WrongKind { expected: M::KIND, got: env.kind });
    }
    let signer = env.verify_self()?;
    let msg = env.body(now_ms)?;
    Ok(Opened { signer, msg })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate_key;
    use crate::Value;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Ping {
        stamp: Stamp,
        text: String,
    }
    impl Message for Ping {
        const KIND: Kind = Kind::Event;
        fn stamp(&self) -> &Stamp {
            &self.stamp
        }
    }

    #[test]
    fn batch_verification_passes_only_when_every_signature_holds() {
        let keys: Vec<SigningKey> = (0..8).map(|_| generate_key()).collect();
        let ping = |n: usize| Ping { stamp: Stamp::random(Duration::from_secs(60)), text: format!("ping {n}") };
        let envs: Vec<Envelope> =
            keys.iter().enumerate().map(|(n, k)| Envelope::decode(&seal(&ping(n), k).unwrap()).unwrap()).collect();
        let vks: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
        let pairs: Vec<(&Envelope, &VerifyingKey)> = envs.iter().zip(&vks).collect();
        assert!(Envelope::verify_batch(&pairs));
        // One tampered body, or one key that is not the signer, fails the batch.
        let mut bad = envs.clone();
        bad[3].body.push(0xc0);
        let pairs: Vec<(&Envelope, &VerifyingKey)> = bad.iter().zip(&vks).collect();
        assert!(!Envelope::verify_batch(&pairs));
        let mut swapped = vks.clone();
        swapped.swap(0, 1);
        let pairs: Vec<(&Envelope, &VerifyingKey)> = envs.iter().zip(&swapped).collect();
        assert!(!Envelope::verify_batch(&pairs));
    }

    #[test]
    fn open_many_answers_each_message_as_open_would() {
        let keys: Vec<SigningKey> = (0..6).map(|_| generate_key()).collect();
        let vks: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
        let now = crate::time::now_ms();
        let mut wire: Vec<Vec<u8>> = keys
            .iter()
            .enumerate()
            .map(|(n, k)| {
                seal(&Ping { stamp: Stamp::random(Duration::from_secs(60)), text: format!("{n}") }, k).unwrap()
            })
            .collect();
        // 1: a flipped signature bit; 2: signed by another key; 3: garbage; 4: expired.
        let last = wire[1].len() - 1;
        wire[1][last] ^= 1;
        wire[2] = seal(&ping(Duration::from_secs(60)), &keys[0]).unwrap();
        wire[3] = b"not an envelope".to_vec();
        wire[4] = seal(
            &Ping {
                stamp: Stamp { id: "x".into(), issued_at: now - 20_000, expires_at: now - 10_000 },
                text: "old".into(),
            },
            &keys[4],
        )
        .unwrap();
        let items: Vec<(&[u8], &VerifyingKey)> = wire.iter().map(Vec::as_slice).zip(&vks).collect();
        let many: Vec<Result<Ping, OpenError>> = open_many(&items, now);
        for (i, ((bytes, key), got)) in items.iter().zip(&many).enumerate() {
            let one: Result<Ping, OpenError> = open(bytes, key, now);
            assert_eq!(got.as_ref().map_err(ToString::to_string), one.as_ref().map_err(ToString::to_string), "{i}");
        }
        let good: Vec<usize> = many.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(i, _)| i).collect();
        assert_eq!(good, [0, 5]);
        // All good: the batch path.
        let clean: Vec<Vec<u8>> = keys.iter().map(|k| seal(&ping(Duration::from_secs(60)), k).unwrap()).collect();
        let items: Vec<(&[u8], &VerifyingKey)> = clean.iter().map(Vec::as_slice).zip(&vks).collect();
        assert!(open_many::<Ping>(&items, now).iter().all(Result::is_ok));
    }

    fn ping(ttl: Duration) -> Ping {
        Ping { stamp: Stamp::random(ttl), text: "hello".into() }
    }

    #[test]
    fn seal_then_open_round_trips() {
        let key = generate_key();
        let msg = ping(Duration::from_secs(60));
        let bytes = seal(&msg, &key).unwrap();
        let back: Ping = open(&bytes, &key.verifying_key(), crate::time::now_ms()).unwrap();
        assert_eq!(back, msg);
        let opened: Opened<Ping> = open_self_signed(&bytes, crate::time::now_ms()).unwrap();
        assert_eq!(opened.signer, key.verifying_key());
    }

    #[test]
    fn any_flipped_bit_in_the_body_or_signature_is_refused() {
        let key = generate_key();
        let bytes = seal(&ping(Duration::from_secs(60)), &key).unwrap();
        let env = Envelope::decode(&bytes).unwrap();
        for i in 0..env.body.len() {
            let mut bad = env.clone();
            bad.body[i] ^= 0x01;
            assert_eq!(bad.verify_with(&key.verifying_key()), Err(OpenError::BadSignature), "byte {i}");
        }
        let mut bad = env.clone();
        bad.sig[10] ^= 0x80;
        assert_eq!(bad.verify_with(&key.verifying_key()), Err(OpenError::BadSignature));
    }

    #[test]
    fn a_signature_does_not_transfer_to_another_kind() {
        let key = generate_key();
        let bytes = seal(&ping(Duration::from_secs(60)), &key).unwrap();
        let mut env = Envelope::decode(&bytes).unwrap();
        env.kind = Kind::Job;
        assert_eq!(env.verify_with(&key.verifying_key()), Err(OpenError::BadSignature));
    }

    #[test]
    fn wrong_signer_is_refused() {
        let key = generate_key();
        let other = generate_key();
        let bytes = seal(&ping(Duration::from_secs(60)), &other).unwrap();
        let err = open::<Ping>(&bytes, &key.verifying_key(), crate::time::now_ms()).unwrap_err();
        assert!(matches!(err, OpenError::WrongSigner(_)), "{err}");
        // Swapping in the trusted key as signer does not help the forger either.
        let mut env = Envelope::decode(&bytes).unwrap();
        env.signer = key.verifying_key().to_bytes();
        assert_eq!(env.verify_with(&key.verifying_key()), Err(OpenError::BadSignature));
    }

    #[test]
    fn expired_and_future_messages_are_refused() {
        let key = generate_key();
        let msg = ping(Duration::from_secs(5));
        let bytes = seal(&msg, &key).unwrap();
        let later = msg.stamp.expires_at + 1;
        assert_eq!(open::<Ping>(&bytes, &key.verifying_key(), later).unwrap_err(), OpenError::Expired(1));
        let earlier = msg.stamp.issued_at - MAX_CLOCK_SKEW.as_millis() as u64 - 1_000;
        let err = open::<Ping>(&bytes, &key.verifying_key(), earlier).unwrap_err();
        assert!(matches!(err, OpenError::FromTheFuture(_)), "{err}");
        assert!(err.to_string().contains("clock"), "{err}");
    }

    #[test]
    fn absurd_stamps_are_refused() {
        let now = crate::time::now_ms();
        let backwards = Stamp { id: "x".into(), issued_at: now, expires_at: now - 1 };
        assert!(matches!(check_stamp(&backwards, now), Err(OpenError::BadStamp(_))));
        let forever = Stamp { id: "x".into(), issued_at: now, expires_at: u64::MAX };
        assert!(matches!(check_stamp(&forever, now), Err(OpenError::BadStamp(_))));
    }

    #[test]
    fn wrong_kind_is_refused_before_decoding_the_body() {
        let key = generate_key();
        let bytes = seal(&ping(Duration::from_secs(60)), &key).unwrap();
        let err = open::<crate::msg::Job>(&bytes, &key.verifying_key(), crate::time::now_ms()).unwrap_err();
        assert_eq!(err, OpenError::WrongKind { expected: Kind::Job, got: Kind::Event });
    }

    #[test]
    fn garbage_and_oversized_input_is_an_error_not_a_panic() {
        for junk in [&b""[..], b"\xff\xff\xff", b"\x85\xa1v\x01", &[0x93; 64][..]] {
            assert!(Envelope::decode(junk).is_err());
        }
        let big = vec![0u8; MAX_ENVELOPE_BYTES + 1];
        assert!(matches!(Envelope::decode(&big), Err(OpenError::TooLarge { .. })));
        let key = generate_key();
        let bytes = seal(&ping(Duration::from_secs(60)), &key).unwrap();
        for cut in 0..bytes.len() {
            assert!(Envelope::decode(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
    }

    /// Wire bytes of an envelope around `body`, signed by `key` whatever `body` is.
    fn seal_raw(kind: Kind, body: Vec<u8>, key: &SigningKey) -> Vec<u8> {
        let sig = key.sign(&signed_bytes(kind, &body)).to_bytes();
        let env = Envelope { v: ENVELOPE_VERSION, kind, signer: key.verifying_key().to_bytes(), body, sig, tree: None };
        rmp_serde::to_vec_named(&env).unwrap()
    }

    /// An event body whose `data` is `depth` nested one-element arrays.
    fn deep_event_body(depth: usize) -> Vec<u8> {
        let stamp = Stamp::random(Duration::from_secs(60));
        let mut body = rmp_serde::to_vec_named(&crate::msg::Event::new(stamp, "t", Value::Null)).unwrap();
        assert_eq!(body.pop(), Some(0xc0), "data is the last field");
        body.extend(std::iter::repeat_n(0x91, depth));
        body.push(0xc0);
        body
    }

    /// Runs `f` on a thread with a tokio worker's stack (2 MiB), where the master and
    /// the minion decode messages.
    fn on_worker_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new().stack_size(2 << 20).spawn(f).unwrap().join().unwrap()
    }

    #[test]
    fn a_deeply_nested_body_is_refused_not_a_stack_overflow() {
        // Before the shape check, rmp-serde recursed ~1000 levels into this and a debug
        // build aborted on a 2 MiB stack. The signature is good: only the depth is wrong.
        let key = generate_key();
        let bytes = seal_raw(Kind::Event, deep_event_body(100_000), &key);
        let err =
            on_worker_stack(move || open::<crate::msg::Event>(&bytes, &key.verifying_key(), crate::time::now_ms()));
        assert_eq!(err.unwrap_err(), OpenError::TooDeep { max: crate::shape::MAX_DEPTH });
        let msg = OpenError::TooDeep { max: 128 }.to_string();
        assert!(msg.contains("nested more than 128 levels"), "{msg}");
    }

    #[test]
    fn the_deepest_allowed_body_decodes_on_a_worker_stack() {
        let key = generate_key();
        // The body's own map is the first level.
        let bytes = seal_raw(Kind::Event, deep_event_body(crate::shape::MAX_DEPTH - 1), &key);
        let event =
            on_worker_stack(move || open::<crate::msg::Event>(&bytes, &key.verifying_key(), crate::time::now_ms()));
        let mut data = &event.unwrap().data;
        let mut depth = 1;
        while let Value::Array(a) = data {
            data = &a[0];
            depth += 1;
        }
        assert_eq!(depth, crate::shape::MAX_DEPTH);
        let key = generate_key();
        let bytes = seal_raw(Kind::Event, deep_event_body(crate::shape::MAX_DEPTH), &key);
        let err = open::<crate::msg::Event>(&bytes, &key.verifying_key(), crate::time::now_ms()).unwrap_err();
        assert_eq!(err, OpenError::TooDeep { max: crate::shape::MAX_DEPTH });
    }

    #[test]
    fn deep_nesting_in_the_envelope_itself_is_refused_before_decoding() {
        // An unknown field would be skipped by the decoder, recursively.
        let mut bytes = vec![0x81, 0xa1, b'x'];
        bytes.extend(std::iter::repeat_n(0x91, 100_000));
        bytes.push(0xc0);
        let err = on_worker_stack(move || Envelope::decode(&bytes));
        assert_eq!(err.unwrap_err(), OpenError::TooDeep { max: crate::shape::MAX_DEPTH });
    }

    #[test]
    fn a_body_of_millions_of_tiny_values_is_refused() {
        // Three million nils are 3 MB on the wire but would be ~300 MB decoded.
        let stamp = Stamp::random(Duration::from_secs(60));
        let mut body = rmp_serde::to_vec_named(&crate::msg::Event::new(stamp, "t", Value::Null)).unwrap();
        body.pop();
        body.push(0xdd);
        body.extend_from_slice(&3_000_000u32.to_be_bytes());
        body.resize(body.len() + 3_000_000, 0xc0);
        let key = generate_key();
        let bytes = seal_raw(Kind::Event, body, &key);
        let err = open::<crate::msg::Event>(&bytes, &key.verifying_key(), crate::time::now_ms()).unwrap_err();
        assert_eq!(err, OpenError::TooManyValues { max: crate::shape::MAX_VALUES });
    }

    #[test]
    fn seal_refuses_what_receivers_would_refuse() {
        let key = generate_key();
        let mut deep = Value::Null;
        for _ in 0..crate::shape::MAX_DEPTH {
            deep = Value::Array(vec![deep]);
        }
        let event = crate::msg::Event::new(Stamp::random(Duration::from_secs(60)), "t", deep);
        let err = seal(&event, &key).unwrap_err();
        assert!(matches!(err, SealError::Refused(OpenError::TooDeep { .. })), "{err}");
        let big = crate::msg::Event::new(
            Stamp::random(Duration::from_secs(60)),
            "t",
            Value::String("x".repeat(MAX_ENVELOPE_BYTES)),
        );
        let err = seal(&big, &key).unwrap_err();
        assert!(matches!(err, SealError::Refused(OpenError::TooLarge { .. })), "{err}");
        assert!(err.to_string().contains("exceeds the 8388608-byte limit"), "{err}");
    }

    fn pings(n: usize) -> Vec<Ping> {
        (0..n).map(|i| Ping { stamp: Stamp::random(Duration::from_secs(60)), text: format!("ping {i}") }).collect()
    }

    #[test]
    fn every_message_of_a_tree_opens_on_its_own() {
        let key = generate_key();
        let now = crate::time::now_ms();
        for n in [1, 2, 3, 7, 64, 100] {
            let msgs = pings(n);
            let wire: Vec<Vec<u8>> = seal_tree(&msgs, &key).into_iter().map(Result::unwrap).collect();
            for (i, (bytes, msg)) in wire.iter().zip(&msgs).enumerate() {
                let env = Envelope::decode(bytes).unwrap();
                let expected = if n == 1 { ENVELOPE_VERSION } else { TREE_ENVELOPE_VERSION };
                assert_eq!(env.v, expected, "n={n}");
                assert_eq!(env.tree.as_ref().map(|t| (t.index as usize, t.size as usize)), (n > 1).then_some((i, n)));
                assert_eq!(&open::<Ping>(bytes, &key.verifying_key(), now).unwrap(), msg, "n={n} i={i}");
            }
            // One signature for the whole tree.
            let sigs: std::collections::HashSet<[u8; 64]> =
                wire.iter().map(|b| Envelope::decode(b).unwrap().sig).collect();
            assert_eq!(sigs.len(), 1);
        }
    }

    #[test]
    fn a_tree_message_changed_anywhere_is_refused() {
        let key = generate_key();
        let vk = key.verifying_key();
        let wire: Vec<Vec<u8>> = seal_tree(&pings(5), &key).into_iter().map(Result::unwrap).collect();
        let envs: Vec<Envelope> = wire.iter().map(|b| Envelope::decode(b).unwrap()).collect();
        let env = &envs[2];
        for i in 0..env.body.len() {
            let mut bad = env.clone();
            bad.body[i] ^= 0x01;
            assert_eq!(bad.verify_with(&vk), Err(OpenError::BadSignature), "body byte {i}");
        }
        let tree = env.tree.clone().unwrap();
        for i in 0..tree.path.len() {
            let mut bad = env.clone();
            bad.tree.as_mut().unwrap().path[i] ^= 0x01;
            assert_eq!(bad.verify_with(&vk), Err(OpenError::BadSignature), "path byte {i}");
        }
        for (index, size) in [(1, 5), (3, 5), (2, 6), (2, 4), (0, 1)] {
            let mut bad = env.clone();
            bad.tree = Some(TreePosition { index, size, path: tree.path.clone() });
            assert_eq!(bad.verify_with(&vk), Err(OpenError::BadSignature), "at {index} of {size}");
        }
        // Another message's body with this one's position, or its position with this body.
        let mut swapped = env.clone();
        swapped.body = envs[3].body.clone();
        assert_eq!(swapped.verify_with(&vk), Err(OpenError::BadSignature));
        let mut swapped = env.clone();
        swapped.tree = envs[3].tree.clone();
        assert_eq!(swapped.verify_with(&vk), Err(OpenError::BadSignature));
        // The tree signature is not a signature over the body alone, nor the reverse.
        let mut flat = env.clone();
        flat.v = ENVELOPE_VERSION;
        flat.tree = None;
        assert_eq!(flat.verify_with(&vk), Err(OpenError::BadSignature));
        let single = Envelope::decode(&seal(&pings(1)[0], &key).unwrap()).unwrap();
        let mut treed = single.clone();
        treed.v = TREE_ENVELOPE_VERSION;
        treed.tree = Some(TreePosition { index: 0, size: 1, path: Vec::new() });
        assert_eq!(treed.verify_with(&vk), Err(OpenError::BadSignature));
        // Another kind.
        let mut other = env.clone();
        other.kind = Kind::Job;
        assert_eq!(other.verify_with(&vk), Err(OpenError::BadSignature));
    }

    #[test]
    fn tree_positions_that_cannot_fit_are_malformed() {
        let key = generate_key();
        let wire = seal_tree(&pings(3), &key).remove(0).unwrap();
        let env = Envelope::decode(&wire).unwrap();
        let reencode = |e: &Envelope| rmp_serde::to_vec_named(e).unwrap();
        let mut v1_with_tree = env.clone();
        v1_with_tree.v = ENVELOPE_VERSION;
        let mut v2_without = env.clone();
        v2_without.tree = None;
        let mut ragged = env.clone();
        ragged.tree.as_mut().unwrap().path.push(0);
        let mut outside = env.clone();
        outside.tree.as_mut().unwrap().index = 3;
        let mut long = env.clone();
        long.tree.as_mut().unwrap().path = vec![0; 32 * (crate::tree::MAX_PATH + 1)];
        for bad in [v1_with_tree, v2_without, ragged, outside, long] {
            assert!(matches!(Envelope::decode(&reencode(&bad)), Err(OpenError::Malformed(_))), "{bad:?}");
        }
        let mut v3 = env;
        v3.v = 3;
        let err = Envelope::decode(&reencode(&v3)).unwrap_err();
        assert_eq!(err, OpenError::Version(3));
        assert!(err.to_string().contains("speaks 1 and 2"), "{err}");
    }

    #[test]
    fn a_tree_signature_is_checked_once_but_every_message_still_is() {
        let key = generate_key();
        let vk = key.verifying_key();
        let wire: Vec<Vec<u8>> = seal_tree(&pings(10), &key).into_iter().map(Result::unwrap).collect();
        let envs: Vec<Envelope> = wire.iter().map(|b| Envelope::decode(b).unwrap()).collect();
        let mut roots = TreeRoots::default();
        for env in &envs {
            assert_eq!(env.verify_cached(&vk, &mut roots), Ok(()));
        }
        assert_eq!(roots.checked.len(), 1, "one tree, one signature remembered");
        // A changed body leads to another root: checked in full, refused.
        let mut bad = envs[4].clone();
        bad.body[3] ^= 1;
        assert_eq!(bad.verify_cached(&vk, &mut roots), Err(OpenError::BadSignature));
        // The same root with another signature, or under another signer, is not taken on trust.
        let mut resigned = envs[4].clone();
        resigned.sig[0] ^= 1;
        assert_eq!(resigned.verify_cached(&vk, &mut roots), Err(OpenError::BadSignature));
        let rogue = generate_key();
        assert!(matches!(envs[4].verify_cached(&rogue.verifying_key(), &mut roots), Err(OpenError::WrongSigner(_))));
        let mut claimed = envs[4].clone();
        claimed.signer = rogue.verifying_key().to_bytes();
        assert_eq!(claimed.verify_cached(&rogue.verifying_key(), &mut roots), Err(OpenError::BadSignature));
        // Batch verification takes tree messages as well.
        let pairs: Vec<(&Envelope, &VerifyingKey)> = envs.iter().map(|e| (e, &vk)).collect();
        assert!(Envelope::verify_batch(&pairs));
        let mut with_bad: Vec<Envelope> = envs.clone();
        with_bad[7].tree.as_mut().unwrap().index = 8;
        let pairs: Vec<(&Envelope, &VerifyingKey)> = with_bad.iter().map(|e| (e, &vk)).collect();
        assert!(!Envelope::verify_batch(&pairs));
    }

    #[test]
    fn seal_tree_refuses_only_the_messages_receivers_would_refuse() {
        let key = generate_key();
        let mut deep = Value::Null;
        for _ in 0..crate::shape::MAX_DEPTH {
            deep = Value::Array(vec![deep]);
        }
        let stamp = || Stamp::random(Duration::from_secs(60));
        let events = vec![
            crate::msg::Event::new(stamp(), "a", Value::Null),
            crate::msg::Event::new(stamp(), "b", deep),
            crate::msg::Event::new(stamp(), "c", Value::Null),
            crate::msg::Event::new(stamp(), "d", Value::String("x".repeat(MAX_ENVELOPE_BYTES - 200))),
        ];
        let sealed = seal_tree(&events, &key);
        assert!(matches!(sealed[1], Err(SealError::Refused(OpenError::TooDeep { .. }))));
        assert!(matches!(sealed[3], Err(SealError::Refused(OpenError::TooLarge { .. }))));
        let now = crate::time::now_ms();
        for i in [0, 2] {
            let bytes = sealed[i].as_ref().unwrap();
            assert_eq!(open::<crate::msg::Event>(bytes, &key.verifying_key(), now).unwrap(), events[i]);
        }
    }

    #[test]
    fn random_ids_are_unique() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| random_id()).collect();
        assert_eq!(ids.len(), 1000);
        let mut many: Vec<String> = (0..10).flat_map(|_| random_ids(100)).collect();
        many.extend(ids);
        assert!(many.iter().all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())), "{many:?}");
        let distinct: std::collections::HashSet<_> = many.iter().collect();
        assert_eq!(distinct.len(), 2000);
        assert_eq!(hex_id(0x0123_4567_89ab_cdef_0011_2233_4455_6677), "0123456789abcdef0011223344556677");
    }
}
