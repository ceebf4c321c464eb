//! Every `ringport stress` option as plain data ([`StressConfig`]), checked
//! ([`StressConfig::validate`]) and resolved ([`StressConfig::payload`], [`StressConfig::stop`],
//! [`StressConfig::workload`]) in one `impl`.

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ringport_port::BackendChoice;

pub use crate::error::ConfigError;
pub use ringport_report::export::OutputTarget;

use super::request::RequestSpec;
use crate::plan::ramp::{Ramp, Step};
use crate::plan::segment::Segment;
use crate::protocol::payload::PayloadSpec;
use crate::protocol::script::Script;

/// Default `--connections`.
pub const DEFAULT_CONNECTIONS: usize = 50;
/// Default `--count` when neither `--count` nor `--duration` is given.
pub const DEFAULT_COUNT: u64 = 1000;
/// Default message text when neither `--message` nor `--size` is given.
pub const DEFAULT_MESSAGE: &str = "Hello from ringport";
/// Default `--connect-rate`, connections opened per second.
pub const DEFAULT_CONNECT_RATE: f64 = 10_000.0;
/// Default `--timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `--spin-us` accepted.
pub const MAX_SPIN: Duration = Duration::from_millis(10);
/// Default `--port` (the article's).
pub const DEFAULT_PORT: u16 = 3333;
/// Default chunk size of `--stream` when `--size` is not given (64 KiB).
pub const DEFAULT_STREAM_CHUNK: usize = 64 << 10;
/// Default `--window` of `--stream`: bytes in flight per connection (256 KiB).
pub const DEFAULT_WINDOW: usize = 256 << 10;
pub use crate::protocol::payload::MAX_MESSAGE_SIZE;
/// Largest amount of payload kept in flight over all connections (1 GiB): each in-flight byte is
/// held twice (send buffer and verifier copy).
pub const MAX_BYTES_IN_FLIGHT: u64 = 1 << 30;

/// When the measured phase ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many verified messages on every connection.
    Count(u64),
    /// After this much time (warm-up excluded).
    Duration(Duration),
}

/// How sends are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Workload {
    /// Closed loop: up to `pipeline` messages in flight per connection; the next goes as soon as
    /// the oldest has been echoed (pipeline 1 is send, wait, send).
    Closed {
        /// Messages in flight per connection.
        pipeline: usize,
    },
    /// Open loop: `rate` messages per second in total, on a fixed schedule, with up to
    /// `pipeline` in flight per connection.
    Rate {
        /// Messages per second over all connections.
        rate: f64,
        /// Messages in flight per connection at most.
        pipeline: usize,
    },
    /// A continuous stream (`--stream`): each connection writes chunks of `--size` bytes as
    /// fast as the window allows, with at most `window` bytes sent and not yet echoed (rounded
    /// down to whole chunks), while reading the echo back.
    Stream {
        /// Bytes in flight per connection at most.
        window: usize,
    },
}

