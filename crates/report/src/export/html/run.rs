//! The HTML page of a run or of a merged run ([`RunPage`]): the summary, errors by cause and
//! over time, throughput and latency over time from the per-second intervals, the latency
//! percentile spectrum (with the TLS handshakes' beside it), ramp steps, per-connection fairness,
//! churn, the TLS handshake figures, a UDP run's datagrams and jitter, each agent of a merge beside the whole, and the warnings.

use std::io;

use hdrhistogram::Histogram;

use super::{num, num_unit, text, Cell, Html, Page};
use crate::errors::ErrorKind;
use crate::export::chart::{exact, LineChart, Mark, Scale, Style};
use crate::export::Exporter;
use crate::hdrlog::{IntervalLog, TAG_HANDSHAKE, TAG_LATENCY, TAG_UNCORRECTED, TAG_UPGRADE};
use crate::histogram::LatencySummary;
use crate::run::StressReport;
use crate::tls::HandshakeFailure;
use crate::websocket::UpgradeFailure;

/// What the page of a run shows: its result, and its interval log when it has one (the
/// per-second intervals; without them the page has no chart over time, and the spectrum is
/// drawn from the summary's percentiles only).
#[derive(Debug, Clone, Copy)]
pub struct RunPage<'a> {
    /// The result (of one run, or merged).
    pub report: &'a StressReport,
    /// Its interval log.
    pub log: Option<&'a IntervalLog>,
}

impl Exporter<RunPage<'_>> for Html {
    fn write(&self, page: &RunPage<'_>, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(render(page).as_bytes())
    }
}

impl Exporter<StressReport> for Html {
    fn write(&self, report: &StressReport, out: &mut dyn io::Write) -> io::Result<()> {
        Html.write(&RunPage { report, log: None }, out)
    }
}

/// One second of the interval log: start (s), length (s), corrected and uncorrected
/// histograms (the latter in rate mode).
struct Second {
    start: f64,
    length: f64,
    latency: Histogram<u64>,
    uncorrected: Option<Histogram<u64>>,
}

/// The log's seconds, in time order; intervals that do not decode are left out.
fn seconds(log: &IntervalLog) -> Vec<Second> {
    let mut out: Vec<Second> = Vec::new();
    for i in &log.intervals {
        let Ok(h) = i.histogram() else { continue };
        let start = i.start.as_secs_f64();
        match i.tag.as_str() {
            TAG_LATENCY => out.push(Second {
                start,
                length: i.length.as_secs_f64(),
                latency: h,
                uncorrected: None,
            }),
            TAG_UNCORRECTED => {
                if let Some(s) = out.iter_mut().rev().find(|s| s.start == start) {
                    s.uncorrected = Some(h);
                }
            }
            _ => {}
        }
    }
    out.sort_by(|a, b| a.start.total_cmp(&b.start));
    out
}

fn render(p: &RunPage<'_>) -> String {
    let r = p.report;
    let merged = !r.merged_from.is_empty();
    let kind = if merged { "merge" } else { "stress" };
    let mut page = Page::new(kind, format!("ringport {kind} {}", r.target));
    page.verdict(r.passed(), &verdict(r));
    summary(&mut page, r);
    errors(&mut page, r);
    let secs = p.log.map(seconds).unwrap_or_default();
    over_time(&mut page, r, &secs);
    spectrum(&mut page, r, p.log);
    steps(&mut page, r);
    fairness(&mut page, r);
    churn(&mut page, r);
    tls(&mut page, r);
    datagrams(&mut page, r);
    websocket(&mut page, r);
    agents(&mut page, r);
    if !r.warnings.is_empty() {
        page.section("warnings", "Warnings");
        page.list("warnings", &r.warnings);
    }
    page.finish()
}

