//! The `websocket` lines of the human report: upgrades, their rate and latency, messages sent
//! and echoed, close codes received, and the failed upgrades by cause.

use std::fmt::Write as _;

use crate::websocket::{UpgradeFailure, WebSocketFigures};

/// The `websocket` lines (each starting with two spaces, ending in a newline).
pub(super) fn render_websocket(w: &WebSocketFigures) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  {:<14}{} upgrades to {}{}; {} messages sent, {} echoed",
        "websocket",
        w.upgrades,
        w.path,
        if w.upgrades_per_s > 0.0 {
            format!(", {:.1} upgrades/s", w.upgrades_per_s)
        } else {
            String::new()
        },
        w.messages_sent,
        w.messages_echoed
    );
    let l = &w.upgrade_us;
    let _ = writeln!(
        s,
        "  {:<14}upgrade p50 {} us  p99 {} us  p99.9 {} us  max {} us",
        "", l.p50, l.p99, l.p999, l.max
    );
    if !w.close_codes.is_empty() {
        let codes: Vec<String> = w
            .close_codes
            .iter()
            .map(|(code, n)| format!("{code} x{n}"))
            .collect();
        let _ = writeln!(s, "  {:<14}close codes received: {}", "", codes.join(", "));
    }
    if w.failed.total() > 0 {
        let causes: Vec<String> = UpgradeFailure::ALL
            .iter()
            .map(|&c| format!("{c} {}", w.failed.get(c)))
            .collect();
        let _ = writeln!(
            s,
            "  {:<14}{} failed upgrades ({})",
            "",
            w.failed.total(),
            causes.join(", ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::{new_histogram, LatencySummary};
    use crate::websocket::UpgradeFailures;

    #[test]
    fn names_the_counts_the_latency_the_codes_and_the_failures() {
        let mut h = new_histogram();
        h.record(700).unwrap();
        let mut failed = UpgradeFailures::default();
        failed.add(UpgradeFailure::AcceptKey);
        let w = WebSocketFigures {
            path: "/echo".into(),
            upgrades: 4,
            upgrades_per_s: 2.0,
            upgrade_us: LatencySummary::of_or_zero(&h),
            failed,
            messages_sent: 40,
            messages_echoed: 39,
            close_codes: [(1000, 3), (1011, 1)].into_iter().collect(),
        };
        let s = render_websocket(&w);
        assert!(
            s.contains("4 upgrades to /echo, 2.0 upgrades/s; 40 messages sent, 39 echoed"),
            "{s}"
        );
        assert!(s.contains("upgrade p50 70"), "{s}");
        assert!(s.contains("close codes received: 1000 x3, 1011 x1"), "{s}");
        assert!(
            s.contains("1 failed upgrades (status 0, accept_key 1, timeout 0, other 0)"),
            "{s}"
        );
    }
}
