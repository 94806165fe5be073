//! Flag names for errors: the flag of each input domain code may refuse ([`Input`]), and every
//! error printed with its flag in front. With the clap definitions, the only place that spells
//! the command line; domain code below `cmd/` names inputs, not flags.

use crate::values::{Input, Refused};

/// The flag an input is given with.
pub fn flag(input: Input) -> &'static str {
    match input {
        Input::Target => "--target",
        Input::Processes => "--processes",
        Input::Concurrency => "--concurrency",
        Input::Rate => "--rate",
        Input::CloseRate => "--close-rate",
        Input::MessageInterval => "--message-interval",
        Input::MemoryFloor => "--memory-floor",
        Input::Source => "--source",
        Input::Ignore => "--ignore",
        Input::Service => "--service",
        Input::StateDir => "--state-dir",
        Input::Pid => "--pid",
    }
}

/// A refused value with its flag in front: `--concurrency 0: expected 1 or more ...`.
pub fn refused(r: &Refused) -> String {
    r.shown(Some(flag(r.input)))
}

/// An error as `{:#}` prints it (each cause after a colon), with each refused value led by its
/// flag.
pub fn render(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| match c.downcast_ref::<Refused>() {
            Some(r) => refused(r),
            None => c.to_string(),
        })
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_value_is_printed_with_its_flag_through_context() {
        let e = anyhow::Error::new(Refused::new(Input::Concurrency, 0, "expected 1 or more"))
            .context("load");
        assert_eq!(render(&e), "load: --concurrency 0: expected 1 or more");
        let e = anyhow::Error::new(Refused::input(Input::Ignore, "unknown knob"));
        assert_eq!(render(&e), "--ignore: unknown knob");
    }
}
