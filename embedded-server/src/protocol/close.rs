//! Close codes (RFC 6455 section 7.4) and close frame payloads.

use super::utf8;
use super::{CloseCode, Violation};

/// 1000: the purpose of the connection is fulfilled.
pub const NORMAL: u16 = 1000;
/// 1001: the server is going away (shutdown).
pub const GOING_AWAY: u16 = 1001;
/// 1002: protocol error.
pub const PROTOCOL_ERROR: u16 = 1002;
/// 1007: payload not consistent with the message type (invalid UTF-8 text).
pub const INVALID_PAYLOAD: u16 = 1007;
/// 1008: policy violation (e.g. a peer that never reads its replies).
pub const POLICY: u16 = 1008;
/// 1009: message too big.
pub const TOO_BIG: u16 = 1009;

/// Whether `code` may appear in a close frame on the wire: 1000-1003 and 1007-1014 (defined or
/// IANA-registered), 3000-4999 (libraries and applications). 1004-1006 and 1015 are reserved
/// for local use, the rest is unassigned.
pub fn is_valid_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
        && CloseCode::from(code) != CloseCode::Tls
}

/// Checks a received close payload: empty (no code), or a valid code and a UTF-8 reason.
/// Returns the code, if any.
pub fn parse_payload(payload: &[u8]) -> Result<Option<u16>, Violation> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(Violation::CloseTooShort),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !is_valid_code(code) {
                return Err(Violation::BadCloseCode);
            }
            if !utf8::is_valid(&payload[2..]) {
                return Err(Violation::InvalidUtf8);
            }
            Ok(Some(code))
        }
    }
}

/// The payload of a close frame with `code` (and no reason).
pub fn payload(code: u16) -> [u8; 2] {
    code.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_ranges() {
        for ok in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1014, 3000, 4999,
        ] {
            assert!(is_valid_code(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert!(!is_valid_code(bad), "{bad}");
        }
    }

    #[test]
    fn payloads() {
        assert_eq!(parse_payload(b""), Ok(None));
        assert_eq!(parse_payload(&[0x03]), Err(Violation::CloseTooShort));
        assert_eq!(parse_payload(&[0x03, 0xe8]), Ok(Some(1000)));
        assert_eq!(parse_payload(&[0x03, 0xe8, b'o', b'k']), Ok(Some(1000)));
        assert_eq!(parse_payload(&[0x03, 0xed]), Err(Violation::BadCloseCode)); // 1005
        assert_eq!(
            parse_payload(&[0x03, 0xe8, 0xff]),
            Err(Violation::InvalidUtf8)
        );
        assert_eq!(payload(TOO_BIG), [0x03, 0xf1]);
    }
}