fn verdict(r: &StressReport) -> String {
    let unit = if r.stream.is_some() {
        "chunks"
    } else {
        "round trips"
    };
    let mut s = if r.errors > 0 {
        let kinds: Vec<String> = r
            .errors_by_kind
            .nonzero()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        format!(
            "FAILED: {} errors ({}); {} {unit} verified",
            exact(r.errors as f64),
            kinds.join(", "),
            exact(r.messages as f64)
        )
    } else if r.messages == 0 {
        "FAILED: no round trip was verified".to_string()
    } else {
        format!(
            "PASSED: {} {unit} verified byte for byte, no error",
            exact(r.messages as f64)
        )
    };
    if r.interrupted {
        s.push_str(" (interrupted: the figures cover the time it ran)");
    }
    s
}

fn mode(r: &StressReport) -> String {
    match (&r.stream, r.target_rate_total, r.ramp.as_deref()) {
        (Some(st), _, _) => format!("stream, window {} bytes per connection", st.window_bytes),
        (None, Some(_), Some("rate")) => "open loop, rate ramp".to_string(),
        (None, Some(rate), _) => format!("open loop at {} msg/s", exact(rate)),
        (None, None, Some("connections")) => "closed loop, connection ramp".to_string(),
        (None, None, _) => format!("closed loop, pipeline {}", r.pipeline),
    }
}

/// A table of latency summaries in µs, one row per `(label, JSON field, summary)`.
fn latency_table(page: &mut Page, id: &str, rows: &[(&str, &str, &LatencySummary)]) {
    let rows: Vec<(String, Vec<Cell>)> = rows
        .iter()
        .map(|&(label, key, l)| {
            let k = |f: &str| format!("{key}.{f}");
            (
                key.to_string(),
                vec![
                    text(label),
                    num(k("min"), l.min),
                    num(k("p50"), l.p50),
                    num(k("p90"), l.p90),
                    num(k("p99"), l.p99),
                    num(k("p999"), l.p999),
                    num(k("max"), l.max),
                    num(k("mean"), l.mean),
                    num(k("count"), l.count),
                ],
            )
        })
        .collect();
    page.table(
        id,
        &[
            "µs", "min", "p50", "p90", "p99", "p99.9", "max", "mean", "values",
        ],
        &rows,
    );
}

fn summary(page: &mut Page, r: &StressReport) {
    page.section("summary", "Summary");
    let mut rows: Vec<(&str, Cell)> = vec![
        ("target", text(&r.target)),
        ("mode", text(mode(r))),
        ("protocol", text(&r.protocol)),
        ("payload", text(&r.payload)),
        ("stop", text(&r.stop)),
        ("backend", text(&r.backend)),
        ("run id", text(&r.run_id)),
        ("connections", num("connections", r.connections)),
        (
            "of the whole run",
            num("connections_total", r.connections_total),
        ),
        (
            "established",
            num("connections_established", r.connections_established),
        ),
        ("client threads", num("threads", r.threads)),
        ("pipeline", num("pipeline", r.pipeline)),
        ("measured", num_unit("duration_s", r.duration_s, " s")),
        ("warm-up", num_unit("warmup_s", r.warmup_s, " s")),
        ("verified", num("messages", r.messages)),
        ("bytes", num("bytes", r.bytes)),
        ("throughput", num_unit("msgs_per_s", r.msgs_per_s, " msg/s")),
        ("", num_unit("mib_per_s", r.mib_per_s, " MiB/s")),
        ("errors", num("errors", r.errors)),
    ];
    if let Some(rate) = r.target_rate {
        rows.push(("target rate", num_unit("target_rate", rate, " msg/s")));
    }
    if let Some(sent) = r.sent_per_s {
        rows.push(("sent", num_unit("sent_per_s", sent, " msg/s")));
    }
    if let Some(st) = &r.stream {
        rows.push((
            "echoed",
            num_unit("stream.gbit_per_s", st.gbit_per_s, " Gbit/s"),
        ));
        rows.push(("", num_unit("stream.mib_per_s", st.mib_per_s, " MiB/s")));
    }
    page.figures("summary-table", &rows);
    let mut latencies = vec![(
        if r.latency_uncorrected_us.is_some() {
            "latency, corrected"
        } else if r.stream.is_some() {
            "chunk latency"
        } else {
            "round-trip latency"
        },
        "latency_us",
        &r.latency_us,
    )];
    if let Some(u) = &r.latency_uncorrected_us {
        latencies.push(("latency, uncorrected", "latency_uncorrected_us", u));
    }
    latencies.push(("connect", "connect_us", &r.connect_us));
    latency_table(page, "latency-table", &latencies);
    if !r.client_cpu_pct.is_empty() {
        let cpu: Vec<String> = r
            .client_cpu_pct
            .iter()
            .map(|c| format!("{c:.0}%"))
            .collect();
        page.note(&format!(
            "Client threads' CPU (100% is one core): {}. Latency is in microseconds{}.",
            cpu.join(", "),
            if r.latency_uncorrected_us.is_some() {
                "; corrected latency is measured from each message's intended send time \
                 (coordinated omission corrected), uncorrected from its actual send"
            } else {
                ""
            }
        ));
    }
}

