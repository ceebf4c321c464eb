//! `ringport stress`: flags into a [`StressConfig`], the article's questions on a terminal, a
//! live progress line on a terminal, Ctrl-C to stop early, the report, and the exit code.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use clap::Args;
use ringport_port::BackendChoice;
use ringport_report::export::{Exporter as _, Html};
use ringport_stress::config::{self, outputs, OutputTarget, StressConfig};
use ringport_stress::engine::{self, Progress, RunOptions};
use ringport_stress::plan::ramp::Ramp;
use ringport_stress::plan::segment::{parse_start_at, Segment};
use ringport_stress::search::{self, LatencyTarget, Quantile, SearchConfig, SearchReport};

use crate::exit::{usage, UsageContext};
use crate::request_args::RequestArgs;
use crate::secs::{parse_secs, secs};

/// Flags of `ringport stress`.
#[derive(Debug, Args)]
pub struct StressArgs {
    /// `[HOST] [PORT]`: the server (127.0.0.1 and 3333 by default), also as HOST:PORT or
    /// [V6]:PORT. A lone number is the port.
    #[arg(num_args = 0..=2, value_name = "[HOST] [PORT]")]
    target: Vec<String>,
    /// Send this text, numbered per message as the article does: `<i>. Thread <t> - TEXT`.
    #[arg(long, conflicts_with = "size")]
    message: Option<String>,
    // Defaults applied after parsing (asked for on a terminal when absent) are the library's,
    // shown in the help.
    #[arg(long, value_name = "BYTES", value_parser = crate::bytes::parse_bytes, help = format!(
        "Send messages of this many seeded random bytes (all byte values; K, M suffixes: KiB, \
         MiB) instead of text; with --stream, the chunk size (default {})",
        config::DEFAULT_STREAM_CHUNK
    ))]
    size: Option<usize>,
    #[arg(long, value_name = "N|A..B|A,B,C", help = format!(
        "Connections in total, spread over the client threads [default: {}]; or a ramp in \
         closed loop: `A..B` with --ramp (connections join linearly), `A,B,C` with --step \
         (each level held for --step)",
        config::DEFAULT_CONNECTIONS
    ))]
    connections: Option<String>,
    /// Connections opened per second at most, over every client thread; with
    /// --messages-per-connection, reconnects included.
    #[arg(long, default_value_t = config::DEFAULT_CONNECT_RATE)]
    connect_rate: f64,
    /// Churn: each connection closes after N exchanges (message and verified echo) and a new
    /// one takes its place, at most --connect-rate connects per second; reports connections
    /// per second, connect latency and failed connections by cause.
    #[arg(long, value_name = "N")]
    messages_per_connection: Option<u64>,
    /// Close connections with a reset (SO_LINGER 0) instead of a FIN: no TIME_WAIT is left on
    /// the client, so churn is not limited by the ephemeral ports (the server sees resets).
    #[arg(long)]
    linger0: bool,
    /// Connect with Multipath TCP (Linux 5.6+, sysctl net.mptcp.enabled=1): each connection
    /// gets the extra subflows the path managers of both hosts open (`ip mptcp endpoint`). A
    /// server that does not speak MPTCP answers with plain TCP: one connection made before the
    /// load checks, and a warning says so.
    #[arg(long)]
    mptcp: bool,
    /// Every connection (and every probe before the load) sends HAProxy's PROXY header first,
    /// in version 1 (text) or 2 (binary), as a load balancer would, naming the connection's own
    /// address as the client's (with --source-ip, the addresses a server behind a proxy sees
    /// spread too). For a server that reads the header itself (`serve --proxy-protocol`,
    /// nginx's `proxy_protocol`, HAProxy's `accept-proxy`).
    #[arg(long, value_name = "v1|v2", value_parser = ringport_stress::engine::proxy::parse_version)]
    proxy_protocol: Option<ringport_stress::engine::proxy::Version>,
    #[arg(long, conflicts_with = "duration", help = format!(
        "Messages per connection [default: {} when --duration is not given]",
        config::DEFAULT_COUNT
    ))]
    count: Option<u64>,
    /// Run for this many seconds (after the warm-up) instead of a message count.
    #[arg(long, value_parser = parse_secs)]
    duration: Option<f64>,
    /// Open loop: this many messages per second in total, latency measured from each message's
    /// intended send time (coordinated omission corrected; the uncorrected figure beside it).
    /// A ramp: `A..B` with --ramp (linear), `A,B,C` with --step (each rate held for --step);
    /// the report then has a line per step. With --find-max-rate, the first rate probed
    /// [default: 1000].
    #[arg(long, value_name = "N|A..B|A,B,C")]
    rate: Option<String>,
    /// A linear ramp's length (`--rate 1000..50000 --ramp 30s`); it sets the run's length.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    ramp: Option<Duration>,
    /// A stepped ramp's dwell per level (`--rate 1000,2000,4000 --step 5s`), or how often a
    /// linear ramp is reported [default: 1s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    step: Option<Duration>,
    /// Search for the highest open-loop rate whose corrected latency meets --p99 (and/or --p50,
    /// --p999): probes of --warmup [default: 1s] then a --duration window [default: 5s] each,
    /// doubling from --rate, then bisecting; prints the curve measured and the answer. Exit
    /// code 4 when no rate passes.
    #[arg(long)]
    find_max_rate: bool,
    /// With --find-max-rate: the p50 latency target (e.g. 500us, 2ms).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    p50: Option<Duration>,
    /// With --find-max-rate: the p99 latency target (e.g. 2ms).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    p99: Option<Duration>,
    /// With --find-max-rate: the p99.9 latency target.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    p999: Option<Duration>,
    /// With --find-max-rate: never probe above this rate.
    #[arg(long, value_name = "MSGS_PER_S", default_value_t = 10_000_000.0)]
    max_rate: f64,
    /// With --find-max-rate: never probe below this rate.
    #[arg(long, value_name = "MSGS_PER_S", default_value_t = 100.0)]
    min_rate: f64,
    /// With --find-max-rate: stop bisecting when the last passing and first failing rates are
    /// within this many percent.
    #[arg(long, value_name = "PCT", default_value_t = 5.0)]
    precision: f64,
    /// With --find-max-rate: measure the answer again this many times (its repeatability).
    #[arg(long, value_name = "N", default_value_t = 1)]
    repeat: usize,
    /// With --find-max-rate: draw the curve (p50, p99, p99.9 against the rate) as SVG here.
    #[arg(long, value_name = "PATH")]
    svg: Option<PathBuf>,
    /// Messages in flight per connection (closed loop: 1 waits for each echo before the next).
    #[arg(long, default_value_t = StressConfig::default().pipeline)]
    pipeline: usize,
    /// Stream: each connection writes continuously, in chunks of --size bytes,
    /// with at most --window bytes not yet echoed, while reading the echo back and verifying
    /// every byte; reports echoed Gbit/s and MiB/s, in total and per connection.
    #[arg(long)]
    stream: bool,
    #[arg(long, value_name = "BYTES", value_parser = crate::bytes::parse_bytes, help = format!(
        "With --stream: bytes sent and not yet echoed per connection, at most (whole chunks) \
         [default: {}]",
        config::DEFAULT_WINDOW
    ))]
    window: Option<usize>,
    /// Seconds of load before measuring, excluded from every figure [default: 0; 1 per probe
    /// with --find-max-rate].
    #[arg(long, value_parser = parse_secs)]
    warmup: Option<f64>,
    /// Client threads, each driving many connections on its own completion port [default: the
    /// number of CPUs].
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds to wait for an echo or a connect before counting a timeout. 0: wait for ever.
    #[arg(long, default_value_t = secs(config::DEFAULT_TIMEOUT), value_parser = parse_secs)]
    timeout: f64,
    /// Local addresses to spread connections over, round-robin by connection number: IP or
    /// FIRST-LAST (a range of at most 65,536, e.g. 127.0.0.2-127.0.0.254); repeat, or separate
    /// with commas. On loopback, 127.0.0.x addresses are picked automatically when one address
    /// cannot hold every connection.
    #[arg(long = "source-ip", value_name = "IP|FIRST-LAST", value_delimiter = ',', value_parser = parse_sources)]
    source_ips: Vec<Sources>,
    /// Write the result as JSON to PATH, or to standard output with `-` (the human report then
    /// goes to standard error).
    #[arg(long, value_name = "PATH|-")]
    json: Option<String>,
    /// Write the latency as an HdrHistogram interval log: one interval per second, tagged
    /// `latency` (and `uncorrected` with --rate, `connect` for connect times).
    #[arg(long, value_name = "PATH")]
    hdr_log: Option<PathBuf>,
    /// Write the latency per second as CSV: one row per interval of the --hdr-log (tag, start,
    /// length, count, min, p50, p90, p99, p99.9, max, mean; microseconds); with --udp also a
    /// `datagrams` row per second and a `flow` row per flow (their counts and jitter).
    #[arg(long, value_name = "PATH")]
    csv: Option<PathBuf>,
    /// Write the report as one self-contained HTML page (charts and styles inside, nothing
    /// fetched): the summary, throughput and latency per second, the percentile spectrum,
    /// fairness, errors by cause and over time; with --find-max-rate, the curve and every probe.
    #[arg(long, value_name = "PATH")]
    html: Option<PathBuf>,
    /// Run only share I of N (1-based: 1/3, 2/3, 3/3) of the connections, and with them of the
    /// rate and the messages, for load from N hosts; `ringport merge` adds the results.
    #[arg(long, value_name = "I/N", value_parser = parse_segment)]
    segment: Option<Segment>,
    /// Start the load at this wall-clock time (after connecting), so agents on several hosts
    /// start together: RFC 3339 (2026-12-01T10:00:00Z) or seconds since the Unix epoch. A late
    /// start is warned about, with how late.
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    start_at: Option<SystemTime>,
    /// Print one progress line on stderr every SECS (phase, msg/s, p50/p99 of the interval,
    /// errors). The default: a line redrawn in place on a terminal, one line a second
    /// otherwise; 0 prints none.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    interval: Option<f64>,
    /// Print every reply, as the article's client does.
    #[arg(long)]
    verbose: bool,
    /// Seed of the random payload (--size), so a failing run can be repeated exactly.
    #[arg(long, default_value_t = StressConfig::default().seed)]
    seed: u64,
    /// With --rate: microseconds before each scheduled send that a client thread polls instead
    /// of sleeping, so sends are not late by the kernel's timer slack [default: 60 on Linux, 0 on
    /// Windows]. 0 sleeps until the send is due: less CPU per message (many agents on few CPUs),
    /// sends up to the timer slack (about 50 us) late, which the latency then includes. At most
    /// 10000.
    #[arg(long, value_name = "US")]
    spin_us: Option<u64>,
    /// The client's completion-port mechanism: auto (io_uring, else epoll; iocp on Windows),
    /// uring, epoll (Linux) or iocp (Windows).
    #[arg(long, default_value_t = StressConfig::default().backend)]
    backend: BackendChoice,
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::parse_addr, help = crate::metrics::HELP)]
    metrics: Option<std::net::SocketAddr>,
    // The flattened groups come last: a group's heading carries over to the fields after it.
    /// Load a UDP echo (`serve --udp`): each of --connections is a flow (one socket) of
    /// datagrams of --size bytes in all (a 20-byte header: flow, sequence number, send time;
    /// then the payload), every echo verified byte for byte; reports datagrams sent, echoed,
    /// lost, duplicated, reordered and corrupted, and the jitter. A datagram not echoed within
    /// --timeout is lost; --pipeline datagrams are outstanding per flow in closed loop.
    #[arg(long, help_heading = "UDP")]
    udp: bool,
    /// With --udp: fail the run (exit code 1) when more than PCT percent of the datagrams are
    /// lost; with --find-max-rate, a probe losing more fails too. Without it loss is reported
    /// only.
    #[arg(long, value_name = "PCT", help_heading = "UDP")]
    max_loss: Option<f64>,
    /// With --udp: how many flows the report's flow table lists: the N that lost the largest
    /// share, worst first, or `all` (every flow, in order). The JSON, CSV and HTML list every
    /// flow whatever this says.
    #[arg(long, value_name = "N|all", value_parser = parse_flows, help_heading = "UDP")]
    flows: Option<FlowsShown>,
    /// With --udp: one datagram per send and per receive. Otherwise, on Linux, a flow's
    /// datagrams that may leave together (--pipeline, or sends due at once under --rate) go in
    /// one send that the system splits (UDP GSO), and echoes may come back several per receive
    /// (UDP GRO); the datagrams on the wire are the same. The report's `udp_offload` says
    /// whether either was used.
    #[arg(long, help_heading = "UDP")]
    no_gso: bool,
    /// Request/response mode: `--request*` and `--expect*`, in command-line order.
    #[command(flatten)]
    requests: RequestArgs,
    /// `--tls` and its flags.
    #[command(flatten)]
    tls: crate::tls_client_args::TlsClientArgs,
    /// `--websocket` and `--header`.
    #[command(flatten)]
    ws: crate::ws_client_args::WsClientArgs,
}

