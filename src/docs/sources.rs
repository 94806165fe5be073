//! The profile data the man pages and completions show: the one seam between `docs` and the profile module.
//!
//! Pages and completions never read profile files themselves; they ask these
//! functions. Each says which item of `crate::profile` it stands for.

use crate::knobs::Role;

/// A profile tune ships: its name (as `--profile` takes it) and the TOML text of its file, comments included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipped {
    pub name: &'static str,
    pub text: &'static str,
}

/// Requirements worked out from the formulas alone for one target and role (`profile::for_target`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormulaExample {
    pub target: u64,
    pub role: Role,
    /// Knob name, required value as the kernel prints it, and the formula with its numbers.
    pub requirements: Vec<(String, String, String)>,
}

/// The profiles built into tune (`profile::SHIPPED`), in the order `tune profiles list` prints them.
pub fn shipped_profiles() -> Vec<Shipped> {
    crate::profile::SHIPPED
        .iter()
        .map(|&(name, text)| Shipped { name, text })
        .collect()
}

/// The targets the FORMULAS section of tune-profiles(5) works through, one table per role.
pub const FORMULA_TARGET: u64 = 1_000_000;

/// One example per role at [`FORMULA_TARGET`], from the profile module's formulas (`profile::for_target`).
pub fn formula_examples() -> Vec<FormulaExample> {
    Role::ALL
        .into_iter()
        .map(|role| FormulaExample {
            target: FORMULA_TARGET,
            role,
            requirements: {
                let mut rows: Vec<(String, String, String)> =
                    crate::profile::for_target(FORMULA_TARGET, role)
                        .requirements
                        .iter()
                        .map(|(k, r)| (k.to_string(), r.value.to_kernel(), r.why.clone()))
                        .collect();
                // By knob name, as the page has always listed them (the map is in registry order).
                rows.sort_by(|a, b| a.0.cmp(&b.0));
                rows
            },
        })
        .collect()
}

/// The knob names a profile may set under `[knobs]` (`profile::requirable_names`).
pub fn settable_knobs() -> Vec<&'static str> {
    crate::profile::requirable_names()
}
