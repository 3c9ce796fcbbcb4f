//! What each operator may do, like Salt's `publisher_acl`.
//!
//! The local `admin` operator (the key the master creates in its data dir) may do
//! everything. Every other operator is configured in `[operators.NAME]` with its
//! public key and:
//!
//! - `keys`: may list, accept, reject, delete and fingerprint minion keys;
//! - `jobs`: may read the job cache (`job list|show|active`) and the minion and
//!   inventory views;
//! - `acl`: entries of a compound target and function globs. A job is allowed only if
//!   every minion it targets is matched by the target of an entry whose globs match
//!   the function; a job that reaches one minion too many is refused as a whole.
//!
//! The types here are pure: [`crate::config`] builds them from the file, and
//! [`crate::ctl`] asks them about each request with the facts the master resolves
//! targets with.

use brine_proto::target::{Facts, Nodegroups};
use brine_proto::{Target, TargetMatcher};
use ed25519_dalek::VerifyingKey;
use globset::{GlobBuilder, GlobMatcher};

/// The built-in operator whose key the master creates; it has every right.
pub const ADMIN: &str = "admin";

/// At most this many minions are named in a refusal.
const NAMED_IN_REFUSAL: usize = 10;

/// A named operator from the master's config.
#[derive(Debug, Clone)]
pub struct NamedOperator {
    /// The name under `[operators]`; also the operator's NATS inbox (`_OPS_<name>`) and
    /// the `user` of its jobs.
    pub name: String,
    /// The key its requests must be signed with (and its NATS nkey).
    pub key: VerifyingKey,
    /// May manage minion keys.
    pub keys: bool,
    /// May read the job cache, the minion list and the inventory.
    pub jobs: bool,
    /// Which functions it may run where.
    pub acl: Vec<AclEntry>,
}

/// One `[[operators.NAME.acl]]` entry: these functions on these minions.
#[derive(Debug, Clone)]
pub struct AclEntry {
    /// The target as written in the config.
    pub target: String,
    matcher: TargetMatcher,
    /// Globs on `module.function`, as written and compiled.
    functions: Vec<(String, GlobMatcher)>,
}

/// Why an ACL entry cannot be used; the config names the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// The target is not a valid compound expression.
    #[error("target {target:?}: {reason}")]
    Target { target: String, reason: String },
    /// A function glob is empty, has blanks or does not compile.
    #[error("functions: {glob:?} is not a function glob like \"test.*\" or \"cmd.run\": {reason}")]
    Function { glob: String, reason: String },
    /// The entry names no function.
    #[error("functions: list at least one function glob (\"*\" allows every function)")]
    NoFunctions,
}

