//! Outputters: how returns are printed, shared by `brine` and `brine-call` so that both
//! print exactly what Salt users' eyes and scripts expect.
//!
//! - [`nested`]: Salt's default human layout (sorted keys, `----------` before each
//!   inner map, `|_` before containers in lists), optionally coloured.
//! - [`json`]: pretty JSON with 4-space indent, keys in the order the function made them.
//! - [`yaml`]: block YAML with sorted keys.
//! - [`txt`]: `id: value` lines.
//! - [`highstate`]: the layout of state runs, with `Summary for <id>`.

pub mod highstate;

use crate::Value;

const ENDC: &str = "\x1b[0;0m";
const CYAN: &str = "\x1b[0;36m";
const GREEN: &str = "\x1b[0;32m";
const RED: &str = "\x1b[0;31m";
const LIGHT_YELLOW: &str = "\x1b[0;1;33m";

/// Colouring for [`nested`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    /// Plain text.
    Off,
    /// Colours for a successful return.
    Ok,
    /// Colours for a failed return (keys in red).
    Failed,
}

struct Nested<'a> {
    out: &'a mut String,
    color: Color,
}

impl Nested<'_> {
    fn line(&mut self, indent: usize, color: &str, prefix: &str, text: &str, suffix: &str) {
        for _ in 0..indent {
            self.out.push(' ');
        }
        if self.color == Color::Off {
            self.out.push_str(prefix);
            self.out.push_str(text);
        } else {
            self.out.push_str(color);
            self.out.push_str(prefix);
            self.out.push_str(text);
            self.out.push_str(ENDC);
        }
        self.out.push_str(suffix);
        self.out.push('\n');
    }

    fn structure(&self, normal: &'static str) -> &'static str {
        if self.color == Color::Failed {
            RED
        } else {
            normal
        }
    }

    fn display(&mut self, value: &Value, indent: usize, prefix: &str) {
        match value {
            Value::Null => self.line(indent, LIGHT_YELLOW, prefix, "None", ""),
            Value::Bool(b) => self.line(indent, LIGHT_YELLOW, prefix, if *b { "True" } else { "False" }, ""),
            Value::Number(n) => self.line(indent, LIGHT_YELLOW, prefix, &python_number(n), ""),
            Value::String(s) => {
                let pad = " ".repeat(prefix.chars().count());
                for (i, l) in s.lines().enumerate() {
                    self.line(indent, GREEN, if i == 0 { prefix } else { &pad }, l, "");
                }
            }
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Array(_) => {
                            self.line(indent, self.structure(GREEN), "", "|_", "");
                            self.display(item, indent + 2, "- ");
                        }
                        Value::Object(_) => {
                            self.line(indent, self.structure(GREEN), "", "|_", "");
                            self.display(item, indent + 2, "");
                        }
                        _ => self.display(item, indent, "- "),
                    }
                }
            }
            Value::Object(map) => {
                if indent > 0 {
                    self.line(indent, self.structure(CYAN), "", "----------", "");
                }
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                for k in keys {
                    self.line(indent, self.structure(CYAN), prefix, k, ":");
                    self.display(&map[k], indent + 4, "");
                }
            }
        }
    }
}

/// Salt's nested layout of `value` (usually `{minion: return}`).
pub fn nested(value: &Value, color: Color) -> String {
    let mut out = String::new();
    Nested { out: &mut out, color }.display(value, 0, "");
    out
}

/// A number the way Python prints it (`1.0`, `2.5`, `1e+20`).
fn python_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e:0>2}"),
            Some((m, e)) => format!("{m}e-{:0>2}", &e[1..]),
            None => s,
        }
    } else if f.fract() == 0.0 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// Pretty JSON, 4-space indent, keys in insertion order.
pub fn json(value: &Value) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if value.serialize(&mut ser).is_err() {
        return "null\n".into();
    }
    let mut s = String::from_utf8(buf).unwrap_or_default();
    s.push('\n');
    s
}

/// Block YAML with sorted keys and sequences level with their key, like PyYAML's
/// `safe_dump(default_flow_style=False)`.
pub fn yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => yaml_map(&mut out, value, 0),
        Value::Array(a) if !a.is_empty() => yaml_seq(&mut out, value, 0),
        _ => {
            out.push_str(&yaml_scalar(value));
            out.push('\n');
        }
    }
    out
}

fn yaml_map(out: &mut String, value: &Value, indent: usize) {
    let Value::Object(map) = value else { return };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for (i, k) in keys.into_iter().enumerate() {
        // The first key of a map inside a sequence item continues the `- ` line.
        if !(i == 0 && out.ends_with("- ")) {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&yaml_key(k));
        out.push(':');
        yaml_value(out, &map[k], indent, false);
    }
}

fn yaml_seq(out: &mut String, value: &Value, indent: usize) {
    let Value::Array(items) = value else { return };
    for (i, item) in items.iter().enumerate() {
        if !(i == 0 && out.ends_with("- ")) {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => yaml_map(out, item, indent + 2),
            Value::Array(a) if !a.is_empty() => yaml_seq(out, item, indent + 2),
            _ => {
                out.push_str(&yaml_scalar(item));
                out.push('\n');
            }
        }
    }
}

/// Writes what follows `key:`.
fn yaml_value(out: &mut String, value: &Value, indent: usize, _in_seq: bool) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            yaml_map(out, value, indent + 2);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            yaml_seq(out, value, indent);
        }
        _ => {
            out.push(' ');
            out.push_str(&yaml_scalar(value));
            out.push('\n');
        }
    }
}

