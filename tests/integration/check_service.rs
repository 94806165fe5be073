//! `tune check --unit/--user` through the binary: a service that is not running yet, judged by its systemd unit (drop-ins, DefaultLimitNOFILE=, User=, MemoryMax=) or its user's pam_limits, on the captured root with tests/fixtures/service laid over it; systemd-analyze reads the same units.

use crate::support::{command, tune};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The captured host with the service fixtures over it, fs.file-max lowered to `file_max`.
fn service_root(file_max: u64) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for src in ["roots/linux-6.18-host", "service"] {
        let ok = std::process::Command::new("cp")
            .args(["-a", &format!("{}/.", fixture(src).display())])
            .arg(root.path())
            .status()
            .unwrap();
        assert!(ok.success());
    }
    std::fs::write(
        root.path().join("proc/sys/fs/file-max"),
        format!("{file_max}\n"),
    )
    .unwrap();
    root
}

/// `tune --root ROOT check ARGS --format json`, exit 0 or 1, parsed and validated.
fn json(root: &Path, args: &[&str]) -> Json {
    let (j, code) = crate::check_tls::json(root, args);
    assert!(matches!(code, 0 | 1), "{j:#}");
    j
}

fn knob(j: &Json, name: &str) -> u64 {
    crate::check_cli::knob(j, name)["current"].as_u64().unwrap()
}