/// `--flows`: how many flows a UDP run's human report lists (`None`: all).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlowsShown(pub(crate) Option<usize>);

/// `--flows N|all`.
pub(crate) fn parse_flows(s: &str) -> Result<FlowsShown, String> {
    if s == "all" {
        return Ok(FlowsShown(None));
    }
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(FlowsShown(Some(n))),
        _ => Err(format!(
            "{s:?} is neither a number of flows (1 or more) nor `all`"
        )),
    }
}

/// The human report of `report`, its flow table listing `flows` (the default without it).
pub(crate) fn render(report: &ringport_report::StressReport, flows: Option<FlowsShown>) -> String {
    let human = flows.map_or_else(ringport_report::export::HumanRun::default, |f| {
        ringport_report::export::HumanRun { flows: f.0 }
    });
    human.to_string(report)
}

/// The addresses of one `--source-ip` value (an address or a range).
#[derive(Debug, Clone)]
struct Sources(Vec<IpAddr>);

fn parse_sources(s: &str) -> Result<Sources, String> {
    crate::addr::parse_source_ips(s).map(Sources)
}

fn parse_segment(s: &str) -> Result<Segment, String> {
    s.parse()
}

/// A duration with its unit: `2ms`, `500us`, `1.5s`, `30s`, `1m`. A bare number is refused: `2`
/// could be meant as 2 ms as well as 2 s, an error of a thousand times in a latency target.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.parse::<f64>().is_ok() {
        return Err(format!(
            "`{s}` has no unit: write {s}ms, {s}us or {s}s (a latency target or a ramp takes a unit)"
        ));
    }
    // humantime takes whole numbers per unit; accept a decimal one too (1.5s, 0.5ms).
    if let Some(i) = s.find(|c: char| c.is_ascii_alphabetic() || c == 'µ') {
        let (num, unit) = s.split_at(i);
        if let (Ok(v), Ok(one)) = (
            num.parse::<f64>(),
            humantime::parse_duration(&format!("1{unit}")),
        ) {
            if v >= 0.0 && v.is_finite() {
                return Ok(one.mul_f64(v));
            }
        }
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration (e.g. 2ms, 500us, 30s): {e}"))
}

