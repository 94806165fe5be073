//! IPv6 end to end, through the binary, each in a fresh network namespace (`unshare -n`) whose
//! addresses and routes the test itself adds and which dies with it: `serve --verify` over ::1
//! with AnyIP sources (IP_FREEBIND, a /64 without a count: as many as the run needs) VERIFIED, the same without sources stopped at the port range
//! with IPv6 fixes, `tune load` from a list of assigned IPv6 sources, and a dual-stack `[::]`
//! listener held by IPv4 and IPv6 clients at once. 2001:db8::/32 is the documentation prefix
//! (RFC 3849): never routed anywhere, so nothing here can reach beyond the namespace.

use crate::container_support::skip;
use crate::verify_support::*;

/// Runs `script` under `sh -c` in a fresh network namespace with lo up, unless IPv6 is off
/// there (a visible skip; a failure under TUNE_TEST_STRICT=1).
fn in_netns_v6(test: &str, script: &str) -> Option<Tune> {
    let ok = command("unshare")
        .args([
            "-n",
            "sh",
            "-c",
            "ip link set lo up && ip -6 route add local 2001:db8:ff::/64 dev lo",
        ])
        .output();
    match ok {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            skip(
                test,
                &format!(
                    "no IPv6 in a fresh network namespace: {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
            );
            return None;
        }
        Err(e) => {
            skip(test, &format!("unshare (util-linux) does not run: {e}"));
            return None;
        }
    }
    let mut cmd = command("unshare");
    cmd.args(["-n", "sh", "-c"])
        .arg(format!("ip link set lo up && {script}"));
    Some(cmd)
}

/// `serve --verify N` over ::1; `stall` seconds without a rise end the run (a run of tens of
/// thousands on a busy 2-core machine needs a longer one).
fn verify_json(n: &str, stall: u32) -> String {
    format!(
        "{} serve --listen '[::1]:0' --verify {n} --hold 1 --stall {stall} --format json",
        env!("CARGO_BIN_EXE_tune")
    )
}

#[test]
fn verify_60000_over_ipv6_loopback_from_an_anyip_prefix() {
    const TEST: &str = "verify_60000_over_ipv6_loopback_from_an_anyip_prefix";
    // About 15 KB of kernel memory per IPv6 pair measured here, the default floor and slack.
    if mem_available() < 3 << 30 {
        skip(
            TEST,
            "MemAvailable is under 3 GiB: 60,000 IPv6 pairs need about 1 GiB of slab",
        );
        return;
    }
    let _alone = alone();
    let Some(cmd) = in_netns_v6(
        TEST,
        &format!(
            "ip -6 route add local 2001:db8:100::/64 dev lo && exec {} --source 2001:db8:100::/64",
            verify_json("60000", 10)
        ),
    ) else {
        return;
    };
    let (code, j, stderr) = run(cmd);
    check_schema(&j);
    assert_eq!(code, 0, "{j:#}\n{stderr}");
    assert_eq!(j["verified"], true, "{j:#}");
    assert_eq!(j["reached"], 60000);
    assert_eq!(j["echoes"], 60000);
    // The /64 without a count (issue 24): tune took as many addresses as the run needs, one
    // share per client process (60,000 connections need several under a 20,000 fd cap), and
    // said how many before it started.
    let procs = j["client_processes"].as_u64().unwrap();
    assert!(procs >= 3, "60,000 connections in {procs} client processes");
    let took = stderr
        .lines()
        .find(|l| l.contains("--source 2001:db8:100::/64: took "))
        .unwrap_or_else(|| panic!("no line saying what was taken: {stderr}"));
    let n: u64 = took
        .split("took ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{took}"));
    assert!(
        n >= procs && n < 100,
        "took {n} for {procs} processes: {took}"
    );
    assert!(
        took.contains(&format!(
            "took {n} addresses (2001:db8:100::1 .. 2001:db8:100::{n:x}), as many as 60,000 \
             connections from {procs} client processes need"
        )),
        "{took}"
    );
    assert_eq!(
        j["sources"],
        format!("{n} addresses, 2001:db8:100::1 .. 2001:db8:100::{n:x}")
    );
    // The prediction counted the sources it could take, not 127.0.0.0/8.
    assert_eq!(
        j["prediction"]["meets_target"], true,
        "{:#}",
        j["prediction"]
    );
    // IPv6 sockets: the TCPv6 cache grew by both ends of every connection.
    let v6 = j["kernel_memory"]["slab_breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["cache"] == "TCPv6")
        .expect("TCPv6 cache grew");
    assert!(v6["objects"].as_u64().unwrap() >= 100_000, "{v6}");
    assert!(!stderr.contains("cannot fit"), "{stderr}");
    no_workers_left_of(env!("CARGO_BIN_EXE_tune"));
}

