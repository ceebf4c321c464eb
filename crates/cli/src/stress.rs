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
use ringport_stress::config::{self, OutputTarget, StressConfig};
use ringport_stress::engine::{self, Progress, RunOptions};
use ringport_stress::segment::{parse_start_at, Segment};

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
    #[arg(long, help = format!(
        "Send messages of this many seeded random bytes (all byte values) instead of text; with \
         --stream, the chunk size (default {})",
        config::DEFAULT_STREAM_CHUNK
    ))]
    size: Option<usize>,
    #[arg(long, help = format!(
        "Connections in total, spread over the client threads [default: {}]",
        config::DEFAULT_CONNECTIONS
    ))]
    connections: Option<usize>,
    /// Connections opened per second at most.
    #[arg(long, default_value_t = config::DEFAULT_CONNECT_RATE)]
    connect_rate: f64,
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
    #[arg(long)]
    rate: Option<f64>,
    /// Messages in flight per connection (closed loop: 1 waits for each echo before the next).
    #[arg(long, default_value_t = StressConfig::default().pipeline)]
    pipeline: usize,
    /// Stream: each connection writes continuously, in chunks of --size bytes,
    /// with at most --window bytes not yet echoed, while reading the echo back and verifying
    /// every byte; reports echoed Gbit/s and MiB/s, in total and per connection.
    #[arg(long)]
    stream: bool,
    #[arg(long, value_name = "BYTES", help = format!(
        "With --stream: bytes sent and not yet echoed per connection, at most (whole chunks) \
         [default: {}]",
        config::DEFAULT_WINDOW
    ))]
    window: Option<usize>,
    /// Seconds of load before measuring, excluded from every figure.
    #[arg(long, default_value_t = secs(StressConfig::default().warmup), value_parser = parse_secs)]
    warmup: f64,
    /// Client threads, each driving many connections on its own completion port [default: the
    /// number of CPUs].
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds to wait for an echo or a connect before counting a timeout.
    #[arg(long, default_value_t = secs(config::DEFAULT_TIMEOUT), value_parser = parse_secs)]
    timeout: f64,
    /// Local addresses to spread connections over, round-robin by connection number: IP or
    /// FIRST-LAST (a range, e.g. 127.0.0.2-127.0.0.254); repeat, or separate with commas. On
    /// loopback, 127.0.0.x addresses are picked automatically when one address cannot hold
    /// every connection.
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
    /// sends up to the timer slack (about 50 us) late, which the latency then includes.
    #[arg(long, value_name = "US")]
    spin_us: Option<u64>,
    /// The client's completion-port mechanism: auto, uring or epoll.
    #[arg(long, default_value_t = StressConfig::default().backend)]
    backend: BackendChoice,
    /// Request/response mode: `--request*` and `--expect*`, in command-line order.
    #[command(flatten)]
    requests: RequestArgs,
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

impl StressArgs {
    pub(crate) fn config(&self) -> anyhow::Result<StressConfig> {
        let mut cfg = StressConfig::default();
        (cfg.host, cfg.port) = crate::addr::parse_target(&self.target)?;
        cfg.message = self.message.clone();
        cfg.size = self.size;
        if let Some(n) = self.connections {
            cfg.connections = n;
        }
        cfg.connect_rate = self.connect_rate;
        cfg.count = self.count;
        cfg.duration = self.duration.map(Duration::from_secs_f64);
        cfg.rate = self.rate;
        cfg.pipeline = self.pipeline;
        cfg.stream = self.stream;
        cfg.window = self.window;
        cfg.warmup = Duration::from_secs_f64(self.warmup);
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
        cfg.verbose = self.verbose;
        cfg.seed = self.seed;
        cfg.backend = self.backend;
        cfg.segment = self.segment;
        cfg.start_at = self.start_at;
        cfg.spin = self.spin_us.map(Duration::from_micros);
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
            let phase =
                ringport_stress::live::Phase::at(now, progress.load_start.get().copied(), warmup);
            let line =
                ringport_stress::live::line(&previous, &sample, now - last, phase, connections);
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
            bar.finish_and_clear();
        }
    }))
}

/// Runs the load and reports.
pub fn run(args: StressArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = args.config()?;
    // Request/response flags that do not pair or combine are a usage error: exit code 2.
    let requests = ringport_stress::request::pair(args.requests.items.clone()).and_then(|r| {
        cfg.requests = r;
        cfg.validate_requests()
    });
    if let Err(e) = requests {
        eprintln!("ringport: error: {e}");
        return Ok(ExitCode::from(2));
    }
    if cfg.is_interactive_candidate() && std::io::stdin().is_terminal() {
        // The questions go to the terminal (standard error), never into the results.
        cfg.ask(
            std::io::stdin().lock(),
            std::io::stderr(),
            args.connections.is_none(),
        )
        .context("reading the answers")?;
    }
    // Ctrl-C once: stop sending, verify what is in flight, report (exit code 130). Twice: exit
    // at once, with 130 and no report.
    let stop = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    {
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])
        .context("cannot install signal handlers")?;
        let on_signal = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("ringport-signals".into())
            .spawn(move || {
                for (n, sig) in signals.forever().enumerate() {
                    let name = if sig == signal_hook::consts::SIGINT {
                        "SIGINT"
                    } else {
                        "SIGTERM"
                    };
                    if n == 0 {
                        eprintln!(
                            "ringport: {name}: stopping, verifying what is in flight (again to exit \
                             at once)"
                        );
                        on_signal.store(true, Ordering::Relaxed);
                    } else {
                        eprintln!("ringport: {name} again: exiting at once");
                        std::process::exit(130);
                    }
                }
            })
            .context("cannot start the signal thread")?;
    }
    // Ctrl-C and Ctrl-Break, through a console control handler.
    #[cfg(windows)]
    {
        let on_ctrl = Arc::clone(&stop);
        ringport_port::os::on_console_ctrl(move || {
            if on_ctrl.swap(true, std::sync::atomic::Ordering::SeqCst) {
                std::process::exit(130);
            }
        })
        .context("cannot install the console control handler")?;
    }
    let progress = Arc::new(Progress::default());
    let done = Arc::new(AtomicBool::new(false));
    let how = Live::choose(args.interval, std::io::stderr().is_terminal(), cfg.verbose);
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
    let report = outcome.report.render();
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
