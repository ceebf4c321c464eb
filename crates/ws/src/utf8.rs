//! UTF-8 validation of a text message that arrives in pieces (fragments, reads): an invalid
//! byte is reported as soon as it arrives, a sequence cut at a piece's end waits for the next.

/// Incremental UTF-8 validator: at most 3 bytes of an incomplete sequence carried over.
#[derive(Debug, Clone, Default)]
pub struct Utf8Stream {
    partial: [u8; 4],
    partial_len: u8,
}

impl Utf8Stream {
    pub fn new() -> Utf8Stream {
        Utf8Stream::default()
    }

    /// Forgets any carried sequence (a new message).
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }

    /// Validates the next piece. `Err` as soon as the bytes so far cannot start valid UTF-8.
    #[allow(clippy::result_unit_err)]
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), ()> {
        if self.partial_len > 0 {
            let have = usize::from(self.partial_len);
            let need = sequence_len(self.partial[0]);
            let take = (need - have).min(data.len());
            self.partial[have..have + take].copy_from_slice(&data[..take]);
            let now = have + take;
            data = &data[take..];
            match std::str::from_utf8(&self.partial[..now]) {
                Ok(_) => self.partial_len = 0,
                Err(e) if e.error_len().is_none() => {
                    self.partial_len = now as u8;
                    return Ok(());
                }
                Err(_) => return Err(()),
            }
        }
        match std::str::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(()),
            Err(e) => {
                let rest = &data[e.valid_up_to()..];
                self.partial[..rest.len()].copy_from_slice(rest);
                self.partial_len = rest.len() as u8;
                Ok(())
            }
        }
    }

    /// `Ok` when no incomplete sequence is left (the message's end).
    #[allow(clippy::result_unit_err)]
    pub fn finish(&self) -> Result<(), ()> {
        if self.partial_len == 0 {
            Ok(())
        } else {
            Err(())
        }
    }
}

/// The length of the sequence a lead byte starts (only called on leads `from_utf8` found
/// to start a valid, incomplete sequence).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(data: &[u8]) -> bool {
        let mut s = Utf8Stream::new();
        s.push(data).is_ok() && s.finish().is_ok()
    }

    const SAMPLES: &[&[u8]] = &[
        b"",
        b"Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!",
        "κόσμε 𝄞 €".as_bytes(),
        b"\xf4\x8f\xbf\xbf",
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
        b"\xf4\x90\x80\x80",
        b"\xc0\xaf",
        b"\xe0\x80\xaf",
        b"\xed\xbf\xbf",
        b"\x80",
        b"abc\xff",
        b"\xf0\x9f\x98",
        b"\xe2\x82",
        b"ok \xf0\x9f\x98\x80 ok",
    ];

    #[test]
    fn agrees_with_std_whatever_the_split() {
        for &sample in SAMPLES {
            let expected = std::str::from_utf8(sample).is_ok();
            assert_eq!(whole(sample), expected, "{sample:x?}");
            for a in 0..=sample.len() {
                for b in a..=sample.len() {
                    let mut s = Utf8Stream::new();
                    let ok = s.push(&sample[..a]).is_ok()
                        && s.push(&sample[a..b]).is_ok()
                        && s.push(&sample[b..]).is_ok()
                        && s.finish().is_ok();
                    assert_eq!(ok, expected, "{sample:x?} split at {a}, {b}");
                }
            }
            // Byte by byte.
            let mut s = Utf8Stream::new();
            let ok = sample.iter().all(|b| s.push(&[*b]).is_ok()) && s.finish().is_ok();
            assert_eq!(ok, expected, "{sample:x?} byte by byte");
        }
    }

    #[test]
    fn fails_fast_on_an_impossible_prefix() {
        // 0xF4 0x90 can never start valid UTF-8 (above U+10FFFF): fail before the rest arrives.
        let mut s = Utf8Stream::new();
        assert!(s.push(b"ok\xf4").is_ok());
        assert!(s.push(b"\x90").is_err());
        // A surrogate's start.
        let mut s = Utf8Stream::new();
        assert!(s.push(b"\xed").is_ok());
        assert!(s.push(b"\xa0").is_err());
    }

    #[test]
    fn incomplete_at_the_end_fails_finish_and_reset_forgets_it() {
        let mut s = Utf8Stream::new();
        assert!(s.push(b"\xe2\x82").is_ok());
        assert!(s.finish().is_err());
        s.reset();
        assert!(s.finish().is_ok());
        assert!(s.push(b"\xe2").is_ok());
        assert!(s.push(b"\x82").is_ok());
        assert!(s.push(b"\xac").is_ok());
        assert!(s.finish().is_ok());
    }
}
