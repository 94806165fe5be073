//! `tune load`: the load generator alone.

use super::{Context, Outcome};

pub fn run(_ctx: &Context, _args: &crate::cli::load::LoadArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("tune load is not built yet")
}

pub fn worker(_ctx: &Context, _args: &crate::cli::load::WorkerArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("load worker is not built yet")
}
