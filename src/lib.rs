//! The `tune` library: knob registry, profiles, planning and reports behind the CLI.

pub mod cli;
pub mod cmd;
pub mod docs;
pub mod knobs;
pub mod profile;
pub mod root;
