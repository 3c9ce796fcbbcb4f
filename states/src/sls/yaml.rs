//! YAML for state files, read the way Salt reads it, keeping where everything is.
//!
//! Built on the parser's event stream rather than a generic deserializer so that
//! every node keeps its line and column (for errors that point at the SLS), mappings
//! keep their order (states run in file order), and plain scalars are typed by YAML
//! 1.1 as Salt's loader does (`yes` is true, `0644` is 644). Quoted and block scalars
//! are always strings. Anchors and aliases work; duplicate keys are an error.

use brine_proto::{Map, Value};
use granit_parser::{Event, Parser, ScalarStyle};
use std::collections::HashMap;
use std::fmt;

/// Where a node is: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

/// What a node is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A mapping, in file order.
    Map(Vec<(Node, Node)>),
    Seq(Vec<Node>),
    /// A scalar, typed.
    Scalar(Value),
}

impl Node {
    /// The node as a plain value (positions dropped, mapping keys as strings).
    pub fn to_value(&self) -> Value {
        match &self.kind {
            Kind::Scalar(v) => v.clone(),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Kind::Map(pairs) => {
                let mut m = Map::new();
                for (k, v) in pairs {
                    m.insert(k.key_string(), v.to_value());
                }
                Value::Object(m)
            }
        }
    }

    /// A mapping key as text (`1` → "1", `true` → "True" as Python would print it).
    pub fn key_string(&self) -> String {
        match &self.kind {
            Kind::Scalar(Value::String(s)) => s.clone(),
            Kind::Scalar(Value::Bool(b)) => if *b { "True" } else { "False" }.to_string(),
            Kind::Scalar(Value::Null) => "None".to_string(),
            Kind::Scalar(v) => v.to_string(),
            other => format!("{:?}", other),
        }
    }

    /// The scalar string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The mapping's pairs, if this is one.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(p) => Some(p),
            _ => None,
        }
    }

    /// The sequence's items, if this is one.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// A short word for the node's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Map(_) => "a mapping",
            Kind::Seq(_) => "a list",
            Kind::Scalar(Value::String(_)) => "a string",
            Kind::Scalar(Value::Null) => "empty",
            Kind::Scalar(Value::Bool(_)) => "a boolean",
            Kind::Scalar(_) => "a number",
        }
    }
}

/// A YAML error with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

/// Most nested collections accepted (deeper input is refused, not a stack overflow).
const MAX_DEPTH: usize = 256;

/// Parses the first document of `text` (an empty text is an empty mapping's absence:
/// `None`).
pub fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    let mut events = Vec::new();
    for item in Parser::new_from_str(text) {
        match item {
            Ok((ev, span)) => {
                // Comments and anchor metadata are presentation, not content.
                let content = !matches!(ev, Event::Anchor(..)) && !format!("{ev:?}").starts_with("Comment(");
                if content {
                    let pos = Pos { line: span.start.line(), col: span.start.col() + 1 };
                    events.push((ev, pos));
                }
            }
            Err(e) => {
                let m = e.marker();
                return Err(YamlError { pos: Pos { line: m.line(), col: m.col() + 1 }, message: e.info() });
            }
        }
    }
    let mut b = Builder { events, next: 0, anchors: HashMap::new() };
    // Skip to the first document's root.
    loop {
        match b.events.get(b.next).map(|(e, _)| e) {
            Some(Event::StreamStart) | Some(Event::DocumentStart(..)) => b.next += 1,
            Some(Event::StreamEnd) | Some(Event::DocumentEnd) | None => return Ok(None),
            _ => break,
        }
    }
    b.node(0).map(Some)
}

struct Builder<'a> {
    events: Vec<(Event<'a>, Pos)>,
    next: usize,
    anchors: HashMap<usize, Node>,
}

