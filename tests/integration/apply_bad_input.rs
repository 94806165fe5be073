//! Bad input to `tune apply` and `tune rollback`: a clear error naming the knob or file, exit 2, nothing written.

use crate::apply_support;

use std::path::Path;
use std::process::Stdio;

use crate::support::command;
use apply_support::{diff, fake_root, fingerprint, fixture, text, tune};

fn run(root: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = tune()
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (o, e) = text(&out);
    (out.status.code(), o, e)
}

/// Runs `args` against a fresh fake root and checks it failed with exit 2 and left the tree as it was.
fn refused(prepare: impl Fn(&Path), args: &[&str]) -> String {
    let dir = fake_root();
    prepare(dir.path());
    let before = fingerprint(dir.path());
    let (code, o, e) = run(dir.path(), args);
    assert_eq!(code, Some(2), "{o}\n{e}");
    let d = diff(&before, &fingerprint(dir.path()));
    assert!(d.is_empty(), "tree changed: {d:#?}\n{o}\n{e}");
    e
}

#[test]
fn a_triple_out_of_order_is_refused_before_anything_is_written() {
    let p = fixture("triple-out-of-order.toml");
    let e = refused(|_| {}, &["apply", "--yes", "--profile", &p]);
    // The profile loader or the plan refuses it; either way the knob and the numbers are named.
    assert!(
        e.contains("net.ipv4.tcp_mem") && e.contains("3000000 2000000 1000000"),
        "{e}"
    );
    assert!(e.contains("order") || e.contains("ascending"), "{e}");
}

