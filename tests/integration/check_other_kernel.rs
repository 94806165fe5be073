//! `tune --root` on a tree captured from another real kernel (Debian 12's 6.1, booted under qemu): its values, its own bottleneck.
//!
//! The tree `tests/fixtures/roots/linux-6.1-debian12-qemu/` was captured by
//! `tests/fixtures/roots/capture-qemu.sh` (see the README there). Every expectation
//! below is computed from that tree's files, not typed in.

use std::path::{Path, PathBuf};

use crate::support::tune;
use serde_json::Value as Json;

const QEMU: &str = "linux-6.1-debian12-qemu";
const HOST: &str = "linux-6.18-host";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/roots")
        .join(name)
}

fn read(root: &str, rel: &str) -> String {
    std::fs::read_to_string(fixture(root).join(rel)).unwrap_or_else(|e| panic!("{root}/{rel}: {e}"))
}

fn int_in(root: &str, rel: &str) -> u64 {
    read(root, rel).trim().parse().unwrap()
}

/// A `Key:  N kB` line of a meminfo file, in bytes.
fn meminfo_bytes(root: &str, key: &str) -> u64 {
    let text = read(root, "proc/meminfo");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{root}: no {key} in meminfo"));
    let kb: u64 = line.trim().trim_end_matches("kB").trim().parse().unwrap();
    kb * 1024
}

/// The CapEff mask of the tree's `proc/self/status`.
fn cap_eff(root: &str) -> u64 {
    let status = read(root, "proc/self/status");
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

/// Kernel memory of one socket from the tree's slabinfo, the sum the module docs of
/// `tune::kernel::slabinfo` describe: for each listed cache present, its slab's share
/// per object (`pagesperslab * 4096 / objperslab`, rounded up), plus the fixed allowance.
fn socket_bytes_from_slabinfo(root: &str) -> u64 {
    let text = read(root, "proc/slabinfo");
    let mut sum = tune::kernel::slabinfo::OTHER_BYTES_PER_SOCKET;
    for cache in tune::kernel::slabinfo::SOCKET_CACHES {
        if let Some(line) = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(cache))
        {
            let f: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .take(5)
                .map(|w| w.parse().unwrap())
                .collect();
            let (objperslab, pagesperslab) = (f[3], f[4]);
            sum += (pagesperslab * 4096).div_ceil(objperslab);
        }
    }
    sum
}

/// 1234567 -> "1,234,567", as the table prints counts.
use tune::units::group as grouped;

fn check(root: &str, format: &str) -> (String, i32) {
    let out = tune()
        .arg("--root")
        .arg(fixture(root))
        .args(["check", "--profile", "1m", "--format", format])
        // The full report: every knob in the table (the default is the first screen), as a wide
        // terminal shows it, one line per sentence (without a terminal it wraps at 100 columns).
        .args(if format == "table" {
            &["--verbose"][..]
        } else {
            &[]
        })
        .env("COLUMNS", "400")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.code().is_some(),
        "killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (text, out.status.code().unwrap())
}

fn check_json(root: &str) -> (Json, i32) {
    let (text, code) = check(root, "json");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (json, code)
}

fn knob<'a>(json: &'a Json, name: &str) -> &'a Json {
    json["knobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["knob"] == name)
        .unwrap_or_else(|| panic!("no row {name}"))
}

#[test]
fn qemu_tree_holds_every_file_tune_reads() {
    // If the registry grows a knob, this tree must be re-captured (capture-qemu.sh).
    for rel in tune::knobs::sources(None) {
        assert!(
            fixture(QEMU).join(&rel).is_file(),
            "{QEMU} lacks /{rel}: re-run tests/fixtures/roots/capture-qemu.sh"
        );
    }
}

