//! What to run and in which order: the designs, the sweep, and the interleaved schedule.
//!
//! This module is responsible for [`BenchConfig`] (plain data, validated here), the built-in
//! designs, the `--quick` preset, and [`plan`], which lists every run in order. Runs are
//! interleaved as in `shared/peers/run-peers.sh`: for each point (message size and connection
//! count), for each round, every design once (A B C D A B C D ...), so slow drifts of the
//! machine (thermal, other work) fall on every design alike instead of on whichever ran last.

use std::path::PathBuf;
use std::time::Duration;

use ringport_port::BackendChoice;
use ringport_server::Model;
use serde::{Deserialize, Serialize};

/// One point of the sweep: a message size at a connection count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    /// Message size, bytes.
    pub size: usize,
    /// Concurrent connections.
    pub connections: usize,
}

/// How a design's server is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSpec {
    /// One of ringport's own models: `ringport serve --port 0 --model MODEL --backend BACKEND`.
    Ringport {
        /// The server design.
        model: Model,
        /// The completion port's mechanism (the blocking models take `auto` and use none).
        backend: BackendChoice,
    },
    /// Any echo server: a shell command in which `{port}` is replaced by a free port.
    External {
        /// The command, e.g. `python3 echo.py {port}`.
        command: String,
    },
}

/// One design under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Design {
    /// Name in tables, files and charts.
    pub name: String,
    /// How to start it.
    pub server: ServerSpec,
}

impl Design {
    /// Whether this design serves one client at a time (the single model), so that it runs at
    /// one connection only: at more, the others would wait in the backlog until their
    /// connection timed out.
    pub fn one_client_at_a_time(&self) -> bool {
        matches!(
            &self.server,
            ServerSpec::Ringport {
                model: Model::Single,
                ..
            }
        )
    }

    /// Parses `NAME=COMMAND` (the value of `--server`). `COMMAND` must contain `{port}`.
    ///
    /// # Errors
    ///
    /// A message saying what is wrong with the value.
    pub fn parse_external(value: &str) -> Result<Design, String> {
        let (name, command) = value
            .split_once('=')
            .ok_or_else(|| format!("`{value}`: expected NAME='COMMAND {{port}}'"))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "`{name}`: a server name is letters, digits, `-`, `_` or `.`"
            ));
        }
        if !command.contains("{port}") {
            return Err(format!(
                "`{command}`: the command must contain {{port}}, replaced by the port to listen on"
            ));
        }
        Ok(Design {
            name: name.to_string(),
            server: ServerSpec::External {
                command: command.trim().to_string(),
            },
        })
    }
}

/// The built-in designs, by name: the completion model on io_uring and on epoll, the thread per
/// client model, and the one-client-at-a-time model; each names its server (see [`design_name`]).
pub const BUILTIN: &[&str] = &["completion-uring", "completion-epoll", "threaded", "single"];

/// The servers of [`BUILTIN`], in its order.
const BUILTIN_SERVERS: [(Model, BackendChoice); 4] = [
    (Model::Completion, BackendChoice::Uring),
    (Model::Completion, BackendChoice::Epoll),
    (Model::Threaded, BackendChoice::Auto),
    (Model::Single, BackendChoice::Auto),
];

/// The name of ringport's `model` on `backend` in tables, files and charts: the model, and for
/// the completion model the backend chosen (`completion-uring`); the blocking models use none.
pub fn design_name(model: Model, backend: BackendChoice) -> String {
    match model {
        Model::Completion => format!("{model}-{backend}"),
        Model::Threaded | Model::Single => model.to_string(),
    }
}

/// The built-in design called `name` (one of [`BUILTIN`]).
pub fn builtin(name: &str) -> Option<Design> {
    BUILTIN_SERVERS
        .into_iter()
        .find(|&(model, backend)| design_name(model, backend) == name)
        .map(|(model, backend)| Design {
            name: name.to_string(),
            server: ServerSpec::Ringport { model, backend },
        })
}

