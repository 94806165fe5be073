//! Session tests with byte vectors (the way tungstenite tests its frame codec): every input is
//! also fed split at every position, and must give the same events and output.

use super::*;

fn server() -> Config {
    Config {
        role: Role::Server,
        max_message: 1 << 20,
        keep_payload: true,
        frame_timeout_ms: 1000,
        write_timeout_ms: 2000,
    }
}

/// A masked client frame.
fn cf(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut h = [0u8; frame::MAX_HEADER_LEN];
    let op = OpCode::from(b0 & 0x0f);
    let n = frame::encode(&mut h, b0 & 0x80 != 0, op, Some(mask), payload.len() as u64);
    let mut v = h[..n].to_vec();
    let start = v.len();
    v.extend_from_slice(payload);
    apply_mask(&mut v[start..], mask, 0);
    v
}

/// Owned form of an event, for comparing runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Msg(OpCode, Vec<u8>, u64),
    Ping(Vec<u8>),
    Pong,
}

struct Run {
    events: Vec<Ev>,
    out: Vec<u8>,
    status: Status,
    phase: Phase,
    slot: Option<Box<Session>>,
}

/// Feeds `input` in pieces cut at `cuts` through the close machine, collecting events; the
/// status is the first that is not `Open`.
fn run(cfg: &Config, input: &[u8], cuts: &[usize]) -> Run {
    let mut slot = None;
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut status = Status::Open;
    let mut phase = Phase::Open;
    let mut last = 0;
    for &c in cuts.iter().chain(std::iter::once(&input.len())) {
        let mut piece = input[last..c].to_vec();
        last = c;
        let st = feed(
            &mut phase,
            &mut slot,
            cfg,
            10,
            &mut piece,
            &mut out,
            |e, _| {
                events.push(match e {
                    Event::Message { opcode, data, len } => Ev::Msg(opcode, data.to_vec(), len),
                    Event::Ping(p) => Ev::Ping(p.to_vec()),
                    Event::Pong => Ev::Pong,
                })
            },
        );
        if status == Status::Open {
            status = st;
        }
    }
    Run {
        events,
        out,
        status,
        phase,
        slot,
    }
}

/// Runs `input` whole and split at every single position and pair of positions (for short
/// inputs), and checks all runs agree; returns the whole run.
fn agree(cfg: &Config, input: &[u8]) -> Run {
    let whole = run(cfg, input, &[]);
    let n = input.len();
    for a in 0..=n {
        let r = run(cfg, input, &[a]);
        assert_eq!(r.events, whole.events, "split at {a}");
        assert_eq!(r.status, whole.status, "split at {a}");
        assert_eq!(r.phase, whole.phase, "split at {a}");
        if cfg.role == Role::Server {
            assert_eq!(r.out, whole.out, "split at {a}"); // clients mask at random
        }
    }
    if n <= 64 {
        for a in 0..=n {
            for b in a..=n {
                let r = run(cfg, input, &[a, b]);
                assert_eq!(r.events, whole.events, "split at {a},{b}");
                assert_eq!(r.status, whole.status, "split at {a},{b}");
            }
        }
    }
    whole
}