#[test]
fn json_reports_the_other_kernels_values_and_its_own_bottleneck() {
    let (json, code) = check_json(QEMU);
    let (host, _) = check_json(HOST);

    // the tree's kernel, not this machine's
    let release = read(QEMU, "proc/sys/kernel/osrelease");
    assert!(release.starts_with("6.1."), "{release}");
    assert_eq!(json["kernel"], release.trim());
    assert_ne!(json["kernel"], host["kernel"]);

    // its values
    let ct_max = int_in(QEMU, "proc/sys/net/netfilter/nf_conntrack_max");
    assert_eq!(ct_max, 16384, "the one write the capture makes");
    assert_eq!(
        knob(&json, "net.netfilter.nf_conntrack_max")["current"],
        ct_max
    );
    assert_eq!(
        knob(&json, "net.netfilter.nf_conntrack_buckets")["current"],
        int_in(QEMU, "proc/sys/net/netfilter/nf_conntrack_buckets")
    );
    let mem_total = meminfo_bytes(QEMU, "MemTotal");
    assert_eq!(knob(&json, "memory.total")["current"], mem_total);
    // qemu -m 1024: about 1 GiB, less what the kernel keeps for itself
    assert!((900 << 20..=1 << 30).contains(&mem_total), "{mem_total}");
    let tcp_mem: Vec<u64> = read(QEMU, "proc/sys/net/ipv4/tcp_mem")
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    assert_eq!(
        knob(&json, "net.ipv4.tcp_mem")["current"],
        serde_json::json!(tcp_mem)
    );
    assert_eq!(
        knob(&json, "fs.file-max")["current"],
        int_in(QEMU, "proc/sys/fs/file-max")
    );

    // its own per-process bound: the init shell has CAP_SYS_RESOURCE (bit 24), so its
    // hard RLIMIT_NOFILE may rise to fs.nr_open
    assert_ne!(cap_eff(QEMU) & (1 << 24), 0);
    let cap = &json["capacity"];
    assert_eq!(cap["per_process"]["limit"], "fs.nr_open");
    assert_eq!(
        cap["per_process"]["connections"],
        int_in(QEMU, "proc/sys/fs/nr_open") - tune::capacity::FD_RESERVE
    );

    // its own per-host bound. The init shell has CAP_SYS_ADMIN (bit 21), which the kernel
    // exempts from fs.file-max, but without --pid check judges fs.file-max for a service
    // without it (issue 21) and says tune alone would be exempt; conntrack is loaded but tracks
    // nothing (count 0). Memory is from this tree's usable memory (MemAvailable) and slabinfo;
    // the smaller of the two binds.
    assert_ne!(cap_eff(QEMU) & (1 << 21), 0);
    assert!(json["credentials"]
        .as_str()
        .unwrap()
        .contains("without CAP_SYS_ADMIN"));
    assert_eq!(int_in(QEMU, "proc/sys/net/netfilter/nf_conntrack_count"), 0);
    let per_socket = socket_bytes_from_slabinfo(QEMU);
    assert_eq!(knob(&json, "memory.per-socket")["current"], per_socket);
    let reserve = mem_total / 100 * tune::capacity::MEMORY_RESERVE_PERCENT;
    let expected = (meminfo_bytes(QEMU, "MemAvailable") - reserve) / per_socket;
    let limits = cap["host_limits"].as_array().unwrap();
    let bound =
        |name: &str| limits.iter().find(|b| b["limit"] == name).unwrap()["connections"].as_u64();
    assert_eq!(bound("memory"), Some(expected));
    let file_max = bound("fs.file-max").expect("fs.file-max binds a service");
    assert_eq!(
        cap["per_host"]["connections"].as_u64(),
        Some(expected.min(file_max))
    );
    let conntrack = limits
        .iter()
        .find(|b| b["limit"] == "net.netfilter.nf_conntrack_max")
        .unwrap();
    assert!(conntrack["connections"].is_null(), "{conntrack}");
    assert!(conntrack["arithmetic"]
        .as_str()
        .unwrap()
        .contains(&grouped(ct_max)));

    // far below what the 6.18 host tree (24 GiB) holds
    let host_n = host["capacity"]["per_host"]["connections"]
        .as_u64()
        .unwrap();
    assert!(expected * 10 < host_n, "{expected} vs {host_n}");
    assert_eq!(cap["meets_target"], false);
    assert_eq!(code, 1);
    assert_eq!(json["summary"]["exit_code"], code);
}

