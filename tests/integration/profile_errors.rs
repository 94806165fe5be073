//! Profile mistakes through the binary: each message names the file, line and key in the user's words and says what to write instead.

use std::path::Path;
use std::time::Duration;

/// A bad profile is refused at once; anything near this long is a hang (a FIFO, /dev/zero).
const TIMEOUT: Duration = Duration::from_secs(20);

fn tune() -> crate::support::Tune {
    let mut c = crate::support::tune();
    c.env("NO_COLOR", "1").timeout(TIMEOUT);
    c
}

/// Runs `tune profiles show PATH` and `tune check --profile PATH`: both must refuse with exit 2
/// and the same message, printed once, with no report. Returns the message.
fn refused(path: &Path) -> String {
    let mut first = None;
    for cmd in [&["profiles", "show"][..], &["check", "--profile"][..]] {
        let out = tune().args(cmd).arg(path).output().unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        assert!(out.stdout.is_empty(), "{cmd:?} printed a report");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        first.get_or_insert(err);
    }
    first.unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn an_unquoted_dotted_knob_name_says_to_quote_it() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "dotted.toml",
        "target = 10000\nrole = \"server\"\n[knobs]\nnet.core.somaxconn = 4096\n",
    );
    let e = refused(&p);
    assert!(
        e.contains("dotted.toml:4: knobs.net.core.somaxconn: a knob name has dots, so it must be in quotes")
            && e.contains("write \"net.core.somaxconn\" = 4096"),
        "{e}"
    );
    assert!(!e.contains("borrowed"), "serde wording leaked: {e}");
    // The same name at the top level: it belongs under [knobs].
    let p = write(
        d.path(),
        "top.toml",
        "target = 10000\nrole = \"server\"\nnet.core.somaxconn = 4096\n",
    );
    let e = refused(&p);
    assert!(
        e.contains("top.toml:3: net.core.somaxconn: net.core.somaxconn is a knob: knob requirements go under a [knobs] line"),
        "{e}"
    );
}

#[test]
fn a_target_with_a_suffix_is_accepted_and_an_unquoted_one_explained() {
    let d = tempfile::tempdir().unwrap();
    for (text, shown) in [
        ("\"50k\"", "50,000"),
        ("\"1.5m\"", "1,500,000"),
        ("\"1,000,000\"", "1,000,000"),
    ] {
        let p = write(
            d.path(),
            "k.toml",
            &format!("target = {text}\nrole = \"server\"\n"),
        );
        let out = tune().args(["profiles", "show"]).arg(&p).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{text}: {out:?}");
        assert!(
            stdout.contains(&format!("target:    {shown} connections")),
            "{text}: {stdout}"
        );
    }
    let p = write(d.path(), "k2.toml", "target = 50k\nrole = \"server\"\n");
    let e = refused(&p);
    assert!(
        e.contains("k2.toml:1: target: a number with a suffix must be in quotes: write \"50k\", or the plain number 50000"),
        "{e}"
    );
    let p = write(
        d.path(),
        "k3.toml",
        "target = \"50kb\"\nrole = \"server\"\n",
    );
    let e = refused(&p);
    assert!(
        e.contains("k3.toml:1: target: expected a whole number such as 50000")
            && e.contains("\"50k\" (thousand)")
            && e.contains("found \"50kb\""),
        "{e}"
    );
    assert!(!e.contains("u64"), "serde wording leaked: {e}");
    let p = write(d.path(), "neg.toml", "target = -5\nrole = \"server\"\n");
    let e = refused(&p);
    assert!(
        e.contains("neg.toml:1: target: expected the number of concurrent connections, 0 or more, found -5"),
        "{e}"
    );
}

#[test]
fn an_extends_cycle_is_printed_once_as_a_chain() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "r1.toml",
        "extends = \"./r2.toml\"\ntarget = 1\nrole = \"server\"\n",
    );
    write(d.path(), "r2.toml", "extends = \"./r1.toml\"\n");
    let e = refused(&d.path().join("r1.toml"));
    assert!(
        e.contains("r2.toml:1: extends: a cycle: ") && e.contains("remove one of these extends"),
        "{e}"
    );
    assert_eq!(e.matches("r1.toml").count(), 2, "r1 -> r2 -> r1: {e}");
    assert_eq!(
        e.matches("r2.toml").count(),
        2,
        "r2's line and the chain: {e}"
    );
    assert!(!e.contains("././"), "{e}");
    let s = write(d.path(), "self.toml", "extends = \"self.toml\"\n");
    let e = refused(&s);
    assert!(e.contains("self.toml:1: extends: a cycle: "), "{e}");
}

#[test]
fn an_error_in_an_extended_file_names_that_file_and_the_extends_line() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "base.toml",
        "target = 1000\nrole = \"server\"\n[knobs]\n\"net.core.somaxconn\" = \"many\"\n",
    );
    let child = write(d.path(), "child.toml", "extends = \"base.toml\"\n");
    let e = refused(&child);
    assert!(
        e.contains("base.toml:4: knobs.\"net.core.somaxconn\": expected an integer")
            && e.contains("(extended by ")
            && e.contains("child.toml:1)"),
        "{e}"
    );
}