/// Every option of `ringport stress`, as plain data. Build it with [`StressConfig::default`] and
/// set fields, then call [`StressConfig::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct StressConfig {
    /// Server host name or address (default `127.0.0.1`).
    pub host: String,
    /// Server port (default 3333).
    pub port: u16,
    /// `--message TEXT`.
    pub message: Option<String>,
    /// `--size BYTES`.
    pub size: Option<usize>,
    /// `--connections N`: connections in total (default 50).
    pub connections: usize,
    /// `--connect-rate`: connections opened per second at most.
    pub connect_rate: f64,
    /// `--count N`: messages per connection.
    pub count: Option<u64>,
    /// `--duration SECS`.
    pub duration: Option<Duration>,
    /// `--rate MSGS_PER_S`: open loop, messages per second in total.
    pub rate: Option<f64>,
    /// `--pipeline K`: messages in flight per connection (default 1).
    pub pipeline: usize,
    /// `--stream`: each connection writes continuously (chunks of `--size`, default 64 KiB)
    /// within its window, reading the echo back.
    pub stream: bool,
    /// `--window BYTES`: with `--stream`, bytes in flight per connection (default 256 KiB).
    pub window: Option<usize>,
    /// `--warmup SECS`: load before measuring, excluded from every figure.
    pub warmup: Duration,
    /// `--threads N`: client threads (default: the number of CPUs).
    pub threads: usize,
    /// `--timeout SECS`: longest wait for an echo (or a connect) before it is an error; zero
    /// waits for ever.
    pub timeout: Duration,
    /// `--source-ip`: local addresses to spread connections over.
    pub source_ips: Vec<IpAddr>,
    /// `--json PATH|-`.
    pub json: Option<OutputTarget>,
    /// `--hdr-log PATH`.
    pub hdr_log: Option<PathBuf>,
    /// `--csv PATH`: the per-second latency intervals as CSV, one row per interval.
    pub csv: Option<PathBuf>,
    /// `--html PATH`: the report as one self-contained HTML page with charts.
    pub html: Option<PathBuf>,
    /// `--verbose`: print every reply, as the article's client does.
    pub verbose: bool,
    /// `--seed`: seed of the random payload.
    pub seed: u64,
    /// `--backend auto|uring|epoll`: the completion port's mechanism on the client side.
    pub backend: BackendChoice,
    /// `--segment I/N`: run only this share of the connections (and so of the rate and the
    /// messages); see [`segment`](crate::plan::segment). `None` is the whole run.
    pub segment: Option<Segment>,
    /// `--start-at TIME`: start the load (after connecting) at this wall-clock time, so agents
    /// on several hosts start together.
    pub start_at: Option<SystemTime>,
    /// Request/response mode (`--request*` with `--expect*`): the sequence of requests each
    /// connection sends, cycled, and the reply each expects (see
    /// [`request`](crate::config::request)). Empty: echo, the default.
    pub requests: Vec<RequestSpec>,
    /// `--rate A..B --ramp D` or `--rate A,B,C --step D`: the rate changes during the run
    /// ([`ramp`](crate::plan::ramp)); `rate` is then its peak.
    pub rate_ramp: Option<Ramp>,
    /// `--connections A..B --ramp D` or `--connections A,B,C --step D`: connections join the
    /// load during the run; `connections` is then the last level.
    pub connections_ramp: Option<Ramp>,
    /// `--messages-per-connection N`: churn: each connection closes after `N` exchanges and a
    /// new one takes its place (at most `--connect-rate` connects per second); `None` keeps
    /// every connection for the whole run. See [`reconnect`](crate::plan::reconnect).
    pub messages_per_connection: Option<u64>,
    /// `--linger0`: close connections with a reset (`SO_LINGER` 0) instead of a FIN, leaving no
    /// `TIME_WAIT` on the client.
    pub linger0: bool,
    /// `--mptcp`: connect with Multipath TCP sockets (Linux); a server that does not speak it
    /// gives plain TCP, which the run's probe warns about.
    pub mptcp: bool,
    /// `--proxy-protocol`: every connection sends this version's PROXY header first
    /// ([`crate::engine::proxy`]).
    pub proxy_protocol: Option<crate::engine::proxy::Version>,
    /// `--spin-us US`: how long before each scheduled send (`--rate`) a client thread stops
    /// sleeping and polls, so the send is not late by the kernel's timer slack. `None`: the
    /// backend's own (60 us on Linux, none on Windows). Polling costs up to this much CPU per
    /// sparse send, which adds up with many agents on few CPUs (`benches/scale-active.sh`).
    pub spin: Option<Duration>,
    /// `--tls` and its flags: every connection speaks TLS; `None`: plaintext TCP.
    pub tls: Option<crate::tls::options::TlsOptions>,
    /// `--udp`: load a UDP echo: each of `--connections` is a flow (one socket) of datagrams,
    /// every echo verified and counted (see [`udp`](crate::udp)).
    pub udp: bool,
    /// `--max-loss PCT` (with `--udp`): a run that loses more datagrams than this, in percent
    /// of those sent, fails; `None`: loss alone never fails a run.
    pub max_loss_pct: Option<f64>,
    /// `--no-gso` (with `--udp`): one datagram per send and per receive, without Linux's UDP
    /// segmentation offload (several datagrams of a flow in one send, `UDP_SEGMENT`) and
    /// receive coalescing (`UDP_GRO`), which are used where the system has them otherwise.
    pub no_gso: bool,
    /// `--websocket[=PATH]` and `--header`: every message is one masked WebSocket message, each
    /// echo verified as a message; `None`: raw bytes.
    pub websocket: Option<crate::ws::options::WsOptions>,
}

