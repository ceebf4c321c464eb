//! `ringport bench`: every server design under the same verified load, side by side.
//!
//! Each design (ringport's completion model on io_uring and on epoll, its thread-per-client and
//! one-client-at-a-time models, and any external echo server) is started as a child process,
//! loaded by the stress engine in this process over a sweep of connection counts and message
//! sizes, and measured: round trips per second, latency percentiles, the server's CPU (user and
//! system, from `/proc`) and peak memory, the load generator's CPU, errors. Rounds are
//! interleaved and the median is reported, with each design's ratio to the best.
//!
//! # Using it
//!
//! ```no_run
//! # #[cfg(unix)] // the runner is Linux's (and Unix's); the doctests also build for Windows
//! # {
//! use ringport_bench::{export, runner, schedule::BenchConfig};
//!
//! let config = BenchConfig::quick(std::env::current_exe()?, 2);
//! let results = runner::run(&config, &mut |e| eprintln!("{}/{} {}", e.index, e.total, e.design))?;
//! print!("{}", export::markdown::render(&results));
//! export::write_all(&results, "ringport-bench".as_ref())?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules
//!
//! * [`schedule`]: the designs, the sweep, the `--quick` preset, the interleaved plan.
//! * [`server`]: one server's life as a child process: start (ringport's read back from its
//!   ready line, `serve --ready-json -`), `/proc` sampling, stop.
//! * [`procfs`]: a server's `/proc` counters over a run (read through `ringport_os::proc`).
//! * [`runner`]: the loop over the plan, pinning, the measured window.
//! * [`aggregate`]: from runs to points: medians, ratios, the largest clean connection count,
//!   warnings.
//! * [`median`]: medians over rounds, figure by figure (the sweep's and the churn point's).
//! * [`results`]: [`BenchResults`](results::BenchResults), the one result type.
//! * [`env`]: the machine and the moment.
//! * [`export`]: one exporter per format: markdown, JSON, CSV, SVG charts.
//! * [`churn`]: the churn point (connections closed and reopened every few round trips):
//!   its settings, runs, figures, table and chart.

#![forbid(unsafe_code)]

pub mod aggregate;
pub mod churn;
pub mod env;
pub mod export;
pub mod median;
#[cfg(unix)]
pub mod procfs;
pub mod results;
// Starting servers, signalling them, pinning CPUs and reading /proc: Linux's (on Windows the
// command line refuses `bench` with one line).
#[cfg(unix)]
pub mod runner;
pub mod schedule;
#[cfg(unix)]
pub mod server;

/// Why a benchmark could not be carried out (as opposed to errors on connections, which are
/// measured and reported).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A bad option.
    #[error("{0}")]
    Config(String),
    /// A server could not be started or did not become ready.
    #[error("server {design}: {detail}")]
    Server {
        /// The design.
        design: String,
        /// What happened, with the server's last output.
        detail: String,
    },
    /// The load generator could not run against a server.
    #[error("load on {design} at {size} B x {connections} connections: {detail}")]
    Load {
        /// The design.
        design: String,
        /// Message size.
        size: usize,
        /// Connections.
        connections: usize,
        /// Why.
        detail: String,
    },
    /// CPU affinity could not be set (`--pin`).
    #[error("{0}")]
    Pin(String),
    /// An output could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}
