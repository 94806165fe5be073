//! `tune serve`'s shutdown against clients that have closed already: the worker reads a
//! connection's pending end of file before it would send its 1001, and just closes it, so no
//! close frame meets a closed client socket (whose kernel answers with a reset). Run through
//! the binary by tests/interop/shutdown_eof.py in a network namespace of the test's own, where
//! /proc/net/snmp counts this run's resets alone.

use crate::serve_support;
use crate::support::{alone, command};

#[test]
fn shutdown_closes_connections_at_eof_without_a_1001_or_a_reset() {
    let _alone = alone();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/shutdown_eof.py");
    // 5,000: five times the events one epoll_wait takes (1,024), so the shutdown begins while
    // most ends of file are unread (before the fix, 2,953 of 5,000 were reset here).
    let mut cmd = command("unshare");
    cmd.args([
        "-n",
        "--",
        "sh",
        "-c",
        "ip link set lo up && exec \"$0\" \"$@\"",
    ])
    .arg(serve_support::python())
    .arg(script)
    .arg(env!("CARGO_BIN_EXE_tune"))
    .arg("5000");
    let out = cmd.output().expect("run shutdown_eof.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let j: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(j["connections"], 5000, "{j}");
    assert_eq!(j["server_exit"], 0, "{j}");
    assert_eq!(j["EstabResets"], 0, "resets after the shutdown: {j}");
    assert_eq!(j["OutRsts"], 0, "resets after the shutdown: {j}");
}
