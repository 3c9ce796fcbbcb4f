//! Message bodies. Each is sealed in an [`Envelope`](crate::Envelope) of its
//! [`Kind`]; fields are named on the wire so peers of different versions can add
//! fields without breaking each other (unknown fields are ignored, new ones default).

use crate::envelope::{Kind, Message, Stamp};
use crate::id::MinionId;
use crate::jid::Jid;
use crate::target::Target;
use crate::{Map, Value};
use serde::{Deserialize, Serialize};

macro_rules! message {
    ($ty:ty, $kind:expr) => {
        impl Message for $ty {
            const KIND: Kind = $kind;
            fn stamp(&self) -> &Stamp {
                &self.stamp
            }
        }
    };
}

/// A minion asking to be let in: sent to `P.enroll`, signed with the key it presents,
/// which proves the minion holds that key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub stamp: Stamp,
    /// The id the minion claims.
    pub id: MinionId,
    /// The minion's public key; must equal the envelope's signer.
    #[serde(with = "serde_bytes")]
    pub key: [u8; 32],
    /// The minion's brine version.
    #[serde(default)]
    pub version: String,
}
message!(EnrollRequest, Kind::Enroll);

/// Where a minion's key stands with the master, as `brine key list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Seen, awaiting an operator's decision.
    Pending,
    /// Trusted: the minion may connect and receive jobs.
    Accepted,
    /// Refused by an operator.
    Rejected,
    /// Presented for an id that already has another key; never silently trusted.
    Denied,
}

impl KeyStatus {
    /// The word used in listings and events.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Pending => "pending",
            KeyStatus::Accepted => "accepted",
            KeyStatus::Rejected => "rejected",
            KeyStatus::Denied => "denied",
        }
    }
}

/// The master's answer to an enrollment request, signed by the master. The minion
/// pins the signer's key on first contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollReply {
    pub stamp: Stamp,
    /// The stamp id of the request this answers, so a reply cannot be replayed to
    /// another request.
    pub request: String,
    pub id: MinionId,
    pub status: KeyStatus,
    /// The CA (DER) of the master's NATS server certificate, when it serves TLS: the
    /// minion trusts it because the master signed this answer.
    #[serde(default, with = "serde_bytes")]
    pub tls_ca: Option<Vec<u8>>,
}
message!(EnrollReply, Kind::EnrollReply);

/// A job for one or more minions, published once per targeted minion on
/// `P.job.<minion>.<jid>`. The stamp id is the JID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub stamp: Stamp,
    pub jid: Jid,
    /// The target as the operator wrote it; each minion re-checks it matches.
    pub target: Target,
    /// `module.function`.
    pub fun: String,
    #[serde(default)]
    pub arg: Vec<Value>,
    #[serde(default)]
    pub kwarg: Map,
    /// The operator who asked for it.
    #[serde(default)]
    pub user: String,
    /// A copy also waits in the minion's job queue (`--queue`): a minion that gets
    /// the job live drains its queue so the copy does not linger.
    #[serde(default)]
    pub queued: bool,
}
message!(Job, Kind::Job);

/// What the master answers a return handed to it directly (`P.dret.<minion>.<jid>`)
/// once it is durable (stored, or dropped and counted as one that would fail again):
/// the minion may then forget it. Anything else — no answer in time, no master
/// listening — and the minion sends it through the returns stream instead.
pub const RETURN_STORED: &[u8] = b"+stored";

/// A minion's result for one job, published on `P.ret.<minion>.<jid>` and signed by
/// the minion. The stamp id is the JID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Return {
    pub stamp: Stamp,
    pub jid: Jid,
    /// The minion that ran the job.
    pub id: MinionId,
    pub fun: String,
    /// What the function returned (`return` in Salt's job cache).
    #[serde(rename = "return")]
    pub ret: Value,
    /// 0 on success; the command's exit status for `cmd.*`; 1 for other failures.
    pub retcode: i32,
    pub success: bool,
    /// Unix milliseconds when the minion started the job.
    pub started_at: u64,
    pub duration_ms: u64,
    /// Set when the minion ran the function on its own schedule, not for a job of the
    /// master: the JID is then the minion's own, and the master records a job for it
    /// (user `schedule`, targeting that minion only) under a JID the master issues.
    /// (Boxed: most returns have none, and a `Return` travels inside enums.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Box<ScheduledRun>>,
}
message!(Return, Kind::Return);

