//! What `tune apply --persist` writes, read by the programs that read it at boot and login:
//! `sysctl --system` (procps), pam_limits through `runuser -l` (util-linux, libpam-modules),
//! `systemd-analyze verify` (systemd) and `modprobe --showconfig` (kmod). Each reads the fake
//! root's files in a private mount namespace (and a fresh network namespace), so the host's
//! own configuration and values stay as they are.

use crate::apply_support;

use std::path::Path;

use apply_support::{fake_root, read, sandboxed, text, tune};

/// Applies, with --persist and a drop-in for `wsserver.service`, a profile that changes two
/// per-namespace sysctls, the conntrack hash size and RLIMIT_NOFILE (soft 5000, hard 10000:
/// below this machine's hard limit, so pam_limits may set them without CAP_SYS_RESOURCE).
/// Returns (somaxconn, hashsize) the files set.
fn apply_persisted(r: &Path) -> (u64, u64) {
    // The boot configuration starts empty, so the consumers read only what tune wrote.
    std::fs::write(r.join("etc/sysctl.conf"), "").unwrap();
    let somax = read(r, "proc/sys/net/core/somaxconn")
        .parse::<u64>()
        .unwrap()
        + 7;
    let hash = read(r, "sys/module/nf_conntrack/parameters/hashsize")
        .parse::<u64>()
        .unwrap()
        * 2;
    let profile = r.join("consumers.toml");
    std::fs::write(
        &profile,
        format!(
            "target = 1\nrole = \"server\"\n[knobs]\n\
             \"net.core.somaxconn\" = {somax}\n\
             \"net.ipv4.tcp_fin_timeout\" = 17\n\
             \"net.netfilter.nf_conntrack_buckets\" = {hash}\n\
             \"rlimit.nofile.soft\" = 5000\n\
             \"rlimit.nofile.hard\" = 10000\n"
        ),
    )
    .unwrap();
    let out = tune()
        .arg("--root")
        .arg(r)
        .args([
            "apply",
            "--yes",
            "--persist",
            "--service",
            "wsserver",
            "--profile",
        ])
        .arg(&profile)
        .output()
        .unwrap();
    let (o, e) = text(&out);
    // RLIMIT_NOFILE for new sessions and services is written whatever tune's own limit is.
    assert_eq!(out.status.code(), Some(0), "{o}{e}");
    (somax, hash)
}

#[test]
fn sysctl_system_loads_the_written_sysctl_d() {
    let dir = fake_root();
    let r = dir.path();
    let (somax, _) = apply_persisted(r);
    // /etc is the fake root's; the distribution's sysctl.d directories are hidden.
    let out = sandboxed(
        "mount --bind \"$ROOT/etc\" /etc\n\
         for d in /usr/lib/sysctl.d /lib/sysctl.d /usr/local/lib/sysctl.d /run/sysctl.d; do\n\
           if [ -d \"$d\" ]; then mount -t tmpfs none \"$d\"; fi\n\
         done\n\
         sysctl --system; echo \"sysctl_exit=$?\"\n\
         echo \"somaxconn=$(cat /proc/sys/net/core/somaxconn)\"\n\
         echo \"fin=$(cat /proc/sys/net/ipv4/tcp_fin_timeout)\"",
    )
    .env("ROOT", r)
    .output()
    .unwrap();
    let (o, e) = text(&out);
    assert!(o.contains("sysctl_exit=0"), "{o}{e}");
    assert!(
        o.contains("90-tune.conf"),
        "sysctl did not read tune's file: {o}"
    );
    assert!(o.contains(&format!("somaxconn={somax}\n")), "{o}{e}");
    assert!(o.contains("fin=17\n"), "{o}{e}");
}

#[test]
fn pam_limits_gives_a_login_session_the_written_nofile() {
    let dir = fake_root();
    let r = dir.path();
    apply_persisted(r);
    // A login session of user nobody, with the fake root's limits.d in place of the host's.
    let out = sandboxed(
        "mount --bind \"$ROOT/etc/security/limits.d\" /etc/security/limits.d\n\
         runuser -l nobody -s /bin/sh -c 'echo \"soft=$(ulimit -Sn) hard=$(ulimit -Hn)\"'\n\
         echo \"runuser_exit=$?\"",
    )
    .env("ROOT", r)
    .output()
    .unwrap();
    let (o, e) = text(&out);
    assert!(o.contains("runuser_exit=0"), "{o}{e}");
    assert!(o.contains("soft=5000 hard=10000"), "{o}{e}");
}

#[test]
fn systemd_analyze_verify_accepts_the_drop_in() {
    let dir = fake_root();
    let r = dir.path();
    apply_persisted(r);
    let dropin = r.join("etc/systemd/system/wsserver.service.d/90-tune.conf");
    let text_of = std::fs::read_to_string(&dropin).unwrap();
    assert!(text_of.contains("LimitNOFILE=5000:10000"), "{text_of}");
    // The unit it belongs to, as the service's package would ship it.
    std::fs::write(
        r.join("etc/systemd/system/wsserver.service"),
        "[Unit]\nDescription=test service\n[Service]\nExecStart=/bin/true\n",
    )
    .unwrap();
    // The fake root's unit directory first in the search path, the system's after it (the
    // trailing colon), so the unit's dependencies resolve as on a real host.
    let out = crate::support::command("systemd-analyze")
        .args(["verify", "wsserver.service"])
        .env(
            "SYSTEMD_UNIT_PATH",
            format!("{}:", r.join("etc/systemd/system").display()),
        )
        .output()
        .expect("systemd-analyze (systemd)");
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert!(
        !e.contains("90-tune.conf"),
        "a complaint about tune's drop-in: {e}"
    );
    // The control: the same check names a drop-in with a value systemd cannot parse.
    let bad = r.join("etc/systemd/system/control.service.d");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        r.join("etc/systemd/system/control.service"),
        "[Unit]\nDescription=control\n[Service]\nExecStart=/bin/true\n",
    )
    .unwrap();
    std::fs::write(bad.join("90-tune.conf"), "[Service]\nLimitNOFILE=many\n").unwrap();
    let out = crate::support::command("systemd-analyze")
        .args(["verify", "control.service"])
        .env(
            "SYSTEMD_UNIT_PATH",
            format!("{}:", r.join("etc/systemd/system").display()),
        )
        .output()
        .unwrap();
    let (o, e) = text(&out);
    assert!(e.contains("90-tune.conf") && e.contains("many"), "{o}{e}");
    // The unit as systemd sees it, drop-in merged: the limit is there.
    let out = crate::support::command("systemd-analyze")
        .arg(format!("--root={}", r.display()))
        .args(["cat-config", "systemd/system/wsserver.service"])
        .output()
        .unwrap();
    let (o, e) = text(&out);
    assert!(o.contains("LimitNOFILE=5000:10000"), "{o}{e}");
}

#[test]
fn modprobe_showconfig_accepts_the_modprobe_d_line() {
    let dir = fake_root();
    let r = dir.path();
    let (_, hash) = apply_persisted(r);
    let out = crate::support::command("modprobe")
        .arg("--showconfig")
        .arg("-C")
        .arg(r.join("etc/modprobe.d"))
        .output()
        .expect("modprobe (kmod)");
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert!(
        o.lines()
            .any(|l| l == format!("options nf_conntrack hashsize={hash}")),
        "{o}{e}"
    );
}
