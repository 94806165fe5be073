//! Frame headers on tungstenite's `FrameHeader`: decode from a byte slice (header length
//! included), check a client frame against RFC 6455 rules, and encode headers into a stack buffer.

use std::io::Cursor;

use super::{Control, Data, FrameHeader, OpCode, Violation};

/// The longest header: 2 bytes + 8 bytes of length + 4 bytes of mask.
pub const MAX_HEADER_LEN: usize = 14;
/// Control frames carry at most 125 bytes (RFC 6455 section 5.5).
pub const MAX_CONTROL_PAYLOAD: u64 = 125;

/// A decoded header, its payload length and how many bytes the header took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub header: FrameHeader,
    pub payload_len: u64,
    pub header_len: usize,
}

impl Header {
    pub fn opcode(&self) -> OpCode {
        self.header.opcode
    }
    pub fn is_control(&self) -> bool {
        matches!(self.header.opcode, OpCode::Control(_))
    }
}

/// Decodes the header at the start of `buf`. `Ok(None)`: not all of it has arrived yet.
pub fn decode(buf: &[u8]) -> Result<Option<Header>, Violation> {
    let mut cur = Cursor::new(buf);
    match FrameHeader::parse(&mut cur) {
        Ok(Some((header, payload_len))) => {
            if payload_len >> 63 != 0 {
                return Err(Violation::BadLength);
            }
            Ok(Some(Header {
                header,
                payload_len,
                header_len: cur.position() as usize,
            }))
        }
        Ok(None) => Ok(None),
        // The only error parse returns on a slice is a reserved opcode.
        Err(_) => Err(Violation::ReservedOpcode),
    }
}

/// Checks the rules every frame from a client must follow, independent of message state.
pub fn check_client_frame(h: &Header) -> Result<(), Violation> {
    let fh = &h.header;
    if fh.rsv1 || fh.rsv2 || fh.rsv3 {
        return Err(Violation::ReservedBits);
    }
    if fh.mask.is_none() {
        return Err(Violation::Unmasked);
    }
    check_control(h)
}

/// Checks a frame received by a client (from a server): unmasked, no RSV bits, control rules.
pub fn check_server_frame(h: &Header) -> Result<(), Violation> {
    let fh = &h.header;
    if fh.rsv1 || fh.rsv2 || fh.rsv3 {
        return Err(Violation::ReservedBits);
    }
    if fh.mask.is_some() {
        return Err(Violation::Masked);
    }
    check_control(h)
}

fn check_control(h: &Header) -> Result<(), Violation> {
    if h.is_control() {
        if h.payload_len > MAX_CONTROL_PAYLOAD {
            return Err(Violation::ControlTooLong);
        }
        if !h.header.is_final {
            return Err(Violation::FragmentedControl);
        }
    }
    Ok(())
}

/// Encodes a header into `out` and returns its length.
pub fn encode(
    out: &mut [u8; MAX_HEADER_LEN],
    is_final: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload_len: u64,
) -> usize {
    let h = FrameHeader {
        is_final,
        opcode,
        mask,
        ..FrameHeader::default()
    };
    let mut cur = Cursor::new(&mut out[..]);
    h.format(payload_len, &mut cur)
        .expect("a header always fits in 14 bytes");
    cur.position() as usize
}

pub const TEXT: OpCode = OpCode::Data(Data::Text);
pub const BINARY: OpCode = OpCode::Data(Data::Binary);
pub const CONTINUE: OpCode = OpCode::Data(Data::Continue);
pub const CLOSE: OpCode = OpCode::Control(Control::Close);
pub const PING: OpCode = OpCode::Control(Control::Ping);
pub const PONG: OpCode = OpCode::Control(Control::Pong);

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(bytes: &[u8]) -> Result<Option<Header>, Violation> {
        decode(bytes)
    }

    #[test]
    fn decodes_the_three_length_forms_and_mask() {
        // RFC 6455 5.7: masked "Hello".
        let h = hdr(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f])
            .unwrap()
            .unwrap();
        assert_eq!(h.payload_len, 5);
        assert_eq!(h.header_len, 6);
        assert_eq!(h.header.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(h.opcode(), TEXT);
        assert!(h.header.is_final);
        // 256 bytes binary, 16-bit length, unmasked.
        let h = hdr(&[0x82, 0x7e, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.payload_len, h.header_len), (256, 4));
        // 64 KiB, 64-bit length.
        let h = hdr(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]).unwrap().unwrap();
        assert_eq!((h.payload_len, h.header_len), (65536, 10));
    }

    #[test]
    fn partial_headers_need_more() {
        let full = [0x82u8, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for n in 0..full.len() {
            assert_eq!(hdr(&full[..n]), Ok(None), "{n} bytes");
        }
        assert_eq!(hdr(&full).unwrap().unwrap().header_len, 14);
    }

    #[test]
    fn rejections() {
        assert_eq!(
            hdr(&[0x83, 0x80, 0, 0, 0, 0]),
            Err(Violation::ReservedOpcode)
        );
        assert_eq!(
            hdr(&[0x8b, 0x80, 0, 0, 0, 0]),
            Err(Violation::ReservedOpcode)
        );
        assert_eq!(
            hdr(&[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]),
            Err(Violation::BadLength)
        );
        let check = |b: &[u8]| check_client_frame(&hdr(b).unwrap().unwrap());
        assert_eq!(check(&[0x81, 0x00]), Err(Violation::Unmasked));
        assert_eq!(
            check(&[0xc1, 0x80, 0, 0, 0, 0]),
            Err(Violation::ReservedBits)
        );
        assert_eq!(
            check(&[0xa1, 0x80, 0, 0, 0, 0]),
            Err(Violation::ReservedBits)
        );
        assert_eq!(
            check(&[0x91, 0x80, 0, 0, 0, 0]),
            Err(Violation::ReservedBits)
        );
        assert_eq!(
            check(&[0x89, 0xfe, 0, 126, 0, 0, 0, 0]),
            Err(Violation::ControlTooLong)
        );
        assert_eq!(
            check(&[0x09, 0x80, 0, 0, 0, 0]),
            Err(Violation::FragmentedControl)
        );
        assert_eq!(check(&[0x89, 0xfd, 0, 0, 0, 0]), Ok(())); // 125-byte ping is fine
        assert_eq!(check(&[0x01, 0x80, 0, 0, 0, 0]), Ok(())); // first fragment
        assert_eq!(
            check_server_frame(&hdr(&[0x81, 0x80, 0, 0, 0, 0]).unwrap().unwrap()),
            Err(Violation::Masked)
        );
    }

    #[test]
    fn encode_then_decode() {
        for len in [0u64, 125, 126, 65535, 65536, 1 << 40] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut out = [0u8; MAX_HEADER_LEN];
                let n = encode(&mut out, true, BINARY, mask, len);
                let h = decode(&out[..n]).unwrap().unwrap();
                assert_eq!((h.payload_len, h.header_len, h.header.mask), (len, n, mask));
            }
        }
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = encode(&mut out, true, TEXT, None, 5);
        assert_eq!(&out[..n], &[0x81, 0x05]);
    }
}
