//! `ringport serve`: flags, signals and the key press, the `listening on` line and the ready
//! line (`--ready-json`), the summary.

use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use ringport_port::{BackendChoice, PortConfig};
use ringport_server::{Live, Model, ServeConfig, Shutdown};

use crate::secs::{parse_secs, secs, secs_or_off};
use crate::stderr::note;

/// Flags of `ringport serve`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("udp_served").args(["udp", "udp_only"])))]
pub struct ServeArgs {
    /// Address to listen on, or a host name (IPv4 first). Serving other hosts is an explicit
    /// choice (e.g. 0.0.0.0).
    #[arg(long, default_value_t = ServeConfig::default().bind, value_parser = crate::addr::parse_bind)]
    bind: IpAddr,
    /// TCP port (the article's 3333); 0 picks a free port, printed in the `listening on` line.
    #[arg(long, default_value_t = ServeConfig::default().port)]
    port: u16,
    /// The server design: `completion` (worker threads on completion ports), `threaded` (the
    /// article's thread per client, on blocking sockets), `single` (the article's one client at
    /// a time; the others wait in the backlog).
    #[arg(long, default_value_t = ServeConfig::default().model, value_parser = model_parser())]
    model: Model,
    /// Worker threads of the completion model, each with its own completion port [default: the
    /// number of CPUs]. On Windows the workers share one listener: worker 0 accepts and hands
    /// the connections to the workers in turn.
    ///
    /// The article used 2 x CPUs because its workers could block (console output under a lock,
    /// synchronous calls) and a spare thread kept the CPU busy meanwhile. ringport's workers never
    /// block outside the one wait on their port, so one per CPU keeps every CPU busy without
    /// extra context switches.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    workers: Option<u32>,
    // The defaults are the library's (its descriptor reserve, the threaded model's cap).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..),
        help = max_connections_help(false), long_help = max_connections_help(true))]
    max_connections: Option<u32>,
    // The default is the library's, shown in the help; absent, loopback peers are exempt.
    #[arg(long, help = format!(
        "The most connections open at once from one IP address; a connection beyond it is \
         accepted and closed at once, and counted. 0: no limit [default: {}, loopback peers \
         exempt; given explicitly, it applies to loopback peers too]",
        ServeConfig::default().max_per_ip
    ))]
    max_per_ip: Option<u32>,
    /// Seconds a connection may wait for its peer's next bytes before it is closed. 0: never.
    #[arg(long, default_value_t = secs_or_off(ServeConfig::default().idle_timeout), value_parser = parse_secs)]
    idle_timeout: f64,
    /// Seconds an echo may wait for a peer that does not read before the connection is closed
    /// and its buffer freed. 0: never.
    #[arg(long, default_value_t = secs_or_off(ServeConfig::default().write_timeout), value_parser = parse_secs)]
    write_timeout: f64,
    /// Print a one-line summary on stderr every SECS seconds: connections open, accepts, bytes
    /// in and out, completions per wait, errors by kind. 0: none (at least 0.1 otherwise).
    #[arg(long, value_name = "SECS", value_parser = parse_period)]
    stats: Option<f64>,
    /// Seconds a graceful shutdown may spend echoing what was already received before closing
    /// the remaining connections.
    #[arg(long, default_value_t = secs(ServeConfig::default().drain_timeout), value_parser = parse_secs)]
    drain_timeout: f64,
    /// Each connection's buffer, in bytes: the bound on the server's memory per connection.
    ///
    /// The threaded and single models read into one buffer of this size and echo it before
    /// reading again. The completion model takes pool buffers of this size (up to 16 KiB) only
    /// when bytes arrive, and holds at most this plus one pool buffer of received bytes not yet
    /// echoed, so a stream's next bytes arrive while the last are sent.
    #[arg(long, value_name = "BYTES", default_value_t = ServeConfig::default().buffer_size as u32, value_parser = crate::bytes::parse_buffer_size)]
    buffer_size: u32,
    /// The completion port's mechanism: `auto` (Linux: io_uring, or epoll with one warning naming
    /// why io_uring cannot be used; Windows: iocp), `uring` (fail if it cannot be used), `epoll`
    /// (Linux), or `iocp` (Windows' I/O completion port).
    /// [default: auto]
    #[arg(long)]
    backend: Option<BackendChoice>,
    /// Print each received chunk on stderr with its worker number, lossy UTF-8 and truncated, like the
    /// article's console. Off by default: it costs throughput.
    #[arg(long)]
    log_messages: bool,
    /// Share the port with other `ringport serve --reuse-port` processes (SO_REUSEPORT), for
    /// running several server processes on one port, each under its own open-file limit; the
    /// kernel spreads new connections over them.
    ///
    /// Off by default: a port already in use is reported as such. A plain `serve` still reports
    /// a port held by `--reuse-port` servers as in use; `--reuse-port` joins any SO_REUSEPORT
    /// group on the port (including a plain completion server's workers), but not a plain server
    /// with a single listener.
    #[arg(long)]
    reuse_port: bool,
    /// Listen with Multipath TCP (Linux 5.6+, sysctl net.mptcp.enabled=1): a client that speaks
    /// MPTCP gets it, and with it the extra subflows the path managers of both hosts open (`ip
    /// mptcp endpoint`); any other client gets plain TCP from the same listener. TCP only: UDP
    /// is not affected.
    #[arg(long)]
    mptcp: bool,
    /// Read a PROXY protocol header (HAProxy's, version 1 or 2, as its `send-proxy` and
    /// `send-proxy-v2` send it) before each connection's bytes: the client address it gives is
    /// the connection's for --max-per-ip and the logs. Every connection must send one: without
    /// a valid header within --proxy-protocol-timeout it is closed, counted on the summary's
    /// `proxy:` line. Only behind a proxy you trust: a client that reaches the server directly
    /// could claim any address. TCP only (plaintext, TLS and WebSocket alike: the header comes
    /// first).
    #[arg(long)]
    proxy_protocol: bool,
    /// Seconds a connection may take to send its whole PROXY header; more than 0.
    #[arg(long, value_name = "SECS", default_value_t = secs(ringport_server::proxy::DEFAULT_TIMEOUT), value_parser = crate::secs::parse_positive_secs, requires = "proxy_protocol")]
    proxy_protocol_timeout: f64,
    /// Accept the plaintext echo's connections as io_uring direct descriptors (`on`) or as
    /// ordinary descriptors (`off`): a direct descriptor is a slot of the worker's ring's own
    /// file table, so the kernel looks no descriptor up (nor counts references to its file) per
    /// receive and send, and the process's descriptor table does not grow with connections.
    ///
    /// Only where the kernel allows it (Linux 5.19+, a table within the open-file limit; else
    /// ordinary descriptors, said in the log) and only for the completion model's plaintext
    /// echo on io_uring: TLS and WebSocket connections, epoll and IOCP use descriptors.
    /// TCP_NODELAY is then set on the listener (accepted sockets inherit it). The ready line
    /// says "direct_fds":true when every worker accepts direct descriptors. Where the per-address
    /// cap may count a client (--max-per-ip given, or the default cap when bound to a
    /// non-loopback address), accepts are single ones, whose completion carries the peer's
    /// address.
    #[arg(long, value_name = "on|off", default_value = "off", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    direct_fds: bool,
    /// The listen backlog: connections the kernel completes and queues before the server accepts
    /// them (capped by net.core.somaxconn). Beyond it, new connections wait for the queue to
    /// drain (their handshake is retried) or are refused. Per listener: the completion model has
    /// one per worker.
    #[arg(long, default_value_t = ServeConfig::default().backlog, value_parser = clap::value_parser!(i32).range(1..=1 << 20))]
    backlog: i32,
    /// Once the server accepts connections, write what it is as one line of JSON to PATH, for
    /// scripts and supervisors that should not read the log: its address, model, backend and
    /// workers. With `-`, on standard output, right after the `listening on` line.
    ///
    /// The object: {"addr":"127.0.0.1:3333","model":"completion","backend":"io_uring",
    /// "backend_detail":"io_uring (setup flags: ...)","workers":4,"pid":4242,"tls":false};
    /// `backend` and `workers` are null for the threaded and single models; `tls` is true with
    /// --tls-cert or --tls-self-signed; "udp":true is added with --udp and --udp-only,
    /// "websocket":true with --websocket. The file
    /// is written beside PATH
    /// and renamed to it, so a reader never sees half of it, before the `listening on` line is
    /// printed, and removed when the graceful shutdown starts (the server no longer accepts).
    #[arg(long, value_name = "PATH")]
    ready_json: Option<PathBuf>,
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::parse_addr, help = crate::metrics::HELP)]
    metrics: Option<std::net::SocketAddr>,
    #[command(flatten)]
    tls: crate::serve_tls::TlsArgs,
    #[command(flatten)]
    udp: crate::serve_udp::UdpArgs,
    #[command(flatten)]
    ws: crate::serve_ws::WsArgs,
}

