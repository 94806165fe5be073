//! Nonblocking TCP sockets: SO_REUSEPORT listeners (with the options their accepted sockets
//! inherit: TCP_NODELAY, SO_SNDBUF, TCP_DEFER_ACCEPT), accept4, and the client side
//! (source-address bind with IP_BIND_ADDRESS_NO_PORT and IP_FREEBIND, nonblocking connect,
//! SO_ERROR), dual-stack `[::]` listeners.

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, SockFlag, SockProtocol, SockType, SockaddrLike,
    SockaddrStorage,
};

fn family(addr: &SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn tcp_socket(addr: &SocketAddr) -> Result<OwnedFd, Errno> {
    socket::socket(
        family(addr),
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        SockProtocol::Tcp,
    )
}

fn to_std(ss: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = ss.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    ss.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

/// `[::]` serves both families: IPV6_V6ONLY off, whatever net.ipv6.bindv6only says (IPv4
/// clients then show as IPv4-mapped addresses, ::ffff:a.b.c.d). Other addresses are one family.
fn dual_stack(fd: &OwnedFd, addr: &SocketAddr) -> Result<(), Errno> {
    match addr {
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            socket::setsockopt(fd, sockopt::Ipv6V6Only, &false)
        }
        _ => Ok(()),
    }
}

/// A socket bound to `addr` with SO_REUSEADDR and SO_REUSEPORT, not listening. Binding port 0
/// picks a free port; holding this socket keeps that port reserved for listeners that join the
/// same SO_REUSEPORT group (same user), and, not listening, it never receives a connection.
pub fn reuseport_bound(addr: SocketAddr) -> Result<OwnedFd, Errno> {
    let fd = tcp_socket(&addr)?;
    dual_stack(&fd, &addr)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(fd)
}

/// Whether `addr` is free to serve on: bind and listen with SO_REUSEADDR only (not
/// SO_REUSEPORT, which would silently join another server's group on the same port). The
/// listen fails with EADDRINUSE when any socket listens there (the bind alone may pass: the
/// kernel's fast path for sockets bound before they listened). TIME_WAIT leftovers of an
/// earlier run do not count. The probe socket is closed at once.
pub fn port_is_free(addr: SocketAddr) -> Result<(), Errno> {
    let fd = tcp_socket(&addr)?;
    dual_stack(&fd, &addr)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    socket::listen(&fd, Backlog::new(1).map_err(|_| Errno::EINVAL)?)
}

/// What a server listener is set up with. The socket options are set on the listener once and
/// every accepted socket inherits them (Linux clones the listener into each child socket), which
/// saves a setsockopt per connection (tested below).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenOptions {
    /// listen(2) backlog.
    pub backlog: i32,
    /// SO_SNDBUF of every accepted socket (0: the kernel's autotuning).
    pub sndbuf_bytes: usize,
    /// TCP_DEFER_ACCEPT in seconds (0: off): see [`reuseport_listener`].
    pub defer_accept_secs: u32,
}

impl ListenOptions {
    /// Only a backlog: no send-buffer cap, no deferred accept.
    pub fn backlog(backlog: i32) -> Self {
        ListenOptions {
            backlog,
            sndbuf_bytes: 0,
            defer_accept_secs: 0,
        }
    }
}

/// A nonblocking listener on `addr` in the SO_REUSEPORT group of that address, with TCP_NODELAY
/// and the options of `opts`, all inherited by the sockets it accepts.
///
/// TCP_DEFER_ACCEPT: the kernel keeps a connection whose client has not sent anything yet as a
/// request in the SYN queue, and queues it for accept(2) (waking the listener) only when its first
/// data arrives, so a websocket client's request is already there when it is accepted. The
/// client's bytes and the connection then cost one wakeup of the worker instead of two (the
/// listener at the TCP handshake, the connection at the request), and a burst of clients is
/// accepted in one pass. A client that connects and stays silent is still accepted once the
/// deferral ends (the kernel retransmits its SYN-ACK and queues it at the client's answer), and
/// the handshake deadline then applies; while deferred it holds no fd and no slot, only a request
/// in the SYN queue, which the backlog bounds (SYN cookies beyond it).
pub fn reuseport_listener(addr: SocketAddr, opts: &ListenOptions) -> Result<OwnedFd, Errno> {
    let fd = reuseport_bound(addr)?;
    socket::setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    if opts.sndbuf_bytes > 0 {
        socket::setsockopt(&fd, sockopt::SndBuf, &opts.sndbuf_bytes)?;
    }
    if opts.defer_accept_secs > 0 {
        let secs = libc::c_int::try_from(opts.defer_accept_secs).map_err(|_| Errno::EINVAL)?;
        set_tcp_int(&fd, libc::TCP_DEFER_ACCEPT, secs)?;
    }
    listen(&fd, opts.backlog)?;
    Ok(fd)
}

