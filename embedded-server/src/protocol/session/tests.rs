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
    slot: Option<Box<Session>>,
}

/// Feeds `input` in pieces cut at `cuts`, echoing messages like the server does.
fn run(cfg: &Config, input: &[u8], cuts: &[usize]) -> Run {
    let mut slot = None;
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut status = Status::Open;
    let mut last = 0;
    for &c in cuts.iter().chain(std::iter::once(&input.len())) {
        if status != Status::Open {
            break;
        }
        let mut piece = input[last..c].to_vec();
        last = c;
        status = receive(&mut slot, cfg, 10, &mut piece, &mut out, |e, _| {
            events.push(match e {
                Event::Message { opcode, data, len } => Ev::Msg(opcode, data.to_vec(), len),
                Event::Ping(p) => Ev::Ping(p.to_vec()),
                Event::Pong => Ev::Pong,
            })
        });
    }
    Run {
        events,
        out,
        status,
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
fn discard_skips_payloads_until_the_close_frame() {
    let big = cf(0x82, &vec![0u8; 100_000]);
    let mut input = big[..60_000].to_vec();
    let rest = [
        big[60_000..].to_vec(),
        cf(0x81, b"x"),
        cf(0x88, &[0x03, 0xe8]),
    ]
    .concat();
    let mut slot = None;
    assert_eq!(discard(&mut slot, &mut input), Status::Open);
    assert!(slot.as_ref().unwrap().footprint() < 1024);
    for piece in rest.chunks(7) {
        let st = discard(&mut slot, &mut piece.to_vec());
        if st != Status::Open {
            assert_eq!(st, Status::PeerClosed(Some(1000)));
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
    let st = receive(
        &mut slot,
        &cfg,
        0,
        &mut f[..100].to_vec(),
        &mut out,
        |_, _| {},
    );
    assert_eq!(st, Status::Failed(Violation::TooBig));
    let mut rest = [f[100..].to_vec(), cf(0x88, &[0x03, 0xf1])].concat();
    assert_eq!(
        discard(&mut slot, &mut rest),
        Status::PeerClosed(Some(1009))
    );
}
