//! Load from many hosts: `--segment I/N` (a share of the run) and `--start-at` (a common start).
//!
//! This module is responsible for splitting one run into `N` shares that add up to it exactly,
//! and for reading the wall-clock time at which agents start together. There is no coordinator:
//! any orchestration that can start `N` processes (ssh, a Kubernetes Indexed Job) runs the same
//! command with `I` = 1..N, and `ringport merge` adds their results.
//!
//! # Shares
//!
//! Segment `I` of `N` (1-based: `1/3`, `2/3`, `3/3`) takes the connections with global indices
//! `floor(C * (I - 1) / N) .. floor(C * I / N)` of a run of `C` connections, as k6's execution
//! segments take fractions of its iterations: the shares differ by at most one connection and
//! tile `0..C` with neither gap nor overlap, whatever `C` and `N` (10 over 3 is 3, 3 and 4).
//! Everything else follows the connections:
//!
//! * the payload of connection `c` is the same in every segment (global index), so the bytes
//!   sent are those of the whole run;
//! * `--count` is per connection, so a segment's messages are its connections x count, and the
//!   segments' messages add up to the whole run's;
//! * `--rate R` keeps the whole run's schedule (`start + (c + k * C) / R`, see
//!   [`send_times`](crate::plan::send_times)) for the segment's own connections: its share of the rate
//!   is `R * n / C` for its `n` connections, the shares add up to `R`, and with a common
//!   `--start-at` the union of the segments' sends is the whole run's schedule, send for send.

use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use ringport_report::segment::Segment;

/// What segment `seg` runs of `total` connections, counted from 1 as everywhere a person reads
/// a connection's number: `segment 2/3: connections 4-6 of 10`.
pub fn describe(seg: Segment, total: usize) -> String {
    let own = seg.range(total);
    let span = match own.len() {
        0 => "none".to_string(),
        1 => format!("connection {}", own.start + 1),
        _ => format!("connections {}-{}", own.start + 1, own.end),
    };
    format!("segment {seg}: {span} of {total}")
}

/// Parses `--start-at`: RFC 3339 (`2026-12-01T10:00:00Z`, `2026-12-01T11:00:00.5+01:00`; `T`
/// or a space between date and time) or seconds since the Unix epoch (`1764583200`,
/// `1764583200.25`), at most [`START_AT_MAX_AHEAD`] from now.
///
/// # Errors
///
/// A one-line message with the accepted forms, or how far ahead the time is.
pub fn parse_start_at(s: &str) -> Result<SystemTime, String> {
    let t = s.trim();
    let bad = || {
        format!(
            "`{s}` is not a time: give RFC 3339 (2026-12-01T10:00:00Z, with an offset such as \
             +01:00 if not UTC) or seconds since the Unix epoch (e.g. $(( $(date +%s) + 10 )))"
        )
    };
    let at = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = t.parse().map_err(|_| bad())?;
        Duration::try_from_secs_f64(secs)
            .map(|d| UNIX_EPOCH + d)
            .map_err(|_| bad())?
    } else {
        parse_rfc3339(t).ok_or_else(bad)?
    };
    // A load waits for it with its connections open: a day ahead at most (a typo in the date
    // would otherwise hold them for years).
    if let Ok(ahead) = at.duration_since(SystemTime::now()) {
        if ahead > START_AT_MAX_AHEAD {
            return Err(format!(
                "`{s}` is {:.1} hours ahead; --start-at takes a time within the next {} hours",
                ahead.as_secs_f64() / 3600.0,
                START_AT_MAX_AHEAD.as_secs() / 3600
            ));
        }
    }
    Ok(at)
}

