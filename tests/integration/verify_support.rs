//! Helpers for the verify and load tests: run the real binary, parse its JSON report and check
//! it against docs/verify-schema.json (docs/load-schema.json for `tune load`).
#![allow(dead_code)]

use std::process::Output;

pub use crate::support::{alone, command, tune, Tune};

pub fn run(mut cmd: Tune) -> (i32, serde_json::Value, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run tune");
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    let json = serde_json::from_slice(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {stderr}",
            String::from_utf8_lossy(&stdout)
        )
    });
    (status.code().unwrap_or(-1), json, stderr)
}

pub fn check_schema(json: &serde_json::Value) {
    check_schema_file(json, "docs/verify-schema.json");
}

/// Checks a `tune load --format json` report against docs/load-schema.json.
pub fn check_load_schema(json: &serde_json::Value) {
    check_schema_file(json, "docs/load-schema.json");
}

fn check_schema_file(json: &serde_json::Value, file: &str) {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
        .unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v
        .iter_errors(json)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{file}: schema errors: {errors:#?}\n{json:#}"
    );
}

/// 1234567 -> "1,234,567": the reports' own formatting.
#[allow(unused_imports)] // not every test crate that includes this module prints counts
pub use tune::units::group;

/// MemAvailable now, bytes.
pub fn mem_available() -> u64 {
    let t = std::fs::read_to_string("/proc/meminfo").unwrap();
    t.lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// No `__load-worker` or `__serve-worker` process of this binary was orphaned (re-parented to
/// init): a verify or load run must reap its workers, and workers die with their parent.
/// Workers of runs still going in parallel tests have a live parent and are not counted.
pub fn no_workers_left_of(exe: &str) {
    std::thread::sleep(std::time::Duration::from_millis(200));
    for (_, ppid, cmd) in processes() {
        if cmd.starts_with(exe)
            && (cmd.contains("__load-worker") || cmd.contains("__serve-worker"))
            && ppid == 1
        {
            panic!("stray worker left behind: {cmd}");
        }
    }
}

/// Every process now: (pid, parent pid, command line with spaces between arguments).
pub fn processes() -> Vec<(u32, u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let p = entry.path();
        let (Ok(stat), Ok(cmd)) = (
            std::fs::read_to_string(p.join("stat")),
            std::fs::read(p.join("cmdline")),
        ) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        out.push((pid, ppid, String::from_utf8_lossy(&cmd).replace('\0', " ")));
    }
    out
}
