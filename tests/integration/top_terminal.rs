//! `tune top` in a real terminal (tmux, 80×24) during a verify: the fd bar of the server worker rises on screen, nothing overflows, q quits.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::tmux_support::{available, Session};
use crate::verify_support::processes;

/// Connections the verify opens, paced so that the ramp spans several refreshes.
const CONNECTIONS: u64 = 15_000;
const RATE: u64 = 2_000;

/// The used fds of `pid`'s row on a screen (`fd PID COMM USED/LIMIT ...`), if shown.
fn fds_on_screen(screen: &[String], pid: u32) -> Option<u64> {
    let needle = format!("fd {pid} ");
    screen.iter().find_map(|l| {
        let rest = &l[l.find(&needle)? + needle.len()..];
        let used = rest.split_whitespace().nth(1)?.split('/').next()?;
        used.replace(',', "").parse().ok()
    })
}

#[test]
fn during_a_verify_the_server_workers_fd_bar_rises_at_80x24() {
    if !available() {
        return;
    }
    // The verify in its own network namespace (nothing it opens touches the host's); its
    // processes' fds are seen from here, as the pid namespace is shared.
    let script = format!(
        "set -e\nip link set lo up\nexec \"$TUNE\" serve --listen 127.0.0.1:0 --verify {CONNECTIONS} --rate {RATE} --hold 5 --format json"
    );
    let verify = crate::support::command("unshare")
        .args(["-n", "--", "sh", "-c", &script])
        .env("TUNE", crate::support::tune_exe())
        .env_remove("TUNE_ROOT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let leader = verify.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    let workers = loop {
        let w: Vec<u32> = processes()
            .into_iter()
            .filter(|(_, ppid, cmd)| *ppid == leader && cmd.contains("__serve-worker"))
            .map(|(pid, _, _)| pid)
            .collect();
        if !w.is_empty() {
            break w;
        }
        assert!(Instant::now() < deadline, "no server worker started");
        std::thread::sleep(Duration::from_millis(50));
    };

    // One worker by --pid: without it top shows the host's biggest fd holders, and another
    // verify running beside this test (a second copy of the suite) holds more fds than this
    // one, so this worker's row never appears. The worker takes about half the connections
    // (SO_REUSEPORT spreads them), thousands more than the 3,000 rise asked below.
    let watched = workers[0];
    let pid_arg = watched.to_string();
    let top = Session::start(
        80,
        24,
        Path::new(crate::support::tune_exe()),
        &["top", "--interval", "0.5", "--pid", &pid_arg],
        &[("NO_COLOR", "1")],
    );
    let workers = vec![watched];
    let mut seen: Vec<(u32, u64)> = Vec::new();
    let mut screens: Vec<Vec<String>> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        let screen = top.screen();
        for pid in &workers {
            if let Some(n) = fds_on_screen(&screen, *pid) {
                seen.push((*pid, n));
            }
        }
        let risen = workers.iter().any(|pid| {
            let mine: Vec<u64> = seen.iter().filter(|s| s.0 == *pid).map(|s| s.1).collect();
            mine.first()
                .zip(mine.last())
                .is_some_and(|(a, b)| *b >= a + 3_000)
        });
        screens.push(screen);
        if risen {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let last = screens.last().cloned().unwrap_or_default();
    let text = last.join("\n");
    // The keys: s sorts by time to exhaustion, p pauses (the header says so), q quits.
    let header_shows = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if top.screen().first().is_some_and(|h| h.contains(what)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    top.keys("s");
    let sorted = header_shows("sort exhaustion");
    top.keys("p");
    let paused = header_shows("PAUSED");
    top.keys("q");
    let code = top.exit(Duration::from_secs(10));
    let out = verify.wait_with_output().unwrap();

    // The fd count of a server worker rose by thousands while the screen refreshed.
    let by_worker =
        |pid: u32| -> Vec<u64> { seen.iter().filter(|s| s.0 == pid).map(|s| s.1).collect() };
    assert!(
        workers.iter().any(|pid| {
            let v = by_worker(*pid);
            v.first()
                .zip(v.last())
                .is_some_and(|(a, b)| *b >= a + 3_000)
        }),
        "no server worker's fds rose on screen: {:?} over {} screens; last:\n{text}",
        seen,
        screens.len()
    );
    // The screen: 24 rows, none wider than 80, the header first, the bars drawn, and the
    // rising worker's row with a positive rate.
    for s in &screens {
        assert!(s.len() <= 24, "{}", s.join("\n"));
        for l in s {
            assert!(l.chars().count() <= 80, "overflows 80 columns: {l:?}");
        }
    }
    assert!(last[0].starts_with("tune top"), "{text}");
    assert!(text.contains('█') && text.contains('░'), "{text}");
    let row = last
        .iter()
        .find(|l| workers.iter().any(|p| l.contains(&format!("fd {p} tune"))))
        .expect("a server worker's row");
    assert!(
        row.contains("/20,000") && row.contains('%'),
        "RLIMIT_NOFILE soft is the hard 20,000 here: {row}"
    );
    assert!(row.contains("/s"), "{row}");
    assert!(sorted, "s did not change the sort: {:?}", top.screen());
    assert!(paused, "p did not pause: {:?}", top.screen());
    assert_eq!(code, Some(0), "q quits with 0; screen:\n{text}");
    assert!(
        out.status.success(),
        "verify: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The README's capture comes from here: TUNE_TOP_CAPTURE=FILE writes the last screen.
    if let Some(f) = std::env::var_os("TUNE_TOP_CAPTURE") {
        std::fs::write(f, text + "\n").unwrap();
    }
}
