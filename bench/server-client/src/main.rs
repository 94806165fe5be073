//! Benchmark client: opens N websocket connections to ADDR over one epoll loop (nonblocking
//! connects from rotating 127.0.0.x source addresses, at most C handshakes in flight), reports
//! the open rate, optionally runs an echo round (each connection sends a small text message and
//! waits for its echo, repeatedly, for D seconds), then holds the connections for H seconds.
//! With `--rate R --latency-secs L` it then offers R messages a second in total (round robin
//! over the connections, a connection with its message still in flight is skipped and
//! counted) for L seconds and reports p50/p99 round-trip latency.
//! Prints one JSON line per phase. Usage:
//!   server-client ADDR CONNS [--concurrency C] [--echo-secs D] [--size B] [--hold-secs H]
//!                 [--rate R --latency-secs L]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use embedded_server::protocol::frame;
use embedded_server::protocol::handshake::{client_request, parse_response};
use embedded_server::protocol::mask::apply_mask;
use embedded_server::sys::epoll::{Epoll, EpollEvent, EpollFlags, READ, WRITE};
use embedded_server::sys::{io, net, rlimit, Errno};

/// Largest message: an echo (header + payload) must fit the 64 KiB read buffer.
const MAX_SIZE: usize = 60_000;

const KEY: &[u8; 24] = b"dGhlIHNhbXBsZSBub25jZQ==";

#[derive(Clone, Copy, PartialEq, Eq)]
enum St {
    Connecting,
    Handshaking,
    Open,
    Failed,
}

struct Conn {
    /// The socket's fd number (the key events carry); `sock` owns it.
    fd: RawFd,
    sock: OwnedFd,
    st: St,
    /// Bytes of the handshake response (or of the expected echo) received so far.
    got: usize,
    head: Vec<u8>,
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect(name))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = args[1].parse().expect("ADDR");
    let n: usize = args[2].parse().expect("CONNS");
    let concurrency = arg(&args, "--concurrency", 256) as usize;
    let echo_secs = arg(&args, "--echo-secs", 0);
    let size = arg(&args, "--size", 32) as usize;
    let hold_secs = arg(&args, "--hold-secs", 0);
    let rate = arg(&args, "--rate", 0);
    let latency_secs = arg(&args, "--latency-secs", 0);
    assert!(
        size <= MAX_SIZE,
        "--size must be at most {MAX_SIZE} (one read per echo)"
    );
    rlimit::raise_nofile_to_hard().expect("raise RLIMIT_NOFILE");
    let ep = Epoll::new().unwrap();
    let req = client_request(&addr.to_string(), "/", KEY);
    let mut conns: Vec<Conn> = Vec::with_capacity(n);
    let mut events = vec![EpollEvent::empty(); 4096];
    let mut buf = vec![0u8; 65536];
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(120);
    let (mut open, mut failed, mut inflight) = (0usize, 0usize, 0usize);
    // Failures before TCP completed (refused) and after (reset during the handshake: lost).
    let (mut refused, mut lost) = (0usize, 0usize);
    let mut next_src = 0u32;
    while open + failed < n && Instant::now() < deadline {
        while inflight < concurrency && conns.len() < n {
            let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (next_src % 200) as u8));
            next_src += 1;
            // An IPv4 loopback source is a local address: no IP_FREEBIND needed.
            match net::connect_from(Some(src), false, addr) {
                Ok((sock, _)) => {
                    let fd = sock.as_raw_fd();
                    let _ = net::set_nodelay(sock.as_fd());
                    ep.add(sock.as_fd(), WRITE).unwrap();
                    conns.push(Conn {
                        fd,
                        sock,
                        st: St::Connecting,
                        got: 0,
                        head: Vec::new(),
                    });
                    inflight += 1;
                }
                Err(e) => panic!("connect: {e}"),
            }
        }
        let k = ep.wait(&mut events, 100).unwrap();
        for ev in &events[..k] {
            let fd = ev.data() as RawFd;
            // Connections are pushed in fd order of creation; find by linear index map.
            let idx = fd_index(&conns, fd);
            let c = &mut conns[idx];
            match c.st {
                St::Connecting => {
                    if net::take_error(c.sock.as_fd()).unwrap().is_some() {
                        c.st = St::Failed;
                        failed += 1;
                        refused += 1;
                        inflight -= 1;
                        continue;
                    }
                    io::write(c.sock.as_fd(), &req).unwrap();
                    c.st = St::Handshaking;
                    ep.modify(c.sock.as_fd(), READ).unwrap();
                }
                St::Handshaking => match io::read(c.sock.as_fd(), &mut buf) {
                    Ok(m) if m > 0 => {
                        c.head.extend_from_slice(&buf[..m]);
                        match parse_response(&c.head, KEY) {
                            Ok(Some(_)) => {
                                c.st = St::Open;
                                c.head = Vec::new();
                                open += 1;
                                inflight -= 1;
                            }
                            Ok(None) => {}
                            Err(_) => {
                                c.st = St::Failed;
                                failed += 1;
                                inflight -= 1;
                            }
                        }
                    }
                    Err(Errno::EAGAIN) => {}
                    _ => {
                        c.st = St::Failed;
                        failed += 1;
                        lost += 1;
                        inflight -= 1;
                    }
                },
                _ => {}
            }
        }
    }
    let open_secs = t0.elapsed().as_secs_f64();
    println!(
        "{{\"phase\":\"open\",\"opened\":{open},\"failed\":{failed},\"refused\":{refused},\"lost_after_accept\":{lost},\"secs\":{open_secs:.3},\"per_sec\":{:.0}}}",
        open as f64 / open_secs
    );
    if echo_secs > 0 {
        echo(&ep, &mut conns, &mut events, &mut buf, size, echo_secs);
    }
    if rate > 0 && latency_secs > 0 {
        latency(
            &ep,
            &mut conns,
            &mut events,
            &mut buf,
            size,
            rate,
            latency_secs,
        );
    }
    if hold_secs > 0 {
        std::thread::sleep(Duration::from_secs(hold_secs));
    }
}