fn errors(page: &mut Page, r: &StressReport) {
    page.section("errors", "Errors by cause");
    let rows: Vec<(String, Vec<Cell>)> = ErrorKind::ALL
        .iter()
        .map(|&k| {
            (
                k.as_str().to_string(),
                vec![
                    text(k.as_str()),
                    num(format!("errors_by_kind.{k}"), r.errors_by_kind.get(k)),
                ],
            )
        })
        .collect();
    page.table("errors-table", &["cause", "errors"], &rows);
    if let Some(e) = &r.first_error {
        page.paragraph(&format!(
            "First error: connection {}{}: {}",
            e.connection,
            e.offset.map(|o| format!(", byte {o}")).unwrap_or_default(),
            e.detail
        ));
    }
    if r.errors_over_time.is_empty() {
        return;
    }
    let before: u64 = r
        .errors_over_time
        .iter()
        .filter(|s| s.second.is_none())
        .map(|s| s.errors.total())
        .sum();
    if before > 0 {
        page.note(&format!(
            "{} errors before the measured phase (connecting, warm-up).",
            exact(before as f64)
        ));
    }
    let mut chart = LineChart::new(
        "Errors per second, by cause",
        "seconds from the start of the measured phase",
        "errors in the second",
    );
    chart.x_unit = " s".into();
    for k in ErrorKind::ALL {
        if r.errors_by_kind.get(k) == 0 {
            continue;
        }
        let pts: Vec<(f64, f64)> = r
            .errors_over_time
            .iter()
            .filter_map(|s| Some((s.second? as f64, s.errors.get(k) as f64)))
            .collect();
        if !pts.is_empty() {
            chart = chart.series(k.as_str(), pts, Style::LineDots);
        }
    }
    if !chart.series.is_empty() {
        page.chart("errors", chart.svg());
    }
}

