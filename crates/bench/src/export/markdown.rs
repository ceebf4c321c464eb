//! The report printed on standard output: GitHub-flavoured markdown.
//!
//! The head names the machine, the load and the sweep; then one table per message size (each
//! row names its size too, so a row copied elsewhere keeps it), each design's figures with its
//! ratio to the best at that point (throughput: higher is better, so the best is 1.00x; server
//! CPU per round trip: lower is better, so the best is 1.00x and 2.00x costs twice as much); the
//! largest connection count each design served without error; the warnings. A client-bound
//! row's throughput is marked `†` and never the bold best; its ratio is shown as a lower bound
//! (`≥`), with a note under the table.

use std::fmt::Write as _;
use std::io;

use ringport_report::export::Exporter;

use crate::aggregate::CLIENT_BOUND_PCT;
use crate::results::{size_label, BenchResults, PointResult};

/// The markdown report as an exporter of the result model ([`Exporter`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Markdown;

impl Exporter<BenchResults> for Markdown {
    fn write(&self, results: &BenchResults, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(render(results).as_bytes())
    }
}

/// Whole numbers with thousands separators (the charts' own, from the result model).
pub use ringport_report::export::chart::thousands;

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A ratio to the best: `**1.00x**` for the best itself; for any other, two decimals, or three
/// where two would round it to look like the best (`0.996x`).
pub fn ratio(x: f64) -> String {
    if (x - 1.0).abs() < 1e-9 {
        return "**1.00x**".to_string();
    }
    plain_ratio(x)
}

/// A ratio as [`ratio`] writes it, never bold.
fn plain_ratio(x: f64) -> String {
    if (x - 1.0).abs() < 1e-9 {
        return "1.00x".to_string();
    }
    let two = format!("{x:.2}");
    if two == "1.00" {
        format!("{x:.3}x")
    } else {
        format!("{two}x")
    }
}

/// The head: date, machine, pinning, load, designs and what each ran on.
pub fn head(r: &BenchResults) -> String {
    let e = &r.environment;
    let s = &r.settings;
    let mut out = String::new();
    let _ = writeln!(out, "# ringport bench, {}", e.date);
    let _ = writeln!(out);
    let cpu = if e.cpu_model.is_empty() {
        String::new()
    } else {
        format!(" ({})", e.cpu_model)
    };
    let _ = writeln!(
        out,
        "- machine: {}, Linux {}, {} CPUs{cpu}, {:.1} GiB; load average {:.2} at start; \
         io_uring {}; ringport {}",
        e.hostname,
        e.kernel,
        e.cpus,
        e.memory_mib as f64 / 1024.0,
        e.load_average,
        e.io_uring,
        e.ringport_version
    );
    let pin = match (e.server_cpu, e.load_cpu) {
        (Some(a), Some(b)) => format!("server pinned to CPU {a}, load to CPU {b}"),
        _ => "unpinned".to_string(),
    };
    let workers = s
        .server_threads
        .map_or("default".to_string(), |n| n.to_string());
    let _ = writeln!(
        out,
        "- load: closed loop, {} message in flight per connection, random bytes verified on \
         every echo; {} client thread(s); {pin}; completion-model workers: {workers}",
        s.pipeline, s.client_threads
    );
    let list = |v: &[usize], f: &dyn Fn(usize) -> String| {
        v.iter().map(|&x| f(x)).collect::<Vec<_>>().join(", ")
    };
    let extra = s
        .extra_points
        .iter()
        .map(|p| format!("; and {} x {}", size_label(p.size), p.connections))
        .collect::<String>();
    let _ = writeln!(
        out,
        "- sweep: {} messages x {} connections{extra}",
        list(&s.sizes, &size_label),
        list(&s.connections, &|c| c.to_string())
    );
    let _ = writeln!(
        out,
        "- each point: {:.1} s measured after {:.1} s of warm-up, {} round(s) interleaved, \
         median shown{}",
        s.duration_s,
        s.warmup_s,
        s.repeat,
        if s.quick { " (--quick)" } else { "" }
    );
    for d in &r.designs {
        let _ = writeln!(
            out,
            "- `{}`: {}{}",
            d.name,
            d.backend.as_deref().unwrap_or(&d.command),
            d.note
                .as_deref()
                .map_or(String::new(), |n| format!(" ({n})"))
        );
    }
    out
}

