//! The close handshake (RFC 6455 section 7), one state machine for the server and the client:
//! initiate (our close frame first), answer (the peer's first), linger (ours sent, theirs
//! awaited while what the peer still sends is parsed and dropped), and drain (a message that
//! broke the size limit is read to its end and dropped before our 1009 goes out). No I/O: the
//! owner feeds bytes, writes what is queued, says when it was sent, and closes the socket at
//! [`Phase::Done`].
//!
//! Why drain before the 1009: a browser reports `wasClean=false` when its own message was not
//! sent whole (Chromium: the close arrives while the rest of the message is still buffered on
//! its side, and `bufferedAmount` never drains). Reading the rest of the too-big message first
//! lets the peer finish sending it; then the close handshake completes cleanly. Draining keeps
//! no payload (only a count of bytes to skip and at most a frame header), so it costs nothing
//! against the memory budget, and the owner bounds it in time with [`expire`].

use super::{close, frame, with_input, write_frame, Config, Session, Status, MAX_CLOSING_INPUT};
use crate::protocol::mask::apply_mask;
use crate::protocol::Violation;

/// Where a websocket's close handshake stands. One byte: the owner keeps it in its
/// per-connection slot (the session box exists only while something is in flight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Not closing: frames are messages.
    #[default]
    Open,
    /// The message being received is too big (or over the memory budget): its frames are
    /// parsed and dropped until its final frame; then our 1009 is queued (Closing).
    Draining,
    /// Our close frame is queued: once it is sent, Lingering.
    Closing,
    /// Our close frame is sent: what the peer sends is parsed and dropped until its close
    /// frame (Done).
    Lingering,
    /// Both close frames are known (the peer's came, ours is queued): once ours is sent, Done.
    Answering,
    /// The handshake is over, or the peer broke it while closing: close the socket.
    Done,
}

impl Phase {
    /// Still a websocket that carries messages.
    pub fn is_open(self) -> bool {
        self == Phase::Open
    }
}