/// The help of `--max-connections`, its defaults taken from the library; `long` adds what
/// happens at the limit.
fn max_connections_help(long: bool) -> String {
    let mut help = format!(
        "The most connections open at once [default: the open-file limit (ulimit -n) minus a \
         reserve of {} + {} per worker; the threaded model at most {}]",
        ringport_server::config::FD_RESERVE_BASE,
        ringport_server::config::FD_RESERVE_PER_WORKER,
        ringport_server::threaded::DEFAULT_MAX
    );
    if long {
        help.push_str(
            "\n\nThe completion model stops accepting when it is reached (new clients wait in \
             the listen backlog, nothing spins) and takes the next client when a connection \
             closes. The threaded model closes a client beyond it (or one for which no thread \
             can be created) at once. Both count it and warn once per episode.",
        );
    }
    help
}

/// Accepts exactly [`Model::NAMES`], which `--help` and the error for another name list.
fn model_parser() -> impl clap::builder::TypedValueParser<Value = Model> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Model::NAMES)
        .map(|name| name.parse::<Model>().unwrap_or(Model::Completion))
}

/// `--stats`: 0 (none), or at least 0.1 seconds.
fn parse_period(s: &str) -> Result<f64, String> {
    let v = parse_secs(s)?;
    if v > 0.0 && v < 0.1 {
        return Err(format!("`{s}` is too short (0.1 seconds at least)"));
    }
    Ok(v)
}