#[test]
fn rlimit_above_nr_open_is_refused() {
    // One above the fake root's nr_open (1048576 here and on Debian 12's systemd host, 1073741816 on Debian 13's).
    for dir in std::iter::once(fake_root()).chain(
        apply_support::CAPTURES
            .iter()
            .map(|c| apply_support::fake_root_from(c)),
    ) {
        let r = dir.path();
        let over = apply_support::read(r, "proc/sys/fs/nr_open")
            .parse::<u64>()
            .unwrap()
            + 1;
        let p = r.join("over.toml");
        std::fs::write(
            &p,
            format!("target = 1000\nrole = \"server\"\n[knobs]\n\"rlimit.nofile.hard\" = {over}\n"),
        )
        .unwrap();
        let before = fingerprint(r);
        let (code, o, e) = run(r, &["apply", "--yes", "--profile", p.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{o}{e}");
        assert!(
            e.contains(&format!(
                "rlimit.nofile.hard: profile asks for {over}, above fs.nr_open"
            )),
            "{e}"
        );
        assert!(diff(&before, &fingerprint(r)).is_empty());
    }
}

#[test]
fn corrupt_and_foreign_state_files_are_named() {
    let p = fixture("netns.toml");
    let corrupt = |r: &Path| {
        std::fs::create_dir_all(r.join("var/lib/tune")).unwrap();
        std::fs::write(
            r.join("var/lib/tune/tx-000001.json"),
            "{\"format\": \"tune-apply-rec",
        )
        .unwrap();
    };
    let e = refused(corrupt, &["rollback"]);
    assert!(
        e.contains("var/lib/tune/tx-000001.json") && e.contains("not valid JSON"),
        "{e}"
    );
    assert!(e.contains("move it out"), "{e}");
    let e = refused(corrupt, &["apply", "--yes", "--profile", &p]);
    assert!(e.contains("tx-000001.json"), "{e}");
    let foreign = |r: &Path| {
        std::fs::create_dir_all(r.join("var/lib/tune")).unwrap();
        std::fs::write(
            r.join("var/lib/tune/tx-000001.json"),
            "{\"format\":\"other-tool\",\"version\":1}",
        )
        .unwrap();
    };
    let e = refused(foreign, &["rollback", "--list"]);
    assert!(e.contains("not a tune apply record"), "{e}");
    let future = |r: &Path| {
        std::fs::create_dir_all(r.join("var/lib/tune")).unwrap();
        std::fs::write(
            r.join("var/lib/tune/tx-000001.json"),
            "{\"format\":\"tune-apply-record\",\"version\":7}",
        )
        .unwrap();
    };
    let e = refused(future, &["rollback"]);
    assert!(e.contains("newer tune"), "{e}");
}

#[test]
fn missing_sysctl_d_is_a_clear_error() {
    let p = fixture("1m-like.toml");
    let no_sysctl_d = |r: &Path| std::fs::remove_dir_all(r.join("etc/sysctl.d")).unwrap();
    let e = refused(
        no_sysctl_d,
        &["apply", "--yes", "--persist", "--profile", &p],
    );
    assert!(
        e.contains("/etc/sysctl.d is missing") && e.contains("mkdir /etc/sysctl.d"),
        "{e}"
    );
}

#[test]
fn no_confirmation_on_a_non_terminal_without_yes() {
    let p = fixture("small.toml");
    let e = refused(|_| {}, &["apply", "--profile", &p]);
    assert!(
        e.contains("stdin is not a terminal") && e.contains("--yes"),
        "{e}"
    );
}

#[test]
fn bad_service_names_and_missing_processes() {
    let p = fixture("1m-like.toml");
    let e = refused(
        |_| {},
        &[
            "apply",
            "--yes",
            "--persist",
            "--service",
            "../x",
            "--profile",
            &p,
        ],
    );
    assert!(
        e.contains("--service \"../x\": not a systemd unit name"),
        "{e}"
    );
    let out = tune()
        .args(["apply", "--dry-run", "--pid", "999999999", "--profile", &p])
        .output()
        .unwrap();
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{o}{e}");
    assert!(e.contains("--pid 999999999: no such process"), "{e}");
}

#[test]
fn rollback_refuses_a_record_of_another_root() {
    let p = fixture("small.toml");
    let a = fake_root();
    let b = fake_root();
    let state = tempfile::tempdir().unwrap();
    let st = state.path().to_str().unwrap();
    let (code, o, e) = run(
        a.path(),
        &["apply", "--yes", "--state-dir", st, "--profile", &p],
    );
    assert_eq!(code, Some(0), "{o}{e}");
    let (code, o, e) = run(b.path(), &["rollback", "--state-dir", st]);
    assert_eq!(code, Some(2), "{o}{e}");
    assert!(
        e.contains("was made against root") && e.contains(a.path().to_str().unwrap()),
        "{e}"
    );
    let (code, o, e) = run(a.path(), &["rollback", "--yes", "--state-dir", st]);
    assert_eq!(code, Some(0), "{o}{e}");
}

/// Runs tune as user nobody inside a fresh network namespace (so even a broken check could not touch
/// the host's per-namespace values; host-wide ones are refused there).
fn as_nobody(args: &[&str]) -> (Option<i32>, String, String) {
    let out = command("unshare")
        .args([
            "-n",
            "--",
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ])
        .arg(env!("CARGO_BIN_EXE_tune"))
        .args(args)
        .env_remove("TUNE_ROOT")
        .env_remove("TUNE_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("unshare and setpriv (util-linux)");
    let (o, e) = text(&out);
    (out.status.code(), o, e)
}

#[test]
fn real_changes_need_root_and_dry_run_does_not() {
    let p = fixture("netns.toml");
    let (code, o, e) = as_nobody(&["apply", "--yes", "--profile", &p]);
    assert_eq!(code, Some(2), "{o}{e}");
    assert!(
        e.contains("tune apply needs root to write net.") && e.contains("--dry-run"),
        "{e}"
    );
    let (code, o, e) = as_nobody(&["apply", "--dry-run", "--profile", &p]);
    assert_eq!(code, Some(1), "{o}{e}");
    assert!(o.contains("raise -> 65,535"), "{o}");
}

#[test]
fn a_second_apply_waits_for_no_one_and_says_who_holds_the_lock() {
    let p = fixture("small.toml");
    let dir = fake_root();
    let root = tune::root::Root::new(dir.path()).unwrap();
    let store = tune::state::Store::new(&root, None).unwrap();
    let (lock, _) = store.lock().unwrap();
    let before = fingerprint(dir.path());
    let (code, o, e) = run(dir.path(), &["apply", "--yes", "--profile", &p]);
    assert_eq!(code, Some(2), "{o}{e}");
    assert!(
        e.contains("another tune apply or rollback is running"),
        "{e}"
    );
    assert!(diff(&before, &fingerprint(dir.path())).is_empty());
    let (code, _, e) = run(dir.path(), &["rollback"]);
    assert_eq!(code, Some(2));
    assert!(
        e.contains("another tune apply or rollback is running"),
        "{e}"
    );
    drop(lock);
    let (code, o, e) = run(dir.path(), &["apply", "--yes", "--profile", &p]);
    assert_eq!(code, Some(0), "{o}{e}");
}

#[test]
fn an_unfinished_apply_must_be_rolled_back_first() {
    let p = fixture("small.toml");
    let killed = |r: &Path| {
        let root = tune::root::Root::new(r).unwrap();
        let store = tune::state::Store::new(&root, None).unwrap();
        store
            .save(&tune::state::Record::new(1, "killed", "test", &root))
            .unwrap();
    };
    let e = refused(killed, &["apply", "--yes", "--profile", &p]);
    assert!(
        e.contains("apply #1 (profile killed) did not finish (status in-progress)"),
        "{e}"
    );
    assert!(e.contains("run `tune rollback` first"), "{e}");
}

#[test]
fn a_non_root_check_next_to_roots_records_passes_with_a_note() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = fake_root();
    let r = dir.path();
    let p = fixture("small.toml");
    let (code, o, e) = run(r, &["apply", "--yes", "--profile", &p]);
    assert_eq!(code, Some(0), "{o}{e}");
    // The state directory is root's alone; so are its records.
    let state = r.join("var/lib/tune");
    assert_eq!(std::fs::metadata(&state).unwrap().mode() & 0o777, 0o700);
    for f in std::fs::read_dir(&state).unwrap() {
        let m = std::fs::symlink_metadata(f.unwrap().path()).unwrap();
        assert_eq!(m.mode() & 0o777, 0o600);
    }
    // Another user (nobody) can read the fake root, but not the records.
    std::fs::set_permissions(r, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = command("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(crate::support::tune_exe())
        .arg("--root")
        .arg(r)
        .args(["check", "--format", "json", "--profile", &p])
        .env_remove("TUNE_STATE_DIR")
        .output()
        .expect("setpriv (util-linux)");
    let (o, e) = text(&out);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{o}{e}");
    let json: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert!(json["drift"].is_null(), "{json:#}");
    assert!(
        json["drift_note"]
            .as_str()
            .is_some_and(|n| n.contains("readable by root only")),
        "{json:#}"
    );
    assert!(
        e.contains("are readable by root only") && e.contains("run tune check as root"),
        "{e}"
    );
    // Root sees the drift view as before.
    let (code, o, e) = run(r, &["check", "--format", "json", "--profile", &p]);
    assert!(matches!(code, Some(0 | 1)), "{o}{e}");
    let json: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(json["drift"]["apply_id"], 1, "{json:#}");
}

#[test]
fn a_record_that_is_a_symlink_is_refused() {
    let e = refused(
        |r| {
            std::fs::create_dir_all(r.join("var/lib/tune")).unwrap();
            std::os::unix::fs::symlink("/etc/passwd", r.join("var/lib/tune/tx-000001.json"))
                .unwrap();
        },
        &["rollback", "--yes"],
    );
    assert!(
        e.contains("is a symbolic link") && e.contains("tx-000001.json"),
        "{e}"
    );
}

#[test]
fn a_record_naming_a_path_outside_the_root_is_refused() {
    let e = refused(
        |r| {
            std::fs::create_dir_all(r.join("var/lib/tune")).unwrap();
            std::fs::write(
                r.join("var/lib/tune/tx-000001.json"),
                r#"{"format":"tune-apply-record","version":1,"id":1,"created_unix":1,
                "profile":"x","profile_source":"x","root":"/","status":"applied","changes":[
                {"kind":"file","path":"etc/../../outside","before":{"type":"absent"},"after_hex":"78"}]}"#,
            )
            .unwrap();
        },
        &["rollback", "--yes"],
    );
    assert!(
        e.contains("etc/../../outside") && e.contains("refused"),
        "{e}"
    );
}
