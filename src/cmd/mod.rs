//! Orchestration of each subcommand: resolve arguments against the system, call the pure parts, print.

use std::io::IsTerminal;

use crate::cli::{Cli, Command};
use crate::root::Root;

/// Re-exported for the commands; it lives below `cmd/` so that reports and docs can name it.
pub use crate::outcome::Outcome;

pub mod apply;
pub mod check;
pub mod cost;
pub mod explain;
pub mod generate;
pub mod load;
pub mod profiles;
pub mod rollback;
pub mod serve;
pub mod server_config;
pub mod tls_cost;
pub mod top;
pub mod verify;

/// Asks `question` on the terminal and reads y/N; without a terminal it refuses, naming
/// `--yes` (to `what`) and `--dry-run`. Used by apply and rollback, which change the host.
pub(crate) fn confirm(question: &str, what: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, Write};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "refusing to change the host without confirmation: stdin is not a terminal; \
             pass --yes to {what}, or --dry-run to only see it"
        );
    }
    print!("\n{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// Refuses a `--pid` that does not exist and a root without a readable /proc (an empty
/// hostPath, a wrong --root), naming what is missing: check and top read nothing useful there.
pub(crate) fn require_proc(
    ctx: &Context,
    host: &crate::kernel::Host,
    pid: Option<u32>,
) -> anyhow::Result<()> {
    if let Some(pid) = pid {
        if let Err(missing) = host.process(Some(pid)).exists() {
            anyhow::bail!("--pid {pid}: no such process ({missing} does not exist)");
        }
    }
    match host.missing_essentials() {
        None => anyhow::bail!(
            "--root {}: no proc/ under it, so there is nothing to check: point --root at a tree holding the host's /proc and /sys",
            ctx.root.base().display()
        ),
        Some(missing) if !missing.is_empty() => anyhow::bail!(
            "--root {}: {} missing, so this is not a readable /proc: point --root at a tree holding the host's /proc and /sys",
            ctx.root.base().display(),
            missing.join(", ")
        ),
        Some(_) => Ok(()),
    }
}

/// What every command gets: the resolved root and whether to colour output.
#[derive(Debug, Clone)]
pub struct Context {
    pub root: Root,
    /// Colour only on a terminal, and never when NO_COLOR is set.
    pub color: bool,
}

impl Context {
    pub fn from_cli(cli: &Cli) -> anyhow::Result<Self> {
        let root = if cli.global.root == std::path::Path::new("/") {
            Root::host()
        } else {
            Root::new(&cli.global.root).map_err(|e| anyhow::anyhow!("--root: {e}"))?
        };
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Ok(Context {
            root,
            color: !no_color && std::io::stdout().is_terminal(),
        })
    }
}

pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let ctx = Context::from_cli(&cli)?;
    match &cli.command {
        Command::Check(a) => check::run(&ctx, a),
        Command::Apply(a) => apply::run(&ctx, a),
        Command::Rollback(a) => rollback::run(&ctx, a),
        Command::Serve(a) => serve::run(&ctx, a),
        Command::Load(a) => load::run(&ctx, a),
        Command::Top(a) => top::run(&ctx, a),
        Command::Profiles(a) => profiles::run(&ctx, a),
        Command::Explain(a) => explain::run(&ctx, a),
        Command::Generate(a) => generate::run(&ctx, a),
        Command::ServeWorker(a) => serve::worker(&ctx, a),
        Command::LoadWorker(a) => load::worker(&ctx, a),
    }
}
