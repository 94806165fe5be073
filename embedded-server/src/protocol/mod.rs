//! RFC 6455 pieces shared by the server and the load generator: frame headers (tungstenite's
//! `FrameHeader`), masking and incremental UTF-8 validation (ours: tungstenite keeps them
//! private), close codes, and the HTTP upgrade handshake on both sides.

pub mod close;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod oracles;
pub mod session;
pub mod utf8;

pub use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
pub use tungstenite::protocol::frame::FrameHeader;

/// A protocol violation by the peer, and the close code it earns (RFC 6455 section 7.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// A client frame without a mask (section 5.1: the server must close).
    Unmasked,
    /// A server frame with a mask (the client side's check).
    Masked,
    /// RSV1-3 set while no extension was negotiated.
    ReservedBits,
    /// Opcode 3-7 or 11-15.
    ReservedOpcode,
    /// A control frame with more than 125 bytes of payload.
    ControlTooLong,
    /// A control frame without FIN.
    FragmentedControl,
    /// A continuation frame with no message started.
    UnexpectedContinuation,
    /// A new text/binary frame while a fragmented message is still open.
    ExpectedContinuation,
    /// A 64-bit length with its most significant bit set.
    BadLength,
    /// A close frame with a one-byte payload.
    CloseTooShort,
    /// A close code that must not appear on the wire (1004-1006, 1015, <1000, 1016-2999, >=5000).
    BadCloseCode,
    /// Text (or a close reason) that is not UTF-8.
    InvalidUtf8,
    /// A message larger than the configured limit.
    TooBig,
}

impl Violation {
    /// The close code to send for this violation.
    pub fn close_code(self) -> u16 {
        match self {
            Violation::InvalidUtf8 => close::INVALID_PAYLOAD,
            Violation::TooBig => close::TOO_BIG,
            _ => close::PROTOCOL_ERROR,
        }
    }

    /// Short label used in metrics (`reason="..."`) and logs.
    pub fn label(self) -> &'static str {
        match self {
            Violation::Unmasked => "unmasked_frame",
            Violation::Masked => "masked_frame",
            Violation::ReservedBits => "reserved_bits",
            Violation::ReservedOpcode => "reserved_opcode",
            Violation::ControlTooLong => "control_too_long",
            Violation::FragmentedControl => "fragmented_control",
            Violation::UnexpectedContinuation => "unexpected_continuation",
            Violation::ExpectedContinuation => "expected_continuation",
            Violation::BadLength => "bad_length",
            Violation::CloseTooShort => "close_too_short",
            Violation::BadCloseCode => "bad_close_code",
            Violation::InvalidUtf8 => "invalid_utf8",
            Violation::TooBig => "too_big",
        }
    }
}
