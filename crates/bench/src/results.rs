//! [`BenchResults`]: the one result type of `ringport bench`, written as `results.json` and read
//! by every exporter.
//!
//! Every figure of one sweep point is a [`Figures`]; a [`PointResult`] holds each round's and
//! the median over rounds. Nothing here is computed at export time except formatting: ratios,
//! medians and warnings are settled by [`crate::aggregate`] when the results are built.

use serde::{Deserialize, Serialize};

use crate::schedule::Point;

/// Version of the `results.json` layout; raised on an incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything one `ringport bench` run measured, and where and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResults {
    /// Layout version of this file ([`SCHEMA_VERSION`]).
    pub schema: u32,
    /// The machine and the moment.
    pub environment: Environment,
    /// The sweep as it was asked for.
    pub settings: Settings,
    /// The designs compared, in the order they ran within each round.
    pub designs: Vec<DesignInfo>,
    /// One entry per design and sweep point that ran, in sweep order (size, then connections,
    /// then design).
    pub points: Vec<PointResult>,
    /// Why a figure may be wrong, and what to try.
    pub warnings: Vec<Warning>,
    /// The churn point: one entry per design that ran it (`settings.churn` says how); empty
    /// without it, and absent in files from before it existed.
    #[serde(default)]
    pub churn: Vec<crate::churn::ChurnPointResult>,
}

/// Where and when the benchmark ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// Version of the `ringport` that ran the benchmark (and served the ringport designs).
    pub ringport_version: String,
    /// Start of the run, UTC, RFC 3339 (`2025-01-31T12:00:00Z`).
    pub date: String,
    /// Host name.
    pub hostname: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// CPU model name from `/proc/cpuinfo`, empty if unknown.
    pub cpu_model: String,
    /// CPUs this process may run on.
    pub cpus: usize,
    /// Total memory, MiB.
    pub memory_mib: u64,
    /// One-minute load average when the run started: other work on the machine makes figures
    /// noisy.
    pub load_average: f64,
    /// Whether io_uring could be used, or why not (`available`, or the cause and remedy).
    pub io_uring: String,
    /// The CPU the servers were pinned to (`--pin`), `null` when unpinned.
    pub server_cpu: Option<usize>,
    /// The CPU the load generator was pinned to (`--pin`), `null` when unpinned.
    pub load_cpu: Option<usize>,
}

/// The sweep as asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Connection counts swept (`--connections`).
    pub connections: Vec<usize>,
    /// Message sizes swept, bytes (`--size`): each at every connection count.
    pub sizes: Vec<usize>,
    /// Points run besides that sweep, each `{"size": BYTES, "connections": N}` (the `--quick`
    /// preset's bulk point); absent in files from before it existed.
    #[serde(default)]
    pub extra_points: Vec<Point>,
    /// Measured seconds per point and round (`--duration`).
    pub duration_s: f64,
    /// Seconds of load before measuring, excluded from every figure (`--warmup`).
    pub warmup_s: f64,
    /// Interleaved rounds; the median is reported (`--repeat`).
    pub repeat: usize,
    /// Whether the server and the load were pinned to separate CPUs (`--pin`).
    pub pinned: bool,
    /// Worker threads given to ringport's completion model (`--server-threads`); `null` means
    /// the server's default (one per CPU).
    pub server_threads: Option<u32>,
    /// Client threads of the load generator.
    pub client_threads: usize,
    /// Messages in flight per connection: 1, a closed loop of ping-pong round trips.
    pub pipeline: usize,
    /// Whether the `--quick` preset was used.
    pub quick: bool,
    /// The churn point (connections closed and reopened every few round trips), `null` when
    /// left out (`--no-churn`) or in files from before it existed.
    #[serde(default)]
    pub churn: Option<crate::churn::ChurnPoint>,
}

/// One design under test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesignInfo {
    /// Short name used in every table, file and chart (`completion-uring`, `threaded`, or the
    /// `NAME` of `--server NAME=COMMAND`).
    pub name: String,
    /// `ringport` (one of ringport's own models) or `external` (`--server`).
    pub kind: String,
    /// How the server was started; `{port}` stands for the port it was given.
    pub command: String,
    /// What the server said it runs on, e.g. `io_uring (setup flags: SINGLE_ISSUER | ...)`,
    /// `epoll (edge-triggered)`, `blocking sockets`; `null` when it did not say (external
    /// servers).
    pub backend: Option<String>,
    /// A limit of this design that shaped the sweep (e.g. the single model's one connection).
    pub note: Option<String>,
    /// The largest connection count at which every round of every size ran with no error and at
    /// least one verified round trip; `null` if none did.
    pub max_clean_connections: Option<usize>,
}

