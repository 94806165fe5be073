//! The one way the tests run a program: `tune()` (or `command()` for a wrapper such as `unshare`
//! or `prlimit` that runs tune) starts it in its own process group with a time limit, and kills
//! that whole group — tune and every worker it forked — when the limit passes or the test drops it.
//! A test that measures the whole host (slab, MemAvailable) takes [`alone`]: no other test's
//! program runs while it does, as when each area was a binary of its own.
#![allow(dead_code)]

use std::cell::Cell;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::ops::{Deref, DerefMut};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use assert_cmd::assert::{Assert, OutputAssertExt};

/// How long one run may take before its process group is killed. The slowest test run (a debug
/// build verifying a few thousand connections on a loaded 2-core machine) takes under a minute;
/// five minutes only catches a hang, which without it would hang the whole suite.
pub const TIMEOUT: Duration = Duration::from_secs(300);

/// The path of the tune binary under test.
pub fn tune_exe() -> &'static str {
    env!("CARGO_BIN_EXE_tune")
}

/// The tune binary, with the environment variables that would make a test depend on the
/// caller's shell removed (`TUNE_ROOT`, `TUNE_STATE_DIR`, `NO_COLOR`).
pub fn tune() -> Tune {
    let mut c = command(tune_exe());
    c.env_remove("TUNE_ROOT")
        .env_remove("TUNE_STATE_DIR")
        .env_remove("NO_COLOR");
    c
}

/// Any program (`unshare`, `prlimit`, `script` ... that runs tune) under the same time limit and
/// process-group kill as [`tune`].
pub fn command(program: impl AsRef<OsStr>) -> Tune {
    let mut cmd = Command::new(program);
    cmd.process_group(0);
    // Screens wrap at 80 columns when stdout is not a terminal; tests that look for words in
    // the output get a wide COLUMNS so a wrap cannot split what they look for. The width rules
    // themselves are tested in real terminals (tmux), where the terminal's width wins.
    cmd.env("COLUMNS", "10000");
    Tune {
        cmd,
        stdin: None,
        timeout: TIMEOUT,
    }
}

/// A command under construction: std's builder methods, assert_cmd's `write_stdin`/`assert`,
/// and a time limit on every way of running it.
pub struct Tune {
    cmd: Command,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

impl Tune {
    pub fn arg(&mut self, a: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.arg(a);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(&mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.env(k, v);
        self
    }

    pub fn env_remove(&mut self, k: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.env_remove(k);
        self
    }

    pub fn current_dir(&mut self, d: impl AsRef<std::path::Path>) -> &mut Self {
        self.cmd.current_dir(d);
        self
    }

    pub fn stdin(&mut self, s: Stdio) -> &mut Self {
        self.cmd.stdin(s);
        self
    }

    pub fn stdout(&mut self, s: Stdio) -> &mut Self {
        self.cmd.stdout(s);
        self
    }

    pub fn stderr(&mut self, s: Stdio) -> &mut Self {
        self.cmd.stderr(s);
        self
    }

    /// Bytes written to the program's stdin (then closed), as assert_cmd's `write_stdin`.
    pub fn write_stdin(&mut self, b: impl Into<Vec<u8>>) -> &mut Self {
        self.stdin = Some(b.into());
        self
    }

    /// A different time limit for a run known to be long.
    pub fn timeout(&mut self, d: Duration) -> &mut Self {
        self.timeout = d;
        self
    }

    /// Runs to completion with stdout and stderr captured, as std's `output`. Panics, after
    /// killing the process group, if the time limit passes.
    pub fn output(&mut self) -> std::io::Result<Output> {
        let stdin = self.stdin.take();
        self.cmd
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.spawn()?;
        if let Some(bytes) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        child.wait_with_output()
    }

    /// Runs to completion with the configured stdio, as std's `status`.
    pub fn status(&mut self) -> std::io::Result<ExitStatus> {
        let mut child = self.spawn()?;
        child.wait()
    }

    /// Runs to completion and hands the output to assert_cmd's assertions.
    pub fn assert(&mut self) -> Assert {
        self.output().expect("spawn the command").assert()
    }

    /// Starts it; the returned guard kills the process group at the time limit or when dropped.
    pub fn spawn(&mut self) -> std::io::Result<Running> {
        let shared = Shared::take();
        let child = self.cmd.spawn()?;
        Ok(Running::watch(child, self.timeout, self.describe(), shared))
    }

    fn describe(&self) -> String {
        let mut s = self.cmd.get_program().to_string_lossy().into_owned();
        for a in self.cmd.get_args() {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }
}

/// A started program, leader of its own process group. Derefs to the [`Child`]; a watchdog kills
/// the group with SIGKILL at the time limit, and dropping the guard while it runs kills the group.
pub struct Running {
    child: Child,
    deadline: Instant,
    what: String,
    done: Arc<AtomicBool>,
    fired: Arc<AtomicBool>,
    _shared: Option<Shared>,
}

impl Running {
    fn watch(child: Child, timeout: Duration, what: String, shared: Option<Shared>) -> Running {
        let done = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(AtomicBool::new(false));
        let pid = child.id();
        let deadline = Instant::now() + timeout;
        let (d, f) = (done.clone(), fired.clone());
        std::thread::spawn(move || {
            while Instant::now() < deadline {
                if d.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !d.load(Ordering::SeqCst) {
                f.store(true, Ordering::SeqCst);
                kill_group(pid);
            }
        });
        Running {
            child,
            deadline,
            what,
            done,
            fired,
            _shared: shared,
        }
    }

    /// Whether the watchdog killed the group because the time limit passed.
    pub fn timed_out(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Waits for the exit; panics if the watchdog had to kill it.
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let st = self.child.wait()?;
        self.check_time(&[], &[]);
        Ok(st)
    }

    /// Collects stdout and stderr (those that are piped) and waits for the exit, as std's
    /// `wait_with_output`; panics with what was read if the watchdog had to kill the group.
    pub fn wait_with_output(mut self) -> std::io::Result<Output> {
        let out = read_in_background(self.child.stdout.take());
        let err = read_in_background(self.child.stderr.take());
        drop(self.child.stdin.take());
        let status = self.child.wait()?;
        // A worker of the group may still hold the pipes: read until the time limit at most.
        let left = self.deadline.saturating_duration_since(Instant::now());
        let stdout = out.recv_timeout(left).unwrap_or_default();
        let left = self.deadline.saturating_duration_since(Instant::now());
        let stderr = err.recv_timeout(left).unwrap_or_default();
        self.check_time(&stdout, &stderr);
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    fn check_time(&self, stdout: &[u8], stderr: &[u8]) {
        if self.timed_out() {
            panic!(
                "`{}` ran over its time limit; its process group was killed.\nstdout:\n{}\nstderr:\n{}",
                self.what,
                String::from_utf8_lossy(stdout),
                String::from_utf8_lossy(stderr)
            );
        }
    }
}

fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    match pipe {
        Some(mut p) => {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = p.read_to_end(&mut buf);
                let _ = tx.send(buf);
            });
        }
        None => {
            let _ = tx.send(Vec::new());
        }
    }
    rx
}

impl Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Running {
    /// Kills the group if its leader still runs (a test that panicked or gave up on it). A group
    /// whose leader exited is left alone, so that the tests' check for orphaned workers sees
    /// any worker tune failed to reap.
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if matches!(self.child.try_wait(), Ok(None)) {
            kill_group(self.child.id());
            let _ = self.child.wait();
        }
    }
}

/// SIGKILL to every process of the group `pgid` (ESRCH when none is left is fine).
pub fn kill_group(pgid: u32) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Who runs programs now: any number of tests sharing the host, or one test alone.
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

struct GateState {
    sharing: usize,
    alone: bool,
}

static GATE: Gate = Gate {
    state: Mutex::new(GateState {
        sharing: 0,
        alone: false,
    }),
    changed: Condvar::new(),
};

thread_local! {
    /// Set on the thread of a test that holds [`Alone`]: its own programs do not wait for it.
    static ALONE_HERE: Cell<bool> = const { Cell::new(false) };
}

fn gate_state() -> std::sync::MutexGuard<'static, GateState> {
    GATE.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running program's share of the host (released when the program's guard is dropped).