#[test]
fn table_reports_the_other_kernels_values() {
    let (text, code) = check(QEMU, "table");
    let release = read(QEMU, "proc/sys/kernel/osrelease");
    assert!(
        text.contains(&format!("kernel {}", release.trim())),
        "{text}"
    );
    let ct_max = int_in(QEMU, "proc/sys/net/netfilter/nf_conntrack_max");
    let row = text
        .lines()
        .find(|l| l.starts_with("| net.netfilter.nf_conntrack_max "))
        .unwrap_or_else(|| panic!("no conntrack row: {text}"));
    assert!(row.contains(&grouped(ct_max)), "{row}");
    let (json, _) = check_json(QEMU);
    let n = json["capacity"]["per_host"]["connections"]
        .as_u64()
        .unwrap();
    let per_host = text
        .lines()
        .find(|l| l.trim_start().starts_with("per host: "))
        .unwrap_or_else(|| panic!("no per host line: {text}"));
    let limit = json["capacity"]["per_host"]["limit"].as_str().unwrap();
    assert!(
        per_host.contains(&format!("bound by {limit}")),
        "{per_host}"
    );
    assert!(
        per_host.ends_with(&format!("= {}", grouped(n))),
        "{per_host}"
    );
    assert!(
        text.contains(&format!(
            "nf_conntrack_max {} does not bind",
            grouped(ct_max)
        )),
        "{text}"
    );
    assert_eq!(code, 1);
}

/// The systemd-host captures the apply tests run against (`apply_support::CAPTURES`): each holds
/// every file tune reads, and `check --root` reports what that boot's systemd left, read from the tree.
#[test]
fn systemd_captures_hold_every_file_and_check_reports_their_fd_limits() {
    for &root in crate::apply_support::CAPTURES {
        for rel in tune::knobs::sources(None) {
            assert!(
                fixture(root).join(&rel).is_file(),
                "{root} lacks /{rel}: re-run tests/fixtures/roots/capture-qemu-systemd.sh"
            );
        }
        // What makes it a systemd host: PID 1 raised fs.file-max to LONG_MAX at boot.
        assert_eq!(
            read(root, "proc/sys/fs/file-max").trim(),
            i64::MAX.to_string(),
            "{root}"
        );
        let (json, code) = check_json(root);
        assert_eq!(
            json["kernel"],
            read(root, "proc/sys/kernel/osrelease").trim()
        );
        assert_ne!(json["kernel"], check_json(HOST).0["kernel"]);
        assert_eq!(
            knob(&json, "fs.file-max")["current"],
            int_in(root, "proc/sys/fs/file-max")
        );
        assert_eq!(knob(&json, "fs.file-max")["status"], "ok", "{root}");
        let nr_open = int_in(root, "proc/sys/fs/nr_open");
        assert_eq!(knob(&json, "fs.nr_open")["current"], nr_open);
        // proc/self is the capturing service: systemd's DefaultLimitNOFILE, root's capabilities,
        // so its hard limit may rise to fs.nr_open, which bounds a process.
        let hard: u64 = read(root, "proc/self/limits")
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(knob(&json, "rlimit.nofile.hard")["current"], hard);
        assert_ne!(cap_eff(root) & (1 << 24), 0);
        let cap = &json["capacity"];
        assert_eq!(cap["per_process"]["limit"], "fs.nr_open", "{root}");
        assert_eq!(
            cap["per_process"]["connections"],
            nr_open - tune::capacity::FD_RESERVE
        );
        assert_eq!(json["summary"]["exit_code"], code);
    }
}
