//! Shell integration generated from the clap definitions: completion scripts and
//! man pages (hidden `--completions SHELL` and `--man-dir DIR` flags of `brine-minion` and
//! `brine-call`, which the packages use). The same code as the master crate's `shell`:
//! the two crates share no library below `brine-proto`, which stays free of it.

use std::io::Write;
use std::path::Path;

/// The shells `completions` writes scripts for.
pub use clap_complete::Shell;

/// Writes `shell`'s completion script for the command `cmd` (its name is the binary's).
/// A closed pipe (`… | head`) is not an error.
pub fn completions(cmd: clap::Command, shell: Shell, out: &mut dyn Write) -> std::io::Result<()> {
    let mut cmd = visible(&cmd);
    let name = cmd.get_name().to_string();
    // clap_complete panics when its writer fails; give it memory, then write.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    match out.write_all(&script).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `cmd` without its hidden arguments and subcommands (packaging helpers), which the
/// completion generators would otherwise offer.
fn visible(cmd: &clap::Command) -> clap::Command {
    let mut out = clap::Command::new(cmd.get_name().to_string())
        .args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).map(visible));
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    if let Some(v) = cmd.get_version() {
        out = out.version(v.to_string());
    }
    out
}

/// Writes the man pages of `cmd` and of each visible subcommand into `dir`, in manual
/// `section` (`brine.1`, `brine-run.1`, `brine-key-list.1`, …; the daemons' pages go
/// to section 8, which also keeps `brine-minion.8` apart from `brine minion`'s
/// `brine-minion.1`) and returns their file names.
pub fn man_pages(cmd: clap::Command, dir: &Path, section: &str) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    // Subcommands have no version of their own: every page names the program's.
    let source = format!("{} {}", cmd.get_name(), cmd.get_version().unwrap_or_default());
    write_pages(cmd, dir, section, source.trim_end(), &mut written)?;
    written.sort();
    Ok(written)
}

fn write_pages(
    cmd: clap::Command,
    dir: &Path,
    section: &str,
    source: &str,
    written: &mut Vec<String>,
) -> std::io::Result<()> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name()).to_string();
    let file = format!("{name}.{section}");
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).section(section.to_string()).source(source.to_string()).render(&mut page)?;
    std::fs::write(dir.join(&file), page)?;
    written.push(file);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir, section, source, written)?;
    }
    Ok(())
}
