//! Salt's `highstate` layout for the returns of state runs (`state.apply`,
//! `state.sls`, `state.highstate`, `state.single`, `state.test`): one block per state in
//! run order, then `Summary for <id>` with succeeded (changed=N), failed, total states
//! and total run time. `--state-output` picks full blocks, one-line (`terse`) entries,
//! or a mix; `--state-verbose=false` hides states that succeeded without changes.

use super::{python_number, python_repr, Color, Nested};
use crate::Value;

const ENDC: &str = "\x1b[0;0m";
const CYAN: &str = "\x1b[0;36m";
const GREEN: &str = "\x1b[0;32m";
const RED: &str = "\x1b[0;31m";
const LIGHT_RED: &str = "\x1b[0;1;31m";
const LIGHT_YELLOW: &str = "\x1b[0;1;33m";

/// Which states get a full block and which a single line (`--state-output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateOutput {
    /// Every state as a full block.
    #[default]
    Full,
    /// Every state on one line.
    Terse,
    /// Failed states in full, the others on one line.
    Mixed,
    /// States with changes or failures in full, the others on one line.
    Changes,
}

/// How to print state returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HighstateOptions {
    pub mode: StateOutput,
    /// The `_id` variants: show the state ID where the name would be.
    pub by_id: bool,
    /// Show states that succeeded without changes (`--state-verbose`).
    pub verbose: bool,
    /// Show start time and duration (`--state-output-profile`).
    pub profile: bool,
    pub color: bool,
}

impl Default for HighstateOptions {
    fn default() -> Self {
        HighstateOptions { mode: StateOutput::Full, by_id: false, verbose: true, profile: true, color: false }
    }
}

impl HighstateOptions {
    /// Reads a `--state-output` value: `full`, `terse`, `mixed`, `changes`, each
    /// optionally with `_id`.
    pub fn parse_mode(&mut self, text: &str) -> Result<(), String> {
        let lower = text.to_ascii_lowercase();
        let (base, by_id) = match lower.strip_suffix("_id") {
            Some(b) => (b, true),
            None => (lower.as_str(), false),
        };
        self.mode = match base {
            "full" => StateOutput::Full,
            "terse" => StateOutput::Terse,
            "mixed" => StateOutput::Mixed,
            "changes" => StateOutput::Changes,
            _ => {
                return Err(format!(
                    "{text:?} is not a state output mode (full, terse, mixed, changes, or one of them with _id)"
                ))
            }
        };
        self.by_id = by_id;
        Ok(())
    }
}

/// Whether `fun` runs states, so that its return prints as highstate by default (the
/// functions Salt marks so).
pub fn runs_states(fun: &str) -> bool {
    matches!(
        fun,
        "state.apply"
            | "state.sls"
            | "state.highstate"
            | "state.single"
            | "state.test"
            | "state.sls_id"
            | "state.top"
            | "state.template"
            | "state.template_str"
            | "state.orchestrate"
    )
}

/// What one minion's state run amounted to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub succeeded: usize,
    pub failed: usize,
    /// States whose `result` is `None` (test mode: would change).
    pub unchanged: usize,
    /// States that reported changes.
    pub changed: usize,
}

/// Whether `ret` looks like a state run's return (a map of state results).
pub fn is_state_return(ret: &Value) -> bool {
    match ret {
        Value::Object(m) => {
            !m.is_empty() && m.values().all(|v| v.as_object().is_some_and(|s| s.contains_key("result")))
        }
        _ => false,
    }
}

/// Counts results in a state run's return; `None` if it is not one.
pub fn counts(ret: &Value) -> Option<StateCounts> {
    if !is_state_return(ret) {
        return None;
    }
    let mut c = StateCounts::default();
    for s in ret.as_object().into_iter().flat_map(|m| m.values()) {
        match s.get("result") {
            Some(Value::Bool(true)) => c.succeeded += 1,
            Some(Value::Bool(false)) => c.failed += 1,
            _ => {
                c.succeeded += 1;
                c.unchanged += 1;
            }
        }
        if has_changes(s.get("changes")) {
            c.changed += 1;
        }
    }
    Some(c)
}

fn has_changes(changes: Option<&Value>) -> bool {
    match changes {
        None | Some(Value::Null) => false,
        Some(Value::Object(m)) => !m.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(_)) => true,
    }
}

struct Out<'a> {
    lines: Vec<String>,
    opts: &'a HighstateOptions,
}