#[test]
fn rfc_masked_hello_is_one_text_message_and_no_heap() {
    // RFC 6455 5.7.
    let mut input = vec![
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let r = agree(&server(), &input);
    assert_eq!(r.events, vec![Ev::Msg(frame::TEXT, b"Hello".to_vec(), 5)]);
    assert_eq!(r.status, Status::Open);
    // Whole frames in one read leave no session behind.
    let mut slot = None;
    let st = receive(
        &mut slot,
        &server(),
        1,
        &mut input,
        &mut Vec::new(),
        |_, _| {},
    );
    assert_eq!(st, Status::Open);
    assert!(slot.is_none());
}

#[test]
fn fragments_assemble_and_controls_interleave() {
    let mut input = cf(0x01, b"Hel");
    input.extend(cf(0x89, b"p")); // ping between fragments
    input.extend(cf(0x80, b"lo"));
    input.extend(cf(0x8a, b"")); // pong
    let r = agree(&server(), &input);
    assert_eq!(
        r.events,
        vec![
            Ev::Ping(b"p".to_vec()),
            Ev::Msg(frame::TEXT, b"Hello".to_vec(), 5),
            Ev::Pong
        ]
    );
    assert_eq!(r.out, [0x8a, 0x01, b'p']); // the pong, unmasked
    assert!(r.slot.is_none_or(|s| s.is_idle()));
}

#[test]
fn count_mode_keeps_no_payload_of_fragments() {
    let cfg = Config {
        keep_payload: false,
        ..server()
    };
    let mut input = cf(0x02, &[1; 100]);
    input.extend(cf(0x80, &[2; 50]));
    let r = agree(&cfg, &input);
    assert_eq!(r.events, vec![Ev::Msg(frame::BINARY, vec![], 150)]);
}

#[test]
fn close_frames() {
    let mut input = cf(0x88, &[0x03, 0xe8, b'o', b'k']);
    input.extend(cf(0x81, b"after close: ignored"));
    let r = agree(&server(), &input);
    assert_eq!(r.status, Status::PeerClosed(Some(1000)));
    assert!(r.events.is_empty());
    let r = agree(&server(), &cf(0x88, &[]));
    assert_eq!(r.status, Status::PeerClosed(None));
    let r = agree(&server(), &cf(0x88, &[0x03]));
    assert_eq!(r.status, Status::Failed(Violation::CloseTooShort));
    assert_eq!(r.out, [0x88, 0x02, 0x03, 0xea]); // 1002
}

#[test]
fn violations_queue_their_close_code() {
    let cases: Vec<(Vec<u8>, Violation, u16)> = vec![
        (vec![0x81, 0x00], Violation::Unmasked, 1002),
        (cf(0x80, b"x"), Violation::UnexpectedContinuation, 1002),
        (
            [cf(0x01, b"a"), cf(0x81, b"b")].concat(),
            Violation::ExpectedContinuation,
            1002,
        ),
        (cf(0x81, &[0xff]), Violation::InvalidUtf8, 1007),
        (cf(0x83, b""), Violation::ReservedOpcode, 1002),
        (
            cf(0x81, b"")
                .into_iter()
                .enumerate()
                .map(|(i, b)| if i == 0 { b | 0x40 } else { b })
                .collect(),
            Violation::ReservedBits,
            1002,
        ),
        (cf(0x09, b""), Violation::FragmentedControl, 1002),
    ];
    for (input, v, code) in cases {
        let r = agree(&server(), &input);
        assert_eq!(r.status, Status::Failed(v), "{v:?}");
        assert_eq!(&r.out[r.out.len() - 2..], code.to_be_bytes(), "{v:?}");
        assert!(r.slot.is_none_or(|s| !s.has_partial_input()), "{v:?}");
    }
}

#[test]
fn too_big_is_refused_from_its_header_and_across_fragments() {
    let cfg = Config {
        max_message: 10,
        ..server()
    };
    // The header alone announces 11 bytes: 1009 before any payload arrives.
    let r = run(&cfg, &cf(0x82, &[0; 11])[..8], &[]);
    assert_eq!(r.status, Status::Failed(Violation::TooBig));
    let r = agree(&cfg, &[cf(0x02, &[0; 6]), cf(0x80, &[0; 5])].concat());
    assert_eq!(r.status, Status::Failed(Violation::TooBig));
    assert_eq!(&r.out[r.out.len() - 2..], 1009u16.to_be_bytes());
}

#[test]
fn invalid_utf8_fails_before_the_frame_completes() {
    let mut bad = vec![b'a'; 1000];
    bad[10] = 0xff;
    let f = cf(0x81, &bad);
    let r = run(&server(), &f[..100], &[]);
    assert_eq!(r.status, Status::Failed(Violation::InvalidUtf8));
}

#[test]
fn a_partial_frame_gets_a_deadline_from_its_first_byte() {
    let cfg = server();
    let f = cf(0x82, &[7; 300]);
    let mut slot = None;
    let mut out = Vec::new();
    let st = receive(
        &mut slot,
        &cfg,
        100,
        &mut f[..50].to_vec(),
        &mut out,
        |_, _| {},
    );
    assert_eq!(st, Status::Open);
    let s = slot.as_ref().unwrap();
    assert_eq!(s.next_wake(), Some(1100));
    assert_eq!(s.expired(1099), None);
    // More bytes do not push the deadline back: a dripping peer still has to finish in time.
    receive(
        &mut slot,
        &cfg,
        900,
        &mut f[50..299].to_vec(),
        &mut out,
        |_, _| {},
    );
    assert_eq!(slot.as_ref().unwrap().expired(1100), Some(Timeout::Frame));
    // The last byte completes it: no deadline, nothing held.
    let mut got = 0;
    receive(
        &mut slot,
        &cfg,
        1000,
        &mut f[299..].to_vec(),
        &mut out,
        |_, _| got += 1,
    );
    assert_eq!(got, 1);
    assert!(slot.as_ref().unwrap().is_idle());
    assert_eq!(slot.as_ref().unwrap().next_wake(), None);
}

#[test]
fn a_fragmented_message_must_complete_by_its_deadline() {
    let cfg = server();
    let mut slot = None;
    let mut out = Vec::new();
    receive(
        &mut slot,
        &cfg,
        5,
        &mut cf(0x02, b"ab"),
        &mut out,
        |_, _| {},
    );
    receive(
        &mut slot,
        &cfg,
        500,
        &mut cf(0x00, b"cd"),
        &mut out,
        |_, _| {},
    );
    assert_eq!(slot.as_ref().unwrap().expired(1005), Some(Timeout::Frame));
}

#[test]
fn output_drops_what_was_sent_and_stays_bounded_for_a_dripping_reader() {
    let cfg = server();
    let mut slot = None;
    let chunk = vec![1u8; 64 * 1024];
    queue_unsent(&mut slot, &cfg, 0, &chunk);
    assert_eq!(slot.as_ref().unwrap().next_wake(), Some(2000));
    // The peer reads a little less than what is echoed to it, for a long time.
    for t in 1..2000u64 {
        let s = slot.as_mut().unwrap();
        let n = s.pending_out().min(60 * 1024);
        s.advance(n, &cfg, t);
        queue_unsent(&mut slot, &cfg, t, &chunk);
        let s = slot.as_ref().unwrap();
        assert!(
            s.footprint() <= 4 * s.pending_out() + 2 * chunk.len() + 4096,
            "at {t}: footprint {} for {} pending",
            s.footprint(),
            s.pending_out()
        );
    }
    // Progress keeps the write deadline moving; none for a while and it passes.
    let s = slot.as_mut().unwrap();
    s.advance(1, &cfg, 5000);
    assert_eq!(s.expired(6999), None);
    assert_eq!(s.expired(7000), Some(Timeout::Write));
    let n = s.pending_out();
    s.advance(n, &cfg, 7001);
    assert!(s.is_idle());
    assert_eq!(s.footprint(), std::mem::size_of::<Session>());
}

#[test]
fn lingering_skips_payloads_until_the_close_frame_and_answers_nothing() {
    let cfg = server();
    let big = cf(0x82, &vec![0u8; 100_000]);
    let mut input = big[..60_000].to_vec();
    let rest = [
        big[60_000..].to_vec(),
        cf(0x81, b"x"),
        cf(0x89, b"no pong now"),
        cf(0x88, &[0x03, 0xe8]),
    ]
    .concat();
    let mut slot = None;
    let mut out = Vec::new();
    let mut phase = Phase::Lingering;
    let mut feed_now = |phase: &mut Phase, slot: &mut _, piece: &mut [u8]| {
        feed(phase, slot, &cfg, 0, piece, &mut out, |_, _| {
            panic!("an event")
        })
    };
    assert_eq!(feed_now(&mut phase, &mut slot, &mut input), Status::Open);
    assert!(slot.as_ref().unwrap().footprint() < 1024);
    for piece in rest.chunks(7) {
        let st = feed_now(&mut phase, &mut slot, &mut piece.to_vec());
        if st != Status::Open {
            assert_eq!(st, Status::PeerClosed(Some(1000)));
            assert_eq!(phase, Phase::Done);
            assert!(out.is_empty(), "lingering answered {out:?}");
            return;
        }
        assert!(slot.as_ref().map_or(0, |s| s.footprint()) < 1024);
    }
    panic!("no close frame seen");
}

#[test]
fn client_role_reads_plain_frames_and_masks_what_it_sends() {
    let cfg = Config {
        role: Role::Client,
        ..server()
    };
    let input = [vec![0x81, 0x02, b'h', b'i'], vec![0x89, 0x00]].concat();
    let r = agree(&cfg, &input);
    assert_eq!(
        r.events,
        vec![Ev::Msg(frame::TEXT, b"hi".to_vec(), 2), Ev::Ping(vec![])]
    );
    assert_eq!(&r.out[..2], [0x8a, 0x80]); // masked pong
    let r = run(&cfg, &cf(0x81, b"masked"), &[]);
    assert_eq!(r.status, Status::Failed(Violation::Masked));
}

#[test]
fn write_frame_round_trips_through_the_decoder() {
    for len in [0usize, 1, 125, 126, 65535, 65536] {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut out = Vec::new();
        write_frame(Role::Client, &mut out, frame::BINARY, &payload);
        let r = run(&server(), &out, &[]);
        assert_eq!(r.events, vec![Ev::Msg(frame::BINARY, payload, len as u64)]);
    }
}

#[test]
fn after_too_big_the_rest_of_the_frame_is_skipped_not_parsed() {
    let cfg = Config {
        max_message: 1000,
        ..server()
    };
    let f = cf(0x82, &vec![0x88; 5000]); // payload bytes that look like close headers
    let mut slot = None;
    let mut out = Vec::new();
    let mut phase = Phase::Open;
    let st = feed(
        &mut phase,
        &mut slot,
        &cfg,
        0,
        &mut f[..100].to_vec(),
        &mut out,
        |_, _| {},
    );
    assert_eq!(st, Status::Failed(Violation::TooBig));
    assert_eq!(phase, Phase::Draining);
    assert!(out.is_empty(), "1009 before the message passed");
    let mut rest = [f[100..].to_vec(), cf(0x88, &[0x03, 0xf1])].concat();
    let st = feed(
        &mut phase,
        &mut slot,
        &cfg,
        0,
        &mut rest,
        &mut out,
        |_, _| {},
    );
    assert_eq!(st, Status::PeerClosed(Some(1009)));
    // Our 1009 went out when the message ended; the peer's close came after it.
    assert_eq!(out, [0x88, 0x02, 0x03, 0xf1]);
    assert_eq!(phase, Phase::Answering);
    sent(&mut phase);
    assert_eq!(phase, Phase::Done);
}

/// What a browser does with a message over the limit (Chromium 156 sends 131,000-byte
/// fragments): the rest of the message is read and dropped, the 1009 goes out after its last
/// fragment, the peer's close completes the handshake, and nothing of the payload is kept.
#[test]
fn a_too_big_fragmented_message_is_drained_to_its_end_before_the_1009() {
    let cfg = Config {
        max_message: 1000,
        ..server()
    };
    let mut input = cf(0x02, &[1; 300]);
    for _ in 0..5 {
        input.extend(cf(0x00, &[2; 300]));
    }
    input.extend(cf(0x80, &[3; 300]));
    let message_end = input.len();
    input.extend(cf(0x89, b"late ping"));
    input.extend(cf(0x88, &[0x03, 0xf1]));
    let r = agree(&cfg, &input);
    assert_eq!(r.status, Status::Failed(Violation::TooBig));
    assert_eq!(r.out, [0x88, 0x02, 0x03, 0xf1]); // the 1009, and no pong
    assert_eq!(r.phase, Phase::Answering);
    assert!(r.events.is_empty());
    // Up to the last fragment: draining, nothing queued, nothing held.
    let r = run(&cfg, &input[..message_end - 1], &[500, 1300]);
    assert_eq!(r.phase, Phase::Draining);
    assert!(r.out.is_empty());
    assert!(r.slot.as_ref().map_or(0, |s| s.footprint()) < 1024);
    // Its last byte: the 1009 is queued.
    let r = run(&cfg, &input[..message_end], &[]);
    assert_eq!(r.phase, Phase::Closing);
    assert_eq!(r.out, [0x88, 0x02, 0x03, 0xf1]);
}

#[test]
fn a_peer_that_never_ends_its_message_gets_the_1009_at_the_deadline() {
    let cfg = Config {
        max_message: 10,
        ..server()
    };
    let mut r = run(&cfg, &cf(0x02, &[0; 50]), &[]);
    assert_eq!(r.phase, Phase::Draining);
    assert!(!expire(&mut r.phase, &mut r.slot, &cfg, &mut r.out));
    assert_eq!(r.phase, Phase::Closing);
    assert_eq!(r.out, [0x88, 0x02, 0x03, 0xf1]);
    sent(&mut r.phase);
    assert_eq!(r.phase, Phase::Lingering);
    assert!(expire(&mut r.phase, &mut r.slot, &cfg, &mut r.out));
    assert_eq!(r.phase, Phase::Done);
}

#[test]
fn the_peers_close_is_answered_with_its_code_and_nothing_after_it() {
    let input = [
        cf(0x88, &[0x03, 0xe9]),
        cf(0x89, b"ignored"),
        cf(0x81, b"ignored"),
    ]
    .concat();
    let r = agree(&server(), &input);
    assert_eq!(r.status, Status::PeerClosed(Some(1001)));
    assert_eq!(r.out, [0x88, 0x02, 0x03, 0xe9]);
    assert_eq!(r.phase, Phase::Answering);
    // No code: an empty close frame back.
    let r = agree(&server(), &cf(0x88, b""));
    assert_eq!(r.out, [0x88, 0x00]);
}

#[test]
fn initiating_drops_a_partial_frame_and_skips_its_rest() {
    let cfg = server();
    let f = cf(0x82, &vec![0x88; 50_000]); // payload that looks like close headers
    let mut r = run(&cfg, &f[..40_000], &[]);
    assert_eq!(r.phase, Phase::Open);
    initiate(&mut r.phase, &mut r.slot, &cfg, close::POLICY, &mut r.out);
    assert_eq!(r.out, [0x88, 0x02, 0x03, 0xf0]);
    assert_eq!(r.phase, Phase::Closing);
    assert!(r.slot.as_ref().unwrap().footprint() < 1024);
    // Initiating again does nothing.
    initiate(&mut r.phase, &mut r.slot, &cfg, close::NORMAL, &mut r.out);
    assert_eq!(r.out.len(), 4);
    sent(&mut r.phase);
    let mut rest = [f[40_000..].to_vec(), cf(0x88, b"")].concat();
    let st = feed(
        &mut r.phase,
        &mut r.slot,
        &cfg,
        0,
        &mut rest,
        &mut r.out,
        |_, _| {},
    );
    assert_eq!(st, Status::PeerClosed(None));
    assert_eq!(r.phase, Phase::Done);
}

#[test]
fn a_partial_frame_is_held_in_steps_not_doubled() {
    let cfg = server();
    let f = cf(0x82, &vec![9; 1 << 20]);
    let mut slot = None;
    let mut out = Vec::new();
    let mut phase = Phase::Open;
    let mut fed = 0;
    for piece in f[..f.len() - 1].chunks(16 * 1024 + 3) {
        feed(
            &mut phase,
            &mut slot,
            &cfg,
            0,
            &mut piece.to_vec(),
            &mut out,
            |_, _| {},
        );
        fed += piece.len();
        let held = slot.as_ref().unwrap().footprint();
        assert!(
            held <= fed + GROW_STEP + std::mem::size_of::<Session>(),
            "{held} B held for {fed} B of a partial frame"
        );
    }
}
