//! `brine-call`: run a function on this host (like salt-call).

use brine_minion::call::{exit, run, CallArgs};
use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    // brine-minion runs each job in a child started this way (not a user's command).
    if std::env::args_os().nth(1).is_some_and(|a| a == brine_minion::runner::RUNNER_FLAG) {
        return ExitCode::from(brine_minion::runner::serve());
    }
    let args = match CallArgs::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let code = run(args, &mut stdout.lock(), &mut std::io::stderr(), terminal);
    ExitCode::from(code)
}
