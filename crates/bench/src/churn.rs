//! The churn point: every design under the same connection churn, reported as connections per
//! second and connect latency beside the sweep.
//!
//! This module is responsible for the churn point from end to end, so the sweep's modules stay
//! as they are: its settings ([`ChurnPoint`]), the runs it adds to the plan ([`plan`]), its
//! measurement with the stress engine's `--messages-per-connection` (`measure`, Linux), its
//! figures and their medians ([`ChurnFigures`], [`ChurnPointResult`], [`results`]), its warnings,
//! and its outputs: a markdown table ([`markdown`]) and a chart ([`chart`]) beside the sweep's,
//! and the `churn` array of `results.json`.
//!
//! Each of `connections` client slots opens a connection, makes `messages_per_connection`
//! verified round trips of `size` bytes, closes it (a FIN) and connects again, for the point's
//! duration. A thread-per-client server starts and ends a thread for every connection; the
//! completion model only takes a slot in its table: the table shows what each pays.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::median::Rounds;
use crate::results::{size_label, BenchResults, Warning, WarningKind};
use crate::schedule::{BenchConfig, Design};

/// Client connection slots of the default churn point.
pub const CHURN_CONNECTIONS: usize = 10;
/// Round trips per connection of the default churn point.
pub const CHURN_MESSAGES: u64 = 10;
/// Message size of the churn point, bytes.
pub const CHURN_SIZE: usize = 64;
/// Connects per second at most (`--connect-rate`) at the churn point: high enough not to hold
/// back any design on a small machine, below the rate at which loopback's reuse of `TIME_WAIT`
/// ports (after one second) would run out of the default 28,232 ephemeral ports.
pub const CHURN_CONNECT_RATE: f64 = 25_000.0;
/// Measured time of the churn point in the `--quick` preset (no warm-up), so it adds a few
/// seconds only.
pub const QUICK_CHURN_DURATION: Duration = Duration::from_secs(1);

/// The churn point's settings: the `settings.churn` object of `results.json`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChurnPoint {
    /// Client connection slots, each reconnecting in turn.
    pub connections: usize,
    /// Verified round trips on each connection before it closes.
    pub messages_per_connection: u64,
    /// Message size, bytes.
    pub size: usize,
    /// Measured seconds per round.
    pub duration_s: f64,
    /// Seconds of churn before measuring.
    pub warmup_s: f64,
    /// Connects per second at most.
    pub connect_rate: f64,
}

impl ChurnPoint {
    /// The default point (10 connections, 10 round trips each, 64 B) for `duration` after
    /// `warmup`.
    pub fn new(duration: Duration, warmup: Duration) -> ChurnPoint {
        ChurnPoint {
            connections: CHURN_CONNECTIONS,
            messages_per_connection: CHURN_MESSAGES,
            size: CHURN_SIZE,
            duration_s: duration.as_secs_f64(),
            warmup_s: warmup.as_secs_f64(),
            connect_rate: CHURN_CONNECT_RATE,
        }
    }

    /// How long its runs take, about, for `designs` designs and `repeat` rounds.
    pub fn estimate(&self, runs: usize) -> Duration {
        let one = Duration::from_secs_f64(self.duration_s + self.warmup_s)
            + crate::schedule::RUN_OVERHEAD;
        one * u32::try_from(runs).unwrap_or(u32::MAX)
    }

    /// Checks it.
    ///
    /// # Errors
    ///
    /// A message naming the problem.
    pub fn validate(&self) -> Result<(), String> {
        if self.connections == 0 || self.messages_per_connection == 0 || self.size == 0 {
            return Err("the churn point needs connections, messages and bytes".into());
        }
        if self.duration_s.is_nan() || self.duration_s <= 0.0 {
            return Err("the churn point's duration must be more than 0 seconds".into());
        }
        Ok(())
    }
}

/// One run of the churn point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChurnRun {
    /// Index into [`BenchConfig::designs`].
    pub design: usize,
    /// Round, from 0.
    pub round: usize,
}

/// Whether `design` runs at the churn point: not one that serves one client at a time (the
/// other slots would wait in its backlog, measuring the timeout).
pub fn runs_at_churn(design: &Design) -> bool {
    !design.one_client_at_a_time()
}

/// The churn point's runs of `config`, after the sweep: rounds, then designs (interleaved as
/// the sweep's). None without a churn point.
pub fn plan(config: &BenchConfig) -> Vec<ChurnRun> {
    if config.churn.is_none() {
        return Vec::new();
    }
    let mut runs = Vec::new();
    for round in 0..config.repeat {
        for (design, d) in config.designs.iter().enumerate() {
            if runs_at_churn(d) {
                runs.push(ChurnRun { design, round });
            }
        }
    }
    runs
}