impl Out<'_> {
    fn paint(&self, color: &str, text: &str) -> String {
        if self.opts.color {
            format!("{color}{text}{ENDC}")
        } else {
            text.to_string()
        }
    }
}

fn result_text(v: Option<&Value>) -> &'static str {
    match v {
        Some(Value::Bool(true)) => "True",
        Some(Value::Bool(false)) => "False",
        _ => "None",
    }
}

fn scalar_text(v: Option<&Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => python_number(n),
        Some(other) => python_repr(other),
    }
}

/// One minion's state return in Salt's highstate layout, ending without a newline.
pub fn highstate(host: &str, ret: &Value, opts: &HighstateOptions) -> String {
    let mut out = Out { lines: Vec::new(), opts };
    let mut host_color = GREEN;
    match ret {
        Value::Object(states) => {
            let mut entries: Vec<(&String, &serde_json::Map<String, Value>)> = states
                .iter()
                .filter_map(|(tag, s)| s.as_object().filter(|s| s.contains_key("result")).map(|s| (tag, s)))
                .collect();
            entries.sort_by_key(|(_, s)| s.get("__run_num__").and_then(Value::as_u64).unwrap_or(0));
            let (mut ok, mut failed, mut none, mut changed) = (0usize, 0usize, 0usize, 0usize);
            let mut duration = 0.0f64;
            for (tag, s) in entries {
                let result = s.get("result");
                match result {
                    Some(Value::Bool(true)) => ok += 1,
                    Some(Value::Bool(false)) => failed += 1,
                    _ => none += 1,
                }
                duration += s.get("duration").and_then(Value::as_f64).unwrap_or(0.0);
                let schanged = has_changes(s.get("changes"));
                changed += usize::from(schanged);
                let succeeded = result == Some(&Value::Bool(true));
                if !opts.verbose && succeeded && !schanged {
                    continue;
                }
                let mut color = if schanged { CYAN } else { GREEN };
                match result {
                    Some(Value::Bool(true)) => {}
                    Some(Value::Bool(false)) => {
                        host_color = RED;
                        color = RED;
                    }
                    _ => {
                        host_color = LIGHT_YELLOW;
                        color = LIGHT_YELLOW;
                    }
                }
                // The tag is `module_|-id_|-name_|-function`.
                let parts: Vec<&str> = tag.split("_|-").collect();
                let module = parts.first().copied().unwrap_or_default();
                let id = parts.get(1).copied().unwrap_or_default();
                let name = if opts.by_id { id } else { parts.get(2).copied().unwrap_or_default() };
                let function = parts.last().copied().unwrap_or_default();
                let terse = match opts.mode {
                    StateOutput::Full => false,
                    StateOutput::Terse => true,
                    StateOutput::Mixed => result != Some(&Value::Bool(false)),
                    StateOutput::Changes => succeeded && !schanged,
                };
                if terse {
                    let word = match result {
                        Some(Value::Bool(false)) => "Failed",
                        Some(Value::Bool(true)) if schanged => "Changed",
                        Some(Value::Bool(true)) => "Clean",
                        _ => "Differs",
                    };
                    let mut line = format!("Name: {name} - Function: {module}.{function} - Result: {word}");
                    if opts.profile && s.contains_key("start_time") {
                        line.push_str(&format!(
                            " - Started: {} - Duration: {} ms",
                            scalar_text(s.get("start_time")),
                            scalar_text(s.get("duration"))
                        ));
                    }
                    let painted = if opts.color { format!("{color} {line}{ENDC}") } else { format!("  {line}") };
                    out.lines.push(painted);
                    continue;
                }
                let comment = match s.get("comment") {
                    Some(Value::String(c)) => c.trim().replace('\n', &format!("\n{}", " ".repeat(14))),
                    Some(other) => python_repr(other),
                    None => String::new(),
                };
                out.lines.push(out.paint(color, "----------"));
                out.lines.push(format!("    {}", out.paint(color, &format!("      ID: {id}"))));
                out.lines.push(format!("    {}", out.paint(color, &format!("Function: {module}.{function}"))));
                if id != name {
                    out.lines.push(format!("    {}", out.paint(color, &format!("    Name: {name}"))));
                }
                out.lines.push(format!("    {}", out.paint(color, &format!("  Result: {}", result_text(result)))));
                out.lines.push(format!("    {}", out.paint(color, &format!(" Comment: {comment}"))));
                if opts.profile && s.contains_key("start_time") {
                    out.lines.push(format!(
                        "    {}",
                        out.paint(color, &format!(" Started: {}", scalar_text(s.get("start_time"))))
                    ));
                    let d = scalar_text(s.get("duration"));
                    let d = if d.is_empty() { d } else { format!("{d} ms") };
                    out.lines.push(format!("    {}", out.paint(color, &format!("Duration: {d}"))));
                }
                let changes = match s.get("changes") {
                    // An orchestration's state step: each minion's run in this layout,
                    // indented under the step, as Salt prints it.
                    Some(Value::Object(c))
                        if schanged
                            && c.get("out").and_then(Value::as_str) == Some("highstate")
                            && c.get("ret").is_some_and(Value::is_object) =>
                    {
                        let mut text = String::new();
                        for (minion, run) in c["ret"].as_object().into_iter().flatten() {
                            // Salt indents every line, blank ones too.
                            for line in highstate(minion, run, opts).lines() {
                                text.push('\n');
                                text.push_str(&" ".repeat(14));
                                text.push_str(line);
                            }
                        }
                        text
                    }
                    Some(c @ Value::Object(_)) if schanged => {
                        let mut text = String::new();
                        let nested_color = if opts.color { Color::Ok } else { Color::Off };
                        Nested { out: &mut text, color: nested_color }.display(c, 14, "");
                        format!("\n{}", text.trim_end_matches('\n'))
                    }
                    Some(other) if schanged => format!("Invalid Changes data: {}", python_repr(other)),
                    _ => String::new(),
                };
                out.lines.push(out.paint(color, &format!("     Changes:   {changes}")));
            }
            summary(&mut out, host, ok, failed, none, changed, duration);
        }
        Value::Array(errors) => {
            host_color = LIGHT_RED;
            out.lines.push(format!("    {}", out.paint(LIGHT_RED, "Data failed to compile:")));
            for e in errors {
                let text = match e {
                    Value::String(s) => s.clone(),
                    other => python_repr(other),
                };
                out.lines.push(out.paint(LIGHT_RED, &format!("----------\n    {text}")));
            }
        }
        Value::String(s) => {
            for l in s.lines() {
                out.lines.push(format!("    {}", out.paint(GREEN, l)));
            }
            host_color = CYAN;
        }
        other => {
            out.lines.push(format!("    {}", out.paint(GREEN, &python_repr(other))));
            host_color = CYAN;
        }
    }
    let header = out.paint(host_color, &format!("{host}:"));
    let mut text = header;
    for l in out.lines {
        text.push('\n');
        text.push_str(&l);
    }
    text
}

