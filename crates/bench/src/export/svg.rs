//! Charts as SVG, drawn with plotters: for each message size, throughput, p99 latency and server
//! CPU per round trip against connections, one line per design. Connections are on a log axis;
//! latency is too (designs differ by orders of magnitude). The legend stands in a strip right of
//! the plot, never on it; client-bound points (the load generator's limit) are hollow on the
//! throughput chart.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::export::markdown::thousands;
use crate::results::{size_label, BenchResults};

pub(super) const SIZE: (u32, u32) = (1000, 540);

/// The palette, ticks and bounds are the result model's, shared with the HTML report's charts.
pub use ringport_report::export::chart::{bounds, color, log_ticks, PALETTE};
use ringport_report::export::chart::{exact, Hover};

/// One line under the chart: version, machine, pinning, load, date.
fn footer(r: &BenchResults) -> String {
    let e = &r.environment;
    let s = &r.settings;
    format!(
        "ringport {}, Linux {}, {} CPUs, {}, {} client thread(s), {:.1} s x {} round(s) per point, median; {}",
        e.ringport_version,
        e.kernel,
        e.cpus,
        if s.pinned { "server and load pinned to separate CPUs" } else { "unpinned" },
        s.client_threads,
        s.duration_s,
        s.repeat,
        e.date
    )
}

/// What to plot against connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    Throughput,
    P99,
    /// Server CPU (user + system) per verified round trip: the figure to compare where the
    /// throughput is client-bound.
    CpuPerMsg,
}

/// The charts as `(file name, SVG text)`: `throughput-<size>B.svg`, `p99-<size>B.svg` and
/// `server-cpu-<size>B.svg` for each message size.
///
/// # Errors
///
/// A message from plotters when a chart cannot be drawn.
pub fn charts(r: &BenchResults) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for size in r.sizes() {
        out.push((
            format!("throughput-{size}B.svg"),
            chart(r, size, Metric::Throughput)?,
        ));
        out.push((format!("p99-{size}B.svg"), chart(r, size, Metric::P99)?));
        out.push((
            format!("server-cpu-{size}B.svg"),
            chart(r, size, Metric::CpuPerMsg)?,
        ));
    }
    out.extend(crate::churn::chart(r)?);
    Ok(out)
}

/// One plotted value: connections, the figure, and whether the point is drawn hollow
/// (client-bound, on the throughput chart).
type Dot = (f64, f64, bool);

/// Each design's points at `size`, in connection order; a design with none (no CPU measured,
/// say) is left out.
fn series(r: &BenchResults, size: usize, metric: Metric) -> Vec<(String, Vec<Dot>)> {
    r.designs
        .iter()
        .map(|d| {
            let pts = r
                .connections_of(size)
                .into_iter()
                .filter_map(|c| r.point(&d.name, size, c))
                .filter_map(|p| {
                    let y = match metric {
                        Metric::Throughput => p.median.msgs_per_s,
                        Metric::P99 => (p.median.p99_us as f64).max(1.0),
                        Metric::CpuPerMsg => p.median.server_cpu_us_per_msg?,
                    };
                    let hollow = metric == Metric::Throughput && p.client_bound;
                    Some((p.connections as f64, y, hollow))
                })
                .collect();
            (d.name.clone(), pts)
        })
        .filter(|(_, pts): &(String, Vec<Dot>)| !pts.is_empty())
        .collect()
}

/// Width of the legend strip: room for the longest design name at the legend's font, within
/// bounds.
fn legend_width(data: &[(String, Vec<Dot>)]) -> u32 {
    let longest = data
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(LEGEND_HOLLOW.len()) as u32;
    (44 + longest * 8).clamp(150, 320)
}

/// The legend's entry for hollow points.
const LEGEND_HOLLOW: &str = "client-bound";

/// The legend in its own strip: a line and a dot in each design's colour, and the hollow dot's
/// meaning when the chart has one.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    data: &[(String, Vec<Dot>)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let font = ("sans-serif", 14).into_font();
    let top = 60;
    let step = 22;
    let mut y = top;
    for (i, (name, _)) in data.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        area.draw(&PathElement::new(
            vec![(8, y), (32, y)],
            color.stroke_width(2),
        ))?;
        area.draw(&Circle::new((20, y), 4, color.filled()))?;
        area.draw(&Text::new(name.clone(), (40, y - 8), font.clone()))?;
        y += step;
    }
    if data.iter().any(|(_, pts)| pts.iter().any(|p| p.2)) {
        y += step / 2;
        area.draw(&Circle::new((20, y), 4, BLACK.stroke_width(2)))?;
        area.draw(&Text::new(LEGEND_HOLLOW, (40, y - 8), font.clone()))?;
    }
    Ok(())
}

