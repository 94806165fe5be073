//! Helpers shared by the apply/rollback tests: a fake root copied from this machine, tree fingerprints, running the binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use crate::support::tune;

/// `tune --root ROOT check --format json --profile <fixture 1m-like.toml>`, exit 0 or 1, parsed.
pub fn check_json(root: &Path) -> serde_json::Value {
    let out = tune()
        .arg("--root")
        .arg(root)
        .args(["check", "--format", "json", "--profile"])
        .arg(fixture("1m-like.toml"))
        .output()
        .unwrap();
    let (o, e) = text(&out);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{o}{e}");
    serde_json::from_str(&o).unwrap()
}

pub fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/apply/profiles/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn copy_or(dst: &Path, src: &str, default: &str) {
    let data = std::fs::read(src).unwrap_or_else(|_| default.as_bytes().to_vec());
    write_644(dst, &data);
}

/// Copies a file a captured root must hold: a capture missing one is a broken fixture, and a
/// default in its place would test this machine's idea of a value instead of the captured one.
fn copy_captured(dst: &Path, src: &str) {
    let data = std::fs::read(src).unwrap_or_else(|e| {
        panic!("{src}: {e}; the captured root lacks a file tune reads: re-capture it (tests/fixtures/roots/README.md)")
    });
    write_644(dst, &data);
}