/// What a minion's schedule ran: the entry's name and the call's arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledRun {
    /// The schedule entry's name.
    pub name: String,
    #[serde(default)]
    pub arg: Vec<Value>,
    #[serde(default)]
    pub kwarg: Map,
}

/// A minion's heartbeat on `P.presence.<minion>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    pub stamp: Stamp,
    pub id: MinionId,
    pub version: String,
    /// Unix milliseconds when the minion process started.
    pub started_at: u64,
    /// JIDs the minion is running now.
    #[serde(default)]
    pub running: Vec<Jid>,
}
message!(Presence, Kind::Presence);

/// An event on the bus, `P.event.<source>.<tag…>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub stamp: Stamp,
    /// Slash-separated tag, e.g. `brine/key/accept`.
    pub tag: String,
    #[serde(default)]
    pub data: Value,
    /// The job during which a minion fired this event (`event.send` in a job), so
    /// the reactor can tell events its own jobs caused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jid: Option<Jid>,
    /// How many reactions led to this event: 0 for an event nothing reacted to, n+1
    /// for what a reaction to an event of depth n caused (the reactor's loop guard).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub depth: u32,
}
message!(Event, Kind::Event);

impl Event {
    /// An event with no causation marker.
    pub fn new(stamp: Stamp, tag: impl Into<String>, data: Value) -> Event {
        Event { stamp, tag: tag.into(), data, jid: None, depth: 0 }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An operator request to the master on `P.ctl.<op>`, signed by the operator's key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ctl {
    pub stamp: Stamp,
    pub op: CtlOp,
}
message!(Ctl, Kind::Ctl);

/// What an operator asks the master to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CtlOp {
    /// Publish a job.
    Run(RunRequest),
    /// List keys by status.
    KeyList,
    /// Accept keys: pending ones matching `ids` (globs), or all pending with `all`.
    KeyAccept(KeySelection),
    /// Reject keys.
    KeyReject(KeySelection),
    /// Delete keys (the minion is disconnected and may enroll again).
    KeyDelete(KeySelection),
    /// Fingerprints of the keys matching `ids` (all keys if empty), and the master's.
    KeyFinger(KeySelection),
    /// One job with its returns.
    JobShow { jid: Jid },
    /// The newest jobs matching a filter, newest first.
    JobList(JobFilter),
    /// Jobs with minions still running them or still to return.
    JobActive,
    /// The accepted minions matching a target, without running anything.
    Resolve { target: Target },
    /// Every accepted minion with its presence.
    MinionList,
    /// Cached grains of the minions matching a target.
    Inventory { target: Target, grains: Vec<String> },
    /// Emit an event, signed by the master, on `P.event.master.<tag>`.
    EventSend { tag: String, data: Value },
    /// The newest reactions the reactor ran, newest first.
    ReactorHistory { limit: usize },
    /// Run an orchestration on the master (`brine orchestrate`).
    Orchestrate(OrchestrateRequest),
    /// Pause, resume or abort a running orchestration.
    JobControl { jid: Jid, action: JobAction },
    /// Lines of the master's audit log (`brine audit`).
    AuditQuery(AuditFilter),
}

/// Which audit log lines `brine audit` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// At most this many (the newest), oldest first.
    pub limit: usize,
    /// Only lines of this operator or shell user (a glob).
    #[serde(default)]
    pub user: Option<String>,
    /// Only shell commands typed on, and jobs that targeted, these minions (a glob).
    #[serde(default)]
    pub minion: Option<String>,
    /// Only lines recorded at or after this Unix millisecond.
    #[serde(default)]
    pub since_ms: Option<u64>,
    /// Only lines containing this text (any case).
    #[serde(default)]
    pub grep: Option<String>,
}

