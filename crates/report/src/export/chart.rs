//! The charts' common parts, drawn as SVG with plotters: the palette, round ticks on a log axis,
//! number formats, hover read-outs, and a line chart of named series that the HTML report draws
//! all its charts with (`ringport bench`'s charts and the search curve use the same palette,
//! ticks and read-outs).
//!
//! # Hover read-outs
//!
//! A [`Hover`] collects the pixel position of each point drawn and a line of text with its exact
//! values; [`Hover::apply`] appends an invisible square over each point holding an SVG `<title>`,
//! which browsers show as a tooltip (no script). Charts stay readable in a mail attachment or
//! with scripts blocked.

use std::fmt::Write as _;

use plotters::coord::combinators::{LogCoord, WithKeyPoints};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Tableau 10: distinct, and readable on white.
pub const PALETTE: [RGBColor; 10] = [
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

/// `v` rounded to a whole number with thousands separators: `1234567.8` is `1,234,568`.
pub fn thousands(v: f64) -> String {
    let n = v.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `v` exactly as a person reads it: a whole number with thousands separators, otherwise with
/// up to three decimals (`12,345.678`, `0.5`).
pub fn exact(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let a = v.abs();
    if a.fract() == 0.0 {
        return format!("{sign}{}", thousands(a));
    }
    let text = format!("{a:.3}");
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let frac = frac.trim_end_matches('0');
    let int = thousands(int.parse::<f64>().unwrap_or(0.0));
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// The tick values of a log axis from `lo` to `hi` (whole numbers, at least 1): 1, 2 and 5
/// times each power of ten in the range, or every multiple 1-9 of one when that gives fewer
/// than two. Distinct round values: plotters' own key points for a log axis crowd a narrow
/// range with near-equal values (a band of gridlines, and labels such as `1,000` twice once
/// rounded).
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
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
pub fn bounds(v: &[f64], default: f64) -> (f64, f64) {
    if v.is_empty() {
        return (default, default);
    }
    let lo = v.iter().cloned().fold(f64::MAX, f64::min);
    let hi = v.iter().cloned().fold(f64::MIN, f64::max);
    (lo, hi)
}

/// `text` with the five XML special characters escaped, for element text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Points that show their exact values when hovered. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Hover {
    targets: Vec<((i32, i32), String)>,
}

/// Half the side of a hover square, pixels.
const HOVER_HALF: i32 = 6;

impl Hover {
    /// A read-out `text` for the point drawn at pixel `at`.
    pub fn add(&mut self, at: (i32, i32), text: impl Into<String>) {
        self.targets.push((at, text.into()));
    }

    /// How many read-outs there are.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Appends the read-outs to `svg` (a whole SVG document, as plotters writes it), in a
    /// group of class `hover` inside its root element.
    pub fn apply(&self, svg: &mut String) {
        if self.targets.is_empty() {
            return;
        }
        let mut group = String::from("<g class=\"hover\">\n");
        for ((x, y), text) in &self.targets {
            let _ = writeln!(
                group,
                "<rect x=\"{}\" y=\"{}\" width=\"{side}\" height=\"{side}\" fill=\"#000\" \
                 fill-opacity=\"0\"><title>{}</title></rect>",
                x - HOVER_HALF,
                y - HOVER_HALF,
                escape(text),
                side = 2 * HOVER_HALF,
            );
        }
        group.push_str("</g>\n");
        match svg.rfind("</svg>") {
            Some(at) => svg.insert_str(at, &group),
            None => svg.push_str(&group),
        }
    }
}

/// How an axis maps its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Linear, from zero (or below, if a value is negative).
    Linear,
    /// Logarithmic, with round ticks ([`log_ticks`]).
    Log,
    /// HdrHistogram's percentile axis: a value `x` is drawn at `1 / (1 - x)` on a log axis,
    /// so 90%, 99%, 99.9% ... are equally spaced; ticks at the nines.
    Nines,
}

/// One named series of a [`LineChart`].
#[derive(Debug, Clone)]
pub struct Series {
    /// Its name, in the legend and the read-outs.
    pub name: String,
    /// Its points, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// How it is drawn.
    pub style: Style,
}

/// How a [`Series`] is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A line through the points (a time series).
    Line,
    /// A line and a dot on each point (a few points).
    LineDots,
    /// Dots only (points that are not a curve).
    Dots,
}