fn over_time(page: &mut Page, r: &StressReport, secs: &[Second]) {
    page.section("over-time", "Over time");
    if secs.is_empty() {
        page.note(
            "No per-second intervals: the run was written without them (a result read back \
             without its interval log).",
        );
        return;
    }
    let unit = if r.stream.is_some() {
        "chunks"
    } else {
        "round trips"
    };
    let rate: Vec<(f64, f64)> = secs
        .iter()
        .filter(|s| s.length > 0.0)
        .map(|s| (s.start, s.latency.len() as f64 / s.length))
        .collect();
    let mut chart = LineChart::new(
        format!("Verified {unit} per second"),
        "seconds from the start of the measured phase",
        format!("{unit} per second"),
    )
    .series("verified", rate, Style::Line);
    chart.x_unit = " s".into();
    chart.y_unit = "/s".into();
    if let (Some(target), None) = (r.target_rate, &r.ramp) {
        chart
            .marks
            .push(Mark::Horizontal(target, "target rate".into()));
    }
    page.chart("throughput", chart.svg());
    let pct = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64;
    let percentiles = |pick: &dyn Fn(&Second) -> Option<&Histogram<u64>>, title: &str| {
        let series = |q: f64| -> Vec<(f64, f64)> {
            secs.iter()
                .filter_map(|s| {
                    pick(s)
                        .filter(|h| !h.is_empty())
                        .map(|h| (s.start, pct(h, q)))
                })
                .collect()
        };
        let mut c = LineChart::new(
            title,
            "seconds from the start of the measured phase",
            "µs (log)",
        )
        .series("p50", series(0.5), Style::Line)
        .series("p99", series(0.99), Style::Line)
        .series("p99.9", series(0.999), Style::Line);
        c.y_scale = Scale::Log;
        c.x_unit = " s".into();
        c.y_unit = " µs".into();
        c
    };
    let corrected_title = if r.latency_uncorrected_us.is_some() {
        "Latency per second, corrected (from the intended send time)"
    } else {
        "Latency per second"
    };
    page.chart("latency", percentiles(&corrected, corrected_title).svg());
    if r.latency_uncorrected_us.is_some() {
        page.chart(
            "latency-uncorrected",
            percentiles(
                &uncorrected,
                "Latency per second, uncorrected (from the actual send)",
            )
            .svg(),
        );
    }
}

fn corrected(s: &Second) -> Option<&Histogram<u64>> {
    Some(&s.latency)
}

fn uncorrected(s: &Second) -> Option<&Histogram<u64>> {
    s.uncorrected.as_ref()
}

/// The percentile spectrum of `h` as HdrHistogram's plotter draws it: value against quantile,
/// 5 steps per halving of the distance to 100%.
fn spectrum_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let n = h.len().max(1) as f64;
    let top = 1.0 - 1.0 / n.max(2.0);
    let mut pts: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .map(|v| {
            (
                v.quantile_iterated_to().min(top),
                v.value_iterated_to() as f64,
            )
        })
        .collect();
    pts.dedup_by(|b, a| a.0 == b.0 && a.1 == b.1);
    pts
}

fn spectrum(page: &mut Page, r: &StressReport, log: Option<&IntervalLog>) {
    page.section("spectrum", "Latency by percentile");
    let summary_points = |l: &LatencySummary| -> Vec<(f64, f64)> {
        vec![
            (0.0, l.min as f64),
            (0.5, l.p50 as f64),
            (0.9, l.p90 as f64),
            (0.99, l.p99 as f64),
            (0.999, l.p999 as f64),
        ]
    };
    let from_log = |tag: &str| log.and_then(|l| l.total(tag).ok().flatten());
    let corrected = from_log(TAG_LATENCY)
        .map(|h| spectrum_points(&h))
        .unwrap_or_else(|| summary_points(&r.latency_us));
    let name = if r.latency_uncorrected_us.is_some() {
        "corrected"
    } else {
        "latency"
    };
    let mut chart = LineChart::new(
        "Latency by percentile (HdrHistogram's percentile spectrum)",
        "percentile",
        "latency, µs",
    )
    .series(name, corrected, Style::LineDots);
    if let Some(u) = &r.latency_uncorrected_us {
        let pts = from_log(TAG_UNCORRECTED)
            .map(|h| spectrum_points(&h))
            .unwrap_or_else(|| summary_points(u));
        chart = chart.series("uncorrected", pts, Style::LineDots);
    }
    if let Some(t) = r.tls.as_ref().filter(|t| t.handshake_us.count > 0) {
        let pts = from_log(TAG_HANDSHAKE)
            .map(|h| spectrum_points(&h))
            .unwrap_or_else(|| summary_points(&t.handshake_us));
        chart = chart.series("handshake", pts, Style::LineDots);
    }
    if let Some(w) = r.websocket.as_ref().filter(|w| w.upgrade_us.count > 0) {
        let pts = from_log(TAG_UPGRADE)
            .map(|h| spectrum_points(&h))
            .unwrap_or_else(|| summary_points(&w.upgrade_us));
        chart = chart.series("upgrade", pts, Style::LineDots);
    }
    chart.x_scale = Scale::Nines;
    chart.y_unit = " µs".into();
    page.chart("spectrum", chart.svg());
    if log.is_none() {
        page.note("Drawn from the summary's percentiles: the run has no interval log here.");
    }
}