/// What one churn run (or the median of several) measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChurnFigures {
    /// Connections established per second in the measured window.
    pub connections_per_s: f64,
    /// Connections established in the whole run (warm-up included).
    pub connections: u64,
    /// Connect latency, median, microseconds.
    pub connect_p50_us: u64,
    /// Connect latency, 99th percentile, microseconds.
    pub connect_p99_us: u64,
    /// Connect latency, 99.9th percentile, microseconds.
    pub connect_p999_us: u64,
    /// Verified round trips per second.
    pub msgs_per_s: f64,
    /// Round-trip latency, 99th percentile, microseconds.
    pub p99_us: u64,
    /// Server CPU (user + system) per connection made in the measured window, microseconds;
    /// `null` when none was.
    pub server_cpu_us_per_connection: Option<f64>,
    /// Server peak resident memory, KiB.
    pub server_peak_rss_kib: u64,
    /// Failed connections (refused, reset, timeout, EADDRNOTAVAIL, other).
    pub failed_connections: u64,
    /// Errors of every kind, verification included.
    pub errors: u64,
}

/// One design at the churn point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChurnPointResult {
    /// The design's name.
    pub design: String,
    /// Median over the rounds of each figure (errors: the largest count).
    pub median: ChurnFigures,
    /// Median connections per second divided by the best design's (1.0 = best).
    pub ratio_to_best: f64,
    /// Each round's figures, in the order they ran.
    pub rounds: Vec<ChurnFigures>,
}

/// The figure-by-figure median of `rounds` (see [`median`](crate::median)); errors are the
/// largest count of any round.
pub fn median_figures(rounds: &[ChurnFigures]) -> ChurnFigures {
    let r = Rounds(rounds);
    ChurnFigures {
        connections_per_s: r.median(|r| r.connections_per_s),
        connections: r.median_count(|r| r.connections),
        connect_p50_us: r.median_count(|r| r.connect_p50_us),
        connect_p99_us: r.median_count(|r| r.connect_p99_us),
        connect_p999_us: r.median_count(|r| r.connect_p999_us),
        msgs_per_s: r.median(|r| r.msgs_per_s),
        p99_us: r.median_count(|r| r.p99_us),
        server_cpu_us_per_connection: r.median_of_some(|r| r.server_cpu_us_per_connection),
        server_peak_rss_kib: r.median_count(|r| r.server_peak_rss_kib),
        failed_connections: r.max(|r| r.failed_connections),
        errors: r.max(|r| r.errors),
    }
}

/// Groups `runs` (`(design, figures)` in the order they ran) by design, takes medians and sets
/// each design's ratio to the best connections per second.
pub fn results(runs: &[(String, ChurnFigures)]) -> Vec<ChurnPointResult> {
    let mut out: Vec<ChurnPointResult> = Vec::new();
    for (design, _) in runs {
        if out.iter().any(|p| &p.design == design) {
            continue;
        }
        let rounds: Vec<ChurnFigures> = runs
            .iter()
            .filter(|(d, _)| d == design)
            .map(|(_, f)| f.clone())
            .collect();
        out.push(ChurnPointResult {
            design: design.clone(),
            median: median_figures(&rounds),
            ratio_to_best: 0.0,
            rounds,
        });
    }
    let best = out
        .iter()
        .map(|p| p.median.connections_per_s)
        .fold(0.0, f64::max);
    for p in &mut out {
        p.ratio_to_best = if best > 0.0 {
            p.median.connections_per_s / best
        } else {
            0.0
        };
    }
    out
}

/// A warning for each design whose churn runs had errors.
pub fn warnings(results: &[ChurnPointResult]) -> Vec<Warning> {
    results
        .iter()
        .filter(|p| p.median.errors > 0)
        .map(|p| Warning {
            kind: WarningKind::Errors,
            design: Some(p.design.clone()),
            message: format!(
                "{}: {} errors at the churn point ({} failed connections: refused, reset, \
                 timeout or no free port): run `ringport stress --messages-per-connection` \
                 against it to see the first",
                p.design, p.median.errors, p.median.failed_connections
            ),
        })
        .collect()
}

