//! `tune check --tls` through the binary over captured roots: the TLS cost per connection given
//! (`--tls-cost`), read from a saved report (`--tls-from`) or a profile key, or missing (one line
//! says so and how to measure); and kTLS present or absent as the root's files say.

use std::path::Path;

use serde_json::Value as Json;

use crate::check_cli::{copy_root, knob, validate};
use crate::support::tune;

/// Linux 6.18.44 (this VM, no `tls` module): /proc/sys/net/ipv4/tcp_available_ulp.
const ULP_WITHOUT_TLS: &str = "mptcp\n";
/// The same file where the `tls` module is loaded: the kernel adds `tls` to the list (this
/// VM's kernel has no such module, so the line is the 6.18 one with `tls` appended).
const ULP_WITH_TLS: &str = "mptcp tls\n";

/// A copy of the captured 6.18 host whose kernel offers kTLS or not.
fn root(ktls: bool) -> tempfile::TempDir {
    let dir = copy_root("linux-6.18-host");
    let ulp = dir.path().join("proc/sys/net/ipv4/tcp_available_ulp");
    std::fs::write(&ulp, if ktls { ULP_WITH_TLS } else { ULP_WITHOUT_TLS }).unwrap();
    if ktls {
        std::fs::create_dir_all(dir.path().join("sys/module/tls")).unwrap();
    }
    dir
}

/// check's JSON (validated against docs/check-schema.json) and exit code under `root`.
pub(crate) fn json(root: &Path, args: &[&str]) -> (Json, i32) {
    let out = tune()
        .arg("--root")
        .arg(root)
        .arg("check")
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let json: Json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)));
    validate(&json);
    (json, out.status.code().unwrap())
}

/// check's first screen at 2,000 columns (no wrapping inside the lines looked for).
fn screen(root: &Path, args: &[&str]) -> String {
    let out = tune()
        .env("COLUMNS", "2000")
        .arg("--root")
        .arg(root)
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// The memory bound's connections (the first of the host limits) and its arithmetic.
fn memory_bound(j: &Json) -> (u64, String) {
    let m = &j["capacity"]["host_limits"][0];
    assert_eq!(m["limit"], "memory", "{m}");
    (
        m["connections"].as_u64().unwrap(),
        m["arithmetic"].as_str().unwrap().to_string(),
    )
}

/// MemAvailable less the reserve, from the root's meminfo, as the memory bound takes it.
fn usable(root: &Path) -> u64 {
    let text = std::fs::read_to_string(root.join("proc/meminfo")).unwrap();
    let kb = |key: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    let total = kb("MemTotal:");
    kb("MemAvailable:") - total / 100 * tune::capacity::MEMORY_RESERVE_PERCENT
}

#[test]
fn a_given_tls_cost_sizes_memory_and_is_named() {
    let dir = root(false);
    let args = ["--target", "1000000"];
    let (plain, _) = json(dir.path(), &args);
    let (tls, _) = json(dir.path(), &["--target", "1000000", "--tls-cost", "32KiB"]);
    assert_eq!(tls["tls"]["cost"]["bytes_per_connection"], 32768);
    assert_eq!(tls["tls"]["cost"]["source"], "given with --tls-cost");
    let per_socket = knob(&plain, "memory.per-socket")["current"]
        .as_u64()
        .unwrap();
    let (n, why) = memory_bound(&tls);
    // A server's connection is one socket: its kernel cost plus what TLS adds.
    assert_eq!(n, usable(dir.path()) / (per_socket + 32768), "{why}");
    assert!(
        why.contains("+ 32.8 KB TLS (given with --tls-cost)"),
        "{why}"
    );
    assert!(n < memory_bound(&plain).0);
    // The memory requirement of the target grows by the target's TLS bytes.
    let need = |j: &Json| knob(j, "memory.total")["required"].as_u64().unwrap();
    let grown = need(&tls) - need(&plain);
    let tls_bytes = 1_000_000 * 32768u64;
    assert!(
        grown >= tls_bytes && grown < tls_bytes / 100 * 120,
        "memory.total grew by {grown}, TLS needs {tls_bytes} before headroom"
    );
    let s = screen(dir.path(), &["--target", "1000000", "--tls-cost", "32KiB"]);
    assert!(
        s.contains("TLS: + 32.8 KB per connection, given with --tls-cost"),
        "{s}"
    );
    assert!(
        s.contains("kTLS: not available (no tls kernel module"),
        "{s}"
    );
}

/// A saved report's `tls` section, in the names `tune serve --verify --tls --format json` and
/// `tune load wss://... --format json` write; the figures are made up for the test.
const REPORT: &str = r#"{"url": "wss://127.0.0.1:4443/", "tls": {"handshake_cpu_us_server": 412.5,
  "handshake_cpu_us_client": 380.0, "idle_bytes_per_connection_user": 5200.4,
  "idle_bytes_per_connection_kernel": 8300.0}}"#;