/// `on` or `off`.
fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("`{s}` is neither `on` nor `off`")),
    }
}

/// `Some(secs)`, or `None` for 0 (off).
fn timeout(secs: f64) -> Option<Duration> {
    (secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

impl ServeArgs {
    pub(crate) fn config(&self) -> ServeConfig {
        let mut cfg = ServeConfig {
            bind: self.bind,
            port: self.port,
            drain_timeout: Duration::from_secs_f64(self.drain_timeout),
            buffer_size: self.buffer_size as usize,
            log_messages: self.log_messages,
            model: self.model,
            port_config: PortConfig {
                backend: self
                    .backend
                    .unwrap_or(ServeConfig::default().port_config.backend),
                ..PortConfig::default()
            },
            max_connections: self.max_connections.map_or(0, |n| n as usize),
            max_per_ip: self
                .max_per_ip
                .map_or(ServeConfig::default().max_per_ip, |n| n as usize),
            max_per_ip_loopback: self.max_per_ip.is_some(),
            idle_timeout: timeout(self.idle_timeout),
            write_timeout: timeout(self.write_timeout),
            reuse_port: self.reuse_port,
            mptcp: self.mptcp,
            direct_fds: self.direct_fds,
            proxy_protocol: self
                .proxy_protocol
                .then(|| Duration::from_secs_f64(self.proxy_protocol_timeout)),
            backlog: self.backlog,
            udp: self.udp.config(),
            websocket: self.ws.config(),
            ..ServeConfig::default()
        };
        if let Some(w) = self.workers {
            cfg.workers = w as usize;
        }
        cfg
    }
}

/// Runs the server until it has shut down.
/// SIGINT and SIGTERM start the graceful shutdown; a second one exits at once (130). Their
/// notices never wait for standard error ([`crate::stderr`]): one nobody reads cannot keep a
/// signal from being answered.
#[cfg(unix)]
fn install_signals(shutdown: &Shutdown) -> anyhow::Result<()> {
    let on_signal = shutdown.clone();
    crate::signals::on_interrupt(
        move |name| {
            note!("ringport: {name}: shutting down gracefully (again to exit at once)");
            on_signal.trigger();
        },
        || {},
    )
}

/// Ctrl-C and Ctrl-Break (and closing the console) start the graceful shutdown, through a console
/// control handler; a second one exits at once (130).
#[cfg(windows)]
fn install_signals(shutdown: &Shutdown) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let on_ctrl = shutdown.clone();
    let seen = AtomicUsize::new(0);
    ringport_port::os::on_console_ctrl(move || {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            note!("ringport: Ctrl-C: shutting down gracefully (again to exit at once)");
            on_ctrl.trigger();
        } else {
            note!("ringport: Ctrl-C again: exiting at once");
            crate::stderr::flush();
            std::process::exit(130);
        }
    })
    .context("cannot install the console control handler")?;
    Ok(())
}