impl StressArgs {
    pub(crate) fn config(&self) -> anyhow::Result<StressConfig> {
        let mut cfg = StressConfig::default();
        (cfg.host, cfg.port) = crate::addr::parse_target(&self.target)?;
        cfg.message = self.message.clone();
        cfg.size = self.size;
        if let Some(spec) = &self.connections {
            match Ramp::parse("--connections", spec, self.ramp, self.step)
                .map_err(anyhow::Error::msg)?
            {
                Some(r) => {
                    if !r.whole() {
                        anyhow::bail!("--connections {spec}: connection counts are whole numbers");
                    }
                    cfg.connections = r.peak().round() as usize;
                    cfg.connections_ramp = Some(r);
                }
                None => {
                    cfg.connections = spec.parse().map_err(|_| {
                        anyhow::anyhow!("--connections {spec}: not a whole number of connections")
                    })?;
                }
            }
        }
        cfg.connect_rate = self.connect_rate;
        cfg.count = self.count;
        cfg.duration = self.duration.map(Duration::from_secs_f64);
        if let Some(spec) = &self.rate {
            match Ramp::parse("--rate", spec, self.ramp, self.step).map_err(anyhow::Error::msg)? {
                Some(r) => {
                    cfg.rate = Some(r.peak());
                    cfg.rate_ramp = Some(r);
                }
                None => {
                    cfg.rate = Some(spec.trim().replace('_', "").parse().map_err(|_| {
                        anyhow::anyhow!(
                            "--rate {spec}: not a number of messages per second (or A..B, A,B,C)"
                        )
                    })?)
                }
            }
        }
        if (self.ramp.is_some() || self.step.is_some())
            && cfg.rate_ramp.is_none()
            && cfg.connections_ramp.is_none()
        {
            anyhow::bail!(
                "--ramp and --step apply to a ramp: --rate A..B --ramp 30s, or --rate A,B,C --step 5s"
            );
        }
        if !self.find_max_rate
            && (self.p50.is_some()
                || self.p99.is_some()
                || self.p999.is_some()
                || self.svg.is_some())
        {
            anyhow::bail!("--p50, --p99, --p999 and --svg apply to --find-max-rate");
        }
        cfg.pipeline = self.pipeline;
        cfg.stream = self.stream;
        cfg.window = self.window;
        cfg.warmup = Duration::from_secs_f64(self.warmup.unwrap_or(0.0));
        if let Some(t) = self.threads {
            cfg.threads = t;
        }
        cfg.timeout = Duration::from_secs_f64(self.timeout);
        cfg.source_ips = self
            .source_ips
            .iter()
            .flat_map(|s| s.0.iter().copied())
            .collect();
        cfg.json = self.json.as_deref().map(OutputTarget::parse);
        cfg.hdr_log = self.hdr_log.clone();
        cfg.csv = self.csv.clone();
        cfg.html = self.html.clone();
        cfg.verbose = self.verbose;
        cfg.seed = self.seed;
        cfg.backend = self.backend;
        cfg.segment = self.segment;
        cfg.start_at = self.start_at;
        cfg.messages_per_connection = self.messages_per_connection;
        cfg.linger0 = self.linger0;
        cfg.mptcp = self.mptcp;
        cfg.proxy_protocol = self.proxy_protocol;
        cfg.spin = self.spin_us.map(Duration::from_micros);
        cfg.tls = self.tls.options()?;
        cfg.udp = self.udp;
        cfg.max_loss_pct = self.max_loss;
        cfg.no_gso = self.no_gso;
        cfg.websocket = self.ws.options()?;
        Ok(cfg)
    }
}