/// Loads `server` with the churn point and returns the figures, or why the load could not run.
#[cfg(unix)]
pub fn measure(
    server: &mut crate::server::ServerProcess,
    point: &ChurnPoint,
    timeout: Duration,
    client_threads: usize,
) -> Result<ChurnFigures, String> {
    use ringport_stress::config::StressConfig;
    use ringport_stress::engine::{self, RunOptions};

    let stress = StressConfig {
        host: server.addr.ip().to_string(),
        port: server.addr.port(),
        size: Some(point.size),
        connections: point.connections,
        duration: Some(Duration::from_secs_f64(point.duration_s)),
        warmup: Duration::from_secs_f64(point.warmup_s),
        threads: client_threads,
        timeout,
        connect_rate: point.connect_rate,
        messages_per_connection: Some(point.messages_per_connection),
        ..StressConfig::default()
    };
    server.start_sampling();
    let outcome = engine::run_with(&stress, &RunOptions::default());
    let samples = server.finish_sampling();
    let outcome = outcome.map_err(|e| e.to_string())?;
    let report = &outcome.report;
    let churn = report
        .churn
        .as_ref()
        .ok_or("the stress engine reported no churn figures")?;
    let from = outcome.measure_started;
    let to = from + outcome.measured;
    let (user, system) = crate::procfs::cpu_between(&samples, from, to).unwrap_or_default();
    let made = churn.connections_per_s * report.duration_s;
    Ok(ChurnFigures {
        connections_per_s: churn.connections_per_s,
        connections: churn.connections,
        connect_p50_us: churn.connect_latency_us.p50,
        connect_p99_us: churn.connect_latency_us.p99,
        connect_p999_us: churn.connect_latency_us.p999,
        msgs_per_s: report.msgs_per_s,
        p99_us: report.latency_us.p99,
        server_cpu_us_per_connection: (made >= 1.0)
            .then(|| (user + system).as_secs_f64() * 1e6 / made),
        server_peak_rss_kib: crate::procfs::peak_rss_kib(&samples),
        failed_connections: churn.errors.total(),
        errors: report.errors,
    })
}

/// The churn section of the markdown report: a heading naming the point, one row per design.
/// Empty without a churn point.
pub fn markdown(r: &BenchResults) -> String {
    let (Some(point), false) = (&r.settings.churn, r.churn.is_empty()) else {
        return String::new();
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Churn: {} connections, each closed and reopened after {} round trips of {}",
        point.connections,
        point.messages_per_connection,
        size_label(point.size)
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| design | conns/s | vs best | connect p50 µs | connect p99 µs | connect p99.9 µs | \
         msgs/s | p99 µs | server µs/conn | server peak RSS | failed conns | errors |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for p in &r.churn {
        let m = &p.median;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} MiB | {} | {} |",
            p.design,
            crate::export::markdown::thousands(m.connections_per_s),
            crate::export::markdown::ratio(p.ratio_to_best),
            m.connect_p50_us,
            m.connect_p99_us,
            m.connect_p999_us,
            crate::export::markdown::thousands(m.msgs_per_s),
            m.p99_us,
            m.server_cpu_us_per_connection
                .map_or("-".to_string(), |v| format!("{v:.1}")),
            m.server_peak_rss_kib as f64 / 1024.0,
            m.failed_connections,
            m.errors
        );
    }
    out
}

