//! A frame's header (RFC 6455 section 5.2): parsed from a prefix of the received bytes, encoded
//! into a fixed array. The payload is the caller's.

/// The longest header: 2 bytes, an 8-byte length, a 4-byte mask.
pub const MAX_HEADER_LEN: usize = 14;

/// The longest payload of a control frame (close, ping, pong).
pub const MAX_CONTROL_PAYLOAD: u64 = 125;

/// A frame's opcode. The reserved opcodes (3-7, 11-15) are a [`FrameError::ReservedOpcode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    /// The opcode of a 4-bit value, `None` for the reserved ones.
    pub fn from_u8(value: u8) -> Option<Opcode> {
        Some(match value {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    /// The opcode's 4-bit value.
    pub fn as_u8(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, ping and pong: at most 125 bytes, never fragmented, allowed between fragments.
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// Why a header is not a valid frame header. Each is a protocol error (close code 1002).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("reserved bits set (no extension was negotiated)")]
    ReservedBits,
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    #[error("control frame of {0} bytes (at most 125)")]
    ControlTooLong(u64),
    #[error("fragmented control frame")]
    ControlFragmented,
    #[error("64-bit payload length with its most significant bit set")]
    LengthMsb,
}

/// One frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The last frame of its message.
    pub fin: bool,
    pub opcode: Opcode,
    /// The masking key: a client's frames carry one, a server's never do.
    pub mask: Option<[u8; 4]>,
    /// The payload's length in bytes.
    pub len: u64,
}

impl FrameHeader {
    /// Parses the header at the start of `buf`: `Ok(None)` when more bytes are needed, else the
    /// header and how many bytes it took. Errors are reported as soon as the bytes that show
    /// them have arrived. A length encoded in more bytes than needed is accepted.
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, FrameError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        if b0 & 0x70 != 0 {
            return Err(FrameError::ReservedBits);
        }
        let fin = b0 & 0x80 != 0;
        let raw_opcode = b0 & 0x0F;
        let opcode = Opcode::from_u8(raw_opcode).ok_or(FrameError::ReservedOpcode(raw_opcode))?;
        if opcode.is_control() && !fin {
            return Err(FrameError::ControlFragmented);
        }
        let Some(&b1) = buf.get(1) else {
            return Ok(None);
        };
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7F;
        let (len, mut at) = match len7 {
            126 => {
                let Some(bytes) = buf.get(2..4) else {
                    return Ok(None);
                };
                (u64::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4)
            }
            127 => {
                let Some(bytes) = buf.get(2..10) else {
                    return Ok(None);
                };
                let mut raw = [0u8; 8];
                raw.copy_from_slice(bytes);
                let len = u64::from_be_bytes(raw);
                if len >> 63 != 0 {
                    return Err(FrameError::LengthMsb);
                }
                (len, 10)
            }
            short => (u64::from(short), 2),
        };
        if opcode.is_control() && len > MAX_CONTROL_PAYLOAD {
            return Err(FrameError::ControlTooLong(len));
        }
        let mask = if masked {
            let Some(bytes) = buf.get(at..at + 4) else {
                return Ok(None);
            };
            at += 4;
            Some([bytes[0], bytes[1], bytes[2], bytes[3]])
        } else {
            None
        };
        Ok(Some((
            FrameHeader {
                fin,
                opcode,
                mask,
                len,
            },
            at,
        )))
    }

    /// Encodes the header (shortest length form) into `out`, returning how many bytes it took.
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut at = if self.len <= 125 {
            out[1] = mask_bit | self.len as u8;
            2
        } else if self.len <= u64::from(u16::MAX) {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&(self.len as u16).to_be_bytes());
            4
        } else {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&self.len.to_be_bytes());
            10
        };
        if let Some(mask) = self.mask {
            out[at..at + 4].copy_from_slice(&mask);
            at += 4;
        }
        at
    }

    /// How many bytes [`encode`](Self::encode) writes for this header.
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.len {
            0..=125 => 2,
            126..=0xFFFF => 4,
            _ => 10,
        };
        len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply_mask;

    fn parse_all(buf: &[u8]) -> (FrameHeader, usize) {
        FrameHeader::parse(buf).unwrap().unwrap()
    }

    #[test]
    fn rfc_examples_of_section_5_7() {
        // A single-frame unmasked text message.
        let (h, n) = parse_all(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(
            (h.fin, h.opcode, h.mask, h.len, n),
            (true, Opcode::Text, None, 5, 2)
        );

        // A single-frame masked text message.
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, n) = parse_all(&frame);
        assert_eq!((h.fin, h.opcode, h.len, n), (true, Opcode::Text, 5, 6));
        let mut payload = frame[n..].to_vec();
        apply_mask(&mut payload, h.mask.unwrap(), 0);
        assert_eq!(payload, b"Hello");

        // A fragmented unmasked text message.
        let (h, n) = parse_all(&[0x01, 0x03, 0x48, 0x65, 0x6c]);
        assert_eq!((h.fin, h.opcode, h.len, n), (false, Opcode::Text, 3, 2));
        let (h, n) = parse_all(&[0x80, 0x02, 0x6c, 0x6f]);
        assert_eq!(
            (h.fin, h.opcode, h.len, n),
            (true, Opcode::Continuation, 2, 2)
        );

        // Unmasked ping, masked pong.
        let (h, _) = parse_all(&[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!((h.opcode, h.len), (Opcode::Ping, 5));
        let (h, n) = parse_all(&[
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ]);
        assert_eq!(
            (h.opcode, h.len, h.mask, n),
            (Opcode::Pong, 5, Some([0x37, 0xfa, 0x21, 0x3d]), 6)
        );

        // 256 bytes and 64 KiB of binary data in one unmasked frame.
        let (h, n) = parse_all(&[0x82, 0x7E, 0x01, 0x00]);
        assert_eq!((h.opcode, h.len, n), (Opcode::Binary, 256, 4));
        let (h, n) = parse_all(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!((h.opcode, h.len, n), (Opcode::Binary, 65536, 10));
    }

    #[test]
    fn encodes_the_rfc_examples() {
        let mut out = [0u8; MAX_HEADER_LEN];
        let h = FrameHeader {
            fin: true,
            opcode: Opcode::Text,
            mask: Some([0x37, 0xfa, 0x21, 0x3d]),
            len: 5,
        };
        let n = h.encode(&mut out);
        assert_eq!(&out[..n], &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d]);
        let h = FrameHeader {
            fin: true,
            opcode: Opcode::Binary,
            mask: None,
            len: 65536,
        };
        let n = h.encode(&mut out);
        assert_eq!(&out[..n], &[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
        let h = FrameHeader {
            fin: false,
            opcode: Opcode::Text,
            mask: None,
            len: 3,
        };
        let n = h.encode(&mut out);
        assert_eq!(&out[..n], &[0x01, 0x03]);
    }

    #[test]
    fn rejects_what_the_rfc_forbids() {
        assert_eq!(FrameHeader::parse(&[0xC1]), Err(FrameError::ReservedBits));
        assert_eq!(
            FrameHeader::parse(&[0x91, 0x00]),
            Err(FrameError::ReservedBits)
        );
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                FrameHeader::parse(&[0x80 | op]),
                Err(FrameError::ReservedOpcode(op))
            );
        }
        assert_eq!(
            FrameHeader::parse(&[0x09]),
            Err(FrameError::ControlFragmented)
        );
        assert_eq!(
            FrameHeader::parse(&[0x88, 126, 0, 126]),
            Err(FrameError::ControlTooLong(126))
        );
        assert_eq!(
            FrameHeader::parse(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1]),
            Err(FrameError::LengthMsb)
        );
        // A non-minimal length is accepted.
        let (h, n) = parse_all(&[0x82, 126, 0, 5]);
        assert_eq!((h.len, n), (5, 4));
        let (h, _) = parse_all(&[0x89, 125 | 0x80, 1, 2, 3, 4]);
        assert_eq!(h.len, 125);
    }

    #[test]
    fn round_trips_and_every_prefix_needs_more() {
        let lens = [0u64, 1, 125, 126, 127, 65535, 65536, 1 << 32, (1 << 63) - 1];
        let opcodes = [
            Opcode::Continuation,
            Opcode::Text,
            Opcode::Binary,
            Opcode::Close,
            Opcode::Ping,
            Opcode::Pong,
        ];
        for &len in &lens {
            for &opcode in &opcodes {
                for fin in [true, false] {
                    for mask in [None, Some([9, 8, 7, 6])] {
                        let h = FrameHeader {
                            fin,
                            opcode,
                            mask,
                            len,
                        };
                        let mut out = [0u8; MAX_HEADER_LEN];
                        let n = h.encode(&mut out);
                        assert_eq!(n, h.encoded_len());
                        let valid = !opcode.is_control() || (fin && len <= MAX_CONTROL_PAYLOAD);
                        if !valid {
                            assert!(FrameHeader::parse(&out[..n]).is_err(), "{h:?}");
                            continue;
                        }
                        assert_eq!(FrameHeader::parse(&out[..n]), Ok(Some((h, n))));
                        for cut in 0..n {
                            assert_eq!(
                                FrameHeader::parse(&out[..cut]),
                                Ok(None),
                                "{h:?} cut {cut}"
                            );
                        }
                        // Trailing bytes (the payload) are not part of the header.
                        let mut longer = out.to_vec();
                        longer.extend_from_slice(&[0xFF; 20]);
                        assert_eq!(FrameHeader::parse(&longer), Ok(Some((h, n))));
                    }
                }
            }
        }
    }

    #[test]
    fn control_opcodes() {
        assert!(
            Opcode::Close.is_control() && Opcode::Ping.is_control() && Opcode::Pong.is_control()
        );
        assert!(
            !Opcode::Text.is_control()
                && !Opcode::Binary.is_control()
                && !Opcode::Continuation.is_control()
        );
        for v in 0..16u8 {
            if let Some(op) = Opcode::from_u8(v) {
                assert_eq!(op.as_u8(), v);
            }
        }
    }
}