#[test]
fn values_outside_the_kernels_range_are_refused_at_load_with_the_range() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        (
            "\"net.core.somaxconn\" = 99999999999",
            "99,999,999,999 is too large: the kernel accepts 0 to 2,147,483,647 (INT_MAX) for net.core.somaxconn; write at most 2147483647",
        ),
        (
            "\"net.ipv4.ip_local_port_range\" = [1024, 70000]",
            "70,000 is too large: the kernel accepts 1 to 65,535 for net.ipv4.ip_local_port_range; write at most 65535",
        ),
        (
            "\"net.ipv4.ip_local_port_range\" = [0, 60000]",
            "0 is too small: the kernel accepts 1 to 65,535",
        ),
        (
            "\"net.ipv4.ip_local_port_range\" = [60000, 1024]",
            "the low end comes first: write [1024, 60000]",
        ),
        (
            "\"fs.nr_open\" = 4294967296",
            "4,294,967,296 is too large: the kernel accepts 64 to 2,147,483,584 for fs.nr_open",
        ),
        (
            "\"rlimit.nofile.hard\" = \"unlimited\"",
            "unlimited is too large: the kernel accepts 0 to 2,147,483,584 for rlimit.nofile.hard",
        ),
        (
            "\"net.ipv4.tcp_fin_timeout\" = 99999999",
            "99,999,999 is too large: the kernel accepts 0 to 2,147,483 for net.ipv4.tcp_fin_timeout",
        ),
        (
            "\"net.ipv4.tcp_mem\" = [3, 2, 1]",
            "expected low <= pressure <= high, found 3 2 1: write [1, 2, 3]",
        ),
    ];
    for (line, expect) in cases {
        let p = write(
            d.path(),
            "range.toml",
            &format!("target = 10000\nrole = \"client\"\n[knobs]\n{line}\n"),
        );
        let e = refused(&p);
        let key = line.split(" = ").next().unwrap();
        assert!(
            e.contains(&format!("range.toml:4: knobs.{key}: {expect}")),
            "{line}: {e}"
        );
    }
}

#[test]
fn extends_must_name_a_regular_file_of_sane_size() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "zero.toml", "extends = \"/dev/zero\"\n");
    let e = refused(&p);
    assert!(
        e.contains("zero.toml:1: extends: /dev/zero: is a character device, not a profile"),
        "{e}"
    );
    let fifo = d.path().join("pipe.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let p = write(d.path(), "fifo.toml", "extends = \"pipe.toml\"\n");
    let e = refused(&p);
    assert!(
        e.contains("fifo.toml:1: extends: ")
            && e.contains("pipe.toml: is a FIFO (named pipe), not a profile"),
        "{e}"
    );
    let big = d.path().join("big.toml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let p = write(d.path(), "huge.toml", "extends = \"big.toml\"\n");
    let e = refused(&p);
    assert!(
        e.contains("big.toml: is 67,108,864 bytes, more than any profile (at most 1,048,576)"),
        "{e}"
    );
    let p = write(
        d.path(),
        "dir.toml",
        &format!("extends = \"{}/\"\n", d.path().display()),
    );
    let e = refused(&p);
    assert!(e.contains("is a directory, not a profile"), "{e}");
    // The profile named on the command line gets the same checks.
    let e = refused(Path::new("/dev/zero"));
    assert!(e.contains("/dev/zero: is a character device"), "{e}");
}

#[test]
fn other_mistakes_say_what_to_write() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        (
            "target = 10000\nrole = \"server\"\ntarget = 5\n",
            "t.toml:3: target: target is set twice; keep one of the two lines",
        ),
        (
            "target = 10000\nrole = \"server\"\ntarget_connections = 5\n",
            "t.toml:3: target_connections: unknown setting; did you mean target?",
        ),
        (
            "target = 1,000\nrole = \"server\"\n",
            "t.toml:1: target: a number cannot have commas in TOML: write 1000",
        ),
        (
            "target = 10000\nrole = server\n",
            "t.toml:2: role: this line is not valid TOML",
        ),
        (
            "target = 10000\nrole = \"server\"\n[knobs]\nsomaxconn = 4096\n",
            "t.toml:4: knobs.\"somaxconn\": unknown knob; write its full name: \"net.core.somaxconn\"",
        ),
        (
            "target = 10000\nrole = \"server\"\nheadroom_percent = \"10%\"\n",
            "t.toml:3: headroom_percent: expected a whole number of percent, 0 or more, found the text \"10%\"",
        ),
        (
            "target = 10000\n",
            "t.toml: role: missing: write role = \"server\", \"client\" or \"loopback\"",
        ),
    ];
    for (text, expect) in cases {
        let p = write(d.path(), "t.toml", text);
        let e = refused(&p);
        assert!(e.contains(expect), "{text:?}: {e}");
        for leak in [
            "expected u64",
            "borrowed",
            "invalid type",
            "expected newline",
        ] {
            assert!(!e.contains(leak), "serde/TOML wording leaked: {e}");
        }
    }
}

#[test]
fn a_target_on_the_command_line_takes_the_same_suffixes() {
    let out = tune()
        .args(["check", "--target", "50k", "--format", "json"])
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["profile"]["target"], 50_000);
    let out = tune().args(["check", "--target", "50kb"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--target")
            && err.contains("\"50k\" (thousand)")
            && err.contains("found \"50kb\""),
        "{err}"
    );
}
