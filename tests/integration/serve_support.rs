//! Test helpers for the `tune serve` tests: start the real binary on port 0, read its address,
//! fetch /metrics, speak raw websocket bytes, stop it with SIGTERM.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitStatus, Stdio};

use crate::support::{kill_group, tune, Running, Tune};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Server {
    child: Option<Running>,
    pub addr: SocketAddr,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn collect(
    r: impl Read + Send + 'static,
    buf: Arc<Mutex<String>>,
    first: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        let mut first = first;
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = first.as_ref() {
                if line.starts_with("listening on ") {
                    let _ = tx.send(line.clone());
                    first = None;
                }
            }
            let mut b = buf.lock().unwrap();
            b.push_str(&line);
            b.push('\n');
        }
    });
}

impl Server {
    /// `tune serve --listen 127.0.0.1:0 ARGS`, waiting for its `listening on` line.
    pub fn start(args: &[&str]) -> Server {
        Self::start_with(tune(), args)
    }

    /// Like [`Server::start`] with a prepared command (e.g. `prlimit ... tune`).
    pub fn start_with(mut cmd: Tune, args: &[&str]) -> Server {
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn tune serve");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        collect(child.stdout.take().unwrap(), stdout.clone(), Some(tx));
        collect(child.stderr.take().unwrap(), stderr.clone(), None);
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                kill_group(child.id());
                let _ = child.wait();
                panic!(
                    "tune serve printed no `listening on` line; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        let addr = line["listening on ".len()..]
            .trim()
            .parse()
            .expect("address");
        Server {
            child: Some(child),
            addr,
            stdout,
            stderr,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// One plain HTTP GET; returns (status, body). Retries a reset: a connection the kernel
    /// queued on a worker that was just killed is reset (the dead-worker test does that).
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut tries = 0;
        let out = loop {
            tries += 1;
            let mut s = TcpStream::connect(self.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut out = String::new();
            match s.read_to_string(&mut out) {
                Ok(_) => break out,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && tries < 5 => continue,
                Err(e) => panic!("GET {path}: {e}"),
            }
        };
        let status = out[9..12].parse().unwrap();
        let body = out
            .split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or("")
            .to_string();
        (status, body)
    }

    pub fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        body
    }

    /// The value of one sample, e.g. `tune_handshakes_failed_total{reason="version"}`.
    pub fn metric(&self, sample: &str) -> u64 {
        metric_in(&self.metrics(), sample)
    }

    /// Polls until `sample` falls to `want` or below.
    pub fn wait_metric_down(&self, sample: &str, want: u64) -> u64 {
        let t = Instant::now();
        loop {
            let v = self.metric(sample);
            if v <= want || t.elapsed() > Duration::from_secs(10) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls until `sample` reaches `want` (counters are updated as events happen, but the
    /// closing side of a test may race the update by a few microseconds).
    pub fn wait_metric(&self, sample: &str, want: u64) -> u64 {
        let t = Instant::now();
        loop {
            let v = self.metric(sample);
            if v >= want || t.elapsed() > Duration::from_secs(10) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then wait (bounded) for the exit.
    pub fn stop(mut self) -> (ExitStatus, String, String, Duration) {
        let mut child = self.child.take().unwrap();
        let t = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if t.elapsed() > Duration::from_secs(30) {
                kill_group(child.id());
                panic!("tune serve did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = t.elapsed();
        // Let the reader threads drain the pipes.
        std::thread::sleep(Duration::from_millis(100));
        (status, self.stdout(), self.stderr(), took)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            kill_group(c.id());
            let _ = c.wait();
        }
    }
}

pub fn metric_in(text: &str, sample: &str) -> u64 {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(sample) {
            if let Some(v) = rest.strip_prefix(' ') {
                return v.trim().parse().unwrap();
            }
        }
    }
    panic!("no sample {sample} in /metrics:\n{text}");
}

/// The interpreter with the `websockets` package. Unset means the test environment was not
/// prepared: fail, never skip.
pub fn python() -> String {
    std::env::var("TUNE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "TUNE_TEST_PYTHON is not set: run scripts/test-all, which creates .venv with the \
             Python `websockets` package and exports TUNE_TEST_PYTHON"
        )
    })
}

/// Runs tests/interop/ws_client.py SCENARIO against the server and returns its stdout.
pub fn interop(server: &Server, args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/ws_client.py");
    let out = Command::new(python())
        .arg(script)
        .arg(server.url())
        .args(args)
        .output()
        .expect("run the Python interop client");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "interop {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}\nserver stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        server.stderr()
    );
    stdout
}

/// A raw client: TCP plus hand-made websocket bytes, for what a well-behaved library never sends.
pub struct Raw {
    pub s: TcpStream,
}

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        Raw { s }
    }

    pub fn send(&mut self, b: &[u8]) {
        self.s.write_all(b).unwrap();
    }

    /// Sends raw request bytes and returns the whole response (the server closes after it).
    pub fn request(addr: SocketAddr, req: &[u8]) -> String {
        let mut r = Raw::connect(addr);
        r.send(req);
        let mut out = Vec::new();
        let _ = r.s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).to_string()
    }

    /// Connects and completes a websocket handshake.
    pub fn websocket(addr: SocketAddr) -> Raw {
        let mut r = Raw::connect(addr);
        let req = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        r.send(req.as_bytes());
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(r.s.read(&mut b).unwrap(), 1, "EOF during handshake");
            head.push(b[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        r
    }

    /// Reads one server frame: (first byte, payload).
    pub fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut h = [0u8; 2];
        self.s.read_exact(&mut h).ok()?;
        assert_eq!(h[1] & 0x80, 0, "server frames are never masked");
        let len = match h[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                self.s.read_exact(&mut l).ok()?;
                u16::from_be_bytes(l) as usize
            }
            127 => {
                let mut l = [0u8; 8];
                self.s.read_exact(&mut l).ok()?;
                u64::from_be_bytes(l) as usize
            }
            n => n as usize,
        };
        let mut p = vec![0u8; len];
        self.s.read_exact(&mut p).ok()?;
        Some((h[0], p))
    }

    /// Reads frames until a close frame and returns its code (None: closed without one).
    pub fn close_code(&mut self) -> Option<u16> {
        loop {
            let (b0, p) = self.read_frame()?;
            if b0 & 0x0f == 0x8 {
                return (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
            }
        }
    }

    /// Whether the server closed the TCP connection (EOF) within the read timeout.
    pub fn sees_eof(&mut self) -> bool {
        let mut b = [0u8; 64];
        loop {
            match self.s.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// A masked client frame.
pub fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let mut f = vec![b0];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}
