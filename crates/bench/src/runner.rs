//! The benchmark loop: for every run of the [`plan`], start the server, load it with the stress
//! engine in this process, measure, stop it; then aggregate into [`BenchResults`].
//!
//! This module is responsible for the order of operations around each measurement and for
//! pinning. With `pin`, the calling thread's CPU affinity is set to the server's CPU just long
//! enough to start the server (a child inherits the affinity of the thread that forks it), then
//! to the load's CPU, which the stress engine's threads inherit in turn. No `unsafe` is needed
//! and no `taskset`.
//!
//! # Measured window
//!
//! The stress engine connects, warms up, then measures for `duration`; it reports when the
//! measured window began and how long it was. The server's `/proc` counters are sampled every
//! [`SAMPLE_EVERY`](crate::server::SAMPLE_EVERY) throughout, and its CPU time is interpolated at
//! both ends of that window, so connecting, warm-up and shutdown are not counted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use ringport_port::BackendChoice;
use ringport_stress::config::StressConfig;
use ringport_stress::engine::{self, RunOptions};

use crate::aggregate::{self, RunRecord};
use crate::procfs;
use crate::results::{
    BenchResults, DesignInfo, Environment, Figures, Settings, Warning, WarningKind, SCHEMA_VERSION,
};
use crate::schedule::{plan, BenchConfig, Design, Run, ServerSpec};
use crate::server::{command_line, ServerProcess, StartOptions};
use crate::BenchError;

/// A one-minute load average above this share of the CPUs at start gets a warning.
const BUSY_LOAD_SHARE: f64 = 0.5;

/// What the runner tells its caller after each run (for a progress line).
#[derive(Debug)]
pub struct RunEvent<'a> {
    /// 1-based index of this run, counted over the sweep and then the churn point.
    pub index: usize,
    /// Runs in the plan: the sweep's and the churn point's.
    pub total: usize,
    /// A run of the churn point, whose server CPU is not measured (its figures say 0).
    pub churn: bool,
    /// The design.
    pub design: &'a str,
    /// The run.
    pub run: Run,
    /// What it measured.
    pub figures: &'a Figures,
}

/// The calling thread's CPUs, in order.
fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn pin_to(cpu: usize) -> Result<(), BenchError> {
    let mut set = CpuSet::new();
    set.set(cpu)
        .and_then(|()| sched_setaffinity(Pid::from_raw(0), &set))
        .map_err(|e| BenchError::Pin(format!("cannot pin to CPU {cpu}: {e}")))
}

/// Restores the calling thread's CPU affinity when dropped.
struct AffinityGuard(Option<CpuSet>);

impl Drop for AffinityGuard {
    fn drop(&mut self) {
        if let Some(set) = &self.0 {
            let _ = sched_setaffinity(Pid::from_raw(0), set);
        }
    }
}