/// How the progress of a run is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Live {
    /// Nothing.
    Off,
    /// One line redrawn in place every 250 ms (a terminal).
    Redrawn,
    /// One line per interval, each on its own line (a log, a pipe, or `--interval`).
    Lines(Duration),
}

impl Live {
    /// `--interval` if given (0: off); otherwise a redrawn line on a terminal and a line a
    /// second elsewhere. `--verbose` prints replies instead, unless `--interval` asks for both.
    fn choose(interval: Option<f64>, stderr_is_terminal: bool, verbose: bool) -> Live {
        match interval {
            Some(s) if s <= 0.0 => Live::Off,
            Some(s) => Live::Lines(Duration::from_secs_f64(s.max(0.05))),
            None if verbose => Live::Off,
            None if stderr_is_terminal => Live::Redrawn,
            None => Live::Lines(Duration::from_secs(1)),
        }
    }
}

/// The live line while one is drawn on the terminal, so that a notice (Ctrl-C) is printed above
/// it, whole, instead of into it (where the next redraw would erase it).
static LIVE_BAR: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Prints `text` on stderr as a line of its own: above the live line, if one is drawn.
fn notice(text: &str) {
    let bar = LIVE_BAR.lock().ok().and_then(|b| b.clone());
    // Through the one stderr queue, which never waits for a reader; flushed (for a bounded
    // time) while the live line is suspended, so the notice lands above it, not into it.
    match bar {
        Some(bar) => bar.suspend(|| {
            crate::stderr::note!("{text}");
            crate::stderr::flush();
        }),
        None => crate::stderr::note!("{text}"),
    }
}

