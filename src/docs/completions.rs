//! Shell completion scripts (clap_complete), with knob names and shipped profile names offered where an argument takes them.
//!
//! The scripts are static: the candidates are written into them when they are
//! generated, so a shell never runs tune to complete. Which arguments get
//! which candidates follows from their value names in `src/cli/`, so no
//! argument list is kept here:
//!
//! - a value name starting with `KNOB` (`explain KNOB`, `check --ignore KNOB[,KNOB]|all`)
//!   is offered every registry knob and `all`;
//! - a value name starting with `NAME|PATH` (`--profile`, `profiles show`) is offered
//!   the shipped profile names.
//!
//! The candidates only help completion: the arguments still accept any text
//! and the commands report unknown names themselves.

use std::ffi::OsStr;

use clap::builder::{PossibleValue, StringValueParser, TypedValueParser};
use clap::Command;
use clap_complete::Shell;

/// Accepts any text like a plain string argument, and lists `candidates` for completion.
#[derive(Debug, Clone)]
struct Offer {
    candidates: Vec<&'static str>,
}

impl TypedValueParser for Offer {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<String, clap::Error> {
        StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            self.candidates.iter().map(|&c| PossibleValue::new(c)),
        ))
    }
}

/// What an argument with this value name is offered, if anything.
fn candidates_for(value_name: &str) -> Option<Vec<&'static str>> {
    if value_name.starts_with("KNOB") {
        let mut names: Vec<&'static str> = crate::knobs::REGISTRY.iter().map(|k| k.name).collect();
        names.push("all");
        Some(names)
    } else if value_name.starts_with("NAME|PATH") {
        let names: Vec<&'static str> = super::sources::shipped_profiles()
            .iter()
            .map(|p| p.name)
            .collect();
        // With no names to offer, leave the argument alone so shells complete file paths.
        (!names.is_empty()).then_some(names)
    } else {
        None
    }
}

/// `cmd` and all its subcommands with candidates attached to the arguments that take knob or profile names.
fn with_candidates(mut cmd: Command) -> Command {
    let offers: Vec<(clap::Id, Vec<&'static str>)> = cmd
        .get_arguments()
        .filter_map(|a| {
            let name = a.get_value_names()?.first()?;
            Some((a.get_id().clone(), candidates_for(name)?))
        })
        .collect();
    for (id, candidates) in offers {
        cmd = cmd.mut_arg(id, |a| a.value_parser(Offer { candidates }));
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for sub in subs {
        cmd = cmd.mut_subcommand(sub, with_candidates);
    }
    cmd
}

/// The command tree the completion scripts are generated from: the CLI without its hidden
/// subcommands (clap_complete would offer `__serve-worker`), with candidates attached.
pub fn command(cli: &Command) -> Command {
    let mut root = Command::new("tune")
        .args(cli.get_arguments().cloned())
        .subcommands(cli.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if cli.get_version().is_some() {
        root = root.version(env!("CARGO_PKG_VERSION"));
    }
    with_candidates(root)
}

/// fish lines for positional arguments with candidates, which clap_complete's fish generator leaves out.
fn fish_positionals(cmd: &Command, path: &mut Vec<String>, out: &mut String) {
    for arg in cmd.get_arguments().filter(|a| a.is_positional()) {
        let Some(values) = arg.get_value_parser().possible_values() else {
            continue;
        };
        let values: Vec<String> = values.map(|v| v.get_name().to_string()).collect();
        let condition: Vec<String> = path
            .iter()
            .map(|p| format!("__fish_seen_subcommand_from {p}"))
            .collect();
        out.push_str(&format!(
            "complete -c tune -n \"{}\" -f -a \"{}\"\n",
            condition.join("; and "),
            values.join(" ")
        ));
    }
    for sub in cmd.get_subcommands() {
        path.push(sub.get_name().to_string());
        fish_positionals(sub, path, out);
        path.pop();
    }
}

/// The completion script for `shell`, from the CLI's command tree.
pub fn script(cli: &Command, shell: Shell) -> Vec<u8> {
    let mut cmd = command(cli);
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "tune", &mut out);
    if shell == Shell::Fish {
        let mut extra = String::from("# Positional arguments: knob and profile names.\n");
        fish_positionals(&cmd, &mut Vec::new(), &mut extra);
        out.extend_from_slice(extra.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(cmd: &'a Command, path: &[&str]) -> &'a Command {
        path.iter().fold(cmd, |c, name| {
            c.find_subcommand(name)
                .unwrap_or_else(|| panic!("no subcommand {name}"))
        })
    }

    fn offered(cmd: &Command, arg: &str) -> Vec<String> {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_id() == arg)
            .unwrap_or_else(|| panic!("{}: no argument {arg}", cmd.get_name()));
        arg.get_value_parser()
            .possible_values()
            .map(|pv| pv.map(|v| v.get_name().to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn knob_arguments_offer_every_registry_knob() {
        let cmd = command(&crate::cli::Cli::command());
        for (path, arg) in [(&["explain"][..], "knob"), (&["check"][..], "ignore")] {
            let names = offered(find(&cmd, path), arg);
            for knob in crate::knobs::REGISTRY {
                assert!(
                    names.iter().any(|n| n == knob.name),
                    "{path:?} {arg}: {} missing",
                    knob.name
                );
            }
            assert!(names.iter().any(|n| n == "all"));
        }
    }

    #[test]
    fn offered_arguments_still_accept_any_text() {
        let cmd = command(&crate::cli::Cli::command());
        let m = cmd
            .try_get_matches_from(["tune", "explain", "not.a.knob"])
            .expect("explain accepts unknown names; the command reports them");
        let (_, sub) = m.subcommand().unwrap();
        assert_eq!(sub.get_one::<String>("knob").unwrap(), "not.a.knob");
    }

    #[test]
    fn every_shell_gets_a_script_naming_the_knobs() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = String::from_utf8(script(&crate::cli::Cli::command(), shell)).unwrap();
            assert!(
                text.contains("net.core.somaxconn"),
                "{shell}: knob names missing"
            );
        }
    }
}