struct Shared;

impl Shared {
    fn take() -> Option<Shared> {
        if ALONE_HERE.get() {
            return None;
        }
        let mut s = gate_state();
        // No queueing behind a waiting `alone`: a test already holding a program may start
        // another, and must not wait for a test that waits for it.
        while s.alone {
            s = GATE.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.sharing += 1;
        Some(Shared)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        gate_state().sharing -= 1;
        GATE.changed.notify_all();
    }
}

/// Held by a test that measures the whole host: it waits until no other test's program runs,
/// and other tests' programs wait until it is dropped.
pub struct Alone(());

pub fn alone() -> Alone {
    let mut s = gate_state();
    while s.alone || s.sharing > 0 {
        s = GATE.changed.wait(s).unwrap_or_else(|e| e.into_inner());
    }
    s.alone = true;
    ALONE_HERE.set(true);
    Alone(())
}

impl Drop for Alone {
    fn drop(&mut self) {
        ALONE_HERE.set(false);
        gate_state().alone = false;
        GATE.changed.notify_all();
    }
}

/// True under `TUNE_TEST_STRICT=1` (scripts/test-all sets it): every skip is then a failure.
pub fn strict() -> bool {
    std::env::var_os("TUNE_TEST_STRICT").is_some_and(|v| v == "1")
}

/// A test that cannot run here: says so on the terminal (written to stderr directly, not through
/// `eprintln!`, which the harness hides for a passing test) and returns, so the caller returns
/// too. Under `TUNE_TEST_STRICT=1` it fails the test instead: CI has no silent skips.
pub fn skip(test: &str, why: &str) {
    assert!(
        !strict(),
        "{test}: would be skipped ({why}), and TUNE_TEST_STRICT=1 makes a skip a failure: \
         prepare the machine as scripts/test-all does"
    );
    let _ = writeln!(std::io::stderr(), "\n{test}: SKIPPED: {why}\n");
}

/// Reads a running `tune load`'s stderr up to the progress line that says how many are open
/// ("N open in ..."), and returns what it read and the reader, for the rest.
pub fn stderr_until_open(
    child: &mut Child,
) -> (String, std::io::BufReader<std::process::ChildStderr>) {
    stderr_until(child, "open in")
}

/// Reads a running child's stderr up to and including the first line that contains `marker`
/// (or to its end), and returns what it read and the reader, for the rest.
pub fn stderr_until(
    child: &mut Child,
    marker: &str,
) -> (String, std::io::BufReader<std::process::ChildStderr>) {
    use std::io::BufRead;
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr is piped"));
    let mut seen = String::new();
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains(marker) {
            break;
        }
        line.clear();
    }
    (seen, err)
}

/// A loopback port that is bound and not listening (connects to it are refused), with the
/// socket that holds it: keep the socket for as long as the port must stay taken.
pub fn refusing_port() -> (std::os::fd::OwnedFd, u16) {
    let sock = embedded_server::sys::net::reuseport_bound("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = embedded_server::sys::net::local_addr(std::os::fd::AsFd::as_fd(&sock))
        .unwrap()
        .port();
    (sock, port)
}