/// A line across the plot, with its name in the legend.
#[derive(Debug, Clone)]
pub enum Mark {
    /// A vertical line at this x (an answer, a step).
    Vertical(f64, String),
    /// A horizontal line at this y (a target).
    Horizontal(f64, String),
}

/// A chart of named series against one x axis. See [`LineChart::svg`].
#[derive(Debug, Clone)]
pub struct LineChart {
    /// The title above it.
    pub title: String,
    /// The x axis's description.
    pub x_desc: String,
    /// The y axis's description.
    pub y_desc: String,
    /// The unit after an x value in a read-out (`s`, ` msg/s`).
    pub x_unit: String,
    /// The unit after a y value in a read-out (` µs`, ` msg/s`).
    pub y_unit: String,
    /// The x axis's scale.
    pub x_scale: Scale,
    /// The y axis's scale.
    pub y_scale: Scale,
    /// The series, in legend order, coloured from the palette.
    pub series: Vec<Series>,
    /// Lines across the plot, grey (horizontal) or green (vertical).
    pub marks: Vec<Mark>,
    /// Read-outs per series at most: a long series gets one on every n-th point only, so a long
    /// run's page stays small.
    pub max_readouts: usize,
}

/// The charts' size in pixels (scaled to the page's width by the browser).
pub const CHART_SIZE: (u32, u32) = (960, 380);

