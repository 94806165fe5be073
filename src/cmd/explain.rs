//! `tune explain`: print a knob's [`KnobDoc`](crate::knobs::KnobDoc), the same one tune-knobs(7) renders.

use super::{Context, Outcome};
use crate::knobs::{self, REGISTRY};
use crate::text::width;

pub fn run(_ctx: &Context, args: &crate::cli::explain::ExplainArgs) -> anyhow::Result<Outcome> {
    if args.knob == "all" {
        let all: Vec<String> = REGISTRY.iter().map(|k| k.doc().text(width())).collect();
        print!("{}", all.join("\n"));
    } else {
        print!("{}", knobs::resolve(&args.knob)?.doc().text(width()));
    }
    Ok(Outcome::Pass)
}
