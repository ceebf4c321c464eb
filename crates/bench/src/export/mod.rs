//! One exporter per format, each a function of [`BenchResults`] alone; the text formats are
//! exporters of the result model ([`ringport_report::export::Exporter`]), JSON its own.
//!
//! * [`markdown`]: the report printed on standard output: environment, one table per message
//!   size with each design's ratio to the best, the largest clean connection count, warnings.
//! * [`json`]: `results.json`, the serde form of [`BenchResults`] (and back).
//! * [`csv`]: `results.csv`, one row per design and point (the medians).
//! * [`svg`]: charts drawn with plotters: throughput against connections and p99 latency
//!   against connections, one chart per message size.
//! * [`html`]: the result model's HTML exporter for [`BenchResults`] (`--html`): every chart
//!   above with its read-outs, and every point's figures, in one self-contained page.
//! * [`curve`]: the latency-against-rate chart of `ringport stress --find-max-rate`, drawn
//!   with the same palette, ticks and series as [`svg`].

pub mod csv;
pub mod curve;
pub mod html;
pub mod json;
pub mod markdown;
pub mod svg;

use std::fs;
use std::path::{Path, PathBuf};

use ringport_report::export::{Exporter, Json};

use crate::results::BenchResults;
use crate::BenchError;

/// Writes `results.json`, `results.csv`, `results.md` and the SVG charts into `dir` (created if
/// missing). Returns the paths written, in that order.
///
/// # Errors
///
/// [`BenchError::Write`] naming the file that could not be written.
pub fn write_all(results: &BenchResults, dir: &Path) -> Result<Vec<PathBuf>, BenchError> {
    let fail = |path: &Path, source| BenchError::Write {
        path: path.display().to_string(),
        source,
    };
    fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    let exporters: [(&str, &dyn Exporter<BenchResults>); 3] = [
        ("results.json", &Json),
        ("results.csv", &csv::Csv),
        ("results.md", &markdown::Markdown),
    ];
    let mut files: Vec<(String, String)> = exporters
        .into_iter()
        .map(|(name, exporter)| (name.to_string(), exporter.to_string(results)))
        .collect();
    let charts = svg::charts(results).map_err(|e| {
        fail(
            dir,
            std::io::Error::other(format!("drawing the charts: {e}")),
        )
    })?;
    files.extend(charts);
    let mut written = Vec::with_capacity(files.len());
    for (name, text) in files {
        let path = dir.join(name);
        fs::write(&path, text).map_err(|e| fail(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

/// Checks, before a run, that [`write_all`] will be able to write into `dir`: creates it if
/// missing and creates and removes a probe file in it.
///
/// # Errors
///
/// [`BenchError::Write`] naming the directory and why.
pub fn check_dir(dir: &Path) -> Result<(), BenchError> {
    let fail = |source| BenchError::Write {
        path: dir.display().to_string(),
        source,
    };
    // A file where the directory should be: said as such, not as "File exists".
    if dir.exists() && !dir.is_dir() {
        return Err(fail(std::io::Error::other("it is a file, not a directory")));
    }
    fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(format!(".ringport-probe-{}", std::process::id()));
    fs::write(&probe, b"").map_err(fail)?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
pub(crate) mod fixture {
    //! Fixed results for the exporters' tests.
    use crate::results::*;

    fn figures(msgs_per_s: f64, p99_us: u64, errors: u64) -> Figures {
        Figures {
            msgs_per_s,
            messages: (msgs_per_s * 2.0) as u64,
            measured_s: 2.0,
            p50_us: p99_us / 4,
            p99_us,
            p999_us: p99_us * 2,
            server_user_s: 0.125,
            server_sys_s: 1.5,
            server_cpu_us_per_msg: Some(1.625e6 / (msgs_per_s * 2.0)),
            server_peak_rss_kib: 6144,
            client_cpu_pct: 97.5,
            client_cpu_max_thread_pct: 97.5,
            errors,
            others_cpu_pct: 1.5,
        }
    }

    fn point(design: &str, connections: usize, f: Figures, ratio: f64) -> PointResult {
        PointResult {
            design: design.into(),
            size: 64,
            connections,
            median: f.clone(),
            ratio_to_best: ratio,
            client_bound: false,
            cpu_ratio_to_best: Some(1.0 / ratio),
            spread: 0.0,
            rounds: vec![f],
        }
    }

    fn design(name: &str, kind: &str, backend: Option<&str>, max: Option<usize>) -> DesignInfo {
        DesignInfo {
            name: name.into(),
            kind: kind.into(),
            command: format!("serve {name} {{port}}"),
            backend: backend.map(String::from),
            note: None,
            max_clean_connections: max,
        }
    }

    /// Two designs over two connection counts, one of them with errors, and a warning.
    pub(crate) fn results() -> BenchResults {
        BenchResults {
            schema: SCHEMA_VERSION,
            environment: Environment {
                ringport_version: "0.1.0".into(),
                date: "2025-01-31T12:00:00Z".into(),
                hostname: "box".into(),
                kernel: "6.18.0".into(),
                cpu_model: "Test CPU".into(),
                cpus: 2,
                memory_mib: 24_000,
                load_average: 0.1,
                io_uring: "available".into(),
                server_cpu: Some(0),
                load_cpu: Some(1),
            },
            settings: Settings {
                connections: vec![1, 100],
                sizes: vec![64],
                extra_points: vec![crate::schedule::Point {
                    size: 65536,
                    connections: 10,
                }],
                duration_s: 2.0,
                warmup_s: 0.5,
                repeat: 1,
                pinned: true,
                server_threads: Some(1),
                client_threads: 1,
                pipeline: 1,
                quick: true,
                churn: None,
            },
            designs: vec![
                design(
                    "completion-uring",
                    "ringport",
                    Some("io_uring (setup flags: SINGLE_ISSUER)"),
                    Some(100),
                ),
                design("my,echo", "external", None, Some(1)),
            ],
            points: vec![
                point("completion-uring", 1, figures(40_000.0, 40, 0), 1.0),
                point("my,echo", 1, figures(20_000.0, 80, 0), 0.5),
                point("completion-uring", 100, figures(200_000.0, 900, 0), 1.0),
                point("my,echo", 100, figures(50_000.0, 4000, 7), 0.25),
            ],
            warnings: vec![Warning {
                kind: WarningKind::Errors,
                design: Some("my,echo".into()),
                message: "my,echo: 7 errors at 64 B x 100".into(),
            }],
            churn: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--out` naming a file is refused in those words, before any run.
    #[test]
    fn an_out_that_is_a_file_is_said_to_be_one() {
        let file = std::env::temp_dir().join(format!("ringport-out-file-{}", std::process::id()));
        fs::write(&file, b"x").unwrap();
        let e = check_dir(&file).unwrap_err().to_string();
        fs::remove_file(&file).unwrap();
        assert!(e.contains("it is a file, not a directory"), "{e}");
    }
}