fn steps(page: &mut Page, r: &StressReport) {
    let (Some(steps), Some(which)) = (&r.steps, &r.ramp) else {
        return;
    };
    page.section("steps", "Ramp steps");
    let x_desc = if which == "rate" {
        "offered rate, msg/s"
    } else {
        "connections sending"
    };
    let xs = |f: &dyn Fn(&crate::run::StepFigures) -> f64| -> Vec<(f64, f64)> {
        steps.iter().map(|s| (s.target, f(s))).collect()
    };
    let mut chart = LineChart::new("Latency against the load, per step", x_desc, "µs (log)")
        .series("p50", xs(&|s| s.latency_us.p50 as f64), Style::LineDots)
        .series("p99", xs(&|s| s.latency_us.p99 as f64), Style::LineDots)
        .series("p99.9", xs(&|s| s.latency_us.p999 as f64), Style::LineDots);
    chart.y_scale = Scale::Log;
    chart.y_unit = " µs".into();
    page.chart("steps-latency", chart.svg());
    let mut chart = LineChart::new("Throughput against the load, per step", x_desc, "msg/s")
        .series("sent", xs(&|s| s.sent_per_s), Style::LineDots)
        .series("verified", xs(&|s| s.msgs_per_s), Style::LineDots);
    chart.y_unit = " msg/s".into();
    page.chart("steps-throughput", chart.svg());
    let rows: Vec<(String, Vec<Cell>)> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let k = |f: &str| format!("steps.{i}.{f}");
            (
                format!("step-{}", s.step),
                vec![
                    num(k("step"), s.step),
                    num_unit(k("start_s"), s.start_s, " s"),
                    num(k("target"), s.target),
                    num(k("sent_per_s"), s.sent_per_s),
                    num(k("msgs_per_s"), s.msgs_per_s),
                    num(k("latency_us.p50"), s.latency_us.p50),
                    num(k("latency_us.p99"), s.latency_us.p99),
                    num(k("latency_us.p999"), s.latency_us.p999),
                ],
            )
        })
        .collect();
    page.table(
        "steps-table",
        &[
            "step",
            "start",
            "target",
            "sent/s",
            "verified/s",
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
        ],
        &rows,
    );
}

fn fairness(page: &mut Page, r: &StressReport) {
    page.section("fairness", "Fairness: verified messages per connection");
    let what = if r.churn.is_some() {
        "connection slot (reconnecting)"
    } else {
        "connection"
    };
    page.figures(
        "fairness-table",
        &[
            ("fewest", num("fairness.min", r.fairness.min)),
            ("median", num("fairness.median", r.fairness.median)),
            ("most", num("fairness.max", r.fairness.max)),
        ],
    );
    // Each run of equal counts as a flat stretch over the connections holding it, fewest first.
    let mut pts = Vec::new();
    let mut rank = 0u64;
    for &[value, n] in &r.messages_per_connection {
        pts.push((rank as f64 + 1.0, value as f64));
        rank += n;
        if n > 1 {
            pts.push((rank as f64, value as f64));
        }
    }
    let mut chart = LineChart::new(
        format!("Verified messages per {what}, fewest first"),
        format!("{what}s, ranked"),
        "verified messages",
    )
    .series("messages", pts, Style::LineDots);
    chart.x_unit = format!(" ({what} rank)");
    page.chart("fairness", chart.svg());
}

