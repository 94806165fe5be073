//! Nonblocking TCP sockets: SO_REUSEPORT listeners, accept4, TCP_NODELAY, and the client side
//! (source-address bind with IP_BIND_ADDRESS_NO_PORT and IP_FREEBIND, nonblocking connect,
//! SO_ERROR), dual-stack `[::]` listeners.

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, SockFlag, SockProtocol, SockType, SockaddrLike,
    SockaddrStorage,
};

fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: used only for the duration of one setsockopt/getsockopt call by a caller that keeps
    // `fd` open across it; the borrow is not stored.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

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

/// A nonblocking listener on `addr` in the SO_REUSEPORT group of that address, with
/// TCP_NODELAY set: Linux copies it to every accepted socket (the child is a clone of the
/// listener), which saves a setsockopt per connection (tested below).
pub fn reuseport_listener(addr: SocketAddr, backlog: i32) -> Result<OwnedFd, Errno> {
    let fd = reuseport_bound(addr)?;
    socket::setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    socket::listen(&fd, Backlog::new(backlog).map_err(|_| Errno::EINVAL)?)?;
    Ok(fd)
}

/// The address a socket is bound to (the chosen port after binding port 0).
pub fn local_addr(fd: RawFd) -> Result<SocketAddr, Errno> {
    let ss: SockaddrStorage = socket::getsockname(fd)?;
    to_std(&ss).ok_or(Errno::EAFNOSUPPORT)
}

/// The peer address of a connected socket.
pub fn peer_addr(fd: RawFd) -> Result<SocketAddr, Errno> {
    let ss: SockaddrStorage = socket::getpeername(fd)?;
    to_std(&ss).ok_or(Errno::EAFNOSUPPORT)
}

/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC. The caller owns the returned fd (closes it with
/// [`crate::sys::io::close`]). EAGAIN means the queue is empty; EMFILE means the fd cap is hit.
pub fn accept(listener: RawFd) -> Result<RawFd, Errno> {
    loop {
        match socket::accept4(listener, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC) {
            Err(Errno::EINTR) | Err(Errno::ECONNABORTED) => continue,
            r => return r,
        }
    }
}

/// TCP_NODELAY: small echo replies leave at once instead of waiting for Nagle.
pub fn set_nodelay(fd: RawFd) -> Result<(), Errno> {
    socket::setsockopt(&borrow(fd), sockopt::TcpNoDelay, &true)
}

/// The pending socket error (SO_ERROR), cleared by reading it: how a nonblocking connect ended.
pub fn take_error(fd: RawFd) -> Result<Option<Errno>, Errno> {
    let e = socket::getsockopt(&borrow(fd), sockopt::SocketError)?;
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
/// Returns the owned raw fd and whether the connect already completed (loopback often completes
/// at once); otherwise wait for writability and read [`take_error`].
pub fn connect_from(
    src: Option<std::net::IpAddr>,
    freebind: bool,
    dst: SocketAddr,
) -> Result<(RawFd, bool), Errno> {
    let fd = tcp_socket(&dst)?;
    if let Some(ip) = src {
        bind_source(&fd, ip, freebind)?;
    }
    let done = match socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(dst)) {
        Ok(()) => true,
        Err(Errno::EINPROGRESS) => false,
        Err(e) => return Err(e),
    };
    Ok((std::os::fd::IntoRawFd::into_raw_fd(fd), done))
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

/// Caps the socket's send buffer (SO_SNDBUF; the kernel doubles the value for bookkeeping and
/// stops autotuning it).
pub fn set_sndbuf(fd: RawFd, bytes: usize) -> Result<(), Errno> {
    socket::setsockopt(&borrow(fd), sockopt::SndBuf, &bytes)
}

/// SO_LINGER with a zero timeout: the next close() resets the connection and frees its unsent
/// data at once instead of leaving it in FIN_WAIT1 for a peer that will never read it.
pub fn set_abort_on_close(fd: RawFd) -> Result<(), Errno> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    socket::setsockopt(&borrow(fd), sockopt::Linger, &l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::io;

    #[test]
    fn reserved_port_is_shared_by_reuseport_listeners_and_accepts() {
        let reserve = reuseport_bound("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = local_addr(reserve.as_raw_fd()).unwrap();
        assert_ne!(addr.port(), 0);
        let l1 = reuseport_listener(addr, 16).unwrap();
        let l2 = reuseport_listener(addr, 16).unwrap();
        assert_eq!(local_addr(l2.as_raw_fd()).unwrap(), addr);
        assert_eq!(accept(l1.as_raw_fd()), Err(Errno::EAGAIN));

        let (c, _) = connect_from(Some("127.0.0.2".parse().unwrap()), false, addr).unwrap();
        // Wait until one of the two listeners has it.
        let mut got = None;
        for _ in 0..200 {
            for l in [&l1, &l2] {
                if let Ok(fd) = accept(l.as_raw_fd()) {
                    got = Some(fd);
                }
            }
            if got.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let s = got.expect("a listener accepted the connection");
        assert_eq!(take_error(c).unwrap(), None);
        // The accepted socket inherited TCP_NODELAY from the listener; the client has none.
        assert!(socket::getsockopt(&borrow(s), sockopt::TcpNoDelay).unwrap());
        assert!(!socket::getsockopt(&borrow(c), sockopt::TcpNoDelay).unwrap());
        set_nodelay(c).unwrap();
        assert!(socket::getsockopt(&borrow(c), sockopt::TcpNoDelay).unwrap());
        let peer = peer_addr(s).unwrap();
        assert_eq!(peer.ip(), "127.0.0.2".parse::<std::net::IpAddr>().unwrap());
        assert_eq!(peer_addr(c).unwrap(), addr);
        assert_eq!(io::write(c, b"hi").unwrap(), 2);
        let mut buf = [0u8; 4];
        let mut n = 0;
        for _ in 0..200 {
            match io::read(s, &mut buf) {
                Ok(k) => {
                    n = k;
                    break;
                }
                Err(Errno::EAGAIN) => std::thread::sleep(std::time::Duration::from_millis(5)),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(&buf[..n], b"hi");
        io::close(s).unwrap();
        io::close(c).unwrap();
    }

    #[test]
    fn a_listening_port_is_not_free() {
        let l = reuseport_listener("127.0.0.1:0".parse().unwrap(), 4).unwrap();
        let addr = local_addr(l.as_raw_fd()).unwrap();
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
        let addr = local_addr(reserve.as_raw_fd()).unwrap();
        let (c, done) = match connect_from(None, false, addr) {
            Err(Errno::ECONNREFUSED) => return,
            r => r.unwrap(),
        };
        assert!(!done);
        let mut err = None;
        for _ in 0..200 {
            err = take_error(c).unwrap();
            if err.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(err, Some(Errno::ECONNREFUSED));
        io::close(c).unwrap();
    }
}
