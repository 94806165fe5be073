//! The load's diagnosis ranks the run's own evidence above counters other processes move: a
//! second listener in the same network namespace overflows its accept queue while `tune load`
//! meets a TLS server that never answers. Issue 24's pair run (round 5) named `listen_backlog`
//! from the other copy's ListenOverflows; the clients' TLS handshake timeouts must lead. The
//! namespace is a fresh one (`unshare -n`), so nothing here moves the host's counters.

use crate::support::skip;
use crate::verify_support::*;

/// In the namespace: a listener that accepts TCP (the kernel does) and never answers the
/// ClientHello, and a second one with a one-place accept queue that connects (never accepted)
/// overflow for as long as `tune load` runs. Prints the load's JSON, and exits with its code.
const SCENARIO: &str = r#"
import socket, subprocess, sys, time
silent = socket.socket(); silent.bind(("127.0.0.1", 0)); silent.listen(128)
busy = socket.socket(); busy.bind(("127.0.0.1", 0)); busy.listen(0)
load = subprocess.Popen([sys.argv[1], "load", "wss://localhost:%d/" % silent.getsockname()[1],
    "--conns", "3", "--processes", "1", "--connect-timeout", "1", "--stall", "2",
    "--format", "json"], stdout=subprocess.PIPE)
waiting = []
while load.poll() is None:
    # Each connect beyond the queue has its SYN dropped (ListenOverflows, ListenDrops) and
    # sent again; 300 stay well under a default fd cap of 1,024.
    if len(waiting) < 300:
        s = socket.socket(); s.setblocking(False)
        s.connect_ex(("127.0.0.1", busy.getsockname()[1]))
        waiting.append(s)
    time.sleep(0.005)
sys.stdout.buffer.write(load.stdout.read())
sys.exit(load.returncode)
"#;

#[test]
fn another_listeners_overflows_do_not_outrank_the_clients_tls_timeouts() {
    const TEST: &str = "another_listeners_overflows_do_not_outrank_the_clients_tls_timeouts";
    if let Err(e) = command("unshare").args(["-n", "true"]).output() {
        return skip(TEST, &format!("unshare (util-linux) does not run: {e}"));
    }
    let mut cmd = command("unshare");
    cmd.args([
        "-n",
        "sh",
        "-c",
        "ip link set lo up && exec python3 -c \"$0\" \"$1\"",
    ])
    .args([SCENARIO, env!("CARGO_BIN_EXE_tune")]);
    let (code, j, stderr) = run(cmd);
    check_load_schema(&j);
    assert_eq!(code, 1, "{j:#}\n{stderr}");
    // The scenario happened: the namespace's accept queue overflowed during the connects...
    let overflows = j["netstat_deltas"]["ListenOverflows"].as_u64().unwrap_or(0);
    assert!(overflows > 0, "the second listener did not overflow: {j:#}");
    // ...and the clients saw only TLS handshake timeouts.
    let errors = j["errors"].as_object().unwrap();
    assert!(
        errors["tls_handshake_timeout"].as_u64().unwrap() > 0,
        "{j:#}"
    );
    let others: u64 = errors
        .iter()
        .filter(|(k, _)| *k != "tls_handshake_timeout")
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(others, 0, "{j:#}");
    // The clients' own errors name the cause, not the other listener's queue.
    let d = &j["diagnosis"];
    assert_eq!(d["limit"], "tls", "{j:#}");
    assert!(
        d["value"].as_str().unwrap().contains("did not finish"),
        "{j:#}"
    );
}
