//! `tune explain`: describe a knob from its registry entry.

use super::{Context, Outcome};

pub fn run(_ctx: &Context, _args: &crate::cli::explain::ExplainArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("tune explain is not built yet")
}
