//! `tune serve`: run the embedded server, or verify the host holds N connections.

use super::{Context, Outcome};

pub fn run(_ctx: &Context, _args: &crate::cli::serve::ServeArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("tune serve is not built yet")
}

pub fn worker(_ctx: &Context, _args: &crate::cli::serve::WorkerArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("server worker is not built yet")
}