/// `brine orchestrate`: which file, with what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrchestrateRequest {
    /// SLS names in the master's `file_roots` (`orch.deploy`); with `text`, the name the
    /// text goes by.
    pub sls: Vec<String>,
    /// The file's text, when the operator gave a file rather than an SLS name.
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub saltenv: Option<String>,
    /// Pillar for rendering the file.
    #[serde(default)]
    pub pillar: Map,
    /// Test mode: predict, run no function, apply states with test=True.
    #[serde(default)]
    pub test: bool,
    /// Subject (in the operator's inbox) the master sends the orchestration's return
    /// to when it ends.
    #[serde(default)]
    pub stream_to: Option<String>,
}

/// What `brine job pause|resume|kill` asks of an orchestration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobAction {
    /// Let the running step finish, start no other until resumed.
    Pause,
    Resume,
    /// Stop the running step (its job is killed) and start nothing more.
    Kill,
}

/// Which jobs `brine job list` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobFilter {
    /// At most this many (newest first).
    pub limit: usize,
    /// Only jobs of functions matching this glob.
    #[serde(default)]
    pub fun: Option<String>,
    /// Only jobs whose target, as written, matches this glob.
    #[serde(default)]
    pub target: Option<String>,
    /// Only jobs started at or after this Unix millisecond.
    #[serde(default)]
    pub since_ms: Option<u64>,
}

impl CtlOp {
    /// The subject suffix (`P.ctl.<op>`) for this request.
    pub fn name(&self) -> &'static str {
        match self {
            CtlOp::Run(_) => "run",
            CtlOp::KeyList => "key.list",
            CtlOp::KeyAccept(_) => "key.accept",
            CtlOp::KeyReject(_) => "key.reject",
            CtlOp::KeyDelete(_) => "key.delete",
            CtlOp::KeyFinger(_) => "key.finger",
            CtlOp::JobShow { .. } => "job.show",
            CtlOp::JobList(_) => "job.list",
            CtlOp::JobActive => "job.active",
            CtlOp::Resolve { .. } => "resolve",
            CtlOp::MinionList => "minion.list",
            CtlOp::Inventory { .. } => "inventory",
            CtlOp::EventSend { .. } => "event.send",
            CtlOp::ReactorHistory { .. } => "reactor.history",
            CtlOp::Orchestrate(_) => "orchestrate",
            CtlOp::JobControl { .. } => "job.control",
            CtlOp::AuditQuery(_) => "audit.query",
        }
    }
}

/// Which keys a key operation applies to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeySelection {
    /// Ids or globs.
    #[serde(default)]
    pub ids: Vec<String>,
    /// Every key the operation can apply to.
    #[serde(default)]
    pub all: bool,
    /// Also act on rejected keys (accept only).
    #[serde(default)]
    pub include_rejected: bool,
    /// Also act on denied keys; accepting a denied key replaces the id's old key.
    #[serde(default)]
    pub include_denied: bool,
    /// Also act on accepted keys (reject only).
    #[serde(default)]
    pub include_accepted: bool,
}

/// A request to run a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    pub target: Target,
    pub fun: String,
    #[serde(default)]
    pub arg: Vec<Value>,
    #[serde(default)]
    pub kwarg: Map,
    /// Subject the master streams verified returns to, if the operator waits for them.
    #[serde(default)]
    pub stream_to: Option<String>,
    /// Queue the job for minions that are offline: it reaches them when they come
    /// back, if that is within this many milliseconds.
    #[serde(default)]
    pub queue_ttl_ms: Option<u64>,
}

/// The master's answer to a [`Ctl`], signed by the master. Returns of a running job
/// arrive as further replies on the request's `stream_to` subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtlReply {
    pub stamp: Stamp,
    /// The stamp id of the request this answers.
    pub request: String,
    pub result: CtlResult,
}
message!(CtlReply, Kind::CtlReply);