/// How far ahead `--start-at` may be.
pub const START_AT_MAX_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)`, leap seconds refused.
fn parse_rfc3339(t: &str) -> Option<SystemTime> {
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let digits = |r: Range<usize>| -> Option<i64> {
        let part = t.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let mut rest = &t[19..];
    let mut nanos = 0u64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let kept = &frac[..n.min(9)];
        nanos = kept.parse::<u64>().ok()? * 10u64.pow(9 - kept.len() as u32);
        rest = &frac[n..];
    }
    let offset_secs = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let num = |a: u8, b: u8| -> Option<i64> {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let (h, m) = (num(*h1, *h2)?, num(*m1, *m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let v = h * 3600 + m * 60;
            if *sign == b'+' {
                v
            } else {
                -v
            }
        }
        _ => return None,
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day < 1 || day > month_days[(month - 1) as usize] {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the Unix epoch of `t` (negative before it).
pub fn unix_secs(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log said "connections 0..5 of 10", counting from 0 where everything else counts
    /// from 1.
    #[test]
    fn a_segment_names_its_connections_from_1() {
        let seg = |index, count| Segment { index, count };
        assert_eq!(
            describe(seg(1, 2), 10),
            "segment 1/2: connections 1-5 of 10"
        );
        assert_eq!(
            describe(seg(3, 3), 10),
            "segment 3/3: connections 7-10 of 10"
        );
        assert_eq!(describe(seg(2, 3), 3), "segment 2/3: connection 2 of 3");
        assert_eq!(describe(seg(1, 3), 2), "segment 1/3: none of 2");
    }

    #[test]
    fn shares_tile_the_run_exactly() {
        for total in [1usize, 2, 3, 7, 10, 11, 100, 1_000_003] {
            for count in 1..=7usize.min(total) {
                let mut next = 0;
                let mut sizes = Vec::new();
                for index in 1..=count {
                    let r = Segment { index, count }.range(total);
                    assert_eq!(
                        r.start, next,
                        "{index}/{count} of {total} starts where the last ended"
                    );
                    next = r.end;
                    sizes.push(r.len());
                }
                assert_eq!(next, total, "{count} shares of {total} cover it");
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "{sizes:?}: equal shares");
            }
        }
        let sizes: Vec<usize> = (1..=3)
            .map(|index| Segment { index, count: 3 }.range(10).len())
            .collect();
        assert_eq!(sizes, [3, 3, 4]);
    }

    #[test]
    fn rate_shares_add_up() {
        let total: f64 = (1..=3)
            .map(|index| Segment { index, count: 3 }.rate(1000.0, 10))
            .sum();
        assert!((total - 1000.0).abs() < 1e-9, "{total}");
        assert_eq!(Segment { index: 3, count: 3 }.rate(1000.0, 10), 400.0);
    }

    #[test]
    fn parses_and_refuses_with_one_line() {
        assert_eq!("2/3".parse(), Ok(Segment { index: 2, count: 3 }));
        assert_eq!(Segment { index: 2, count: 3 }.to_string(), "2/3");
        for (bad, needle) in [
            ("0/3", "counts from 1"),
            ("4/3", "between 1 and 3"),
            ("1/0", "at least 1"),
            ("2", "not I/N"),
            ("a/3", "whole numbers"),
            ("-1/3", "whole numbers"),
        ] {
            let e = bad.parse::<Segment>().unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn start_at_reads_rfc3339_and_unix_seconds() {
        let at = |s| unix_secs(parse_start_at(s).unwrap());
        assert_eq!(at("1970-01-01T00:00:00Z"), 0.0);
        assert_eq!(at("2026-12-01T10:00:00Z"), 1_796_119_200.0);
        assert_eq!(at("2026-12-01T11:00:00+01:00"), 1_796_119_200.0);
        assert_eq!(at("2026-12-01 09:30:00-00:30"), 1_796_119_200.0);
        assert_eq!(at("2000-02-29T00:00:00.25Z"), 951_782_400.25);
        assert_eq!(at("1796119200"), 1_796_119_200.0);
        assert_eq!(at("1796119200.5"), 1_796_119_200.5);
        for bad in [
            "",
            "tomorrow",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-12-01T10:00:00",
            "2026-12-01T24:00:00Z",
            "2026-12-01T10:00:00.Z",
            "1.2.3",
        ] {
            let e = parse_start_at(bad).unwrap_err();
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
    }

    #[test]
    fn start_at_is_within_a_day() {
        let now = unix_secs(SystemTime::now());
        let soon = format!("{}", now as u64 + 3600);
        assert!(parse_start_at(&soon).is_ok());
        let later = format!("{}", now as u64 + 2 * 24 * 3600);
        let e = parse_start_at(&later).unwrap_err();
        assert!(e.contains("hours ahead") && e.contains("24 hours"), "{e}");
        assert!(parse_start_at("2126-12-01T10:00:00Z").is_err());
    }
}
