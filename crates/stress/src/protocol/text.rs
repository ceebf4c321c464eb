//! Bytes as text: the escapes of `--request`, `--expect` and `--expect-until`, hex, and bytes
//! shown back in messages.
//!
//! This module is responsible for [`unescape`] and [`parse_hex`] (command-line text to bytes)
//! and [`escape`] (bytes to a short, quoted, printable form for error messages and labels).

/// Decodes the escapes of `--request`, `--expect` and `--expect-until`: `\r`, `\n`, `\t`,
/// `\\`, `\0` and `\xHH` (two hex digits); every other character stands for its UTF-8 bytes.
///
/// # Errors
///
/// An unknown escape, or `\x` without two hex digits, named in one line.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.char_indices();
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            let mut b = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            continue;
        }
        match chars.next().map(|(_, c)| c) {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('\\') => out.push(b'\\'),
            Some('0') => out.push(0),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).map(|(_, c)| c).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) if hex.len() == 2 => out.push(b),
                    _ => {
                        return Err(format!(
                            "`\\x{hex}` at character {at}: \\x needs two hex digits, as in \\x00"
                        ))
                    }
                }
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape `\\{other}` at character {at}: use \\r \\n \\t \\\\ \\0 or \
                     \\xHH"
                ))
            }
            None => return Err("a lone `\\` at the end: write \\\\ for a backslash".to_string()),
        }
    }
    Ok(out)
}

/// Decodes `--request-hex`: pairs of hex digits, with any whitespace, `:` or `-` between them
/// ignored (`50494e470d0a`, `50 49 4e 47 0d 0a`).
///
/// # Errors
///
/// A character that is not a hex digit, or an odd number of digits.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b':' && *b != b'-')
        .collect();
    if let Some(b) = digits.iter().find(|b| !b.is_ascii_hexdigit()) {
        return Err(format!("`{}` is not a hex digit", char::from(*b)));
    }
    if digits.len() % 2 == 1 {
        return Err(format!("{} hex digits: bytes take two each", digits.len()));
    }
    Ok(digits
        .chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).expect("ASCII hex digits");
            u8::from_str_radix(s, 16).expect("checked hex digits")
        })
        .collect())
}

/// `bytes` as a quoted string with escapes (`\r`, `\n`, `\t`, `\\`, `\"`, `\0`, `\xHH`), at most
/// `max` of them shown: a longer one ends `..." (N bytes)`.
pub fn escape(bytes: &[u8], max: usize) -> String {
    let mut s = String::with_capacity(bytes.len().min(max) + 2);
    s.push('"');
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0 => s.push_str("\\0"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let _ = std::fmt::Write::write_fmt(&mut s, format_args!("\\x{b:02x}"));
            }
        }
    }
    if bytes.len() > max {
        let _ = std::fmt::Write::write_fmt(&mut s, format_args!("...\" ({} bytes)", bytes.len()));
    } else {
        s.push('"');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_and_encode_back() {
        assert_eq!(
            unescape(r"PING\r\n\t\\\0\x41\xff").unwrap(),
            b"PING\r\n\t\\\0A\xff"
        );
        assert_eq!(unescape("héllo").unwrap(), "héllo".as_bytes());
        assert!(unescape(r"\q")
            .unwrap_err()
            .contains("unknown escape `\\q`"));
        assert!(unescape(r"\x4").unwrap_err().contains("two hex digits"));
        assert!(unescape(r"\xzz").unwrap_err().contains("two hex digits"));
        assert!(unescape("a\\").unwrap_err().contains("lone"));
        assert_eq!(escape(b"+PONG\r\n", 40), r#""+PONG\r\n""#);
        assert_eq!(escape(b"a\"\0\x80", 40), r#""a\"\0\x80""#);
        assert_eq!(escape(b"abcdef", 3), r#""abc..." (6 bytes)"#);
    }

    #[test]
    fn hex_decodes_with_separators() {
        assert_eq!(parse_hex("50494e470d0a").unwrap(), b"PING\r\n");
        assert_eq!(parse_hex("50 49:4E-47\n0d 0a").unwrap(), b"PING\r\n");
        assert!(parse_hex("504").unwrap_err().contains("3 hex digits"));
        assert!(parse_hex("5g").unwrap_err().contains("`g`"));
    }
}
