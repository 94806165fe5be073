//! `tune top --once` on the captured trees (tests/fixtures/roots): the frame a script gets, whole, and the errors for a bad root, pid or interval.

use std::path::Path;

fn root(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/roots")
        .join(name)
        .display()
        .to_string()
}

fn once(tree: &str) -> String {
    let out = crate::support::tune()
        .env("NO_COLOR", "1")
        .env("COLUMNS", "80")
        .args(["--root", &root(tree), "top", "--once", "--interval", "0.1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The whole frame, as the host's files under the root give it (a captured tree does not
/// change between the two refreshes, so every rate is 0 and nothing runs out).
#[test]
fn once_on_a_captured_conntrack_table_names_it_binding_first() {
    let text = once("linux-6.18-conntrack-small");
    let want = "\
tune top  every 0.1s  sort use%  [s]ort [p]ause [q]uit
  limit              use/limit    %            last 0s             rate exhausts
> conntrack      61,440/65,536  94% █████████░ ██                   0/s        —
  memory              591M/22G   3% ░░░░░░░░░░ ██                   0/s        —
  tcp-mem             271/384k   0% ░░░░░░░░░░ ██                   0/s        —
  file-nr             455/2.5M   0% ░░░░░░░░░░ ██                   0/s        —
  orphans               0/131k   0% ░░░░░░░░░░                      0/s        —
> binds first: conntrack: net.netfilter.nf_conntrack_max 65,536; drop 0 insert_f
TCP sockets: in use 1, orphaned 0, TIME_WAIT 0, allocated 1
  ListenOverflows            0      0/s   ListenDrops                0      0/s
  TCPMemoryPressures         0      0/s   TCPReqQFullDrop            0      0/s
note: fds: no process under ";
    assert!(text.starts_with(want), "got:\n{text}\nwant:\n{want}");
    for l in text.lines() {
        assert!(l.chars().count() <= 80, "wider than 80 columns: {l:?}");
    }
}

#[test]
fn once_in_a_child_namespace_says_which_host_wide_knobs_it_cannot_see() {
    let text = once("linux-6.18-netns");
    assert!(!text.contains("tcp-mem"), "{text}");
    assert!(
        text.contains("note: net.ipv4.tcp_mem: absent (host-wide, hidden in a child netns)"),
        "{text}"
    );
    assert!(text.contains("> file-nr "), "{text}");
    // Conntrack counts nothing here (count 0, not probed in a captured tree): it cannot bind.
    assert!(text.contains("\n  conntrack "), "{text}");
}

#[test]
fn bad_roots_pids_and_intervals_are_refused_with_what_to_do() {
    let empty = tempfile::tempdir().unwrap();
    let out = crate::support::tune()
        .args(["--root"])
        .arg(empty.path())
        .args(["top", "--once"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no proc/ under it"), "{err}");
    let out = crate::support::tune()
        .args(["top", "--once", "--pid", "4194305"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--pid 4194305: no such process"), "{err}");
    for bad in ["0", "-1", "x"] {
        let out = crate::support::tune()
            .args(["top", "--once", &format!("--interval={bad}")])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("expected seconds between 0.1 and 3600"),
            "{err}"
        );
    }
    // Without a terminal, the screen is refused with the two ways that work there.
    let out = crate::support::tune().args(["top"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("use --once") && err.contains("--listen ADDR"),
        "{err}"
    );
    let out = crate::support::tune()
        .args(["top", "--once", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--once and --listen conflict");
}

#[test]
fn once_on_this_host_shows_its_own_processes_fds() {
    let out = crate::support::tune()
        .env("NO_COLOR", "1")
        .args(["top", "--once", "--interval", "0.2", "--pid"])
        .arg(std::process::id().to_string())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let me = format!(" fd {} ", std::process::id());
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  fd ") || l.starts_with("> fd "))
        .collect();
    assert!(
        rows.len() == 1 && rows[0].contains(&me),
        "one fd row, this test's process:\n{text}"
    );
}
