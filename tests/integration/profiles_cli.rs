//! `tune profiles` and profile loading through the binary: shipped, local (<root>/etc/tune/profiles), by path; valid and invalid fixtures.

use std::path::{Path, PathBuf};

use crate::support::tune;

fn fixture(kind: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/profiles")
        .join(kind)
        .join(name)
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = tune().args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn list_shows_every_shipped_profile() {
    let (code, out, _) = run(&["profiles", "list"]);
    assert_eq!(code, 0);
    for name in ["10k", "100k", "1m", "1m-loopback", "10m"] {
        assert!(
            out.contains(&format!("| {name} ")),
            "{name} missing:\n{out}"
        );
    }
    assert!(
        out.contains("1,000,000") && out.contains("loopback"),
        "{out}"
    );
}

#[test]
fn show_prints_the_resolved_profile_with_whys() {
    let (code, out, _) = run(&["profiles", "show", "1m"]);
    assert_eq!(code, 0);
    assert!(out.contains("extends:   100k -> 10k"), "{out}");
    // a formula, evaluated, with its arithmetic
    assert!(
        out.contains("| fs.file-max ") && out.contains("1100000"),
        "{out}"
    );
    assert!(out.contains("+ 10% headroom"), "{out}");
    // a value inherited from 10k? no: overridden by 1m, with 1m's comment
    assert!(out.contains("65535: the most a listen(2) backlog"), "{out}");
}

#[test]
fn valid_fixtures_load_with_inheritance_and_overrides() {
    let p = fixture("valid", "edge-proxy.toml");
    let (code, out, err) = run(&["profiles", "show", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("target:    200,000 connections"), "{out}");
    assert!(
        out.contains("role:      server"),
        "role inherited from 10k:\n{out}"
    );
    assert!(out.contains("headroom 25%"), "{out}");
    // an override of a formula keeps the formula in its why
    assert!(
        out.contains(
            "shared with a cache that keeps many files open [edge-proxy] (overrides the formula"
        ),
        "{out}"
    );
    assert!(out.contains("200000 300000 400000"), "{out}");
    // somaxconn comes from 100k
    assert!(out.contains("[100k]"), "{out}");

    let p = fixture("valid", "extends-by-path.toml");
    let (code, out, err) = run(&["profiles", "show", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("target:    400,000 connections") && out.contains("role:      client"),
        "{out}"
    );
    // 400,000 over 8 addresses = 50,000 ports each: wider than the default range
    assert!(out.contains("15536 65535"), "{out}");
}

#[test]
fn invalid_fixtures_exit_2_naming_file_line_key_and_expectation() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "bad-shape.toml",
            ":6: knobs.\"net.ipv4.tcp_mem\"",
            "expected three integers",
        ),
        (
            "unknown-knob.toml",
            ":5: knobs.\"net.core.somaxcon\"",
            "net.core.somaxconn",
        ),
        (
            "bad-role.toml",
            ":2: role",
            "expected \"server\", \"client\" or \"loopback\", found \"proxy\"",
        ),
        ("not-toml.toml", ":2: role", "no closing quote"),
        ("unknown-field.toml", ":3: targte", "did you mean target?"),
        ("missing-target.toml", ": target", "missing"),
        (
            "extends-missing.toml",
            ":1: extends",
            "unknown profile \"no-such-profile\"",
        ),
        (
            "counter-required.toml",
            ":5: knobs.\"net.netfilter.nf_conntrack_count\"",
            "cannot be required",
        ),
        (
            "descending-range.toml",
            ":5: knobs.\"net.ipv4.ip_local_port_range\"",
            "the low end comes first: write [1024, 60000]",
        ),
        (
            "out-of-kernel-bounds.toml",
            ":6: knobs.\"net.ipv4.tcp_tw_reuse\"",
            "the kernel accepts 0 to 2 for net.ipv4.tcp_tw_reuse",
        ),
        (
            "soft-above-hard.toml",
            ": knobs.\"rlimit.nofile.soft\"",
            "above rlimit.nofile.hard",
        ),
        (
            "zero-bytes-per-socket.toml",
            ": bytes_per_socket",
            "expected at least 1",
        ),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/profiles/invalid");
    let on_disk = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        on_disk,
        cases.len(),
        "every invalid fixture has a case here"
    );
    for (file, at, expect) in cases {
        let p = fixture("invalid", file);
        for cmd in [&["profiles", "show"][..], &["check", "--profile"][..]] {
            let (code, out, err) = run(&[cmd, &[p.to_str().unwrap()]].concat());
            assert_eq!(code, 2, "{file}: {err}");
            assert!(out.is_empty(), "{file}: printed a report: {out}");
            assert!(err.contains(&format!("{file}{at}")), "{file}: {err}");
            assert!(err.contains(expect), "{file}: {err}");
        }
    }
}

#[test]
fn local_profiles_load_by_name_under_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc/tune/profiles");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::copy(fixture("valid", "loadgen.toml"), etc.join("loadgen.toml")).unwrap();
    // a local profile with the name of a shipped one shadows it
    std::fs::write(
        etc.join("10k.toml"),
        "# local\ntarget = 12_345 # ours\nrole = \"server\" # ours\n",
    )
    .unwrap();
    let root = dir.path().to_str().unwrap();
    let (code, out, err) = run(&["--root", root, "profiles", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("| loadgen ") && out.contains("12,345"),
        "{out}"
    );
    let (code, out, _) = run(&["--root", root, "profiles", "show", "loadgen"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("role:      client") && out.contains("source addresses: 8"),
        "{out}"
    );
    // 100k extends the (shadowed) 10k: the local one is used
    let (code, out, _) = run(&["--root", root, "profiles", "show", "100k"]);
    assert_eq!(code, 0);
    assert!(out.contains("target:    100,000"), "{out}");
    let (code, _, err) = run(&["--root", root, "profiles", "show", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("loadgen") && err.contains("1m"), "{err}");
}

#[test]
fn role_on_the_command_line_reevaluates_the_formulas() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/roots/linux-6.18-host");
    let json = |role: &str| -> serde_json::Value {
        let out = tune()
            .arg("--root")
            .arg(&root)
            .args([
                "check",
                "--profile",
                "100k",
                "--role",
                role,
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let fm = |j: &serde_json::Value| {
        j["knobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["knob"] == "fs.file-max")
            .unwrap()["required"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(fm(&json("server")), 110_000);
    assert_eq!(fm(&json("loopback")), 220_000);
}