fn write_644(dst: &Path, data: &[u8]) {
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::write(dst, data).unwrap();
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// A fake root copied from this machine: /proc/sys values, /proc/self limits and status, meminfo,
/// the boot configuration (sysctl.conf, sysctl.d, usr/lib/sysctl.d), etc/security/limits.d, etc/systemd.
pub fn fake_root() -> tempfile::TempDir {
    fake_root_copying("")
}

/// The captured roots the apply tests also run against, each with a reason to. Both are real
/// systemd hosts booted under qemu by tests/fixtures/roots/capture-qemu-systemd.sh (nothing edited).
pub const CAPTURES: &[&str] = &[
    // Debian 13: systemd 257's PID 1 set fs.file-max to LONG_MAX and fs.nr_open to 1073741816.
    "linux-6.12-debian13-systemd-qemu",
    // Debian 12: systemd 252 set fs.file-max to LONG_MAX but left fs.nr_open at the kernel's
    // 1048576 (Debian builds it so); a 6.1 kernel.
    "linux-6.1-debian12-systemd-qemu",
];

/// A fake root like [`fake_root`], with the kernel's files taken from the captured root
/// tests/fixtures/roots/`capture` instead of this machine.
pub fn fake_root_from(capture: &str) -> tempfile::TempDir {
    fake_root_copying(&format!(
        "{}/tests/fixtures/roots/{capture}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

/// `base` is "" for this machine's / or a captured root's directory. From this machine, a
/// conntrack file that is absent (module not loaded) gets the default "262144"; from a capture,
/// every file must be there (see [`copy_captured`]).
fn fake_root_copying(base: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let copy = |rel: &str, default: &str| {
        if base.is_empty() {
            copy_or(&r.join(rel), &format!("/{rel}"), default)
        } else {
            copy_captured(&r.join(rel), &format!("{base}/{rel}"))
        }
    };
    // Every sysctl the registry reads, copied from /proc/sys.
    for rel in tune::knobs::sources(None)
        .iter()
        .filter(|p| p.starts_with("proc/sys/"))
    {
        copy(rel, "262144\n");
    }
    copy("sys/module/nf_conntrack/parameters/hashsize", "262144\n");
    // The kernel shows the module's hashsize as nf_conntrack_buckets: one value, two names.
    let buckets = r.join("proc/sys/net/netfilter/nf_conntrack_buckets");
    std::fs::remove_file(&buckets).unwrap();
    std::os::unix::fs::symlink(
        "../../../../sys/module/nf_conntrack/parameters/hashsize",
        &buckets,
    )
    .unwrap();
    for rel in ["proc/self/limits", "proc/self/status", "proc/meminfo"] {
        copy(rel, "");
    }
    copy_or(&r.join("etc/sysctl.conf"), "/etc/sysctl.conf", "");
    copy_or(
        &r.join("usr/lib/sysctl.d/50-pid-max.conf"),
        &format!(
            "{}/tests/fixtures/apply/debian12/50-pid-max.conf",
            env!("CARGO_MANIFEST_DIR")
        ),
        "",
    );
    std::fs::create_dir_all(r.join("etc/sysctl.d")).unwrap();
    std::os::unix::fs::symlink("../sysctl.conf", r.join("etc/sysctl.d/99-sysctl.conf")).unwrap();
    std::fs::create_dir_all(r.join("etc/security/limits.d")).unwrap();
    std::fs::create_dir_all(r.join("etc/systemd/system")).unwrap();
    std::fs::write(r.join("etc/systemd/system.conf"), "[Manager]\n").unwrap();
    dir
}

/// What a tree holds: per path, the kind, mode and bytes (or link target). Two equal fingerprints
/// mean byte-identical trees with the same modes.
pub fn fingerprint(root: &Path) -> BTreeMap<PathBuf, (char, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let mode = m.mode() & 0o7777;
            if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(rel, ('l', mode, t.to_string_lossy().as_bytes().to_vec()));
            } else if m.is_dir() {
                out.insert(rel, ('d', mode, Vec::new()));
                stack.push(p);
            } else {
                out.insert(rel, ('f', mode, std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// The differences between two fingerprints, for assertion messages.
pub fn diff(
    a: &BTreeMap<PathBuf, (char, u32, Vec<u8>)>,
    b: &BTreeMap<PathBuf, (char, u32, Vec<u8>)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("removed {}", k.display())),
            Some(w) if w != v => out.push(format!(
                "changed {} ({}{:o} {:?} -> {}{:o} {:?})",
                k.display(),
                v.0,
                v.1,
                String::from_utf8_lossy(&v.2),
                w.0,
                w.1,
                String::from_utf8_lossy(&w.2)
            )),
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            out.push(format!("added {}", k.display()));
        }
    }
    out
}

pub fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Makes a path immutable (chattr +i) for the life of the guard: a write that fails even for root.
pub struct Immutable(PathBuf);

impl Immutable {
    pub fn set(p: &Path) -> Immutable {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(p)
            .status()
            .expect("chattr (e2fsprogs) is needed for the injected-failure tests")
            .success();
        assert!(ok, "chattr +i {} failed", p.display());
        Immutable(p.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// The host's values of host-wide knobs, to prove a test left them alone.
pub fn host_wide_values() -> Vec<(String, String)> {
    [
        "fs/file-max",
        "fs/nr_open",
        "net/ipv4/tcp_mem",
        "net/core/netdev_max_backlog",
        "net/netfilter/nf_conntrack_max",
    ]
    .iter()
    .map(|s| {
        (
            s.to_string(),
            std::fs::read_to_string(format!("/proc/sys/{s}")).unwrap_or_default(),
        )
    })
    .collect()
}

/// The shell lines that make host-wide writes impossible for whatever runs after them, even a
/// tune that regressed: in a private mount namespace /proc/sys, /sys, /etc, /usr and /var are
/// read-only, except /proc/sys/net, which shows only the test's own network namespace (whose
/// host-wide entries the kernel already makes read-only there). It checks itself and stops the
/// script (exit 99) if fs.file-max is still writable. Run it under `unshare -m -n`.
pub const HOST_GUARD: &str = r#"set -e
mount --make-rprivate /
ro() { mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"; }
ro /proc/sys; ro /sys; ro /etc; ro /usr; ro /var
mount --bind /proc/sys/net /proc/sys/net && mount -o remount,bind,rw /proc/sys/net
if [ -w /proc/sys/fs/file-max ] || [ -w /sys/module ]; then
  echo "HOST_GUARD broken: host-wide knobs are writable" >&2; exit 99
fi
set +e
"#;

/// `sh -c SCRIPT` in a fresh network namespace behind [`HOST_GUARD`], with `$TUNE` set to the
/// binary. Extra arguments become `$0`, `$1`, ... of the script.
pub fn sandboxed(script: &str) -> crate::support::Tune {
    let mut c = crate::support::command("unshare");
    c.args(["-m", "-n", "--", "sh", "-c"])
        .arg(format!("{HOST_GUARD}{script}"))
        .env("TUNE", crate::support::tune_exe())
        .env_remove("TUNE_ROOT")
        .env_remove("TUNE_STATE_DIR");
    c
}

/// `tune ARGS` in the host's own network namespace with everything it could write read-only
/// (in a private mount namespace: /proc/sys, /sys, /etc, /usr, /var), for runs that must see
/// the real host and must not be able to change it.
pub fn tune_on_read_only_host(args: &[&str]) -> crate::support::Tune {
    let guard = HOST_GUARD.replace(
        "mount --bind /proc/sys/net /proc/sys/net && mount -o remount,bind,rw /proc/sys/net\n",
        "",
    );
    let mut c = crate::support::command("unshare");
    c.args(["-m", "--", "sh", "-c"])
        .arg(format!(
            "{guard}[ -w /proc/sys/net/core/somaxconn ] && exit 99\nexec \"$TUNE\" \"$@\""
        ))
        .arg("tune")
        .args(args)
        .env("TUNE", crate::support::tune_exe())
        .env_remove("TUNE_ROOT")
        .env_remove("TUNE_STATE_DIR");
    c
}

/// `tune ARGS` in a fresh network namespace behind [`HOST_GUARD`].
pub fn tune_sandboxed(args: &[&str]) -> crate::support::Tune {
    let mut c = sandboxed(r#"exec "$TUNE" "$@""#);
    c.arg("tune").args(args);
    c
}