/// The outcome of an operator request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CtlResult {
    /// The request was refused or failed.
    Error(CtlError),
    /// A job was published.
    RunStarted(RunStarted),
    /// Verified returns of a job, as they arrive.
    Returns(Vec<Return>),
    /// Keys by status.
    Keys(KeyListing),
    /// The keys a key operation changed, with their new status.
    KeysChanged(Vec<KeyEntry>),
    /// One job.
    Job(Box<JobReport>),
    /// A list of jobs.
    Jobs(Vec<JobSummary>),
    /// Jobs still running somewhere.
    Active(Vec<ActiveJob>),
    /// Minion ids (a resolved target).
    Minions(Vec<MinionId>),
    /// Accepted minions and their presence.
    MinionStatus(Vec<MinionInfo>),
    /// Grains by minion.
    Inventory(Vec<(MinionId, Map)>),
    /// An event was published with this tag.
    EventSent { tag: String },
    /// Reactions the reactor ran, newest first.
    Reactions(Vec<ReactionRecord>),
    /// Audit log lines (JSON documents as written), oldest first.
    Audit(Vec<Value>),
    /// What a running orchestration does now, in words (`brine job pause|resume|kill`).
    JobControlled(String),
}

/// One reaction the reactor ran (or refused to run), as kept in the master's store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReactionRecord {
    /// Unix milliseconds when the reaction ran.
    pub at_ms: u64,
    /// The tag of the event that triggered it.
    pub tag: String,
    /// Who published that event: `master` or a minion id.
    pub source: String,
    /// The event's reaction depth (see [`Event::depth`]).
    pub depth: u32,
    /// The reaction file.
    pub file: String,
    /// The entry's id in the rendered file (empty for a file that failed to render).
    pub name: String,
    /// What the entry does: `local.cmd.run`, `runner.state.orchestrate`, `event.send`, ….
    pub function: String,
    /// Jobs the reaction started.
    #[serde(default)]
    pub jids: Vec<Jid>,
    /// Whether it did what it says.
    pub ok: bool,
    /// What happened, in words (the error, for a failed reaction).
    pub result: String,
}

/// A line of `brine job active`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveJob {
    pub summary: JobSummary,
    /// Minions whose last heartbeat says they run it.
    pub running: Vec<MinionId>,
}

/// A line of `brine minion list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinionInfo {
    pub id: MinionId,
    /// A heartbeat arrived within the master's presence timeout.
    pub up: bool,
    /// Milliseconds since the last heartbeat, if any arrived since the master started.
    pub last_seen_ms: Option<u64>,
    /// The brine version from the last heartbeat.
    pub version: Option<String>,
    /// The `os` and `osrelease` grains, if cached.
    pub os: Option<String>,
}

/// What kind of refusal or failure a [`CtlError`] is; the CLI maps it to an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CtlErrorKind {
    /// The operator may not do this.
    Denied,
    /// The request is malformed (bad target, bad argument).
    BadRequest,
    /// The target matched no accepted minion.
    NoMatch,
    /// No such function.
    UnknownFunction,
    /// No such job or key.
    NotFound,
    /// The master failed (store, NATS).
    Internal,
}

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtlError {
    pub kind: CtlErrorKind,
    pub message: String,
}

/// A published job: its JID and the minions it went to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStarted {
    pub jid: Jid,
    /// Every targeted minion.
    pub minions: Vec<MinionId>,
    /// Targeted minions with no recent heartbeat.
    #[serde(default)]
    pub offline: Vec<MinionId>,
    /// Ids named in a list target that have no accepted key: nothing was sent to them.
    #[serde(default)]
    pub missing: Vec<String>,
}

/// One key in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyEntry {
    pub id: MinionId,
    pub status: KeyStatus,
    #[serde(with = "serde_bytes")]
    pub key: [u8; 32],
}

/// Every key the master knows, by status, each sorted by id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyListing {
    pub accepted: Vec<KeyEntry>,
    pub pending: Vec<KeyEntry>,
    pub rejected: Vec<KeyEntry>,
    pub denied: Vec<KeyEntry>,
    /// The master's own public key.
    #[serde(with = "serde_bytes")]
    pub master: [u8; 32],
}

