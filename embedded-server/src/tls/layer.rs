//! The TLS layer of one event loop: an unbuffered rustls connection per TLS socket, in a table
//! indexed by fd beside the loop's slots, and the read/write calls that move records between
//! the socket (through `sys::io`, the only place that touches it) and plaintext the caller hands
//! to its websocket session. Sockets without an entry pass straight through, so a loop without
//! TLS pays one branch.
//!
//! The loop owns the buffers, not rustls: ciphertext is read into one scratch buffer per loop
//! and decrypted there, records are encrypted into one write buffer per loop. A connection keeps
//! storage only while it must: an incomplete record between reads, ciphertext the socket did not
//! take, plaintext written before its handshake finished; each is freed once empty. An idle
//! connection holds its keys and sequence numbers and nothing else.
//!
//! Besides the connections it counts what TLS costs this loop: completed handshakes and the
//! thread CPU spent processing handshake records.

use std::os::fd::BorrowedFd;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};
use rustls::Error;

use super::Failure;
use crate::sys::{io, Errno};

/// Smallest plaintext buffer [`Layer::read`] takes. One read takes at most this much
/// ciphertext (with the connection's incomplete record in front), and a record's plaintext is
/// never longer than its ciphertext, so everything decrypted fits and nothing is left inside
/// rustls when it returns (a drained socket would not wake the loop for it).
pub const MIN_READ_BUF: usize = 64 * 1024;
/// An incomplete record (or handshake message spread over records) a connection may hold
/// between reads. A record is at most 16 KiB + 2 KiB of overhead; a handshake message
/// (certificate chains are a few KiB) may span records. Past this the peer is refused as
/// hostile, and a read still has 16 KiB of room behind it.
const MAX_PARTIAL: usize = MIN_READ_BUF - 16 * 1024;
/// Plaintext [`Layer::write`] encrypts at a time: two full records.
const WRITE_CHUNK: usize = 32 * 1024;
/// Ciphertext overhead of one record at most (header, AEAD tag, inner content type, padding
/// rustls never adds): room asked of the write buffer per record.
const RECORD_OVERHEAD: usize = 5 + 16 + 1 + 42;

/// A connection's rustls state: the server or client side of the unbuffered API.
pub enum Conn {
    Server(UnbufferedServerConnection),
    Client(UnbufferedClientConnection),
}

impl From<UnbufferedServerConnection> for Conn {
    fn from(c: UnbufferedServerConnection) -> Self {
        Conn::Server(c)
    }
}

impl From<UnbufferedClientConnection> for Conn {
    fn from(c: UnbufferedClientConnection) -> Self {
        Conn::Client(c)
    }
}

/// The two sides behind one driver (rustls gives each its own `process_tls_records`).
trait Records {
    type Data;
    fn records<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
    fn handshaking(&self) -> bool;
}

macro_rules! records {
    ($conn:ty, $data:ty) => {
        impl Records for $conn {
            type Data = $data;
            fn records<'c, 'i>(
                &'c mut self,
                incoming: &'i mut [u8],
            ) -> UnbufferedStatus<'c, 'i, $data> {
                self.process_tls_records(incoming)
            }
            fn handshaking(&self) -> bool {
                self.is_handshaking()
            }
        }
    };
}

records!(UnbufferedServerConnection, ServerConnectionData);
records!(UnbufferedClientConnection, ClientConnectionData);

/// One TLS socket: rustls's state and the storage it holds only while it must.
struct Entry {
    conn: Conn,
    /// Ciphertext of an incomplete record, carried to the next read.
    partial: Vec<u8>,
    /// Ciphertext the socket did not take yet.
    unsent: Vec<u8>,
    /// Plaintext written before the handshake finished, sent once it has.
    early: Vec<u8>,
}

impl Entry {
    fn handshaking(&self) -> bool {
        match &self.conn {
            Conn::Server(c) => c.is_handshaking(),
            Conn::Client(c) => c.is_handshaking(),
        }
    }
}

/// What [`Layer::read`] returns besides plaintext: `Err(Errno::EPROTO)` is a TLS failure
/// (take it with [`Layer::take_failure`]).
pub type ReadOutcome = Result<usize, Errno>;

/// The TLS connections of one loop, indexed by fd, the loop's buffers, and what their
/// handshakes cost.
#[derive(Default)]
pub struct Layer {
    conns: Vec<Option<Box<Entry>>>,
    /// Ciphertext read from a socket, decrypted in place (allocated at the first TLS read).
    scratch: Vec<u8>,
    /// Records on their way to a socket.
    wbuf: Vec<u8>,
    failure: Option<Failure>,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Thread CPU spent processing handshake records, ns.
    pub handshake_cpu_ns: u64,
}

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layer")
            .field("handshakes", &self.handshakes)
            .finish()
    }
}

