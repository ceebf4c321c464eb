//! Seconds on the command line: the one parser and the one range of every flag that takes a
//! number of seconds (`--duration`, `--warmup`, `--timeout`, `--idle-timeout`, ...), and the
//! conversions that show a library's default [`Duration`] as such a flag's default.

use std::time::Duration;

/// The most seconds a flag takes: 1,000,000 s, about 11.5 days. A long soak test's
/// `--duration` fits; a value off by several zeros is refused.
pub const MAX_SECS: f64 = 1_000_000.0;

/// A number of seconds from 0 to [`MAX_SECS`], fractions allowed (`0.5`).
///
/// # Errors
///
/// One line naming the value: not a number, or out of range.
pub fn parse_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(0.0..=MAX_SECS).contains(&v) {
        return Err(format!("`{s}` is out of range (0 to {MAX_SECS} seconds)"));
    }
    Ok(v)
}

/// A number of seconds more than 0, up to [`MAX_SECS`]: for a span that cannot be none (a
/// handshake's time limit).
///
/// # Errors
///
/// As [`parse_secs`], or 0.
pub fn parse_positive_secs(s: &str) -> Result<f64, String> {
    match parse_secs(s)? {
        v if v > 0.0 => Ok(v),
        _ => Err(format!("`{s}`: must be more than 0 seconds")),
    }
}

/// A library default as a flag's seconds.
pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// An optional library timeout as a flag's seconds, where 0 means none.
pub fn secs_or_off(d: Option<Duration>) -> f64 {
    d.map_or(0.0, secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_in_range_parse() {
        assert_eq!(parse_secs("0"), Ok(0.0));
        assert_eq!(parse_secs("0.25"), Ok(0.25));
        assert_eq!(parse_secs("90000"), Ok(90_000.0));
        assert_eq!(parse_secs("1000000"), Ok(MAX_SECS));
    }

    #[test]
    fn anything_else_is_one_line_naming_it() {
        for bad in ["-1", "1000001", "1e9", "inf", "NaN"] {
            let e = parse_secs(bad).unwrap_err();
            assert_eq!(
                e,
                format!("`{bad}` is out of range (0 to 1000000 seconds)"),
                "{bad}"
            );
        }
        assert_eq!(
            parse_secs("soon").unwrap_err(),
            "`soon` is not a number of seconds"
        );
    }

    #[test]
    fn defaults_show_as_seconds() {
        assert_eq!(secs(Duration::from_millis(1500)), 1.5);
        assert_eq!(secs_or_off(None), 0.0);
        assert_eq!(secs_or_off(Some(Duration::from_secs(60))), 60.0);
    }
}
