//! `tune top`: every limit's headroom, live, with time to exhaustion, on screen and as Prometheus metrics.
//!
//! - [`model`]: the state and arithmetic, pure (ring buffers, rates, time to exhaustion,
//!   the binding limit, sorting);
//! - [`sample`]: one refresh read through `kernel::Host` and the knob registry;
//! - [`render`]: the screen (ratatui), also as plain text for `--once`;
//! - [`metrics`]: the Prometheus text format of a view, pure;
//! - [`http`]: the `/metrics` endpoint of `--listen`.
//!
//! `cmd/top.rs` runs them as phases.

pub mod http;
pub mod metrics;
pub mod model;
pub mod render;
pub mod sample;
