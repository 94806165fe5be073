//! `tune apply`: plan and make the changes a profile asks for, with a transaction record.

use super::{Context, Outcome};

pub fn run(_ctx: &Context, _args: &crate::cli::apply::ApplyArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("tune apply is not built yet")
}
