//! The engine: client threads driving many verified connections on completion ports.
//!
//! This module is responsible for running a [`StressConfig`] against a server and producing the
//! [`StressOutcome`]: it validates and checks the system ([`preflight`]), resolves the server,
//! starts the client threads, lines them up at a common start, and merges what they measured into
//! one report. What a thread does with its port is `client`'s; what one connection does is
//! `conn`'s. What to send ([`payload`]), whether an echo is right ([`echo`]), what to measure
//! ([`measure`]) and when to send ([`send_times`]) are decided by the other layers.
//!
//! # Shape
//!
//! `--threads` client threads, each with its own [`Port`] (io_uring rings are single-issuer)
//! and a share of the connections (round-robin by connection index); never a thread per
//! connection. Each thread:
//!
//! 1. **Connects** its connections with the port's `Connect` operation, paced so the whole client
//!    opens at most `--connect-rate` per second, binding to the pre-flight's source addresses
//!    when one address cannot hold every connection. Connect times go to their own histogram;
//!    failures and connects slower than `--timeout` are counted as `connect_failed`.
//! 2. Waits at a barrier until every thread has finished connecting, so the load starts at one
//!    instant for all.
//! 3. **Loads**: every open connection always has one receive in flight, and at most one send
//!    (carrying every message staged since the previous send completed). A message is staged
//!    when the verifier has room (`--pipeline`; for a `--stream`, its `--window` in whole
//!    chunks), the stop condition allows it, and in rate mode when its slot in the schedule has
//!    come. Echoed bytes go to the connection's
//!    [`StreamVerifier`](crate::protocol::echo::StreamVerifier); each completed message is timed from its
//!    intended send time. Messages intended before the end of `--warmup` are verified but not
//!    measured.
//! 4. **Finishes** a connection when it has nothing more to send and nothing outstanding: it
//!    shuts down its write side and waits for the server's end of stream, which must come with
//!    every byte echoed. A connection with an error is cancelled and closed at once; the others
//!    go on.
//!
//! With churn (`--messages-per-connection N`), step 4 comes after every `N` exchanges: the
//! connection closes and its slot connects again, paced by `--connect-rate`, until the stop
//! condition (see [`reconnect`](crate::plan::reconnect) for the pacing,
//! [`reconnects`](crate::measure::reconnects) for what is counted and
//! [`warnings`](crate::report::warnings) for what is warned about).
//!
//! With `--websocket`, one upgrade is made before the load ([`probe`](crate::ws::probe)): a
//! server that refuses it stops the run there, with its status line. Each connection then
//! upgrades once connected (after its TLS handshake), before the barrier; the upgrade's time
//! is recorded ([`measure::ws`](crate::measure::ws)).
//!
//! With `--tls`, one handshake is made before anything else ([`probe`](crate::tls::probe)): a
//! certificate the client cannot trust stops the run there, with its reason, and so does a
//! server that does not speak TLS (it echoes the ClientHello, or answers it with bytes that are
//! not TLS). Each connection
//! then makes its own handshake once connected, before the barrier; its time and kind (full or
//! resumed) are recorded ([`measure::tls`](crate::measure::tls)).
//!
//! Without `--tls`, a server that speaks TLS stops the run at its first connections
//! ([`tls_check`]): a connection answered with a TLS alert, or closed before a byte of echo by
//! a server that then answers a ClientHello in TLS, ends the load and the run with one line.
//!
//! `--timeout` is checked by a periodic scan (a tenth of the timeout, at most every 100 ms): a
//! connection with bytes outstanding and no byte received for longer than the timeout fails
//! with `timeout`.
//!
//! [`preflight`]: crate::config::preflight
//! [`payload`]: crate::protocol::payload
//! [`echo`]: crate::protocol::echo
//! [`measure`]: crate::measure
//! [`send_times`]: crate::plan::send_times

mod client;
mod conn;
mod connect;
mod exchange;
pub mod progress;
pub mod proxy;
mod reconnects;
pub mod resolve;
pub(crate) mod shared;
pub(crate) mod timeouts;
mod tls_check;

pub use progress::Progress;
pub use shared::RunOptions;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use ringport_port::{Port, PortConfig};
use ringport_report::export::html::RunPage;
use ringport_report::export::{Csv, CsvRun, Exporter, HdrLog, Html};
use ringport_report::hdrlog::IntervalLog;