impl AclEntry {
    /// Compiles an entry; nodegroups (`N@name`) in the target are expanded with the
    /// master's `nodegroups`.
    pub fn new(target: &str, functions: &[String], nodegroups: &Nodegroups) -> Result<AclEntry, AclError> {
        let bad_target = |reason: String| AclError::Target { target: target.to_string(), reason };
        if target.trim().is_empty() {
            return Err(bad_target("is empty; use \"*\" for every minion".into()));
        }
        let expanded = Target::Compound(target.to_string())
            .expand_nodegroups(nodegroups)
            .map_err(|e| bad_target(e.to_string()))?;
        let matcher = TargetMatcher::compile(&expanded).map_err(|e| bad_target(e.to_string()))?;
        if functions.is_empty() {
            return Err(AclError::NoFunctions);
        }
        let functions = functions
            .iter()
            .map(|glob| {
                let bad = |reason: &str| AclError::Function { glob: glob.clone(), reason: reason.to_string() };
                if glob.is_empty() {
                    return Err(bad("it is empty"));
                }
                if glob.chars().any(char::is_whitespace) {
                    return Err(bad("function names have no blanks"));
                }
                GlobBuilder::new(glob)
                    .literal_separator(false)
                    .build()
                    .map(|g| (glob.clone(), g.compile_matcher()))
                    .map_err(|e| bad(&e.kind().to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(AclEntry { target: target.to_string(), matcher, functions })
    }

    /// Whether the entry's target matches this minion.
    pub fn targets(&self, facts: &Facts<'_>) -> bool {
        self.matcher.matches(facts)
    }

    /// Whether one of the entry's globs matches `fun`.
    pub fn allows(&self, fun: &str) -> bool {
        self.functions.iter().any(|(_, g)| g.is_match(fun))
    }
}

impl NamedOperator {
    /// Whether the ACL lets this operator run `fun` on this minion.
    pub fn may_run(&self, fun: &str, facts: &Facts<'_>) -> bool {
        self.acl.iter().any(|e| e.allows(fun) && e.targets(facts))
    }

    /// Whether any ACL entry targets this minion (whatever the function).
    pub fn reaches(&self, facts: &Facts<'_>) -> bool {
        self.acl.iter().any(|e| e.targets(facts))
    }
}

/// What the operator behind a request may do.
#[derive(Debug, Clone, Copy)]
pub enum Rights<'a> {
    /// The local admin: everything.
    Admin,
    /// A configured operator: what its config says.
    Named(&'a NamedOperator),
}

impl Rights<'_> {
    /// May manage minion keys.
    pub fn keys(&self) -> bool {
        match self {
            Rights::Admin => true,
            Rights::Named(o) => o.keys,
        }
    }

    /// May read the job cache and the minion and inventory views.
    pub fn jobs(&self) -> bool {
        match self {
            Rights::Admin => true,
            Rights::Named(o) => o.jobs,
        }
    }

    /// May put events on the bus (`brine event send`): an ACL entry of the operator
    /// allows the function `event.send`, like Salt's `publisher_acl` for runners.
    pub fn send_events(&self) -> bool {
        match self {
            Rights::Admin => true,
            Rights::Named(o) => o.acl.iter().any(|e| e.allows("event.send")),
        }
    }
}

/// `a, b, c and 7 more`: the first few of a list, for a message.
pub fn capped_list<T: std::fmt::Display>(items: &[T]) -> String {
    let shown: Vec<String> = items.iter().take(NAMED_IN_REFUSAL).map(|i| i.to_string()).collect();
    let mut text = shown.join(", ");
    if items.len() > NAMED_IN_REFUSAL {
        text.push_str(&format!(" and {} more", items.len() - NAMED_IN_REFUSAL));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use brine_proto::Map;

    fn entry(target: &str, functions: &[&str]) -> Result<AclEntry, AclError> {
        let groups: Nodegroups = [("dbs".to_string(), "L@db1,db2".to_string())].into();
        AclEntry::new(target, &functions.iter().map(|f| f.to_string()).collect::<Vec<_>>(), &groups)
    }

    fn operator(acl: Vec<AclEntry>) -> NamedOperator {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        NamedOperator { name: "alice".into(), key, keys: false, jobs: false, acl }
    }

    #[test]
    fn a_run_needs_an_entry_matching_both_minion_and_function() {
        let alice = operator(vec![
            entry("web* or G@role:web", &["test.*", "pkg.*"]).unwrap(),
            entry("N@dbs", &["cmd.run"]).unwrap(),
        ]);
        let web: Map = [("role".to_string(), "web".into())].into_iter().collect();
        let by_grain = Facts { id: "frontend", grains: Some(&web), pillar: None };
        assert!(alice.may_run("test.ping", &Facts::id("web1")));
        assert!(alice.may_run("pkg.install", &by_grain));
        assert!(!alice.may_run("cmd.run", &Facts::id("web1")), "cmd.run is allowed only on the dbs");
        assert!(alice.may_run("cmd.run", &Facts::id("db2")));
        assert!(!alice.may_run("test.ping", &Facts::id("db2")));
        assert!(!alice.may_run("test.ping", &Facts::id("mail1")));
        assert!(alice.reaches(&Facts::id("db1")) && !alice.reaches(&Facts::id("mail1")));
        // A glob is on the whole name: "test.*" does not allow "testx.ping".
        assert!(!alice.may_run("testx.ping", &Facts::id("web1")));
        assert!(!operator(Vec::new()).may_run("test.ping", &Facts::id("web1")));
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        let err = entry("web* and", &["test.*"]).unwrap_err().to_string();
        assert!(err.starts_with("target \"web* and\":"), "{err}");
        assert!(entry("", &["test.*"]).unwrap_err().to_string().contains("is empty"));
        assert!(entry("N@nothing", &["test.*"]).unwrap_err().to_string().contains("nothing"));
        assert_eq!(entry("*", &[]).unwrap_err(), AclError::NoFunctions);
        let err = entry("*", &["test.[a"]).unwrap_err().to_string();
        assert!(err.contains("\"test.[a\""), "{err}");
        assert!(entry("*", &["cmd run"]).unwrap_err().to_string().contains("no blanks"));
        assert!(entry("*", &[""]).is_err());
    }

    #[test]
    fn refusals_name_a_few_minions() {
        let ids: Vec<String> = (1..=12).map(|i| format!("m{i}")).collect();
        assert_eq!(capped_list(&ids[..2]), "m1, m2");
        assert_eq!(capped_list(&ids), "m1, m2, m3, m4, m5, m6, m7, m8, m9, m10 and 2 more");
    }
}
