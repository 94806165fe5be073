//! Websocket payload masking (RFC 6455 section 5.3), resumable at any offset so a frame can be
//! unmasked as its bytes arrive.

/// XORs `buf` with `mask`, where `buf` starts `offset` bytes into the frame's payload.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let rot = offset % 4;
    let m = [
        mask[rot],
        mask[(rot + 1) % 4],
        mask[(rot + 2) % 4],
        mask[(rot + 3) % 4],
    ];
    let m8 = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let v = u64::from_ne_bytes(w) ^ m8;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], mask: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= mask[(offset + i) % 4];
        }
    }

    #[test]
    fn rfc_example_hello() {
        // RFC 6455 section 5.7: "Hello" masked with 37 fa 21 3d.
        let mut b = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut b, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&b, b"Hello");
    }

    #[test]
    fn any_split_matches_the_naive_loop() {
        let mask = [1, 2, 3, 250];
        let data: Vec<u8> = (0..100u8).collect();
        for split in 0..data.len() {
            let mut a = data.clone();
            let (x, y) = a.split_at_mut(split);
            apply_mask(x, mask, 0);
            apply_mask(y, mask, split);
            let mut b = data.clone();
            naive(&mut b, mask, 0);
            assert_eq!(a, b, "split at {split}");
        }
    }

    #[test]
    fn masking_twice_is_identity() {
        let mut b = b"some payload of 23 byte".to_vec();
        apply_mask(&mut b, [9, 8, 7, 6], 3);
        apply_mask(&mut b, [9, 8, 7, 6], 3);
        assert_eq!(b, b"some payload of 23 byte");
    }
}
