//! `tune serve --verify N --external` with `tune load` as the other host (here on loopback):
//! the server alone waits for N connections, holds them and reports; the clients hold until
//! the server closes them (1001 going away), which they count as closed, not dropped. (No
//! messages in flight here: the server closes right after its 1001 frame, so a message
//! arriving after that is answered with a reset, which the client rightly counts as a drop.)

use crate::verify_support;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use verify_support::*;

/// How often a verify or load looks at its connection count (src/verify/rig.rs TICK).
const LOOK: f64 = 0.1;

#[test]
fn external_verify_with_tune_load_as_the_client_host() {
    let mut server = tune()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--verify",
            "3000",
            "--external",
            "--hold",
            "2",
            "--stall",
            "3",
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(server.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 {
        if let Some(rest) = line.split("listening on ").nth(1) {
            addr = rest.split_whitespace().next().map(str::to_string);
            break;
        }
        line.clear();
    }
    let addr = addr.expect("the server prints its address");
    std::thread::spawn(move || for _ in err.lines() {});
    // A second of waiting before the clients come, which the server's clock must leave out.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let mut load = tune();
    load.args([
        "load",
        &format!("ws://{addr}/"),
        "--conns",
        "3000",
        "--hold",
        "30",
        "--format",
        "json",
    ]);
    let (lcode, lj, lerr) = run(load);
    let out = server.wait_with_output().unwrap();
    let sj: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    check_schema(&sj);
    assert_eq!(out.status.code(), Some(0), "{sj:#}");
    assert_eq!(sj["mode"], "external");
    assert_eq!(sj["verified"], true);
    assert_eq!(sj["reached"], 3000);
    assert_eq!(sj["client_processes"], 0);
    // The clock starts with the first client, not with the server: not the seconds waited.
    // The clients' own clock (tune load's time to reach) starts before the first connection
    // reaches the server and stops after the server has them all (it completes each
    // handshake before its client sees the 101), so the server's can only be longer by its
    // sampling: each end looks every 100 ms, and the first client is dated one look back.
    // (A fixed bound here failed when connecting took 7.6 s on a busy host.)
    let server_ttr = sj["time_to_reach_seconds"].as_f64().unwrap();
    let client_ttr = lj["time_to_reach_seconds"].as_f64().unwrap();
    assert!(
        server_ttr <= client_ttr + 2.0 * LOOK,
        "server {server_ttr} s, clients {client_ttr} s: {sj:#}"
    );
    assert!(
        sj["notes"][0]
            .as_str()
            .unwrap()
            .contains("messages during the hold"),
        "{sj:#}"
    );
    // The client side: all open, ended by the server's shutdown (1001), nothing dropped, and
    // it stopped holding when the server closed (not after 30 s).
    assert_eq!(lcode, 0, "{lj:#}\n{lerr}");
    assert_eq!(lj["reached"], 3000);
    assert_eq!(lj["dropped"], 0);
    assert_eq!(lj["closed_by_server"], 3000);
    assert!(lj["held_seconds"].as_f64().unwrap() < 20.0, "{lj:#}");
    no_workers_left_of(env!("CARGO_BIN_EXE_tune"));
}

/// Clients that stop short and close before the server gives up: the server reports the most
/// that were open at once (not the 0 left when it looked last) and says the load generators
/// stopped, since nothing failed on its side (issue 15: loaders out of ports on other hosts).
#[test]
fn external_server_says_the_clients_stopped_and_keeps_their_peak() {
    // Server and clients in a network namespace of their own: the diagnosis reads this
    // namespace's TCP counters (ListenOverflows ...), which other processes of the host's
    // namespace move too (a busy host once made this "listen_backlog").
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "D={d}; ip link set lo up; \
         $TUNE serve --listen 127.0.0.1:0 --verify 2000 --external --stall 4 --format json \
           > $D/server.json 2> $D/server.err & srv=$!; \
         for i in $(seq 300); do grep -q 'listening on' $D/server.err && break; sleep 0.1; done; \
         addr=$(sed -n 's/.*listening on \\([^ ]*\\).*/\\1/p' $D/server.err | head -n 1); \
         $TUNE load \"ws://$addr/\" --conns 800 --hold 1 --format json > $D/load.json 2> $D/load.err; \
         echo $? > $D/load.code; wait $srv; echo $? > $D/server.code",
        d = dir.path().display()
    );
    // 800 of the 2,000, held 1 s, then closed: the server is still waiting for more.
    let out = command("unshare")
        .args(["-n", "sh", "-c", &script])
        .env("TUNE", env!("CARGO_BIN_EXE_tune"))
        .output()
        .expect("unshare (util-linux) runs");
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
    let log = format!(
        "{}\nserver: {}\nload: {}",
        String::from_utf8_lossy(&out.stderr),
        read("server.err"),
        read("load.err")
    );
    let lj: serde_json::Value = serde_json::from_str(&read("load.json"))
        .unwrap_or_else(|e| panic!("load report: {e}\n{log}"));
    assert_eq!(read("load.code").trim(), "0", "{lj:#}\n{log}");
    let sj: serde_json::Value = serde_json::from_str(&read("server.json"))
        .unwrap_or_else(|e| panic!("server report: {e}\n{log}"));
    check_schema(&sj);
    assert_eq!(read("server.code").trim(), "1", "{sj:#}\n{log}");
    assert_eq!(sj["verified"], false);
    assert_eq!(sj["reached"], 800, "{sj:#}");
    let d = &sj["diagnosis"];
    assert_eq!(d["limit"], "clients_stopped", "{sj:#}");
    assert_eq!(d["side"], "client", "{sj:#}");
    assert!(
        d["value"]
            .as_str()
            .unwrap()
            .contains("stopped at 800 of 2,000"),
        "{d:#}"
    );
    assert!(
        d["evidence"]
            .as_str()
            .unwrap()
            .contains("0 were open when it gave up"),
        "{d:#}"
    );
}