/// `churn.svg`: connections per second of each design at the churn point, one bar each, its
/// connect p99 written above it; `None` without churn results.
///
/// # Errors
///
/// A message from plotters when the chart cannot be drawn.
pub fn chart(r: &BenchResults) -> Result<Option<(String, String)>, String> {
    use plotters::prelude::*;
    let Some(point) = &r.settings.churn else {
        return Ok(None);
    };
    if r.churn.is_empty() {
        return Ok(None);
    }
    let mut svg = String::new();
    let mut hover = ringport_report::export::chart::Hover::default();
    {
        let root = SVGBackend::with_string(&mut svg, (860, 540)).into_drawing_area();
        let mut draw = || -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
            root.fill(&WHITE)?;
            let n = r.churn.len();
            let top = r
                .churn
                .iter()
                .map(|p| p.median.connections_per_s)
                .fold(1.0, f64::max);
            let names: Vec<String> = r.churn.iter().map(|p| p.design.clone()).collect();
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    format!(
                        "Connections per second, {} slots x {} round trips of {} each (higher is \
                         better)",
                        point.connections,
                        point.messages_per_connection,
                        size_label(point.size)
                    ),
                    ("sans-serif", 18),
                )
                .margin(16)
                .x_label_area_size(44)
                .y_label_area_size(84)
                .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..top * 1.2)?;
            let label = |x: &f64| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            };
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n.max(2) * 2 + 1)
                .x_label_formatter(&label)
                .y_desc("connections per second (connect p99 above each bar)")
                .y_label_formatter(&|y: &f64| crate::export::markdown::thousands(*y))
                .draw()?;
            for (i, p) in r.churn.iter().enumerate() {
                let color = crate::export::svg::color(i);
                let x = i as f64;
                let y = p.median.connections_per_s;
                hover.add(
                    chart.backend_coord(&(x, y)),
                    format!(
                        "{}: {} connections/s, connect p50 {} µs, p99 {} µs, p99.9 {} µs",
                        p.design,
                        ringport_report::export::chart::exact(y),
                        p.median.connect_p50_us,
                        p.median.connect_p99_us,
                        p.median.connect_p999_us
                    ),
                );
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x - 0.3, 0.0), (x + 0.3, y)],
                    color.filled(),
                )))?;
                chart.draw_series(std::iter::once(Text::new(
                    format!(
                        "{} /s, connect p99 {} µs",
                        crate::export::markdown::thousands(y),
                        p.median.connect_p99_us
                    ),
                    (x - 0.3, y + top * 0.04),
                    ("sans-serif", 13),
                )))?;
            }
            Ok(())
        };
        draw().map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    hover.apply(&mut svg);
    Ok(Some(("churn.svg".to_string(), svg)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixture;

    fn figures(rate: f64, errors: u64) -> ChurnFigures {
        ChurnFigures {
            connections_per_s: rate,
            connections: (rate * 2.0) as u64,
            connect_p50_us: 40,
            connect_p99_us: 120,
            connect_p999_us: 300,
            msgs_per_s: rate * 10.0,
            p99_us: 90,
            server_cpu_us_per_connection: Some(25.0),
            server_peak_rss_kib: 4096,
            failed_connections: errors,
            errors,
        }
    }

    #[test]
    fn the_plan_runs_every_design_but_single_each_round() {
        let mut c = BenchConfig::new("ringport".into());
        c.repeat = 2;
        let runs = plan(&c);
        assert_eq!(
            runs.len(),
            2 * 3,
            "completion x2 and threaded, twice: {runs:?}"
        );
        assert!(runs
            .iter()
            .all(|r| !c.designs[r.design].one_client_at_a_time()));
        c.churn = None;
        assert!(plan(&c).is_empty());
    }

    #[test]
    fn medians_ratios_and_warnings() {
        let runs = vec![
            ("a".to_string(), figures(1000.0, 0)),
            ("b".to_string(), figures(250.0, 0)),
            ("a".to_string(), figures(3000.0, 0)),
            ("b".to_string(), figures(350.0, 2)),
            ("a".to_string(), figures(2000.0, 0)),
            ("b".to_string(), figures(300.0, 0)),
        ];
        let r = results(&runs);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].median.connections_per_s, 2000.0);
        assert_eq!(r[0].ratio_to_best, 1.0);
        assert_eq!(r[1].median.connections_per_s, 300.0);
        assert!((r[1].ratio_to_best - 0.15).abs() < 1e-9);
        assert_eq!(r[1].median.errors, 2, "errors: the largest count");
        let w = warnings(&r);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].design.as_deref(), Some("b"));
    }

    fn with_churn() -> BenchResults {
        let mut r = fixture::results();
        r.settings.churn = Some(ChurnPoint::new(Duration::from_secs(1), Duration::ZERO));
        r.churn = results(&[
            ("completion-uring".to_string(), figures(20000.0, 0)),
            ("my,echo".to_string(), figures(5000.0, 0)),
        ]);
        r
    }

    #[test]
    fn the_markdown_table_has_a_row_per_design() {
        let text = markdown(&with_churn());
        assert!(
            text.starts_with(
                "## Churn: 10 connections, each closed and reopened after 10 round trips of 64 B"
            ),
            "{text}"
        );
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(rows.len(), 3, "{text}");
        assert!(
            rows[1].starts_with("| completion-uring | 20,000 | **1.00x** | 40 | 120 | 300 |"),
            "{}",
            rows[1]
        );
        assert!(
            rows[2].starts_with("| my,echo | 5,000 | 0.25x |"),
            "{}",
            rows[2]
        );
        assert_eq!(
            markdown(&fixture::results()),
            "",
            "no churn point, no section"
        );
    }

    #[test]
    fn the_chart_is_an_svg_with_every_design() {
        let (name, svg) = chart(&with_churn()).unwrap().unwrap();
        assert_eq!(name, "churn.svg");
        let doc = roxmltree::Document::parse(&svg).unwrap();
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        for d in ["completion-uring", "my,echo", "connect p99 120"] {
            assert!(svg.contains(d), "no {d} in the chart");
        }
        assert!(chart(&fixture::results()).unwrap().is_none());
    }
}
