//! Drift after an apply: another writer changes a live value, another boot file overrides ours; `state::drift_view` says so.

mod apply_support;

use apply_support::{fake_root, fixture, text, tune};
use tune::state::{drift_view, render_drift, BootKeeps};

#[test]
fn drift_names_live_changes_and_boot_overrides() {
    let dir = fake_root();
    let r = dir.path();
    let root = tune::root::Root::new(r).unwrap();
    assert!(drift_view(&root, None, &tune::knobs::observe(&root, None))
        .unwrap()
        .is_none());
    let out = tune()
        .arg("--root")
        .arg(r)
        .args(["apply", "--yes", "--persist", "--profile"])
        .arg(fixture("1m-like.toml"))
        .output()
        .unwrap();
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{o}{e}");

    let (_, d) = drift_view(&root, None, &tune::knobs::observe(&root, None))
        .unwrap()
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
        .unwrap();
    let somax = d.iter().find(|d| d.knob == "net.core.somaxconn").unwrap();
    assert!(!somax.live_matches);
    assert_eq!(somax.live.as_deref(), Some("128"));
    let fmax = d.iter().find(|d| d.knob == "fs.file-max").unwrap();
    assert!(fmax.live_matches);
    assert_eq!(
        fmax.boot,
        BootKeeps::No {
            value: Some("500000".into()),
            file: Some("etc/sysctl.d/95-admin.conf".into())
        }
    );
    let lines = render_drift(&root, &d).join("\n");
    assert!(
        lines.contains("net.core.somaxconn: applied 65535; live is 128 (changed since apply)"),
        "{lines}"
    );
    assert!(
        lines.contains("fs.file-max: applied 4000000; still live; a reboot sets 500000"),
        "{lines}"
    );

    // After rollback there is nothing to drift from.
    let out = tune()
        .arg("--root")
        .arg(r)
        .arg("rollback")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(drift_view(&root, None, &tune::knobs::observe(&root, None))
        .unwrap()
        .is_none());
}
