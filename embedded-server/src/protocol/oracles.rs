//! Fuzz oracles for the protocol parsers: each takes arbitrary bytes and panics if a property
//! fails. The cargo-fuzz targets in fuzz/ call them, and the tests at the end replay the
//! checked-in corpora and every crash found (fuzz/corpus/TARGET, fuzz/regressions/TARGET)
//! through them under plain `cargo test`.

use super::frame;
use super::handshake::{self, Parsed};
use super::session::{self, Config, Event, Phase, Role, Session, Status};
use super::utf8::{self, Utf8Validator};
use super::{OpCode, Violation};

/// The request-head limit the handshake oracle uses (the server's default).
const MAX_HEAD: usize = 8 * 1024;
/// The message limit the session oracle uses: small, so the fuzzer reaches it.
const MAX_MESSAGE: u64 = 4096;

/// Splits `data` into (cut points, stream): the first byte says how many cuts (0-7), the next
/// bytes where (scaled to the stream's length).
fn cuts(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let n = (n as usize % 8).min(rest.len());
    let (pos, stream) = rest.split_at(n);
    let mut cuts: Vec<usize> = pos
        .iter()
        .map(|&p| p as usize * stream.len() / 255)
        .collect();
    cuts.sort_unstable();
    (cuts, stream)
}

/// The handshake parsers never panic; a request head is decided by its own bytes, so a prefix
/// that is already decided (not Partial) is decided the same way as the whole input.
pub fn handshake(data: &[u8]) {
    let whole = handshake::parse_request(data, MAX_HEAD);
    if let Parsed::Upgrade { consumed, .. } | Parsed::Http { consumed, .. } = &whole {
        assert!(*consumed <= data.len());
    }
    let (cuts, _) = cuts(data);
    for c in cuts {
        let c = c.min(data.len());
        let part = handshake::parse_request(&data[..c], MAX_HEAD);
        if part != Parsed::Partial {
            assert_eq!(part, whole, "prefix of {c} bytes decided differently");
        }
    }
    let key = handshake::new_key();
    if let Ok(Some(n)) = handshake::parse_response(data, &key) {
        assert!(n <= data.len());
    }
}

/// Frame headers: a decoded header fits in what was given; encoding its fields again and
/// decoding that gives the same fields, in no more bytes (the encoder is minimal; the decoder
/// also accepts non-minimal lengths, as tungstenite does).
pub fn frame(data: &[u8]) {
    let Ok(Some(h)) = frame::decode(data) else {
        return;
    };
    assert!(h.header_len <= frame::MAX_HEADER_LEN && h.header_len <= data.len());
    let fh = &h.header;
    let mut out = [0u8; frame::MAX_HEADER_LEN];
    let n = frame::encode(&mut out, fh.is_final, fh.opcode, fh.mask, h.payload_len);
    assert!(
        n <= h.header_len,
        "re-encoded in {n} bytes, was {}",
        h.header_len
    );
    let again = frame::decode(&out[..n]).unwrap().unwrap();
    assert_eq!(again.header.is_final, fh.is_final);
    assert_eq!(again.header.opcode, fh.opcode);
    assert_eq!(again.header.mask, fh.mask);
    assert_eq!(again.payload_len, h.payload_len);
    assert_eq!(again.header_len, n);
    let _ = frame::check_client_frame(&h);
    let _ = frame::check_server_frame(&h);
}

/// The incremental validator, fed in pieces, agrees with `std::str::from_utf8` on the whole.
pub fn utf8(data: &[u8]) {
    let (cuts, s) = cuts(data);
    let mut v = Utf8Validator::new();
    let mut ok = true;
    let mut last = 0;
    for c in cuts.into_iter().chain(std::iter::once(s.len())) {
        if ok {
            ok = v.feed(&s[last..c]).is_ok();
        }
        last = c;
    }
    let ok = ok && v.is_complete();
    let std_ok = std::str::from_utf8(s).is_ok();
    assert_eq!(ok, std_ok, "validator says {ok}, std says {std_ok}");
    assert_eq!(utf8::is_valid(s), std_ok);
}

