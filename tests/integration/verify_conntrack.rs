//! The conntrack table limit induced for real: in a fresh network namespace an nftables `ct`
//! rule makes conntrack track the namespace's connections, and `tune serve --verify` asks for
//! more connections than the host's nf_conntrack_max. The kernel holds each namespace's own
//! count to that one host-wide max (`__nf_conntrack_alloc`, net/netfilter/nf_conntrack_core.c,
//! Linux 6.18), so the run must stop at the max and the diagnosis must name it.
//!
//! Nothing on the host changes: the rule, the entries and the connections live in the
//! namespace and die with it; nf_conntrack_max is only read (it is read-only there anyway).
//! The run costs about 10 KB of kernel memory per connection pair, so the test skips, saying
//! why on the terminal, when the max is too large for CI, when memory is short, when nftables
//! is missing (scripts/test-all installs it) or when nf_conntrack is not loaded (a test does
//! not load kernel modules on the host).

use crate::verify_support;

use std::process::Command;
use std::time::Instant;

use verify_support::*;

const CT: &str = "/proc/sys/net/netfilter";
/// Above this nf_conntrack_max the run is too heavy for CI (time and kernel memory).
const MAX_FOR_CI: u64 = 300_000;
/// Kernel memory per connection pair budgeted for the skip check: host-facts measured
/// 10.1 KB of slab per loopback pair; the conntrack entry and slack make it 12 KiB.
const BYTES_PER_PAIR: u64 = 12 << 10;

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Says on the terminal that the test was skipped and why (a failure under TUNE_TEST_STRICT=1).
fn skip(why: &str) {
    crate::support::skip("verify_conntrack", why);
}

