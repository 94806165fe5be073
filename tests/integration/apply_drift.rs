//! Drift after an apply: another writer changes a live value, another boot file overrides ours; `state::drift_view` says so.

use crate::apply_support;

use apply_support::{check_json, fake_root, fixture, text, tune};
use tune::state::{drift_view, render_drift, BootKeeps};

/// `tune apply --persist` of the 1m-like fixture profile under the fake root `r`.
fn apply_1m_like(r: &std::path::Path) -> std::process::Output {
    tune()
        .arg("--root")
        .arg(r)
        .args(["apply", "--yes", "--persist", "--profile"])
        .arg(fixture("1m-like.toml"))
        .output()
        .unwrap()
}

#[test]
fn drift_names_live_changes_and_boot_overrides() {
    let dir = fake_root();
    let r = dir.path();
    let root = tune::root::Root::new(r).unwrap();
    assert!(drift_view(&root, None, &tune::knobs::observe(&root, None))
        .unwrap()
        .applied()
        .is_none());
    // Whether apply raises fs.file-max depends on the root (a systemd host has LONG_MAX).
    let file_max_raised = std::fs::read_to_string(r.join("proc/sys/fs/file-max"))
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap()
        < 4_000_000;
    let out = apply_1m_like(r);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{o}{e}");

    let (_, d) = drift_view(&root, None, &tune::knobs::observe(&root, None))
        .unwrap()
        .applied()
        .unwrap();
    let somax = d.iter().find(|d| d.knob == "net.core.somaxconn").unwrap();
    assert!(somax.live_matches, "{d:#?}");
    assert_eq!(
        somax.boot,
        BootKeeps::Yes {
            file: "etc/sysctl.d/90-tune.conf".into()
        }
    );
    assert!(
        render_drift(&root, &d).is_empty(),
        "{:?}",
        render_drift(&root, &d)
    );

    // A daemon lowers somaxconn; an admin's later file sets fs.file-max for boot.
    std::fs::write(r.join("proc/sys/net/core/somaxconn"), "128\n").unwrap();
    std::fs::write(
        r.join("etc/sysctl.d/95-admin.conf"),
        "fs.file-max = 500000\n",
    )
    .unwrap();
    let (_, d) = drift_view(&root, None, &tune::knobs::observe(&root, None))
        .unwrap()
        .applied()
        .unwrap();
    let somax = d.iter().find(|d| d.knob == "net.core.somaxconn").unwrap();
    assert!(!somax.live_matches);
    assert_eq!(somax.live.as_deref(), Some("128"));
    let lines = render_drift(&root, &d).join("\n");
    assert!(
        lines.contains("net.core.somaxconn: applied 65535; live is 128 (changed since apply)"),
        "{lines}"
    );
    let fmax = d.iter().find(|d| d.knob == "fs.file-max");
    assert_eq!(fmax.is_some(), file_max_raised, "{d:#?}");
    if let Some(fmax) = fmax {
        assert!(fmax.live_matches);
        assert_eq!(
            fmax.boot,
            BootKeeps::No {
                value: Some("500000".into()),
                file: Some("etc/sysctl.d/95-admin.conf".into())
            }
        );
        assert!(
            lines.contains("fs.file-max: applied 4000000; still live; a reboot sets 500000"),
            "{lines}"
        );
    }

    // Rollback leaves the daemon's somaxconn alone and says so (exit 1, record open); with
    // --force it puts it back too, and then there is nothing to drift from.
    let rollback = |extra: &[&str]| {
        tune()
            .arg("--root")
            .arg(r)
            .args(["rollback", "--yes"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = rollback(&[]);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    assert!(
        o.contains("net.core.somaxconn is 128, not the 65535 tune set")
            && o.contains("`tune rollback --force`"),
        "{o}"
    );
    assert_eq!(
        std::fs::read_to_string(r.join("proc/sys/net/core/somaxconn")).unwrap(),
        "128\n"
    );
    let out = rollback(&["--force"]);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert!(o.contains("net.core.somaxconn: 128 -> "), "{o}");
    assert!(drift_view(&root, None, &tune::knobs::observe(&root, None))
        .unwrap()
        .applied()
        .is_none());
}

/// The same story through `tune check`: the boot column, the override warning and the drift lines,
/// in the table and in the JSON.
#[test]
fn check_shows_boot_values_overrides_and_drift() {
    let dir = fake_root();
    let r = dir.path();
    let check_json = || check_json(r);

    let knob = |j: &serde_json::Value, name: &str| {
        j["knobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["knob"] == name)
            .unwrap()
            .clone()
    };
    let before = check_json();
    assert!(before["drift"].is_null());
    assert!(knob(&before, "net.core.somaxconn")["boot"].is_null());

    let out = apply_1m_like(r);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));

    let after = check_json();
    let somax = knob(&after, "net.core.somaxconn");
    assert_eq!(somax["boot"]["value"], 65535);
    assert!(somax["boot"]["file"]
        .as_str()
        .unwrap()
        .ends_with("etc/sysctl.d/90-tune.conf"));
    assert_eq!(
        after["drift"]["problems"].as_array().unwrap().len(),
        0,
        "{after:#}"
    );
    assert!(after["boot_warnings"].as_array().unwrap().is_empty());

    std::fs::write(r.join("proc/sys/net/core/somaxconn"), "128\n").unwrap();
    std::fs::write(
        r.join("etc/sysctl.d/95-admin.conf"),
        "net.core.somaxconn = 1024\n",
    )
    .unwrap();
    let drifted = check_json();
    let problems = drifted["drift"]["problems"].to_string();
    assert!(
        problems.contains("net.core.somaxconn: applied 65535; live is 128"),
        "{problems}"
    );
    let warnings = drifted["boot_warnings"].to_string();
    assert!(warnings.contains("95-admin.conf"), "{warnings}");
    assert_eq!(knob(&drifted, "net.core.somaxconn")["boot"]["value"], 1024);

    let out = tune()
        .arg("--root")
        .arg(r)
        .args(["check", "--profile"])
        .arg(fixture("1m-like.toml"))
        .output()
        .unwrap();
    let (table, _) = text(&out);
    assert!(table.contains("Drift since the last apply"), "{table}");
    assert!(
        table.contains("Boot configuration overrides tune's own"),
        "{table}"
    );
}