fn cpu_ns() -> u64 {
    crate::sys::proc::thread_cpu_time().map_or(0, |d| d.as_nanos() as u64)
}

/// What one pass of [`drive`] did.
#[derive(Default)]
struct Driven {
    /// Bytes of the incoming buffer consumed (the rest is an incomplete record).
    consumed: usize,
    /// Plaintext put in `out`.
    got: usize,
    /// The peer sent close_notify.
    closed: bool,
    /// The TLS failure, if it failed.
    error: Option<Error>,
}

/// Appends what `put` writes to `w`, growing it when `put` asks for more room.
fn append(
    w: &mut Vec<u8>,
    room: usize,
    mut put: impl FnMut(&mut [u8]) -> Result<usize, Option<InsufficientSizeError>>,
) -> Result<(), ()> {
    let at = w.len();
    w.resize(at + room, 0);
    loop {
        match put(&mut w[at..]) {
            Ok(n) => {
                w.truncate(at + n);
                return Ok(());
            }
            Err(Some(InsufficientSizeError { required_size })) if w.len() - at < required_size => {
                w.resize(at + required_size, 0)
            }
            Err(_) => {
                w.truncate(at);
                return Err(());
            }
        }
    }
}

fn encode_err(e: EncodeError) -> Option<InsufficientSizeError> {
    match e {
        EncodeError::InsufficientSize(s) => Some(s),
        _ => None,
    }
}

fn encrypt_err(e: EncryptError) -> Option<InsufficientSizeError> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s),
        _ => None,
    }
}

/// Room to ask of the write buffer for `n` bytes of plaintext.
fn sealed_len(n: usize) -> usize {
    n + n.div_ceil(16 * 1024).max(1) * RECORD_OVERHEAD
}

/// Runs rustls over `incoming` until it needs more input: plaintext goes to `out`, records to
/// send (handshake flights, alerts, `early` once the handshake is done) are appended to `w`.
fn drive<C: Records>(
    c: &mut C,
    incoming: &mut [u8],
    out: &mut [u8],
    w: &mut Vec<u8>,
    early: &mut Vec<u8>,
) -> Driven {
    let mut d = Driven::default();
    loop {
        let UnbufferedStatus { mut discard, state } = c.records(&mut incoming[d.consumed..]);
        match state {
            Err(e) => {
                d.consumed += discard;
                d.error = Some(e);
                alert(c, w);
                return d;
            }
            Ok(ConnectionState::ReadTraffic(mut rt)) => {
                while let Some(rec) = rt.next_record() {
                    let rec = match rec {
                        Ok(r) => r,
                        Err(e) => {
                            d.error = Some(e);
                            return d;
                        }
                    };
                    let Some(to) = out.get_mut(d.got..d.got + rec.payload.len()) else {
                        // Cannot happen with out at least MIN_READ_BUF (see there).
                        d.error = Some(Error::General("plaintext overflows the read".into()));
                        return d;
                    };
                    to.copy_from_slice(rec.payload);
                    d.got += rec.payload.len();
                    discard += rec.discard;
                }
            }
            Ok(ConnectionState::EncodeTlsData(mut enc)) => {
                if append(w, 4096, |b| enc.encode(b).map_err(encode_err)).is_err() {
                    d.error = Some(Error::General("cannot encode a handshake record".into()));
                    return d;
                }
            }
            // Sent with whatever follows in one write when this pass ends: a flight and the
            // request behind it leave in one segment (the client sockets have Nagle on; a second
            // small write would wait for the peer's delayed ACK).
            Ok(ConnectionState::TransmitTlsData(t)) => t.done(),
            Ok(ConnectionState::WriteTraffic(mut wt)) => {
                if !early.is_empty() {
                    let plain = std::mem::take(early);
                    if append(w, sealed_len(plain.len()), |b| {
                        wt.encrypt(&plain, b).map_err(encrypt_err)
                    })
                    .is_err()
                    {
                        d.error = Some(Error::EncryptError);
                        return d;
                    }
                }
                d.consumed += discard;
                return d;
            }
            Ok(ConnectionState::PeerClosed | ConnectionState::Closed) => {
                d.consumed += discard;
                d.closed = true;
                return d;
            }
            Ok(ConnectionState::BlockedHandshake) => {
                d.consumed += discard;
                return d;
            }
            // Early data is never accepted (the server config leaves it off).
            Ok(_) => {
                d.error = Some(Error::General("unexpected TLS state".into()));
                return d;
            }
        }
        d.consumed += discard;
    }
}