use crate::config::preflight::{preflight, Preflight, PreflightError};
use crate::config::{OutputTarget, Stop, StressConfig};
use crate::error::ConfigError;
use crate::measure::reconnects::ReconnectStats;
use crate::measure::thread::ThreadStats;
use crate::measure::tls::TlsStats;
use crate::measure::ws::WsStats;
use crate::plan::segment::unix_secs;
use crate::plan::send_times::connections_of_thread;
use crate::protocol::reply::ReplyVerifier;
use crate::report::StressReport;
use crate::tls::client_config::TlsClient;
use crate::tls::probe::ProbeError;
use client::Client;
use ringport_report::reconnects::ReconnectFigures;
use shared::Shared;

/// Why a run could not be carried out at all (as opposed to errors on connections, which are
/// counted in the report).
#[derive(Debug, thiserror::Error)]
pub enum StressError {
    /// A bad option.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The system cannot hold the run.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host as given.
        host: String,
        /// Why.
        source: io::Error,
    },
    /// A completion port could not be created.
    #[error("{0}")]
    Port(String),
    /// `--mptcp` where the system has no Multipath TCP.
    #[error("--mptcp: {0}")]
    Mptcp(io::Error),
    /// An output file (`--json`, `--hdr-log`) cannot be written: found before the run.
    #[error("cannot write {flag} to {path}: {error}")]
    Output {
        /// The flag.
        flag: &'static str,
        /// The file.
        path: String,
        /// Why.
        error: io::Error,
    },
    /// `--tls`: the server's certificate is not trusted (found by the handshake made before
    /// the load).
    #[error("TLS: {0}")]
    Tls(String),
    /// `--websocket`: the server refused the upgrade (found by the upgrade made before the
    /// load).
    #[error("WebSocket: {0}")]
    WebSocket(String),
    /// `--tls` against a server that does not speak TLS, or plaintext against one that does:
    /// found by its answer to the probe's ClientHello, or to the first connections.
    #[error("{0}")]
    WrongProtocol(String),
    /// A client thread failed outside any connection (its port broke, or it panicked).
    #[error("client thread {thread}: {detail}")]
    Thread {
        /// Which thread.
        thread: usize,
        /// What happened.
        detail: String,
    },
}

/// The result of [`run`]: the report, and the merged measurements behind it.
#[derive(Debug)]
pub struct StressOutcome {
    /// The report.
    pub report: StressReport,
    /// Every thread's measurements, merged.
    pub stats: ThreadStats,
    /// Wall-clock time at which measuring began (for the HdrHistogram log).
    pub measure_started: SystemTime,
    /// Length of the measured phase.
    pub measured: Duration,
    /// What the pre-flight check found and changed.
    pub preflight: Preflight,
    /// `--tls`: every thread's handshakes, merged.
    pub tls: Option<TlsStats>,
    /// `--websocket`: every thread's upgrades and messages, merged.
    pub ws: Option<WsStats>,
}

impl StressOutcome {
    /// Writes the outputs `config` asks for: `--json`, `--hdr-log`, `--csv` and `--html`.
    ///
    /// # Errors
    ///
    /// The first I/O error, naming the file.
    pub fn write_outputs(&self, config: &StressConfig) -> io::Result<()> {
        if let Some(target) = &config.json {
            self.report.write_json(target).map_err(|e| {
                let what = match target {
                    OutputTarget::Stdout => "standard output".to_string(),
                    OutputTarget::Path(p) => p.display().to_string(),
                };
                io::Error::new(e.kind(), format!("writing --json to {what}: {e}"))
            })?;
        }
        if config.hdr_log.is_none() && config.csv.is_none() && config.html.is_none() {
            return Ok(());
        }
        let mut log = crate::report::interval_log(&self.report, &self.stats);
        if let Some(tls) = &self.tls {
            crate::report::tls::add_handshake_interval(&mut log, &tls.handshake);
        }
        if let Some(ws) = &self.ws {
            crate::report::ws::add_upgrade_interval(&mut log, &ws.upgrade);
        }
        if let Some(path) = &config.html {
            let page = RunPage {
                report: &self.report,
                log: Some(&log),
            };
            Html.write_to(&page, &OutputTarget::Path(path.clone()))
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("writing --html to {}: {e}", path.display()),
                    )
                })?;
        }
        let logs: [(&str, &Option<PathBuf>, &dyn Exporter<IntervalLog>); 1] =
            [("--hdr-log", &config.hdr_log, &HdrLog)];
        for (flag, path, exporter) in logs {
            let Some(path) = path else { continue };
            exporter
                .write_to(&log, &OutputTarget::Path(path.clone()))
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("writing {flag} to {}: {e}", path.display()),
                    )
                })?;
        }
        if let Some(path) = &config.csv {
            // A UDP run's table has its datagrams per second and per flow too.
            let run = CsvRun::of(&log, &self.report);
            Csv.write_to(&run, &OutputTarget::Path(path.clone()))
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("writing --csv to {}: {e}", path.display()),
                    )
                })?;
        }
        Ok(())
    }
}