/// The first screen's verdict paragraph at 80 columns, its wrapping undone.
fn first_paragraph(root: &Path, args: &[&str]) -> String {
    let out = tune()
        .arg("--root")
        .arg(root)
        .arg("check")
        .args(args)
        .env("COLUMNS", "80")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(screen.lines().all(|l| l.chars().count() <= 80), "{screen}");
    screen
        .lines()
        .take_while(|l| !l.is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn check_unit_judges_the_units_user_limits_and_drop_in_not_tunes() {
    let root = service_root(30_000);
    let r = root.path();
    let j = json(r, &["--unit", "echo", "--target", "100k"]);
    // The drop-in's LimitNOFILE=200000:infinity wins over the unit's 4096:65536; infinity is
    // fs.nr_open (the capture's 1048576), not tune's own limits.
    assert_eq!(knob(&j, "rlimit.nofile.soft"), 200_000, "{j:#}");
    assert_eq!(knob(&j, "rlimit.nofile.hard"), 1_048_576, "{j:#}");
    // User=www-data holds no CAP_SYS_ADMIN: fs.file-max binds it, though tune runs as root.
    let per_host = &j["capacity"]["per_host"];
    assert_eq!(per_host["limit"], "fs.file-max", "{per_host:#}");
    let lines: Vec<&str> = j["service"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let unit = format!("{}/etc/systemd/system/echo.service", r.display());
    assert!(
        lines[0].contains(&format!("User=www-data (uid 33) at {unit}:5"))
            && lines[0].contains("no CAP_SYS_ADMIN"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains(&format!(
            "LimitNOFILE= at {}/etc/systemd/system/echo.service.d/50-limits.conf:3",
            r.display()
        )),
        "{lines:?}"
    );
    assert!(
        lines[2].contains(&format!("MemoryMax=268.4 MB at {unit}:8")),
        "{lines:?}"
    );
    assert_eq!(
        j["credentials"],
        Json::Null,
        "the service line says it instead"
    );
    // The first screen names whose credentials it used, under the verdict.
    let first = first_paragraph(r, &["--unit", "echo", "--target", "100k"]);
    assert!(
        first.contains("judged for unit echo.service: User=www-data (uid 33)")
            && first.contains("bound by fs.file-max"),
        "{first}"
    );
}

#[test]
fn check_unit_for_root_uses_default_limit_nofile_and_its_memory_max() {
    let root = service_root(30_000);
    let r = root.path();
    let j = json(r, &["--unit", "rootecho.service", "--target", "100k"]);
    // No LimitNOFILE=: the manager's DefaultLimitNOFILE= from system.conf.d.
    assert_eq!(knob(&j, "rlimit.nofile.soft"), 8192, "{j:#}");
    assert_eq!(knob(&j, "rlimit.nofile.hard"), 262_144, "{j:#}");
    // No User=: root, exempt from fs.file-max; MemoryMax=64M binds the host side instead.
    let per_host = &j["capacity"]["per_host"];
    assert_eq!(per_host["limit"], "memory cgroup", "{per_host:#}");
    let n = per_host["connections"].as_u64().unwrap();
    // (64 MiB − 5% − 16 MiB kept) / 2,810 B charged per socket.
    let expect = ((64u64 << 20) - (64 << 20) / 100 * 5 - (16 << 20)) / 2810;
    assert_eq!(n, expect, "{per_host:#}");
    let svc = j["service"].to_string();
    assert!(
        svc.contains("root (no User=), CAP_SYS_ADMIN and CAP_SYS_RESOURCE")
            && svc.contains("DefaultLimitNOFILE= at")
            && svc.contains("50-nofile.conf:2"),
        "{svc}"
    );
}

#[test]
fn check_user_judges_a_login_session_by_its_pam_limits() {
    let root = service_root(30_000);
    let r = root.path();
    let j = json(r, &["--user", "www-data", "--target", "100k"]);
    // www-data is in @web: limits.d/50-web.conf sets 30000:40000.
    assert_eq!(knob(&j, "rlimit.nofile.soft"), 30_000, "{j:#}");
    assert_eq!(knob(&j, "rlimit.nofile.hard"), 40_000, "{j:#}");
    assert_eq!(j["capacity"]["per_host"]["limit"], "fs.file-max");
    let first = first_paragraph(r, &["--user", "www-data", "--target", "100k"]);
    assert!(
        first.contains("judged for user www-data (uid 33, no capabilities), a login session")
            && first.contains("50-web.conf:2"),
        "{first}"
    );
    // root: group lines do not reach it (Debian's pam_limits), and it keeps CAP_SYS_ADMIN.
    let j = json(r, &["--user", "root", "--target", "100k"]);
    assert_ne!(j["capacity"]["per_host"]["limit"], "fs.file-max", "{j:#}");
}

#[test]
fn check_unit_and_user_refuse_bad_input_naming_the_file_and_line() {
    let root = service_root(30_000);
    let r = root.path();
    let bad = r.join("bad.service");
    std::fs::write(
        &bad,
        "[Unit]\nDescription=bad\n[Service]\nExecStart=/bin/true\nLimitNOFILE=many\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = tune()
            .arg("--root")
            .arg(r)
            .arg("check")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, e) = run(&["--unit", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{e}");
    assert!(
        e.contains(&format!("{}:5: LimitNOFILE=many", bad.display())),
        "{e}"
    );
    // systemd itself names the same line.
    if let Some(out) = systemd_analyze_verify(&r.join("."), bad.to_str().unwrap()) {
        let (_, e) = out;
        assert!(e.contains("bad.service:5") && e.contains("many"), "{e}");
    }
    let (code, e) = run(&["--unit", "absent"]);
    assert_eq!(code, Some(2), "{e}");
    assert!(e.contains("no unit absent.service under"), "{e}");
    let (code, e) = run(&["--user", "nosuch"]);
    assert_eq!(code, Some(2), "{e}");
    assert!(e.contains("etc/passwd: no user \"nosuch\""), "{e}");
}

/// `systemd-analyze verify UNIT` with the fake root's units first in the search path.
/// `None` (a skip) where systemd-analyze is absent.
fn systemd_analyze_verify(root: &Path, unit: &str) -> Option<(bool, String)> {
    let out = command("systemd-analyze")
        .args(["verify", unit])
        .env(
            "SYSTEMD_UNIT_PATH",
            format!("{}:", root.join("etc/systemd/system").display()),
        )
        .output();
    match out {
        Ok(o) => Some((
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )),
        Err(e) => {
            crate::support::skip("check_service", &format!("systemd-analyze: {e}"));
            None
        }
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_units_tune_reads() {
    let root = service_root(30_000);
    for unit in ["echo.service", "rootecho.service"] {
        if let Some((ok, e)) = systemd_analyze_verify(root.path(), unit) {
            assert!(ok, "{unit}: {e}");
            assert!(!e.contains(unit), "systemd complains about {unit}: {e}");
        }
    }
}
