//! `tune generate`: write the man pages into a directory, or print a shell's completion script.

use std::io::Write;

use anyhow::Context as _;

use super::{Context, Outcome};
use crate::cli::generate::{Generate, GenerateArgs};
use crate::cli::Cli;
use crate::docs::ExitStatus;

/// The exit codes `main` maps outcomes to (`Outcome::exit_code`, and 2 for any error), for the man pages.
pub fn exit_statuses() -> Vec<ExitStatus> {
    let mut out: Vec<ExitStatus> = [Outcome::Pass, Outcome::ShortFall]
        .into_iter()
        .map(|o| ExitStatus {
            code: o.exit_code(),
            meaning: match o {
                Outcome::Pass => "Everything required holds (warnings allowed).",
                Outcome::ShortFall => {
                    "A requirement falls short, a plan could not be carried out in full, or a verify run fell short."
                }
            },
        })
        .collect();
    out.push(ExitStatus {
        code: 2,
        meaning: "Usage error (a bad argument, an unreadable profile) or an internal error; the message on standard error says which.",
    });
    out
}

pub fn run(_ctx: &Context, args: &GenerateArgs) -> anyhow::Result<Outcome> {
    match &args.what {
        Generate::Man { out } => {
            let written = crate::docs::write_man_pages(out, &Cli::command(), &exit_statuses())?;
            for path in written {
                println!("{}", path.display());
            }
        }
        Generate::Completions { shell } => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&crate::docs::completions::script(&Cli::command(), *shell))
                .and_then(|()| stdout.flush())
                .context("writing the completion script to standard output")?;
        }
    }
    Ok(Outcome::Pass)
}