fn churn(page: &mut Page, r: &StressReport) {
    let Some(c) = &r.churn else { return };
    page.section("churn", "Churn: connections closed and reopened");
    let rows: Vec<(&str, Cell)> = vec![
        (
            "messages per connection",
            num("churn.messages_per_connection", c.messages_per_connection),
        ),
        ("connections", num("churn.connections", c.connections)),
        ("attempts", num("churn.attempts", c.attempts)),
        (
            "rate",
            num_unit("churn.connections_per_s", c.connections_per_s, " conn/s"),
        ),
    ];
    page.figures("churn-table", &rows);
    latency_table(
        page,
        "churn-latency-table",
        &[("connect", "churn.connect_latency_us", &c.connect_latency_us)],
    );
}

fn tls(page: &mut Page, r: &StressReport) {
    let Some(t) = &r.tls else { return };
    page.section("tls", "TLS handshakes");
    let mut rows: Vec<(&str, Cell)> = Vec::new();
    if !t.version.is_empty() {
        rows.push(("version", text(&t.version)));
    }
    rows.extend([
        ("handshakes", num("tls.handshakes", t.handshakes)),
        ("full", num("tls.full", t.full)),
        ("resumed", num("tls.resumed", t.resumed)),
        (
            "rate",
            num_unit("tls.handshakes_per_s", t.handshakes_per_s, " handshakes/s"),
        ),
        ("failed", text(exact(t.failed.total() as f64))),
    ]);
    page.figures("tls-table", &rows);
    latency_table(
        page,
        "tls-latency-table",
        &[("handshake", "tls.handshake_us", &t.handshake_us)],
    );
    let failed: Vec<(String, Vec<Cell>)> = HandshakeFailure::ALL
        .iter()
        .map(|&c| {
            (
                format!("tls-failed-{c}"),
                vec![
                    text(c.as_str()),
                    num(format!("tls.failed.{c}"), t.failed.get(c)),
                ],
            )
        })
        .collect();
    page.table("tls-failed-table", &["cause", "failed handshakes"], &failed);
    page.note(
        "Handshake latency is from the TCP connection established to the handshake complete \
         (the spectrum draws it beside the round trips'). The rate counts handshakes in the \
         measured window: without churn every handshake comes before it, and the rate is 0.",
    );
}

/// A UDP run's datagrams (every count exact) and jitter.
fn datagrams(page: &mut Page, r: &StressReport) {
    let Some(d) = &r.datagrams else { return };
    page.section("datagrams", "UDP datagrams");
    let mut rows: Vec<(&str, Cell)> = vec![
        ("sent", num("datagrams.sent", d.sent)),
        ("echoed", num("datagrams.echoed", d.echoed)),
        ("lost", num("datagrams.lost", d.lost)),
        ("duplicated", num("datagrams.duplicated", d.duplicated)),
        ("reordered", num("datagrams.reordered", d.reordered)),
        ("corrupted", num("datagrams.corrupted", d.corrupted)),
        ("loss", text(format!("{:.3}%", d.loss_pct()))),
    ];
    if let Some(max) = r.max_loss_pct {
        rows.push(("loss allowed", num_unit("max_loss_pct", max, "%")));
    }
    if let Some(j) = &r.jitter_us {
        rows.extend([
            ("jitter, mean", num_unit("jitter_us.mean", j.mean, " µs")),
            ("jitter, max", num_unit("jitter_us.max", j.max, " µs")),
        ]);
    }
    page.figures("datagrams-table", &rows);
    page.note(
        "Echoed counts distinct datagrams back within the timeout, damaged ones included; lost \
         is sent minus echoed; corrupted counts every copy whose bytes differ from what was \
         sent. Jitter is RFC 3550's interarrival jitter, each flow's at the end of the run.",
    );
    datagrams_over_time(page, r);
    datagram_flows(page, r);
}