impl Default for StressConfig {
    fn default() -> Self {
        StressConfig {
            host: "127.0.0.1".to_string(),
            port: DEFAULT_PORT,
            message: None,
            size: None,
            connections: DEFAULT_CONNECTIONS,
            connect_rate: DEFAULT_CONNECT_RATE,
            count: None,
            duration: None,
            rate: None,
            pipeline: 1,
            stream: false,
            window: None,
            warmup: Duration::ZERO,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            timeout: DEFAULT_TIMEOUT,
            source_ips: Vec::new(),
            json: None,
            hdr_log: None,
            csv: None,
            html: None,
            verbose: false,
            seed: 0,
            backend: BackendChoice::Auto,
            segment: None,
            start_at: None,
            requests: Vec::new(),
            rate_ramp: None,
            connections_ramp: None,
            messages_per_connection: None,
            linger0: false,
            mptcp: false,
            proxy_protocol: None,
            spin: None,
            tls: None,
            udp: false,
            max_loss_pct: None,
            no_gso: false,
            websocket: None,
        }
    }
}

fn bad<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

impl StressConfig {
    /// Checks every option and combination.
    ///
    /// # Errors
    ///
    /// A one-line message naming the offending flags, e.g. `--count and --duration cannot be
    /// used together`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.host.trim().is_empty() {
            return bad("HOST is empty");
        }
        self.validate_outputs()?;
        if self.spin.is_some_and(|s| s > MAX_SPIN) {
            return bad(format!(
                "--spin-us {} is more than {} (a poll that long only burns CPU)",
                self.spin.unwrap_or_default().as_micros(),
                MAX_SPIN.as_micros()
            ));
        }
        if self.port == 0 {
            return bad("PORT 0 cannot be connected to; give the server's port");
        }
        if self.message.is_some() && self.size.is_some() {
            return bad("--message and --size cannot be used together");
        }
        if let Some(m) = &self.message {
            if m.is_empty() {
                return bad("--message is empty");
            }
        }
        match self.size {
            Some(0) => return bad("--size must be at least 1 byte"),
            Some(s) if s > MAX_MESSAGE_SIZE => {
                return bad(format!(
                    "--size {s} is larger than the limit of {MAX_MESSAGE_SIZE} bytes"
                ))
            }
            _ => {}
        }
        if self.count.is_some() && self.duration.is_some() {
            return bad("--count and --duration cannot be used together");
        }
        if self.count == Some(0) {
            return bad("--count must be at least 1");
        }
        if self.duration == Some(Duration::ZERO) {
            return bad("--duration must be greater than 0");
        }
        if self.connections == 0 {
            return bad("--connections must be at least 1");
        }
        if let Some(seg) = self.segment {
            if seg.index == 0 || seg.index > seg.count {
                return bad(format!(
                    "--segment {seg}: I must be between 1 and {}",
                    seg.count
                ));
            }
            if seg.count > self.connections {
                return bad(format!(
                    "--segment {seg}: {} connections cannot be split into {} shares (each needs \
                     at least one): raise --connections or run fewer segments",
                    self.connections, seg.count
                ));
            }
        }
        if !(self.connect_rate.is_finite() && self.connect_rate > 0.0) {
            return bad("--connect-rate must be a positive number of connections per second");
        }
        if self.pipeline == 0 {
            return bad("--pipeline must be at least 1");
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return bad("--rate must be a positive number of messages per second");
            }
        }
        if self.threads == 0 {
            return bad("--threads must be at least 1");
        }
        self.validate_udp()?;
        self.validate_stream()?;
        self.validate_requests()?;
        self.validate_ramps()?;
        match self.messages_per_connection {
            Some(0) => return bad("--messages-per-connection must be at least 1"),
            Some(_) if self.stream => {
                return bad(
                    "--messages-per-connection cannot be used with --stream: a stream keeps its \
                     connections",
                )
            }
            _ => {}
        }
        let in_flight = (self.own_connections().len() as u64)
            .saturating_mul(self.messages_in_flight() as u64)
            .saturating_mul(self.max_send_len() as u64);
        if in_flight > MAX_BYTES_IN_FLIGHT {
            let what = if self.stream {
                "--connections x --window"
            } else {
                "--connections x --pipeline x message size"
            };
            return bad(format!(
                "{what} = {in_flight} bytes in flight, more than the limit of \
                 {MAX_BYTES_IN_FLIGHT}; lower one of them"
            ));
        }
        if let Some(ip) = self.source_ips.iter().find(|ip| ip.is_unspecified()) {
            return bad(format!("--source-ip {ip} is not a usable local address"));
        }
        Ok(())
    }

    /// `--udp`: the datagram's size (header and payload within 65,507 bytes), and the flags
    /// that do not apply to datagrams.
    ///
    /// # Errors
    ///
    /// One line naming the flag, e.g. `--stream does not apply to --udp: ...`.
    pub fn validate_udp(&self) -> Result<(), ConfigError> {
        use crate::udp::header::{DATAGRAM_MAX, HEADER_LEN};
        if !self.udp {
            if self.max_loss_pct.is_some() {
                return bad("--max-loss applies to --udp only: a TCP stream loses nothing");
            }
            if self.no_gso {
                return bad("--no-gso applies to --udp only: it is UDP's segmentation offload");
            }
            return Ok(());
        }
        let refused = [
            (self.stream, "--stream", "datagrams are sent one by one"),
            (
                self.window.is_some(),
                "--window",
                "--pipeline bounds datagrams in flight",
            ),
            (
                !self.requests.is_empty(),
                "--request",
                "a UDP run checks an echo",
            ),
            (self.tls.is_some(), "--tls", "TLS runs over TCP"),
            (
                self.websocket.is_some(),
                "--websocket",
                "WebSocket runs over TCP",
            ),
            (
                self.messages_per_connection.is_some(),
                "--messages-per-connection",
                "a flow has no connection to replace",
            ),
            (
                self.linger0,
                "--linger0",
                "a datagram socket has nothing to linger",
            ),
            (self.mptcp, "--mptcp", "Multipath TCP is TCP"),
            (
                self.proxy_protocol.is_some(),
                "--proxy-protocol",
                "the PROXY header opens a TCP connection",
            ),
            (
                self.connections_ramp.is_some(),
                "a --connections ramp",
                "every flow sends from the start",
            ),
            (
                !self.source_ips.is_empty(),
                "--source-ip",
                "each flow's socket is bound by the system",
            ),
        ];
        if let Some((_, flag, why)) = refused.iter().find(|(on, _, _)| *on) {
            return bad(format!("{flag} does not apply to --udp: {why}"));
        }
        if self.timeout.is_zero() {
            return bad(
                "--timeout 0 does not apply to --udp: a datagram not echoed within the timeout \
                 is lost, so the timeout must be positive",
            );
        }
        if let Some(size) = self.size {
            if !(HEADER_LEN..=DATAGRAM_MAX).contains(&size) {
                return bad(format!(
                    "--size {size} with --udp: a datagram is {HEADER_LEN} to {DATAGRAM_MAX} bytes \
                     in all (its header is {HEADER_LEN})"
                ));
            }
        }
        if let Some(m) = &self.message {
            let longest = HEADER_LEN + self.payload().max_len();
            if longest > DATAGRAM_MAX {
                return bad(format!(
                    "--message is {} bytes: with the header and the message number a datagram \
                     would reach {longest} bytes, more than {DATAGRAM_MAX}",
                    m.len()
                ));
            }
        }
        if let Some(p) = self.max_loss_pct {
            if !(p.is_finite() && (0.0..=100.0).contains(&p)) {
                return bad("--max-loss must be a percentage from 0 to 100");
            }
        }
        Ok(())
    }

    /// Request/response mode: the requests and their expectations (see
    /// [`request::check`](crate::protocol::script::check)), and the flags it excludes.
    ///
    /// # Errors
    ///
    /// One line naming the flags, e.g. `--expect and --expect-len cannot be used together (for
    /// request 2): ...`.
    pub fn validate_requests(&self) -> Result<(), ConfigError> {
        if self.requests.is_empty() {
            return Ok(());
        }
        if self.message.is_some() || self.size.is_some() {
            return bad(
                "--message and --size are echo payloads: they cannot be used with --request",
            );
        }
        if self.stream {
            return bad("--stream cannot be used with --request: a stream is echoed bytes");
        }
        crate::protocol::script::check(&self.requests)
    }

    /// Request/response mode: the compiled script of `--request*` and `--expect*`; `None` for
    /// echo.
    ///
    /// # Errors
    ///
    /// As [`validate_requests`](Self::validate_requests).
    pub fn script(&self) -> Result<Option<Script>, ConfigError> {
        if self.requests.is_empty() {
            return Ok(None);
        }
        Script::compile(&self.requests).map(Some)
    }

    /// The longest message a connection sends: the payload's, or the longest request.
    pub fn max_send_len(&self) -> usize {
        match self.requests.iter().map(|r| r.bytes.len()).max() {
            Some(n) => n,
            None => self.payload().max_len(),
        }
    }

    /// The combinations a ramp allows: one ramp at a time, its length is the run's, and a
    /// connection ramp rises and runs closed loop.
    fn validate_ramps(&self) -> Result<(), ConfigError> {
        let (which, ramp) = match (&self.rate_ramp, &self.connections_ramp) {
            (Some(_), Some(_)) => {
                return bad("--rate and --connections cannot both ramp: ramp one of them")
            }
            (Some(r), None) => ("--rate", r),
            (None, Some(r)) => ("--connections", r),
            (None, None) => return Ok(()),
        };
        if self.count.is_some() || self.duration.is_some() {
            return bad(format!(
                "--count and --duration do not apply to a {which} ramp: its --ramp or --step \
                 sets the length"
            ));
        }
        if self.segment.is_some() {
            return bad("ramps cannot be split with --segment: run the ramp from one host");
        }
        if which == "--rate" && self.rate != Some(ramp.peak()) {
            return bad("--rate: a rate ramp's peak must be the configured rate");
        }
        if which == "--connections" {
            if self.rate.is_some() {
                return bad(
                    "a --connections ramp runs closed loop: ramp --rate instead, or drop --rate",
                );
            }
            if !ramp.rises() {
                return bad("--connections: a connection ramp must not go down");
            }
            if ramp.first().round() < 1.0 {
                return bad("--connections: a connection ramp starts with at least 1");
            }
            if self.connections != ramp.peak().round() as usize {
                return bad("--connections: a connection ramp's last level must be --connections");
            }
        }
        Ok(())
    }

    /// The ramp of this run, if any: `(which flag, the ramp)`.
    pub fn ramp(&self) -> Option<(&'static str, &Ramp)> {
        match (&self.rate_ramp, &self.connections_ramp) {
            (Some(r), _) => Some(("rate", r)),
            (None, Some(r)) => Some(("connections", r)),
            (None, None) => None,
        }
    }

    /// The steps a ramp reports, if the run ramps.
    pub fn ramp_steps(&self) -> Option<Vec<Step>> {
        self.ramp().map(|(_, r)| r.steps())
    }

    /// The flags that go with `--stream`, and only with it.
    fn validate_stream(&self) -> Result<(), ConfigError> {
        if !self.stream {
            if self.window.is_some() {
                return bad("--window applies only with --stream");
            }
            return Ok(());
        }
        if self.message.is_some() {
            return bad(
                "--message cannot be used with --stream: a stream is random bytes in \
                 chunks of --size",
            );
        }
        if self.rate.is_some() {
            return bad(
                "--rate cannot be used with --stream: a stream writes as fast as its \
                 --window allows",
            );
        }
        if self.pipeline != 1 {
            return bad(
                "--pipeline does not apply to --stream: --window bounds its bytes in \
                 flight",
            );
        }
        let chunk = self.payload().max_len();
        match self.window {
            Some(0) => bad("--window must be at least 1 byte"),
            Some(w) if w < chunk => bad(format!(
                "--window {w} is smaller than one chunk of {chunk} bytes (--size): raise \
                 --window or lower --size"
            )),
            _ => Ok(()),
        }
    }

    /// The payload: `--message`, `--size` (with `--seed`), or the default message; a stream's
    /// chunks are random bytes, 64 KiB unless `--size` says otherwise.
    pub fn payload(&self) -> PayloadSpec {
        match (&self.message, self.size) {
            (_, Some(size)) => PayloadSpec::Random {
                size,
                seed: self.seed,
            },
            (None, None) if self.stream => PayloadSpec::Random {
                size: DEFAULT_STREAM_CHUNK,
                seed: self.seed,
            },
            (Some(m), None) => PayloadSpec::Text(m.clone()),
            (None, None) => PayloadSpec::Text(DEFAULT_MESSAGE.to_string()),
        }
    }

    /// When the measured phase ends: `--duration`, `--count`, or the default count.
    pub fn stop(&self) -> Stop {
        if let Some((_, ramp)) = self.ramp() {
            return Stop::Duration(ramp.total());
        }
        match (self.duration, self.count) {
            (Some(d), _) => Stop::Duration(d),
            (None, Some(n)) => Stop::Count(n),
            (None, None) => Stop::Count(DEFAULT_COUNT),
        }
    }

    /// The workload: a stream with `--stream`, open loop with `--rate`, closed loop otherwise.
    pub fn workload(&self) -> Workload {
        if self.stream {
            return Workload::Stream {
                window: self.window.unwrap_or(DEFAULT_WINDOW),
            };
        }
        match self.rate {
            Some(rate) => Workload::Rate {
                rate,
                pipeline: self.pipeline,
            },
            None => Workload::Closed {
                pipeline: self.pipeline,
            },
        }
    }

    /// Messages (a stream's chunks) in flight per connection at most: `--pipeline`, or as many
    /// whole chunks as the stream's window holds (at least one).
    pub fn messages_in_flight(&self) -> usize {
        match self.workload() {
            Workload::Stream { window } => (window / self.payload().max_len().max(1)).max(1),
            Workload::Closed { pipeline } | Workload::Rate { pipeline, .. } => pipeline,
        }
    }

    /// Client threads actually used: never more than there are connections (of this
    /// segment).
    pub fn effective_threads(&self) -> usize {
        self.threads.clamp(1, self.own_connections().len().max(1))
    }

    /// The segment this process runs: `--segment`, or the whole run.
    pub fn segment_or_whole(&self) -> Segment {
        self.segment.unwrap_or(Segment::WHOLE)
    }

    /// `--json`, `--hdr-log` and `--csv` name different files.
    ///
    /// # Errors
    ///
    /// The two flags that name one file.
    pub fn validate_outputs(&self) -> Result<(), ConfigError> {
        let json = match &self.json {
            Some(OutputTarget::Path(p)) => Some(("--json", p.as_path())),
            _ => None,
        };
        let named: Vec<(&str, &std::path::Path)> = json
            .into_iter()
            .chain(self.hdr_log.as_deref().map(|p| ("--hdr-log", p)))
            .chain(self.csv.as_deref().map(|p| ("--csv", p)))
            .chain(self.html.as_deref().map(|p| ("--html", p)))
            .collect();
        super::outputs::files_only(&named)?;
        super::outputs::distinct(&named)
    }

    /// The server as the user names it: `HOST:PORT`, an IPv6 address in brackets
    /// (`[::1]:3333`), as the report and the JSON show it.
    pub fn target(&self) -> String {
        crate::engine::resolve::host_port(&self.host, self.port)
    }

    /// The global indices of the connections this process opens: all of `--connections`, or
    /// its `--segment`'s share.
    pub fn own_connections(&self) -> Range<usize> {
        self.segment_or_whole().range(self.connections)
    }

    /// This process's share of `--rate` (all of it without `--segment`).
    pub fn own_rate(&self) -> Option<f64> {
        self.rate
            .map(|r| self.segment_or_whole().rate(r, self.connections))
    }

    /// Whether the payload and stop condition were both left unset, the case in which the
    /// article's client asks for them on a terminal.
    pub fn is_interactive_candidate(&self) -> bool {
        !self.stream
            && self.requests.is_empty()
            && self.message.is_none()
            && self.size.is_none()
            && self.count.is_none()
            && self.duration.is_none()
            && self.ramp().is_none()
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Count(1) => write!(f, "1 message per connection"),
            Stop::Count(n) => write!(f, "{n} messages per connection"),
            Stop::Duration(d) => write!(f, "{:.1}s", d.as_secs_f64()),
        }
    }
}

/// The configuration the unit tests of this crate start from: the defaults on two threads.
#[cfg(test)]
pub(crate) fn test_config() -> StressConfig {
    StressConfig {
        threads: 2,
        ..StressConfig::default()
    }
}
