//! Profiles: TOML files that state a target connection count, a role and requirements per knob, resolved to a flat `Profile`.
//!
//! Interface used by check and apply: [`load`] (by name or path) and
//! [`for_target`] (no file, requirements from formulas only).
//! FIXME(check issue): `extends`, formulas from the target, shipped profiles, errors with line numbers.

use std::collections::BTreeMap;

use anyhow::Context as _;

use crate::cli::profiles::Role;
use crate::knobs::{self, Value};
use crate::root::Root;

/// Where a requirement came from, so reports can say why a number is asked for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Requirement {
    pub value: Value,
    /// Why this value: the profile's comment, or the formula with its numbers.
    pub why: String,
}

/// A profile with inheritance flattened and formulas evaluated.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Profile {
    pub name: String,
    /// Where it was loaded from: `built-in`, or a file path.
    pub source: String,
    pub description: String,
    pub target: u64,
    pub role: Role,
    pub requirements: BTreeMap<&'static str, Requirement>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    #[serde(default)]
    description: String,
    target: u64,
    role: Role,
    #[serde(default)]
    knobs: BTreeMap<String, toml::Value>,
}

/// Loads a profile from a path (anything containing `/` or ending in `.toml`).
pub fn load(_root: &Root, spec: &str) -> anyhow::Result<Profile> {
    let text = std::fs::read_to_string(spec).with_context(|| format!("profile {spec}"))?;
    let raw: RawProfile = toml::from_str(&text).with_context(|| format!("profile {spec}"))?;
    let mut requirements = BTreeMap::new();
    for (name, v) in raw.knobs {
        let knob = knobs::lookup(&name).with_context(|| format!("profile {spec}"))?;
        let text = match &v {
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Array(a) => a
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let value = Value::parse(knob.shape, &text)
            .with_context(|| format!("profile {spec}: knob {name}"))?;
        requirements.insert(
            knob.name,
            Requirement {
                value,
                why: "set by the profile".into(),
            },
        );
    }
    Ok(Profile {
        name: spec.to_string(),
        source: spec.to_string(),
        description: raw.description,
        target: raw.target,
        role: raw.role,
        requirements,
    })
}