/// Connections are created in increasing fd order and never closed during the run, so a
/// binary search over their fds finds the index.
fn fd_index(conns: &[Conn], fd: RawFd) -> usize {
    conns.binary_search_by_key(&fd, |c| c.fd).expect("known fd")
}

fn echo(
    ep: &Epoll,
    conns: &mut [Conn],
    events: &mut [EpollEvent],
    buf: &mut [u8],
    size: usize,
    secs: u64,
) {
    let (msg, reply_len) = message(size);
    // Drain anything pending, then one message in flight per open connection.
    let mut sent = 0u64;
    for c in conns.iter_mut().filter(|c| c.st == St::Open) {
        c.got = 0;
        match io::write(c.sock.as_fd(), &msg) {
            Ok(_) => sent += 1,
            Err(Errno::EAGAIN) => {}
            Err(e) => panic!("write: {e}"),
        }
    }
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(secs);
    let mut received = 0u64;
    while Instant::now() < end {
        let k = ep.wait(events, 50).unwrap();
        for ev in &events[..k] {
            if !ev.events().intersects(EpollFlags::EPOLLIN) {
                continue;
            }
            let fd = ev.data() as RawFd;
            let idx = fd_index(conns, fd);
            let c = &mut conns[idx];
            if c.st != St::Open {
                continue;
            }
            match io::read(c.sock.as_fd(), buf) {
                Ok(0) => c.st = St::Failed,
                Ok(m) => {
                    c.got += m;
                    while c.got >= reply_len {
                        c.got -= reply_len;
                        received += 1;
                        if Instant::now() < end && io::write(c.sock.as_fd(), &msg).is_ok() {
                            sent += 1;
                        }
                    }
                }
                Err(Errno::EAGAIN) => {}
                Err(_) => c.st = St::Failed,
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let open = conns.iter().filter(|c| c.st == St::Open).count();
    println!(
        "{{\"phase\":\"echo\",\"connections\":{open},\"size\":{size},\"sent\":{sent},\"received\":{received},\"secs\":{secs:.3},\"msgs_per_sec\":{:.0}}}",
        received as f64 / secs
    );
}

/// One masked text message of `size` bytes, and the length of its unmasked echo.
fn message(size: usize) -> (Vec<u8>, usize) {
    let mut msg = Vec::new();
    let mut h = [0u8; frame::MAX_HEADER_LEN];
    let mask = [0x5a, 0xa5, 0x3c, 0xc3];
    let hl = frame::encode(&mut h, true, frame::TEXT, Some(mask), size as u64);
    msg.extend_from_slice(&h[..hl]);
    let mut payload = vec![b'm'; size];
    apply_mask(&mut payload, mask, 0);
    msg.extend_from_slice(&payload);
    let reply = frame::encode(&mut h, true, frame::TEXT, None, size as u64) + size;
    (msg, reply)
}

/// Offered-load latency: every millisecond, send `rate / 1000` messages (carrying the
/// remainder) to the next connections in round-robin order; a connection whose previous
/// message has not come back is skipped and counted as `busy`. Round trips are timed from the
/// write to the read that completes the echo.
fn latency(
    ep: &Epoll,
    conns: &mut [Conn],
    events: &mut [EpollEvent],
    buf: &mut [u8],
    size: usize,
    rate: u64,
    secs: u64,
) {
    let (msg, reply_len) = message(size);
    let open: Vec<usize> = (0..conns.len())
        .filter(|&i| conns[i].st == St::Open)
        .collect();
    let mut sent_at: Vec<Option<Instant>> = vec![None; conns.len()];
    for c in conns.iter_mut() {
        c.got = 0;
    }
    let mut rtts_us: Vec<u32> = Vec::with_capacity((rate * secs) as usize);
    let (mut sent, mut busy, mut next) = (0u64, 0u64, 0usize);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(secs);
    let tick = Duration::from_millis(1);
    let mut due = t0;
    let mut credit = 0u64; // thousandths of a message owed
    while Instant::now() < end && !open.is_empty() {
        let now = Instant::now();
        while due <= now {
            credit += rate;
            due += tick;
            while credit >= 1000 {
                credit -= 1000;
                let i = open[next % open.len()];
                next += 1;
                if sent_at[i].is_some() || conns[i].st != St::Open {
                    busy += 1;
                    continue;
                }
                if io::write(conns[i].sock.as_fd(), &msg).is_ok() {
                    sent_at[i] = Some(Instant::now());
                    sent += 1;
                }
            }
        }
        let wait_ms = due.saturating_duration_since(Instant::now()).as_millis() as i32;
        let k = ep.wait(events, wait_ms.max(0)).unwrap();
        for ev in &events[..k] {
            if !ev.events().intersects(EpollFlags::EPOLLIN) {
                continue;
            }
            let fd = ev.data() as RawFd;
            let idx = fd_index(conns, fd);
            let c = &mut conns[idx];
            if c.st != St::Open {
                continue;
            }
            match io::read(c.sock.as_fd(), buf) {
                Ok(0) => c.st = St::Failed,
                Ok(m) => {
                    c.got += m;
                    if c.got >= reply_len {
                        c.got -= reply_len;
                        if let Some(t) = sent_at[idx].take() {
                            rtts_us.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        }
                    }
                }
                Err(Errno::EAGAIN) => {}
                Err(_) => c.st = St::Failed,
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let lost = sent_at.iter().filter(|s| s.is_some()).count();
    rtts_us.sort_unstable();
    let pct = |p: f64| -> u32 {
        if rtts_us.is_empty() {
            return 0;
        }
        rtts_us[((rtts_us.len() as f64 * p) as usize).min(rtts_us.len() - 1)]
    };
    println!(
        "{{\"phase\":\"latency\",\"connections\":{},\"size\":{size},\"offered_per_sec\":{rate},\"sent\":{sent},\"received\":{},\"busy_skipped\":{busy},\"unanswered_at_end\":{lost},\"secs\":{secs:.3},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}",
        open.len(),
        rtts_us.len(),
        pct(0.50),
        pct(0.99),
        pct(0.999),
        rtts_us.last().copied().unwrap_or(0)
    );
}
