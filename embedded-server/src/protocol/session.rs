//! One websocket connection after the handshake, without I/O: bytes in (plus the current time)
//! give events and bytes to send; it owns the connection's input and output buffers, the partial
//! frame or fragmented message, and the deadlines that bound them. Both the server worker and the
//! load generator drive it.
//!
//! Heap state exists only while something is in flight: the owner keeps an
//! `Option<Box<Session>>` per connection, the functions here create the box when a frame is left
//! partial or output is left unsent, and [`Session::is_idle`] says when it can be dropped. An
//! idle connection costs its owner's slot and nothing else.
//!
//! Time is milliseconds on any monotonic clock the caller likes; 0 means "no deadline".
//!
//! The close handshake is [`closing`]: one state machine ([`Phase`]) that both ends drive with
//! [`feed`], [`initiate`], [`sent`] and [`expire`].

use super::close;
use super::frame::{self, Header};
use super::handshake::{Key, KEY_LEN};
use super::mask::apply_mask;
use super::utf8::{self, Utf8Validator};
use super::{Control, Data, OpCode, Violation};

mod closing;
pub use closing::{expire, feed, initiate, refuse_message, sent, Phase};

/// Which side of the connection this session is: it decides which frames are legal (clients
/// mask, servers do not) and whether what we send is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// The session's limits.
#[derive(Debug, Clone)]
pub struct Config {
    pub role: Role,
    /// Largest message (all fragments together); beyond it the peer gets 1009.
    pub max_message: u64,
    /// Assemble fragmented messages (echo, clients); false: only count their bytes.
    pub keep_payload: bool,
    /// A partial frame or fragmented message must be complete this long after it began (0: no
    /// limit). Bounds how long a peer can pin a message buffer by withholding its last byte.
    pub frame_timeout_ms: u64,
    /// Unsent output must make progress within this long (0: no limit). Bounds how long a peer
    /// that stopped reading can pin its output.
    pub write_timeout_ms: u64,
}

/// What the peer did, as it completes.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole data message. `data` is the payload (empty for a fragmented message when
    /// payloads are not kept); `len` its length either way.
    Message {
        opcode: OpCode,
        data: &'a [u8],
        len: u64,
    },
    /// A ping (the pong is already queued).
    Ping(&'a [u8]),
    Pong,
}

/// Where the connection stands after the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    /// The peer sent a close frame (with this code); the input after it was ignored.
    PeerClosed(Option<u16>),
    /// The peer broke the protocol (or a limit). Through [`feed`], our close frame with the code
    /// it earns is queued (or, for a too-big message, will be once the message has passed).
    Failed(Violation),
}

/// A deadline that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// A partial frame or fragmented message did not complete in time.
    Frame,
    /// Unsent output made no progress in time.
    Write,
}

/// Largest partial input kept while closing: a frame header and a close payload.
const MAX_CLOSING_INPUT: usize = frame::MAX_HEADER_LEN + frame::MAX_CONTROL_PAYLOAD as usize;
/// Output buffers larger than this are given back to the allocator once drained rather than
/// kept for the next reply.
const OUT_KEEP: usize = 4096;
/// Buffers (partial input, a message being assembled, unsent output) grow by at most this much
/// beyond what they must hold: in steps, not by doubling, so a buffer's capacity (what the
/// memory budget counts, and what the process holds) stays within one step of its content. A
/// 1 MiB partial frame held 2 MiB when its buffer doubled. Large buffers are mmapped (see
/// `sys::alloc`), where growing in place is a page remap, not a copy.
pub const GROW_STEP: usize = 64 * 1024;

/// Makes room for `extra` more bytes in `v`: doubling while small, then one step at a time.
fn grow(v: &mut Vec<u8>, extra: usize) {
    if v.capacity() - v.len() < extra {
        v.reserve_exact(extra.max(v.len().min(GROW_STEP)));
    }
}