/// After a failure: the alert rustls queued for the peer, appended to `w`.
fn alert<C: Records>(c: &mut C, w: &mut Vec<u8>) {
    for _ in 0..3 {
        let UnbufferedStatus { state, .. } = c.records(&mut []);
        match state {
            Ok(ConnectionState::EncodeTlsData(mut enc)) => {
                if append(w, 64, |b| enc.encode(b).map_err(encode_err)).is_err() {
                    return;
                }
            }
            Ok(ConnectionState::TransmitTlsData(t)) => t.done(),
            _ => return,
        }
    }
}

/// Sends `bytes` after whatever `unsent` holds; what the socket does not take joins `unsent`.
fn send(fd: BorrowedFd<'_>, unsent: &mut Vec<u8>, bytes: &[u8]) -> Result<(), Errno> {
    if bytes.is_empty() {
        return Ok(());
    }
    if !unsent.is_empty() {
        unsent.extend_from_slice(bytes);
        return flush_unsent(fd, unsent);
    }
    let n = match io::write(fd, bytes) {
        Ok(n) => n,
        Err(Errno::EAGAIN) => 0,
        Err(e) => return Err(e),
    };
    unsent.extend_from_slice(&bytes[n..]);
    Ok(())
}

/// Writes what `unsent` holds, as far as the socket takes it; frees it once empty.
fn flush_unsent(fd: BorrowedFd<'_>, unsent: &mut Vec<u8>) -> Result<(), Errno> {
    while !unsent.is_empty() {
        match io::write(fd, unsent) {
            Ok(n) => {
                unsent.drain(..n);
            }
            Err(Errno::EAGAIN) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    *unsent = Vec::new();
    Ok(())
}

impl Layer {
    /// Whether the socket at `i` speaks TLS.
    pub fn is_tls(&self, i: usize) -> bool {
        self.conns.get(i).is_some_and(|c| c.is_some())
    }

    /// Puts a new connection at `i`.
    pub fn insert(&mut self, i: usize, conn: Conn) {
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        self.conns[i] = Some(Box::new(Entry {
            conn,
            partial: Vec::new(),
            unsent: Vec::new(),
            early: Vec::new(),
        }));
    }

    /// Forgets the connection at `i` (its socket is being closed); with `fd`, a close_notify
    /// is sent first, as far as the socket takes it.
    pub fn remove(&mut self, i: usize, fd: Option<BorrowedFd<'_>>) {
        let Some(mut e) = self.conns.get_mut(i).and_then(Option::take) else {
            return;
        };
        let Some(fd) = fd else { return };
        if e.handshaking() {
            return;
        }
        let w = &mut self.wbuf;
        w.clear();
        let mut none = [0u8; 0];
        let d = match &mut e.conn {
            Conn::Server(c) => close_notify(c, &mut none, w),
            Conn::Client(c) => close_notify(c, &mut none, w),
        };
        if d.is_ok() {
            let _ = send(fd, &mut e.unsent, w);
        }
        w.clear();
    }

    /// The failure behind the last `Err(EPROTO)` of [`Layer::read`].
    pub fn take_failure(&mut self) -> Option<Failure> {
        self.failure.take()
    }

    /// Still in the TLS handshake.
    pub fn is_handshaking(&self, i: usize) -> bool {
        self.entry(i).is_some_and(Entry::handshaking)
    }

    /// Ciphertext is waiting for the socket: the caller keeps EPOLLOUT armed.
    pub fn wants_write(&self, i: usize) -> bool {
        self.entry(i).is_some_and(|e| !e.unsent.is_empty())
    }

    /// Heap bytes the TLS state at `i` holds, for a memory budget: rustls's state and what
    /// the connection buffers right now.
    pub fn footprint(&self, i: usize) -> usize {
        self.entry(i).map_or(0, |e| {
            super::CONN_BYTES + e.partial.capacity() + e.unsent.capacity() + e.early.capacity()
        })
    }

    fn entry(&self, i: usize) -> Option<&Entry> {
        self.conns.get(i).and_then(|c| c.as_deref())
    }

    /// Reads what the socket has, decrypts it and puts the plaintext in `out` (at least
    /// [`MIN_READ_BUF`] long); answers the handshake on the way. Like read(2): `Ok(0)` is the
    /// end (EOF or close_notify), `Err(EAGAIN)` nothing yet, `Err(EPROTO)` a TLS failure.
    pub fn read(&mut self, i: usize, fd: BorrowedFd<'_>, out: &mut [u8]) -> ReadOutcome {
        let Some(e) = self.conns.get_mut(i).and_then(|c| c.as_deref_mut()) else {
            return io::read(fd, out);
        };
        debug_assert!(out.len() >= MIN_READ_BUF);
        if self.scratch.is_empty() {
            self.scratch = vec![0u8; MIN_READ_BUF];
        }
        let held = e.partial.len();
        if held > MAX_PARTIAL {
            self.failure = Some(Failure::Other);
            return Err(Errno::EPROTO);
        }
        let room = self.scratch.len().min(out.len()) - held;
        self.scratch[..held].copy_from_slice(&e.partial);
        let n = match io::read(fd, &mut self.scratch[held..held + room]) {
            Ok(0) => return Ok(0),
            Ok(n) => n,
            Err(err) => return Err(err),
        };
        let was_handshaking = e.handshaking();
        let t0 = if was_handshaking { cpu_ns() } else { 0 };
        self.wbuf.clear();
        let incoming = &mut self.scratch[..held + n];
        let d = match &mut e.conn {
            Conn::Server(c) => drive(c, incoming, out, &mut self.wbuf, &mut e.early),
            Conn::Client(c) => drive(c, incoming, out, &mut self.wbuf, &mut e.early),
        };
        if was_handshaking {
            self.handshake_cpu_ns += cpu_ns().saturating_sub(t0);
            if d.error.is_none() && !e.handshaking() {
                self.handshakes += 1;
            }
        }
        // The handshake's next flight, an alert, or early plaintext now encrypted.
        let sent = send(fd, &mut e.unsent, &self.wbuf);
        self.wbuf.clear();
        if let Some(err) = d.error {
            self.failure = Some(Failure::of(&err));
            return Err(Errno::EPROTO);
        }
        sent?;
        let left = &self.scratch[d.consumed..held + n];
        e.partial = left.to_vec();
        if d.got > 0 {
            Ok(d.got)
        } else if d.closed {
            Ok(0)
        } else {
            Err(Errno::EAGAIN)
        }
    }

    /// Encrypts what of `plain` it takes (up to [`WRITE_CHUNK`]) and sends what the socket
    /// takes; like write(2) it returns the plaintext bytes taken, `Err(EAGAIN)` when none.
    /// Ciphertext the socket did not take stays queued: see [`Layer::wants_write`]. Before the
    /// handshake has finished the plaintext waits (up to [`super::BUFFER_LIMIT`]) and is sent
    /// with the flight that finishes it.
    pub fn write(&mut self, i: usize, fd: BorrowedFd<'_>, plain: &[u8]) -> Result<usize, Errno> {
        let Some(e) = self.conns.get_mut(i).and_then(|c| c.as_deref_mut()) else {
            return io::write(fd, plain);
        };
        flush_unsent(fd, &mut e.unsent)?;
        if !e.unsent.is_empty() {
            return Err(Errno::EAGAIN);
        }
        let take = if e.handshaking() {
            let take = plain.len().min(super::BUFFER_LIMIT - e.early.len());
            e.early.extend_from_slice(&plain[..take]);
            take
        } else {
            plain.len().min(WRITE_CHUNK)
        };
        self.wbuf.clear();
        let mut none = [0u8; 0];
        let sealed = match &mut e.conn {
            Conn::Server(c) => seal(c, &mut none, &mut self.wbuf, &plain[..take], &mut e.early),
            Conn::Client(c) => seal(c, &mut none, &mut self.wbuf, &plain[..take], &mut e.early),
        };
        let sent = send(fd, &mut e.unsent, &self.wbuf);
        self.wbuf.clear();
        if sealed.is_err() {
            return Err(Errno::EPROTO);
        }
        sent?;
        if take == 0 && !plain.is_empty() {
            return Err(Errno::EAGAIN);
        }
        Ok(take)
    }

    /// Sends queued ciphertext; `Ok` also when the socket is full (EAGAIN).
    pub fn flush(&mut self, i: usize, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        match self.conns.get_mut(i).and_then(|c| c.as_deref_mut()) {
            Some(e) => flush_unsent(fd, &mut e.unsent),
            None => Ok(()),
        }
    }
}

/// Brings out what rustls has to send (the first flight of a client, a key update), then,
/// once the handshake is done, encrypts `plain` (empty while handshaking: it waits in `early`).
fn seal<C: Records>(
    c: &mut C,
    none: &mut [u8],
    w: &mut Vec<u8>,
    plain: &[u8],
    early: &mut Vec<u8>,
) -> Result<(), ()> {
    let handshaking = c.handshaking();
    let d = drive(c, none, &mut [], w, early);
    if d.error.is_some() {
        return Err(());
    }
    if handshaking || plain.is_empty() {
        return Ok(());
    }
    let UnbufferedStatus { state, .. } = c.records(none);
    match state {
        Ok(ConnectionState::WriteTraffic(mut wt)) => append(w, sealed_len(plain.len()), |b| {
            wt.encrypt(plain, b).map_err(encrypt_err)
        }),
        _ => Err(()),
    }
}

/// Appends a close_notify to `w` once whatever rustls had queued has been.
fn close_notify<C: Records>(c: &mut C, none: &mut [u8], w: &mut Vec<u8>) -> Result<(), ()> {
    let d = drive(c, none, &mut [], w, &mut Vec::new());
    if d.error.is_some() || d.closed {
        return Err(());
    }
    let UnbufferedStatus { state, .. } = c.records(none);
    match state {
        Ok(ConnectionState::WriteTraffic(mut wt)) => {
            append(w, 64, |b| wt.queue_close_notify(b).map_err(encrypt_err))
        }
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd as _;
    use std::os::unix::net::UnixStream;

    use super::*;
    use crate::tls::{ClientTls, ServerTls};

    /// A server and a client layer over a socket pair, their handshake done by turns.
    fn pair() -> (Layer, Layer, UnixStream, UnixStream) {
        let pki = ServerTls::self_signed(&["localhost".into()]).unwrap();
        let client_cfg = ClientTls {
            ca_pem: Some(pki.cert_pem.clone()),
            insecure: false,
        }
        .config()
        .unwrap();
        let (s_sock, c_sock) = UnixStream::pair().unwrap();
        s_sock.set_nonblocking(true).unwrap();
        c_sock.set_nonblocking(true).unwrap();
        let (mut s, mut c) = (Layer::default(), Layer::default());
        s.insert(
            0,
            UnbufferedServerConnection::new(pki.config().unwrap())
                .unwrap()
                .into(),
        );
        let name = crate::tls::server_name("localhost").unwrap();
        c.insert(
            0,
            UnbufferedClientConnection::new(client_cfg, name)
                .unwrap()
                .into(),
        );
        (s, c, s_sock, c_sock)
    }

    #[test]
    fn a_request_written_before_the_handshake_arrives_and_an_idle_connection_holds_no_buffer() {
        let (mut s, mut c, s_sock, c_sock) = pair();
        let mut out = vec![0u8; MIN_READ_BUF];
        // The client's request waits for the handshake; the ClientHello leaves at once.
        assert_eq!(
            c.write(0, c_sock.as_fd(), b"GET / HTTP/1.1\r\n\r\n"),
            Ok(18)
        );
        assert!(c.is_handshaking(0));
        let mut got = Vec::new();
        for _ in 0..10 {
            if let Ok(n) = s.read(0, s_sock.as_fd(), &mut out) {
                got.extend_from_slice(&out[..n]);
            }
            let _ = c.read(0, c_sock.as_fd(), &mut out);
        }
        assert_eq!(got, b"GET / HTTP/1.1\r\n\r\n");
        assert!(!s.is_handshaking(0) && !c.is_handshaking(0));
        assert_eq!((s.handshakes, c.handshakes), (1, 1));
        // An echo back, larger than a record.
        let big = vec![7u8; 40_000];
        let mut sent = 0;
        while sent < big.len() {
            sent += s.write(0, s_sock.as_fd(), &big[sent..]).unwrap();
        }
        let mut back = 0;
        while back < big.len() {
            back += c.read(0, c_sock.as_fd(), &mut out).unwrap();
        }
        assert_eq!(back, big.len());
        // Idle now: rustls's state only, on both ends.
        assert_eq!(s.footprint(0), crate::tls::CONN_BYTES);
        assert_eq!(c.footprint(0), crate::tls::CONN_BYTES);
        // close_notify is the end of the stream.
        s.remove(0, Some(s_sock.as_fd()));
        assert_eq!(c.read(0, c_sock.as_fd(), &mut out), Ok(0));
    }

    #[test]
    fn a_garbage_client_hello_is_a_named_failure() {
        let (mut s, _c, s_sock, c_sock) = pair();
        let mut out = vec![0u8; MIN_READ_BUF];
        std::io::Write::write_all(&mut &c_sock, b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(s.read(0, s_sock.as_fd(), &mut out), Err(Errno::EPROTO));
        assert_eq!(s.take_failure(), Some(Failure::NotTls));
    }
}