impl LineChart {
    /// A chart with this title and axes, linear both ways, no series yet.
    pub fn new(
        title: impl Into<String>,
        x_desc: impl Into<String>,
        y_desc: impl Into<String>,
    ) -> LineChart {
        LineChart {
            title: title.into(),
            x_desc: x_desc.into(),
            y_desc: y_desc.into(),
            x_unit: String::new(),
            y_unit: String::new(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series: Vec::new(),
            marks: Vec::new(),
            max_readouts: 400,
        }
    }

    /// Adds a series.
    pub fn series(
        mut self,
        name: impl Into<String>,
        points: Vec<(f64, f64)>,
        style: Style,
    ) -> LineChart {
        self.series.push(Series {
            name: name.into(),
            points,
            style,
        });
        self
    }

    /// The chart as an SVG document, with a read-out on every point (up to
    /// [`max_readouts`](Self::max_readouts) per series).
    ///
    /// # Errors
    ///
    /// A message from plotters when the chart cannot be drawn.
    pub fn svg(&self) -> Result<String, String> {
        let xs: Vec<f64> = self.all(
            |p| p.0,
            self.marks.iter().filter_map(|m| match m {
                Mark::Vertical(x, _) => Some(*x),
                Mark::Horizontal(..) => None,
            }),
        );
        let ys: Vec<f64> = self.all(
            |p| p.1,
            self.marks.iter().filter_map(|m| match m {
                Mark::Horizontal(y, _) => Some(*y),
                Mark::Vertical(..) => None,
            }),
        );
        let (x_lo, x_hi) = bounds(&xs, 0.0);
        let (y_lo, y_hi) = bounds(&ys, 0.0);
        match (
            axis(self.x_scale, x_lo, x_hi),
            axis(self.y_scale, y_lo, y_hi),
        ) {
            (Axis::Linear(x), Axis::Linear(y)) => self.render(x, y),
            (Axis::Linear(x), Axis::Log(y)) => self.render(x, y),
            (Axis::Log(x), Axis::Linear(y)) => self.render(x, y),
            (Axis::Log(x), Axis::Log(y)) => self.render(x, y),
        }
    }

    /// Every point's coordinate picked by `pick`, and `extra`.
    fn all(&self, pick: impl Fn(&(f64, f64)) -> f64, extra: impl Iterator<Item = f64>) -> Vec<f64> {
        self.series
            .iter()
            .flat_map(|s| s.points.iter().map(&pick))
            .chain(extra)
            .filter(|v| v.is_finite())
            .collect()
    }

    fn render<X, Y>(&self, x: X, y: Y) -> Result<String, String>
    where
        X: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let mut svg = String::new();
        let mut hover = Hover::default();
        {
            let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
            self.draw(&root, x, y, &mut hover)
                .map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        hover.apply(&mut svg);
        Ok(svg)
    }

    fn draw<DB, X, Y>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x: X,
        y: Y,
        hover: &mut Hover,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
    where
        DB: DrawingBackend,
        X: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        root.fill(&WHITE)?;
        let names: Vec<(String, RGBColor)> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), color(i)))
            .chain(self.marks.iter().map(|m| match m {
                Mark::Vertical(_, name) => (name.clone(), PALETTE[3]),
                Mark::Horizontal(_, name) => (name.clone(), GREY),
            }))
            .collect();
        let longest = names
            .iter()
            .map(|(n, _)| n.chars().count())
            .max()
            .unwrap_or(0) as u32;
        let key_width = (44 + longest * 8).clamp(120, 300);
        let (plot_area, key) = root.split_horizontally(CHART_SIZE.0 - key_width);
        let font = ("sans-serif", 14).into_font();
        for (i, (name, c)) in names.iter().enumerate() {
            let at = 60 + 22 * i as i32;
            key.draw(&PathElement::new(
                vec![(8, at), (32, at)],
                c.stroke_width(2),
            ))?;
            key.draw(&Text::new(name.clone(), (40, at - 8), font.clone()))?;
        }
        let x_scale = self.x_scale;
        let y_scale = self.y_scale;
        let x_fmt = move |v: &f64| tick_label(x_scale, *v);
        let y_fmt = move |v: &f64| tick_label(y_scale, *v);
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(self.title.clone(), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(84)
            .build_cartesian_2d(x, y)?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc.clone())
            .y_desc(self.y_desc.clone())
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .draw()?;
        let (xr, yr) = (chart.x_range(), chart.y_range());
        for m in &self.marks {
            let (line, style) = match m {
                Mark::Vertical(v, _) => (
                    [
                        (to_axis(x_scale, *v), yr.start),
                        (to_axis(x_scale, *v), yr.end),
                    ],
                    PALETTE[3].stroke_width(1),
                ),
                Mark::Horizontal(v, _) => (
                    [
                        (xr.start, to_axis(y_scale, *v)),
                        (xr.end, to_axis(y_scale, *v)),
                    ],
                    GREY.stroke_width(1),
                ),
            };
            chart.draw_series(LineSeries::new(line, style))?;
        }
        for (i, s) in self.series.iter().enumerate() {
            let c = color(i);
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .map(|&(px, py)| (to_axis(x_scale, px), to_axis(y_scale, py)))
                .collect();
            if s.style != Style::Dots {
                chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?;
            }
            if s.style != Style::Line {
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
            }
            let every = s.points.len().div_ceil(self.max_readouts.max(1)).max(1);
            for (k, (&(px, py), &p)) in s.points.iter().zip(&pts).enumerate() {
                if k % every != 0 && k + 1 != s.points.len() {
                    continue;
                }
                hover.add(
                    chart.backend_coord(&p),
                    format!(
                        "{}: {}{} → {}{}",
                        s.name,
                        readout(x_scale, px),
                        self.x_unit,
                        exact(py),
                        self.y_unit
                    ),
                );
            }
        }
        Ok(())
    }
}

const GREY: RGBColor = RGBColor(110, 110, 110);

/// An axis's range, linear or logarithmic.
enum Axis {
    Linear(std::ops::Range<f64>),
    Log(WithKeyPoints<LogCoord<f64>>),
}

/// The drawn range of an axis of `scale` holding `lo..hi` (in the data's units).
fn axis(scale: Scale, lo: f64, hi: f64) -> Axis {
    match scale {
        Scale::Linear => {
            let lo = lo.min(0.0);
            let hi = if hi > lo { hi * 1.08 } else { lo + 1.0 };
            Axis::Linear(lo..hi)
        }
        Scale::Log => {
            let (lo, hi) = ((lo * 0.7).max(0.5), (hi * 1.5).max(1.0));
            Axis::Log((lo..hi).log_scale().with_key_points(log_ticks(lo, hi)))
        }
        Scale::Nines => {
            let hi = to_axis(Scale::Nines, hi).max(10.0) * 2.0;
            let ticks: Vec<f64> = (0..12)
                .map(|k| 10f64.powi(k))
                .filter(|&t| t <= hi)
                .collect();
            Axis::Log((1.0..hi).log_scale().with_key_points(ticks))
        }
    }
}

