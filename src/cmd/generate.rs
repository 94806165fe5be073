//! `tune generate`: write the man pages into a directory, or print a shell's completion script.

use std::io::Write;

use anyhow::Context as _;

use super::{Context, Outcome};
use crate::cli::generate::{Generate, GenerateArgs};

pub fn run(_ctx: &Context, args: &GenerateArgs) -> anyhow::Result<Outcome> {
    match &args.what {
        Generate::Man { out } => {
            let written = crate::docs::write_man_pages(out)?;
            for path in written {
                println!("{}", path.display());
            }
        }
        Generate::Completions { shell } => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&crate::docs::completions::script(*shell))
                .and_then(|()| stdout.flush())
                .context("writing the completion script to standard output")?;
        }
    }
    Ok(Outcome::Pass)
}
