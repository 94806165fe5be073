//! `tune profiles`: list and show resolved profiles.

use super::{Context, Outcome};

pub fn run(_ctx: &Context, _args: &crate::cli::profiles::ProfilesArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("tune profiles is not built yet")
}
