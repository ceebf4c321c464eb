//! The HTML page of a latency search (`--find-max-rate`): the settings and the answer, the
//! curve (corrected p50, p99 and p99.9 against the offered rate, the targets and the answer
//! marked) and every probe in the order made.

use std::io;

use super::{num, num_unit, text, Cell, Html, Page};
use crate::export::chart::{exact, LineChart, Mark, Scale, Style};
use crate::export::Exporter;
use crate::search::{Phase, SearchReport, Verdict};

impl Exporter<SearchReport> for Html {
    fn write(&self, report: &SearchReport, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(render(report).as_bytes())
    }
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Errors => "errors",
        Verdict::ClientBound => "client-bound",
        Verdict::WrongBytes => "wrong-bytes",
    }
}

fn render(r: &SearchReport) -> String {
    let mut page = Page::new(
        "search",
        format!("ringport stress --find-max-rate {}", r.target),
    );
    page.verdict(r.exit_code() == 0, &r.conclusion);
    page.section("summary", "Summary");
    let targets: Vec<String> = r
        .targets
        .iter()
        .map(|t| format!("{} ≤ {} µs", t.quantile.name(), exact(t.limit_us as f64)))
        .collect();
    let mut rows: Vec<(&str, Cell)> = vec![
        ("target", text(&r.target)),
        ("latency targets", text(targets.join(", "))),
        ("connections", num("connections", r.connections)),
        ("pipeline", num("pipeline", r.pipeline)),
        ("client threads", num("threads", r.threads)),
        ("payload", text(&r.payload)),
        ("window per probe", num_unit("window_s", r.window_s, " s")),
        ("warm-up per probe", num_unit("warmup_s", r.warmup_s, " s")),
        ("probes", num("probes.length", r.probes.len())),
    ];
    rows.push((
        "answer",
        r.answer
            .map_or(Cell::Empty, |a| num_unit("answer", a, " msg/s")),
    ));
    rows.push((
        "first failing rate",
        r.first_failing
            .map_or(Cell::Empty, |a| num_unit("first_failing", a, " msg/s")),
    ));
    rows.push(("repeats passed", num("repeat_passed", r.repeat_passed)));
    rows.push(("repeats made", num("repeat_total", r.repeat_total)));
    page.figures("summary-table", &rows);

    page.section("curve", "Latency against the offered rate");
    if r.probes.is_empty() {
        page.note("The search made no probe.");
    } else {
        let curve = r.curve();
        let series = |pick: &dyn Fn(&crate::search::Probe) -> u64| -> Vec<(f64, f64)> {
            curve.iter().map(|&p| (p.rate, pick(p) as f64)).collect()
        };
        let mut chart = LineChart::new(
            match r.answer {
                Some(a) => format!(
                    "Corrected latency against offered rate: answer {} msg/s",
                    exact(a)
                ),
                None => "Corrected latency against offered rate: no rate passed".to_string(),
            },
            "offered rate, msg/s (log)",
            "latency from the intended send, µs (log)",
        )
        .series("p50", series(&|p| p.latency_us.p50), Style::LineDots)
        .series("p99", series(&|p| p.latency_us.p99), Style::LineDots)
        .series("p99.9", series(&|p| p.latency_us.p999), Style::LineDots);
        let bound: Vec<(f64, f64)> = curve
            .iter()
            .filter(|p| p.verdict == Verdict::ClientBound)
            .map(|p| (p.rate, p.latency_us.p99 as f64))
            .collect();
        if !bound.is_empty() {
            chart = chart.series("client-bound (p99; not the server)", bound, Style::Dots);
        }
        for t in &r.targets {
            chart.marks.push(Mark::Horizontal(
                t.limit_us as f64,
                format!("target {}", t.quantile.name()),
            ));
        }
        if let Some(a) = r.answer {
            chart.marks.push(Mark::Vertical(a, "answer".into()));
        }
        chart.x_scale = Scale::Log;
        chart.y_scale = Scale::Log;
        chart.x_unit = " msg/s".into();
        chart.y_unit = " µs".into();
        page.chart("curve", chart.svg());
    }

    page.section("probes", "Probes, in the order made");
    let rows: Vec<(String, Vec<Cell>)> = r
        .probes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let k = |f: &str| format!("probes.{i}.{f}");
            (
                format!("probe-{i}"),
                vec![
                    text(match p.phase {
                        Phase::Probe => "probe",
                        Phase::Bisect => "bisect",
                        Phase::Repeat => "repeat",
                    }),
                    num(k("rate"), p.rate),
                    num(k("sent_per_s"), p.sent_per_s),
                    num(k("msgs_per_s"), p.msgs_per_s),
                    num(k("latency_us.p50"), p.latency_us.p50),
                    num(k("latency_us.p99"), p.latency_us.p99),
                    num(k("latency_us.p999"), p.latency_us.p999),
                    num(k("errors"), p.errors),
                    num(k("client_cpu_max_pct"), p.client_cpu_max_pct),
                    text(verdict_name(p.verdict)),
                    text(&p.reason),
                ],
            )
        })
        .collect();
    page.table(
        "probes-table",
        &[
            "phase",
            "rate/s",
            "sent/s",
            "verified/s",
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "errors",
            "client CPU %",
            "verdict",
            "why",
        ],
        &rows,
    );
    page.finish()
}
