//! `tune apply --dry-run --persist` against this machine's real root prints the plan and files and changes nothing
//! (run where /proc/sys, /sys and /etc are read-only, so it could not change anything either).

use crate::apply_support;

use std::collections::BTreeMap;
use std::path::Path;

use apply_support::{fixture, text, tune_on_read_only_host};

/// Every run-time value tune could write, and every boot file or directory it could touch.
fn host_state() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for knob in tune::knobs::REGISTRY {
        if let Some(rel) = tune::transaction::write_path(knob.write) {
            let v = std::fs::read_to_string(Path::new("/").join(&rel))
                .unwrap_or_else(|e| e.to_string());
            out.insert(rel, v);
        }
    }
    for dir in [
        "/etc/sysctl.d",
        "/etc/security/limits.d",
        "/etc/modprobe.d",
        "/etc/systemd/system.conf.d",
        "/etc/systemd/system",
        "/var/lib/tune",
    ] {
        let listing = match std::fs::read_dir(dir) {
            Ok(rd) => {
                let mut names: Vec<String> = rd
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                names.join(",")
            }
            Err(e) => e.to_string(),
        };
        out.insert(dir.into(), listing);
    }
    for f in tune::persist::own_files() {
        let p = Path::new("/").join(f);
        out.insert(
            f.into(),
            std::fs::read_to_string(&p).unwrap_or_else(|e| e.to_string()),
        );
    }
    out
}

#[test]
fn dry_run_with_persist_on_the_real_host_changes_nothing() {
    let before = host_state();
    // Behind a read-only view of the host: even a dry run that wrote could not.
    let out = tune_on_read_only_host(&[
        "apply",
        "--dry-run",
        "--persist",
        "--profile",
        &fixture("1m-like.toml"),
    ])
    .output()
    .unwrap();
    let (o, e) = text(&out);
    let after = host_state();
    assert_eq!(before, after, "the host changed:\n{o}\n{e}");
    // The plan is printed with the three-way view, and the files in full.
    assert!(
        o.contains("\n  live ") && o.contains("; boot ") && o.contains("; profile "),
        "{o}"
    );
    assert!(
        o.contains("/etc/sysctl.d/90-tune.conf") && o.contains("---8<---"),
        "{o}"
    );
    assert!(o.contains("Dry run: nothing was changed."), "{o}");
    // RLIMIT_NOFILE without --pid cannot be changed at run time: incomplete plan, exit 1.
    assert_eq!(out.status.code(), Some(1), "{o}\n{e}");
}