/// Erases the live line, if one is drawn, for good (before exiting at once).
fn clear_live_line() {
    if let Some(bar) = LIVE_BAR.lock().ok().and_then(|mut b| b.take()) {
        bar.finish_and_clear();
    }
}

/// Shows the run's progress on stderr as `how` says until `done` is set.
fn spawn_progress(
    how: Live,
    progress: Arc<Progress>,
    done: Arc<AtomicBool>,
    connections: usize,
    warmup: Duration,
) -> Option<std::thread::JoinHandle<()>> {
    let every = match how {
        Live::Off => return None,
        Live::Redrawn => Duration::from_millis(250),
        Live::Lines(every) => every,
    };
    Some(std::thread::spawn(move || {
        let bar = (how == Live::Redrawn).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            if let Ok(mut live) = LIVE_BAR.lock() {
                *live = Some(bar.clone());
            }
            bar
        });
        let mut last = Instant::now();
        let mut previous = progress.sample();
        let mut next = last + every;
        while !done.load(Ordering::Relaxed) {
            // Sleep in short steps, so the end of the run is not held up by a long interval.
            std::thread::sleep((next - Instant::now().min(next)).min(Duration::from_millis(50)));
            let now = Instant::now();
            if now < next {
                continue;
            }
            next += every;
            let sample = progress.sample();
            let phase = ringport_stress::engine::progress::Phase::at(
                now,
                progress.load_start.get().copied(),
                warmup,
            );
            let line = ringport_stress::engine::progress::line(
                &previous,
                &sample,
                now - last,
                phase,
                connections,
            );
            match &bar {
                Some(bar) => {
                    bar.set_message(line);
                    bar.tick();
                }
                None => eprintln!("progress: {line}"),
            }
            previous = sample;
            last = now;
        }
        if let Some(bar) = bar {
            if let Ok(mut live) = LIVE_BAR.lock() {
                *live = None;
            }
            bar.finish_and_clear();
        }
    }))
}

