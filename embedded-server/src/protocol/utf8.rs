//! Incremental UTF-8 validation across reads and fragments: fails as soon as an invalid sequence
//! has arrived, and keeps at most 3 bytes of an unfinished character between calls.

/// Validator state for one text message (or a close reason).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Validator {
    pending: [u8; 4],
    len: u8,
}

/// Length of the character a lead byte starts (0 for a byte that cannot lead).
fn width(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 0,
    }
}

/// Whether `b` is a valid UTF-8 sequence or a valid prefix of one.
fn valid_prefix(b: &[u8]) -> bool {
    match std::str::from_utf8(b) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

impl Utf8Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes; `Err(())` as soon as the input so far cannot be UTF-8.
    #[allow(clippy::result_unit_err)]
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), ()> {
        if self.len > 0 {
            let have = self.len as usize;
            let need = width(self.pending[0]) - have;
            let take = need.min(data.len());
            self.pending[have..have + take].copy_from_slice(&data[..take]);
            self.len += take as u8;
            let cur = &self.pending[..self.len as usize];
            if !valid_prefix(cur) {
                return Err(());
            }
            if take < need {
                return Ok(());
            }
            self.len = 0;
            data = &data[take..];
        }
        match std::str::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(()),
            Err(e) => {
                let rest = &data[e.valid_up_to()..];
                self.pending[..rest.len()].copy_from_slice(rest);
                self.len = rest.len() as u8;
                Ok(())
            }
        }
    }

    /// At the end of the message: `true` when no character is left unfinished.
    pub fn is_complete(&self) -> bool {
        self.len == 0
    }
}

/// Validates a whole buffer at once.
pub fn is_valid(b: &[u8]) -> bool {
    std::str::from_utf8(b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(data: &[u8], split: usize) -> Result<bool, usize> {
        let mut v = Utf8Validator::new();
        let (a, b) = data.split_at(split);
        v.feed(a).map_err(|_| 0usize)?;
        v.feed(b).map_err(|_| 1usize)?;
        Ok(v.is_complete())
    }

    #[test]
    fn valid_text_at_every_split_point() {
        let s = "κόσμε aé€𝄞 end".as_bytes();
        for i in 0..=s.len() {
            assert_eq!(feed_split(s, i), Ok(true), "split {i}");
        }
    }

    #[test]
    fn unfinished_character_is_not_complete() {
        let mut v = Utf8Validator::new();
        v.feed(&[0xe2, 0x82]).unwrap();
        assert!(!v.is_complete());
        v.feed(&[0xac]).unwrap();
        assert!(v.is_complete());
    }

    #[test]
    fn fails_fast_on_the_first_bad_byte_even_inside_a_character() {
        // 0xf4 0x90 is already beyond U+10FFFF: reject after two bytes, before the rest arrives.
        let mut v = Utf8Validator::new();
        v.feed(&[b'a', 0xf4]).unwrap();
        assert_eq!(v.feed(&[0x90]), Err(()));
        // Surrogate half (U+D800 = ed a0 80): rejected at its second byte.
        let mut v = Utf8Validator::new();
        v.feed(&[0xed]).unwrap();
        assert_eq!(v.feed(&[0xa0]), Err(()));
    }

    #[test]
    fn rejects_every_kind_of_invalid_sequence() {
        let bad: &[&[u8]] = &[
            &[0x80],                   // lone continuation
            &[0xc0, 0xaf],             // overlong
            &[0xe0, 0x80, 0xaf],       // overlong 3-byte
            &[0xf8, 0x88, 0x80, 0x80], // 5-byte lead
            &[0xff],
            &[0xc3, 0x28],             // lead followed by ASCII
            &[0xed, 0xbf, 0xbf],       // surrogate
            &[0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
        ];
        for b in bad {
            for i in 0..=b.len() {
                assert!(feed_split(b, i).is_err(), "{b:x?} split {i}");
            }
        }
    }

    #[test]
    fn byte_by_byte_matches_std() {
        let samples: &[&[u8]] = &[
            "Hello-µ@ßöäüàá-UTF-8!!".as_bytes(),
            &[
                0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
            ],
            &[0xf0, 0x9f, 0x98, 0x80, 0xf0, 0x9f],
        ];
        for s in samples {
            let mut v = Utf8Validator::new();
            let mut ok = true;
            for b in s.iter() {
                if v.feed(std::slice::from_ref(b)).is_err() {
                    ok = false;
                    break;
                }
            }
            let ok = ok && v.is_complete();
            assert_eq!(ok, is_valid(s), "{s:x?}");
        }
    }
}
