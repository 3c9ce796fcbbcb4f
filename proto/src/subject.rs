//! The NATS subject scheme. Every subject lives under a configurable prefix `P`
//! (default `brine`) so several fleets can share one NATS; minion ids appear as
//! tokens (see [`crate::id`]).
//!
//! | subject | direction |
//! |---|---|
//! | `P.enroll` | minion → master, request/reply |
//! | `P.job.<minion>.<jid>` | master → one minion |
//! | `P.ret.<minion>.<jid>` | minion → master (JetStream) |
//! | `P.dret.<minion>.<jid>` | minion → master, request/reply: a return handed to a running master directly |
//! | `P.event.<source>.<tag…>` | anyone allowed → bus |
//! | `P.rpc.<minion>.<op>` | minion → master, request/reply |
//! | `P.ctl.<op>` | operator → master |
//! | `P.presence.<minion>` | minion → master |

use crate::id::{encode_token, MinionId};
use crate::jid::Jid;

/// Why a prefix cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("subject prefix {0:?} is invalid: use dot-separated tokens of letters, digits, '_' and '-'")]
pub struct PrefixError(pub String);

/// Builds and parses subjects under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

/// The default prefix.
pub const DEFAULT_PREFIX: &str = "brine";

impl Default for Subjects {
    fn default() -> Self {
        Subjects { prefix: DEFAULT_PREFIX.to_string() }
    }
}

