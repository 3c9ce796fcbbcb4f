//! Target expressions and the matcher that decides whether a minion is targeted.
//!
//! The master resolves a target to minion ids before publishing; each minion checks
//! again that the target names it before running anything. Both use this matcher, so
//! they cannot disagree.

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A target as the operator wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Shell-style glob on the minion id (`*`, `?`, `[abc]`, `[!abc]`), Salt's default.
    Glob(String),
    /// An explicit list of ids (`-L a,b,c`).
    List(Vec<String>),
}

impl Target {
    /// A list target from Salt's comma-separated form, ignoring blanks around ids.
    pub fn list_from_str(s: &str) -> Target {
        Target::List(s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Glob(g) => f.write_str(g),
            Target::List(ids) => write!(f, "L@{}", ids.join(",")),
        }
    }
}

/// Why a target expression cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The expression is empty.
    #[error("the target is empty")]
    Empty,
    /// A glob that does not parse, with the reason.
    #[error("bad glob {glob:?}: {reason}")]
    BadGlob { glob: String, reason: String },
}

/// A compiled target.
#[derive(Debug, Clone)]
pub struct TargetMatcher {
    kind: Compiled,
}

#[derive(Debug, Clone)]
enum Compiled {
    Any,
    Glob(GlobMatcher),
    Exact(String),
    List(Vec<String>),
}

impl TargetMatcher {
    /// Compiles a target, refusing malformed ones with the offending part named.
    pub fn compile(target: &Target) -> Result<TargetMatcher, TargetError> {
        let kind = match target {
            Target::Glob(g) if g.is_empty() => return Err(TargetError::Empty),
            Target::Glob(g) if g == "*" => Compiled::Any,
            Target::Glob(g) if !g.contains(['*', '?', '[']) => Compiled::Exact(g.clone()),
            Target::Glob(g) => {
                let glob = GlobBuilder::new(g)
                    .literal_separator(false)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| TargetError::BadGlob { glob: g.clone(), reason: e.kind().to_string() })?;
                Compiled::Glob(glob.compile_matcher())
            }
            Target::List(ids) if ids.is_empty() => return Err(TargetError::Empty),
            Target::List(ids) => {
                let mut ids = ids.clone();
                ids.sort();
                ids.dedup();
                Compiled::List(ids)
            }
        };
        Ok(TargetMatcher { kind })
    }

    /// Whether the minion `id` is targeted.
    pub fn matches(&self, id: &str) -> bool {
        match &self.kind {
            Compiled::Any => true,
            Compiled::Glob(g) => g.is_match(id),
            Compiled::Exact(s) => s == id,
            Compiled::List(ids) => ids.binary_search_by(|x| x.as_str().cmp(id)).is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(t: Target) -> TargetMatcher {
        TargetMatcher::compile(&t).unwrap()
    }

    #[test]
    fn globs_match_like_fnmatch() {
        let web = m(Target::Glob("web*".into()));
        assert!(web.matches("web1"));
        assert!(web.matches("web1.example.com"));
        assert!(!web.matches("db1"));
        assert!(!web.matches("aweb1"));
        let q = m(Target::Glob("web?".into()));
        assert!(q.matches("web1") && !q.matches("web12"));
        let class = m(Target::Glob("web[13]".into()));
        assert!(class.matches("web1") && class.matches("web3") && !class.matches("web2"));
        let neg = m(Target::Glob("web[!1]".into()));
        assert!(!neg.matches("web1") && neg.matches("web2"));
        assert!(m(Target::Glob("*".into())).matches("anything.at.all"));
        let exact = m(Target::Glob("db1".into()));
        assert!(exact.matches("db1") && !exact.matches("db10"));
        let case = m(Target::Glob("Web*".into()));
        assert!(!case.matches("web1"), "globs are case-sensitive as on Linux");
    }

    #[test]
    fn lists_match_exactly() {
        let l = m(Target::list_from_str("a, b.example.com,c"));
        assert!(l.matches("a") && l.matches("b.example.com") && l.matches("c"));
        assert!(!l.matches("b") && !l.matches("d"));
    }

    #[test]
    fn malformed_targets_are_refused() {
        assert_eq!(TargetMatcher::compile(&Target::Glob(String::new())).unwrap_err(), TargetError::Empty);
        assert_eq!(TargetMatcher::compile(&Target::list_from_str(" , ")).unwrap_err(), TargetError::Empty);
        let err = TargetMatcher::compile(&Target::Glob("web[".into())).unwrap_err();
        assert!(err.to_string().contains("web["), "{err}");
    }

    #[test]
    fn targets_display_as_written() {
        assert_eq!(Target::Glob("web*".into()).to_string(), "web*");
        assert_eq!(Target::list_from_str("a,b").to_string(), "L@a,b");
    }
}
