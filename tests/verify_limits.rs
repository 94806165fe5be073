//! Induced limits, each named by the diagnosis: the server's RLIMIT_NOFILE lowered (lowering
//! needs no privilege), a narrow port range with one source address inside a fresh network
//! namespace, and a memory floor the run cannot keep. Each run must exit 1 with the limit,
//! its value and a fix.

mod verify_support;
use verify_support::*;

fn verify_args(n: &str) -> Vec<String> {
    [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--verify",
        n,
        "--hold",
        "1",
        "--stall",
        "2",
        "--format",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn server_fd_cap_is_named_rlimit_nofile_on_the_server_side() {
    // Every process of the run gets 1500 fds; one server worker can then hold about
    // 1500 - backlog 128 - margin, while three client processes hold 1000 each.
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg("--nofile=1500:1500")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_tune"))
        .args(verify_args("3000"))
        .args(["--workers", "1", "--backlog", "128", "--processes", "3"]);
    let (code, j, stderr) = run(cmd);
    check_schema(&j);
    assert_eq!(code, 1, "{j:#}\n{stderr}");
    assert_eq!(j["verified"], false);
    let d = &j["diagnosis"];
    assert_eq!(d["limit"], "rlimit_nofile", "{d:#}");
    assert_eq!(d["side"], "server", "{d:#}");
    assert_eq!(d["knob"], "rlimit.nofile.hard");
    assert!(
        d["value"]
            .as_str()
            .unwrap()
            .contains("RLIMIT_NOFILE 1,500 per server worker"),
        "{d:#}"
    );
    let reached = j["reached"].as_u64().unwrap();
    assert!((1000..1500).contains(&reached), "reached {reached}");
    assert!(d["fix"][0].as_str().unwrap().contains("--workers"), "{d:#}");
    // The prediction saw the same lowered limit.
    assert_eq!(j["prediction"]["per_process"], 1490);
    no_workers_left_of(env!("CARGO_BIN_EXE_tune"));
}

#[test]
fn narrow_port_range_with_one_source_is_named_ports() {
    // A fresh network namespace: its port range is ours to narrow; the host's is untouched.
    let script = format!(
        "ip link set lo up && sysctl -qw net.ipv4.ip_local_port_range='40000 40499' && exec {} {}",
        env!("CARGO_BIN_EXE_tune"),
        verify_args("2000").join(" ")
    );
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-n", "sh", "-c"])
        .arg(format!("{script} --source 127.0.0.2"));
    let (code, j, stderr) = run(cmd);
    check_schema(&j);
    assert_eq!(code, 1, "{j:#}\n{stderr}");
    let d = &j["diagnosis"];
    assert_eq!(d["limit"], "ports", "{d:#}");
    assert_eq!(d["side"], "client");
    assert_eq!(d["knob"], "net.ipv4.ip_local_port_range");
    assert!(
        d["value"]
            .as_str()
            .unwrap()
            .contains("40000-40499 (500 ports) × 1 source address"),
        "{d:#}"
    );
    assert!(j["errors"]["eaddrnotavail"].as_u64().unwrap() > 0);
    // 500 ports, one of them taken by the server's own listener (bound from the same range).
    let reached = j["reached"].as_u64().unwrap();
    assert!((450..=500).contains(&reached), "reached {reached}");
    assert!(
        d["fix"][0]
            .as_str()
            .unwrap()
            .contains("--source 127.0.0.2-"),
        "{d:#}"
    );
    // The prediction, told about the single source, saw the port limit coming.
    assert_eq!(
        j["prediction"]["binding_limit"],
        "net.ipv4.ip_local_port_range"
    );
    // The host's own range is unchanged.
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    assert!(!host.contains("40000"), "{host}");
}

#[test]
fn memory_floor_above_what_the_run_keeps_is_named_memory_with_a_projection() {
    // 20,000 loopback pairs take ~200 MB here; a floor 40 MB under what is available now
    // cannot be kept. (Other processes freeing memory meanwhile could let the run through:
    // then it is run once more.)
    let mut last = None;
    for _ in 0..2 {
        let floor = mem_available().saturating_sub(40 << 20).to_string();
        let mut cmd = tune();
        cmd.args(verify_args("20000"))
            .args(["--memory-floor", &floor]);
        let (code, j, stderr) = run(cmd);
        check_schema(&j);
        if code == 1 {
            let d = &j["diagnosis"];
            assert_eq!(d["limit"], "memory", "{d:#}\n{stderr}");
            assert_eq!(d["side"], "host");
            let reached = j["reached"].as_u64().unwrap();
            assert!(reached < 20_000);
            let projected = d["projected_connections"].as_u64().expect("a projection");
            assert!(projected >= reached, "{d:#}");
            assert!(
                d["value"].as_str().unwrap().starts_with("memory floor"),
                "{d:#}"
            );
            no_workers_left_of(env!("CARGO_BIN_EXE_tune"));
            return;
        }
        last = Some((code, j));
    }
    panic!("the memory floor never stopped the run: {last:#?}");
}
