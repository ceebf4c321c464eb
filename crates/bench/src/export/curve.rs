//! The chart of a latency-target search (`ringport stress --find-max-rate`): corrected p50,
//! p99 and p99.9 latency against the offered rate, the target as a horizontal line, the answer
//! as a vertical one, and client-bound probes marked with a cross (they say nothing of the
//! server). Drawn with the palette and log ticks of [`svg`](super::svg).

use plotters::coord::Shift;
use plotters::prelude::*;
use ringport_report::export::Exporter;
use ringport_report::search::{SearchReport, Verdict};

use super::markdown::thousands;
use super::svg::{bounds, log_ticks, PALETTE, SIZE};

/// Characters of footer per line (11 px type across the chart's width).
const FOOTER_CHARS: usize = 130;

/// `text`'s lines (split at `\n`) wrapped at spaces to at most `width` characters (a word
/// longer than that stays whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.lines() {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                out.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push(line);
    }
    out
}

/// The chart as an exporter of the search's result ([`Exporter`]); `footer` is the line under
/// it (date, machine, command).
#[derive(Debug, Clone, Default)]
pub struct CurveSvg {
    /// The line under the chart.
    pub footer: String,
}

impl Exporter<SearchReport> for CurveSvg {
    fn write(&self, report: &SearchReport, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let text = svg(report, &self.footer).map_err(std::io::Error::other)?;
        out.write_all(text.as_bytes())
    }
}

/// The chart as SVG text; `footer` is the line under it (date, machine, command).
///
/// # Errors
///
/// A message from plotters when the chart cannot be drawn, or when there is no point.
pub fn svg(r: &SearchReport, footer: &str) -> Result<String, String> {
    if r.probes.is_empty() {
        return Err("the search made no probe: nothing to draw".to_string());
    }
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
        draw(&root, r, footer).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(text)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &SearchReport,
    footer: &str,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let lines = wrap(footer, FOOTER_CHARS);
    let (root, foot) = root.split_vertically(SIZE.1 - 8 - 15 * lines.len() as u32);
    for (i, line) in lines.iter().enumerate() {
        foot.draw(&Text::new(
            line.clone(),
            (16, 4 + 15 * i as i32),
            ("sans-serif", 11).into_font().color(&RGBColor(90, 90, 90)),
        ))?;
    }
    let curve = r.curve();
    let us = |v: u64| (v as f64).max(1.0);
    let series: Vec<(String, Vec<(f64, f64)>)> = [
        (
            "p50",
            curve
                .iter()
                .map(|p| us(p.latency_us.p50))
                .collect::<Vec<_>>(),
        ),
        ("p99", curve.iter().map(|p| us(p.latency_us.p99)).collect()),
        (
            "p99.9",
            curve.iter().map(|p| us(p.latency_us.p999)).collect(),
        ),
    ]
    .into_iter()
    .map(|(name, ys)| {
        let pts = curve.iter().map(|p| p.rate).zip(ys).collect();
        (name.to_string(), pts)
    })
    .collect();
    let xs: Vec<f64> = curve.iter().map(|p| p.rate).collect();
    let mut ys: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .collect();
    ys.extend(r.targets.iter().map(|t| t.limit_us as f64));
    let (x_lo, x_hi) = bounds(&xs, 1.0);
    let (y_lo, y_hi) = bounds(&ys, 1.0);
    let (lo, hi) = ((y_lo * 0.7).max(0.5), y_hi * 1.5);
    let targets: Vec<String> = r
        .targets
        .iter()
        .map(|t| {
            format!(
                "{} <= {} us",
                t.quantile.name(),
                thousands(t.limit_us as f64)
            )
        })
        .collect();
    let title = match r.answer {
        Some(a) => format!(
            "Latency against offered rate: max {} msg/s with {}",
            thousands(a),
            targets.join(", ")
        ),
        None => format!(
            "Latency against offered rate: no rate met {}",
            targets.join(", ")
        ),
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(84)
        .build_cartesian_2d(
            (x_lo * 0.8..x_hi * 1.25)
                .log_scale()
                .with_key_points(log_ticks(x_lo * 0.8, x_hi * 1.25)),
            (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)),
        )?;
    chart
        .configure_mesh()
        .x_desc("offered rate, msg/s (log)")
        .y_desc("latency from intended send, µs (log)")
        .x_label_formatter(&|x: &f64| thousands(*x))
        .y_label_formatter(&|y: &f64| thousands(*y))
        .draw()?;
    let grey = RGBColor(110, 110, 110);
    for t in &r.targets {
        let y = t.limit_us as f64;
        chart
            .draw_series(LineSeries::new(
                [(x_lo * 0.8, y), (x_hi * 1.25, y)],
                grey.stroke_width(1),
            ))?
            .label(format!("target {}", t.quantile.name()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    }
    if let Some(a) = r.answer {
        let green = PALETTE[3];
        chart
            .draw_series(LineSeries::new([(a, lo), (a, hi)], green.stroke_width(1)))?
            .label("answer")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], green));
    }
    let bound: Vec<(f64, f64)> = curve
        .iter()
        .filter(|p| p.verdict == Verdict::ClientBound)
        .map(|p| (p.rate, us(p.latency_us.p99)))
        .collect();
    if !bound.is_empty() {
        let red = PALETTE[2];
        chart
            .draw_series(
                bound
                    .iter()
                    .map(|&(x, y)| Cross::new((x, y), 8, red.stroke_width(2))),
            )?
            .label("client-bound (not the server)")
            .legend(move |(x, y)| Cross::new((x + 10, y), 5, red.stroke_width(2)));
    }
    plot_labelled(&mut chart, &series)
}