/// listen(2) with any backlog the kernel takes: nix's `Backlog` refuses values above the libc
/// constant SOMAXCONN (4096), while the kernel clamps the backlog to the net.core.somaxconn of
/// the namespace, which may be far higher (the storm report recommends 32k-65k).
fn listen(fd: &OwnedFd, backlog: i32) -> Result<(), Errno> {
    if backlog < 0 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: `fd` is an open socket for the whole call (borrowed from the OwnedFd); listen(2)
    // takes two ints and no memory.
    Errno::result(unsafe { libc::listen(fd.as_raw_fd(), backlog) }).map(drop)
}

/// setsockopt(IPPROTO_TCP, `name`, int) for the options nix has no wrapper for.
fn set_tcp_int(fd: &OwnedFd, name: libc::c_int, value: libc::c_int) -> Result<(), Errno> {
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is an open socket for the whole call (borrowed from the OwnedFd); the option
    // value points at a live c_int and `len` is its size, so the kernel reads exactly that int.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            name,
            (&value as *const libc::c_int).cast(),
            len,
        )
    };
    Errno::result(r).map(drop)
}

/// The address a socket is bound to (the chosen port after binding port 0).
pub fn local_addr(fd: BorrowedFd<'_>) -> Result<SocketAddr, Errno> {
    let ss: SockaddrStorage = socket::getsockname(fd.as_raw_fd())?;
    to_std(&ss).ok_or(Errno::EAFNOSUPPORT)
}

/// The peer address of a connected socket.
pub fn peer_addr(fd: BorrowedFd<'_>) -> Result<SocketAddr, Errno> {
    let ss: SockaddrStorage = socket::getpeername(fd.as_raw_fd())?;
    to_std(&ss).ok_or(Errno::EAFNOSUPPORT)
}

/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC; the caller owns the returned fd. EAGAIN means the
/// queue is empty; EMFILE means the fd cap is hit.
pub fn accept(listener: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    loop {
        match socket::accept4(listener.as_raw_fd(), flags) {
            Err(Errno::EINTR) | Err(Errno::ECONNABORTED) => continue,
            // SAFETY: accept4 returned a new descriptor that nothing else owns.
            r => return r.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
        }
    }
}

/// TCP_NODELAY: small echo replies leave at once instead of waiting for Nagle.
pub fn set_nodelay(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    socket::setsockopt(&fd, sockopt::TcpNoDelay, &true)
}

/// The pending socket error (SO_ERROR), cleared by reading it: how a nonblocking connect ended.
pub fn take_error(fd: BorrowedFd<'_>) -> Result<Option<Errno>, Errno> {
    let e = socket::getsockopt(&fd, sockopt::SocketError)?;
    Ok((e != 0).then(|| Errno::from_raw(e)))
}

/// Binds a client socket to `ip` with port 0. IP_BIND_ADDRESS_NO_PORT first (both families),
/// so no ephemeral port is taken until connect() picks one per destination; IP_FREEBIND when
/// `freebind` (an IPv6 address of an AnyIP prefix, which IPv6 bind() refuses otherwise; the
/// option is SOL_IP, and IPv6 TCP sockets take it: net/ipv6/ipv6_sockglue.c, Linux 6.18).
fn bind_source(fd: &OwnedFd, ip: std::net::IpAddr, freebind: bool) -> Result<(), Errno> {
    socket::setsockopt(fd, sockopt::IpBindAddressNoPort, &true)?;
    if freebind {
        socket::setsockopt(fd, sockopt::IpFreebind, &true)?;
    }
    socket::bind(
        fd.as_raw_fd(),
        &SockaddrStorage::from(SocketAddr::new(ip, 0)),
    )
}

