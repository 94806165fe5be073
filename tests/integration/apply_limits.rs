//! pam_limits overrides under `--root`: a limits.conf / limits.d line that lowers nofile for a domain tune's limits.d file covers is named by `tune apply` (plan) and `tune check`.

use crate::apply_support;

use apply_support::{check_json, fake_root, fixture, text, tune};

fn warnings(j: &serde_json::Value) -> Vec<String> {
    j["boot_warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn check_and_apply_name_limits_lines_that_beat_tunes_file() {
    let dir = fake_root();
    let r = dir.path();
    // Debian 12's limits.conf as shipped (every line commented out) says nothing.
    std::fs::write(
        r.join("etc/security/limits.conf"),
        include_str!("../fixtures/apply/debian12/limits.conf"),
    )
    .unwrap();
    let out = tune()
        .arg("--root")
        .arg(r)
        .args(["apply", "--yes", "--persist", "--profile"])
        .arg(fixture("1m-like.toml"))
        .output()
        .unwrap();
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    assert!(
        std::fs::read_to_string(r.join("etc/security/limits.d/90-tune.conf"))
            .unwrap()
            .contains("root  hard nofile 1048576"),
        "{o}"
    );
    assert!(!o.contains("nofile ("), "no override yet: {o}");
    assert!(warnings(&check_json(r)).is_empty());

    // Lines that lose: before tune's file (same domain), or higher than tune's value.
    std::fs::write(
        r.join("etc/security/limits.d/10-early.conf"),
        "*    hard nofile 4096\nroot hard nofile 4096\n",
    )
    .unwrap();
    std::fs::write(
        r.join("etc/security/limits.d/99-high.conf"),
        "*    -    nofile unlimited\n",
    )
    .unwrap();
    assert!(
        warnings(&check_json(r)).is_empty(),
        "{:#?}",
        warnings(&check_json(r))
    );

    // Lines that win: a later file for root, and a user line in limits.conf (read first, but a
    // user line outranks tune's `*`). A name starting with a dot is not read by pam_limits.
    std::fs::write(
        r.join("etc/security/limits.d/95-local.conf"),
        "# local\nroot soft nofile 1024\n",
    )
    .unwrap();
    std::fs::write(
        r.join("etc/security/limits.d/.96-hidden.conf"),
        "* hard nofile 10\n",
    )
    .unwrap();
    let mut conf = std::fs::read_to_string(r.join("etc/security/limits.conf")).unwrap();
    conf.push_str("alice - nofile 8192\n");
    let alice_line = conf.lines().count();
    std::fs::write(r.join("etc/security/limits.conf"), conf).unwrap();

    let w = warnings(&check_json(r));
    assert_eq!(w.len(), 2, "{w:#?}");
    let local = r.join("etc/security/limits.d/95-local.conf");
    assert!(
        w.iter().any(|m| m.starts_with(&format!(
            "nofile (soft) for root: {}:2 sets 1024; it is read after {}",
            local.display(),
            r.join("etc/security/limits.d/90-tune.conf").display()
        )) && m.contains("new login sessions get 1024 not 1048576")),
        "{w:#?}"
    );
    assert!(
        w.iter().any(|m| m.starts_with(&format!(
            "nofile (soft and hard) for user alice: {}:{alice_line} sets 8192; a user line outranks tune's `*` line",
            r.join("etc/security/limits.conf").display()
        ))),
        "{w:#?}"
    );

    // The table says it too.
    let out = tune()
        .arg("--root")
        .arg(r)
        .args(["check", "--profile"])
        .arg(fixture("1m-like.toml"))
        .output()
        .unwrap();
    let (table, _) = text(&out);
    assert!(
        table.contains("Boot configuration overrides tune's own"),
        "{table}"
    );
    assert!(table.contains("95-local.conf:2 sets 1024"), "{table}");

    // And the plan of the next apply warns before writing.
    let out = tune()
        .arg("--root")
        .arg(r)
        .args(["apply", "--dry-run", "--persist", "--profile"])
        .arg(fixture("1m-like.toml"))
        .output()
        .unwrap();
    let (o, e) = text(&out);
    assert!(
        o.contains("nofile (soft) for root:") && o.contains("95-local.conf:2 sets 1024"),
        "{o}{e}"
    );
}
