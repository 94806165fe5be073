//! What the Rust peers share: their listener. `tokio::net::TcpListener::bind` listens with a
//! backlog of 128 (mio copies the standard library's value), below the 256 handshakes the bench
//! client keeps in flight: a server that falls behind for a moment then drops SYNs and the
//! client waits the 1 s SYN retransmission (seen as handshake rates of 11-18k/s in half the
//! runs). The other peers listen with 4096 (Node: `backlog: 4096`; Go: net.core.somaxconn) and
//! tune with 512, so the Rust peers take the backlog of tokio's own `TcpSocket::listen` example.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// listen(2) backlog of the Rust peers (tokio's `TcpSocket::listen` example uses 1024).
pub const BACKLOG: u32 = 1024;

/// A listener on `addr` (SO_REUSEADDR, as tokio's `bind` sets it) with [`BACKLOG`].
pub fn listen(addr: &str) -> TcpListener {
    let addr: SocketAddr = addr.parse().expect("ADDR: an IP:port");
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(addr).expect("bind");
    socket.listen(BACKLOG).expect("listen")
}

/// The value after `name` on the command line, if given.
pub fn arg_str(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The number after `name` on the command line, or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    arg_str(name).map_or(default, |v| v.parse().expect(name))
}