/// Marks a client-bound point's throughput in the tables.
pub const CLIENT_BOUND_MARK: &str = "†";

/// A point's throughput ratio: bold for the best; for a client-bound point (never the best),
/// `≥` and plain when it is to a point that was not client-bound (the server could have done
/// more than the load generator asked), plain when every design there was client-bound.
fn throughput_ratio(r: &BenchResults, p: &PointResult) -> String {
    if !p.client_bound {
        return ratio(p.ratio_to_best);
    }
    let trusted_peer = r
        .points
        .iter()
        .any(|q| q.size == p.size && q.connections == p.connections && !q.client_bound);
    if trusted_peer {
        format!("≥{}", plain_ratio(p.ratio_to_best))
    } else {
        plain_ratio(p.ratio_to_best)
    }
}

/// The table of one message size; a note under it when a row is client-bound.
pub fn table(r: &BenchResults, size: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| size | conns | design | msgs/s | vs best | p50 µs | p99 µs | p99.9 µs | server user s | \
         server sys s | server µs/msg | vs best | server peak RSS | client CPU | errors |"
    );
    let _ = writeln!(
        out,
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let label = size_label(size);
    let mut bound_rows = false;
    for c in r.connections_of(size) {
        for d in &r.designs {
            let Some(p) = r.point(&d.name, size, c) else {
                continue;
            };
            let m = &p.median;
            let best = ratio;
            let mark = if p.client_bound {
                bound_rows = true;
                format!(" {CLIENT_BOUND_MARK}")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "| {label} | {c} | {} | {}{mark} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {} | {} | {:.0}% | {} |",
                d.name,
                thousands(m.msgs_per_s),
                throughput_ratio(r, p),
                m.p50_us,
                m.p99_us,
                m.p999_us,
                m.server_user_s,
                m.server_sys_s,
                m.server_cpu_us_per_msg
                    .map_or("-".to_string(), |v| format!("{v:.2}")),
                p.cpu_ratio_to_best.map_or("-".to_string(), best),
                mib(m.server_peak_rss_kib),
                m.client_cpu_pct,
                m.errors
            );
        }
    }
    if bound_rows {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{CLIENT_BOUND_MARK} client-bound: a load thread at {CLIENT_BOUND_PCT:.0}% or more \
             of a core, so msgs/s is the load generator's limit and its ratio (≥) a lower bound, \
             never the best; compare server µs/msg there."
        );
    }
    out
}