/// One run of a session over the stream cut at `cuts`: the events, the output, the status,
/// and the largest heap the session held.
type Run = (Vec<(OpCode, Vec<u8>, u64)>, Vec<u8>, Status, Phase, usize);

fn run_session(cfg: &Config, stream: &[u8], cuts: &[usize]) -> Run {
    let mut slot: Option<Box<Session>> = None;
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut status = Status::Open;
    let mut phase = Phase::Open;
    let mut peak = 0;
    let mut last = 0;
    for &c in cuts.iter().chain(std::iter::once(&stream.len())) {
        let mut piece = stream[last..c].to_vec();
        last = c;
        let was_open = phase.is_open();
        let st = session::feed(
            &mut phase,
            &mut slot,
            cfg,
            c as u64,
            &mut piece,
            &mut out,
            |e, _| match e {
                Event::Message { opcode, data, len } => events.push((opcode, data.to_vec(), len)),
                Event::Ping(p) => events.push((frame::PING, p.to_vec(), 0)),
                Event::Pong => events.push((frame::PONG, Vec::new(), 0)),
            },
        );
        if status == Status::Open {
            status = st;
        }
        if !was_open {
            // After a failure or close: what the peer still sends is skipped, never kept.
            let held = slot.as_ref().map_or(0, |s| s.footprint());
            assert!(
                held <= std::mem::size_of::<Session>() + 1024,
                "discarding held {held}"
            );
        }
        peak = peak.max(slot.as_ref().map_or(0, |s| s.footprint()));
    }
    (events, out, status, phase, peak)
}

/// The session: the same events, output and status however the input is split, and a bounded
/// heap (a partial frame, a partial message, each within the message limit).
pub fn session(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let cfg = Config {
        role: if mode & 1 == 0 {
            Role::Server
        } else {
            Role::Client
        },
        max_message: MAX_MESSAGE,
        keep_payload: mode & 2 == 0,
        frame_timeout_ms: 1000,
        write_timeout_ms: 1000,
    };
    let (cuts, stream) = cuts(rest);
    let whole = run_session(&cfg, stream, &[]);
    let split = run_session(&cfg, stream, &cuts);
    assert_eq!(whole.0, split.0, "events differ with cuts {cuts:?}");
    assert_eq!(whole.2, split.2, "status differs with cuts {cuts:?}");
    // After a protocol violation the rest of the stream is not frames; how much of it was read
    // with the violation depends on the cuts. Otherwise the stream stays in sync (a too-big
    // message is drained frame by frame) and the close handshake ends the same way.
    if matches!(
        whole.2,
        Status::Open | Status::PeerClosed(_) | Status::Failed(Violation::TooBig)
    ) {
        assert_eq!(whole.3, split.3, "close phase differs with cuts {cuts:?}");
    }
    if cfg.role == Role::Server {
        // (A client masks with a random key.)
        assert_eq!(whole.1, split.1, "output differs with cuts {cuts:?}");
    }
    let bound =
        std::mem::size_of::<Session>() + 3 * (MAX_MESSAGE as usize + frame::MAX_HEADER_LEN) + 4096;
    for (peak, what) in [(whole.4, "whole"), (split.4, "split")] {
        assert!(
            peak <= bound,
            "{what}: session held {peak} bytes (bound {bound})"
        );
    }
}

#[cfg(test)]
mod replay {
    use std::path::Path;

    fn replay(target: &str, oracle: fn(&[u8])) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut n = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for e in entries {
                let path = e.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let r = std::panic::catch_unwind(|| oracle(&data));
                assert!(r.is_ok(), "{} fails its oracle", path.display());
                n += 1;
            }
        }
        // The seeds are checked in: an empty replay means the files went missing.
        assert!(
            n > 0,
            "no inputs for fuzz target {target} under {}",
            root.display()
        );
    }

    #[test]
    fn handshake_corpus() {
        replay("handshake", super::handshake);
    }

    #[test]
    fn frame_corpus() {
        replay("frame", super::frame);
    }

    #[test]
    fn utf8_corpus() {
        replay("utf8", super::utf8);
    }

    #[test]
    fn session_corpus() {
        replay("session", super::session);
    }
}
