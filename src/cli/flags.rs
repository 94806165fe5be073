//! Flag names: the flag of each input domain code refuses or suggests ([`Input`]), every error
//! printed with its flag in front, and the speller that shows a domain's
//! [`Suggest`](crate::values::Suggest) as `--workers 25`. With the clap definitions, the only
//! place that spells the command line; domain code below `cmd/` names inputs, not flags.

use crate::values::{Input, Refused};

/// Hands [`flag`] down to the domain, so that a `Suggest` in its advice reads as the command
/// line's flag. `main` calls it first; the worker subcommands go through `main` too.
pub fn install() {
    crate::values::install_speller(flag);
}

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
        Input::Profile => "--profile",
        Input::Persist => "--persist",
        Input::AllowLower => "--allow-lower",
        Input::Verbose => "--verbose",
        Input::Format => "--format",
        Input::CostFrom => "--cost-from",
        Input::Workers => "--workers",
        Input::Expect => "--expect",
        Input::Verify => "--verify",
        Input::Conns => "--conns",
        Input::ConnectTimeout => "--connect-timeout",
        Input::ServerPid => "--server-pid",
        Input::ServerCgroup => "--server-cgroup",
        Input::Steps => "--steps",
        Input::Listen => "--listen",
        Input::Tls => "--tls",
        Input::TlsCost => "--tls-cost",
        Input::TlsFrom => "--tls-from",
        Input::Ca => "--ca",
        Input::Insecure => "--insecure",
        Input::Storm => "--storm",
        Input::Index => "--index",
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

    /// Every input's flag is one clap defines (on some subcommand), so a suggestion printed
    /// from the table can be typed as printed.
    #[test]
    fn every_input_is_spelled_as_a_flag_clap_defines() {
        let mut longs = std::collections::BTreeSet::new();
        let mut stack = vec![crate::cli::Cli::command()];
        while let Some(c) = stack.pop() {
            longs.extend(
                c.get_arguments()
                    .filter_map(|a| a.get_long())
                    .map(String::from),
            );
            stack.extend(c.get_subcommands().cloned());
        }
        for &i in Input::ALL {
            let f = flag(i);
            assert!(longs.contains(&f[2..]), "{i:?}: {f} is not a flag of tune");
        }
    }

    #[test]
    fn a_suggestion_reads_as_the_flag_once_installed() {
        install();
        let s = crate::values::Suggest::set(Input::Workers, 25);
        assert_eq!(s.to_string(), "--workers 25");
        assert_eq!(
            crate::values::Suggest::input(Input::Rate).to_string(),
            "--rate"
        );
    }
}
