//! The `tls` lines of the human report: handshakes full and resumed, their rate and latency,
//! and the failed ones by cause.

use std::fmt::Write as _;

use crate::tls::{HandshakeFailure, TlsFigures};

/// The `tls` lines (each starting with two spaces, ending in a newline).
pub(super) fn render_tls(t: &TlsFigures) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  {:<14}{} handshakes ({} full, {} resumed){}{}",
        "tls",
        t.handshakes,
        t.full,
        t.resumed,
        if t.version.is_empty() {
            String::new()
        } else {
            format!(", {}", t.version)
        },
        if t.handshakes_per_s > 0.0 {
            format!(", {:.1} handshakes/s", t.handshakes_per_s)
        } else {
            String::new()
        }
    );
    let l = &t.handshake_us;
    let _ = writeln!(
        s,
        "  {:<14}handshake p50 {} us  p99 {} us  p99.9 {} us  max {} us",
        "", l.p50, l.p99, l.p999, l.max
    );
    if t.failed.total() > 0 {
        let causes: Vec<String> = HandshakeFailure::ALL
            .iter()
            .map(|&c| format!("{c} {}", t.failed.get(c)))
            .collect();
        let _ = writeln!(
            s,
            "  {:<14}{} failed handshakes ({})",
            "",
            t.failed.total(),
            causes.join(", ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::{new_histogram, LatencySummary};
    use crate::tls::HandshakeFailures;

    #[test]
    fn names_the_counts_the_latency_and_the_failures() {
        let mut h = new_histogram();
        h.record(900).unwrap();
        let mut failed = HandshakeFailures::default();
        failed.add(HandshakeFailure::Name);
        let t = TlsFigures {
            version: "TLSv1.3".into(),
            handshakes: 10,
            full: 1,
            resumed: 9,
            handshakes_per_s: 5.0,
            handshake_us: LatencySummary::of_or_zero(&h),
            failed,
        };
        let s = render_tls(&t);
        assert!(
            s.contains("10 handshakes (1 full, 9 resumed), TLSv1.3, 5.0 handshakes/s"),
            "{s}"
        );
        assert!(s.contains("handshake p50 90"), "{s}");
        assert!(
            s.contains("1 failed handshakes (certificate 0, name 1,"),
            "{s}"
        );
    }
}