/// Where value `v` is drawn on an axis of `scale`.
fn to_axis(scale: Scale, v: f64) -> f64 {
    match scale {
        Scale::Nines => 1.0 / (1.0 - v.min(1.0 - 1e-12)),
        Scale::Log => v.max(0.5),
        Scale::Linear => v,
    }
}

/// A tick's label on an axis of `scale`.
fn tick_label(scale: Scale, v: f64) -> String {
    match scale {
        Scale::Nines => nines(1.0 - 1.0 / v),
        Scale::Linear if v.abs() < 10.0 && v.fract() != 0.0 => format!("{v:.1}"),
        _ => {
            let s = thousands(v.abs());
            if v < 0.0 {
                format!("-{s}")
            } else {
                s
            }
        }
    }
}

/// An x value in a read-out.
fn readout(scale: Scale, v: f64) -> String {
    match scale {
        Scale::Nines => nines(v),
        _ => exact(v),
    }
}

/// A quantile as a percentage with as many nines as it has: `0%`, `90%`, `99.99%`.
fn nines(q: f64) -> String {
    let pct = q * 100.0;
    for decimals in 0..8 {
        let text = format!("{pct:.decimals$}");
        if (text.parse::<f64>().unwrap_or(pct) - pct).abs() < 1e-9 * pct.max(1.0) {
            return format!("{text}%");
        }
    }
    format!("{pct}%")
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn numbers_for_people() {
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(exact(1234.0), "1,234");
        assert_eq!(exact(12345.678), "12,345.678");
        assert_eq!(exact(0.5), "0.5");
        assert_eq!(exact(-3.0), "-3");
        assert_eq!(nines(0.999), "99.9%");
        assert_eq!(nines(0.0), "0%");
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn every_point_has_a_readout_with_its_exact_value() {
        let chart = LineChart::new("t", "x", "y")
            .series("p99", vec![(1.0, 1500.0), (2.0, 2500.0)], Style::LineDots)
            .series("p50 <fast>", vec![(1.0, 100.0), (2.0, 120.5)], Style::Line);
        let svg = chart.svg().unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let titles: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("title"))
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(
            titles,
            [
                "p99: 1 → 1,500",
                "p99: 2 → 2,500",
                "p50 <fast>: 1 → 100",
                "p50 <fast>: 2 → 120.5"
            ]
        );
    }

    #[test]
    fn a_long_series_gets_fewer_readouts_but_its_last() {
        let mut chart = LineChart::new("t", "x", "y").series(
            "s",
            (0..1000).map(|i| (f64::from(i), 1.0)).collect(),
            Style::Line,
        );
        chart.max_readouts = 100;
        let svg = chart.svg().unwrap();
        let n = svg.matches("<title>").count();
        assert!((100..=101).contains(&n), "{n} read-outs");
        assert!(svg.contains("<title>s: 999 → 1</title>"));
    }

    #[test]
    fn every_scale_draws_and_empty_charts_too() {
        for (x, y) in [
            (Scale::Linear, Scale::Log),
            (Scale::Log, Scale::Log),
            (Scale::Nines, Scale::Linear),
        ] {
            let mut chart = LineChart::new("t", "x", "y").series(
                "s",
                vec![(0.0, 10.0), (0.9, 20.0), (0.999, 3000.0)],
                Style::Dots,
            );
            chart.x_scale = x;
            chart.y_scale = y;
            chart.marks.push(Mark::Horizontal(50.0, "target".into()));
            let svg = chart.svg().unwrap();
            assert!(roxmltree::Document::parse(&svg).is_ok(), "{x:?} {y:?}");
        }
        let empty = LineChart::new("t", "x", "y").svg().unwrap();
        assert!(roxmltree::Document::parse(&empty).is_ok());
    }
}