/// The datagrams lost and the jitter, per second they were sent in.
fn datagrams_over_time(page: &mut Page, r: &StressReport) {
    let seconds = &r.datagrams_over_time;
    if seconds.is_empty() {
        return;
    }
    let lost: Vec<(f64, f64)> = seconds
        .iter()
        .map(|s| (s.second as f64, s.counts.lost as f64))
        .collect();
    let mut chart = LineChart::new(
        "Datagrams lost, by the second they were sent in",
        "seconds from the start of the measured phase",
        "datagrams lost",
    )
    .series("lost", lost, Style::LineDots);
    chart.x_unit = " s".into();
    page.chart("datagrams-lost", chart.svg());
    let jitter: Vec<(f64, f64)> = seconds
        .iter()
        .filter_map(|s| Some((s.second as f64, s.jitter_us?)))
        .collect();
    if !jitter.is_empty() {
        let mut chart = LineChart::new(
            "Jitter per second",
            "seconds from the start of the measured phase",
            "mean transit difference, µs",
        )
        .series("jitter", jitter, Style::LineDots);
        chart.x_unit = " s".into();
        chart.y_unit = " µs".into();
        page.chart("datagrams-jitter", chart.svg());
        page.note(
            "A second's jitter is the mean of RFC 3550's transit differences |D| of the intact \
             echoes of datagrams sent in it, each against the previous one of its flow: what \
             the running estimate above smooths.",
        );
    }
}

/// The rows of the flow table at most: beyond them, the flows that lost most.
const FLOW_ROWS: usize = 1000;

/// Each flow's counts and jitter, every one in order (the ones that lost most, when there are
/// more than [`FLOW_ROWS`]).
fn datagram_flows(page: &mut Page, r: &StressReport) {
    let flows = &r.datagram_flows;
    if flows.is_empty() {
        return;
    }
    let merged = flows.iter().any(|f| f.agent.is_some());
    let mut shown: Vec<usize> = (0..flows.len()).collect();
    if flows.len() > FLOW_ROWS {
        let worst = crate::datagrams::DatagramFlow::worst_first(flows);
        shown = worst
            .iter()
            .take(FLOW_ROWS)
            .filter_map(|w| flows.iter().position(|f| f == w))
            .collect();
    }
    let rows: Vec<(String, Vec<Cell>)> = shown
        .iter()
        .map(|&i| {
            let f = &flows[i];
            let k = |field: &str| format!("datagram_flows.{i}.{field}");
            let mut cells = Vec::new();
            if merged {
                cells.push(f.agent.map_or(Cell::Empty, |a| num(k("agent"), a)));
            }
            cells.extend([
                num(k("flow"), f.flow),
                num(k("sent"), f.counts.sent),
                num(k("echoed"), f.counts.echoed),
                num(k("lost"), f.counts.lost),
                text(format!("{:.3}%", f.counts.loss_pct())),
                num(k("duplicated"), f.counts.duplicated),
                num(k("reordered"), f.counts.reordered),
                num(k("corrupted"), f.counts.corrupted),
                f.jitter_us
                    .map_or(Cell::Empty, |j| num_unit(k("jitter_us"), j, " µs")),
            ]);
            (format!("flow-{i}"), cells)
        })
        .collect();
    let mut header = vec![
        "flow",
        "sent",
        "echoed",
        "lost",
        "loss",
        "duplicated",
        "reordered",
        "corrupted",
        "jitter",
    ];
    if merged {
        header.insert(0, "agent");
    }
    page.table("datagram-flows-table", &header, &rows);
    if shown.len() < flows.len() {
        page.note(&format!(
            "The {} of {} flows that lost most, worst first; the JSON lists every one.",
            exact(shown.len() as f64),
            exact(flows.len() as f64)
        ));
    }
}

