//! Orchestration of each subcommand: resolve arguments against the system, call the pure parts, print.

use std::io::IsTerminal;

use crate::cli::{Cli, Command};
use crate::root::Root;

/// Re-exported for the commands; it lives below `cmd/` so that reports and docs can name it.
pub use crate::outcome::Outcome;

pub mod apply;
pub mod check;
pub mod explain;
pub mod generate;
pub mod load;
pub mod profiles;
pub mod rollback;
pub mod serve;
pub mod verify;

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
        Command::Profiles(a) => profiles::run(&ctx, a),
        Command::Explain(a) => explain::run(&ctx, a),
        Command::Generate(a) => generate::run(&ctx, a),
        Command::ServeWorker(a) => serve::worker(&ctx, a),
        Command::LoadWorker(a) => load::worker(&ctx, a),
    }
}