/// The heap state of one connection while something is in flight.
#[derive(Debug, Default)]
pub struct Session {
    /// Bytes received but not consumed yet (a partial frame or request head).
    inbuf: Vec<u8>,
    /// Of the frame at the head of `inbuf`: payload bytes already unmasked and validated.
    frame_done: usize,
    /// The data message being received in fragments (Text or Binary), if any.
    msg: Option<OpCode>,
    msg_data: Vec<u8>,
    msg_len: u64,
    /// UTF-8 state of the text message being received (whole message, across frames).
    utf8: Utf8Validator,
    /// Output the socket did not take yet, from `out_pos`; the sent part is dropped as it grows.
    out: Vec<u8>,
    out_pos: usize,
    /// When the partial frame or message must be complete (0: none).
    input_deadline: u64,
    /// When pending output must have moved (0: none).
    output_deadline: u64,
    /// While closing: payload bytes of the current frame still to skip.
    skip: u64,
    /// A client's Sec-WebSocket-Key, kept until the 101 arrives (unused by servers).
    pub key: Key,
}

impl Session {
    /// Output queued but not sent.
    pub fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// The bytes to write next.
    pub fn unsent(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// A partial frame, request head or fragmented message is held.
    pub fn has_partial_input(&self) -> bool {
        !self.inbuf.is_empty() || self.msg.is_some() || self.skip > 0
    }

    /// Length of the partial message so far (0 when none).
    pub fn partial_message_len(&self) -> u64 {
        self.msg_len + self.inbuf.len() as u64
    }

    /// Nothing in flight: the owner may drop the box.
    pub fn is_idle(&self) -> bool {
        !self.has_partial_input() && self.pending_out() == 0 && self.key == [0; KEY_LEN]
    }

    /// Heap bytes this connection holds, the box included: what a memory budget counts.
    pub fn footprint(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.inbuf.capacity()
            + self.msg_data.capacity()
            + self.out.capacity()
    }

    /// The earliest deadline, if any: when the owner must call [`Session::expired`].
    pub fn next_wake(&self) -> Option<u64> {
        [self.input_deadline, self.output_deadline]
            .into_iter()
            .filter(|&d| d != 0)
            .min()
    }

    /// Which deadline has passed at `now`, if any.
    pub fn expired(&self, now: u64) -> Option<Timeout> {
        if self.output_deadline != 0 && now >= self.output_deadline {
            Some(Timeout::Write)
        } else if self.input_deadline != 0 && now >= self.input_deadline {
            Some(Timeout::Frame)
        } else {
            None
        }
    }

    /// Forgets the partial frame and message (the connection failed). The rest of a partial
    /// frame is still to arrive: it is counted in `skip`, so discarding does not take its
    /// payload for frame headers.
    fn drop_input(&mut self) {
        if let Ok(Some(h)) = frame::decode(&self.inbuf) {
            let total = (h.header_len as u64).saturating_add(h.payload_len);
            self.skip = total.saturating_sub(self.inbuf.len() as u64);
        }
        self.inbuf = Vec::new();
        self.msg = None;
        self.forget_message();
    }

    /// Forgets the message being assembled (its payload and validation state) but keeps the
    /// unparsed input, which starts at a frame boundary, and whether a message is open:
    /// draining goes on from there.
    fn forget_message(&mut self) {
        self.frame_done = 0;
        self.msg_data = Vec::new();
        self.msg_len = 0;
        self.utf8 = Utf8Validator::new();
        self.input_deadline = 0;
    }

    /// Forgets unsent output (a peer that does not read is being dropped).
    pub fn drop_output(&mut self) {
        self.out = Vec::new();
        self.out_pos = 0;
        self.output_deadline = 0;
    }

    /// `n` bytes of [`Session::unsent`] were written at `now`: progress resets the write
    /// deadline; the sent part is freed once everything went.
    pub fn advance(&mut self, n: usize, cfg: &Config, now: u64) {
        self.out_pos += n;
        if self.out_pos >= self.out.len() {
            if self.out.capacity() > OUT_KEEP {
                self.out = Vec::new();
            } else {
                self.out.clear();
            }
            self.out_pos = 0;
            self.output_deadline = 0;
        } else if n > 0 {
            self.output_deadline = after(now, cfg.write_timeout_ms);
        }
    }

    /// Appends bytes the socket did not take. The part already sent is dropped first once it
    /// is at least as large as the unsent part, and spare capacity is given back, so the buffer
    /// stays within a small multiple of what is pending however long the peer keeps reading
    /// just a little (before, the sent part was kept until everything was sent).
    fn push_out(&mut self, bytes: &[u8], cfg: &Config, now: u64) {
        if self.out_pos > 0 && self.out_pos >= self.pending_out() {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
            if self.out.capacity() > 3 * self.out.len().max(OUT_KEEP) {
                self.out.shrink_to(2 * self.out.len().max(OUT_KEEP));
            }
        }
        if self.pending_out() == 0 {
            self.output_deadline = after(now, cfg.write_timeout_ms);
        }
        grow(&mut self.out, bytes.len());
        self.out.extend_from_slice(bytes);
    }

    fn update_input_deadline(&mut self, cfg: &Config, now: u64) {
        if !self.has_partial_input() {
            self.input_deadline = 0;
        } else if self.input_deadline == 0 {
            self.input_deadline = after(now, cfg.frame_timeout_ms);
        }
    }
}

fn after(now: u64, ms: u64) -> u64 {
    if ms == 0 {
        0
    } else {
        now.saturating_add(ms).max(1)
    }
}

/// Queues `bytes` that the socket did not take (creating the session if needed).
pub fn queue_unsent(slot: &mut Option<Box<Session>>, cfg: &Config, now: u64, bytes: &[u8]) {
    if !bytes.is_empty() {
        slot.get_or_insert_with(Box::default)
            .push_out(bytes, cfg, now);
    }
}

/// Appends one frame to `out`: masked with a random key for a client, plain for a server.
pub fn write_frame(role: Role, out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    let mask = (role == Role::Client).then(|| fastrand::u32(..).to_ne_bytes());
    let mut h = [0u8; frame::MAX_HEADER_LEN];
    let n = frame::encode(&mut h, true, opcode, mask, payload.len() as u64);
    out.extend_from_slice(&h[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(m) = mask {
        apply_mask(&mut out[start..], m, 0);
    }
}

/// Runs `f` over the pending input joined with `data` (or over `data` in place when nothing is
/// pending, the common case, with no copy); `f` returns how many bytes it consumed and the rest
/// is kept in the session for the next call.
pub fn with_input(
    slot: &mut Option<Box<Session>>,
    data: &mut [u8],
    f: impl FnOnce(&mut Option<Box<Session>>, &mut [u8]) -> usize,
) {
    let pending = slot
        .as_mut()
        .map(|s| std::mem::take(&mut s.inbuf))
        .filter(|b| !b.is_empty());
    match pending {
        Some(mut ib) => {
            grow(&mut ib, data.len());
            ib.extend_from_slice(data);
            let used = f(slot, &mut ib).min(ib.len());
            if used < ib.len() {
                ib.drain(..used);
                if ib.capacity() > 2 * ib.len() + OUT_KEEP {
                    ib.shrink_to_fit();
                }
                slot.get_or_insert_with(Box::default).inbuf = ib;
            }
        }
        None => {
            let used = f(slot, data).min(data.len());
            if used < data.len() {
                slot.get_or_insert_with(Box::default)
                    .inbuf
                    .extend_from_slice(&data[used..]);
            }
        }
    }
}

/// Feeds received bytes: complete frames become events (`on` may append replies to `out`),
/// protocol replies (pongs, our close on a violation) go to `out`, a partial frame or message
/// is kept with its deadline.
pub fn receive<F>(
    slot: &mut Option<Box<Session>>,
    cfg: &Config,
    now: u64,
    data: &mut [u8],
    out: &mut Vec<u8>,
    mut on: F,
) -> Status
where
    F: FnMut(Event<'_>, &mut Vec<u8>),
{
    let mut status = Status::Open;
    with_input(slot, data, |slot, buf| {
        let (used, st) = frames(slot, cfg, buf, out, &mut on);
        status = st;
        used
    });
    if let Some(s) = slot.as_mut() {
        match status {
            Status::Open => s.update_input_deadline(cfg, now),
            // The too-big frame is still at the head of the input: draining starts there.
            Status::Failed(Violation::TooBig) => s.forget_message(),
            _ => s.drop_input(),
        }
    }
    status
}

/// The peer broke the protocol: everything is consumed (the close machine queues our frame).
fn fail(v: Violation, len: usize) -> (usize, Status) {
    (len, Status::Failed(v))
}

/// Like [`fail`] for a frame whose header was read: the `rest` of it still to arrive is to be
/// skipped while discarding.
fn fail_frame(
    slot: &mut Option<Box<Session>>,
    v: Violation,
    len: usize,
    rest: u64,
) -> (usize, Status) {
    if rest > 0 {
        slot.get_or_insert_with(Box::default).skip = rest;
    }
    fail(v, len)
}

/// Handles the frames at the start of `buf`; returns the bytes consumed and the status.
fn frames<F>(
    slot: &mut Option<Box<Session>>,
    cfg: &Config,
    buf: &mut [u8],
    out: &mut Vec<u8>,
    on: &mut F,
) -> (usize, Status)
where
    F: FnMut(Event<'_>, &mut Vec<u8>),
{
    let mut pos = 0;
    while pos < buf.len() {
        let h = match frame::decode(&buf[pos..]) {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(v) => return fail(v, buf.len()),
        };
        let legal = match cfg.role {
            Role::Server => frame::check_client_frame(&h),
            Role::Client => frame::check_server_frame(&h),
        };
        let rest = (h.header_len as u64)
            .saturating_add(h.payload_len)
            .saturating_sub((buf.len() - pos) as u64);
        if let Err(v) = legal {
            return fail_frame(slot, v, buf.len(), rest);
        }
        let in_msg = slot.as_ref().and_then(|c| c.msg);
        let so_far = slot.as_ref().map_or(0, |c| c.msg_len);
        match h.opcode() {
            OpCode::Data(Data::Continue) if in_msg.is_none() => {
                let v = Violation::UnexpectedContinuation;
                return fail_frame(slot, v, buf.len(), rest);
            }
            OpCode::Data(Data::Text | Data::Binary) if in_msg.is_some() => {
                let v = Violation::ExpectedContinuation;
                return fail_frame(slot, v, buf.len(), rest);
            }
            _ => {}
        }
        if !h.is_control() && so_far.saturating_add(h.payload_len) > cfg.max_message {
            // Not consumed: the frame stays at the head of the input, where draining the rest
            // of the message starts (the stream is still in sync).
            return (pos, Status::Failed(Violation::TooBig));
        }
        // Bounded: control payloads <= 125, data payloads <= max_message (a usize).
        let total = h.header_len + h.payload_len as usize;
        let avail = buf.len() - pos;
        let is_text = h.opcode() == frame::TEXT
            || (h.opcode() == frame::CONTINUE && in_msg == Some(frame::TEXT));
        if avail < total {
            if is_text {
                if let Err(v) = validate_partial(slot, &h, &mut buf[pos..]) {
                    return fail_frame(slot, v, buf.len(), rest);
                }
            }
            break;
        }
        let done = slot
            .as_mut()
            .map_or(0, |c| std::mem::take(&mut c.frame_done));
        let start = pos + h.header_len;
        if let Some(m) = h.header.mask {
            apply_mask(&mut buf[start + done..pos + total], m, done);
        }
        let payload = &buf[start..pos + total];
        pos += total;
        match on_frame(slot, cfg, &h, payload, done, is_text, out, on) {
            Ok(Status::Open) => {}
            Ok(st) => return (buf.len(), st),
            Err(v) => return fail(v, buf.len()),
        }
    }
    (pos, Status::Open)
}

/// A partial text frame at the start of `buf`: unmask and validate what is here, so invalid
/// UTF-8 fails at once instead of when the (possibly huge) frame completes.
fn validate_partial(
    slot: &mut Option<Box<Session>>,
    h: &Header,
    buf: &mut [u8],
) -> Result<(), Violation> {
    let got = buf.len() - h.header_len;
    let c = slot.get_or_insert_with(Box::default);
    if c.frame_done == 0 && h.opcode() == frame::TEXT {
        c.utf8 = Utf8Validator::new();
    }
    if got > c.frame_done {
        let part = &mut buf[h.header_len + c.frame_done..h.header_len + got];
        if let Some(m) = h.header.mask {
            apply_mask(part, m, c.frame_done);
        }
        c.utf8.feed(part).map_err(|_| Violation::InvalidUtf8)?;
        c.frame_done = got;
    }
    Ok(())
}

/// A complete frame with its unmasked payload; `validated` bytes of a text payload were already
/// fed to the validator while the frame was partial.
#[allow(clippy::too_many_arguments)]
fn on_frame<F>(
    slot: &mut Option<Box<Session>>,
    cfg: &Config,
    h: &Header,
    payload: &[u8],
    validated: usize,
    is_text: bool,
    out: &mut Vec<u8>,
    on: &mut F,
) -> Result<Status, Violation>
where
    F: FnMut(Event<'_>, &mut Vec<u8>),
{
    let d = match h.opcode() {
        OpCode::Control(Control::Ping) => {
            write_frame(cfg.role, out, frame::PONG, payload);
            on(Event::Ping(payload), out);
            return Ok(Status::Open);
        }
        OpCode::Control(Control::Pong) => {
            on(Event::Pong, out);
            return Ok(Status::Open);
        }
        OpCode::Control(Control::Close) => {
            return Ok(Status::PeerClosed(close::parse_payload(payload)?));
        }
        OpCode::Control(Control::Reserved(_)) => return Err(Violation::ReservedOpcode),
        OpCode::Data(d) => d,
    };
    let fin = h.header.is_final;
    let single = fin && d != Data::Continue;
    if is_text {
        if single && validated == 0 {
            if !utf8::is_valid(payload) {
                return Err(Violation::InvalidUtf8);
            }
        } else {
            let c = slot.get_or_insert_with(Box::default);
            if d == Data::Text && validated == 0 {
                c.utf8 = Utf8Validator::new();
            }
            c.utf8
                .feed(&payload[validated..])
                .map_err(|_| Violation::InvalidUtf8)?;
            if fin && !c.utf8.is_complete() {
                return Err(Violation::InvalidUtf8);
            }
        }
    }
    if single {
        let ev = Event::Message {
            opcode: h.opcode(),
            data: payload,
            len: payload.len() as u64,
        };
        on(ev, out);
        return Ok(Status::Open);
    }
    let c = slot.get_or_insert_with(Box::default);
    if d != Data::Continue {
        c.msg = Some(h.opcode());
        c.msg_len = 0;
    }
    c.msg_len += payload.len() as u64;
    if cfg.keep_payload {
        grow(&mut c.msg_data, payload.len());
        c.msg_data.extend_from_slice(payload);
    }
    if fin {
        let opcode = c.msg.take().unwrap_or(frame::BINARY);
        let data = std::mem::take(&mut c.msg_data);
        let len = std::mem::take(&mut c.msg_len);
        on(
            Event::Message {
                opcode,
                data: &data,
                len,
            },
            out,
        );
    }
    Ok(Status::Open)
}

#[cfg(test)]
mod tests;
