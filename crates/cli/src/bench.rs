//! `ringport bench`: flags into a [`BenchConfig`], a progress line per run on stderr, the
//! markdown report on stdout, and the files in `--out`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ringport_bench::export;
use ringport_bench::results::size_label;
use ringport_bench::runner::{self, RunEvent};
use ringport_bench::schedule::{self, BenchConfig, Design};
use ringport_report::export::{Exporter as _, Html, OutputTarget};

use crate::secs::{parse_secs, secs};

/// Flags of `ringport bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A preset that finishes in about 40 s on two cores: every built-in design at 1, 10 and 100
    /// connections with 64-byte messages, and at 10 connections with 64 KiB messages (bulk
    /// echo); 2 s per point after 0.5 s of warm-up, one round, pinned when there are two CPUs;
    /// then the churn point for 1 s.
    /// Other flags given with it override it (--size or --connections replace its points).
    #[arg(long)]
    quick: bool,
    // These replace the preset's (--quick) when given, so they are applied after parsing; the
    // defaults shown are the library's.
    #[arg(long, value_delimiter = ',', value_name = "N,...", help = format!(
        "Connection counts to sweep [default: {}]",
        list(schedule::DEFAULT_CONNECTIONS)
    ))]
    connections: Vec<usize>,
    #[arg(long, value_delimiter = ',', value_name = "BYTES,...", value_parser = crate::bytes::parse_bytes, help = format!(
        "Message sizes to sweep, bytes, each at every connection count [default: {}]",
        list(schedule::DEFAULT_SIZES)
    ))]
    size: Vec<usize>,
    #[arg(long, value_parser = parse_secs, value_name = "SECS", help = format!(
        "Measured seconds per point and round [default: {}]",
        secs(schedule::DEFAULT_DURATION)
    ))]
    duration: Option<f64>,
    #[arg(long, value_parser = parse_secs, value_name = "SECS", help = format!(
        "Seconds of load before each measurement, excluded from every figure [default: {}]",
        secs(schedule::DEFAULT_WARMUP)
    ))]
    warmup: Option<f64>,
    #[arg(long, value_name = "N", help = format!(
        "Interleaved rounds over every design; the median is reported [default: {}]",
        schedule::DEFAULT_REPEAT
    ))]
    repeat: Option<usize>,
    /// Built-in designs to run, of completion-uring, completion-epoll, threaded, single
    /// [default: all]; `none` runs only the `--server` ones.
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    designs: Vec<String>,
    /// An external echo server to compare, as NAME='COMMAND {port}': run by `sh -c`, with
    /// `{port}` replaced by a free port; measured once it accepts, killed at the end of each
    /// run. Repeat for several.
    #[arg(long = "server", value_name = "NAME='COMMAND {port}'")]
    servers: Vec<String>,
    /// Pin each server to one CPU and the load to another (needs two CPUs). On with --quick
    /// when there are two.
    #[arg(long, overrides_with = "no_pin")]
    pin: bool,
    /// Do not pin, even with --quick.
    #[arg(long)]
    no_pin: bool,
    /// Worker threads of ringport's completion model (its `--workers`) [default: 1 when
    /// pinned, else one per CPU].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    server_threads: Option<u32>,
    /// Load generator threads [default: 1 when pinned, else one per CPU].
    #[arg(long, value_name = "N")]
    client_threads: Option<usize>,
    /// Seconds without an echo before a connection counts a timeout.
    #[arg(long, default_value_t = secs(schedule::DEFAULT_TIMEOUT), value_parser = parse_secs, value_name = "SECS")]
    timeout: f64,
    /// Directory for results.json, results.csv, results.md and the SVG charts.
    #[arg(long, default_value = "ringport-bench", value_name = "DIR")]
    out: PathBuf,
    /// Also write the report as one self-contained HTML page: every chart (hover a point for
    /// its figures) and every point's figures.
    #[arg(long, value_name = "PATH")]
    html: Option<PathBuf>,
    /// Run nothing: print the points, the designs at each, and how long the run would take.
    #[arg(long)]
    dry_run: bool,
    /// Leave out the churn point (run after the sweep: 10 connections, each closed and
    /// reopened after 10 round trips of 64 B, for --duration after --warmup; 1 s with --quick),
    /// reported as connections per second and connect latency.
    #[arg(long)]
    no_churn: bool,
}