fn websocket(page: &mut Page, r: &StressReport) {
    let Some(w) = &r.websocket else { return };
    page.section("websocket", "WebSocket upgrades and messages");
    page.figures(
        "websocket-table",
        &[
            ("path", text(&w.path)),
            ("upgrades", num("websocket.upgrades", w.upgrades)),
            (
                "rate",
                num_unit("websocket.upgrades_per_s", w.upgrades_per_s, " upgrades/s"),
            ),
            ("failed", text(exact(w.failed.total() as f64))),
            (
                "messages sent",
                num("websocket.messages_sent", w.messages_sent),
            ),
            (
                "messages echoed",
                num("websocket.messages_echoed", w.messages_echoed),
            ),
        ],
    );
    latency_table(
        page,
        "websocket-latency-table",
        &[("upgrade", "websocket.upgrade_us", &w.upgrade_us)],
    );
    let failed: Vec<(String, Vec<Cell>)> = UpgradeFailure::ALL
        .iter()
        .map(|&c| {
            (
                format!("websocket-failed-{c}"),
                vec![
                    text(c.as_str()),
                    num(format!("websocket.failed.{c}"), w.failed.get(c)),
                ],
            )
        })
        .collect();
    page.table(
        "websocket-failed-table",
        &["cause", "failed upgrades"],
        &failed,
    );
    if !w.close_codes.is_empty() {
        let codes: Vec<(String, Vec<Cell>)> = w
            .close_codes
            .iter()
            .map(|(code, &n)| {
                (
                    format!("websocket-close-{code}"),
                    vec![
                        text(code.to_string()),
                        num(format!("websocket.close_codes.{code}"), n),
                    ],
                )
            })
            .collect();
        page.table(
            "websocket-close-table",
            &["close code", "close frames received"],
            &codes,
        );
    }
    page.note(
        "Upgrade latency is from the upgrade request queued (the TCP connection established, \
         with TLS the handshake complete) to the server's 101 (the spectrum draws it beside the \
         round trips'). The rate counts upgrades in the \
         measured window: without churn every upgrade comes before it, and the rate is 0.",
    );
}

fn agents(page: &mut Page, r: &StressReport) {
    if r.merged_from.is_empty() {
        return;
    }
    page.section("agents", "Agents beside the whole run");
    let mut rows = vec![(
        "whole".to_string(),
        vec![
            text("whole run"),
            text(""),
            num("connections", r.connections),
            num("messages", r.messages),
            num("msgs_per_s", r.msgs_per_s),
            num("errors", r.errors),
            num_unit("started_at_unix_s", r.started_at_unix_s, " s"),
            num_unit("duration_s", r.duration_s, " s"),
        ],
    )];
    for (i, a) in r.merged_from.iter().enumerate() {
        let k = |f: &str| format!("merged_from.{i}.{f}");
        let rate = if a.duration_s > 0.0 {
            a.messages as f64 / a.duration_s
        } else {
            0.0
        };
        rows.push((
            format!("agent-{i}"),
            vec![
                text(
                    a.segment
                        .map_or_else(|| "whole".to_string(), |s| s.to_string()),
                ),
                text(format!("{} ({})", a.run_id, a.backend)),
                num(k("connections"), a.connections),
                num(k("messages"), a.messages),
                text(exact((rate * 10.0).round() / 10.0)),
                num(k("errors"), a.errors),
                num_unit(k("started_at_unix_s"), a.started_at_unix_s, " s"),
                num_unit(k("duration_s"), a.duration_s, " s"),
            ],
        ));
    }
    page.table(
        "agents-table",
        &[
            "segment",
            "run (backend)",
            "connections",
            "verified",
            "msg/s",
            "errors",
            "measuring began (Unix time)",
            "measured",
        ],
        &rows,
    );
    let pts: Vec<(f64, f64)> = r
        .merged_from
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let rate = if a.duration_s > 0.0 {
                a.messages as f64 / a.duration_s
            } else {
                0.0
            };
            (i as f64 + 1.0, rate)
        })
        .collect();
    let mut chart = LineChart::new(
        "Each agent's verified messages per second",
        "agent (in segment order)",
        "msg/s",
    )
    .series("agent", pts, Style::Dots);
    chart.marks.push(Mark::Horizontal(
        r.msgs_per_s / r.merged_from.len() as f64,
        "whole run / agents".into(),
    ));
    chart.x_unit = " (agent)".into();
    chart.y_unit = " msg/s".into();
    page.chart("agents", chart.svg());
}
