//! The `log` beacon, as Salt's: `file = "/var/log/auth.log"` and
//! `tags = { "ssh/failed" = { regex = ".*Failed password.*" } }` fire, for each new
//! line of the file matching a tag's regular expression (from the start of the line,
//! like Python's `re.match`), `{match: "yes", raw: <line>, error: ""}` with the tag
//! as sub tag. Lines already in the file when the beacon starts are skipped; a file
//! that shrank (rotated) is read again from its start.

use super::{only_keys, Beacon, Env, Fired};
use brine_proto::{Map, Value};
use regex::Regex;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

/// At most this much of the file is read at one interval.
const MAX_READ: u64 = 4 << 20;

struct LogBeacon {
    file: PathBuf,
    tags: Vec<(String, Regex)>,
    /// Where the next read starts; `None` until the first look at the file.
    pos: Option<u64>,
    /// Bytes of an unfinished last line, kept for the next read.
    partial: Vec<u8>,
}

pub(crate) fn build(_: &str, options: &Map, _: &Env) -> Result<Box<dyn Beacon>, String> {
    only_keys(options, &["file", "tags"])?;
    let file = options.get("file").and_then(Value::as_str).ok_or("log requires file, the path of the log to watch")?;
    let Some(Value::Object(tags)) = options.get("tags") else {
        return Err("log requires tags, e.g. tags = { \"ssh/failed\" = { regex = \".*Failed password.*\" } }".into());
    };
    let tags = tags
        .iter()
        .map(|(tag, spec)| {
            let re = spec.get("regex").and_then(Value::as_str).ok_or_else(|| format!("tags.{tag} needs regex"))?;
            let re = regex::RegexBuilder::new(&format!("^(?:{re})"))
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("tags.{tag}.regex: {e}"))?;
            Ok((tag.clone(), re))
        })
        .collect::<Result<_, String>>()?;
    Ok(Box::new(LogBeacon { file: PathBuf::from(file), tags, pos: None, partial: Vec::new() }))
}

impl Beacon for LogBeacon {
    fn poll(&mut self) -> Result<Vec<Fired>, String> {
        let err = |e: std::io::Error| format!("{}: {e}", self.file.display());
        let mut f = match std::fs::File::open(&self.file) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        };
        let len = f.metadata().map_err(err)?.len();
        let pos = match self.pos {
            None => {
                self.pos = Some(len);
                return Ok(Vec::new());
            }
            Some(p) if p > len => {
                self.partial.clear();
                0
            }
            Some(p) => p,
        };
        f.seek(SeekFrom::Start(pos)).map_err(err)?;
        let mut buf = Vec::new();
        f.take(MAX_READ).read_to_end(&mut buf).map_err(err)?;
        self.pos = Some(pos + buf.len() as u64);
        let mut text = std::mem::take(&mut self.partial);
        text.extend_from_slice(&buf);
        let complete = match text.iter().rposition(|b| *b == b'\n') {
            Some(i) => {
                self.partial = text.split_off(i + 1);
                text
            }
            None => {
                self.partial = text;
                return Ok(Vec::new());
            }
        };
        let mut out = Vec::new();
        for line in String::from_utf8_lossy(&complete).lines() {
            for (tag, re) in &self.tags {
                if re.is_match(line) {
                    let mut data = Map::new();
                    data.insert("match".into(), Value::String("yes".into()));
                    data.insert("raw".into(), Value::String(line.to_string()));
                    data.insert("error".into(), Value::String(String::new()));
                    out.push(Fired::tagged(tag.clone(), data));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    #[test]
    fn new_matching_lines_fire_with_their_tag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "old failure\n").unwrap();
        let env = Env { id: "m".into(), data_dir: dir.path().to_path_buf() };
        let opts = json!({"file": path, "tags": {"app/fail": {"regex": ".*failure"}}});
        let mut b = build("log", opts.as_object().unwrap(), &env).unwrap();
        assert!(b.poll().unwrap().is_empty(), "lines already there are skipped");
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"ok\nnew failure\nhalf failure").unwrap();
        let fired = b.poll().unwrap();
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].tag.as_deref(), Some("app/fail"));
        assert_eq!(Value::Object(fired[0].data.clone()), json!({"match": "yes", "raw": "new failure", "error": ""}));
        f.write_all(b"\n").unwrap();
        assert_eq!(b.poll().unwrap()[0].data["raw"], "half failure");
        // Rotated: read from the start.
        std::fs::write(&path, "a failure\n").unwrap();
        assert_eq!(b.poll().unwrap().len(), 1);
        assert!(build("log", json!({"file": "/x", "tags": {"t": {"regex": "("}}}).as_object().unwrap(), &env).is_err());
    }
}