/// Runs `config`, calling `on_run` after each run.
///
/// # Errors
///
/// [`BenchError`] when the config is invalid, a server cannot be started, or the load generator
/// cannot run at all. Errors on connections are not fatal: they are counted and warned about.
pub fn run(
    config: &BenchConfig,
    on_run: &mut dyn FnMut(&RunEvent<'_>),
) -> Result<BenchResults, BenchError> {
    run_until(config, on_run, None)
}

/// [`run`], ended early once `stop` is raised (Ctrl-C): the run in progress stops at once and
/// its figures are dropped, no other starts, and the results hold the runs done, with a
/// warning ([`WarningKind::Interrupted`]) saying how many of the plan's they are.
///
/// # Errors
///
/// As [`run`].
pub fn run_until(
    config: &BenchConfig,
    on_run: &mut dyn FnMut(&RunEvent<'_>),
    stop: Option<&Arc<AtomicBool>>,
) -> Result<BenchResults, BenchError> {
    let stopped = || stop.is_some_and(|s| s.load(Ordering::Relaxed));
    config.validate().map_err(BenchError::Config)?;
    // Servers inherit the limit: raise it before the first one starts (best effort; the
    // stress engine's pre-flight says what is missing if it is still too low).
    let _ = ringport_os::limits::raise_nofile();
    let mut warnings = Vec::new();
    let cpus = allowed_cpus();
    let _restore = AffinityGuard(sched_getaffinity(Pid::from_raw(0)).ok());
    let pins = match (config.pin, cpus.as_slice()) {
        (true, [server, load, ..]) => Some((*server, *load)),
        (true, _) => {
            warnings.push(Warning {
                kind: WarningKind::Noise,
                design: None,
                message: format!(
                    "--pin needs two CPUs and this process may use {}: server and load ran \
                     unpinned and share the CPU, so each design's figures include the load \
                     generator's competition",
                    cpus.len()
                ),
            });
            None
        }
        (false, _) => None,
    };
    let environment = Environment::capture(pins.map(|p| p.0), pins.map(|p| p.1));
    let opts = StartOptions {
        ringport_exe: config.ringport_exe.clone(),
        workers: config.effective_server_threads(),
    };
    let designs = usable_designs(config, &environment, &mut warnings);
    let mut infos: Vec<DesignInfo> = designs
        .iter()
        .map(|d| DesignInfo {
            name: d.name.clone(),
            kind: match d.server {
                ServerSpec::Ringport { .. } => "ringport".into(),
                ServerSpec::External { .. } => "external".into(),
            },
            command: command_line(d, &opts),
            backend: None,
            note: d.one_client_at_a_time().then(|| {
                "serves one client at a time, so it ran at 1 connection only: at more, every \
                 client but one would wait in the backlog until it timed out, which measures \
                 the timeout, not the server"
                    .to_string()
            }),
            max_clean_connections: None,
        })
        .collect();
    let sub = BenchConfig {
        designs: designs.clone(),
        ..config.clone()
    };
    let runs = plan(&sub);
    // Numbered over the sweep and the churn point together, as `--dry-run` counts them.
    let churn_runs = churn_plan(config, &designs).len();
    let client_threads = config.effective_client_threads();
    let mut records = Vec::with_capacity(runs.len());
    let mut done = 0;
    for (i, run) in runs.iter().enumerate() {
        if stopped() {
            break;
        }
        let design = &designs[run.design];
        if let Some((server_cpu, _)) = pins {
            pin_to(server_cpu)?;
        }
        let started = ServerProcess::start(design, &opts);
        if let Some((_, load_cpu)) = pins {
            pin_to(load_cpu)?;
        }
        let mut server = started?;
        if infos[run.design].backend.is_none() {
            infos[run.design].backend = server.backend();
        }
        let measured = measure(&mut server, config, run, client_threads, stop);
        if stopped() {
            // Cut short (and its server maybe signalled too, by the terminal): its figures
            // cover part of a run, or none. The server is stopped, the run not kept.
            let _ = server.stop();
            break;
        }
        let figures = measured.map_err(|detail| BenchError::Load {
            design: design.name.clone(),
            size: run.size,
            connections: run.connections,
            detail,
        })?;
        done += 1;
        if let Err(why) = server.stop() {
            warnings.push(Warning {
                kind: WarningKind::ServerExit,
                design: Some(design.name.clone()),
                message: format!(
                    "{} at {} x {}: {why}",
                    design.name,
                    crate::results::size_label(run.size),
                    run.connections
                ),
            });
        }
        on_run(&RunEvent {
            index: i + 1,
            total: runs.len() + churn_runs,
            churn: false,
            design: &design.name,
            run: *run,
            figures: &figures,
        });
        records.push(RunRecord {
            design: design.name.clone(),
            size: run.size,
            connections: run.connections,
            figures,
        });
    }
    let churn = if stopped() {
        Vec::new()
    } else {
        run_churn(
            config,
            &designs,
            &opts,
            pins,
            client_threads,
            &mut infos,
            &mut warnings,
            (runs.len(), runs.len() + churn_runs),
            on_run,
            stop,
        )?
    };
    if stopped() {
        let churn_done = churn.iter().map(|p| p.rounds.len()).sum::<usize>();
        warnings.push(Warning {
            kind: WarningKind::Interrupted,
            design: None,
            message: format!(
                "interrupted after {} of {} runs: the figures are those of the runs done, and \
                 points left out did not run",
                done + churn_done,
                runs.len() + churn_runs
            ),
        });
    }
    let settings = Settings {
        connections: config.connections.clone(),
        sizes: config.sizes.clone(),
        extra_points: config.extra_points.clone(),
        duration_s: config.duration.as_secs_f64(),
        warmup_s: config.warmup.as_secs_f64(),
        repeat: config.repeat,
        pinned: pins.is_some(),
        server_threads: config.effective_server_threads(),
        client_threads,
        pipeline: 1,
        quick: config.quick,
        churn: config.churn,
    };
    let points = aggregate::points(&records);
    aggregate::set_capacity(&mut infos, &points);
    let mut all = aggregate::warnings(&settings, &infos, &points);
    all.append(&mut warnings);
    all.extend(crate::churn::warnings(&churn));
    all.extend(noise_warnings(&environment, pins.is_some()));
    Ok(BenchResults {
        schema: SCHEMA_VERSION,
        environment,
        settings,
        designs: infos,
        points,
        warnings: all,
        churn,
    })
}

/// The churn point's runs of `config` on `designs` (none without a churn point).
fn churn_plan(config: &BenchConfig, designs: &[Design]) -> Vec<crate::churn::ChurnRun> {
    crate::churn::plan(&BenchConfig {
        designs: designs.to_vec(),
        ..config.clone()
    })
}

/// Runs the churn point of `config` (after the sweep) on `designs`, each in its own server as
/// the sweep's runs, and returns its results (none without a churn point).
#[allow(clippy::too_many_arguments)]
fn run_churn(
    config: &BenchConfig,
    designs: &[Design],
    opts: &StartOptions,
    pins: Option<(usize, usize)>,
    client_threads: usize,
    infos: &mut [DesignInfo],
    warnings: &mut Vec<Warning>,
    (before, total): (usize, usize),
    on_run: &mut dyn FnMut(&RunEvent<'_>),
    stop: Option<&Arc<AtomicBool>>,
) -> Result<Vec<crate::churn::ChurnPointResult>, BenchError> {
    let Some(point) = config.churn else {
        return Ok(Vec::new());
    };
    let runs = churn_plan(config, designs);
    let mut measured = Vec::with_capacity(runs.len());
    for (i, run) in runs.iter().enumerate() {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        let design = &designs[run.design];
        if let Some((server_cpu, _)) = pins {
            pin_to(server_cpu)?;
        }
        let started = ServerProcess::start(design, opts);
        if let Some((_, load_cpu)) = pins {
            pin_to(load_cpu)?;
        }
        let mut server = started?;
        let figures = crate::churn::measure(&mut server, &point, config.timeout, client_threads)
            .map_err(|detail| BenchError::Load {
                design: design.name.clone(),
                size: point.size,
                connections: point.connections,
                detail: format!("churn point: {detail}"),
            })?;
        if infos[run.design].backend.is_none() {
            infos[run.design].backend = server.backend();
        }
        if let Err(why) = server.stop() {
            warnings.push(Warning {
                kind: WarningKind::ServerExit,
                design: Some(design.name.clone()),
                message: format!("{} at the churn point: {why}", design.name),
            });
        }
        // The progress line shows the churn run as a point of its size and connections.
        let shown = Figures {
            msgs_per_s: figures.msgs_per_s,
            messages: 0,
            measured_s: point.duration_s,
            p50_us: 0,
            p99_us: figures.p99_us,
            p999_us: 0,
            server_user_s: 0.0,
            server_sys_s: 0.0,
            server_cpu_us_per_msg: None,
            server_peak_rss_kib: figures.server_peak_rss_kib,
            client_cpu_pct: 0.0,
            client_cpu_max_thread_pct: 0.0,
            errors: figures.errors,
            others_cpu_pct: 0.0,
        };
        on_run(&RunEvent {
            index: before + i + 1,
            total,
            churn: true,
            design: &design.name,
            run: Run {
                design: run.design,
                size: point.size,
                connections: point.connections,
                round: run.round,
            },
            figures: &shown,
        });
        measured.push((design.name.clone(), figures));
    }
    Ok(crate::churn::results(&measured))
}

/// The designs of `config` that can run here; a warning for each one left out.
fn usable_designs(
    config: &BenchConfig,
    env: &Environment,
    warnings: &mut Vec<Warning>,
) -> Vec<Design> {
    let mut out = Vec::new();
    for d in &config.designs {
        if let ServerSpec::Ringport {
            backend: BackendChoice::Uring,
            ..
        } = d.server
        {
            if ringport_port::probe_uring().is_err() {
                warnings.push(Warning {
                    kind: WarningKind::Skipped,
                    design: Some(d.name.clone()),
                    message: format!(
                        "{}: left out because io_uring cannot be used here ({}); the epoll \
                         design shows the completion model on this machine",
                        d.name, env.io_uring
                    ),
                });
                continue;
            }
        }
        if d.one_client_at_a_time() && !config.points().iter().any(|p| p.connections == 1) {
            warnings.push(Warning {
                kind: WarningKind::Skipped,
                design: Some(d.name.clone()),
                message: format!(
                    "{}: left out because it serves one client at a time and runs at 1 \
                     connection only, which --connections does not include",
                    d.name
                ),
            });
            continue;
        }
        out.push(d.clone());
    }
    out
}

fn noise_warnings(env: &Environment, pinned: bool) -> Vec<Warning> {
    let mut out = Vec::new();
    if env.load_average > BUSY_LOAD_SHARE * env.cpus as f64 {
        out.push(Warning {
            kind: WarningKind::Noise,
            design: None,
            message: format!(
                "the machine was busy when the run started (load average {:.2} on {} CPUs): \
                 other work (a build, another benchmark) takes CPU from the server and the load \
                 alike; figures are noisy, ratios less so; rerun on a quiet machine",
                env.load_average, env.cpus
            ),
        });
    }
    if !pinned && env.cpus >= 2 {
        out.push(Warning {
            kind: WarningKind::Noise,
            design: None,
            message: "server and load were not pinned: they compete for the same CPUs and the \
                      scheduler moves them around; use --pin for figures you compare"
                .to_string(),
        });
    }
    out
}

/// Loads `server` for one run and returns the figures, or why the load could not run.
fn measure(
    server: &mut ServerProcess,
    config: &BenchConfig,
    run: &Run,
    client_threads: usize,
    stop: Option<&Arc<AtomicBool>>,
) -> Result<Figures, String> {
    let stress = StressConfig {
        host: server.addr.ip().to_string(),
        port: server.addr.port(),
        size: Some(run.size),
        connections: run.connections,
        duration: Some(config.duration),
        warmup: config.warmup,
        threads: client_threads,
        timeout: config.timeout,
        ..StressConfig::default()
    };
    let ticks = procfs::clock_ticks();
    let watched = [server.pid(), std::process::id()];
    server.start_sampling();
    let before = procfs::CpuSnapshot::take(&watched, ticks);
    let outcome = engine::run_with(
        &stress,
        &RunOptions {
            progress: None,
            stop: stop.cloned(),
        },
    );
    let after = procfs::CpuSnapshot::take(&watched, ticks);
    let samples = server.finish_sampling();
    let others_cpu_pct = match (before, after) {
        (Some(b), Some(a)) => (a.others_pct_since(&b) * 10.0).round() / 10.0,
        _ => 0.0,
    };
    let outcome = outcome.map_err(|e| e.to_string())?;
    let report = &outcome.report;
    let from = outcome.measure_started;
    let to = from + outcome.measured;
    let (user, system) = procfs::cpu_between(&samples, from, to).unwrap_or_default();
    let cpu = user + system;
    let server_cpu_us_per_msg =
        (report.messages > 0).then(|| cpu.as_secs_f64() * 1e6 / report.messages as f64);
    Ok(Figures {
        msgs_per_s: report.msgs_per_s,
        messages: report.messages,
        measured_s: report.duration_s,
        p50_us: report.latency_us.p50,
        p99_us: report.latency_us.p99,
        p999_us: report.latency_us.p999,
        server_user_s: round_ms(user),
        server_sys_s: round_ms(system),
        server_cpu_us_per_msg,
        server_peak_rss_kib: procfs::peak_rss_kib(&samples),
        client_cpu_pct: report.client_cpu_pct.iter().sum(),
        client_cpu_max_thread_pct: report.client_cpu_pct.iter().cloned().fold(0.0, f64::max),
        errors: report.errors,
        others_cpu_pct,
    })
}

/// Seconds, to the millisecond (the `/proc` counters tick every 10 ms anyway).
fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}