/// Binds a probe socket to `ip` as a client socket would be bound (with IP_FREEBIND when
/// `freebind`), and closes it: `Err(EADDRNOTAVAIL)` when `ip` is not an address of this host
/// (nor of the network namespace it runs in). No port is taken, even for a moment.
pub fn probe_source(ip: std::net::IpAddr, freebind: bool) -> Result<(), Errno> {
    let fd = tcp_socket(&SocketAddr::new(ip, 0))?;
    bind_source(&fd, ip, freebind)
}

/// Starts a nonblocking connect to `dst`, first binding to `src` (port 0, IP_FREEBIND when
/// `freebind`) with IP_BIND_ADDRESS_NO_PORT so the port is chosen at connect time per
/// destination: each source address then has the whole ephemeral range for every destination.
/// Returns the socket and whether the connect already completed (loopback often completes
/// at once); otherwise wait for writability and read [`take_error`].
pub fn connect_from(
    src: Option<std::net::IpAddr>,
    freebind: bool,
    dst: SocketAddr,
) -> Result<(OwnedFd, bool), Errno> {
    let fd = tcp_socket(&dst)?;
    if let Some(ip) = src {
        bind_source(&fd, ip, freebind)?;
    }
    let done = match socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(dst)) {
        Ok(()) => true,
        Err(Errno::EINPROGRESS) => false,
        Err(e) => return Err(e),
    };
    Ok((fd, done))
}

/// The text of /proc/net/ipv6_route (this network namespace's IPv6 routes, all tables), parsed
/// by [`crate::loadgen::sources::anyip_routes`].
pub fn ipv6_routes() -> std::io::Result<String> {
    std::fs::read_to_string("/proc/net/ipv6_route")
}

/// Length in bytes of a socket address (for diagnostics of odd families).
pub fn addr_len(addr: &SocketAddr) -> u32 {
    SockaddrStorage::from(*addr).len()
}

/// Reads net.ipv4.tcp_migrate_req: whether closing a SO_REUSEPORT listener hands its queued
/// connections to another listener of the group (1) or resets them (0).
pub fn tcp_migrate_req() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req")
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
}

