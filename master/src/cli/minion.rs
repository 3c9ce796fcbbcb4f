//! `brine minion` (which minions are up) and `brine inventory` (their grains).

use super::client::Operator;
use super::run::TargetKind;
use super::{cell, columns, exit, fail, render, Io, OutFormat};
use brine_proto::msg::{CtlOp, CtlResult, MinionInfo};
use brine_proto::{Map, Value};
use serde_json::json;

#[derive(Debug, clap::Subcommand)]
pub enum MinionCommand {
    /// Every accepted minion: up or down, last heartbeat, version, OS.
    List {
        /// Output format: table (default), json, yaml, nested.
        #[arg(long = "out", value_enum, default_value_t = OutFormat::Table)]
        out: OutFormat,
    },
    /// The minions that are up (like salt-run manage.up).
    Up,
    /// The accepted minions that are down (like salt-run manage.down).
    Down,
}

/// Show grains of the targeted minions from the master's cache (nothing runs on them).
#[derive(Debug, clap::Args)]
pub struct InventoryArgs {
    /// Which minions (default: all).
    #[arg(default_value = "*")]
    pub target: String,
    #[command(flatten)]
    pub kind: TargetKind,
    /// Grains to show, comma-separated (`:` reaches into nested grains).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "os,osrelease,kernelrelease,cpuarch,num_cpus,mem_total,ipv4,virtual"
    )]
    pub grains: Vec<String>,
    /// Output format.
    #[arg(long = "out", default_value = "table", value_parser = ["table", "json", "yaml", "csv", "nested"])]
    pub out: String,
}

fn ago(ms: Option<u64>) -> String {
    match ms {
        None => "never".into(),
        Some(ms) if ms < 1000 => "just now".into(),
        Some(ms) if ms < 120_000 => format!("{}s ago", ms / 1000),
        Some(ms) if ms < 7_200_000 => format!("{}m ago", ms / 60_000),
        Some(ms) => format!("{}h ago", ms / 3_600_000),
    }
}

async fn minions(op: &Operator, io: &mut Io<'_>) -> Result<Vec<MinionInfo>, u8> {
    match op.request(CtlOp::MinionList).await {
        Ok(CtlResult::MinionStatus(m)) => Ok(m),
        Ok(CtlResult::Error(e)) => Err(fail(io, e.message)),
        Ok(other) => Err(fail(io, format!("unexpected answer {other:?}"))),
        Err(e) => Err(fail(io, e)),
    }
}

pub async fn run(op: &Operator, cmd: MinionCommand, io: &mut Io<'_>) -> u8 {
    let list = match minions(op, io).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    match cmd {
        MinionCommand::List { out } => {
            let text = if out == OutFormat::Table {
                let rows = list
                    .iter()
                    .map(|m| {
                        vec![
                            m.id.to_string(),
                            if m.up { "up" } else { "down" }.to_string(),
                            ago(m.last_seen_ms),
                            m.version.clone().unwrap_or_default(),
                            m.os.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                columns(&["MINION", "STATUS", "LAST SEEN", "VERSION", "OS"], rows)
            } else {
                let doc: Map = list
                    .iter()
                    .map(|m| {
                        let d = json!({
                            "status": if m.up { "up" } else { "down" },
                            "last_seen_ms": m.last_seen_ms,
                            "version": m.version,
                            "os": m.os,
                        });
                        (m.id.to_string(), d)
                    })
                    .collect();
                render(out, &Value::Object(doc), io.color)
            };
            let _ = io.out.write_all(text.as_bytes());
        }
        MinionCommand::Up | MinionCommand::Down => {
            let want_up = matches!(cmd, MinionCommand::Up);
            for m in list.iter().filter(|m| m.up == want_up) {
                let _ = writeln!(io.out, "- {}", m.id);
            }
        }
    }
    exit::OK
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A grain value in a table or CSV cell: lists are joined with spaces.
fn flat(v: &Value) -> String {
    match v {
        Value::Array(items) => items.iter().map(flat).collect::<Vec<_>>().join(" "),
        other => cell(other),
    }
}

pub async fn inventory(op: &Operator, args: InventoryArgs, io: &mut Io<'_>) -> u8 {
    let target = args.kind.target(&args.target);
    let rows = match op.request(CtlOp::Inventory { target, grains: args.grains.clone() }).await {
        Ok(CtlResult::Inventory(rows)) => rows,
        Ok(CtlResult::Error(e)) => return fail(io, e.message),
        Ok(other) => return fail(io, format!("unexpected answer {other:?}")),
        Err(e) => return fail(io, e),
    };
    let text = match args.out.as_str() {
        "table" | "csv" => {
            let body: Vec<Vec<String>> = rows
                .iter()
                .map(|(id, g)| {
                    let mut r = vec![id.to_string()];
                    r.extend(args.grains.iter().map(|k| g.get(k).map(flat).unwrap_or_default()));
                    r
                })
                .collect();
            if args.out == "csv" {
                let mut out = String::new();
                let header: Vec<String> =
                    std::iter::once("id".to_string()).chain(args.grains.iter().cloned()).collect();
                for r in std::iter::once(header).chain(body) {
                    out.push_str(&r.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
                    out.push('\n');
                }
                out
            } else {
                let upper: Vec<String> = args.grains.iter().map(|g| g.to_uppercase()).collect();
                let header: Vec<&str> = std::iter::once("MINION").chain(upper.iter().map(String::as_str)).collect();
                columns(&header, body)
            }
        }
        other => {
            let doc: Map = rows.into_iter().map(|(id, g)| (id.to_string(), Value::Object(g))).collect();
            let format = match other {
                "json" => OutFormat::Json,
                "yaml" => OutFormat::Yaml,
                _ => OutFormat::Nested,
            };
            render(format, &Value::Object(doc), io.color)
        }
    };
    let _ = io.out.write_all(text.as_bytes());
    exit::OK
}