fn chart(r: &BenchResults, size: usize, metric: Metric) -> Result<String, String> {
    let mut svg = String::new();
    let mut hover = Hover::default();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw(&root, r, size, metric, &mut hover).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    hover.apply(&mut svg);
    Ok(svg)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &BenchResults,
    size: usize,
    metric: Metric,
    hover: &mut Hover,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (root, foot) = root.split_vertically(SIZE.1 - 24);
    foot.draw(&Text::new(
        footer(r),
        (16, 4),
        ("sans-serif", 12).into_font().color(&RGBColor(90, 90, 90)),
    ))?;
    let data = series(r, size, metric);
    let (plot_area, key) = root.split_horizontally(SIZE.0 - legend_width(&data));
    legend(&key, &data)?;
    let root = &plot_area;
    let xs: Vec<f64> = data
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .collect();
    let ys: Vec<f64> = data
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .collect();
    let (x_lo, x_hi) = bounds(&xs, 1.0);
    let y_hi = ys.iter().cloned().fold(1.0, f64::max);
    let y_lo = ys.iter().cloned().fold(f64::MAX, f64::min).min(y_hi);
    let label = size_label(size);
    let (title, y_desc) = match metric {
        Metric::Throughput => (
            format!("Round trips per second, {label} messages (higher is better)"),
            "verified round trips per second",
        ),
        Metric::P99 => (
            format!("p99 latency, {label} messages (lower is better)"),
            "p99 round-trip latency, µs (log)",
        ),
        Metric::CpuPerMsg => (
            format!("Server CPU per round trip, {label} messages (lower is better)"),
            "server CPU (user + system) per round trip, µs",
        ),
    };
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(84);
    let x_range = (x_lo * 0.8..x_hi * 1.25).log_scale();
    let x_fmt = |x: &f64| format!("{x:.0}");
    let y_desc_c = y_desc.to_string();
    match metric {
        Metric::Throughput => {
            let mut chart = builder.build_cartesian_2d(x_range, 0.0..y_hi * 1.15)?;
            chart
                .configure_mesh()
                .x_desc("concurrent connections (log)")
                .y_desc(y_desc_c)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&|y: &f64| thousands(*y))
                .draw()?;
            plot(&mut chart, &data, hover, metric)?;
        }
        Metric::CpuPerMsg => {
            let mut chart = builder.build_cartesian_2d(x_range, 0.0..y_hi * 1.15)?;
            chart
                .configure_mesh()
                .x_desc("concurrent connections (log)")
                .y_desc(y_desc_c)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&|y: &f64| format!("{y:.1}"))
                .draw()?;
            plot(&mut chart, &data, hover, metric)?;
        }
        Metric::P99 => {
            let (lo, hi) = ((y_lo * 0.7).max(0.5), y_hi * 1.5);
            let y_range = (lo..hi).log_scale().with_key_points(log_ticks(lo, hi));
            let mut chart = builder.build_cartesian_2d(x_range, y_range)?;
            chart
                .configure_mesh()
                .x_desc("concurrent connections (log)")
                .y_desc(y_desc_c)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&|y: &f64| thousands(*y))
                .draw()?;
            plot(&mut chart, &data, hover, metric)?;
        }
    }
    Ok(())
}