fn yaml_key(k: &str) -> String {
    match yaml_scalar(&Value::String(k.to_string())) {
        s if s.is_empty() => "''".into(),
        s => s,
    }
}

fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        Value::String(s) => yaml_string(s),
    }
}

fn yaml_string(s: &str) -> String {
    if s.contains(['\n', '\r', '\t']) || s.chars().any(|c| c.is_control()) {
        return serde_json::to_string(s).unwrap_or_default();
    }
    let needs_quotes = s.is_empty()
        || s.starts_with(' ')
        || s.ends_with(' ')
        || s.starts_with([
            '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`',
        ])
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || !matches!(crate::args::type_word(s), Value::String(ref t) if t == s)
        || looks_like_yaml_number(s);
    if needs_quotes {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        s.to_string()
    }
}

/// Strings a YAML 1.1 reader would take for a number (`12`, `3007.8`, `1_000`, `1:30`).
fn looks_like_yaml_number(s: &str) -> bool {
    let t = s.trim_start_matches(['-', '+']);
    !t.is_empty()
        && t.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '_' | ':' | 'e' | 'E' | '+' | '-' | 'x' | 'o' | 'b'))
}

/// Salt's `txt` layout: `id: value`, one line per line of a string value.
pub fn txt(id: &str, value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::String(s) => {
            for l in s.lines() {
                out.push_str(&format!("{id}: {l}\n"));
            }
        }
        other => out.push_str(&format!("{id}: {}\n", python_repr(other))),
    }
    out
}

/// A value the way Python's `str()` prints it.
fn python_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Number(n) => python_number(n),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'").replace('\n', "\\n")),
        Value::Array(a) => format!("[{}]", a.iter().map(python_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter().map(|(k, v)| format!("'{k}': {}", python_repr(v))).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_matches_salt_layout() {
        let v = json!({"local": {
            "s": "hello", "e": "", "ed": {}, "el": [], "n": null, "i": 42, "neg": -3, "f": 2.5,
            "t": true, "fa": false, "ml": "line1\nline2\n",
            "l": [1, "two", null, [], {}, ["a", "b"], {"k": "v", "k2": ["x"]}],
            "d": {"inner": {"deep": 1}, "list": [1, 2]}
        }});
        let expected = "\
local:
    ----------
    d:
        ----------
        inner:
            ----------
            deep:
                1
        list:
            - 1
            - 2
    e:
    ed:
        ----------
    el:
    f:
        2.5
    fa:
        False
    i:
        42
    l:
        - 1
        - two
        - None
        |_
        |_
          ----------
        |_
          - a
          - b
        |_
          ----------
          k:
              v
          k2:
              - x
    ml:
        line1
        line2
    n:
        None
    neg:
        -3
    s:
        hello
    t:
        True
";
        assert_eq!(nested(&v, Color::Off), expected);
    }

    #[test]
    fn nested_colours_like_salt() {
        let out = nested(&json!({"m": {"k": "v", "n": 1}}), Color::Ok);
        assert!(out.starts_with("\x1b[0;36mm\x1b[0;0m:\n    \x1b[0;36m----------\x1b[0;0m\n"), "{out:?}");
        assert!(out.contains("\x1b[0;32mv\x1b[0;0m") && out.contains("\x1b[0;1;33m1\x1b[0;0m"));
        let failed = nested(&json!({"m": {"k": "v"}}), Color::Failed);
        assert!(failed.starts_with("\x1b[0;31mm\x1b[0;0m:"), "{failed:?}");
    }

    #[test]
    fn numbers_print_like_python() {
        let n = |v: Value| match v {
            Value::Number(n) => python_number(&n),
            _ => unreachable!(),
        };
        assert_eq!(n(json!(1.0)), "1.0");
        assert_eq!(n(json!(2.5)), "2.5");
        assert_eq!(n(json!(1e20)), "1e+20");
        assert_eq!(n(json!(-3)), "-3");
    }

    #[test]
    fn json_is_indented_by_four_in_insertion_order() {
        let v = json!({"m2": true, "m1": {"b": 1, "a": [1, 2]}});
        assert_eq!(json(&v), "{\n    \"m2\": true,\n    \"m1\": {\n        \"b\": 1,\n        \"a\": [\n            1,\n            2\n        ]\n    }\n}\n");
    }

    #[test]
    fn yaml_is_block_style_with_sorted_keys() {
        let v = json!({"local": {"kwargs": {"b": true, "a": 3}, "args": [1, 2.5, null, [1, 2], {"a": 1}], "v": "3007.8", "e": "", "x": {}}});
        let expected = "\
local:
  args:
  - 1
  - 2.5
  - null
  - - 1
    - 2
  - a: 1
  e: ''
  kwargs:
    a: 3
    b: true
  v: '3007.8'
  x: {}
";
        assert_eq!(yaml(&v), expected);
        assert_eq!(yaml(&json!({"m": "yes"})), "m: 'yes'\n");
        assert_eq!(yaml(&json!({"m": "a\nb"})), "m: \"a\\nb\"\n");
    }

    #[test]
    fn txt_prints_one_line_per_line() {
        assert_eq!(txt("m", &json!("a\nb")), "m: a\nm: b\n");
        assert_eq!(txt("m", &json!(true)), "m: True\n");
        assert_eq!(txt("m", &json!({"a": [1, "x"]})), "m: {'a': [1, 'x']}\n");
    }
}
