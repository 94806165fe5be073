//! The server worker's HTTP side: a request head becomes a websocket (101), a plain HTTP
//! answer (/metrics, /healthz, 404) or a refusal; the answer is followed by a linger.

use std::os::fd::RawFd;

use super::{rss_bytes, State, Worker};
use crate::protocol::handshake::{self, Parsed};
use crate::protocol::session::{Phase, Session};
use crate::server::metrics::{self as m, CloseReason};

impl Worker {
    /// Consumes what it can of a request head and returns how many bytes it used.
    pub(super) fn process_handshake(
        &mut self,
        fd: RawFd,
        _conn: &mut Option<Box<Session>>,
        buf: &mut [u8],
    ) -> usize {
        let i = fd as usize;
        let w = self.w();
        match handshake::parse_request(buf, self.cfg.limits.max_handshake_bytes) {
            Parsed::Partial => 0,
            Parsed::Upgrade { accept, consumed } => {
                handshake::upgrade_response(&accept, &mut self.wbuf);
                self.handshake_ended();
                self.slots[i].state = State::Ws(Phase::Open);
                self.set_deadline(i, 0);
                self.board.add(w, m::HANDSHAKES, 1);
                self.board.add(w, m::WS_OPEN, 1);
                consumed
            }
            Parsed::Http { path, .. } => {
                let resp = self.http_reply(&path);
                self.wbuf.extend_from_slice(&resp);
                self.begin_http_reply(fd, CloseReason::Http);
                buf.len()
            }
            Parsed::Reject(r) => {
                self.board.rejected(w, r);
                self.wbuf.extend_from_slice(&r.response());
                self.begin_http_reply(fd, CloseReason::HandshakeFailed);
                buf.len()
            }
        }
    }

    fn http_reply(&self, path: &str) -> Vec<u8> {
        let w = self.w();
        match path {
            "/metrics" => {
                self.board.add(w, m::HTTP_METRICS, 1);
                self.board.set(w, m::RSS, rss_bytes());
                // Exact, not the running count (which learns of flushed output at the next
                // tick): a scrape says what is held now.
                let held: usize = self
                    .slots
                    .iter()
                    .filter_map(|s| s.conn.as_ref())
                    .map(|c| c.footprint())
                    .sum();
                self.board.set(w, m::BUFFERED, held as u64);
                let body = self.board.prometheus();
                handshake::http_response(
                    200,
                    "OK",
                    "",
                    "text/plain; version=0.0.4; charset=utf-8",
                    body.as_bytes(),
                )
            }
            "/healthz" => {
                self.board.add(w, m::HTTP_HEALTHZ, 1);
                handshake::http_response(200, "OK", "", "text/plain", b"ok\n")
            }
            _ => {
                self.board.add(w, m::HTTP_NOT_FOUND, 1);
                handshake::http_response(
                    404,
                    "Not Found",
                    "",
                    "text/plain",
                    b"not found: try /metrics, /healthz or a websocket upgrade\n",
                )
            }
        }
    }
}