/// Flags that contradict each other are refused (a usage error); flags the chosen model does
/// not use are named in one log line each, so that nothing asked for is dropped unsaid.
fn check_combinations(args: &ServeArgs) -> anyhow::Result<()> {
    if args.udp.only() && (args.tls.given() || args.ws.on() || args.proxy_protocol) {
        return Err(crate::exit::usage(
            "--udp-only serves no TCP: TLS, --websocket and --proxy-protocol apply to TCP \
             connections (add them with --udp instead)",
        ));
    }
    if args.model != Model::Completion && !args.udp.only() {
        let name = args.model.name();
        let unused = [
            (args.workers.is_some(), "--workers"),
            (args.direct_fds, "--direct-fds on"),
            // The UDP echo runs on a completion port whatever the model.
            (
                args.backend.is_some() && args.udp.config().is_none(),
                "--backend",
            ),
        ];
        for (_, flag) in unused.iter().filter(|(given, _)| *given) {
            tracing::info!(
                "{flag} applies to the completion model: --model {name} does not use it"
            );
        }
    }
    Ok(())
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    check_combinations(&args)?;
    let mut cfg = args.config();
    // A certificate or key that does not do is a usage error, reported before anything starts.
    match args.tls.load(cfg.bind) {
        Ok(tls) => cfg.tls = tls,
        Err(e) => {
            eprintln!("ringport: error: {e}");
            return Ok(ExitCode::from(2));
        }
    }
    let args_stats = args.stats;
    let shutdown = Shutdown::new();

    // An output path that cannot be written stops the server before it listens (a server that
    // listened and then failed would leave its port held a moment after exiting).
    if let Some(path) = args.ready_json.as_ref().filter(|p| p.as_os_str() != "-") {
        ringport_stress::config::outputs::writable(path).map_err(|e| {
            crate::exit::usage(format!("cannot write --ready-json {}: {e}", path.display()))
        })?;
    }

    // Signals first, so that one arriving right after the `listening on` line is not lost.
    install_signals(&shutdown)?;

    // Bound before the server starts, so a taken address stops it before it accepts.
    let metrics = args.metrics.map(crate::metrics::bind).transpose()?;
    let running = ringport_server::start(&cfg, shutdown.clone())?;
    let metrics = match metrics {
        Some(endpoint) => {
            let info = ringport_metrics::server::ServerInfo::of(running.ready());
            let registry = ringport_metrics::server::registry(running.live(), info);
            Some(crate::metrics::serve(endpoint, registry)?)
        }
        None => None,
    };
    let ready = running.ready().to_json();
    let (ready_on_stdout, ready_file) = match args.ready_json {
        Some(path) if path.as_os_str() == "-" => (true, None),
        path => (false, path),
    };
    if let Some(path) = &ready_file {
        write_atomically(path, &ready)
            .with_context(|| format!("cannot write --ready-json {}", path.display()))?;
        let path = path.clone();
        shutdown.on_trigger(move || {
            let _ = std::fs::remove_file(&path);
        });
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", running.local_addr())?;
        if ready_on_stdout {
            writeln!(out, "{ready}")?;
        }
        if let Some(line) = &metrics {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
    }

    // On Windows a pipe on standard input is read too: with no SIGTERM there, `q` and a newline
    // written to it is how a supervisor without a console asks for the graceful shutdown.
    let stdin_terminal = std::io::stdin().is_terminal();
    if stdin_terminal || cfg!(windows) {
        // Not from the background (`serve &`): there the key cannot be read until `fg`.
        if stdin_terminal && in_foreground() {
            eprintln!("ringport: press q then Enter to stop");
        }
        let on_key = shutdown.clone();
        std::thread::Builder::new()
            .name("ringport-stdin".into())
            .spawn(move || watch_keys(&on_key))
            .context("cannot start the stdin thread")?;
    }

    let stats_done = Arc::new(AtomicBool::new(false));
    if let Some(secs) = args_stats.filter(|&s| s > 0.0) {
        let live = running.live();
        let done = Arc::clone(&stats_done);
        std::thread::Builder::new()
            .name("ringport-stats".into())
            .spawn(move || print_stats(&live, Duration::from_secs_f64(secs), &done))
            .context("cannot start the stats thread")?;
    }

    let summary = running.wait();
    stats_done.store(true, Ordering::SeqCst);
    // The trigger removed it when the shutdown began, unless the server finished first: the
    // trigger runs its callbacks in order, and the one that wakes the server comes before ours.
    if let Some(path) = &ready_file {
        let _ = std::fs::remove_file(path);
    }
    let summary = summary?;
    print_summary(summary.to_string());
    Ok(ExitCode::SUCCESS)
}

/// Whether this process is in its terminal's foreground process group (always on Windows, which
/// has no background process groups).
fn in_foreground() -> bool {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        ringport_os::term::is_foreground(std::io::stdin().as_fd())
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// How long the summary may wait for standard output to take it.
const SUMMARY_WAIT: Duration = Duration::from_secs(2);

/// Prints the summary on standard output, waiting for it at most [`SUMMARY_WAIT`]. Standard
/// output that broke or stalled after start (its reader gone, or not reading) is not a
/// failure of the server, which stopped normally: the summary is lost, and stderr says so.
fn print_summary(summary: String) {
    let (written, outcome) = std::sync::mpsc::channel();
    let writer = std::thread::Builder::new()
        .name("ringport-summary".into())
        .spawn(move || {
            let mut out = std::io::stdout().lock();
            let result = out.write_all(summary.as_bytes()).and_then(|()| out.flush());
            let _ = written.send(result);
        });
    let why = match writer.map(|_| outcome.recv_timeout(SUMMARY_WAIT)) {
        Ok(Ok(Ok(()))) => return,
        Ok(Ok(Err(e))) => e.to_string(),
        Ok(Err(_)) => format!("nothing read it for {} s", SUMMARY_WAIT.as_secs()),
        Err(e) => format!("cannot start a thread to write it: {e}"),
    };
    note!("ringport: the summary could not be written on standard output ({why}); the server stopped normally");
}

/// Writes `line` and a newline to a new file beside `path`, then renames it to `path`: a reader
/// finds no file or the whole line, never a part of it.
fn write_atomically(path: &Path, line: &str) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(name);
    let written =
        std::fs::write(&tmp, format!("{line}\n")).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Triggers `shutdown` when `q` then Enter is typed on the console that is standard input, or
/// a `q` line comes through a pipe on it. Windows has no background process groups to guard
/// against: lines are read as they come. Returns at the end of input or when it cannot be read.
#[cfg(windows)]
fn watch_keys(shutdown: &Shutdown) {
    use std::io::BufRead;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { return };
        if line.trim().eq_ignore_ascii_case("q") {
            shutdown.trigger();
            return;
        }
        if std::io::stdin().is_terminal() {
            eprintln!("ringport: press q then Enter to stop");
        }
    }
}

/// Triggers `shutdown` when `q` then Enter is typed on the terminal that is standard input.
///
/// The terminal is read only while this process is in its foreground process group: a read from
/// the background would stop the whole server (`SIGTTIN`, as after `ringport serve &`), so in the
/// background it only looks again now and then, and takes keys again once brought to the
/// foreground (`fg`). Ctrl-D (a read of 0 bytes) does not end the terminal: `q` still works
/// after it. Returns when the terminal hangs up or cannot be read.
#[cfg(unix)]
fn watch_keys(shutdown: &Shutdown) {
    use ringport_os::term::{is_foreground, wait_readable, Readiness};
    use std::os::fd::AsFd;
    const LOOK: Duration = Duration::from_millis(200);
    // A file on a duplicate of descriptor 0, read with plain read(2): `Stdin`'s own buffer could
    // keep bytes that polling the descriptor then never reports.
    let Ok(mut stdin) = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
    else {
        return;
    };
    let mut line = Vec::new();
    loop {
        if !is_foreground(stdin.as_fd()) {
            std::thread::sleep(LOOK);
            continue;
        }
        match wait_readable(stdin.as_fd(), LOOK) {
            Ok(Readiness::TimedOut) => continue,
            Ok(Readiness::HungUp) | Err(_) => return,
            Ok(Readiness::Readable) => {}
        }
        // Moved to the background between the check and the poll: do not read.
        if !is_foreground(stdin.as_fd()) {
            continue;
        }
        let mut buf = [0u8; 256];
        // One read(2) of what the terminal has (a line, in canonical mode).
        match std::io::Read::read(&mut stdin, &mut buf) {
            Ok(0) => {
                line.clear();
                eprintln!("ringport: end of input ignored; press q then Enter to stop");
            }
            Ok(n) => {
                for &b in &buf[..n] {
                    if b != b'\n' {
                        line.push(b);
                        continue;
                    }
                    let text = String::from_utf8_lossy(&line);
                    if text.trim().eq_ignore_ascii_case("q") {
                        shutdown.trigger();
                        return;
                    }
                    eprintln!("ringport: press q then Enter to stop");
                    line.clear();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EIO: the terminal went away, or this process lost it.
            Err(_) => return,
        }
    }
}

/// Prints one `stats:` line on stderr every `every` until `done`.
fn print_stats(live: &Live, every: Duration, done: &AtomicBool) {
    let mut prev = live.snapshot();
    let mut at = Instant::now();
    loop {
        std::thread::sleep(every);
        if done.load(Ordering::SeqCst) {
            return;
        }
        let now = live.snapshot();
        let elapsed = at.elapsed();
        at = Instant::now();
        note!("{}", now.line(&prev, elapsed));
        prev = now;
    }
}

#[cfg(test)]
mod tests {
    /// `--stats 0` is none, as every SECS flag takes 0; a period under 0.1 s is refused.
    #[test]
    fn stats_take_zero_as_none() {
        assert_eq!(super::parse_period("0"), Ok(0.0));
        assert_eq!(super::parse_period("0.5"), Ok(0.5));
        assert!(super::parse_period("0.05")
            .unwrap_err()
            .contains("too short"));
    }
}