/// Runs the load and reports.
pub fn run(args: StressArgs) -> anyhow::Result<ExitCode> {
    // Flags that cannot be accepted, alone or together, are usage errors (exit code 2).
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    crate::request_args::check_expect_http_spacing(&argv).usage()?;
    let mut cfg = args.config().usage()?;
    ringport_stress::config::request::pair(args.requests.items.clone())
        .and_then(|r| {
            cfg.requests = r;
            cfg.validate_requests()
        })
        .usage()?;
    if args.flows.is_some() && !args.udp {
        return Err(usage(
            "--flows applies to --udp only: it says how many flows the report lists",
        ));
    }
    if args.find_max_rate {
        if args.metrics.is_some() {
            anyhow::bail!("--metrics does not apply to --find-max-rate");
        }
        if args.flows.is_some() {
            return Err(usage(
                "--flows does not apply to --find-max-rate: its report lists probes, not flows",
            ));
        }
        return run_search(&args, cfg);
    }
    let metrics = args.metrics.map(crate::metrics::bind).transpose()?;
    if cfg.is_interactive_candidate() && std::io::stdin().is_terminal() {
        // The questions go to the terminal (standard error), never into the results.
        let asked = ringport_stress::config::interactive::ask(
            &mut cfg,
            std::io::stdin().lock(),
            std::io::stderr(),
            args.connections.is_none(),
        );
        match asked {
            Ok(()) => {}
            // Ctrl-D instead of an answer: the person called the run off.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                eprintln!("\nringport: no answer (end of input): nothing was run");
                return Ok(ExitCode::from(crate::exit::INTERRUPTED));
            }
            Err(e) => return Err(e).context("reading the answers"),
        }
    }
    let stop = stop_on_signals()?;
    run_load(cfg, stop, args.interval, metrics, args.flows)
}