/// Draws each design's line and dots, and gives every dot a read-out of its exact value.
fn plot<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    data: &[(String, Vec<Dot>)],
    hover: &mut Hover,
    metric: Metric,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let unit = match metric {
        Metric::Throughput => " round trips/s",
        Metric::P99 => " µs p99",
        Metric::CpuPerMsg => " µs of server CPU per round trip",
    };
    for (i, (name, pts)) in data.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        for &(x, y, hollow) in pts {
            hover.add(
                chart.backend_coord(&(x, y)),
                format!(
                    "{name}: {} connections → {}{unit}{}",
                    exact(x),
                    exact(y),
                    if hollow { " (client-bound)" } else { "" }
                ),
            );
        }
        chart.draw_series(LineSeries::new(
            pts.iter().map(|&(x, y, _)| (x, y)),
            color.stroke_width(2),
        ))?;
        chart.draw_series(pts.iter().map(|&(x, y, hollow)| {
            let style = if hollow {
                WHITE.filled()
            } else {
                color.filled()
            };
            Circle::new((x, y), 4, style)
        }))?;
        chart.draw_series(
            pts.iter()
                .filter(|p| p.2)
                .map(|&(x, y, _)| Circle::new((x, y), 4, color.stroke_width(2))),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixture;

    #[test]
    fn charts_are_svg_documents_with_every_design() {
        let charts = charts(&fixture::results()).unwrap();
        let names: Vec<&str> = charts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["throughput-64B.svg", "p99-64B.svg", "server-cpu-64B.svg"]
        );
        for (name, text) in &charts {
            let doc = roxmltree::Document::parse(text)
                .unwrap_or_else(|e| panic!("{name} is not XML: {e}"));
            assert_eq!(doc.root_element().tag_name().name(), "svg", "{name}");
            for design in ["completion-uring", "my,echo"] {
                assert!(text.contains(design), "{name} has no legend for {design}");
            }
            assert!(
                text.contains("polyline") || text.contains("<path"),
                "{name} has no line"
            );
        }
    }

    /// Issue 14, item 9: p99 figures around 1,000 µs drew the `1,000` tick label twice and a
    /// grey band of gridlines around 900-1,100 µs.
    #[test]
    fn p99_tick_labels_are_distinct_and_few() {
        for p99s in [
            [905, 1010, 980, 1095],
            [93, 808, 913, 2483],
            [423, 1410, 1444, 3735],
            [68, 81, 101, 240],
            [650, 700, 1200, 1300],
        ] {
            let mut r = fixture::results();
            for (i, p) in r.points.iter_mut().enumerate() {
                p.median.p99_us = p99s[i % 4];
            }
            let svg = charts(&r)
                .unwrap()
                .into_iter()
                .find(|(n, _)| n == "p99-64B.svg")
                .unwrap()
                .1;
            let doc = roxmltree::Document::parse(&svg).unwrap();
            let labels: Vec<&str> = doc
                .descendants()
                // The y axis's labels: right-aligned against the axis.
                .filter(|n| n.has_tag_name("text") && n.attribute("text-anchor") == Some("end"))
                .filter_map(|n| n.text())
                .map(str::trim)
                .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == ','))
                .collect();
            let mut unique = labels.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(
                unique.len(),
                labels.len(),
                "p99 {p99s:?}: a tick label twice: {labels:?}"
            );
            let lines = doc.descendants().filter(|n| n.has_tag_name("line")).count();
            assert!(
                lines < 40,
                "p99 {p99s:?}: {lines} lines, a band of gridlines"
            );
        }
    }

    #[test]
    fn a_single_point_still_draws() {
        let mut r = fixture::results();
        r.points.retain(|p| p.connections == 1);
        r.designs.truncate(1);
        r.points.truncate(1);
        for (_, text) in charts(&r).unwrap() {
            assert!(roxmltree::Document::parse(&text).is_ok());
        }
    }

    #[test]
    fn each_size_has_its_charts_titled_with_the_size() {
        let mut r = fixture::results();
        let mut bulk = r.points[0].clone();
        bulk.size = 65536;
        bulk.connections = 10;
        r.points.push(bulk);
        let charts = charts(&r).unwrap();
        let names: Vec<&str> = charts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "throughput-64B.svg",
                "p99-64B.svg",
                "server-cpu-64B.svg",
                "throughput-65536B.svg",
                "p99-65536B.svg",
                "server-cpu-65536B.svg"
            ]
        );
        assert!(charts[0].1.contains("64 B messages"));
        for chart in &charts[3..] {
            assert!(chart.1.contains("64 KiB messages"), "{}", chart.0);
        }
    }

    /// A number attribute of an SVG element.
    fn num(n: &roxmltree::Node, attr: &str) -> f64 {
        n.attribute(attr)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no number {attr} in {n:?}"))
    }

    /// Issue 14: the legend covered the plot. Each design's name now stands right of the plot
    /// area (right of every gridline).
    #[test]
    fn legend_is_outside_the_plot() {
        let mut r = fixture::results();
        r.points[2].client_bound = true;
        for (name, svg) in charts(&r).unwrap() {
            let doc = roxmltree::Document::parse(&svg).unwrap();
            let plot_right = doc
                .descendants()
                .filter(|n| n.has_tag_name("line"))
                .map(|n| num(&n, "x1").max(num(&n, "x2")))
                .fold(0.0, f64::max);
            assert!(plot_right > 0.0, "{name}: no plot");
            for design in ["completion-uring", "my,echo"] {
                let label = doc
                    .descendants()
                    .find(|n| n.has_tag_name("text") && n.text().map(str::trim) == Some(design))
                    .unwrap_or_else(|| panic!("{name}: no legend entry for {design}"));
                assert!(
                    num(&label, "x") > plot_right,
                    "{name}: {design}'s legend at x {} is on the plot (right edge {plot_right})",
                    num(&label, "x")
                );
            }
            let explains_hollow = svg.contains(LEGEND_HOLLOW);
            assert_eq!(explains_hollow, name.starts_with("throughput"), "{name}");
        }
    }

    /// Issue 14: the warnings recommend server CPU per round trip, so it is charted.
    #[test]
    fn server_cpu_per_round_trip_is_charted() {
        let r = fixture::results();
        let (_, svg) = charts(&r)
            .unwrap()
            .into_iter()
            .find(|(n, _)| n == "server-cpu-64B.svg")
            .expect("a server CPU chart");
        assert!(svg.contains("Server CPU per round trip, 64 B messages (lower is better)"));
        let doc = roxmltree::Document::parse(&svg).unwrap();
        // One dot per point, plus one per design in the legend.
        let dots = doc
            .descendants()
            .filter(|n| n.has_tag_name("circle"))
            .count();
        assert_eq!(dots, r.points.len() + r.designs.len(), "{svg}");
        // A design without CPU figures is left out rather than drawn at zero.
        let mut none = r.clone();
        for p in none.points.iter_mut().filter(|p| p.design == "my,echo") {
            p.median.server_cpu_us_per_msg = None;
        }
        let (_, svg) = charts(&none)
            .unwrap()
            .into_iter()
            .find(|(n, _)| n == "server-cpu-64B.svg")
            .unwrap();
        assert!(!svg.contains("my,echo"), "{svg}");
    }
}