/// SO_LINGER with a zero timeout: the next close() resets the connection and frees its unsent
/// data at once instead of leaving it in FIN_WAIT1 for a peer that will never read it.
pub fn set_abort_on_close(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    socket::setsockopt(&fd, sockopt::Linger, &l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::io;
    use std::os::fd::AsFd;

    #[test]
    fn reserved_port_is_shared_by_reuseport_listeners_and_accepts() {
        let reserve = reuseport_bound("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = local_addr(reserve.as_fd()).unwrap();
        assert_ne!(addr.port(), 0);
        let l1 = reuseport_listener(addr, &ListenOptions::backlog(16)).unwrap();
        let l2 = reuseport_listener(addr, &ListenOptions::backlog(16)).unwrap();
        assert_eq!(local_addr(l2.as_fd()).unwrap(), addr);
        assert_eq!(accept(l1.as_fd()).err(), Some(Errno::EAGAIN));

        let (c, _) = connect_from(Some("127.0.0.2".parse().unwrap()), false, addr).unwrap();
        // Wait until one of the two listeners has it.
        let mut got = None;
        for _ in 0..200 {
            for l in [&l1, &l2] {
                if let Ok(fd) = accept(l.as_fd()) {
                    got = Some(fd);
                }
            }
            if got.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let s = got.expect("a listener accepted the connection");
        assert_eq!(take_error(c.as_fd()).unwrap(), None);
        // The accepted socket inherited TCP_NODELAY from the listener; the client has none.
        assert!(socket::getsockopt(&s, sockopt::TcpNoDelay).unwrap());
        assert!(!socket::getsockopt(&c, sockopt::TcpNoDelay).unwrap());
        set_nodelay(c.as_fd()).unwrap();
        assert!(socket::getsockopt(&c, sockopt::TcpNoDelay).unwrap());
        let peer = peer_addr(s.as_fd()).unwrap();
        assert_eq!(peer.ip(), "127.0.0.2".parse::<std::net::IpAddr>().unwrap());
        assert_eq!(peer_addr(c.as_fd()).unwrap(), addr);
        assert_eq!(io::write(c.as_fd(), b"hi").unwrap(), 2);
        let mut buf = [0u8; 4];
        let mut n = 0;
        for _ in 0..200 {
            match io::read(s.as_fd(), &mut buf) {
                Ok(k) => {
                    n = k;
                    break;
                }
                Err(Errno::EAGAIN) => std::thread::sleep(std::time::Duration::from_millis(5)),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(&buf[..n], b"hi");
    }

    /// Polls `f` every 5 ms for up to `ms` milliseconds.
    fn within<T>(ms: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(ms) {
            if let Some(v) = f() {
                return Some(v);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        None
    }

    #[test]
    fn accepted_sockets_inherit_sndbuf_and_wait_for_their_first_bytes() {
        let opts = ListenOptions {
            backlog: 16,
            sndbuf_bytes: 64 * 1024,
            defer_accept_secs: 1,
        };
        let l = reuseport_listener("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let addr = local_addr(l.as_fd()).unwrap();
        let (c, _) = connect_from(None, false, addr).unwrap();
        assert_eq!(
            within(2000, || take_error(c.as_fd()).ok()),
            Some(None),
            "connect"
        );
        // TCP is up on the client's side, but nothing was sent: not accepted yet.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(accept(l.as_fd()).err(), Some(Errno::EAGAIN));
        assert_eq!(io::write(c.as_fd(), b"GET").unwrap(), 3);
        let s = within(2000, || accept(l.as_fd()).ok()).expect("accepted after data");
        // The request is there at accept: the first read finds it.
        let mut buf = [0u8; 8];
        assert_eq!(io::read(s.as_fd(), &mut buf), Ok(3));
        // SO_SNDBUF came from the listener (the kernel doubles the value set).
        let want = socket::getsockopt(&l, sockopt::SndBuf).unwrap();
        assert_eq!(want, 128 * 1024);
        assert_eq!(socket::getsockopt(&s, sockopt::SndBuf).unwrap(), want);
        assert!(socket::getsockopt(&s, sockopt::TcpNoDelay).unwrap());
        // A client that stays silent is still accepted when the deferral ends (the handshake
        // deadline then applies to it).
        let (quiet, _) = connect_from(None, false, addr).unwrap();
        let q = within(5000, || accept(l.as_fd()).ok()).expect("silent client accepted");
        assert_eq!(io::read(q.as_fd(), &mut buf), Err(Errno::EAGAIN));
        drop((s, c, q, quiet));
    }

    #[test]
    fn a_listening_port_is_not_free() {
        let l =
            reuseport_listener("127.0.0.1:0".parse().unwrap(), &ListenOptions::backlog(4)).unwrap();
        let addr = local_addr(l.as_fd()).unwrap();
        assert_eq!(port_is_free(addr), Err(Errno::EADDRINUSE));
        // Also with a bound, not listening, socket in front (how `tune serve` holds its port).
        let reserve = reuseport_bound(addr);
        assert_eq!(port_is_free(addr), Err(Errno::EADDRINUSE));
        drop(reserve);
        drop(l);
        assert_eq!(port_is_free(addr), Ok(()));
    }

    #[test]
    fn refused_connect_reports_through_so_error() {
        // A bound, non-listening socket: connecting to it is refused.
        let reserve = reuseport_bound("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = local_addr(reserve.as_fd()).unwrap();
        let (c, done) = match connect_from(None, false, addr) {
            Err(Errno::ECONNREFUSED) => return,
            r => r.unwrap(),
        };
        assert!(!done);
        let mut err = None;
        for _ in 0..200 {
            err = take_error(c.as_fd()).unwrap();
            if err.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(err, Some(Errno::ECONNREFUSED));
    }
}