/// A job as stored in the job cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub jid: Jid,
    pub target: Target,
    pub fun: String,
    #[serde(default)]
    pub arg: Vec<Value>,
    #[serde(default)]
    pub kwarg: Map,
    pub user: String,
    /// Every targeted minion.
    pub minions: Vec<MinionId>,
    /// Unix milliseconds when the job was published.
    pub started_at: u64,
}

/// The running totals of a job, kept current as returns arrive so that a job on
/// thousands of minions is read without loading its returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCounts {
    pub targeted: u64,
    pub returned: u64,
    pub succeeded: u64,
    pub failed: u64,
}

impl JobCounts {
    /// Targeted minions that have not returned.
    pub fn missing(&self) -> u64 {
        self.targeted.saturating_sub(self.returned)
    }
}

/// A line of `brine job list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    pub jid: Jid,
    pub target: Target,
    pub fun: String,
    pub user: String,
    pub started_at: u64,
    pub counts: JobCounts,
}

/// `brine job show`: a job, its totals and its returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    pub job: JobRecord,
    pub counts: JobCounts,
    pub returns: Vec<Return>,
}

/// A minion's request to the master on `P.rpc.<minion>.<op>`, signed by the minion.
/// The answer ([`RpcReply`]) comes back to the minion's private inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rpc {
    pub stamp: Stamp,
    /// The asking minion; must match the subject.
    pub id: MinionId,
    pub call: RpcCall,
}
message!(Rpc, Kind::Rpc);

/// What a minion asks of the master.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RpcCall {
    /// Here are my grains (sent on connect and after a refresh); the master caches
    /// them for targeting and inventory.
    PutGrains { grains: Map },
    /// The files under `prefix` (relative, `/`-separated) in `env` of the master's
    /// file server; empty `prefix` lists everything.
    FileList { env: String, prefix: String },
    /// The SHA-256 and size of one file of the file server.
    FileHash { env: String, path: String },
    /// Up to [`FILE_CHUNK`] bytes of a file from `offset`.
    FileRead { env: String, path: String, offset: u64 },
    /// Render my pillar. The grains are the minion's current ones; the master uses
    /// them for the pillar top file and templates, with `id` forced to the asking
    /// minion's authenticated id.
    Pillar { grains: Map },
}

/// The most file bytes one [`RpcCall::FileRead`] answer carries: well under the 1 MiB
/// default `max_payload` of an external NATS server.
pub const FILE_CHUNK: usize = 512 * 1024;

impl RpcCall {
    /// The subject suffix (`P.rpc.<minion>.<op>`).
    pub fn op(&self) -> &'static str {
        match self {
            RpcCall::PutGrains { .. } => "grains",
            RpcCall::FileList { .. } => "file_list",
            RpcCall::FileHash { .. } => "file_hash",
            RpcCall::FileRead { .. } => "file_read",
            RpcCall::Pillar { .. } => "pillar",
        }
    }
}

/// The master's answer to an [`Rpc`], signed by the master.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcReply {
    pub stamp: Stamp,
    /// The stamp id of the request this answers.
    pub request: String,
    pub result: RpcResult,
}
message!(RpcReply, Kind::RpcReply);

/// The outcome of an [`Rpc`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RpcResult {
    Ok,
    Error(String),
    /// The file (or environment) does not exist; the text says which.
    NotFound(String),
    /// A path that tries to leave the file roots.
    BadPath(String),
    /// Answer to [`RpcCall::FileList`].
    Files(Vec<String>),
    /// Answer to [`RpcCall::FileHash`]: hex SHA-256 and size in bytes.
    Hash {
        sha256: String,
        size: u64,
    },
    /// Answer to [`RpcCall::FileRead`]: the bytes from the asked offset (empty at the
    /// end) and the file's whole size.
    Chunk {
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        size: u64,
    },
    /// Answer to [`RpcCall::Pillar`]: the rendered pillar, or the render errors (file
    /// and line) when it failed.
    Pillar {
        pillar: Map,
        errors: Vec<String>,
    },
}