/// `1,10,100`: a default list as the flag takes it.
fn list(v: &[usize]) -> String {
    v.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

impl BenchArgs {
    pub(crate) fn config(&self) -> anyhow::Result<BenchConfig> {
        let exe = std::env::current_exe().context("cannot find the ringport binary itself")?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut c = if self.quick {
            BenchConfig::quick(exe, cpus)
        } else {
            BenchConfig::new(exe)
        };
        if !self.designs.is_empty() {
            c.designs = Vec::new();
            for name in &self.designs {
                let name = name.trim();
                if name == "none" || name.is_empty() {
                    continue;
                }
                c.designs.push(schedule::builtin(name).with_context(|| {
                    format!(
                        "unknown design `{name}` (built-in: {}; add others with --server)",
                        schedule::BUILTIN.join(", ")
                    )
                })?);
            }
        }
        for s in &self.servers {
            c.designs
                .push(Design::parse_external(s).map_err(|e| anyhow::anyhow!("--server {e}"))?);
        }
        // Sizes or counts given replace the preset's points, its bulk point included.
        if !self.connections.is_empty() {
            c.connections = self.connections.clone();
            c.extra_points.clear();
        }
        if !self.size.is_empty() {
            c.sizes = self.size.clone();
            c.extra_points.clear();
        }
        if let Some(d) = self.duration {
            c.duration = Duration::from_secs_f64(d);
            if let Some(churn) = &mut c.churn {
                churn.duration_s = d;
            }
        }
        if let Some(w) = self.warmup {
            c.warmup = Duration::from_secs_f64(w);
            if let Some(churn) = &mut c.churn {
                churn.warmup_s = w;
            }
        }
        if self.no_churn {
            c.churn = None;
        }
        if let Some(r) = self.repeat {
            c.repeat = r;
        }
        if self.pin {
            c.pin = true;
        }
        if self.no_pin {
            c.pin = false;
        }
        c.server_threads = self.server_threads;
        c.client_threads = self.client_threads;
        c.timeout = Duration::from_secs_f64(self.timeout);
        c.validate().map_err(|e| anyhow::anyhow!(e))?;
        Ok(c)
    }
}

fn progress(e: &RunEvent<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{}", progress_line(e));
}

/// One run's progress line: `[i/total]`, counted over the sweep and the churn point; the
/// server's CPU time where it is measured (not at the churn point).
fn progress_line(e: &RunEvent<'_>) -> String {
    let f = e.figures;
    let server = if e.churn {
        "churn".to_string()
    } else {
        format!("server {:.2}+{:.2} s", f.server_user_s, f.server_sys_s)
    };
    format!(
        "[{:>3}/{}] {:<18} {:>6} x {:<5} round {}: {:>10.0} msg/s  p99 {} µs  {server}  {} errors",
        e.index,
        e.total,
        e.design,
        size_label(e.run.size),
        e.run.connections,
        e.run.round + 1,
        f.msgs_per_s,
        f.p99_us,
        f.errors
    )
}

/// What `--dry-run` prints: one line per point with the designs that run there, then the runs
/// and the time they take.
fn dry_run(config: &BenchConfig) -> String {
    let plan = schedule::plan(config);
    let mut out = String::new();
    for p in config.points() {
        let designs: Vec<&str> = plan
            .iter()
            .filter(|r| r.size == p.size && r.connections == p.connections && r.round == 0)
            .map(|r| config.designs[r.design].name.as_str())
            .collect();
        out.push_str(&format!(
            "{} x {}: {}\n",
            size_label(p.size),
            p.connections,
            designs.join(", ")
        ));
    }
    let churn = ringport_bench::churn::plan(config);
    if let Some(point) = &config.churn {
        let designs: Vec<&str> = churn
            .iter()
            .filter(|r| r.round == 0)
            .map(|r| config.designs[r.design].name.as_str())
            .collect();
        out.push_str(&format!(
            "churn: {} connections x {} round trips of {} each, {:.1} s after {:.1} s of warm-up: {}\n",
            point.connections,
            point.messages_per_connection,
            size_label(point.size),
            point.duration_s,
            point.warmup_s,
            designs.join(", ")
        ));
    }
    let secs = config.estimate().as_secs_f64();
    out.push_str(&format!(
        "{} runs ({} round(s) of {:.1} s after {:.1} s of warm-up per point and design): about {}\n",
        plan.len() + churn.len(),
        config.repeat,
        config.duration.as_secs_f64(),
        config.warmup.as_secs_f64(),
        if secs < 120.0 {
            format!("{secs:.0} s")
        } else {
            format!("{:.0} min", secs / 60.0)
        }
    ));
    out
}

/// Runs the benchmark and reports.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    // Flags that cannot be accepted are usage errors (exit code 2).
    let config = crate::exit::UsageContext::usage(args.config())?;
    if args.dry_run {
        print!("{}", dry_run(&config));
        return Ok(ExitCode::SUCCESS);
    }
    // The outputs are checked first, so a long run is not lost to a bad path: --html before
    // --out, which creates its directory.
    if let Some(path) = &args.html {
        ringport_stress::config::outputs::writable(path)
            .with_context(|| format!("cannot write --html to {}", path.display()))?;
    }
    export::check_dir(&args.out)?;
    let stop = stop_on_signals()?;
    let results = runner::run_until(&config, &mut progress, Some(&stop))?;
    print!("{}", export::markdown::render(&results));
    let written = export::write_all(&results, &args.out)?;
    let mut written = written;
    if let Some(path) = &args.html {
        Html.write_to(&results, &OutputTarget::Path(path.clone()))
            .with_context(|| format!("writing --html to {}", path.display()))?;
        written.push(path.clone());
    }
    eprintln!(
        "ringport: bench: wrote {}",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if stop.load(Ordering::Relaxed) {
        return Ok(crate::exit::exit(crate::exit::INTERRUPTED));
    }
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM once: the run in progress stops, no other starts, and the runs done are
/// reported and written (exit code 130). Twice: exit at once.
fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = Arc::clone(&stop);
    crate::signals::on_interrupt(
        move |name| {
            on_signal.store(true, Ordering::Relaxed);
            crate::stderr::note!(
                "ringport: {name}: stopping the run in progress, writing the runs done (again to \
                 exit at once)"
            );
        },
        || {},
    )?;
    Ok(stop)
}
