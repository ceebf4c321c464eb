//! The HTML report of a benchmark (`ringport bench --html PATH`): the result model's HTML
//! exporter ([`Html`]) for [`BenchResults`], on its [`Page`]: the machine and the sweep, the
//! designs, for each message size its charts (the SVG files' own, with their read-outs) and the
//! table of every point, the churn point's chart and table, and the warnings.

use std::io;

use ringport_report::export::html::{num, num_unit, text, Cell, Page};
use ringport_report::export::{Exporter, Html};

use super::svg;
use crate::results::{size_label, BenchResults};

impl Exporter<BenchResults> for Html {
    fn write(&self, results: &BenchResults, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(render(results).as_bytes())
    }
}

fn render(r: &BenchResults) -> String {
    let mut page = Page::new("bench", "ringport bench: the designs side by side");
    let with_errors = r.points.iter().filter(|p| p.median.errors > 0).count()
        + r.churn.iter().filter(|p| p.median.errors > 0).count();
    page.verdict(
        with_errors == 0,
        &if with_errors == 0 {
            format!(
                "{} designs at {} points, every round trip verified, no error",
                r.designs.len(),
                r.points.len() + r.churn.len()
            )
        } else {
            format!("errors at {with_errors} points: see the tables and the warnings")
        },
    );
    let e = &r.environment;
    let s = &r.settings;
    page.section("environment", "Machine and sweep");
    page.figures(
        "environment-table",
        &[
            ("ringport", text(&e.ringport_version)),
            ("date", text(&e.date)),
            ("host", text(&e.hostname)),
            ("kernel", text(&e.kernel)),
            ("CPU", text(&e.cpu_model)),
            ("CPUs", num("environment.cpus", e.cpus)),
            (
                "memory",
                num_unit("environment.memory_mib", e.memory_mib, " MiB"),
            ),
            (
                "load average",
                num("environment.load_average", e.load_average),
            ),
            ("io_uring", text(&e.io_uring)),
            (
                "pinned",
                text(if s.pinned {
                    "server and load on separate CPUs"
                } else {
                    "no"
                }),
            ),
            (
                "measured per point",
                num_unit("settings.duration_s", s.duration_s, " s"),
            ),
            (
                "warm-up per point",
                num_unit("settings.warmup_s", s.warmup_s, " s"),
            ),
            ("rounds (median reported)", num("settings.repeat", s.repeat)),
            (
                "client threads",
                num("settings.client_threads", s.client_threads),
            ),
        ],
    );
    page.section("designs", "Designs");
    let rows: Vec<(String, Vec<Cell>)> = r
        .designs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (
                format!("design-{i}"),
                vec![
                    text(&d.name),
                    text(&d.kind),
                    text(d.backend.as_deref().unwrap_or("-")),
                    d.max_clean_connections.map_or(Cell::Empty, |c| {
                        num(format!("designs.{i}.max_clean_connections"), c)
                    }),
                    text(d.note.as_deref().unwrap_or("")),
                ],
            )
        })
        .collect();
    page.table(
        "designs-table",
        &[
            "design",
            "kind",
            "runs on",
            "largest clean connection count",
            "note",
        ],
        &rows,
    );
    let charts = svg::charts(r);
    let charts = match charts {
        Ok(c) => c,
        Err(e) => {
            page.note(&format!("The charts could not be drawn: {e}"));
            Vec::new()
        }
    };
    for size in r.sizes() {
        let label = size_label(size);
        page.section(&format!("size-{size}"), &format!("{label} messages"));
        let suffix = format!("-{size}B.svg");
        for (name, chart) in charts.iter().filter(|(n, _)| n.ends_with(&suffix)) {
            page.chart(name.trim_end_matches(".svg"), Ok(chart.clone()));
        }
        let rows: Vec<(String, Vec<Cell>)> = r
            .points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.size == size)
            .map(|(i, p)| {
                let k = |f: &str| format!("points.{i}.{f}");
                let m = &p.median;
                (
                    format!("point-{i}"),
                    vec![
                        text(&p.design),
                        num(k("connections"), p.connections),
                        num(k("median.msgs_per_s"), m.msgs_per_s),
                        num(k("ratio_to_best"), p.ratio_to_best),
                        num(k("median.p50_us"), m.p50_us),
                        num(k("median.p99_us"), m.p99_us),
                        num(k("median.p999_us"), m.p999_us),
                        m.server_cpu_us_per_msg
                            .map_or(Cell::Empty, |v| num(k("median.server_cpu_us_per_msg"), v)),
                        num(k("median.server_peak_rss_kib"), m.server_peak_rss_kib),
                        num(
                            k("median.client_cpu_max_thread_pct"),
                            m.client_cpu_max_thread_pct,
                        ),
                        num(k("median.errors"), m.errors),
                        text(if p.client_bound { "client-bound" } else { "" }),
                    ],
                )
            })
            .collect();
        page.table(
            &format!("points-{size}"),
            &[
                "design",
                "connections",
                "round trips/s",
                "vs best",
                "p50 µs",
                "p99 µs",
                "p99.9 µs",
                "server CPU µs per round trip",
                "server peak RSS KiB",
                "busiest client thread %",
                "errors",
                "",
            ],
            &rows,
        );
    }
    if let (Some(point), false) = (&r.settings.churn, r.churn.is_empty()) {
        page.section(
            "churn",
            &format!(
                "Churn: {} connections, each closed and reopened after {} round trips of {}",
                point.connections,
                point.messages_per_connection,
                size_label(point.size)
            ),
        );
        for (name, chart) in charts.iter().filter(|(n, _)| n == "churn.svg") {
            page.chart(name.trim_end_matches(".svg"), Ok(chart.clone()));
        }
        let rows: Vec<(String, Vec<Cell>)> = r
            .churn
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let k = |f: &str| format!("churn.{i}.{f}");
                let m = &p.median;
                (
                    format!("churn-{i}"),
                    vec![
                        text(&p.design),
                        num(k("median.connections_per_s"), m.connections_per_s),
                        num(k("ratio_to_best"), p.ratio_to_best),
                        num(k("median.connect_p50_us"), m.connect_p50_us),
                        num(k("median.connect_p99_us"), m.connect_p99_us),
                        num(k("median.connect_p999_us"), m.connect_p999_us),
                        num(k("median.msgs_per_s"), m.msgs_per_s),
                        num(k("median.failed_connections"), m.failed_connections),
                        num(k("median.errors"), m.errors),
                    ],
                )
            })
            .collect();
        page.table(
            "churn-table",
            &[
                "design",
                "connections/s",
                "vs best",
                "connect p50 µs",
                "connect p99 µs",
                "connect p99.9 µs",
                "round trips/s",
                "failed connections",
                "errors",
            ],
            &rows,
        );
    }
    if !r.warnings.is_empty() {
        page.section("warnings", "Warnings");
        let items: Vec<String> = r.warnings.iter().map(|w| w.message.clone()).collect();
        page.list("warnings", &items);
    }
    page.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixture;

    #[test]
    fn the_page_has_every_chart_and_every_point_with_its_figures() {
        let r = fixture::results();
        let html = Html.to_string(&r);
        let charts = svg::charts(&r).unwrap();
        for (name, _) in &charts {
            let name = name.trim_end_matches(".svg");
            assert!(
                html.contains(&format!("data-chart=\"{name}\"")),
                "no {name} chart"
            );
        }
        for (i, p) in r.points.iter().enumerate() {
            assert!(html.contains(&format!(
                "data-key=\"points.{i}.median.msgs_per_s\" data-value=\"{}\"",
                p.median.msgs_per_s
            )));
            assert!(html.contains(&format!(
                "data-key=\"points.{i}.median.p99_us\" data-value=\"{}\"",
                p.median.p99_us
            )));
        }
        // Each point of the charts reads out its exact value.
        assert!(html
            .contains("<title>completion-uring: 100 connections → 200,000 round trips/s</title>"));
        assert!(html.contains("my,echo: 7 errors"), "the warning");
        assert!(!html.contains("<script"));
    }
}
