//! `disk.*`: mounted volumes as `df` reports them.
//!
//! `disk.usage` runs `df -P` and returns Salt's map of mount point to `{filesystem,
//! 1K-blocks, used, available, capacity}`, values as `df` printed them (strings).

use super::host::{word_text, CommandLine, Host, Runner};
use super::{opt, CallError, Context, Function, Output, Param};
use brine_proto::{Map, Value};
use serde::Deserialize;
use serde_json::json;

/// The `df` flags Salt lets through (`a`, `h`, `i`, `l`, `x`, …).
const ALLOWED_FLAGS: &str = "aBhHiklPtTxv";

/// The `df` command for the requested extra flags, each a single letter, given as
/// one word (`"hi"`) or a list.
fn df_command(flags: Option<&Value>) -> Result<CommandLine, CallError> {
    let letters: String = match flags {
        None | Some(Value::Null) => String::new(),
        Some(Value::Array(items)) => items.iter().map(word_text).collect(),
        Some(v) => word_text(v),
    };
    let letters = letters.trim_start_matches('-');
    if letters.chars().any(|c| !ALLOWED_FLAGS.contains(c)) {
        return Err(CallError::failed("Invalid flag passed to disk.usage"));
    }
    let cmd = CommandLine::new("df").arg("-P");
    Ok(if letters.is_empty() { cmd } else { cmd.arg(format!("-{letters}")) })
}

/// Reads `df -P` output. A row is `filesystem size used available capacity mount`,
/// where the filesystem and the mount point may hold spaces: the row is anchored on the
/// capacity column (`23%`), so both are kept whole. A filesystem name alone on a line
/// continues on the next one.
fn parse_df(out: &str) -> Map {
    let mut ret = Map::new();
    let mut carried: Option<String> = None;
    for line in out.lines() {
        if line.trim().is_empty() || line.starts_with("Filesystem") {
            continue;
        }
        let line = match carried.take() {
            Some(prefix) => format!("{prefix} {line}"),
            None => line.to_string(),
        };
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() == 1 {
            carried = Some(line);
            continue;
        }
        let capacity = (4..cols.len()).find(|&k| cols[k] == "-" || cols[k].ends_with('%'));
        let Some(k) = capacity.filter(|&k| k + 1 < cols.len()) else { continue };
        let mount = cols[k + 1..].join(" ");
        ret.insert(
            mount,
            json!({
                "filesystem": cols[..k - 3].join(" "),
                "1K-blocks": cols[k - 3],
                "used": cols[k - 2],
                "available": cols[k - 1],
                "capacity": cols[k],
            }),
        );
    }
    ret
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageArgs {
    #[serde(default)]
    args: Option<Value>,
}

fn usage(r: &dyn Runner, a: &UsageArgs) -> Result<Value, CallError> {
    let cmd = df_command(a.args.as_ref())?;
    let ran = r.run(&cmd)?;
    // df exits 1 when one mount cannot be read (a stale network mount) but still lists
    // the others; only an empty listing is a failure.
    if !ran.success() && ran.stdout.trim().is_empty() {
        return Err(ran.failure(&cmd));
    }
    Ok(Value::Object(parse_df(&ran.stdout)))
}

pub struct Usage;
impl Function for Usage {
    const NAME: &'static str = "disk.usage";
    const DOC: &'static str = "Returns usage of every mounted volume from df -P: {mount point: \
        {filesystem, 1K-blocks, used, available, capacity}} (strings, as df prints them).\n\n\
        args: extra df flags as letters, one word or a list (a B h H i k l P t T x v), e.g. args=h \
        or args=i for inodes.\n\n\
        CLI example: brine run '*' disk.usage";
    const PARAMS: &'static [Param] = &[opt("args")];
    type Args = UsageArgs;
    fn call(&self, ctx: &Context, a: UsageArgs) -> Result<Output, CallError> {
        Ok(Output::ok(usage(&Host::new(ctx), &a)?))
    }
}

/// The `disk` execution module.
pub static MODULE: super::Module =
    super::Module { name: "disk", doc: "Mounted volumes and their usage (df).", functions: &[&Usage] };

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::host::script::Script;
    use crate::exec::host::Ran;

    const DF: &str = "\
Filesystem              1024-blocks     Used Available Capacity Mounted on
devtmpfs                   12334492        0  12334492       0% /dev
/dev/vda                  264212084 21261788  74024100      23% /
model_tools_unavailable           4        0         4       0% /mnt/sandboxing/model_tools_env/v1/python
//nas/share with space     1000      500       500      50% /mnt/my share
a-very-long-device-name-that-wrapped
                           2048     1024      1024      50% /wrapped
";

    fn args(v: Value) -> UsageArgs {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn df_output_becomes_salts_map() {
        let got = parse_df(DF);
        assert_eq!(
            got["/"],
            json!({"filesystem": "/dev/vda", "1K-blocks": "264212084", "used": "21261788",
                   "available": "74024100", "capacity": "23%"})
        );
        assert_eq!(got["/mnt/my share"]["filesystem"], json!("//nas/share with space"));
        assert_eq!(got["/wrapped"]["filesystem"], json!("a-very-long-device-name-that-wrapped"));
        let keys: Vec<&String> = got.keys().collect();
        assert_eq!(keys[..3], ["/dev", "/", "/mnt/sandboxing/model_tools_env/v1/python"], "df's order");
        // Human sizes parse too (Salt gives {} there).
        let human = parse_df("Filesystem Size Used Avail Use% Mounted on\n/dev/vda 252G 21G 71G 23% /\n");
        assert_eq!(human["/"]["1K-blocks"], json!("252G"));
    }

    #[test]
    fn flags_are_checked_and_passed_to_df() {
        assert_eq!(df_command(None).unwrap().to_string(), "df -P");
        assert_eq!(df_command(Some(&json!("hi"))).unwrap().to_string(), "df -P -hi");
        assert_eq!(df_command(Some(&json!(["i", "x"]))).unwrap().to_string(), "df -P -ix");
        let err = df_command(Some(&json!("z"))).unwrap_err().to_string();
        assert_eq!(err, "Invalid flag passed to disk.usage");
        let script = Script::new()
            .step("df -P", Ran { stdout: DF.into(), stderr: "df: /mnt/nfs: Stale file handle\n".into(), retcode: 1 })
            .fails("df -P -i", 1, "df: cannot read table of mounted file systems");
        assert_eq!(usage(&script, &args(json!({}))).unwrap().as_object().map(Map::len), Some(5));
        let err = usage(&script, &args(json!({"args": "i"}))).unwrap_err().to_string();
        assert!(err.contains("cannot read table of mounted file systems"), "{err}");
        script.done();
    }

    /// Against this host's real df.
    #[test]
    fn real_disk_usage_has_the_root_filesystem() {
        let got = crate::exec::call("disk.usage", &Context::default(), vec![], Map::new()).unwrap().ret;
        let root = &got["/"];
        assert!(root["capacity"].as_str().is_some_and(|c| c.ends_with('%')), "{got}");
        assert!(root["1K-blocks"].as_str().is_some_and(|b| b.parse::<u64>().is_ok()), "{got}");
    }
}