/// Feeds received bytes in any phase; returns what the input did (`Open`: nothing that ends
/// the connection). Open: frames become events through `on` (see [`super::receive`]); the
/// peer's close frame is answered (Answering); a violation queues our close frame with its
/// code (Closing), except a too-big message, which is drained first. Draining, Closing,
/// Lingering: input is parsed and dropped, nothing is kept and nothing more is answered, until
/// the peer's close frame. Answering, Done: input is ignored.
pub fn feed<F>(
    phase: &mut Phase,
    slot: &mut Option<Box<Session>>,
    cfg: &Config,
    now: u64,
    data: &mut [u8],
    out: &mut Vec<u8>,
    on: F,
) -> Status
where
    F: FnMut(super::Event<'_>, &mut Vec<u8>),
{
    match *phase {
        Phase::Open => {
            let st = super::receive(slot, cfg, now, data, out, on);
            match st {
                Status::Open => {}
                Status::PeerClosed(code) => answer(phase, slot, cfg, code, out),
                Status::Failed(Violation::TooBig) => {
                    *phase = Phase::Draining;
                    // The too-big frame is at the head of the input: drain from there.
                    drain(phase, slot, cfg, &mut [], out);
                }
                // (A violation consumed all the input: initiating finds nothing more.)
                Status::Failed(v) => {
                    initiate(phase, slot, cfg, v.close_code(), out);
                }
            }
            st
        }
        Phase::Draining => drain(phase, slot, cfg, data, out),
        Phase::Closing | Phase::Lingering => {
            let found = discard(slot, data, false);
            closing_input(phase, slot, found)
        }
        Phase::Answering | Phase::Done => Status::Open,
    }
}

/// We close first (a violation, a timeout, the budget, shutdown, the client's own close): our
/// close frame with `code` is queued on `out`, the message in progress is dropped and what is
/// left of its frame will be skipped. No effect once closing. Returns what input already held
/// after a drained message showed (the peer's close frame, or garbage), else `Open`.
pub fn initiate(
    phase: &mut Phase,
    slot: &mut Option<Box<Session>>,
    cfg: &Config,
    code: u16,
    out: &mut Vec<u8>,
) -> Status {
    if !matches!(*phase, Phase::Open | Phase::Draining) {
        return Status::Open;
    }
    write_frame(cfg.role, out, frame::CLOSE, &close::payload(code));
    *phase = Phase::Closing;
    if let Some(s) = slot.as_mut() {
        s.forget_message();
        s.msg = None;
    }
    // A partial frame held in the input becomes a count of bytes to skip, and its buffer is
    // freed now rather than when the peer next sends. What follows a drained message may
    // already hold the peer's close frame.
    let found = discard(slot, &mut [], false);
    closing_input(phase, slot, found)
}

/// What discarding found while Closing or Lingering: the peer's close frame ends the handshake
/// once ours is out (Answering while ours is still queued); garbage ends it now.
fn closing_input(phase: &mut Phase, slot: &mut Option<Box<Session>>, found: Discarded) -> Status {
    let Discarded::Closed(st) = found else {
        return Status::Open;
    };
    *phase = match (*phase, st) {
        (Phase::Closing, Status::PeerClosed(_)) => Phase::Answering,
        _ => Phase::Done,
    };
    forget(slot);
    st
}

/// A message in progress broke a limit the owner keeps (the memory budget): like a too-big
/// message, it is drained to its end before our 1009 goes out; with no message in progress the
/// 1009 goes out at once.
pub fn refuse_message(
    phase: &mut Phase,
    slot: &mut Option<Box<Session>>,
    cfg: &Config,
    out: &mut Vec<u8>,
) {
    if !phase.is_open() {
        return;
    }
    let Some(s) = slot.as_mut().filter(|s| s.has_partial_input()) else {
        initiate(phase, slot, cfg, close::TOO_BIG, out);
        return;
    };
    s.forget_message();
    *phase = Phase::Draining;
    drain(phase, slot, cfg, &mut [], out);
}

/// The owner wrote everything queued: our close frame is out. Closing lingers for the peer's
/// close frame; Answering is done.
pub fn sent(phase: &mut Phase) {
    *phase = match *phase {
        Phase::Closing => Phase::Lingering,
        Phase::Answering => Phase::Done,
        p => p,
    };
}

/// The owner's closing deadline passed. Draining gives up waiting for the message's end and
/// queues the 1009 (returns false: the owner waits for it to be sent and lingers again, with a
/// new deadline); any other closing phase is over (returns true: close the socket now). Open
/// connections have their own deadlines (idle, frame, write), which the owner handles.
pub fn expire(
    phase: &mut Phase,
    slot: &mut Option<Box<Session>>,
    cfg: &Config,
    out: &mut Vec<u8>,
) -> bool {
    match *phase {
        Phase::Open => false,
        Phase::Draining => {
            initiate(phase, slot, cfg, close::TOO_BIG, out);
            *phase == Phase::Done
        }
        _ => {
            *phase = Phase::Done;
            true
        }
    }
}

/// The peer's close frame came first (or while draining): our answer echoes its code (an
/// empty payload for none, RFC 6455 section 5.5.1), and input from now on is ignored.
fn answer(
    phase: &mut Phase,
    slot: &mut Option<Box<Session>>,
    cfg: &Config,
    code: Option<u16>,
    out: &mut Vec<u8>,
) {
    let payload = code.map(close::payload);
    write_frame(
        cfg.role,
        out,
        frame::CLOSE,
        payload.as_ref().map_or(&[], |p| p),
    );
    *phase = Phase::Answering;
    forget(slot);
}

/// Draining: drops input up to the end of the too-big message; then our 1009, and the rest of
/// the input is discarded as in Closing.
fn drain(
    phase: &mut Phase,
    slot: &mut Option<Box<Session>>,
    cfg: &Config,
    data: &mut [u8],
    out: &mut Vec<u8>,
) -> Status {
    match discard(slot, data, true) {
        Discarded::More => Status::Open,
        // The rest of the input stays in the session; initiate discards it.
        Discarded::MessageEnded => initiate(phase, slot, cfg, close::TOO_BIG, out),
        Discarded::Closed(Status::PeerClosed(code)) => {
            answer(phase, slot, cfg, code, out);
            Status::PeerClosed(code)
        }
        Discarded::Closed(st) => {
            *phase = Phase::Done;
            forget(slot);
            st
        }
    }
}

/// Input is no longer parsed: drop whatever is held for it.
fn forget(slot: &mut Option<Box<Session>>) {
    if let Some(s) = slot.as_mut() {
        s.inbuf = Vec::new();
        s.skip = 0;
        s.msg = None;
        s.forget_message();
    }
}

/// What discarding input found.
#[derive(Debug, PartialEq, Eq)]
enum Discarded {
    /// Nothing decisive; more input is expected.
    More,
    /// Draining: the final frame of the message passed; the input after it is kept in the
    /// session, unparsed.
    MessageEnded,
    /// The peer's close frame (`PeerClosed`), or input that cannot be frames (`Failed`).
    Closed(Status),
}

/// Parses what the peer sends without keeping any of it: payloads are skipped as they arrive
/// (`skip` counts what is left of the current frame), headers are read for their lengths,
/// until the peer's close frame. `drain`: also stop after the final data frame of the message
/// in progress (the session's `msg` says whether one is open).
fn discard(slot: &mut Option<Box<Session>>, data: &mut [u8], drain: bool) -> Discarded {
    let mut data: &mut [u8] = data;
    if let Some(s) = slot.as_mut() {
        if s.skip > 0 {
            let n = s.skip.min(data.len() as u64);
            s.skip -= n;
            data = &mut data[n as usize..];
            if s.skip > 0 {
                return Discarded::More;
            }
            if drain && s.msg.is_none() {
                // (While a frame is skipped, nothing else is held: `inbuf` is empty.)
                s.inbuf.extend_from_slice(data);
                return Discarded::MessageEnded;
            }
        }
    }
    let mut result = Discarded::More;
    with_input(slot, data, |slot, buf| {
        let mut pos = 0;
        while pos < buf.len() {
            let h = match frame::decode(&buf[pos..]) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(v) => {
                    result = Discarded::Closed(Status::Failed(v));
                    return buf.len();
                }
            };
            let avail = (buf.len() - pos - h.header_len) as u64;
            if h.opcode() == frame::CLOSE {
                if h.payload_len > frame::MAX_CONTROL_PAYLOAD {
                    result = Discarded::Closed(Status::Failed(Violation::ControlTooLong));
                    return buf.len();
                }
                if avail < h.payload_len {
                    break;
                }
                let p = &mut buf[pos + h.header_len..pos + h.header_len + h.payload_len as usize];
                if let Some(m) = h.header.mask {
                    apply_mask(p, m, 0);
                }
                result = Discarded::Closed(match close::parse_payload(p) {
                    Ok(code) => Status::PeerClosed(code),
                    Err(v) => Status::Failed(v),
                });
                return buf.len();
            }
            let s = slot.get_or_insert_with(Box::default);
            let data_frame = !h.is_control();
            if drain && data_frame {
                s.msg = (!h.header.is_final).then(|| h.opcode());
            }
            if avail < h.payload_len {
                s.skip = h.payload_len - avail;
                return buf.len();
            }
            pos += h.header_len + h.payload_len as usize;
            if drain && data_frame && s.msg.is_none() {
                result = Discarded::MessageEnded;
                return pos;
            }
        }
        pos
    });
    if result == Discarded::MessageEnded {
        return result;
    }
    if let Some(s) = slot.as_mut() {
        if s.inbuf.len() > MAX_CLOSING_INPUT {
            s.inbuf = Vec::new();
            result = Discarded::Closed(Status::Failed(Violation::ControlTooLong));
        } else if s.inbuf.capacity() > MAX_CLOSING_INPUT {
            // The joined read may have been large; what is kept is at most a header and a
            // close payload (found by fuzzing: 1,322 bytes held while discarding).
            s.inbuf.shrink_to(MAX_CLOSING_INPUT);
        }
    }
    result
}