/// The whole report.
pub fn render(r: &BenchResults) -> String {
    let mut out = head(r);
    for size in r.sizes() {
        let _ = writeln!(out);
        let _ = writeln!(out, "## {} messages", size_label(size));
        let _ = writeln!(out);
        out.push_str(&table(r, size));
    }
    let churn = crate::churn::markdown(r);
    if !churn.is_empty() {
        let _ = writeln!(out);
        out.push_str(&churn);
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Largest connection count served without errors: {}",
        r.designs
            .iter()
            .map(|d| format!(
                "{} {}",
                d.name,
                d.max_clean_connections
                    .map_or("none".to_string(), |c| c.to_string())
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !r.warnings.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Warnings:");
        let _ = writeln!(out);
        for w in &r.warnings {
            let _ = writeln!(out, "- {}", w.message);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixture;

    #[test]
    fn numbers() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(ratio(1.0), "**1.00x**");
        assert_eq!(ratio(0.5), "0.50x");
        assert_eq!(ratio(0.9956), "0.996x");
        assert_eq!(ratio(1.0004), "1.000x");
    }

    #[test]
    fn report_has_head_table_capacity_and_warnings() {
        let text = render(&fixture::results());
        assert!(
            text.starts_with("# ringport bench, 2025-01-31T12:00:00Z\n"),
            "{text}"
        );
        assert!(text.contains("Linux 6.18.0, 2 CPUs (Test CPU)"), "{text}");
        assert!(
            text.contains("server pinned to CPU 0, load to CPU 1"),
            "{text}"
        );
        assert!(text.contains("`completion-uring`: io_uring (setup flags: SINGLE_ISSUER)"));
        assert!(text.contains("## 64 B messages"));
        assert!(
            text.contains("- sweep: 64 B messages x 1, 100 connections; and 64 KiB x 10\n"),
            "{text}"
        );
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(rows.len(), 5, "header and four points:\n{text}");
        let cols = rows[0].matches('|').count();
        assert!(
            rows.iter().all(|r| r.matches('|').count() == cols),
            "{text}"
        );
        assert!(
            rows[1]
                .starts_with("| 64 B | 1 | completion-uring | 40,000 | **1.00x** | 10 | 40 | 80 |"),
            "{}",
            rows[1]
        );
        assert!(
            rows[4].starts_with("| 64 B | 100 | my,echo | 50,000 | 0.25x |"),
            "{}",
            rows[4]
        );
        assert!(rows[4].ends_with("| 6.0 MiB | 98% | 7 |"), "{}", rows[4]);
        assert!(text.contains("completion-uring 100, my,echo 1"), "{text}");
        assert!(text.contains("- my,echo: 7 errors at 64 B x 100"), "{text}");
    }

    #[test]
    fn each_size_has_its_table_and_every_row_names_its_size() {
        let mut r = fixture::results();
        let mut bulk = r.points[0].clone();
        bulk.size = 65536;
        bulk.connections = 10;
        r.points.push(bulk);
        let text = render(&r);
        let small = text.find("## 64 B messages").expect("64 B table");
        let large = text.find("## 64 KiB messages").expect("64 KiB table");
        assert!(small < large, "{text}");
        let rows: Vec<&str> = text[large..]
            .lines()
            .filter(|l| l.starts_with("| 64 KiB |"))
            .collect();
        assert_eq!(rows.len(), 1, "{text}");
        assert!(rows[0].starts_with("| 64 KiB | 10 | completion-uring |"));
    }

    /// Issue 14: the bold "best" landed on exactly the points the warnings call client-bound.
    /// Such a row is marked, its ratio shown as a lower bound, and the bold goes to the best of
    /// the others.
    #[test]
    fn bold_best_is_never_a_client_bound_row() {
        let mut r = fixture::results();
        // At 100 connections completion-uring was the fastest but client-bound; my,echo at
        // 0.25x of it was not: the best is my,echo, completion-uring is at least 4x it.
        for p in r.points.iter_mut().filter(|p| p.connections == 100) {
            if p.design == "completion-uring" {
                p.client_bound = true;
                p.ratio_to_best = 4.0;
            } else {
                p.ratio_to_best = 1.0;
            }
        }
        // At 1 connection both were client-bound: no row is the bold best.
        for p in r.points.iter_mut().filter(|p| p.connections == 1) {
            p.client_bound = true;
        }
        let text = render(&r);
        let row = |design: &str, conns: usize| {
            text.lines()
                .find(|l| l.starts_with(&format!("| 64 B | {conns} | {design} |")))
                .unwrap_or_else(|| panic!("no row {design} x {conns}:\n{text}"))
                .to_string()
        };
        let cells =
            |l: &str| -> Vec<String> { l.split('|').map(|c| c.trim().to_string()).collect() };
        let bound = cells(&row("completion-uring", 100));
        assert_eq!(bound[4], "200,000 †", "{bound:?}");
        assert_eq!(bound[5], "≥4.00x", "{bound:?}");
        let trusted = cells(&row("my,echo", 100));
        assert_eq!(trusted[4], "50,000", "{trusted:?}");
        assert_eq!(trusted[5], "**1.00x**", "{trusted:?}");
        for design in ["completion-uring", "my,echo"] {
            let c = cells(&row(design, 1));
            assert!(c[4].ends_with(" †") && !c[5].contains("**"), "{c:?}");
        }
        assert_eq!(cells(&row("completion-uring", 1))[5], "1.00x");
        assert!(
            text.contains("† client-bound: a load thread at 90% or more"),
            "{text}"
        );
    }

    #[test]
    fn no_client_bound_note_without_client_bound_rows() {
        let text = render(&fixture::results());
        assert!(!text.contains('†'), "{text}");
    }
}