impl Subjects {
    /// Subjects under `prefix`.
    pub fn new(prefix: &str) -> Result<Subjects, PrefixError> {
        let ok = !prefix.is_empty()
            && prefix
                .split('.')
                .all(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        if ok {
            Ok(Subjects { prefix: prefix.to_string() })
        } else {
            Err(PrefixError(prefix.to_string()))
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A name derived from the prefix for JetStream streams and consumers, which may
    /// not contain dots.
    pub fn stream_name(&self, what: &str) -> String {
        format!("{}_{what}", self.prefix.replace('.', "_")).to_uppercase()
    }

    pub fn enroll(&self) -> String {
        format!("{}.enroll", self.prefix)
    }

    pub fn job(&self, minion: &MinionId, jid: Jid) -> String {
        format!("{}.job.{}.{jid}", self.prefix, minion.token())
    }

    /// Every job subject of one minion (what it subscribes to).
    pub fn jobs_of(&self, minion: &MinionId) -> String {
        format!("{}.job.{}.>", self.prefix, minion.token())
    }

    pub fn ret(&self, minion: &MinionId, jid: Jid) -> String {
        format!("{}.ret.{}.{jid}", self.prefix, minion.token())
    }

    /// Every return subject of one minion (what it may publish to).
    pub fn rets_of(&self, minion: &MinionId) -> String {
        format!("{}.ret.{}.>", self.prefix, minion.token())
    }

    /// Every return subject (what the returns stream captures).
    pub fn all_rets(&self) -> String {
        format!("{}.ret.>", self.prefix)
    }

    /// The subject of a return handed to the master directly (request/reply, outside
    /// the returns stream): the master answers [`crate::msg::RETURN_STORED`] once it
    /// has stored it.
    pub fn direct_ret(&self, minion: &MinionId, jid: Jid) -> String {
        format!("{}.dret.{}.{jid}", self.prefix, minion.token())
    }

    /// Every direct return subject of one minion (what it may publish to).
    pub fn direct_rets_of(&self, minion: &MinionId) -> String {
        format!("{}.dret.{}.>", self.prefix, minion.token())
    }

    /// Every direct return subject (what the master listens to).
    pub fn all_direct_rets(&self) -> String {
        format!("{}.dret.>", self.prefix)
    }

    /// Splits a return subject (through the stream or direct) into the minion and the
    /// JID token.
    pub fn parse_ret<'a>(&self, subject: &'a str) -> Option<(MinionId, &'a str)> {
        let rest = subject.strip_prefix(&self.prefix)?;
        let rest = rest.strip_prefix(".ret.").or_else(|| rest.strip_prefix(".dret."))?;
        let (minion, jid) = rest.split_once('.')?;
        if jid.contains('.') {
            return None;
        }
        Some((MinionId::from_token(minion).ok()?, jid))
    }

    /// The queued-job subject of one minion and job (captured by the job queue stream).
    pub fn qjob(&self, minion: &MinionId, jid: Jid) -> String {
        format!("{}.qjob.{}.{jid}", self.prefix, minion.token())
    }

    /// Every queued-job subject of one minion.
    pub fn qjobs_of(&self, minion: &MinionId) -> String {
        format!("{}.qjob.{}.>", self.prefix, minion.token())
    }

    /// Every queued-job subject (what the job queue stream captures).
    pub fn all_qjobs(&self) -> String {
        format!("{}.qjob.>", self.prefix)
    }

    /// The durable consumer that holds one minion's queued jobs.
    pub fn queue_consumer(&self, minion: &MinionId) -> String {
        format!("q-{}", minion.token())
    }

    /// The JetStream API subject a minion publishes to for its next queued jobs.
    pub fn queue_next(&self, minion: &MinionId) -> String {
        format!("$JS.API.CONSUMER.MSG.NEXT.{}.{}", self.stream_name("QJOBS"), self.queue_consumer(minion))
    }

    /// The JetStream acknowledgement subjects of one minion's queued jobs.
    pub fn queue_acks(&self, minion: &MinionId) -> String {
        format!("$JS.ACK.{}.{}.>", self.stream_name("QJOBS"), self.queue_consumer(minion))
    }

    /// Splits a job or queued-job subject into the minion and the JID token.
    pub fn parse_job<'a>(&self, subject: &'a str) -> Option<(MinionId, &'a str)> {
        let rest = subject.strip_prefix(&self.prefix)?;
        let rest = rest.strip_prefix(".job.").or_else(|| rest.strip_prefix(".qjob."))?;
        let (minion, jid) = rest.split_once('.')?;
        if jid.contains('.') {
            return None;
        }
        Some((MinionId::from_token(minion).ok()?, jid))
    }

    pub fn presence(&self, minion: &MinionId) -> String {
        format!("{}.presence.{}", self.prefix, minion.token())
    }

    pub fn all_presence(&self) -> String {
        format!("{}.presence.*", self.prefix)
    }

    /// Splits a presence subject into its minion.
    pub fn parse_presence(&self, subject: &str) -> Option<MinionId> {
        let token = subject.strip_prefix(&self.prefix)?.strip_prefix(".presence.")?;
        MinionId::from_token(token).ok()
    }

    /// The event subject for `tag` (slash-separated) from `source`; each tag segment
    /// becomes one token.
    pub fn event(&self, source: &str, tag: &str) -> String {
        let mut s = format!("{}.event.{}", self.prefix, encode_token(source));
        for seg in tag.split('/').filter(|s| !s.is_empty()) {
            s.push('.');
            s.push_str(&encode_token(seg));
        }
        s
    }

    /// Every event one source may publish.
    pub fn events_of(&self, source: &str) -> String {
        format!("{}.event.{}.>", self.prefix, encode_token(source))
    }

    /// Every event on the bus.
    pub fn all_events(&self) -> String {
        format!("{}.event.>", self.prefix)
    }

    pub fn rpc_of(&self, minion: &MinionId) -> String {
        format!("{}.rpc.{}.>", self.prefix, minion.token())
    }

    pub fn rpc(&self, minion: &MinionId, op: &str) -> String {
        format!("{}.rpc.{}.{op}", self.prefix, minion.token())
    }

    /// Every RPC subject (what the master serves).
    pub fn all_rpc(&self) -> String {
        format!("{}.rpc.>", self.prefix)
    }

    /// Splits an RPC subject into the minion and the operation.
    pub fn parse_rpc<'a>(&self, subject: &'a str) -> Option<(MinionId, &'a str)> {
        let rest = subject.strip_prefix(&self.prefix)?.strip_prefix(".rpc.")?;
        let (minion, op) = rest.split_once('.')?;
        if op.is_empty() || op.contains('.') {
            return None;
        }
        Some((MinionId::from_token(minion).ok()?, op))
    }

