//! `brine`: the operator CLI. Parses the command line and hands it to the library.

use brine_master::cli::{exit, run, use_color, Cli, Io};
use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ERROR: cannot start: {e}");
            return ExitCode::from(exit::NOTHING_RAN);
        }
    };
    let stdout = std::io::stdout();
    let color = use_color(cli.color, stdout.is_terminal());
    let mut out = stdout.lock();
    let mut err = std::io::stderr();
    let mut input = std::io::stdin().lock();
    let progress = std::io::stderr().is_terminal();
    let mut io = Io { out: &mut out, err: &mut err, input: &mut input, color, progress };
    ExitCode::from(runtime.block_on(run(cli, &mut io)))
}
