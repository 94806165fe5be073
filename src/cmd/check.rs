//! `tune check`: compare the host with a profile and estimate its capacity.

use super::{Context, Outcome};

pub fn run(_ctx: &Context, _args: &crate::cli::check::CheckArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("tune check is not built yet")
}
