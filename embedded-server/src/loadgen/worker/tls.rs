//! `wss://` in the client process: a rustls client connection per socket (SNI and ALPN
//! http/1.1, trust from the system store, `--ca` or `--insecure`), kept in the loop's
//! [`crate::tls::Layer`]; a TLS failure is counted under its name and the connection closed;
//! a refused certificate stops the process's connects.

use std::os::fd::RawFd;

use super::Worker;
use crate::loadgen::board::{self as b, ErrorClass};

impl Worker {
    /// A socket just created at `fd`: its TLS state when the target is `wss://`. False when
    /// rustls refused to start (counted as a TLS failure, the fd released).
    pub(super) fn tls_open(&mut self, fd: RawFd) -> bool {
        let (Some(cfg), Some(name)) = (self.tls_cfg.as_ref(), self.tls_name.as_ref()) else {
            return true;
        };
        match rustls::client::UnbufferedClientConnection::new(cfg.clone(), name.clone()) {
            Ok(c) => {
                self.tls.insert(fd as usize, c.into());
                true
            }
            Err(_) => {
                self.fail(fd, ErrorClass::TlsOther, 0);
                false
            }
        }
    }

    /// The read at `fd` ended in a TLS failure: counted by name, the connection closed. A
    /// refused certificate stops this process's connects: every attempt would be refused alike.
    pub(super) fn tls_failed(&mut self, fd: RawFd) {
        let class = self
            .tls
            .take_failure()
            .map_or(ErrorClass::TlsOther, ErrorClass::of_tls);
        self.certificate_refused |= class.is_certificate();
        self.fail(fd, class, 0);
    }

    /// What a connection that ran out of time was doing: still in the TLS handshake, or after.
    pub(super) fn timeout_class(&self, i: usize) -> ErrorClass {
        if self.tls.is_handshaking(i) {
            ErrorClass::TlsHandshakeTimeout
        } else {
            ErrorClass::ConnectTimeout
        }
    }

    /// The handshake counters, for the report.
    pub(super) fn tls_publish(&self) {
        if self.tls_cfg.is_some() {
            let w = self.w();
            self.board.set(w, b::TLS_HANDSHAKES, self.tls.handshakes);
            self.board
                .set(w, b::TLS_HANDSHAKE_CPU_NS, self.tls.handshake_cpu_ns);
        }
    }
}