/// One design at one sweep point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointResult {
    /// The design's name, as in [`DesignInfo::name`].
    pub design: String,
    /// Message size, bytes.
    pub size: usize,
    /// Concurrent connections, each a closed loop of one message at a time.
    pub connections: usize,
    /// Median over the rounds of each figure taken separately (errors: the largest count, so
    /// that no error is hidden).
    pub median: Figures,
    /// Median round trips per second divided by the best design's at this point (1.0 = best).
    /// The best is taken among the designs that were not [`client_bound`](Self::client_bound)
    /// there (among all when every one was), so a client-bound point can exceed 1.0: its
    /// figure is the load generator's limit, a lower bound of the server's.
    pub ratio_to_best: f64,
    /// The busiest load generator thread was at or above
    /// [`CLIENT_BOUND_PCT`](crate::aggregate::CLIENT_BOUND_PCT) of a core (median over rounds):
    /// the throughput here measures the client; absent (false) in files from before it existed.
    #[serde(default)]
    pub client_bound: bool,
    /// Median server CPU per round trip divided by the lowest at this point (1.0 = most
    /// efficient, 2.0 = twice the CPU); `null` when not measured.
    pub cpu_ratio_to_best: Option<f64>,
    /// Spread of round trips per second between rounds: (max - min) / median; 0 with one round.
    pub spread: f64,
    /// Each round's figures, in the order they ran.
    pub rounds: Vec<Figures>,
}

/// What one run (or the median of several) measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Verified round trips per second over the measured window.
    pub msgs_per_s: f64,
    /// Verified round trips in the measured window.
    pub messages: u64,
    /// Length of the measured window, seconds (warm-up excluded).
    pub measured_s: f64,
    /// Round-trip latency, median, microseconds.
    pub p50_us: u64,
    /// Round-trip latency, 99th percentile, microseconds.
    pub p99_us: u64,
    /// Round-trip latency, 99.9th percentile, microseconds.
    pub p999_us: u64,
    /// Server CPU time in user mode during the measured window, seconds (all its threads,
    /// from `/proc/PID/stat`).
    pub server_user_s: f64,
    /// Server CPU time in the kernel during the measured window, seconds.
    pub server_sys_s: f64,
    /// Server CPU (user + system) per verified round trip, microseconds; `null` when nothing
    /// was verified.
    pub server_cpu_us_per_msg: Option<f64>,
    /// Server peak resident memory over its life (start, warm-up and measurement), KiB.
    pub server_peak_rss_kib: u64,
    /// Load generator CPU, summed over its threads, percent of one core.
    pub client_cpu_pct: f64,
    /// The busiest load generator thread's CPU, percent of one core (near 100: client-bound).
    pub client_cpu_max_thread_pct: f64,
    /// Errors of every kind (mismatch, short echo, early close, reset, timeout, failed connect).
    pub errors: u64,
    /// CPU taken meanwhile by everything but this server and the benchmark itself (other
    /// programs, the kernel's own threads), percent of one CPU: a noise gauge.
    pub others_cpu_pct: f64,
}

/// A message size for people: `64 B`, `4 KiB`, `64 KiB`, `1 MiB`; bytes when not a whole number
/// of KiB (`1000 B`).
pub fn size_label(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// Why a figure may be wrong, and what to try.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    /// What kind of problem.
    pub kind: WarningKind,
    /// The design concerned, `null` for the whole run.
    pub design: Option<String>,
    /// The explanation and the remedy, one sentence or two.
    pub message: String,
}

/// The kinds of [`Warning`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// The load generator was near a full core: throughput measures the client.
    ClientBound,
    /// The measured window is too short for stable figures.
    TooShort,
    /// Rounds disagreed by more than the threshold.
    HighVariance,
    /// Errors were counted.
    Errors,
    /// The single model serves one client at a time and ran at one connection only.
    SingleLimited,
    /// A server did not exit cleanly when asked to.
    ServerExit,
    /// The machine was busy, or server and load shared CPUs.
    Noise,
    /// A design could not run on this machine and was left out.
    Skipped,
    /// The bench was stopped (Ctrl-C) before its plan was done: the results are partial.
    Interrupted,
}

impl BenchResults {
    /// The design named `name`.
    pub fn design(&self, name: &str) -> Option<&DesignInfo> {
        self.designs.iter().find(|d| d.name == name)
    }

    /// The point of `design` at (`size`, `connections`), if it ran.
    pub fn point(&self, design: &str, size: usize, connections: usize) -> Option<&PointResult> {
        self.points
            .iter()
            .find(|p| p.design == design && p.size == size && p.connections == connections)
    }

    /// Sizes that have at least one point, ascending.
    pub fn sizes(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.points.iter().map(|p| p.size).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Connection counts that have at least one point of `size`, ascending.
    pub fn connections_of(&self, size: usize) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .points
            .iter()
            .filter(|p| p.size == size)
            .map(|p| p.connections)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::size_label;

    #[test]
    fn size_labels() {
        assert_eq!(size_label(64), "64 B");
        assert_eq!(size_label(1000), "1000 B");
        assert_eq!(size_label(4096), "4 KiB");
        assert_eq!(size_label(65536), "64 KiB");
        assert_eq!(size_label(65537), "65537 B");
        assert_eq!(size_label(1 << 20), "1 MiB");
        assert_eq!(size_label(1536 * 1024), "1536 KiB");
    }
}