/// Runs `config` to completion. See the module docs.
///
/// # Errors
///
/// A [`StressError`] when the run cannot start (bad options, limits, name resolution, no port).
/// Errors on connections do not end the run: they are counted in the report, whose
/// [`exit_code`](StressReport::exit_code) is then 1.
pub fn run(config: &StressConfig) -> Result<StressOutcome, StressError> {
    run_with(config, &RunOptions::default())
}

/// [`run`] with progress counters and a stop flag.
///
/// # Errors
///
/// As [`run`].
pub fn run_with(config: &StressConfig, opts: &RunOptions) -> Result<StressOutcome, StressError> {
    if config.udp {
        return crate::udp::run(config, opts);
    }
    config.validate()?;
    let script = config.script()?;
    check_outputs(config)?;
    let addr = resolve(&config.host, config.port, config.timeout)?;
    let pre = preflight(config, addr.ip())?;
    for note in &pre.notes {
        tracing::info!("{note}");
    }
    let backend = config
        .backend
        .resolve()
        .map_err(|e| StressError::Port(e.to_string()))?;
    let threads = config.effective_threads();
    if let Some(seg) = config.segment {
        tracing::info!(
            "{}",
            crate::plan::segment::describe(seg, config.connections)
        );
    }
    let tls = match &config.tls {
        Some(opts) => Some(tls_client(config, opts, addr)?),
        None => None,
    };
    if let Some(ws) = &config.websocket {
        ws_probe(config, ws, addr, tls.as_ref())?;
    }
    let fell_back = if config.mptcp {
        mptcp_probe(config, addr)?
    } else {
        None
    };
    let tls_check = (tls.is_none() && config.websocket.is_none()).then(|| {
        tls_check::TlsCheck::new(
            &config.host,
            config.port,
            addr,
            probe_timeout(config),
            config.proxy_protocol,
        )
    });
    let shared = Shared {
        tls,
        tls_check,
        config,
        first: config.own_connections().start,
        start_late: OnceLock::new(),
        payload: config.payload(),
        script,
        addr,
        sources: pre.source_ips.clone(),
        connect_start: Instant::now(),
        barrier: Barrier::new(threads),
        load_start: OnceLock::new(),
        backend,
        opts,
    };
    let results: Vec<Result<ThreadResult, ThreadFailure>> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let shared = &shared;
                thread::Builder::new()
                    .name(format!("stress-{t}"))
                    .spawn_scoped(s, move || client_thread(shared, t, threads))
                    .expect("spawning a client thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(ThreadFailure::Other("panicked".to_string())))
            })
            .collect()
    });
    if let Some(refusal) = shared.tls_check.as_ref().and_then(|c| c.finish()) {
        return Err(StressError::WrongProtocol(refusal));
    }
    let mut parts = Vec::with_capacity(threads);
    for (t, r) in results.into_iter().enumerate() {
        match r {
            Ok(part) => parts.push(part),
            Err(ThreadFailure::Port(detail)) => return Err(StressError::Port(detail)),
            Err(ThreadFailure::Other(detail)) => {
                return Err(StressError::Thread { thread: t, detail })
            }
        }
    }
    let stats = ThreadStats::merge_all(
        config.own_connections().len(),
        parts.iter().map(|p| &p.stats),
    );
    let measure_start = parts
        .iter()
        .map(|p| p.measure_start)
        .min()
        .unwrap_or_else(Instant::now);
    // The measured time is the time the load really ran: it ends at the configured duration, at
    // the stop flag (Ctrl-C), or when every connection has finished or failed (a server that
    // went away), whichever came first; a count ends with its last echo, or later if
    // connections were still failing (timeouts) after it.
    let stopped = parts.iter().filter_map(|p| p.stopped_early).min();
    let load_end = parts.iter().filter_map(|p| p.load_end).max();
    let last_echo = parts.iter().filter_map(|p| p.last_completion).max();
    let failing_after = stats.errors.total() > 0;
    let end = match config.stop() {
        Stop::Duration(d) => [Some(measure_start + d), stopped, load_end]
            .into_iter()
            .flatten()
            .min(),
        Stop::Count(_) if failing_after => [stopped, load_end].into_iter().flatten().min(),
        Stop::Count(_) => last_echo,
    };
    let measured = end.map_or(Duration::ZERO, |end| {
        end.saturating_duration_since(measure_start)
    });
    let measure_started =
        SystemTime::now() - Instant::now().saturating_duration_since(measure_start);
    let mut report = crate::report::build(config, &stats, measured, backend.name());
    if let Some(n) = config.messages_per_connection {
        let mut churn = ReconnectStats::default();
        for p in &parts {
            churn.merge(&p.churn);
        }
        add_churn(&mut report, config, &stats, &churn, &pre, addr, n, measured);
    }
    let tls = shared.tls.as_ref().map(|_| {
        let mut tls = TlsStats::default();
        for p in &parts {
            tls.merge(&p.tls);
        }
        report.tls = Some(crate::report::tls::figures(&tls, measured));
        tls
    });
    let ws = config.websocket.as_ref().map(|opts| {
        let mut ws = WsStats::default();
        for p in &parts {
            ws.merge(&p.ws);
        }
        report.websocket = Some(crate::report::ws::figures(&ws, &opts.path, measured));
        ws
    });
    // Rounded to the millisecond, as the interval log writes its StartTime.
    report.started_at_unix_s = (unix_secs(measure_started) * 1000.0).round() / 1000.0;
    if let Some(&late) = shared.start_late.get() {
        report.start_late_s = Some(late.as_secs_f64());
        report.warnings.push(format!(
            "started {:.3}s after --start-at: connecting took longer than the time left, or \
             this host's clock is ahead; the agents' load did not begin together, so start \
             them earlier or set --start-at later",
            late.as_secs_f64()
        ));
    }
    report.warnings.extend(fell_back);
    if stopped.is_some() {
        report.mark_interrupted();
    }
    // A port whose waits are kept only to the millisecond (the port says: IOCP's) cannot send
    // on time to the microsecond.
    let resolution = backend.timer_resolution();
    if resolution >= Duration::from_millis(1) && config.rate.is_some() {
        report.warnings.push(format!(
            "the {} backend waits in whole milliseconds: in rate mode sends may leave up to \
             {} ms after their intended time, and the corrected latency includes that",
            backend.name().to_uppercase(),
            resolution.as_millis()
        ));
    }
    Ok(StressOutcome {
        report,
        stats,
        measure_started,
        measured,
        preflight: pre,
        tls,
        ws,
    })
}