/// Everything a benchmark run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    /// The designs, in the order they run within a round.
    pub designs: Vec<Design>,
    /// Connection counts to sweep.
    pub connections: Vec<usize>,
    /// Message sizes to sweep, bytes.
    pub sizes: Vec<usize>,
    /// Points run besides the sweep of every size at every connection count, after it (the
    /// `--quick` preset's bulk point); one already in the sweep is not run twice.
    pub extra_points: Vec<Point>,
    /// Measured time per run.
    pub duration: Duration,
    /// Load before measuring, per run.
    pub warmup: Duration,
    /// Interleaved rounds.
    pub repeat: usize,
    /// Pin the server to CPU 0 and the load to CPU 1.
    pub pin: bool,
    /// `--workers` for ringport's completion model; `None` = its default.
    pub server_threads: Option<u32>,
    /// Client threads; `None` = 1 when pinned, else the stress engine's default.
    pub client_threads: Option<usize>,
    /// Seconds without an echo before a connection counts a timeout.
    pub timeout: Duration,
    /// The `ringport` binary that serves the built-in designs.
    pub ringport_exe: PathBuf,
    /// Whether this is the `--quick` preset (recorded in the results).
    pub quick: bool,
    /// The churn point, run after the sweep ([`crate::churn`]); `None` leaves it out.
    pub churn: Option<crate::churn::ChurnPoint>,
}

