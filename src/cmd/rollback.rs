//! `tune rollback`: undo the last apply from its record.

use super::{Context, Outcome};

pub fn run(_ctx: &Context, _args: &crate::cli::rollback::RollbackArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("tune rollback is not built yet")
}