/// The host's nf_conntrack_max when the run can be afforded here, else why not.
fn afford() -> Result<u64, String> {
    let Some(max) = read_u64(&format!("{CT}/nf_conntrack_max")) else {
        return Err(format!(
            "nf_conntrack is not loaded ({CT}/nf_conntrack_max is absent) and a test does not load modules on the host"
        ));
    };
    if max > MAX_FOR_CI {
        return Err(format!(
            "nf_conntrack_max {} is above {} connections: too heavy for CI",
            group(max),
            group(MAX_FOR_CI)
        ));
    }
    // What the run's connections take, plus the verify run's own default memory floor
    // (5% of MemTotal, at least 256 MiB) and 1 GiB for everything else.
    let total = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap()
        * 1024;
    let need = max * BYTES_PER_PAIR + (total / 20).max(256 << 20) + (1 << 30);
    let have = mem_available();
    if have < need {
        return Err(format!(
            "MemAvailable {} MiB is under the {} MiB that {} loopback connections need",
            have >> 20,
            need >> 20,
            group(max)
        ));
    }
    if let Err(e) = Command::new("nft").arg("--version").output() {
        return Err(format!(
            "nft is not installed ({e}); scripts/test-all installs Debian's nftables"
        ));
    }
    // nf_tables must work in a fresh namespace (the probe's table dies with it).
    let probe = Command::new("unshare")
        .args(["-n", "nft", "add", "table", "inet", "tune_probe"])
        .output();
    match probe {
        Ok(o) if o.status.success() => Ok(max),
        Ok(o) => Err(format!(
            "nft cannot add a table in a fresh network namespace: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("unshare -n cannot run: {e}")),
    }
}

/// The host's own ruleset, to show the test left it alone.
fn host_ruleset() -> String {
    let o = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .expect("nft runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_full_conntrack_table_is_named_nf_conntrack_max() {
    let max = match afford() {
        Ok(m) => m,
        Err(why) => return skip(&why),
    };
    let ruleset_before = host_ruleset();
    let host_count_before = read_u64(&format!("{CT}/nf_conntrack_count")).unwrap();
    // 2% more than the table holds: the run must fall short by at least that.
    let target = max + max / 50;

    // In the namespace: loopback up, then a `ct state` rule in an output chain, which makes
    // conntrack track every connection of the namespace (one entry per loopback pair).
    let script = format!(
        "set -e\n\
         ip link set lo up\n\
         nft add table inet tune_ct\n\
         nft add chain inet tune_ct out '{{ type filter hook output priority 0; policy accept; }}'\n\
         nft add rule inet tune_ct out ct state new,established accept\n\
         exec \"$TUNE\" serve --listen 127.0.0.1:0 --verify {target} --hold 0 --stall 2 --format json"
    );
    let mut cmd = command("unshare");
    cmd.args(["-n", "--", "sh", "-c", &script])
        .env("TUNE", env!("CARGO_BIN_EXE_tune"))
        .env_remove("TUNE_ROOT");
    let t = Instant::now();
    let (code, j, stderr) = run(cmd);
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "verify --verify {target} with nf_conntrack_max {max}: exit {code}, reached {}, connect {:.1} s, teardown {:.1} s, whole run {secs:.1} s",
        j["reached"], j["connect_seconds"].as_f64().unwrap_or(0.0),
        j["teardown"]["seconds"].as_f64().unwrap_or(0.0)
    );
    check_schema(&j);
    assert_eq!(code, 1, "{j:#}\n{stderr}");
    assert_eq!(j["verified"], false);

    // The namespace's table filled up to the host's max, and conntrack refused entries.
    let peak = &j["conntrack_peak"];
    assert_eq!(peak["max"], max, "{peak:#}");
    let count = peak["count"]
        .as_u64()
        .expect("a count inside the namespace");
    assert!(
        count * 100 >= max * 98 && count <= max,
        "count {count} of {max}"
    );
    let before = &j["conntrack_before"];
    let refused = (peak["drop"].as_u64().unwrap() + peak["insert_failed"].as_u64().unwrap())
        .saturating_sub(
            before["drop"].as_u64().unwrap() + before["insert_failed"].as_u64().unwrap(),
        );
    assert!(refused > 0, "no packet dropped for want of an entry: {j:#}");

    // It stopped where the table did, not far below.
    let reached = j["reached"].as_u64().unwrap();
    assert!(
        reached <= max && reached * 100 >= max * 98,
        "reached {reached} with nf_conntrack_max {max}"
    );

    let d = &j["diagnosis"];
    assert_eq!(d["limit"], "conntrack", "{d:#}\n{stderr}");
    assert_eq!(d["knob"], "net.netfilter.nf_conntrack_max", "{d:#}");
    assert_eq!(d["side"], "host", "{d:#}");
    assert!(
        d["value"]
            .as_str()
            .unwrap()
            .starts_with(&format!("nf_conntrack_max {}", group(max))),
        "{d:#}"
    );
    let evidence = d["evidence"].as_str().unwrap();
    assert!(
        evidence.contains(&format!(
            "nf_conntrack_count {} of nf_conntrack_max {}",
            group(count),
            group(max)
        )),
        "{d:#}"
    );
    assert!(
        evidence.contains(&format!("dropped or failed to insert {}", group(refused))),
        "{d:#}"
    );
    let fix: Vec<&str> = d["fix"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let want: u64 = fix[0]
        .strip_prefix("sysctl -w net.netfilter.nf_conntrack_max=\"")
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("first fix is not the sysctl line: {fix:?}"))
        .parse()
        .unwrap();
    assert!(
        want > target,
        "the fix {want} does not hold {target}: {fix:?}"
    );
    assert!(
        fix.iter().any(|f| f.contains("initial network namespace")),
        "{fix:?}"
    );

    // The host: same max, same ruleset, and its own table did not take the run's entries.
    assert_eq!(read_u64(&format!("{CT}/nf_conntrack_max")), Some(max));
    assert_eq!(host_ruleset(), ruleset_before);
    let host_count_after = read_u64(&format!("{CT}/nf_conntrack_count")).unwrap();
    assert!(
        host_count_after < host_count_before + max / 2,
        "the host's conntrack count went from {host_count_before} to {host_count_after}"
    );
    no_workers_left_of(env!("CARGO_BIN_EXE_tune"));
}
