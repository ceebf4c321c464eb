//! Masking: the XOR every client-to-server payload goes through (RFC 6455 section 5.3).

/// XORs `payload` in place with `mask`; `offset` is the position of `payload[0]` within the
/// frame's payload, so a payload that arrives in several reads is unmasked piece by piece.
/// Works eight bytes at a time.
pub fn apply_mask(payload: &mut [u8], mask: [u8; 4], offset: u64) {
    let shift = (offset % 4) as usize;
    let mut rotated = [0u8; 8];
    for (i, byte) in rotated.iter_mut().enumerate() {
        *byte = mask[(shift + i) % 4];
    }
    let word = u64::from_ne_bytes(rotated);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // The remainder starts at a multiple of 8 from payload[0], so the rotation still holds.
    for (byte, m) in chunks.into_remainder().iter_mut().zip(rotated) {
        *byte ^= m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(payload: &mut [u8], mask: [u8; 4], offset: u64) {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[((offset + i as u64) % 4) as usize];
        }
    }

    #[test]
    fn masks_the_rfc_hello() {
        let mut data = *b"Hello";
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn matches_the_bytewise_rule_at_every_length_offset_and_split() {
        let mask = [0xa1, 0x07, 0x5c, 0xee];
        let original: Vec<u8> = (0..67u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..original.len() {
            for offset in 0..9u64 {
                let mut expected = original[..len].to_vec();
                naive(&mut expected, mask, offset);
                let mut got = original[..len].to_vec();
                apply_mask(&mut got, mask, offset);
                assert_eq!(got, expected, "len {len} offset {offset}");
            }
            // The same payload unmasked in two reads, split anywhere.
            for split in 0..=len {
                let mut expected = original[..len].to_vec();
                naive(&mut expected, mask, 0);
                let mut got = original[..len].to_vec();
                let (a, b) = got.split_at_mut(split);
                apply_mask(a, mask, 0);
                apply_mask(b, mask, split as u64);
                assert_eq!(got, expected, "len {len} split {split}");
            }
        }
    }

    #[test]
    fn masking_twice_is_the_identity() {
        let original: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut data = original.clone();
        apply_mask(&mut data, [1, 2, 3, 4], 3);
        assert_ne!(data, original);
        apply_mask(&mut data, [1, 2, 3, 4], 3);
        assert_eq!(data, original);
    }
}