#[test]
fn a_saved_report_gives_the_tls_cost_and_its_kernel_part_counts_only_with_ktls() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), REPORT).unwrap();
    let from = file.path().to_str().unwrap();
    // Without kTLS the kernel holds a plain socket (counted already): the user part alone.
    let without = root(false);
    let (j, _) = json(without.path(), &["--target", "1000000", "--tls-from", from]);
    assert_eq!(j["tls"]["cost"]["bytes_per_connection"], 5200);
    let source = j["tls"]["cost"]["source"].as_str().unwrap();
    assert!(
        source.contains(&format!("measured on this host in {from}: user 5.2 KB")),
        "{source}"
    );
    assert!(source.contains("kernel figure 8.3 KB left out"), "{source}");
    assert!(
        source.contains("412 µs of server CPU per handshake"),
        "{source}"
    );
    assert_eq!(j["ktls"]["available"], false);
    let s = screen(without.path(), &["--target", "1000000", "--tls-from", from]);
    assert!(
        s.contains("TLS: + 5.2 KB per connection, measured on this host in"),
        "{s}"
    );
    // With kTLS the kernel keeps the record state: both parts.
    let with = root(true);
    let (j, _) = json(with.path(), &["--target", "1000000", "--tls-from", from]);
    assert_eq!(j["tls"]["cost"]["bytes_per_connection"], 13500);
    assert_eq!(j["ktls"]["available"], true);
}

#[test]
fn a_report_without_a_tls_section_is_refused_naming_the_file() {
    let dir = root(false);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), r#"{"url": "ws://127.0.0.1:80/"}"#).unwrap();
    let from = file.path().to_str().unwrap();
    let out = tune()
        .arg("--root")
        .arg(dir.path())
        .args(["check", "--target", "1000", "--tls-from", from])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("--tls-from {from}: the report has no tls section"))
            && err.contains("tune serve --verify 20000 --tls --format json"),
        "{err}"
    );
}

#[test]
fn without_a_tls_figure_one_line_says_so_and_how_to_measure() {
    let dir = root(false);
    let (plain, _) = json(dir.path(), &["--target", "1000000"]);
    let (tls, _) = json(dir.path(), &["--target", "1000000", "--tls"]);
    assert_eq!(tls["tls"]["cost"], Json::Null);
    assert_eq!(plain["tls"], Json::Null);
    assert_eq!(memory_bound(&tls), memory_bound(&plain));
    let s = screen(dir.path(), &["--target", "1000000", "--tls"]);
    let lines: Vec<&str> = s.lines().filter(|l| l.contains("TLS: no figure")).collect();
    assert_eq!(lines.len(), 1, "{s}");
    assert!(
        lines[0].contains("sized as plain connections; measure it here: tune serve --verify 20000 --tls --format json > tls.json, then tune check --tls --tls-from tls.json"),
        "{s}"
    );
    // Without --tls the screen says nothing of TLS.
    let s = screen(dir.path(), &["--target", "1000000"]);
    assert!(!s.contains("TLS"), "{s}");
}

#[test]
fn ktls_is_reported_present_absent_or_unknown_from_the_root() {
    let with = root(true);
    let s = screen(with.path(), &["--target", "1000", "--tls"]);
    assert!(s.contains("kTLS: available ("), "{s}");
    assert!(s.contains("tcp_available_ulp offers tls"), "{s}");
    let without = root(false);
    let (j, _) = json(without.path(), &["--target", "1000"]);
    assert_eq!(j["ktls"]["available"], false);
    let evidence = j["ktls"]["evidence"].as_str().unwrap();
    assert!(
        evidence.starts_with("no tls kernel module: ") && evidence.contains("sys/module/tls"),
        "{evidence}"
    );
    // The module's directory alone (a kernel whose tcp_available_ulp is not under the root).
    let dir = copy_root("linux-6.18-host");
    std::fs::create_dir_all(dir.path().join("sys/module/tls")).unwrap();
    let (j, _) = json(dir.path(), &["--target", "1000"]);
    assert_eq!(j["ktls"]["available"], true, "{}", j["ktls"]);
    // Nothing to tell from.
    let bare = copy_root("linux-6.18-host");
    let (j, _) = json(bare.path(), &["--target", "1000"]);
    assert_eq!(j["ktls"]["available"], Json::Null, "{}", j["ktls"]);
    let s = screen(bare.path(), &["--target", "1000", "--tls"]);
    assert!(s.contains("kTLS: unknown ("), "{s}");
}

#[test]
fn a_profile_states_its_tls_cost() {
    let dir = root(false);
    let profile = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(
        profile.path(),
        "target = \"1m\"\nrole = \"server\"\ntls_bytes_per_connection = 5200\n",
    )
    .unwrap();
    let p = profile.path().to_str().unwrap();
    let (j, _) = json(dir.path(), &["--profile", p]);
    assert_eq!(j["tls"]["cost"]["bytes_per_connection"], 5200);
    let name = profile.path().file_stem().unwrap().to_str().unwrap();
    assert_eq!(
        j["tls"]["cost"]["source"],
        format!("tls_bytes_per_connection of profile {name}")
    );
    let ram = knob(&j, "memory.total")["why"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        ram.contains("+ 1,000,000 connections × 5,200 B TLS (tls_bytes_per_connection)"),
        "{ram}"
    );
}