/// Default connection counts.
pub const DEFAULT_CONNECTIONS: &[usize] = &[1, 10, 100, 1000];
/// Default message sizes: small messages, a page, and bulk.
pub const DEFAULT_SIZES: &[usize] = &[64, 4096, 65536];
/// The `--quick` preset's bulk point, besides its 64-byte sweep: 64 KiB messages at 10
/// connections, so that a regression of bulk echo shows in the quickest run.
pub const QUICK_BULK: Point = Point {
    size: 65536,
    connections: 10,
};
/// Time a run takes besides its warm-up and measured window (starting the server, connecting,
/// stopping), for [`BenchConfig::estimate`].
pub const RUN_OVERHEAD: Duration = Duration::from_millis(150);
/// Default measured seconds per run.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(5);
/// Default warm-up per run.
pub const DEFAULT_WARMUP: Duration = Duration::from_secs(1);
/// Default rounds.
pub const DEFAULT_REPEAT: usize = 3;
/// Default wait for an echo before a connection counts a timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl BenchConfig {
    /// The full default sweep over every built-in design.
    pub fn new(ringport_exe: PathBuf) -> BenchConfig {
        BenchConfig {
            designs: BUILTIN.iter().filter_map(|n| builtin(n)).collect(),
            connections: DEFAULT_CONNECTIONS.to_vec(),
            sizes: DEFAULT_SIZES.to_vec(),
            extra_points: Vec::new(),
            duration: DEFAULT_DURATION,
            warmup: DEFAULT_WARMUP,
            repeat: DEFAULT_REPEAT,
            pin: false,
            server_threads: None,
            client_threads: None,
            timeout: DEFAULT_TIMEOUT,
            ringport_exe,
            quick: false,
            churn: Some(crate::churn::ChurnPoint::new(
                DEFAULT_DURATION,
                DEFAULT_WARMUP,
            )),
        }
    }

    /// The `--quick` preset: every built-in design at 1, 10 and 100 connections with 64-byte
    /// messages, and at [`QUICK_BULK`] (64 KiB messages, 10 connections); 2 s per point after
    /// 0.5 s of warm-up, one round, pinned when there are two CPUs. Thirteen runs, about 35 s, and
    /// the churn point for [`QUICK_CHURN_DURATION`](crate::churn::QUICK_CHURN_DURATION) per
    /// design: about 4 s more.
    pub fn quick(ringport_exe: PathBuf, cpus: usize) -> BenchConfig {
        BenchConfig {
            connections: vec![1, 10, 100],
            sizes: vec![64],
            extra_points: vec![QUICK_BULK],
            duration: Duration::from_secs(2),
            warmup: Duration::from_millis(500),
            repeat: 1,
            pin: cpus >= 2,
            quick: true,
            churn: Some(crate::churn::ChurnPoint::new(
                crate::churn::QUICK_CHURN_DURATION,
                Duration::ZERO,
            )),
            ..BenchConfig::new(ringport_exe)
        }
    }

    /// Every point in the order it runs: each size at each connection count (both as given),
    /// then the extra points that are not among them.
    pub fn points(&self) -> Vec<Point> {
        let mut out: Vec<Point> = Vec::new();
        let sweep = self.sizes.iter().flat_map(|&size| {
            self.connections
                .iter()
                .map(move |&connections| Point { size, connections })
        });
        for p in sweep.chain(self.extra_points.iter().copied()) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    /// How long [`plan`] takes to run, about: each run's warm-up, measured window and
    /// [`RUN_OVERHEAD`].
    pub fn estimate(&self) -> Duration {
        let runs = u32::try_from(plan(self).len()).unwrap_or(u32::MAX);
        let churn = self.churn.map_or(Duration::ZERO, |c| {
            c.estimate(crate::churn::plan(self).len())
        });
        (self.warmup + self.duration + RUN_OVERHEAD) * runs + churn
    }

    /// Client threads the load generator will use.
    pub fn effective_client_threads(&self) -> usize {
        match self.client_threads {
            Some(n) => n.max(1),
            None if self.pin => 1,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// `--workers` for the completion model: as given, or 1 when pinned to one CPU.
    pub fn effective_server_threads(&self) -> Option<u32> {
        self.server_threads.or(self.pin.then_some(1))
    }

    /// Checks the config.
    ///
    /// # Errors
    ///
    /// A message naming the problem.
    pub fn validate(&self) -> Result<(), String> {
        if self.designs.is_empty() {
            return Err("no design to run".into());
        }
        for (i, d) in self.designs.iter().enumerate() {
            if self.designs[..i].iter().any(|e| e.name == d.name) {
                return Err(format!("design `{}` is given twice", d.name));
            }
        }
        if self.connections.is_empty() || self.connections.contains(&0) {
            return Err("--connections needs at least one count, each at least 1".into());
        }
        if self.sizes.is_empty() || self.sizes.contains(&0) {
            return Err("--size needs at least one size, each at least 1 byte".into());
        }
        if let Some(p) = self
            .extra_points
            .iter()
            .find(|p| p.size == 0 || p.connections == 0)
        {
            return Err(format!(
                "the point {} B x {} connections is empty: each needs at least 1 byte and 1 \
                 connection",
                p.size, p.connections
            ));
        }
        if self.duration.is_zero() {
            return Err("--duration must be more than 0 seconds".into());
        }
        if self.repeat == 0 {
            return Err("--repeat must be at least 1".into());
        }
        if let Some(c) = &self.churn {
            c.validate()?;
        }
        Ok(())
    }
}

/// One run of the schedule: one server started, loaded, measured and stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Index into [`BenchConfig::designs`].
    pub design: usize,
    /// Message size, bytes.
    pub size: usize,
    /// Connections.
    pub connections: usize,
    /// Round, from 0.
    pub round: usize,
}

/// Every run of `config` in order: points ([`BenchConfig::points`]: sizes, then connection
/// counts, then the extra points), then rounds, then designs. A design that serves one client at
/// a time runs at one connection only.
pub fn plan(config: &BenchConfig) -> Vec<Run> {
    let mut runs = Vec::new();
    for Point { size, connections } in config.points() {
        for round in 0..config.repeat {
            for (design, d) in config.designs.iter().enumerate() {
                if d.one_client_at_a_time() && connections != 1 {
                    continue;
                }
                runs.push(Run {
                    design,
                    size,
                    connections,
                    round,
                });
            }
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(designs: &[&str]) -> BenchConfig {
        BenchConfig {
            designs: designs.iter().map(|n| builtin(n).unwrap()).collect(),
            ..BenchConfig::new("ringport".into())
        }
    }

    #[test]
    fn the_builtin_names_are_their_servers_names() {
        let names: Vec<String> = BUILTIN_SERVERS
            .into_iter()
            .map(|(model, backend)| design_name(model, backend))
            .collect();
        assert_eq!(names, BUILTIN);
        let d = builtin("completion-epoll").unwrap();
        assert_eq!(
            d.server,
            ServerSpec::Ringport {
                model: Model::Completion,
                backend: BackendChoice::Epoll
            }
        );
        assert!(builtin("single").unwrap().one_client_at_a_time());
        assert!(!builtin("threaded").unwrap().one_client_at_a_time());
        assert!(builtin("completion-auto").is_none());
    }

    #[test]
    fn runs_are_interleaved_by_round() {
        let mut c = config(&["completion-uring", "threaded"]);
        c.connections = vec![10];
        c.sizes = vec![64];
        c.repeat = 2;
        let order: Vec<(usize, usize)> = plan(&c).iter().map(|r| (r.round, r.design)).collect();
        assert_eq!(order, [(0, 0), (0, 1), (1, 0), (1, 1)]);
    }

    #[test]
    fn single_runs_at_one_connection_only() {
        let mut c = config(&["single", "threaded"]);
        c.connections = vec![1, 10, 100];
        c.sizes = vec![64, 4096];
        c.repeat = 1;
        let runs = plan(&c);
        let single: Vec<_> = runs.iter().filter(|r| r.design == 0).collect();
        assert_eq!(single.len(), 2);
        assert!(single.iter().all(|r| r.connections == 1));
        assert_eq!(runs.len(), 2 + 6);
    }

    #[test]
    fn quick_is_thirteen_short_runs_with_one_bulk_point() {
        let q = BenchConfig::quick("ringport".into(), 2);
        assert!(q.validate().is_ok());
        let runs = plan(&q);
        assert_eq!(runs.len(), 13);
        let bulk: Vec<_> = runs.iter().filter(|r| r.size == 65536).collect();
        assert_eq!(bulk.len(), 3, "every design but single: {bulk:?}");
        assert!(bulk.iter().all(|r| r.connections == 10));
        assert_eq!(
            runs.last().map(|r| r.size),
            Some(65536),
            "the bulk point runs last"
        );
        assert!(q.estimate().as_secs_f64() < 40.0, "{:?}", q.estimate());
        assert!(q.pin && q.effective_server_threads() == Some(1));
        assert_eq!(q.effective_client_threads(), 1);
        assert!(!BenchConfig::quick("r".into(), 1).pin);
    }

    #[test]
    fn the_default_sweep_covers_small_page_and_bulk_messages() {
        let c = BenchConfig::new("ringport".into());
        assert_eq!(c.sizes, [64, 4096, 65536]);
        let points = c.points();
        assert_eq!(points.len(), 12);
        for size in [64, 4096, 65536] {
            for connections in [1, 10, 100, 1000] {
                assert!(points.contains(&Point { size, connections }));
            }
        }
        // 3 sizes x (4 designs at 1 connection + 3 at each of 10, 100, 1000) x 3 rounds.
        assert_eq!(plan(&c).len(), 3 * 13 * 3);
    }

    #[test]
    fn extra_points_run_after_the_sweep_once() {
        let mut c = config(&["threaded"]);
        c.sizes = vec![64];
        c.connections = vec![1, 10];
        c.repeat = 1;
        c.extra_points = vec![
            Point {
                size: 64,
                connections: 10,
            },
            Point {
                size: 4096,
                connections: 2,
            },
        ];
        let order: Vec<(usize, usize)> = plan(&c).iter().map(|r| (r.size, r.connections)).collect();
        assert_eq!(order, [(64, 1), (64, 10), (4096, 2)]);
        c.extra_points.push(Point {
            size: 0,
            connections: 1,
        });
        assert!(c.validate().unwrap_err().contains("0 B x 1"));
    }

    #[test]
    fn external_server_values() {
        let d = Design::parse_external("mine=./echo --port {port}").unwrap();
        assert_eq!(d.name, "mine");
        assert_eq!(
            d.server,
            ServerSpec::External {
                command: "./echo --port {port}".into()
            }
        );
        assert!(Design::parse_external("no-equals").is_err());
        assert!(Design::parse_external("x=echo server")
            .unwrap_err()
            .contains("{port}"));
        assert!(Design::parse_external("a b=x {port}").is_err());
    }

    #[test]
    fn validation_names_the_problem() {
        let mut c = config(&["threaded", "threaded"]);
        assert!(c.validate().unwrap_err().contains("twice"));
        c = config(&["threaded"]);
        c.connections = vec![0];
        assert!(c.validate().is_err());
        c = config(&["threaded"]);
        c.repeat = 0;
        assert!(c.validate().is_err());
    }
}
