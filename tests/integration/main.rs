//! The one integration test binary: every test of the `tune` binary and the embedded server, one
//! module per area (in the style of bottom's `tests/integration/main.rs`). One binary links once,
//! where 23 linked 23 times; `support` is the one way a test runs a program (time limit, process
//! group killed on timeout), and the `*_support` modules hold each area's helpers.
//!
//! Run one area with `cargo test --test integration apply_`, one test by its full name.

mod support;

mod apply_support;
mod container_support;
mod serve_support;
mod tmux_support;
mod verify_support;

mod apply_bad_input;
mod apply_consumers;
mod apply_drift;
mod apply_fakeroot;
mod apply_host_dryrun;
mod apply_limits;
mod apply_netns;
mod architecture;
mod check_capture;
mod check_cli;
mod check_fix_order;
mod check_guards;
mod check_other_kernel;
mod check_prometheus;
mod check_service;
mod check_storm;
mod check_terminal;
mod check_tls;
mod cli_quantities;
mod container;
mod fuzz_replay;
mod generate_completions;
mod generate_man;
mod load_cli;
mod load_diagnosis;
mod load_storm;
mod man_examples;
mod profile_errors;
mod profiles_cli;
mod readme;
mod screens_terminal;
mod serve_browser;
mod serve_fdcap;
mod serve_hostile;
mod serve_interop;
mod serve_library;
mod serve_protocol;
mod serve_shutdown;
mod serve_tls;
mod top_cli;
mod top_prometheus;
mod top_terminal;
mod verify_args;
mod verify_conntrack;
mod verify_external;
mod verify_ipv6;
mod verify_limits;
mod verify_loopback;
mod verify_parallel;
mod verify_storm;
mod yourserver;