/// Checks, before anything runs, that the files `--json`, `--hdr-log`, `--csv` and `--html` name can be
/// written,
/// so a long run is not lost to a typo in a path. A file that did not exist is created and
/// removed again; an existing one is opened for appending and left as it is.
pub(crate) fn check_outputs(config: &StressConfig) -> Result<(), StressError> {
    let json = match &config.json {
        Some(OutputTarget::Path(p)) => Some(("--json", p)),
        _ => None,
    };
    let hdr = config.hdr_log.as_ref().map(|p| ("--hdr-log", p));
    let csv = config.csv.as_ref().map(|p| ("--csv", p));
    let html = config.html.as_ref().map(|p| ("--html", p));
    for (flag, path) in json.into_iter().chain(hdr).chain(csv).chain(html) {
        crate::config::outputs::writable(path).map_err(|error| StressError::Output {
            flag,
            path: path.display().to_string(),
            error,
        })?;
    }
    Ok(())
}

/// The address of `host:port` to load: of every address the name has, the first that accepts
/// a connection ([`resolve::choose`]).
fn resolve(host: &str, port: u16, timeout: Duration) -> Result<SocketAddr, StressError> {
    let addrs = resolve::resolve_all(host, port).map_err(|source| StressError::Resolve {
        host: host.to_string(),
        source,
    })?;
    Ok(resolve::choose(&addrs, timeout))
}

/// Waits at the start barrier once: explicitly with [`StartGuard::pass`], or when dropped.
struct StartGuard<'b> {
    barrier: &'b Barrier,
    passed: bool,
}

impl StartGuard<'_> {
    fn pass(&mut self) {
        if !self.passed {
            self.passed = true;
            self.barrier.wait();
        }
    }
}

impl Drop for StartGuard<'_> {
    fn drop(&mut self) {
        self.pass();
    }
}

