//! The fixes of `check --profile 1m` run as printed, top to bottom: every prerequisite (fs.nr_open
//! under a hard RLIMIT_NOFILE above it, the hard limit under the soft one) comes before what
//! needs it, and the sysctl commands, copied as printed, succeed in that order — the
//! per-namespace ones against the kernel in a network namespace this test creates, the host-wide
//! ones under a fake /proc/sys (a tmpfs in a private mount namespace holding a captured host's
//! values).

use crate::apply_support::sandboxed;
use crate::support::tune;

type Json = serde_json::Value;

/// A captured host's tree under tests/fixtures/roots.
fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/roots/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn check_1m(root: Option<&str>) -> Json {
    let mut c = tune();
    if let Some(r) = root {
        c.arg("--root").arg(fixture(r));
    }
    let out = c
        .args(["check", "--profile", "1m", "--format", "json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    })
}

fn fixes(j: &Json) -> Vec<Json> {
    j["verdict"]["fixes"].as_array().unwrap().clone()
}

/// Every fix's `requires` sits above it; nr_open above any nofile fix; hard above soft.
fn assert_prerequisites_first(j: &Json) -> bool {
    let fixes = fixes(j);
    let at = |name: &str| fixes.iter().position(|f| f["knob"] == name);
    for (i, f) in fixes.iter().enumerate() {
        for need in f["requires"].as_array().unwrap() {
            let before = at(need.as_str().unwrap()).unwrap_or(usize::MAX);
            assert!(before < i, "{} needs {need} first: {fixes:#?}", f["knob"]);
        }
    }
    let nr_open = at("fs.nr_open");
    for nofile in ["rlimit.nofile.hard", "rlimit.nofile.soft"] {
        if let (Some(a), Some(b)) = (nr_open, at(nofile)) {
            assert!(a < b, "fs.nr_open after {nofile}: {fixes:#?}");
            assert!(
                fixes[b]["requires"]
                    .as_array()
                    .unwrap()
                    .contains(&"fs.nr_open".into()),
                "{fixes:#?}"
            );
        }
    }
    if let (Some(h), Some(s)) = (at("rlimit.nofile.hard"), at("rlimit.nofile.soft")) {
        assert!(h < s, "{fixes:#?}");
    }
    nr_open.is_some()
}

#[test]
fn prerequisites_come_before_what_needs_them() {
    // The captured hosts keep the kernel's default nr_open (1,048,576), below 1m's 1,100,011.
    let mut seen_nr_open = false;
    for root in [
        None,
        Some("linux-6.18-host"),
        Some("linux-6.1-debian12-qemu"),
        Some("linux-6.12-debian13-systemd-qemu"),
    ] {
        seen_nr_open |= assert_prerequisites_first(&check_1m(root));
    }
    assert!(seen_nr_open, "no root had fs.nr_open to raise first");
    // The first screen says why the first fix comes first.
    let out = tune()
        .arg("--root")
        .arg(fixture("linux-6.18-host"))
        .args(["check", "--profile", "1m"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1. fs.nr_open: first, for 2. rlimit.nofile.soft (the kernel refuses"),
        "{text}"
    );
    // --verbose shows the dependency under the fix that waits for it.
    let out = tune()
        .arg("--root")
        .arg(fixture("linux-6.18-host"))
        .args(["check", "--profile", "1m", "--verbose"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("after fs.nr_open: the kernel refuses a hard RLIMIT_NOFILE above fs.nr_open"),
        "{text}"
    );
}

#[test]
fn the_sysctl_fixes_run_as_printed_in_order() {
    let root = fixture("linux-6.18-host");
    let j = check_1m(Some("linux-6.18-host"));
    assert_prerequisites_first(&j);
    let scope = |knob: &str| {
        j["knobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["knob"] == knob)
            .map(|k| k["scope"].as_str().unwrap().to_string())
    };
    let (mut per_ns, mut host) = (Vec::new(), Vec::new());
    for f in fixes(&j) {
        let action = f["action"].as_str().unwrap();
        if !action.starts_with("sysctl -w ") {
            continue;
        }
        let knob = f["knob"].as_str().unwrap().to_string();
        let (_, value) = action.split_once('=').unwrap();
        let value = value.trim_matches('"').to_string();
        match scope(&knob).as_deref() {
            Some("net-namespace") => per_ns.push((knob, action.to_string(), value)),
            _ => host.push((knob, action.to_string(), value)),
        }
    }
    assert!(per_ns.len() >= 4 && host.len() >= 3, "{per_ns:?} {host:?}");
    assert_eq!(host[0].0, "fs.nr_open", "{host:?}");
    let path = |knob: &str| format!("/proc/sys/{}", knob.replace('.', "/"));
    let run = |cmds: &[(String, String, String)]| {
        cmds.iter()
            .map(|(knob, action, _)| {
                format!(
                    "{action} >/dev/null || {{ echo 'FAILED: {action}' >&2; exit 1; }}\n\
                     printf '%s=%s\\n' {knob} \"$(tr '\\t' ' ' < {})\"\n",
                    path(knob)
                )
            })
            .collect::<String>()
    };
    // The host-wide knobs' files, from the captured host, on a tmpfs over /proc/sys.
    let fake = host
        .iter()
        .map(|(knob, _, _)| {
            let rel = knob.replace('.', "/");
            format!(
                "mkdir -p \"$(dirname /proc/sys/{rel})\" && cat '{}/proc/sys/{rel}' > /proc/sys/{rel}\n",
                root
            )
        })
        .collect::<String>();
    let script = format!(
        "set -e\n{}\nmount -t tmpfs tune-fake-proc-sys /proc/sys\n{fake}{}",
        run(&per_ns),
        run(&host)
    );
    let out = sandboxed(&script)
        .output()
        .expect("unshare (util-linux) runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script}\n{stdout}\n{stderr}");
    // Each knob reads back what its command set, in the printed order.
    let got: Vec<(String, String)> = stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let want: Vec<(String, String)> = per_ns
        .iter()
        .chain(&host)
        .map(|(k, _, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(got, want, "{stdout}\n{stderr}");
}