    pub fn ctl(&self, op: &str) -> String {
        format!("{}.ctl.{op}", self.prefix)
    }

    pub fn all_ctl(&self) -> String {
        format!("{}.ctl.>", self.prefix)
    }

    /// The inbox prefix of one minion: replies to it (JetStream acks, RPC answers) go
    /// only there, and only it may subscribe there.
    pub fn minion_inbox(&self, minion: &MinionId) -> String {
        format!("_INBOX_{}", minion.token())
    }

    /// The inbox prefix of connections that have no accepted key yet.
    pub fn enroll_inbox(&self) -> &'static str {
        "_ENROLL"
    }

    /// The inbox prefix of an operator.
    pub fn operator_inbox(&self, operator: &str) -> String {
        format!("_OPS_{}", encode_token(operator))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_encode_dotted_ids_as_one_token() {
        let s = Subjects::default();
        let id = MinionId::new("web1.example.com").unwrap();
        let jid = Jid::from_micros(1_700_000_000_000_000);
        assert_eq!(s.job(&id, jid), "brine.job.web1~example~com.20231114221320000000");
        assert_eq!(s.jobs_of(&id), "brine.job.web1~example~com.>");
        let ret = s.ret(&id, jid);
        assert_eq!(s.parse_ret(&ret), Some((id.clone(), "20231114221320000000")));
        let direct = s.direct_ret(&id, jid);
        assert_eq!(direct, "brine.dret.web1~example~com.20231114221320000000");
        assert_eq!(s.parse_ret(&direct), Some((id.clone(), "20231114221320000000")));
        assert_eq!(s.direct_rets_of(&id), "brine.dret.web1~example~com.>");
        assert_eq!(s.parse_rpc(&s.rpc(&id, "grains")), Some((id.clone(), "grains")));
        assert_eq!(s.parse_rpc("brine.rpc.x.a.b"), None);
        assert_eq!(s.parse_presence(&s.presence(&id)), Some(id));
    }

    #[test]
    fn parse_refuses_foreign_subjects() {
        let s = Subjects::new("fleet.a").unwrap();
        assert_eq!(s.parse_ret("brine.ret.x.1"), None);
        assert_eq!(s.parse_ret("fleet.a.ret.x"), None);
        assert_eq!(s.parse_ret("fleet.a.ret.x.1.2"), None);
        assert_eq!(s.parse_ret("fleet.a.ret.x y.1"), None);
        assert!(s.parse_ret("fleet.a.ret.x.1").is_some());
        assert!(s.parse_ret("fleet.a.dret.x.1").is_some());
        assert_eq!(s.parse_ret("fleet.a.xret.x.1"), None);
        assert_eq!(s.parse_ret("fleet.a.dret.x"), None);
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(Subjects::new("brine").is_ok());
        assert!(Subjects::new("fleet.eu-1").is_ok());
        for bad in ["", "a..b", "a.*", "a b", ".a"] {
            assert!(Subjects::new(bad).is_err(), "{bad}");
        }
        assert_eq!(Subjects::new("fleet.eu").unwrap().stream_name("ret"), "FLEET_EU_RET");
    }

    #[test]
    fn event_tags_map_segments_to_tokens() {
        let s = Subjects::default();
        assert_eq!(s.event("master", "brine/key/accept"), "brine.event.master.brine.key.accept");
        assert_eq!(s.event("web1.x", "brine/minion/web1.x/start"), "brine.event.web1~x.brine.minion.web1~x.start");
    }
}
