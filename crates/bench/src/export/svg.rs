//! Charts as SVG, drawn with plotters: for each message size, throughput against connections
//! (one line per design) and p99 latency against connections. Connections are on a log axis
//! when they span a factor of ten or more; latency always is (designs differ by orders of
//! magnitude).

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::export::markdown::thousands;
use crate::results::{size_label, BenchResults};

const SIZE: (u32, u32) = (860, 540);

/// Tableau 10: distinct, and readable on white.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0xba, 0xb0, 0xac),
];

/// The colour of series `i` (the palette, cycled).
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

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
#[derive(Debug, Clone, Copy)]
enum Metric {
    Throughput,
    P99,
}

/// The charts as `(file name, SVG text)`: `throughput-<size>B.svg` and `p99-<size>B.svg` for
/// each message size.
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
    }
    out.extend(crate::churn::chart(r)?);
    Ok(out)
}

/// Each design's `(connections, value)` points at `size`, in connection order.
fn series(r: &BenchResults, size: usize, metric: Metric) -> Vec<(String, Vec<(f64, f64)>)> {
    r.designs
        .iter()
        .map(|d| {
            let pts = r
                .connections_of(size)
                .into_iter()
                .filter_map(|c| r.point(&d.name, size, c))
                .map(|p| {
                    let y = match metric {
                        Metric::Throughput => p.median.msgs_per_s,
                        Metric::P99 => (p.median.p99_us as f64).max(1.0),
                    };
                    (p.connections as f64, y)
                })
                .collect();
            (d.name.clone(), pts)
        })
        .filter(|(_, pts): &(String, Vec<(f64, f64)>)| !pts.is_empty())
        .collect()
}

fn chart(r: &BenchResults, size: usize, metric: Metric) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw(&root, r, size, metric).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &BenchResults,
    size: usize,
    metric: Metric,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (root, foot) = root.split_vertically(SIZE.1 - 24);
    foot.draw(&Text::new(
        footer(r),
        (16, 4),
        ("sans-serif", 12).into_font().color(&RGBColor(90, 90, 90)),
    ))?;
    let root = &root;
    let data = series(r, size, metric);
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
            plot(&mut chart, &data)?;
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
            plot(&mut chart, &data)?;
        }
    }
    Ok(())
}

/// The tick values of a log axis from `lo` to `hi` (whole numbers, at least 1): 1, 2 and 5
/// times each power of ten in the range, or every multiple 1-9 of one when that gives fewer than two. Distinct round values:
/// plotters' own key points for a log axis crowd a narrow range with near-equal values (a band
/// of gridlines, and labels such as `1,000` twice once rounded).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let pick = |mults: &[f64]| -> Vec<f64> {
        let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        (first..=last)
            .flat_map(|k| mults.iter().map(move |m| m * 10f64.powi(k)))
            .map(|v| (v * 1e6).round() / 1e6)
            // Whole microseconds: the labels are rounded to them.
            .filter(|&v| v >= lo.max(1.0) && v <= hi)
            .collect()
    };
    let coarse = pick(&[1.0, 2.0, 5.0]);
    if coarse.len() >= 2 {
        return coarse;
    }
    let fine = pick(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    if fine.is_empty() {
        vec![lo.max(1.0).round()]
    } else {
        fine
    }
}

/// Smallest and largest of `v` (`default` for both when empty).
fn bounds(v: &[f64], default: f64) -> (f64, f64) {
    if v.is_empty() {
        return (default, default);
    }
    let lo = v.iter().cloned().fold(f64::MAX, f64::min);
    let hi = v.iter().cloned().fold(f64::MIN, f64::max);
    (lo, hi)
}

fn plot<'a, DB, X, Y>(
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
    use crate::export::fixture;

    #[test]
    fn charts_are_svg_documents_with_every_design() {
        let charts = charts(&fixture::results()).unwrap();
        let names: Vec<&str> = charts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["throughput-64B.svg", "p99-64B.svg"]);
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
    fn issue14_p99_tick_labels_are_distinct_and_few() {
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
    fn log_ticks_are_round_and_distinct() {
        assert_eq!(
            log_ticks(0.5, 1650.0),
            [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]
        );
        assert_eq!(log_ticks(630.0, 1650.0), [700.0, 800.0, 900.0, 1000.0]);
        assert_eq!(log_ticks(1000.0, 1000.0), [1000.0]);
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
                "throughput-65536B.svg",
                "p99-65536B.svg"
            ]
        );
        assert!(charts[0].1.contains("64 B messages"));
        assert!(charts[2].1.contains("64 KiB messages"));
        assert!(charts[3].1.contains("64 KiB messages"));
    }
}