/// The curve's series, each a line and dots in its palette colour, with the chart's one legend
/// (the series, the targets, the answer, the client-bound mark) in the upper left: unlike the
/// bench charts' many designs, a curve has a few entries, which fit inside the plot.
fn plot_labelled<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    data: &[(String, Vec<(f64, f64)>)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (name, pts)) in data.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            pts.iter()
                .map(|&(x, y)| Circle::new((x, y), 4, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringport_report::histogram::LatencySummary;
    use ringport_report::search::{LatencyTarget, Phase, Probe, Quantile, SearchReport};

    fn probe(rate: f64, p99: u64, verdict: Verdict) -> Probe {
        Probe {
            phase: Phase::Probe,
            rate,
            sent_per_s: rate,
            msgs_per_s: rate,
            latency_us: LatencySummary {
                min: 1,
                p50: p99 / 3,
                p90: p99 / 2,
                p99,
                p999: p99 * 2,
                max: p99 * 4,
                mean: 1.0,
                stdev: 0.0,
                count: 10,
            },
            errors: 0,
            client_cpu_max_pct: 10.0,
            verdict,
            reason: String::new(),
        }
    }

    fn report(probes: Vec<Probe>, answer: Option<f64>) -> SearchReport {
        SearchReport {
            target: "127.0.0.1:1".into(),
            targets: vec![LatencyTarget {
                quantile: Quantile::P99,
                limit_us: 2000,
            }],
            connections: 10,
            pipeline: 1,
            threads: 1,
            payload: "64-byte random".into(),
            window_s: 1.0,
            warmup_s: 0.5,
            probes,
            answer,
            first_failing: None,
            first_failing_verdict: None,
            repeat_passed: 0,
            repeat_total: 0,
            conclusion: String::new(),
        }
    }

    #[test]
    fn the_chart_has_the_three_percentiles_the_target_and_the_answer() {
        let r = report(
            vec![
                probe(1000.0, 100, Verdict::Pass),
                probe(2000.0, 300, Verdict::Pass),
                probe(4000.0, 9000, Verdict::Fail),
                probe(3000.0, 1500, Verdict::Pass),
                probe(8000.0, 20000, Verdict::ClientBound),
            ],
            Some(3000.0),
        );
        let text = svg(&r, "2026-11-29, test").unwrap();
        let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        for needle in [
            "p50",
            "p99.9",
            "target p99",
            "answer",
            "client-bound",
            "max 3,000 msg/s",
            "2026-11-29, test",
        ] {
            assert!(text.contains(needle), "no {needle:?} in the chart");
        }
    }

    #[test]
    fn a_long_footer_wraps_at_spaces() {
        let lines = wrap("date, machine\nringport stress a b c d", 12);
        assert_eq!(lines, ["date,", "machine", "ringport", "stress a b c", "d"]);
        let long = format!("2026-11-29\nringport {}", "--flag value ".repeat(40));
        let text = svg(
            &report(vec![probe(100.0, 50, Verdict::Pass)], Some(100.0)),
            &long,
        )
        .unwrap();
        assert!(roxmltree::Document::parse(&text).is_ok());
        assert!(wrap(&long, FOOTER_CHARS)
            .iter()
            .all(|l| l.len() <= FOOTER_CHARS));
    }

    #[test]
    fn no_answer_and_one_point_still_draw() {
        let r = report(vec![probe(100.0, 50_000, Verdict::Fail)], None);
        let text = svg(&r, "").unwrap();
        assert!(text.contains("no rate met p99"));
        assert!(roxmltree::Document::parse(&text).is_ok());
        assert!(svg(&report(vec![], None), "").is_err());
    }
}