impl Builder<'_> {
    fn node(&mut self, depth: usize) -> Result<Node, YamlError> {
        let Some((ev, pos)) = self.events.get(self.next).cloned() else {
            return Err(YamlError { pos: Pos::default(), message: "unexpected end of document".into() });
        };
        if depth > MAX_DEPTH {
            return Err(YamlError { pos, message: format!("nested more than {MAX_DEPTH} levels deep") });
        }
        self.next += 1;
        let (node, anchor) = match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let value = match (tag.as_ref().map(|t| t.suffix()), style) {
                    (Some("str"), _) => Value::String(text.to_string()),
                    (Some("int"), _) | (Some("float"), _) | (Some("bool"), _) | (Some("null"), _) => {
                        brine_proto::args::yaml_plain_scalar(&text)
                    }
                    (_, ScalarStyle::Plain) => brine_proto::args::yaml_plain_scalar(&text),
                    _ => Value::String(text.to_string()),
                };
                (Node { pos, kind: Kind::Scalar(value) }, anchor)
            }
            Event::SequenceStart(_, anchor, _) => {
                let mut items = Vec::new();
                loop {
                    if matches!(self.events.get(self.next), Some((Event::SequenceEnd, _))) {
                        self.next += 1;
                        break;
                    }
                    items.push(self.node(depth + 1)?);
                }
                (Node { pos, kind: Kind::Seq(items) }, anchor)
            }
            Event::MappingStart(_, anchor, _) => {
                let mut pairs: Vec<(Node, Node)> = Vec::new();
                // Keys that came from `<<` merges: explicit keys override them.
                let mut merged: Vec<String> = Vec::new();
                loop {
                    if matches!(self.events.get(self.next), Some((Event::MappingEnd, _))) {
                        self.next += 1;
                        break;
                    }
                    let k = self.node(depth + 1)?;
                    let v = self.node(depth + 1)?;
                    if k.key_string() == "<<" {
                        // Merge keys: the merged mappings' pairs, unless already set here.
                        let sources: Vec<Node> = match v.kind {
                            Kind::Seq(items) => items,
                            _ => vec![v],
                        };
                        for src in sources {
                            let Kind::Map(more) = src.kind else {
                                return Err(YamlError { pos: src.pos, message: "'<<' needs a mapping".into() });
                            };
                            for (mk, mv) in more {
                                if !pairs.iter().any(|(k, _)| k.key_string() == mk.key_string()) {
                                    merged.push(mk.key_string());
                                    pairs.push((mk, mv));
                                }
                            }
                        }
                        continue;
                    }
                    let name = k.key_string();
                    if let Some(i) = merged.iter().position(|m| *m == name) {
                        merged.remove(i);
                        pairs.retain(|(p, _)| p.key_string() != name);
                    }
                    if let Some((first, _)) = pairs.iter().find(|(p, _)| p.key_string() == name) {
                        return Err(YamlError {
                            pos: k.pos,
                            message: format!("duplicate key {:?} (first at line {})", k.key_string(), first.pos.line),
                        });
                    }
                    pairs.push((k, v));
                }
                (Node { pos, kind: Kind::Map(pairs) }, anchor)
            }
            Event::Alias(id) => {
                let node = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| YamlError { pos, message: "alias to an unknown anchor".into() })?;
                (Node { pos, ..node }, 0)
            }
            other => return Err(YamlError { pos, message: format!("unexpected {other:?}") }),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(text: &str) -> Value {
        parse(text).unwrap().unwrap().to_value()
    }

    #[test]
    fn scalars_are_typed_like_salts_loader() {
        let v = value("a: yes\nb: 0644\nc: '0644'\nd: ~\ne: web\nf: 2.5\ng: \"yes\"\nh: |\n  line\ni: !!str 12\n");
        assert_eq!(
            v,
            json!({"a": true, "b": 644, "c": "0644", "d": null, "e": "web", "f": 2.5, "g": "yes", "h": "line\n", "i": "12"})
        );
    }

    #[test]
    fn mappings_keep_file_order_and_positions() {
        let node = parse("zeta:\n  file.managed:\n    - name: /x\nalpha:\n  cmd.run: []\n").unwrap().unwrap();
        let pairs = node.as_map().unwrap();
        assert_eq!(pairs[0].0.key_string(), "zeta");
        assert_eq!(pairs[1].0.key_string(), "alpha");
        assert_eq!(pairs[1].0.pos, Pos { line: 4, col: 1 });
        let inner = pairs[0].1.as_map().unwrap();
        assert_eq!(inner[0].0.pos, Pos { line: 2, col: 3 });
    }

    #[test]
    fn anchors_aliases_and_merges_work() {
        let v = value("base: &b\n  user: root\n  mode: 644\nother:\n  <<: *b\n  mode: 600\nlist: [*b]\n");
        assert_eq!(v["other"], json!({"mode": 600, "user": "root"}));
        assert_eq!(v["list"], json!([{"user": "root", "mode": 644}]));
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.pos.line >= 2, "{err}");
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, col: 1 });
        assert!(err.message.contains("duplicate key \"a\" (first at line 1)"), "{err}");
        let err = parse("a:\n  - b\n c: d\n").unwrap_err();
        assert_eq!(err.pos.line, 3, "{err}");
    }

    #[test]
    fn empty_documents_are_none_and_depth_is_bounded() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# just a comment\n").unwrap(), None);
        let deep = format!("{}1{}", "[".repeat(1000), "]".repeat(1000));
        assert!(parse(&deep).is_err(), "deep nesting is refused, not a stack overflow");
    }
}
