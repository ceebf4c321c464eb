//! The HTML exporter (`--html PATH`): one self-contained page per result, to open in a browser,
//! keep, or send as a mail attachment.
//!
//! This module is responsible for [`Html`] and the [`Page`] every report is written on; what a
//! page shows is [`run`]'s (a run or a merged run: [`RunPage`]) and [`search`]'s (a latency
//! search); `ringport bench` writes its page on the same [`Page`].
//!
//! # Self-contained
//!
//! Styles are inline and charts are inline SVG drawn with plotters ([`chart`](super::chart)),
//! each point carrying an SVG `<title>` with its exact values (the browser's tooltip); the page
//! has no script. A Content-Security-Policy in the page itself (`default-src 'none'`) forbids
//! every request, so a page that asked for anything would show it as a blocked request in the
//! browser's console rather than reach a network.
//!
//! # Machine-readable figures
//!
//! Every number in a table is written twice: as text for people (`12,345.6`) and in a
//! `data-value` attribute beside a `data-key` naming its field in the JSON result (`messages`,
//! `latency_us.p99`), so a test (or a script) can compare the page with the JSON. Rows of
//! lists (agents, probes, steps, bench points) carry a `data-row` naming the entry.

pub mod run;
pub mod search;

use std::fmt::Write as _;

pub use run::RunPage;

use super::chart::{escape, exact};

/// The HTML report: a page for a run ([`RunPage`], or a [`StressReport`](crate::StressReport)
/// alone), a latency search ([`SearchReport`](crate::SearchReport)) and `ringport bench`'s
/// results.
#[derive(Debug, Clone, Copy, Default)]
pub struct Html;