/// Ctrl-C once: stop sending, verify what is in flight, report (exit code 130). Twice: exit at
/// once, with 130 and no report. The flag returned is raised at the first signal.
fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    {
        let on_signal = Arc::clone(&stop);
        // The flag first, and notices that never wait for standard error: a signal is
        // answered even when nobody reads it.
        crate::signals::on_interrupt(
            move |name| {
                on_signal.store(true, Ordering::Relaxed);
                notice(&format!(
                    "ringport: {name}: stopping, verifying what is in flight (again to exit at \
                     once)"
                ));
            },
            clear_live_line,
        )?;
    }
    // Ctrl-C and Ctrl-Break, through a console control handler.
    #[cfg(windows)]
    {
        let on_ctrl = Arc::clone(&stop);
        ringport_port::os::on_console_ctrl(move || {
            if on_ctrl.swap(true, std::sync::atomic::Ordering::SeqCst) {
                clear_live_line();
                eprintln!("ringport: Ctrl-C again: exiting at once");
                std::process::exit(i32::from(crate::exit::INTERRUPTED));
            }
            notice(
                "ringport: Ctrl-C: stopping, verifying what is in flight (again to exit at once)",
            );
        })
        .context("cannot install the console control handler")?;
    }
    Ok(stop)
}

/// Runs the load and reports (after the flags and the questions).
fn run_load(
    cfg: StressConfig,
    stop: Arc<AtomicBool>,
    interval: Option<f64>,
    metrics: Option<ringport_metrics::Endpoint>,
    flows: Option<FlowsShown>,
) -> anyhow::Result<ExitCode> {
    let progress = Arc::new(Progress::default());
    let done = Arc::new(AtomicBool::new(false));
    if let Some(endpoint) = metrics {
        let registry =
            ringport_metrics::load::registry(&cfg, Arc::clone(&progress), Arc::clone(&done));
        eprintln!("{}", crate::metrics::serve(endpoint, registry)?);
    }
    let how = Live::choose(interval, std::io::stderr().is_terminal(), cfg.verbose);
    let live = spawn_progress(
        how,
        Arc::clone(&progress),
        Arc::clone(&done),
        cfg.own_connections().len(),
        cfg.warmup,
    );
    let outcome = engine::run_with(
        &cfg,
        &RunOptions {
            progress: Some(progress),
            stop: Some(stop),
        },
    );
    done.store(true, Ordering::Relaxed);
    if let Some(live) = live {
        let _ = live.join();
    }
    let outcome = outcome?;
    let report = render(&outcome.report, flows);
    if matches!(cfg.json, Some(OutputTarget::Stdout)) {
        eprint!("{report}");
    } else {
        print!("{report}");
    }
    outcome.write_outputs(&cfg)?;
    Ok(ExitCode::from(
        u8::try_from(outcome.report.exit_code()).unwrap_or(1),
    ))
}

