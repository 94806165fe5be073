//! `tune generate`: man pages and shell completions.

use super::{Context, Outcome};

pub fn run(_ctx: &Context, _args: &crate::cli::generate::GenerateArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("tune generate is not built yet")
}
