//! The `tune` library: knob registry, profiles, planning and reports behind the CLI.

pub mod apply_plan;
pub mod backlog;
pub mod capacity;
pub mod cli;
pub mod cmd;
pub mod container;
pub mod docs;
pub mod kernel;
pub mod knobs;
pub mod launch;
pub mod outcome;
pub mod persist;
pub mod ports;
pub mod probe;
pub mod profile;
pub mod quantity;
pub mod report;
pub mod root;
pub mod state;
pub mod text;
pub mod top;
pub mod transaction;
pub mod units;
pub mod values;
pub mod verify;
