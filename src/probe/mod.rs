//! Probes: small live experiments that ask the kernel what no file says (does conntrack track this namespace? is a process in our network namespace?).
//!
//! A probe only runs against the live host (`Root::is_host`); under a captured root it
//! answers "unknown" and the caller falls back to what the files say.

pub mod conntrack;
pub mod netns;
