//! IPv6 end to end, through the binary, each in a fresh network namespace (`unshare -n`) whose
//! addresses and routes the test itself adds and which dies with it: `serve --verify` over ::1
//! with AnyIP sources (IP_FREEBIND, a /64 without a count: as many as the run needs) VERIFIED, the same without sources stopped at the port range
//! with IPv6 fixes, `tune load` from a list of assigned IPv6 sources, and a dual-stack `[::]`
//! listener held by IPv4 and IPv6 clients at once. 2001:db8::/32 is the documentation prefix
//! (RFC 3849): never routed anywhere, so nothing here can reach beyond the namespace.

use crate::container_support::{skip, slab_object_size, MemCg, NO_LIMIT};
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
    Some(netns_v6(command("unshare"), script))
}

/// `unshare` (the command given, which may move itself into a cgroup first) running `script`
/// in a fresh network namespace with lo up.
fn netns_v6(mut unshare: Tune, script: &str) -> Tune {
    unshare
        .args(["-n", "sh", "-c"])
        .arg(format!("ip link set lo up && {script}"));
    unshare
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
    let script = format!(
        "ip -6 route add local 2001:db8:100::/64 dev lo && exec {} --source 2001:db8:100::/64",
        verify_json("60000", 10)
    );
    if in_netns_v6(TEST, "true").is_none() {
        return;
    }
    // The run in a fresh child memory cgroup of its own: what the kernel charges it, no
    // other process moves (the host-wide TCPv6 cache is moved by everything else running).
    let cg = match MemCg::new("verify60k-v6", NO_LIMIT) {
        Ok(cg) => cg,
        Err(e) => return skip(TEST, &e),
    };
    let (code, j, stderr) = run(netns_v6(cg.run("unshare"), &script));
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
    // IPv6 sockets: the kernel charged the run's cgroup at least each client socket's TCPv6
    // object (socket() in the client processes) and both ends' socket inodes (socket() and
    // accept()), at this kernel's object sizes.
    let must = 60_000 * (slab_object_size("TCPv6") + 2 * slab_object_size("sock_inode_cache"));
    let peak = cg.kmem_peak();
    assert!(
        peak >= must,
        "the run's cgroup was charged at most {peak} B of kernel memory; its 60,000 client \
         TCPv6 sockets and 120,000 socket inodes alone take {must} B"
    );
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
         {tune} load \"ws://[::1]:$port/\" --conns 2500 --processes 1 --hold 1 \
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
    // The IPv4 load opens its 1,000 and holds them until the server goes away (its shutdown
    // closes them with 1001, which a load counts as closed by the server, not dropped); the
    // IPv6 load starts once the IPv4 one says all are open, and reaches its 1,000 while those
    // are held: the server's peak shows both at once however long either takes to open
    // (handshakes take seconds on a busy host). bindv6only=1 in the namespace: `[::]` must turn IPV6_V6ONLY off itself.
    let load = |url: &str, hold: u32, out: &str| {
        format!(
            "{} load \"{url}\" --conns 1000 --processes 1 --hold {hold} --format json > $D/{out}",
            env!("CARGO_BIN_EXE_tune")
        )
    };
    let script = format!(
        "D={d}; sysctl -qw net.ipv6.bindv6only=1; {serve} \
         {v4} 2> $D/v4.err & l4=$!; \
         while ! grep -q ' open in ' $D/v4.err; do kill -0 $l4 2>/dev/null || break; sleep 0.1; done; \
         {v6}; rc6=$?; kill -TERM $srv; wait $srv; wait $l4; rc4=$?; cat $D/v4.err >&2; \
         echo \"rc4=$rc4 rc6=$rc6\"; cat $D/serve.out",
        d = dir.path().display(),
        serve = serve_in_background("[::]:0"),
        v4 = load("ws://127.0.0.1:$port/", 600, "v4.json"),
        v6 = load("ws://[::1]:$port/", 1, "v6.json"),
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
    let v4: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("v4.json")).unwrap())
            .unwrap();
    assert_eq!(
        v4["closed_by_server"], 1000,
        "held until the server went: {v4:#}"
    );
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