#[test]
fn ipv6_loopback_alone_stops_at_the_port_range_with_ipv6_fixes() {
    const TEST: &str = "ipv6_loopback_alone_stops_at_the_port_range_with_ipv6_fixes";
    // 1,000 ports in this namespace: ::1 alone holds under 1,000 of 2,000.
    let Some(cmd) = in_netns_v6(
        TEST,
        &format!(
            "sysctl -qw net.ipv4.ip_local_port_range='40000 40999' && exec {}",
            verify_json("2000", 2)
        ),
    ) else {
        return;
    };
    let (code, j, stderr) = run(cmd);
    check_schema(&j);
    assert_eq!(code, 1, "{j:#}\n{stderr}");
    // Said before anything started, with both ways and placeholders, no IPv4 address.
    let warn = stderr
        .lines()
        .find(|l| l.contains("from ::1 alone cannot fit"))
        .unwrap_or_else(|| panic!("no shortfall warning: {stderr}"));
    let listening = stderr.find("listening on").unwrap_or(usize::MAX);
    assert!(stderr.find(warn).unwrap() < listening, "{stderr}");
    assert!(
        warn.contains("ip -6 route add local 2001:db8:100::/64 dev lo"),
        "{warn}"
    );
    assert!(
        warn.contains("ip -6 addr add 2001:db8:200::1/64 dev lo"),
        "{warn}"
    );
    assert!(!warn.contains("127.0.0."), "{warn}");
    assert_eq!(j["sources"], "chosen by the kernel");
    // The prediction named the port range (::1 is one source), not memory.
    assert_eq!(
        j["prediction"]["binding_limit"], "net.ipv4.ip_local_port_range",
        "{:#}",
        j["prediction"]
    );
    let d = &j["diagnosis"];
    assert_eq!(d["limit"], "ports", "{d:#}");
    assert!(
        d["value"]
            .as_str()
            .unwrap()
            .contains("40000-40999 (1,000 ports) × 1 source address"),
        "{d:#}"
    );
    let fixes: Vec<&str> = d["fix"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let all = fixes.join("\n");
    assert!(all.contains("--source 2001:db8:100::/64:"), "{all}");
    assert!(
        all.contains("ip -6 route add local 2001:db8:100::/64 dev lo"),
        "{all}"
    );
    assert!(
        !all.contains("127.0.0."),
        "an IPv4 fix for an IPv6 target: {all}"
    );
    let reached = j["reached"].as_u64().unwrap();
    assert!((900..=1000).contains(&reached), "reached {reached}");
    no_workers_left_of(env!("CARGO_BIN_EXE_tune"));
}

/// Starts `tune serve --listen LISTEN` in the background of a namespace script, waits until it
/// listens (its first line), and leaves `$srv` its pid, `$port` its port and `$D/serve.out` its
/// output. However the script ends, its EXIT trap stops the server (SIGTERM: a summary, the
/// workers closed) before the namespace goes.
fn serve_in_background(listen: &str) -> String {
    format!(
        "{} serve --listen '{listen}' --workers 2 > $D/serve.out 2>$D/serve.err & srv=$!; \
         trap 'kill -TERM $srv 2>/dev/null; wait $srv' EXIT; \
         for i in $(seq 100); do grep -q 'listening on' $D/serve.out 2>/dev/null && break; sleep 0.1; done; \
         port=$(sed -n 's/.*listening on .*:\\([0-9]*\\)$/\\1/p' $D/serve.out); ",
        env!("CARGO_BIN_EXE_tune")
    )
}

#[test]
fn load_against_an_ipv6_listener_from_a_list_of_ipv6_sources() {
    const TEST: &str = "load_against_an_ipv6_listener_from_a_list_of_ipv6_sources";
    let dir = tempfile::tempdir().unwrap();
    // Three assigned addresses (plain bind, no IP_FREEBIND) and 1,000 ports: 2,500
    // connections need all three.
    let script = format!(
        "D={d}; sysctl -qw net.ipv4.ip_local_port_range='40000 40999'; \
         for a in 1 2 3; do ip -6 addr add 2001:db8:200::$a/64 dev lo nodad; done; {serve} \
         {tune} load \"ws://[::1]:$port/\" --conns 2500 --processes 1 --hold 1 --stall 2 \
           --source 2001:db8:200::1,2001:db8:200::2,2001:db8:200::3 --format json",
        d = dir.path().display(),
        serve = serve_in_background("[::1]:0"),
        tune = env!("CARGO_BIN_EXE_tune"),
    );
    let Some(cmd) = in_netns_v6(TEST, &script) else {
        return;
    };
    let (code, j, stderr) = run(cmd);
    check_load_schema(&j);
    assert_eq!(code, 0, "{j:#}\n{stderr}");
    assert_eq!(j["reached"], 2500, "{j:#}");
    assert_eq!(j["all_open"], true, "{j:#}");
    assert_eq!(
        j["sources"],
        "3 addresses, 2001:db8:200::1 .. 2001:db8:200::3"
    );
    assert!(
        j["url"].as_str().unwrap().starts_with("ws://[::1]:"),
        "{j:#}"
    );
    let out = std::fs::read_to_string(dir.path().join("serve.out")).unwrap();
    assert!(out.contains("listening on [::1]:"), "{out}");
}

#[test]
fn a_dual_stack_listener_holds_ipv4_and_ipv6_clients_at_once() {
    const TEST: &str = "a_dual_stack_listener_holds_ipv4_and_ipv6_clients_at_once";
    let dir = tempfile::tempdir().unwrap();
    // Both loads hold for 3 s after reaching their count in well under a second: their
    // connections overlap, and the server's peak shows both at once. bindv6only=1 in the
    // namespace: `[::]` must turn IPV6_V6ONLY off itself.
    let load = |url: &str, out: &str| {
        format!(
            "{} load \"{url}\" --conns 1000 --processes 1 --hold 3 --stall 2 --format json > $D/{out}",
            env!("CARGO_BIN_EXE_tune")
        )
    };
    let script = format!(
        "D={d}; sysctl -qw net.ipv6.bindv6only=1; {serve} \
         {v4} & l4=$!; {v6}; rc6=$?; wait $l4; rc4=$?; \
         kill -TERM $srv; wait $srv; echo \"rc4=$rc4 rc6=$rc6\"; cat $D/serve.out",
        d = dir.path().display(),
        serve = serve_in_background("[::]:0"),
        v4 = load("ws://127.0.0.1:$port/", "v4.json"),
        v6 = load("ws://[::1]:$port/", "v6.json"),
    );
    let Some(mut cmd) = in_netns_v6(TEST, &script) else {
        return;
    };
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("rc4=0 rc6=0"), "{stdout}\n{stderr}");
    for (file, url) in [("v4.json", "ws://127.0.0.1:"), ("v6.json", "ws://[::1]:")] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        let j: serde_json::Value = serde_json::from_str(&text).unwrap();
        check_load_schema(&j);
        assert!(j["url"].as_str().unwrap().starts_with(url), "{j:#}");
        assert_eq!(j["reached"], 1000, "{j:#}");
        assert_eq!(j["all_open"], true, "{j:#}");
    }
    assert!(stdout.contains("listening on [::]:"), "{stdout}");
    // The server saw both families, and held both loads' connections at once.
    assert!(
        stdout.contains("accepted 2000 (IPv4 1000, IPv6 1000)"),
        "{stdout}"
    );
    let peak: u64 = stdout
        .split("peak connections ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak in the summary: {stdout}"));
    assert_eq!(peak, 2000, "{stdout}");
}

#[test]
fn check_counts_ipv6_sources_as_verify_does() {
    // The same --source syntax: a /64 with a count is three sources in the ports arithmetic.
    let out = tune()
        .args(["check", "--target", "60000", "--role", "loopback"])
        .args(["--source", "2001:db8:100::/64:3", "--format", "json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("× 3 source addresses (given)"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without a count, a /64 gives a run as many as it needs (issue 24): check counts the most
    // it can give, so the port range is no bound, and says how many the target needs.
    let out = tune()
        .args(["check", "--target", "60000", "--role", "loopback"])
        .args(["--source", "2001:db8:100::/64", "--format", "json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(2), "{err}");
    assert!(
        text.contains("× 65,536 source addresses (given)")
            && text.contains("60,000 connections need "),
        "{text}\n{err}"
    );
}
