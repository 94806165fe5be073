//! Arguments of `tune profiles`, and how the command line spells the domain's [`Role`].

use clap::builder::PossibleValue;
use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Clone, Args)]
pub struct ProfilesArgs {
    #[command(subcommand)]
    pub action: ProfilesAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ProfilesAction {
    /// List the shipped profiles and those in /etc/tune/profiles/.
    List,
    /// Print a profile fully resolved: inheritance flattened, formulas evaluated.
    Show {
        /// Profile name or path to a TOML file.
        #[arg(value_name = "NAME|PATH")]
        name: String,
    },
}

pub use crate::knobs::Role;

/// The command line's spelling of [`Role`]: its names, with the domain's help line for each.
impl ValueEnum for Role {
    fn value_variants<'a>() -> &'a [Self] {
        &Role::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()).help(self.help()))
    }
}
