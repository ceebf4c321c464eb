//! Sizes on the command line: the one parser of every flag that takes a number of bytes
//! (`--size`, `--window`, `--buffer-size`, `--ws-max-message`, `bench --size`), with binary
//! units, and the range a flag's value must be in.

/// A size in bytes: `65536`, `64K`, `64KiB`, `1M`, `1MiB` (binary units), at least 1 and at
/// most 1 GiB.
///
/// # Errors
///
/// One line naming the value: not a size, an unknown unit, or out of range.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let not_a_size = || format!("`{s}` is not a size in bytes (a whole number: 65536, 64K, 1M)");
    if unit.starts_with(['.', ',']) {
        return Err(not_a_size());
    }
    let n: usize = number.parse().map_err(|_| not_a_size())?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("`{s}`: unknown unit (K, M or G: binary units)")),
    };
    n.checked_mul(scale)
        .filter(|b| (1..=1 << 30).contains(b))
        .ok_or_else(|| format!("`{s}` is out of range (1 byte to 1G)"))
}

/// `serve --buffer-size`: a size from 64 bytes to 16 MiB.
///
/// # Errors
///
/// As [`parse_bytes`], or outside that range.
pub fn parse_buffer_size(s: &str) -> Result<u32, String> {
    let n = parse_bytes(s)?;
    if !(64..=16 << 20).contains(&n) {
        return Err(format!("`{s}` is out of range (64 bytes to 16M)"));
    }
    Ok(n as u32)
}

/// The most bytes an input held in memory whole may have (`stress --request-file`; `send
/// --file` and `send -` with `--tls`, `--websocket` or `--udp`: plaintext `send` streams).
pub const INPUT_MAX: u64 = 256 << 20;

/// Everything `input` gives, up to [`INPUT_MAX`] bytes: a larger input (`/dev/zero`) is refused
/// once that much has been read, never read into memory to its end.
///
/// # Errors
///
/// The read's error, or one line saying `what` is larger than [`INPUT_MAX`] and `why` it is
/// held whole.
pub fn read_bounded(input: impl std::io::Read, what: &str, why: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut buf = Vec::new();
    input
        .take(INPUT_MAX + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {what}: {e}"))?;
    if buf.len() as u64 > INPUT_MAX {
        return Err(format!(
            "{what} is more than {} MiB: {why}",
            INPUT_MAX >> 20
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_is_read_up_to_its_bound_and_refused_beyond() {
        let why = "a message is held in memory whole";
        assert_eq!(read_bounded(&b"hello"[..], "x", why), Ok(b"hello".to_vec()));
        let endless = std::io::repeat(0);
        let e = read_bounded(endless, "/dev/zero", why).unwrap_err();
        assert_eq!(
            e,
            "/dev/zero is more than 256 MiB: a message is held in memory whole"
        );
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("64K"), Ok(65536));
        assert_eq!(parse_bytes("64KiB"), Ok(65536));
        assert_eq!(parse_bytes("1M"), Ok(1 << 20));
        assert_eq!(parse_bytes(" 2mib "), Ok(2 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        for bad in ["", "0", "K", "1.5M", "2G", "12Q", "-1"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert!(parse_bytes("1.5M")
            .unwrap_err()
            .contains("not a size in bytes"));
    }

    #[test]
    fn a_buffer_size_is_64_bytes_to_16_mib() {
        assert_eq!(parse_buffer_size("64"), Ok(64));
        assert_eq!(parse_buffer_size("64K"), Ok(65536));
        assert_eq!(parse_buffer_size("16M"), Ok(16 << 20));
        for bad in ["63", "17M", "1G"] {
            assert!(
                parse_buffer_size(bad)
                    .unwrap_err()
                    .contains("64 bytes to 16M"),
                "{bad}"
            );
        }
    }
}
