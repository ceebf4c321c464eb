//! `results.csv`: one row per design and sweep point, the medians over rounds.

use std::fmt::Write as _;
use std::io;

use ringport_report::export::Exporter;

use crate::results::BenchResults;

/// `results.csv` as an exporter of the result model ([`Exporter`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Csv;

impl Exporter<BenchResults> for Csv {
    fn write(&self, results: &BenchResults, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(render(results).as_bytes())
    }
}

/// The columns, in order.
pub const HEADER: &[&str] = &[
    "design",
    "size_bytes",
    "connections",
    "rounds",
    "msgs_per_s",
    "ratio_to_best",
    "p50_us",
    "p99_us",
    "p999_us",
    "server_user_s",
    "server_sys_s",
    "server_cpu_us_per_msg",
    "cpu_ratio_to_best",
    "server_peak_rss_kib",
    "client_cpu_pct",
    "errors",
    "messages",
    "spread",
    "others_cpu_pct",
];

/// A field quoted as RFC 4180 asks when it holds a comma, a quote or a line break.
pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or(String::new(), |v| format!("{v:.decimals$}"))
}

/// The CSV text: a header line, then one line per point.
pub fn render(results: &BenchResults) -> String {
    let mut out = HEADER.join(",");
    out.push('\n');
    for p in &results.points {
        let m = &p.median;
        let _ = writeln!(
            out,
            "{},{},{},{},{:.1},{:.4},{},{},{},{:.3},{:.3},{},{},{},{:.1},{},{},{:.4},{:.1}",
            field(&p.design),
            p.size,
            p.connections,
            p.rounds.len(),
            m.msgs_per_s,
            p.ratio_to_best,
            m.p50_us,
            m.p99_us,
            m.p999_us,
            m.server_user_s,
            m.server_sys_s,
            opt(m.server_cpu_us_per_msg, 3),
            opt(p.cpu_ratio_to_best, 4),
            m.server_peak_rss_kib,
            m.client_cpu_pct,
            m.errors,
            m.messages,
            p.spread,
            m.others_cpu_pct,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixture;

    /// Splits one CSV line into fields (quotes as [`field`] writes them).
    fn split(line: &str) -> Vec<String> {
        let (mut fields, mut cur, mut quoted, mut chars) =
            (Vec::new(), String::new(), false, line.chars().peekable());
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    cur.push('"');
                    chars.next();
                }
                ('"', _) => quoted = !quoted,
                (',', false) => fields.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            }
        }
        fields.push(cur);
        fields
    }

    #[test]
    fn header_and_rows() {
        let text = render(&fixture::results());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(split(lines[0]), HEADER);
        for l in &lines[1..] {
            assert_eq!(split(l).len(), HEADER.len(), "{l}");
        }
        let row = split(lines[4]);
        assert_eq!(row[0], "my,echo");
        assert_eq!(row[2], "100");
        assert_eq!(row[4], "50000.0");
        assert_eq!(row[5], "0.2500");
        assert_eq!(row[15], "7");
        assert!(lines[4].starts_with("\"my,echo\","));
    }

    #[test]
    fn quoting() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a\"b"), "\"a\"\"b\"");
    }
}