/// Why a client thread gave up.
enum ThreadFailure {
    /// Its completion port could not be created.
    Port(String),
    /// Its port failed while running, or it panicked.
    Other(String),
}

/// The report's `churn` section and its warning about `TIME_WAIT` and the ephemeral ports.
#[allow(clippy::too_many_arguments)]
fn add_churn(
    report: &mut StressReport,
    config: &StressConfig,
    stats: &ThreadStats,
    churn: &ReconnectStats,
    pre: &Preflight,
    addr: SocketAddr,
    per_connection: u64,
    measured: Duration,
) {
    let secs = measured.as_secs_f64();
    let figures = ReconnectFigures {
        messages_per_connection: per_connection,
        connect_rate: config.connect_rate,
        linger0: config.linger0,
        attempts: churn.attempts,
        connections: stats.connect.len(),
        connections_per_s: if secs > 0.0 {
            churn.connected_in_window as f64 / secs
        } else {
            0.0
        },
        connect_latency_us: ringport_report::histogram::LatencySummary::of_or_zero(&stats.connect),
        errors: churn.errors,
        time_wait: crate::measure::ports::time_wait_now(),
        ephemeral_ports: crate::config::preflight::ports_per_source(
            pre.port_range.0,
            pre.port_range.1,
        ),
    };
    let facts = crate::report::warnings::PortFacts {
        connections_per_s: figures.connections_per_s,
        addr_not_available: figures.errors.addr_not_available,
        time_wait: figures.time_wait,
        ephemeral_ports: figures.ephemeral_ports,
        sources: pre.source_ips.len().max(1) as u64,
        linger0: config.linger0,
        tw_reuse: crate::measure::ports::tw_reuse_applies(addr.ip().is_loopback()),
    };
    if let Some(w) = crate::report::warnings::port_warning(&facts) {
        report.warnings.push(w);
    }
    report.churn = Some(figures);
}

/// `--tls`: the configuration every connection shares, once the probe's handshake has shown
/// that the server speaks TLS and its certificate is trusted (`--insecure`: warned about,
/// once).
fn tls_client(
    config: &StressConfig,
    opts: &crate::tls::options::TlsOptions,
    addr: SocketAddr,
) -> Result<TlsClient, StressError> {
    let client = TlsClient::new(opts, &config.host, config.connections)?;
    match crate::tls::probe::probe(&client, addr, probe_timeout(config), config.proxy_protocol) {
        Ok(()) => {}
        Err(ProbeError::Untrusted(why)) => {
            return Err(StressError::Tls(format!(
                "{}:{} cannot be trusted: {why}",
                config.host, config.port
            )))
        }
        Err(ProbeError::NotTls(answer)) => {
            let target = resolve::host_port(&config.host, config.port);
            let line = crate::tls::detect::not_tls(&target, &answer)
                .unwrap_or_else(|| format!("{target} does not speak TLS"));
            return Err(StressError::WrongProtocol(line));
        }
        // The run meets and counts it per connection.
        Err(ProbeError::Other(why)) => tracing::debug!("TLS probe: {why}"),
    }
    if opts.insecure {
        // Once per process (a latency search runs many times), and once the run goes ahead:
        // a refusal is one line.
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            tracing::warn!(
                "--insecure: the server's certificate and name are not verified; the handshakes \
                 are real, the server's identity is not checked"
            )
        });
    }
    Ok(client)
}

/// How long each step of a probe before the load may take: `--timeout`, or 5 s where that is 0
/// (no timeout: a probe that never ends would keep the run from starting).
fn probe_timeout(config: &StressConfig) -> Duration {
    if config.timeout.is_zero() {
        Duration::from_secs(5)
    } else {
        config.timeout
    }
}

/// `--mptcp`: one connection before the load shows whether the server speaks Multipath TCP;
/// the warning to report when it answered with plain TCP (the connections of the run then are
/// TCP, which MPTCP allows). A connection that fails is the run's to meet and count.
fn mptcp_probe(config: &StressConfig, addr: SocketAddr) -> Result<Option<String>, StressError> {
    let socket = ringport_port::os::stream_socket(addr, true).map_err(StressError::Mptcp)?;
    let connected = if config.timeout.is_zero() {
        socket.connect(&addr.into())
    } else {
        socket.connect_timeout(&addr.into(), config.timeout)
    };
    if let Err(e) = connected {
        tracing::debug!("MPTCP probe: {e}");
        return Ok(None);
    }
    match ringport_port::os::is_mptcp(&socket) {
        Ok(true) => Ok(None),
        Ok(false) => Ok(Some(format!(
            "--mptcp: {}:{} answered with plain TCP (it does not speak MPTCP): the connections \
             were TCP, one path each",
            config.host, config.port
        ))),
        Err(e) => {
            tracing::debug!("MPTCP probe: cannot tell ({e}; TCP_IS_MPTCP needs Linux 5.16)");
            Ok(None)
        }
    }
}

