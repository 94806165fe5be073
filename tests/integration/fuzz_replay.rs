//! Replays the fuzz corpora of the `src/` parsers (fuzz/corpus/{limits,proc,pressure,state,profile})
//! through the same calls the cargo-fuzz targets make, so plain `cargo test` guards them (the
//! protocol targets are replayed by embedded-server's own tests), crashes found included
//! (fuzz/regressions/).

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            out.push((p, data));
        }
    }
    assert!(!out.is_empty(), "no fuzz inputs for {target}");
    out
}

#[test]
fn limits_conf_corpus() {
    for (_, data) in inputs("limits") {
        if let Ok(text) = std::str::from_utf8(&data) {
            let _ = tune::persist::limits::parse(text);
        }
    }
}

#[test]
fn proc_parsers_corpus() {
    for (_, data) in inputs("proc") {
        tune::kernel::parse_any(&data);
    }
}

#[test]
fn pressure_parsers_corpus() {
    for (_, data) in inputs("pressure") {
        tune::kernel::parse_pressure_any(&data);
    }
}

#[test]
fn state_record_corpus() {
    for (_, data) in inputs("state") {
        if let Ok(text) = std::str::from_utf8(&data) {
            let _ = tune::state::parse_record(text);
        }
    }
}

#[test]
fn profile_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join(tune::profile::ETC_DIR);
    std::fs::create_dir_all(&profiles).unwrap();
    let root = tune::root::Root::new(dir.path()).unwrap();
    for (_, data) in inputs("profile") {
        std::fs::write(profiles.join("fuzz.toml"), &data).unwrap();
        let _ = tune::profile::load(&root, "fuzz");
    }
}
