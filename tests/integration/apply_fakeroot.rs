//! Host-wide knobs and boot files under `--root`: a tree copied from this machine, applied, rolled back and compared byte for byte.

use crate::apply_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use apply_support::{diff, fake_root, fingerprint, fixture, read, text, tune, Immutable};

fn apply(root: &Path, profile: &str, extra: &[&str]) -> std::process::Output {
    tune()
        .arg("--root")
        .arg(root)
        .args(["apply", "--yes", "--profile", profile])
        .args(extra)
        .output()
        .unwrap()
}

fn rollback(root: &Path, extra: &[&str]) -> std::process::Output {
    tune()
        .arg("--root")
        .arg(root)
        .args(["rollback", "--yes"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn persist_then_rollback_leaves_the_tree_byte_identical() {
    persist_then_rollback(fake_root());
}

#[test]
fn persist_then_rollback_on_captured_roots() {
    for capture in apply_support::CAPTURES {
        persist_then_rollback(apply_support::fake_root_from(capture));
    }
}

/// What 1m-like asks of an at-least knob on this root: (the value after apply, whether apply
/// raises it). Expectations come from the fake root, never from the machine that wrote the test.
fn raised(r: &Path, rel: &str, profile: &[u64]) -> (String, bool) {
    let live: Vec<u64> = read(r, rel)
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    let after: Vec<u64> = live.iter().zip(profile).map(|(l, p)| *l.max(p)).collect();
    let text = after
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    (text, after != live)
}

fn persist_then_rollback(dir: tempfile::TempDir) {
    let r = dir.path();
    // An admin's file in the way of ours, with an unusual mode, must come back exactly.
    std::fs::write(
        r.join("etc/sysctl.d/90-tune.conf"),
        "# an admin's own file\nvm.swappiness = 10\n",
    )
    .unwrap();
    std::fs::set_permissions(
        r.join("etc/sysctl.d/90-tune.conf"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let before = fingerprint(r);
    let file_max = raised(r, "proc/sys/fs/file-max", &[4_000_000]);
    let nr_open = raised(r, "proc/sys/fs/nr_open", &[2_000_000]);
    let tcp_mem = raised(r, "proc/sys/net/ipv4/tcp_mem", &[786432, 1048576, 1572864]);
    let hashsize = raised(r, "sys/module/nf_conntrack/parameters/hashsize", &[524288]);

    let out = apply(
        r,
        &fixture("1m-like.toml"),
        &["--persist", "--service", "wsserver"],
    );
    let (o, e) = text(&out);
    // RLIMIT_NOFILE without --pid cannot change at run time: the plan is incomplete, exit 1.
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    assert_eq!(read(r, "proc/sys/fs/file-max"), file_max.0, "{o}");
    assert_eq!(read(r, "proc/sys/fs/nr_open"), nr_open.0, "{o}");
    assert_eq!(read(r, "proc/sys/net/ipv4/tcp_mem"), tcp_mem.0, "{o}");
    assert_eq!(
        read(r, "sys/module/nf_conntrack/parameters/hashsize"),
        hashsize.0
    );
    let sysctl = std::fs::read_to_string(r.join("etc/sysctl.d/90-tune.conf")).unwrap();
    assert!(
        sysctl.starts_with("# Written by `tune apply --persist` for profile"),
        "{sysctl}"
    );
    assert!(sysctl.contains("Undo: `tune rollback`"), "{sysctl}");
    // Boot files carry only what apply changed.
    for (knob, (value, changed)) in [
        ("fs.file-max", &file_max),
        ("fs.nr_open", &nr_open),
        ("net.ipv4.tcp_mem", &tcp_mem),
    ] {
        let line = format!("\n{knob} = {value}\n");
        assert_eq!(sysctl.contains(&line), *changed, "{line:?} in {sysctl}");
        assert_eq!(
            sysctl.contains(&format!("\n{knob} = ")),
            *changed,
            "{sysctl}"
        );
    }
    let mode = std::fs::metadata(r.join("etc/sysctl.d/90-tune.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let modprobe = std::fs::read_to_string(r.join("etc/modprobe.d/90-tune.conf"));
    if hashsize.1 {
        let modprobe = modprobe.unwrap();
        assert!(
            modprobe.contains(&format!("\noptions nf_conntrack hashsize={}\n", hashsize.0)),
            "{modprobe}"
        );
    } else {
        assert!(modprobe.is_err(), "{modprobe:?}");
    }
    let limits = std::fs::read_to_string(r.join("etc/security/limits.d/90-tune.conf")).unwrap();
    assert!(
        limits.contains("*     hard nofile 1048576")
            && limits.contains("root  soft nofile 1048576"),
        "{limits}"
    );
    let manager =
        std::fs::read_to_string(r.join("etc/systemd/system.conf.d/90-tune.conf")).unwrap();
    assert!(
        manager.contains("[Manager]\nDefaultLimitNOFILE=1048576:1048576\n"),
        "{manager}"
    );
    let unit =
        std::fs::read_to_string(r.join("etc/systemd/system/wsserver.service.d/90-tune.conf"))
            .unwrap();
    assert!(
        unit.contains("[Service]\nLimitNOFILE=1048576:1048576\n"),
        "{unit}"
    );

    // A second apply finds everything in place: nothing more to change at run time.
    let out = apply(r, &fixture("1m-like.toml"), &[]);
    let (o, _) = text(&out);
    let line = o.lines().find(|l| l.starts_with("fs.file-max")).unwrap();
    if file_max.1 || file_max.0 == "4000000" {
        assert!(line.ends_with("ok (at profile)"), "{o}");
    } else {
        assert!(line.contains("kept (higher than profile"), "{o}");
    }
    assert!(o.contains("Nothing to change."), "{o}");

    let list = rollback(r, &["--list"]);
    let (o, _) = text(&list);
    assert!(o.contains("applied") && o.contains("1m-like.toml"), "{o}");

    let out = rollback(r, &[]);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert!(
        o.contains(
            "90-tune.conf: restored the previous file (41 bytes, mode 600, modification time)"
        ),
        "{o}"
    );
    assert_eq!(
        o.contains("etc/modprobe.d/: removed (tune created it)"),
        hashsize.1,
        "{o}"
    );
    assert!(o.contains("wsserver.service.d/: removed"), "{o}");
    assert_eq!(o.contains("fs.file-max: 4000000 -> "), file_max.1, "{o}");
    // Only the state directory differs from the tree before apply.
    let after = fingerprint(r);
    let changes: Vec<String> = diff(&before, &after)
        .into_iter()
        .filter(|d| !d.contains("var"))
        .collect();
    assert!(changes.is_empty(), "{changes:#?}\n{o}");
    // Twice is harmless.
    let out = rollback(r, &[]);
    let (o, _) = text(&out);
    assert!(
        out.status.success() && o.contains("Nothing to roll back"),
        "{o}"
    );
    assert!(diff(&after, &fingerprint(r)).is_empty());
}

#[test]
fn a_failure_part_way_through_run_time_writes_restores_everything() {
    let dir = fake_root();
    let r = dir.path();
    let before = fingerprint(r);
    // tcp_max_tw_buckets is written last; root cannot write an immutable file.
    let guard = Immutable::set(&r.join("proc/sys/net/ipv4/tcp_max_tw_buckets"));
    let out = apply(r, &fixture("1m-like.toml"), &["--persist"]);
    drop(guard);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{o}{e}");
    assert!(o.contains("fs.file-max: "), "earlier writes happened: {o}");
    assert!(
        e.contains("apply failed: net.ipv4.tcp_max_tw_buckets"),
        "{e}"
    );
    assert!(e.contains("the host is as it was"), "{e}");
    let d = diff(&before, &fingerprint(r));
    assert!(d.is_empty(), "fake root changed: {d:#?}\n{o}\n{e}");
}

#[test]
fn a_failure_while_writing_boot_files_restores_values_and_files() {
    let dir = fake_root();
    let r = dir.path();
    // An admin's sysctl file in the way, last changed in 2001: replaced, then put back with its time.
    let sysctl = r.join("etc/sysctl.d/90-tune.conf");
    std::fs::write(&sysctl, "vm.swappiness = 10\n").unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::new(981_173_106, 5);
    set_mtime(&sysctl, old);
    let before = fingerprint(r);
    // sysctl.d and modprobe.d are written, then limits.d refuses the new file.
    let guard = Immutable::set(&r.join("etc/security/limits.d"));
    let out = apply(r, &fixture("1m-like.toml"), &["--persist"]);
    drop(guard);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{o}{e}");
    assert!(
        o.contains("wrote ") && o.contains("etc/sysctl.d/90-tune.conf"),
        "{o}"
    );
    assert!(e.contains("limits.d"), "{e}");
    let d = diff(&before, &fingerprint(r));
    assert!(d.is_empty(), "fake root changed: {d:#?}\n{o}\n{e}");
    assert_eq!(mtime(&sysctl), (981_173_106, 5), "{o}\n{e}");
}

#[test]
fn dry_run_prints_the_files_and_changes_nothing() {
    let dir = fake_root();
    let r = dir.path();
    // A later file overrides ours at boot: the plan must say so.
    std::fs::write(
        r.join("etc/sysctl.d/95-local.conf"),
        "net.core.somaxconn = 1024\n",
    )
    .unwrap();
    let before = fingerprint(r);
    let out = apply(r, &fixture("1m-like.toml"), &["--persist", "--dry-run"]);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    assert!(
        o.contains("---8<---") && o.contains("net.core.somaxconn = 65535"),
        "{o}"
    );
    assert!(o.contains("DefaultLimitNOFILE=1048576:1048576"), "{o}");
    assert!(
        o.contains("warning: net.core.somaxconn:") && o.contains("95-local.conf:1 sets 1024"),
        "{o}"
    );
    assert!(o.contains("Dry run: nothing was changed."), "{o}");
    assert!(diff(&before, &fingerprint(r)).is_empty());
}

#[test]
fn boot_column_shows_the_winning_file() {
    let dir = fake_root();
    let r = dir.path();
    std::fs::write(
        r.join("etc/sysctl.d/10-a.conf"),
        "net.core.somaxconn = 2048\n",
    )
    .unwrap();
    std::fs::create_dir_all(r.join("run/sysctl.d")).unwrap();
    // Same name in /run is hidden by /etc's; a later name wins over an earlier one.
    std::fs::write(r.join("run/sysctl.d/10-a.conf"), "net.core.somaxconn = 9\n").unwrap();
    std::fs::write(
        r.join("usr/lib/sysctl.d/60-vendor.conf"),
        "net.core.somaxconn = 3000\n",
    )
    .unwrap();
    let out = apply(r, &fixture("1m-like.toml"), &["--dry-run"]);
    let (o, _) = text(&out);
    // One block per knob: the values on the line under the knob's name.
    let line = o
        .lines()
        .skip_while(|l| !l.starts_with("net.core.somaxconn"))
        .nth(1)
        .unwrap();
    assert!(line.contains("boot 3,000 @60-vendor.conf"), "{line}");
}

#[test]
fn host_wide_knobs_are_refused_in_a_child_namespace_of_a_fake_root() {
    let dir = fake_root();
    let r = dir.path();
    std::fs::create_dir_all(r.join("proc/self/ns")).unwrap();
    std::fs::create_dir_all(r.join("proc/1/ns")).unwrap();
    std::os::unix::fs::symlink("net:[4026532177]", r.join("proc/self/ns/net")).unwrap();
    std::os::unix::fs::symlink("net:[4026531833]", r.join("proc/1/ns/net")).unwrap();
    let before = read(r, "proc/sys/fs/file-max");
    let out = apply(r, &fixture("netns.toml"), &[]);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    assert_eq!(read(r, "proc/sys/fs/file-max"), before);
    assert_eq!(read(r, "proc/sys/net/core/somaxconn"), "65535");
    assert!(
        o.contains("a host-wide knob, and tune runs in a child network namespace"),
        "{o}"
    );
}

#[test]
fn read_only_and_missing_targets_are_cannot_change_here() {
    let dir = fake_root();
    let r = dir.path();
    let ro = r.join("proc/sys/fs/file-max");
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::remove_dir_all(r.join("sys/module")).unwrap();
    let buckets = r.join("proc/sys/net/netfilter/nf_conntrack_buckets");
    std::fs::remove_file(&buckets).unwrap();
    std::fs::write(&buckets, "262144\n").unwrap();
    let out = apply(r, &fixture("1m-like.toml"), &["--dry-run"]);
    let (o, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{o}");
    assert!(
        o.contains("fs/file-max is read-only here (mode 444)"),
        "{o}"
    );
    assert!(
        o.contains("parameters/hashsize does not exist here (module not loaded?)"),
        "{o}"
    );
}

#[test]
fn an_interrupted_apply_is_rolled_back_from_its_record() {
    use tune::state::{hex, Before, Change, Record, Store};
    let dir = fake_root();
    let r = dir.path();
    let before = fingerprint(r);
    let root = tune::root::Root::new(r).unwrap();
    // What a killed apply leaves: the record (in progress) and only its first change made.
    let store = Store::new(&root, None).unwrap();
    let mut rec = Record::new(1, "killed", "test", &root);
    let somax = std::fs::read_to_string(r.join("proc/sys/net/core/somaxconn")).unwrap();
    rec.changes = vec![
        Change::Value {
            knob: "net.core.somaxconn".into(),
            path: "proc/sys/net/core/somaxconn".into(),
            before: somax,
            after: "65535".into(),
            netns: None,
        },
        Change::Dir {
            path: "etc/modprobe.d".into(),
            parent_mtime: None,
        },
        Change::File {
            path: "etc/modprobe.d/90-tune.conf".into(),
            before: Before::Absent,
            after_hex: hex(b"options nf_conntrack hashsize=1\n"),
            parent_mtime: None,
        },
    ];
    store.save(&rec).unwrap();
    std::fs::write(r.join("proc/sys/net/core/somaxconn"), "65535").unwrap();
    let out = rollback(r, &[]);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert!(
        o.contains("in-progress") && o.contains("net.core.somaxconn: 65535 -> "),
        "{o}"
    );
    assert!(
        o.contains("etc/modprobe.d/90-tune.conf: already as before"),
        "{o}"
    );
    let d: Vec<String> = diff(&before, &fingerprint(r))
        .into_iter()
        .filter(|d| !d.contains("var"))
        .collect();
    assert!(d.is_empty(), "{d:#?}");
}

/// Runs tune under a pseudo-terminal (script(1)) with `answer` typed at the prompt.
fn with_terminal(root: &Path, profile: &str, answer: &str) -> (String, bool) {
    let cmd = format!(
        "{} --root {} apply --profile {}",
        env!("CARGO_BIN_EXE_tune"),
        root.display(),
        profile
    );
    let mut child = crate::support::command("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("TUNE_STATE_DIR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.success(),
    )
}

#[test]
fn on_a_terminal_apply_asks_first() {
    let dir = fake_root();
    let r = dir.path();
    let p = fixture("small.toml");
    let before = read(r, "proc/sys/net/core/somaxconn");
    let (o, _) = with_terminal(r, &p, "n\n");
    assert!(
        o.contains("Make these") && o.contains("Nothing was changed."),
        "{o}"
    );
    assert_eq!(read(r, "proc/sys/net/core/somaxconn"), before);
    let (o, ok) = with_terminal(r, &p, "y\n");
    assert!(ok && o.contains("Applied"), "{o}");
    assert_eq!(read(r, "proc/sys/net/core/somaxconn"), "65535");
}

/// (seconds, nanoseconds) of a file's modification time.
fn mtime(p: &Path) -> (i64, i64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.mtime(), m.mtime_nsec())
}

fn set_mtime(p: &Path, t: std::time::SystemTime) {
    std::fs::File::open(p)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(t))
        .unwrap();
}

#[test]
fn rollback_puts_back_content_mode_and_modification_times() {
    use std::time::{Duration, UNIX_EPOCH};
    let dir = fake_root();
    let r = dir.path();
    // Two admin files in tune's way: one last changed in 2001 (to the nanosecond), one dated
    // before 1970 (a negative time, as a restored backup may carry).
    let sysctl = r.join("etc/sysctl.d/90-tune.conf");
    std::fs::write(&sysctl, "# an admin's own file\nvm.swappiness = 10\n").unwrap();
    std::fs::set_permissions(&sysctl, std::fs::Permissions::from_mode(0o640)).unwrap();
    set_mtime(
        &sysctl,
        UNIX_EPOCH + Duration::new(981_173_106, 123_456_789),
    );
    let limits = r.join("etc/security/limits.d/90-tune.conf");
    std::fs::write(&limits, "@audio - rtprio 95\n").unwrap();
    set_mtime(
        &limits,
        UNIX_EPOCH - Duration::new(86_400 * 400, 0) + Duration::new(0, 7),
    );
    // The directories apply writes into or creates entries in, dated too.
    let dirs = [
        "etc",
        "etc/sysctl.d",
        "etc/security/limits.d",
        "etc/systemd",
    ]
    .map(|d| r.join(d));
    for (i, d) in dirs.iter().enumerate() {
        set_mtime(d, UNIX_EPOCH + Duration::new(1_000_000_000 + i as u64, 999));
    }
    let dir_times = dirs.each_ref().map(|d| mtime(d));
    let before = fingerprint(r);
    let times = [mtime(&sysctl), mtime(&limits)];
    assert_eq!(times, [(981_173_106, 123_456_789), (-86_400 * 400, 7)]);

    let out = apply(r, &fixture("1m-like.toml"), &["--persist"]);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    // Apply replaced both files: new content, new times.
    assert!(std::fs::read_to_string(&sysctl)
        .unwrap()
        .contains("# Written by `tune apply --persist`"));
    assert_ne!(mtime(&sysctl), times[0]);
    assert_ne!(mtime(&limits), times[1]);
    // Replacing a file and creating modprobe.d and system.conf.d moved every directory's time.
    for (d, t) in dirs.iter().zip(dir_times) {
        assert_ne!(mtime(d), t, "{}", d.display());
    }
    let record = std::fs::read_to_string(r.join("var/lib/tune/tx-000001.json")).unwrap();
    assert!(
        record.contains("\"sec\": 981173106") && record.contains("\"nsec\": 123456789"),
        "{record}"
    );

    let out = rollback(r, &[]);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert!(
        o.contains(
            "90-tune.conf: restored the previous file (41 bytes, mode 640, modification time)"
        ),
        "{o}"
    );
    // Content and mode (the fingerprint) and the time to the nanosecond are as before.
    let d: Vec<String> = diff(&before, &fingerprint(r))
        .into_iter()
        .filter(|d| !d.contains("var"))
        .collect();
    assert!(d.is_empty(), "{d:#?}\n{o}");
    assert_eq!([mtime(&sysctl), mtime(&limits)], times, "{o}");
    assert_eq!(dirs.each_ref().map(|d| mtime(d)), dir_times, "{o}");
    // Files apply created are still removed.
    assert!(!r.join("etc/modprobe.d").exists(), "{o}");
    assert!(!r.join("etc/systemd/system.conf.d").exists(), "{o}");

    // Apply again, then someone copies the old sysctl file back by hand: the content and mode
    // match the record but the time does not, and rollback still puts the time back.
    let out = apply(r, &fixture("1m-like.toml"), &["--persist"]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    std::fs::write(&sysctl, "# an admin's own file\nvm.swappiness = 10\n").unwrap();
    std::fs::set_permissions(&sysctl, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_ne!(mtime(&sysctl), times[0]);
    let out = rollback(r, &[]);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert!(
        o.contains("sysctl.d/90-tune.conf: already as before; put back its modification time"),
        "{o}"
    );
    assert_eq!([mtime(&sysctl), mtime(&limits)], times, "{o}");
    assert_eq!(dirs.each_ref().map(|d| mtime(d)), dir_times, "{o}");
}

#[test]
fn persist_writes_only_what_tune_changes_and_says_why_not_the_rest() {
    let dir = fake_root();
    let r = dir.path();
    // A profile that fs.file-max already meets (whatever the fake root holds is above 1000),
    // and a somaxconn above the fake root's.
    let live_somax: u64 = read(r, "proc/sys/net/core/somaxconn").parse().unwrap();
    let live_file_max = read(r, "proc/sys/fs/file-max");
    let want = live_somax + 1;
    let profile = r.join("p.toml");
    std::fs::write(
        &profile,
        format!(
            "target = 1\nrole = \"server\"\n[knobs]\n\"net.core.somaxconn\" = {want}\n\"fs.file-max\" = 1000\n"
        ),
    )
    .unwrap();
    let out = apply(r, profile.to_str().unwrap(), &["--persist"]);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{o}{e}");
    let sysctl = std::fs::read_to_string(r.join("etc/sysctl.d/90-tune.conf")).unwrap();
    assert!(
        sysctl.contains(&format!("net.core.somaxconn = {want}")),
        "{sysctl}"
    );
    assert!(!sysctl.contains("fs.file-max"), "{sysctl}");
    assert!(
        o.contains(&format!(
            "note: fs.file-max: not persisted: {live_file_max} already meets the profile"
        )),
        "{o}"
    );
    assert_eq!(read(r, "proc/sys/fs/file-max"), live_file_max);
}

/// The number of steps (changes) of the only record in `state`.
fn recorded_steps(state: &Path) -> usize {
    let f = std::fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a record");
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
    rec["changes"].as_array().unwrap().len()
}

#[test]
fn a_kill_after_any_step_is_undone_byte_for_byte_by_rollback() {
    kill_after_each_step(fake_root());
}

#[test]
fn a_kill_after_any_step_on_captured_roots() {
    for capture in apply_support::CAPTURES {
        kill_after_each_step(apply_support::fake_root_from(capture));
    }
}

fn kill_after_each_step(dir: tempfile::TempDir) {
    use std::io::BufRead;
    let r = dir.path();
    let state = tempfile::tempdir().unwrap();
    let st = state.path().to_str().unwrap().to_string();
    let before = fingerprint(r);
    let profile = fixture("1m-like.toml");
    let args = |extra: &[&str]| {
        let mut a = vec!["--root", r.to_str().unwrap()];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["--state-dir", &st]);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let apply_args = args(&[
        "apply",
        "--yes",
        "--persist",
        "--service",
        "wsserver",
        "--profile",
        &profile,
    ]);
    let rollback_args = args(&["rollback", "--yes"]);
    // A full apply, to learn how many steps there are; rolled back.
    let out = tune().args(&apply_args).output().unwrap();
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    let steps = recorded_steps(state.path());
    assert!(steps >= 6, "{steps} steps: {o}");
    let out = tune().args(&rollback_args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out).0);
    std::fs::remove_dir_all(state.path()).unwrap();
    // Killed (SIGKILL) after step k, for every k from "record written, nothing changed" (0) to
    // "every change made, record not yet closed" (steps).
    for k in 0..=steps {
        let mut child = tune()
            .args(&apply_args)
            .env(tune::transaction::PAUSE_HOOK, k.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while err.read_line(&mut line).unwrap() > 0 && !line.contains("paused after step") {
            line.clear();
        }
        assert!(
            line.contains(&format!("paused after step {k} ")),
            "k={k}: {line:?}"
        );
        crate::support::kill_group(child.id());
        child.wait().unwrap();
        // The next apply refuses to stack on the unfinished one and changes nothing.
        let mid = fingerprint(r);
        assert_eq!(
            diff(&before, &mid).is_empty(),
            k == 0,
            "k={k}: the first k steps were made before the kill"
        );
        let out = tune().args(&apply_args).output().unwrap();
        let (o, e) = text(&out);
        assert_eq!(out.status.code(), Some(2), "k={k}: {o}{e}");
        assert!(
            e.contains("did not finish") && e.contains("run `tune rollback` first"),
            "{e}"
        );
        assert!(diff(&mid, &fingerprint(r)).is_empty(), "k={k}");
        // Rollback puts the tree back exactly.
        let out = tune().args(&rollback_args).output().unwrap();
        let (o, e) = text(&out);
        assert!(out.status.success(), "k={k}: {o}{e}");
        let d = diff(&before, &fingerprint(r));
        assert!(d.is_empty(), "k={k}: {d:#?}\n{o}");
        std::fs::remove_dir_all(state.path()).unwrap();
    }
}