/// `--websocket`: one upgrade before the load; a refusal stops the run with its status line.
fn ws_probe(
    config: &StressConfig,
    ws: &crate::ws::options::WsOptions,
    addr: SocketAddr,
    tls: Option<&TlsClient>,
) -> Result<(), StressError> {
    use crate::ws::probe::ProbeError as WsProbeError;
    let host = ws_host(config);
    match crate::ws::probe::probe(
        ws,
        &host,
        addr,
        tls,
        probe_timeout(config),
        config.proxy_protocol,
    ) {
        Ok(()) => Ok(()),
        Err(WsProbeError::SpeaksTls) => {
            Err(StressError::WrongProtocol(crate::tls::detect::speaks_tls(
                &resolve::host_port(&config.host, config.port),
                crate::tls::detect::TlsSign::Alert,
            )))
        }
        Err(WsProbeError::Refused(why)) => Err(StressError::WebSocket(format!(
            "{}:{} refused the upgrade to {}: {why}",
            config.host, config.port, ws.path
        ))),
        // The run meets and counts it per connection.
        Err(WsProbeError::Other(why)) => {
            tracing::debug!("WebSocket probe: {why}");
            Ok(())
        }
    }
}

/// `--websocket`: the `Host` header of the upgrade: the host as given, with its port.
pub(crate) fn ws_host(config: &StressConfig) -> String {
    if config.host.contains(':') && !config.host.starts_with('[') {
        format!("[{}]:{}", config.host, config.port)
    } else {
        format!("{}:{}", config.host, config.port)
    }
}

/// What a client thread hands back.
struct ThreadResult {
    stats: ThreadStats,
    churn: ReconnectStats,
    tls: TlsStats,
    ws: WsStats,
    measure_start: Instant,
    last_completion: Option<Instant>,
    stopped_early: Option<Instant>,
    load_end: Option<Instant>,
}

fn client_thread(
    shared: &Shared<'_>,
    t: usize,
    threads: usize,
) -> Result<ThreadResult, ThreadFailure> {
    // Every thread must reach the start barrier, whatever happens to it before (an error, or a
    // panic: the guard waits while unwinding), or the others would wait for ever.
    let start = StartGuard {
        barrier: &shared.barrier,
        passed: false,
    };
    let globals: Vec<usize> =
        connections_of_thread(t, threads, shared.config.own_connections().len())
            .into_iter()
            .map(|c| c + shared.first)
            .collect();
    let entries = (globals.len() * 2 + 16).next_power_of_two().clamp(64, 4096) as u32;
    let port = Port::new(&PortConfig {
        entries,
        backend: shared.backend.into(),
    })
    .map_err(|e| ThreadFailure::Port(e.to_string()))?;
    // The protocol is chosen here, once: each is its own compiled client.
    match &shared.script {
        None => drive(
            Client::<crate::protocol::echo::StreamVerifier>::new(
                shared,
                port,
                &globals,
                &shared.payload,
            ),
            start,
        ),
        Some(script) => drive(
            Client::<ReplyVerifier>::new(shared, port, &globals, script),
            start,
        ),
    }
}

/// Connects `client`'s connections, passes the start barrier, runs the load.
fn drive<X: exchange::Exchange>(
    mut client: Client<'_, '_, X>,
    mut start: StartGuard<'_>,
) -> Result<ThreadResult, ThreadFailure> {
    client.provide_pool();
    let connected = client.connect_all();
    start.pass();
    connected
        .map_err(|e| ThreadFailure::Other(format!("waiting on the port while connecting: {e}")))?;
    client
        .load()
        .map_err(|e| ThreadFailure::Other(format!("waiting on the port: {e}")))?;
    Ok(ThreadResult {
        stats: client.stats,
        churn: client.churn_stats,
        tls: client.tls_stats,
        ws: client.ws_stats,
        measure_start: client.measure_start,
        last_completion: client.last_completion,
        stopped_early: client.stopped_early,
        load_end: client.load_end,
    })
}
