//! `serve --tls` in the worker: a rustls server connection per accepted socket (in the loop's
//! [`crate::tls::Layer`]), and what a TLS failure does: counted, closed as a failed handshake.
//! The TLS handshake happens inside the connection's `Handshake` state, so the handshake
//! deadline, the handshake slots and the memory budget bound it like the HTTP upgrade.

use std::os::fd::RawFd;

use super::Worker;
use crate::server::metrics::{self as m, CloseReason};

impl Worker {
    /// A socket just adopted at `i`: give it its TLS state when serving TLS. False when rustls
    /// refused to start a connection (the caller closes it).
    pub(super) fn tls_open(&mut self, i: usize) -> bool {
        let Some(cfg) = self.tls_cfg.as_ref() else {
            return true;
        };
        match rustls::server::UnbufferedServerConnection::new(cfg.clone()) {
            Ok(c) => {
                self.tls.insert(i, c.into());
                true
            }
            Err(_) => false,
        }
    }

    /// A TLS record the worker could not accept (a garbage ClientHello, an alert from a client
    /// that refused our certificate, a bad record later): counted and closed.
    pub(super) fn tls_failed(&mut self, fd: RawFd) {
        let _ = self.tls.take_failure();
        self.board.add(self.w(), m::TLS_FAILED, 1);
        self.close(fd, Some(CloseReason::HandshakeFailed));
    }

    /// After a read: what the handshakes cost so far, for the report.
    pub(super) fn tls_publish(&mut self, handshakes_before: u64) {
        if self.tls.handshakes != handshakes_before {
            let w = self.w();
            self.board.set(w, m::TLS_HANDSHAKES, self.tls.handshakes);
            self.board
                .set(w, m::TLS_HANDSHAKE_CPU_NS, self.tls.handshake_cpu_ns);
        }
    }
}
