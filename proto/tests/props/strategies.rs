//! Generators of arbitrary protocol values: every message type with arbitrary field
//! values, and MessagePack that is well formed but shaped only roughly like a message.

use brine_proto::envelope::{seal, Message, Stamp};
use brine_proto::msg::*;
use brine_proto::{Jid, Map, MinionId, Target, Value};
use ed25519_dalek::SigningKey;
use proptest::collection::vec;
use proptest::prelude::*;

/// The moment every generated message is issued at and opened at.
pub const NOW: u64 = 1_700_000_000_000;

/// Any JSON value, a few levels deep.
pub fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter_map("JSON has no NaN or infinity", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            vec((any::<String>(), inner), 0..5).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

pub fn map() -> impl Strategy<Value = Map> {
    vec((any::<String>(), value()), 0..4).prop_map(|kv| kv.into_iter().collect())
}

pub fn minion_id() -> impl Strategy<Value = MinionId> {
    "[A-Za-z0-9_@:+][A-Za-z0-9._@:+-]{0,40}".prop_map(|s| MinionId::new(s).expect("the pattern makes valid ids"))
}

/// JIDs of years 1970 to 9999, the ones with 20 digits.
pub fn jid() -> impl Strategy<Value = Jid> {
    (0u64..=253_402_300_799_999_999).prop_map(Jid::from_micros)
}

pub fn target() -> impl Strategy<Value = Target> {
    let s = any::<String>;
    prop_oneof![
        s().prop_map(Target::Glob),
        vec(s(), 0..4).prop_map(Target::List),
        s().prop_map(Target::Pcre),
        s().prop_map(Target::Grain),
        s().prop_map(Target::GrainPcre),
        s().prop_map(Target::Pillar),
        s().prop_map(Target::PillarPcre),
        s().prop_map(Target::Cidr),
        s().prop_map(Target::Nodegroup),
        s().prop_map(Target::Compound),
    ]
}

/// A stamp valid at [`NOW`]: issued up to the allowed clock skew before or after it,
/// expiring at or after it, within the longest validity.
pub fn stamp() -> impl Strategy<Value = Stamp> {
    let skew = brine_proto::envelope::MAX_CLOCK_SKEW.as_millis() as u64;
    let longest = brine_proto::envelope::MAX_TTL.as_millis() as u64;
    (any::<String>(), NOW - skew..=NOW + skew, 0..=longest - skew).prop_map(|(id, issued_at, left)| Stamp {
        id,
        issued_at,
        expires_at: issued_at.max(NOW) + left,
    })
}

fn key_status() -> impl Strategy<Value = KeyStatus> {
    prop_oneof![Just(KeyStatus::Pending), Just(KeyStatus::Accepted), Just(KeyStatus::Rejected), Just(KeyStatus::Denied)]
}

fn enroll_request() -> impl Strategy<Value = EnrollRequest> {
    (stamp(), minion_id(), any::<[u8; 32]>(), any::<String>()).prop_map(|(stamp, id, key, version)| EnrollRequest {
        stamp,
        id,
        key,
        version,
    })
}

fn enroll_reply() -> impl Strategy<Value = EnrollReply> {
    (stamp(), any::<String>(), minion_id(), key_status(), any::<Option<Vec<u8>>>())
        .prop_map(|(stamp, request, id, status, tls_ca)| EnrollReply { stamp, request, id, status, tls_ca })
}

fn job() -> impl Strategy<Value = Job> {
    (stamp(), jid(), target(), any::<String>(), vec(value(), 0..3), map(), any::<String>(), any::<bool>()).prop_map(
        |(stamp, jid, target, fun, arg, kwarg, user, queued)| Job { stamp, jid, target, fun, arg, kwarg, user, queued },
    )
}

fn ret() -> impl Strategy<Value = Return> {
    (stamp(), jid(), minion_id(), any::<String>(), value(), any::<i32>(), any::<bool>(), any::<u64>(), any::<u64>())
        .prop_map(|(stamp, jid, id, fun, ret, retcode, success, started_at, duration_ms)| Return {
            stamp,
            jid,
            id,
            fun,
            ret,
            retcode,
            success,
            started_at,
            duration_ms,
            schedule: None,
        })
}

fn presence() -> impl Strategy<Value = Presence> {
    (stamp(), minion_id(), any::<String>(), any::<u64>(), vec(jid(), 0..3))
        .prop_map(|(stamp, id, version, started_at, running)| Presence { stamp, id, version, started_at, running })
}

fn event() -> impl Strategy<Value = Event> {
    (stamp(), any::<String>(), value(), proptest::option::of(jid()), any::<u32>()).prop_map(
        |(stamp, tag, data, jid, depth)| {
            let mut event = Event::new(stamp, tag, data);
            event.jid = jid;
            event.depth = depth;
            event
        },
    )
}

fn key_selection() -> impl Strategy<Value = KeySelection> {
    (vec(any::<String>(), 0..3), any::<[bool; 4]>()).prop_map(|(ids, [all, rejected, denied, accepted])| KeySelection {
        ids,
        all,
        include_rejected: rejected,
        include_denied: denied,
        include_accepted: accepted,
    })
}

fn run_request() -> impl Strategy<Value = RunRequest> {
    (target(), any::<String>(), vec(value(), 0..3), map(), any::<Option<String>>(), any::<Option<u64>>()).prop_map(
        |(target, fun, arg, kwarg, stream_to, queue_ttl_ms)| RunRequest {
            target,
            fun,
            arg,
            kwarg,
            stream_to,
            queue_ttl_ms,
        },
    )
}

fn ctl_op() -> impl Strategy<Value = CtlOp> {
    prop_oneof![
        run_request().prop_map(CtlOp::Run),
        Just(CtlOp::KeyList),
        key_selection().prop_map(CtlOp::KeyAccept),
        key_selection().prop_map(CtlOp::KeyReject),
        key_selection().prop_map(CtlOp::KeyDelete),
        key_selection().prop_map(CtlOp::KeyFinger),
        jid().prop_map(|jid| CtlOp::JobShow { jid }),
        (any::<usize>(), any::<Option<String>>(), any::<Option<String>>(), any::<Option<u64>>())
            .prop_map(|(limit, fun, target, since_ms)| CtlOp::JobList(JobFilter { limit, fun, target, since_ms })),
        Just(CtlOp::JobActive),
        target().prop_map(|target| CtlOp::Resolve { target }),
        Just(CtlOp::MinionList),
        (target(), vec(any::<String>(), 0..3)).prop_map(|(target, grains)| CtlOp::Inventory { target, grains }),
        (any::<String>(), value()).prop_map(|(tag, data)| CtlOp::EventSend { tag, data }),
        any::<usize>().prop_map(|limit| CtlOp::ReactorHistory { limit }),
        (
            any::<usize>(),
            any::<Option<String>>(),
            any::<Option<String>>(),
            any::<Option<u64>>(),
            any::<Option<String>>()
        )
            .prop_map(|(limit, user, minion, since_ms, grep)| CtlOp::AuditQuery(AuditFilter {
                limit,
                user,
                minion,
                since_ms,
                grep
            })),
        (vec(any::<String>(), 0..2), any::<Option<String>>(), any::<Option<String>>(), map(), any::<bool>()).prop_map(
            |(sls, text, saltenv, pillar, test)| CtlOp::Orchestrate(OrchestrateRequest {
                sls,
                text,
                saltenv,
                pillar,
                test,
                stream_to: None,
            })
        ),
        (jid(), prop_oneof![Just(JobAction::Pause), Just(JobAction::Resume), Just(JobAction::Kill)])
            .prop_map(|(jid, action)| CtlOp::JobControl { jid, action }),
    ]
}

fn ctl() -> impl Strategy<Value = Ctl> {
    (stamp(), ctl_op()).prop_map(|(stamp, op)| Ctl { stamp, op })
}

fn counts() -> impl Strategy<Value = JobCounts> {
    any::<[u64; 4]>().prop_map(|[targeted, returned, succeeded, failed]| JobCounts {
        targeted,
        returned,
        succeeded,
        failed,
    })
}

fn summary() -> impl Strategy<Value = JobSummary> {
    (jid(), target(), any::<String>(), any::<String>(), any::<u64>(), counts()).prop_map(
        |(jid, target, fun, user, started_at, counts)| JobSummary { jid, target, fun, user, started_at, counts },
    )
}

fn key_entry() -> impl Strategy<Value = KeyEntry> {
    (minion_id(), key_status(), any::<[u8; 32]>()).prop_map(|(id, status, key)| KeyEntry { id, status, key })
}

fn job_report() -> impl Strategy<Value = JobReport> {
    let record = (
        jid(),
        target(),
        any::<String>(),
        vec(value(), 0..2),
        map(),
        any::<String>(),
        vec(minion_id(), 0..3),
        any::<u64>(),
    )
        .prop_map(|(jid, target, fun, arg, kwarg, user, minions, started_at)| JobRecord {
            jid,
            target,
            fun,
            arg,
            kwarg,
            user,
            minions,
            started_at,
        });
    (record, counts(), vec(ret(), 0..2)).prop_map(|(job, counts, returns)| JobReport { job, counts, returns })
}

fn ctl_result() -> impl Strategy<Value = CtlResult> {
    let error_kind = prop_oneof![
        Just(CtlErrorKind::Denied),
        Just(CtlErrorKind::BadRequest),
        Just(CtlErrorKind::NoMatch),
        Just(CtlErrorKind::UnknownFunction),
        Just(CtlErrorKind::NotFound),
        Just(CtlErrorKind::Internal),
    ];
    let ids = || vec(minion_id(), 0..3);
    prop_oneof![
        (error_kind, any::<String>()).prop_map(|(kind, message)| CtlResult::Error(CtlError { kind, message })),
        (jid(), ids(), ids(), vec(any::<String>(), 0..2)).prop_map(|(jid, minions, offline, missing)| {
            CtlResult::RunStarted(RunStarted { jid, minions, offline, missing })
        }),
        vec(ret(), 0..3).prop_map(CtlResult::Returns),
        (
            vec(key_entry(), 0..2),
            vec(key_entry(), 0..2),
            vec(key_entry(), 0..2),
            vec(key_entry(), 0..2),
            any::<[u8; 32]>()
        )
            .prop_map(|(accepted, pending, rejected, denied, master)| CtlResult::Keys(KeyListing {
                accepted,
                pending,
                rejected,
                denied,
                master
            })),
        vec(key_entry(), 0..3).prop_map(CtlResult::KeysChanged),
        job_report().prop_map(|r| CtlResult::Job(Box::new(r))),
        vec(summary(), 0..3).prop_map(CtlResult::Jobs),
        vec((summary(), ids()), 0..2).prop_map(|a| CtlResult::Active(
            a.into_iter().map(|(summary, running)| ActiveJob { summary, running }).collect()
        )),
        ids().prop_map(CtlResult::Minions),
        vec((minion_id(), any::<bool>(), any::<Option<u64>>(), any::<Option<String>>(), any::<Option<String>>()), 0..3)
            .prop_map(|m| CtlResult::MinionStatus(
                m.into_iter()
                    .map(|(id, up, last_seen_ms, version, os)| MinionInfo { id, up, last_seen_ms, version, os })
                    .collect()
            )),
        vec((minion_id(), map()), 0..3).prop_map(CtlResult::Inventory),
        vec(value(), 0..3).prop_map(CtlResult::Audit),
        any::<String>().prop_map(CtlResult::JobControlled),
        any::<String>().prop_map(|tag| CtlResult::EventSent { tag }),
        vec(reaction(), 0..3).prop_map(CtlResult::Reactions),
    ]
}

fn reaction() -> impl Strategy<Value = ReactionRecord> {
    (any::<u64>(), any::<String>(), any::<String>(), any::<u32>(), any::<String>(), vec(jid(), 0..2), any::<bool>())
        .prop_map(|(at_ms, tag, source, depth, file, jids, ok)| ReactionRecord {
            at_ms,
            tag,
            source,
            depth,
            name: file.clone(),
            function: "local.test.ping".into(),
            file,
            jids,
            ok,
            result: String::new(),
        })
}

fn ctl_reply() -> impl Strategy<Value = CtlReply> {
    (stamp(), any::<String>(), ctl_result()).prop_map(|(stamp, request, result)| CtlReply { stamp, request, result })
}

fn rpc() -> impl Strategy<Value = Rpc> {
    (stamp(), minion_id(), map()).prop_map(|(stamp, id, grains)| Rpc { stamp, id, call: RpcCall::PutGrains { grains } })
}

fn rpc_reply() -> impl Strategy<Value = RpcReply> {
    let result = prop_oneof![Just(RpcResult::Ok), any::<String>().prop_map(RpcResult::Error)];
    (stamp(), any::<String>(), result).prop_map(|(stamp, request, result)| RpcReply { stamp, request, result })
}

/// Calls `$body` with `$M` bound to every message type in turn.
#[macro_export]
macro_rules! for_every_message_type {
    ($M:ident => $body:expr) => {{
        use brine_proto::msg::*;
        {
            type $M = EnrollRequest;
            $body
        }
        {
            type $M = EnrollReply;
            $body
        }
        {
            type $M = Job;
            $body
        }
        {
            type $M = Return;
            $body
        }
        {
            type $M = Presence;
            $body
        }
        {
            type $M = Event;
            $body
        }
        {
            type $M = Ctl;
            $body
        }
        {
            type $M = CtlReply;
            $body
        }
        {
            type $M = Rpc;
            $body
        }
        {
            type $M = RpcReply;
            $body
        }
    }};
}

/// One message of any type.
#[derive(Debug, Clone)]
pub enum AnyMessage {
    EnrollRequest(EnrollRequest),
    EnrollReply(EnrollReply),
    Job(Job),
    Return(Return),
    Presence(Presence),
    Event(Event),
    Ctl(Ctl),
    CtlReply(CtlReply),
    Rpc(Rpc),
    RpcReply(RpcReply),
}

/// What opening wire bytes as the type of an [`AnyMessage`] gave.
pub type Reopened = Result<(AnyMessage, ed25519_dalek::VerifyingKey), brine_proto::OpenError>;

macro_rules! dispatch {
    ($self:expr, $m:ident => $body:expr) => {
        match $self {
            AnyMessage::EnrollRequest($m) => $body,
            AnyMessage::EnrollReply($m) => $body,
            AnyMessage::Job($m) => $body,
            AnyMessage::Return($m) => $body,
            AnyMessage::Presence($m) => $body,
            AnyMessage::Event($m) => $body,
            AnyMessage::Ctl($m) => $body,
            AnyMessage::CtlReply($m) => $body,
            AnyMessage::Rpc($m) => $body,
            AnyMessage::RpcReply($m) => $body,
        }
    };
}

impl AnyMessage {
    pub fn seal(&self, key: &SigningKey) -> Vec<u8> {
        dispatch!(self, m => seal(m, key).expect("generated messages are small enough to seal"))
    }

    /// Opens `bytes` (self-signed) as this message's type, at [`NOW`].
    pub fn open_same_type(&self, bytes: &[u8]) -> Reopened {
        fn open<M: Message>(bytes: &[u8], wrap: fn(M) -> AnyMessage) -> Reopened {
            brine_proto::envelope::open_self_signed::<M>(bytes, NOW).map(|o| (wrap(o.msg), o.signer))
        }
        match self {
            AnyMessage::EnrollRequest(_) => open(bytes, AnyMessage::EnrollRequest),
            AnyMessage::EnrollReply(_) => open(bytes, AnyMessage::EnrollReply),
            AnyMessage::Job(_) => open(bytes, AnyMessage::Job),
            AnyMessage::Return(_) => open(bytes, AnyMessage::Return),
            AnyMessage::Presence(_) => open(bytes, AnyMessage::Presence),
            AnyMessage::Event(_) => open(bytes, AnyMessage::Event),
            AnyMessage::Ctl(_) => open(bytes, AnyMessage::Ctl),
            AnyMessage::CtlReply(_) => open(bytes, AnyMessage::CtlReply),
            AnyMessage::Rpc(_) => open(bytes, AnyMessage::Rpc),
            AnyMessage::RpcReply(_) => open(bytes, AnyMessage::RpcReply),
        }
    }

    /// Opens `bytes` as this message's type with `key` as the trusted sender.
    pub fn open_trusted(&self, bytes: &[u8], key: &ed25519_dalek::VerifyingKey) -> Result<(), brine_proto::OpenError> {
        fn open_like<M: Message>(
            _: &M,
            bytes: &[u8],
            key: &ed25519_dalek::VerifyingKey,
        ) -> Result<(), brine_proto::OpenError> {
            brine_proto::envelope::open::<M>(bytes, key, NOW).map(|_| ())
        }
        dispatch!(self, m => open_like(m, bytes, key))
    }
}

impl PartialEq for AnyMessage {
    fn eq(&self, other: &Self) -> bool {
        // Compared through MessagePack-free JSON, since the variants' types differ.
        fn json(m: &AnyMessage) -> (std::mem::Discriminant<AnyMessage>, Value) {
            (std::mem::discriminant(m), dispatch!(m, x => serde_json::to_value(x).expect("serializable")))
        }
        json(self) == json(other)
    }
}

pub fn any_message() -> impl Strategy<Value = AnyMessage> {
    prop_oneof![
        enroll_request().prop_map(AnyMessage::EnrollRequest),
        enroll_reply().prop_map(AnyMessage::EnrollReply),
        job().prop_map(AnyMessage::Job),
        ret().prop_map(AnyMessage::Return),
        presence().prop_map(AnyMessage::Presence),
        event().prop_map(AnyMessage::Event),
        ctl().prop_map(AnyMessage::Ctl),
        ctl_reply().prop_map(AnyMessage::CtlReply),
        rpc().prop_map(AnyMessage::Rpc),
        rpc_reply().prop_map(AnyMessage::RpcReply),
    ]
}

/// Field names and enum tags of the wire types: maps keyed by them reach deeper into
/// the decoders than random keys do.
const WIRE_WORDS: &[&str] = &[
    "stamp",
    "id",
    "issued_at",
    "expires_at",
    "key",
    "version",
    "request",
    "status",
    "pending",
    "accepted",
    "jid",
    "target",
    "glob",
    "list",
    "pcre",
    "grain",
    "compound",
    "nodegroup",
    "fun",
    "arg",
    "kwarg",
    "user",
    "queued",
    "return",
    "retcode",
    "success",
    "started_at",
    "duration_ms",
    "running",
    "tag",
    "data",
    "op",
    "run",
    "key_list",
    "key_accept",
    "job_show",
    "job_list",
    "resolve",
    "inventory",
    "grains",
    "limit",
    "result",
    "error",
    "kind",
    "message",
    "returns",
    "keys",
    "minions",
    "call",
    "put_grains",
    "ok",
    "tls_ca",
    "v",
    "signer",
    "body",
    "sig",
];

/// MessagePack of a value shaped roughly like a message: maps keyed by wire field
/// names, scalars of every kind, raw binary.
pub fn message_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![4 => prop::sample::select(WIRE_WORDS).prop_map(str::to_string), 1 => any::<String>()];
    let leaf = prop_oneof![
        value(),
        "[0-9]{20}".prop_map(Value::String),
        prop::sample::select(WIRE_WORDS).prop_map(|w| Value::String(w.to_string())),
        (NOW - 1000..NOW + 1000).prop_map(Value::from),
    ];
    let tree = leaf.prop_recursive(5, 48, 8, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((key.clone(), inner), 0..8).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    });
    tree.prop_map(|v| rmp_serde::to_vec_named(&v).expect("values encode"))
}

/// A signing key from 32 arbitrary bytes.
pub fn signing_key() -> impl Strategy<Value = SigningKey> {
    any::<[u8; 32]>().prop_map(|seed| SigningKey::from_bytes(&seed))
}