fn summary(out: &mut Out<'_>, host: &str, ok: usize, failed: usize, none: usize, changed: usize, duration: f64) {
    // Column widths follow the longest label ("Succeeded") and the widest count.
    let counts = [ok, failed, none].iter().filter(|&&n| n > 0).map(|n| n.to_string().len()).max().unwrap_or(1);
    let counts = if ok == 0 && failed == 0 && none == 0 { 0 } else { counts };
    let width = "Succeeded".len() + counts + 2;
    let count = |label: &str, n: usize| format!("{label}: {n:>w$}", w = width - label.len() - 2);
    out.lines.push(out.paint(CYAN, &format!("\nSummary for {host}\n{}", "-".repeat(width))));
    let mut stats = Vec::new();
    if none > 0 {
        stats.push(out.paint(LIGHT_YELLOW, &format!("unchanged={none}")));
    }
    if changed > 0 {
        stats.push(out.paint(GREEN, &format!("changed={changed}")));
    }
    let stats = if stats.is_empty() { String::new() } else { format!(" ({})", stats.join(", ")) };
    out.lines.push(format!("{}{stats}", out.paint(GREEN, &count("Succeeded", ok + none))));
    out.lines.push(out.paint(if failed > 0 { RED } else { CYAN }, &count("Failed", failed)));
    out.lines.push(out.paint(
        CYAN,
        &format!("{}\nTotal states run: {:>w$}", "-".repeat(width), ok + failed + none, w = width.saturating_sub(7)),
    ));
    if out.opts.profile {
        let (value, unit) = if duration > 999.0 { (duration / 1000.0, "s") } else { (duration, "ms") };
        let value = format!("{value:.3}");
        out.lines.push(out.paint(CYAN, &format!("Total run time: {value:>w$} {unit}", w = width.saturating_sub(5))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The return of `/tmp` demo.sls captured from Salt 3007.8 (`salt-call --local
    /// state.apply demo`), with its start times and durations.
    fn demo() -> Value {
        json!({
            "test_|-changed_|-thing_|-succeed_with_changes": {"__id__": "changed", "__run_num__": 0, "__sls__": "demo",
                "changes": {"testing": {"new": "Something pretended to change", "old": "Unchanged"}},
                "comment": "Success!", "duration": 0.497, "name": "thing", "result": true, "start_time": "04:36:59.998059"},
            "test_|-nochange_|-nochange_|-succeed_without_changes": {"__id__": "nochange", "__run_num__": 1,
                "changes": {}, "comment": "Success!", "duration": 0.446, "name": "nochange", "result": true,
                "start_time": "04:36:59.998641"},
            "test_|-failing_|-failing_|-fail_without_changes": {"__id__": "failing", "__run_num__": 2, "changes": {},
                "comment": "it broke", "duration": 0.426, "name": "failing", "result": false,
                "start_time": "04:36:59.999147"},
            "cmd_|-echo_|-printf 'line one\\nline two\\n'_|-run": {"__id__": "echo", "__run_num__": 3,
                "changes": {"pid": 11281, "retcode": 0, "stderr": "", "stdout": "line one\nline two"},
                "comment": "Command \"printf 'line one\\nline two\\n'\" run", "duration": 8.561,
                "name": "printf 'line one\\nline two\\n'", "result": true, "start_time": "04:37:00.002131"},
            "test_|-multi_|-multi_|-configurable_test_state": {"__id__": "multi", "__run_num__": 4,
                "changes": {"testing": {"new": "Something pretended to change", "old": "Unchanged"}},
                "comment": "a comment\nwith two lines", "duration": 0.455, "name": "multi", "result": true,
                "start_time": "04:37:00.010927"}
        })
    }

    #[test]
    fn an_orchestrations_state_step_shows_each_minions_run_in_this_layout() {
        let step = json!({
            "salt_|-web_|-web_|-state": {"__id__": "web", "__run_num__": 0, "__sls__": "orch",
                "changes": {"out": "highstate", "ret": {"web1": demo()}},
                "comment": "States ran successfully. Updating web1.", "duration": 12.5, "name": "web",
                "result": true, "start_time": "04:37:00.000000"}
        });
        let text = highstate("master_master", &step, &HighstateOptions::default());
        assert!(text.contains("     Changes:   \n              web1:\n              ----------\n"), "{text}");
        assert!(text.contains("\n                        ID: changed\n"), "{text}");
        assert!(text.contains("\n              Summary for web1\n"), "{text}");
        assert!(text.ends_with("Summary for master_master\n------------\nSucceeded: 1 (changed=1)\nFailed:    0\n------------\nTotal states run:     1\nTotal run time:  12.500 ms"), "{text}");
    }

    #[test]
    fn full_output_is_salts() {
        let expected = "\
local:
----------
          ID: changed
    Function: test.succeed_with_changes
        Name: thing
      Result: True
     Comment: Success!
     Started: 04:36:59.998059
    Duration: 0.497 ms
     Changes:   
              ----------
              testing:
                  ----------
                  new:
                      Something pretended to change
                  old:
                      Unchanged
----------
          ID: nochange
    Function: test.succeed_without_changes
      Result: True
     Comment: Success!
     Started: 04:36:59.998641
    Duration: 0.446 ms
     Changes:   
----------
          ID: failing
    Function: test.fail_without_changes
      Result: False
     Comment: it broke
     Started: 04:36:59.999147
    Duration: 0.426 ms
     Changes:   
----------
          ID: echo
    Function: cmd.run
        Name: printf 'line one\\nline two\\n'
      Result: True
     Comment: Command \"printf 'line one\\nline two\\n'\" run
     Started: 04:37:00.002131
    Duration: 8.561 ms
     Changes:   
              ----------
              pid:
                  11281
              retcode:
                  0
              stderr:
              stdout:
                  line one
                  line two
----------
          ID: multi
    Function: test.configurable_test_state
      Result: True
     Comment: a comment
              with two lines
     Started: 04:37:00.010927
    Duration: 0.455 ms
     Changes:   
              ----------
              testing:
                  ----------
                  new:
                      Something pretended to change
                  old:
                      Unchanged

Summary for local
------------
Succeeded: 4 (changed=3)
Failed:    1
------------
Total states run:     5
Total run time:  10.385 ms";
        assert_eq!(highstate("local", &demo(), &HighstateOptions::default()), expected);
        assert_eq!(counts(&demo()), Some(StateCounts { succeeded: 4, failed: 1, unchanged: 0, changed: 3 }));
    }

    #[test]
    fn terse_mixed_and_changes_modes_are_salts() {
        let mut opts = HighstateOptions::default();
        opts.parse_mode("terse").unwrap();
        let text = highstate("local", &demo(), &opts);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "  Name: thing - Function: test.succeed_with_changes - Result: Changed - Started: 04:36:59.998059 - Duration: 0.497 ms"
        );
        assert_eq!(
            lines[2],
            "  Name: nochange - Function: test.succeed_without_changes - Result: Clean - Started: 04:36:59.998641 - Duration: 0.446 ms"
        );
        assert_eq!(
            lines[3],
            "  Name: failing - Function: test.fail_without_changes - Result: Failed - Started: 04:36:59.999147 - Duration: 0.426 ms"
        );
        assert_eq!(lines[6], "");
        assert_eq!(lines[7], "Summary for local");

        opts.parse_mode("terse_id").unwrap();
        assert!(highstate("local", &demo(), &opts).contains("  Name: echo - Function: cmd.run - Result: Changed"));

        opts.parse_mode("mixed").unwrap();
        let text = highstate("local", &demo(), &opts);
        assert!(text.contains("  Name: thing - Function"));
        assert!(text.contains("----------\n          ID: failing\n"));
        assert!(!text.contains("ID: echo"));

        opts.parse_mode("changes").unwrap();
        let text = highstate("local", &demo(), &opts);
        assert!(text.contains("----------\n          ID: changed\n"));
        assert!(text.contains("\n  Name: nochange - Function: test.succeed_without_changes - Result: Clean"));
        assert!(text.contains("----------\n          ID: failing\n"));

        opts.parse_mode("full_id").unwrap();
        assert!(!highstate("local", &demo(), &opts).contains("Name: "));
        assert!(opts.parse_mode("fancy").unwrap_err().contains("not a state output mode"));
    }

    #[test]
    fn quiet_test_mode_and_errors_are_salts() {
        let opts = HighstateOptions { verbose: false, ..Default::default() };
        let text = highstate("local", &demo(), &opts);
        assert!(!text.contains("ID: nochange"), "succeeded without changes is hidden");
        assert!(text.ends_with(
            "Succeeded: 4 (changed=3)\nFailed:    1\n------------\nTotal states run:     5\nTotal run time:  10.385 ms"
        ));

        let mut test = demo();
        test["test_|-changed_|-thing_|-succeed_with_changes"]["result"] = Value::Null;
        test["test_|-multi_|-multi_|-configurable_test_state"]["result"] = Value::Null;
        test["cmd_|-echo_|-printf 'line one\\nline two\\n'_|-run"]["result"] = Value::Null;
        let text = highstate("local", &test, &HighstateOptions::default());
        assert!(text.contains("      Result: None\n"));
        assert!(text.contains("\nSucceeded: 4 (unchanged=3, changed=3)\nFailed:    1\n"));

        let errors = json!(["No matching sls found for 'nosuch' in env 'base'"]);
        assert_eq!(
            highstate("local", &errors, &HighstateOptions::default()),
            "local:\n    Data failed to compile:\n----------\n    No matching sls found for 'nosuch' in env 'base'"
        );
        assert_eq!(highstate("m1", &json!("ERROR: no"), &HighstateOptions::default()), "m1:\n    ERROR: no");
    }

    #[test]
    fn long_runs_are_in_seconds_and_wide_counts_widen_the_summary() {
        let mut states = serde_json::Map::new();
        for i in 0..120 {
            states.insert(
                format!("test_|-s{i}_|-s{i}_|-nop"),
                json!({"__run_num__": i, "result": true, "changes": {}, "comment": "", "duration": 10.0, "start_time": "x"}),
            );
        }
        let text = highstate("m", &Value::Object(states), &HighstateOptions::default());
        assert!(text.ends_with(
            "\nSummary for m\n--------------\nSucceeded: 120\nFailed:      0\n--------------\nTotal states run:     120\nTotal run time:     1.200 s"
        ), "{text}");
    }
}
