//! Exporters: one small writer per output format, all behind [`Exporter`].
//!
//! * [`Human`] (`human`): the report a person reads, for a run and for a latency search.
//! * [`Json`] (`json`): the `--json` output of any result, pretty-printed.
//! * [`Csv`] (`csv`): one row per interval of a run's interval log (`--csv`).
//! * [`HdrLog`] (`hdrlog`): the standard HdrHistogram interval log (`--hdr-log`).
//! * [`Html`] ([`html`]): one self-contained page with charts (`--html`), for a run, a merged
//!   run, a latency search and (in `ringport-bench`) a benchmark; its charts are drawn with
//!   [`chart`], which `ringport bench`'s charts share.
//!
//! A new format (Prometheus metrics, say) is one more type implementing
//! [`Exporter`] for the results it can show; the commands pick exporters by flag and write
//! through [`Exporter::write_to`].

pub mod chart;
mod csv;
mod hdrlog;
pub mod html;
pub mod human;
mod human_tls;
mod human_ws;
mod json;

use std::io::{self, Write};
use std::path::PathBuf;

pub use csv::{Csv, CsvRun};
pub use hdrlog::HdrLog;
pub use html::Html;
pub use human::{Human, HumanRun};
pub use json::Json;

/// Writes a result of type `R` in one format.
pub trait Exporter<R: ?Sized> {
    /// Writes `result` to `out`.
    ///
    /// # Errors
    ///
    /// The I/O error of writing.
    fn write(&self, result: &R, out: &mut dyn Write) -> io::Result<()>;

    /// `result` in this format, as a string.
    fn to_string(&self, result: &R) -> String {
        let mut out = Vec::new();
        self.write(result, &mut out)
            .expect("writing to memory cannot fail");
        String::from_utf8(out).expect("every exporter writes UTF-8")
    }

    /// Writes `result` to `target`: a file (created or truncated) or standard output.
    ///
    /// # Errors
    ///
    /// The I/O error of creating or writing the file.
    fn write_to(&self, result: &R, target: &OutputTarget) -> io::Result<()> {
        match target {
            OutputTarget::Stdout => {
                let mut out = io::stdout().lock();
                self.write(result, &mut out)?;
                out.flush()
            }
            OutputTarget::Path(p) => {
                let mut out = io::BufWriter::new(std::fs::File::create(p)?);
                self.write(result, &mut out)?;
                out.flush()
            }
        }
    }
}

/// Where to write a machine-readable output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// `-`: standard output.
    Stdout,
    /// A file path.
    Path(PathBuf),
}

impl OutputTarget {
    /// `-` means standard output, anything else a path.
    pub fn parse(s: &str) -> OutputTarget {
        if s == "-" {
            OutputTarget::Stdout
        } else {
            OutputTarget::Path(PathBuf::from(s))
        }
    }
}
