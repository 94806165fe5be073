//! A real terminal for tests: runs a command in a detached tmux pane of a given width and reads the screen back with `capture-pane -J`.
//!
//! Each run has its own tmux server (a socket in a temporary directory), killed when the run
//! ends, so tests run in parallel and leave nothing behind. `-J` joins lines the terminal
//! wrapped, so a captured line longer than the width is a line that overflowed.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a command may run in the pane.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Printed after the command, with its exit code, so the harness knows it has finished.
const MARKER: &str = "[tmux-harness-exit ";

/// What the terminal showed.
#[derive(Debug)]
pub struct Screen {
    pub width: usize,
    /// Every line, scrollback included, wrapped lines joined, trailing spaces and blank lines removed.
    pub lines: Vec<String>,
    pub exit: i32,
}

impl Screen {
    /// Lines wider than the terminal: they wrapped.
    pub fn overflowing(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|l| l.chars().count() > self.width)
            .map(String::as_str)
            .collect()
    }

    /// The screen as text, for assertion messages.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A missing tmux skips the test visibly; under TUNE_TEST_STRICT=1 (scripts/test-all) it fails.
pub fn available() -> bool {
    if Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    let why = "tmux not found (Debian package tmux)";
    if std::env::var("TUNE_TEST_STRICT").as_deref() == Ok("1") {
        panic!("{why} (TUNE_TEST_STRICT=1: a skip is a failure; scripts/test-all installs it)");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// Kills the run's tmux server (and the shell in its pane) however the test ends.
struct Server<'a>(&'a Path);

impl Drop for Server<'_> {
    fn drop(&mut self) {
        let _ = tmux(self.0, &["kill-server"]);
    }
}

fn tmux(sock: &Path, args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new("tmux")
        .arg("-S")
        .arg(sock)
        .args(["-f", "/dev/null"])
        .args(args)
        .output()
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The pane's shell line: `program args` with `env`, then the exit marker. The shell stays
/// after the command so the pane can be read; kill-server ends it.
fn script(program: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut line: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect();
    line.push(quote(&program.display().to_string()));
    line.extend(args.iter().map(|a| quote(a)));
    format!(
        "env -u TUNE_ROOT {}; echo \"{MARKER}$?]\"; exec sleep {}",
        line.join(" "),
        TIMEOUT.as_secs() + 30
    )
}

/// Starts a tmux server on `sock` with one detached `width`×`height` pane running `script`.
fn new_session(sock: &Path, width: u16, height: u16, script: &str) {
    let out = tmux(
        sock,
        &[
            // A long history, so nothing the command printed scrolls out of reach.
            "start-server",
            ";",
            "set-option",
            "-g",
            "history-limit",
            "100000",
            ";",
            "new-session",
            "-d",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "sh",
            "-c",
            script,
        ],
    )
    .unwrap();
    assert!(
        out.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `program args` in a `width`-column terminal with `env` set, and returns the screen.
pub fn run(width: u16, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Screen {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tmux.sock");
    let script = script(program, args, env);
    let _server = Server(&sock);
    new_session(&sock, width, 50, &script);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let out = tmux(&sock, &["capture-pane", "-p", "-J", "-S", "-"]).unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(at) = text.find(MARKER) {
            let code = text[at + MARKER.len()..]
                .split(']')
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(-1);
            let mut lines: Vec<String> = text[..at]
                .lines()
                .map(|l| l.trim_end().to_string())
                .collect();
            while lines.last().is_some_and(|l| l.is_empty()) {
                lines.pop();
            }
            return Screen {
                width: width.into(),
                lines,
                exit: code,
            };
        }
        assert!(
            Instant::now() < deadline,
            "the command did not finish within {TIMEOUT:?} at {width} columns; screen:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A program running in a detached tmux pane of a fixed size, read while it runs (a live
/// screen such as `tune top`); the tmux server dies with it.
pub struct Session {
    _dir: tempfile::TempDir,
    sock: std::path::PathBuf,
}

impl Session {
    /// Starts `program args` in a `width`×`height` pane with `env` set.
    pub fn start(
        width: u16,
        height: u16,
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Session {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("tmux.sock");
        new_session(&sock, width, height, &script(program, args, env));
        Session { _dir: dir, sock }
    }

    /// The visible screen now, one string per row, trailing spaces removed.
    pub fn screen(&self) -> Vec<String> {
        let out = tmux(&self.sock, &["capture-pane", "-p"]).unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect()
    }

    /// Types `keys` (tmux key names: `q`, `Enter`).
    pub fn keys(&self, keys: &str) {
        tmux(&self.sock, &["send-keys", keys]).unwrap();
    }

    /// The program's exit code once it has ended, waiting up to `within`.
    pub fn exit(&self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let out = tmux(&self.sock, &["capture-pane", "-p", "-S", "-"]).unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if let Some(at) = text.find(MARKER) {
                return text[at + MARKER.len()..]
                    .split(']')
                    .next()
                    .and_then(|c| c.parse().ok());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = tmux(&self.sock, &["kill-server"]);
    }
}