/// `--find-max-rate`: the search, its live table on standard error, the curve and the answer
/// on standard output (standard error with `--json -`), `--json` and `--svg`, and the exit
/// code ([`SearchReport::exit_code`]: 0 with an answer, 4 without, 1 on wrong bytes).
fn run_search(args: &StressArgs, mut cfg: StressConfig) -> anyhow::Result<ExitCode> {
    if cfg.count.is_some() {
        return Err(usage(
            "--count does not apply to --find-max-rate: --duration is each probe's window",
        ));
    }
    if cfg.rate_ramp.is_some() || cfg.connections_ramp.is_some() {
        return Err(usage("--find-max-rate cannot be combined with a ramp"));
    }
    // Each probe is a run of its own: there is no one run's interval log to write.
    for (flag, given) in [
        ("--hdr-log", cfg.hdr_log.is_some()),
        ("--csv", cfg.csv.is_some()),
    ] {
        if given {
            return Err(usage(format!(
                "{flag} does not apply to --find-max-rate (each probe is a run of its own): \
                 --json and --svg hold the curve; run `stress --rate R {flag} F` at the answer"
            )));
        }
    }
    let start_rate = cfg.rate.take().unwrap_or(1000.0);
    if cfg.duration.is_none() {
        cfg.duration = Some(search::DEFAULT_WINDOW);
    }
    if args.warmup.is_none() {
        cfg.warmup = search::DEFAULT_WARMUP;
    }
    let json = cfg.json.take();
    let html = cfg.html.take();
    let targets: Vec<LatencyTarget> = [
        (Quantile::P50, args.p50),
        (Quantile::P99, args.p99),
        (Quantile::P999, args.p999),
    ]
    .into_iter()
    .filter_map(|(quantile, d)| {
        d.map(|d| LatencyTarget {
            quantile,
            limit_us: u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
        })
    })
    .collect();
    let search_cfg = SearchConfig {
        base: cfg,
        targets,
        start_rate,
        max_rate: args.max_rate,
        min_rate: args.min_rate,
        precision: args.precision / 100.0,
        repeat: args.repeat,
    };
    search_cfg.validate().usage()?;
    // A search takes minutes: find a bad output path before it, not after.
    let json_path = match &json {
        Some(OutputTarget::Path(p)) => Some(("--json", p.as_path())),
        _ => None,
    };
    let named: Vec<(&str, &std::path::Path)> = json_path
        .into_iter()
        .chain(args.svg.as_deref().map(|p| ("--svg", p)))
        .chain(html.as_deref().map(|p| ("--html", p)))
        .collect();
    outputs::distinct(&named).usage()?;
    for (flag, path) in named {
        outputs::writable(path)
            .with_context(|| format!("cannot write {flag} to {}", path.display()))?;
    }
    // The machine as it was when the search began, for the chart's footer.
    let env = args
        .svg
        .as_ref()
        .map(|_| ringport_bench::results::Environment::capture(None, None));
    let stop = stop_on_signals()?;
    let to_stdout = matches!(json, Some(OutputTarget::Stdout));
    eprintln!("  {}", SearchReport::table_header());
    let report = search::search(
        &search_cfg,
        &RunOptions {
            progress: None,
            stop: Some(stop),
        },
        |p| eprintln!("  {}", SearchReport::table_row(p)),
    )?;
    if to_stdout {
        eprint!("{}", report.render());
    } else {
        print!("{}", report.render());
    }
    match &json {
        Some(OutputTarget::Stdout) => print!("{}", report.to_json()),
        Some(OutputTarget::Path(p)) => std::fs::write(p, report.to_json())
            .with_context(|| format!("writing --json to {}", p.display()))?,
        None => {}
    }
    if let Some(path) = &html {
        Html.write_to(&report, &OutputTarget::Path(path.clone()))
            .with_context(|| format!("writing --html to {}", path.display()))?;
    }
    if let (Some(path), Some(env)) = (&args.svg, env) {
        let command: Vec<String> = std::env::args().skip(1).collect();
        let footer = format!(
            "{}, {} ({} CPUs, Linux {}, load average {:.1} at the start)\nringport {}",
            env.date,
            env.cpu_model,
            env.cpus,
            env.kernel,
            env.load_average,
            command.join(" ")
        );
        let svg = ringport_bench::export::curve::svg(&report, &footer)
            .map_err(|e| anyhow::anyhow!("drawing --svg: {e}"))?;
        std::fs::write(path, svg)
            .with_context(|| format!("writing --svg to {}", path.display()))?;
    }
    Ok(ExitCode::from(report.exit_code()))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    /// `--p99 2` silently meant two seconds; a unit is required.
    #[test]
    fn durations_need_a_unit() {
        let e = parse_duration("2").unwrap_err();
        assert!(e.contains("`2` has no unit: write 2ms, 2us or 2s"), "{e}");
        assert!(parse_duration("0.5").is_err());
        assert_eq!(parse_duration("2ms"), Ok(Duration::from_millis(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
    }
}
