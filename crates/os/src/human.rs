//! Figures for people: byte counts in binary units, counted nouns, seconds.

use std::time::Duration;

/// `bytes` in the largest binary unit that keeps it at 1 or more, with two decimals above
/// bytes: `512 B`, `1.50 KiB`, `3.00 MiB` (up to TiB).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// `n` and the noun in the number it needs: `1 connection`, `2 connections`, `0 connections`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A duration in seconds with one decimal and no space: `1.5s`, `0.0s`.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_change_unit_at_each_1024() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1), "1 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.00 KiB");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes((1 << 20) - 1024), "1023.00 KiB");
        assert_eq!(human_bytes(1 << 20), "1.00 MiB");
        assert_eq!(human_bytes(3 << 20), "3.00 MiB");
        assert_eq!(human_bytes(1 << 30), "1.00 GiB");
        assert_eq!(human_bytes(1 << 40), "1.00 TiB");
        assert_eq!(
            human_bytes(1 << 50),
            "1024.00 TiB",
            "TiB is the largest unit"
        );
        assert!(human_bytes(u64::MAX).ends_with(" TiB"));
    }

    #[test]
    fn nouns_agree_with_their_number() {
        assert_eq!(plural(0, "connection", "connections"), "0 connections");
        assert_eq!(plural(1, "connection", "connections"), "1 connection");
        assert_eq!(
            plural(2, "accept error", "accept errors"),
            "2 accept errors"
        );
    }

    #[test]
    fn seconds_have_one_decimal() {
        assert_eq!(secs(Duration::from_millis(1500)), "1.5s");
        assert_eq!(secs(Duration::ZERO), "0.0s");
        assert_eq!(secs(Duration::from_secs(90)), "90.0s");
    }
}