/// The policy every page carries: nothing may be fetched, inline styles only.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const STYLE: &str = "\
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1040px;\
padding:1em 1.5em;color:#222;background:#fff}\
h1{font-size:1.45em;margin:.4em 0}h2{font-size:1.2em;border-bottom:1px solid #ddd;\
padding-bottom:.2em;margin-top:1.8em}\
table{border-collapse:collapse;margin:.6em 0}th,td{padding:.2em .7em;border-bottom:1px solid #eee;\
text-align:left;vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}\
thead th{border-bottom:2px solid #ccc}\
.verdict{font-weight:600;padding:.5em .8em;border-radius:4px;display:inline-block}\
.pass{background:#e6f4ea;color:#1e6b34}.fail{background:#fde8e8;color:#a11}\
figure{margin:1em 0}figure svg{width:100%;height:auto}.hover rect:hover{fill-opacity:.35}\
.warnings li{color:#8a5300}.note{color:#666}footer{margin-top:2.5em;color:#888;font-size:.85em}\
code{font-size:.92em}";

/// A number for a table: its value as the JSON has it, shown for people.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    /// A count.
    Int(u64),
    /// A measurement.
    Float(f64),
}

impl Num {
    /// The `data-value` text: the JSON's own digits.
    fn raw(self) -> String {
        match self {
            Num::Int(n) => n.to_string(),
            Num::Float(v) => v.to_string(),
        }
    }

    /// The text shown.
    fn shown(self) -> String {
        match self {
            Num::Int(n) => exact(n as f64),
            Num::Float(v) => exact(v),
        }
    }
}

impl From<u64> for Num {
    fn from(n: u64) -> Num {
        Num::Int(n)
    }
}

impl From<usize> for Num {
    fn from(n: usize) -> Num {
        Num::Int(n as u64)
    }
}

impl From<f64> for Num {
    fn from(v: f64) -> Num {
        Num::Float(v)
    }
}

/// A table cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A number with the JSON field it shows (`data-key`), and a unit after it.
    Num {
        /// The JSON field, dotted (`latency_us.p99`).
        key: String,
        /// The value.
        value: Num,
        /// Shown after the number (` µs`), or empty.
        unit: &'static str,
    },
    /// Nothing to show (`-`).
    Empty,
}

/// A text cell.
pub fn text(t: impl Into<String>) -> Cell {
    Cell::Text(t.into())
}

/// A number cell for the JSON field `key`.
pub fn num(key: impl Into<String>, value: impl Into<Num>) -> Cell {
    Cell::Num {
        key: key.into(),
        value: value.into(),
        unit: "",
    }
}

/// A number cell for the JSON field `key`, with a unit.
pub fn num_unit(key: impl Into<String>, value: impl Into<Num>, unit: &'static str) -> Cell {
    Cell::Num {
        key: key.into(),
        value: value.into(),
        unit,
    }
}

impl Cell {
    fn td(&self) -> String {
        match self {
            Cell::Text(t) => format!("<td>{}</td>", escape(t)),
            Cell::Num { key, value, unit } => format!(
                "<td class=\"n\" data-key=\"{}\" data-value=\"{}\">{}{}</td>",
                escape(key),
                value.raw(),
                value.shown(),
                escape(unit)
            ),
            Cell::Empty => "<td class=\"n\">-</td>".to_string(),
        }
    }
}

/// An HTML page being written: sections of tables, charts, lists and notes. See the module
/// docs.
#[derive(Debug, Clone)]
pub struct Page {
    title: String,
    kind: &'static str,
    body: String,
    in_section: bool,
}

impl Page {
    /// A page of kind `kind` (`stress`, `merge`, `search`, `bench`: its body's `data-report`)
    /// with this title (its heading too).
    pub fn new(kind: &'static str, title: impl Into<String>) -> Page {
        let title = title.into();
        let mut body = String::new();
        let _ = writeln!(body, "<h1>{}</h1>", escape(&title));
        Page {
            title,
            kind,
            body,
            in_section: false,
        }
    }

    /// The verdict under the title: green when `passed`, red otherwise.
    pub fn verdict(&mut self, passed: bool, text: &str) {
        let _ = writeln!(
            self.body,
            "<p class=\"verdict {}\" id=\"verdict\" data-passed=\"{passed}\">{}</p>",
            if passed { "pass" } else { "fail" },
            escape(text)
        );
    }

    /// Starts a section with this `id` and heading (ending the one before).
    pub fn section(&mut self, id: &str, heading: &str) {
        self.end_section();
        let _ = writeln!(
            self.body,
            "<section id=\"{}\">\n<h2>{}</h2>",
            escape(id),
            escape(heading)
        );
        self.in_section = true;
    }

    fn end_section(&mut self) {
        if self.in_section {
            self.body.push_str("</section>\n");
            self.in_section = false;
        }
    }

    /// A two-column table of named figures (`id` names it): each row a label and a cell.
    pub fn figures(&mut self, id: &str, rows: &[(&str, Cell)]) {
        let _ = writeln!(self.body, "<table class=\"figures\" id=\"{}\">", escape(id));
        for (label, cell) in rows {
            let _ = writeln!(
                self.body,
                "<tr><th>{}</th>{}</tr>",
                escape(label),
                cell.td()
            );
        }
        self.body.push_str("</table>\n");
    }

    /// A table (`id` names it) with a header row and rows, each `(data-row, cells)`.
    pub fn table(&mut self, id: &str, header: &[&str], rows: &[(String, Vec<Cell>)]) {
        let _ = writeln!(self.body, "<table class=\"list\" id=\"{}\">", escape(id));
        self.body.push_str("<thead><tr>");
        for h in header {
            let _ = write!(self.body, "<th>{}</th>", escape(h));
        }
        self.body.push_str("</tr></thead>\n<tbody>\n");
        for (row, cells) in rows {
            let _ = write!(self.body, "<tr data-row=\"{}\">", escape(row));
            for c in cells {
                self.body.push_str(&c.td());
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</tbody></table>\n");
    }

    /// A chart (`name` is its `data-chart`): an SVG document drawn inline, or, when it could not
    /// be drawn, a note saying why.
    pub fn chart(&mut self, name: &str, svg: Result<String, String>) {
        match svg {
            Ok(svg) => {
                let svg = match svg.find("<svg") {
                    Some(at) => &svg[at..],
                    None => svg.as_str(),
                };
                let _ = writeln!(
                    self.body,
                    "<figure data-chart=\"{}\">\n{}\n</figure>",
                    escape(name),
                    svg.trim_end()
                );
            }
            Err(e) => self.note(&format!("The {name} chart could not be drawn: {e}")),
        }
    }

    /// A paragraph in grey: what a figure means, or why something is absent.
    pub fn note(&mut self, text: &str) {
        let _ = writeln!(self.body, "<p class=\"note\">{}</p>", escape(text));
    }

    /// A paragraph.
    pub fn paragraph(&mut self, text: &str) {
        let _ = writeln!(self.body, "<p>{}</p>", escape(text));
    }

    /// A list of `class` (e.g. `warnings`).
    pub fn list(&mut self, class: &str, items: &[String]) {
        let _ = writeln!(self.body, "<ul class=\"{}\">", escape(class));
        for i in items {
            let _ = writeln!(self.body, "<li>{}</li>", escape(i));
        }
        self.body.push_str("</ul>\n");
    }

    /// The whole document.
    pub fn finish(mut self) -> String {
        self.end_section();
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_SECURITY_POLICY}\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"generator\" content=\"ringport {version}\">\n\
             <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n\
             <body data-report=\"{kind}\">\n{body}\
             <footer>Written by ringport {version}. Hover over a point of a chart for its exact \
             values; every figure of the tables is also in the page as <code>data-key</code> and \
             <code>data-value</code> attributes.</footer>\n</body>\n</html>\n",
            version = env!("CARGO_PKG_VERSION"),
            title = escape(&self.title),
            kind = self.kind,
            body = self.body,
        )
    }
}

#[cfg(test)]
mod tests;
