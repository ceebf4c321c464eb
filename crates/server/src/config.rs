//! What a server is asked to be: the parsed, validated form of `ringport serve`'s flags.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use ringport_port::PortConfig;

/// The server designs of the article.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Worker threads, each driving many connections on its own completion port.
    Completion,
    /// The article's socket2: an accept loop and one thread per client, on blocking sockets.
    Threaded,
    /// The article's socket1: one client at a time; the others wait in the listen backlog.
    Single,
}

impl Model {
    /// Every model, in the order shown in help texts and reports.
    pub const ALL: [Model; 3] = [Model::Completion, Model::Threaded, Model::Single];
    /// The names of [`Model::ALL`], for command-line parsers (e.g. clap's `PossibleValuesParser`).
    pub const NAMES: [&'static str; 3] = ["completion", "threaded", "single"];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Model::Completion => "completion",
            Model::Threaded => "threaded",
            Model::Single => "single",
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A model name that is not one of [`Model::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown server model `{0}`: expected one of completion, threaded, single")]
pub struct UnknownModel(pub String);

impl FromStr for Model {
    type Err = UnknownModel;

    /// Parses a model name (case-insensitive, surrounding blanks ignored).
    fn from_str(s: &str) -> Result<Model, UnknownModel> {
        let name = s.trim();
        Model::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownModel(s.to_string()))
    }
}

/// The settings of a server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The address to listen on (loopback unless asked otherwise).
    pub bind: IpAddr,
    /// The port; 0 picks a free one.
    pub port: u16,
    /// Worker threads of the completion model.
    pub workers: usize,
    /// The server design.
    pub model: Model,
    /// A connection's memory bound, in bytes: the buffer of the blocking models; the completion
    /// model holds at most this plus one pool buffer of received bytes not yet echoed
    /// (`completion::recv_limit`).
    pub buffer_size: usize,
    /// How long a graceful shutdown may spend echoing what was already received.
    pub drain_timeout: Duration,
    /// Print every received chunk (with its worker number) on stdout.
    pub log_messages: bool,
    /// The listen backlog.
    pub backlog: i32,
    /// Settings for each worker's completion port.
    pub port_config: PortConfig,
    /// The most connections open at once; `0` derives it from the open-file limit
    /// ([`ServeConfig::effective_max_connections`]). The completion model stops accepting when it
    /// is reached (clients wait in the listen backlog) and takes the next client when a
    /// connection closes; the threaded model closes a connection beyond it at once. The single
    /// model serves one at a time anyway.
    pub max_connections: usize,
    /// The most connections open at once from one IP address; a connection beyond it is accepted
    /// and closed at once, and counted. `0`: no limit.
    pub max_per_ip: usize,
    /// Whether `max_per_ip` applies to loopback peers too. False by default: a per-address cap
    /// protects nothing against a client on the same machine (which can do anything anyway),
    /// and the default one would fight `ringport stress` run next to the server. The CLI sets it
    /// when `--max-per-ip` is given explicitly.
    pub max_per_ip_loopback: bool,
    /// A connection waiting for its peer's next bytes this long is closed (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// A connection whose echo makes no progress this long (the peer does not read) is closed
    /// and its buffer freed (`None`: never).
    pub write_timeout: Option<Duration>,
    /// Share the port with other server processes (`SO_REUSEPORT` on every listener, no "address
    /// in use" probe), for running several processes on one port, each under its own open-file
    /// limit. Off: a port already in use is reported.
    pub reuse_port: bool,
    /// Listen with Multipath TCP sockets (`serve --mptcp`, Linux): clients that speak MPTCP get
    /// it, others plain TCP from the same listener.
    pub mptcp: bool,
    /// Serve TLS with this certificate and configuration (`None`: plaintext).
    pub tls: Option<crate::tls::Tls>,
    /// The UDP echo on the same port number (`serve --udp`), or alone (`--udp-only`); `None`:
    /// TCP only.
    pub udp: Option<crate::udp::UdpConfig>,
    /// Speak WebSocket (`serve --websocket`): the upgrade, then messages echoed as messages
    /// (`None`: the plain echo).
    pub websocket: Option<crate::echo::websocket::WsConfig>,
    /// Accept plaintext echo connections as io_uring direct descriptors (`--direct-fds`):
    /// each worker's ring gets a file table for its accepted sockets, and their operations name
    /// a slot of it instead of a descriptor. Only where the kernel allows (Linux 5.19+; else
    /// descriptors, said once in the log); never for TLS, WebSocket, epoll or IOCP.
    pub direct_fds: bool,
    /// Read a PROXY protocol header (version 1 or 2) before each connection's bytes
    /// (`--proxy-protocol`), within this time: the header's client address is the
    /// connection's for `--max-per-ip` and the logs (`None`: no header is read). See
    /// [`crate::proxy`].
    pub proxy_protocol: Option<Duration>,
}

/// Descriptors kept out of the derived `max_connections`: standard streams, the signal pipe,
/// and per worker its listener, its port's descriptors and a spare.
pub const FD_RESERVE_BASE: u64 = 32;
/// Descriptors reserved per worker (listener, ring or epoll, eventfd, spare).
pub const FD_RESERVE_PER_WORKER: u64 = 4;

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 3333,
            // On Windows too: there the workers share one listener (see `completion::handoff`).
            workers: ringport_os::limits::available_cpus(),
            model: Model::Completion,
            // Four pool buffers: a 64 KiB message or a stream's bytes leave in one gathered
            // send of what arrived, and a WebSocket connection receives and sends in 64 KiB
            // (`benches/stream.sh` and `benches/peers.sh` at 64 KiB and `benches/tls.sh`'s
            // WebSocket rows measured it against 16 KiB: fewer operations and wake-ups per
            // byte, less CPU per byte). An idle connection of the completion model still
            // holds no buffer.
            buffer_size: 64 * 1024,
            drain_timeout: Duration::from_secs(5),
            log_messages: false,
            backlog: 4096,
            port_config: PortConfig::default(),
            max_connections: 0,
            max_per_ip: 512,
            max_per_ip_loopback: false,
            idle_timeout: Some(Duration::from_secs(60)),
            write_timeout: Some(Duration::from_secs(30)),
            reuse_port: false,
            mptcp: false,
            tls: None,
            udp: None,
            websocket: None,
            direct_fds: false,
            proxy_protocol: None,
        }
    }
}

impl ServeConfig {
    /// The socket address to bind.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    /// Where to listen: the socket address, and whether to share its port with other processes
    /// (`reuse_port`).
    pub fn addr(&self) -> crate::listener::ListenAddr {
        crate::listener::ListenAddr {
            addr: self.socket_addr(),
            reuse_port: self.reuse_port,
            mptcp: self.mptcp,
        }
    }

    /// The connection limit in force: `max_connections`, or when it is 0, the soft open-file
    /// limit (`RLIMIT_NOFILE`) minus a reserve of [`FD_RESERVE_BASE`] plus
    /// [`FD_RESERVE_PER_WORKER`] per worker (at least 1). One connection is one descriptor.
    pub fn effective_max_connections(&self) -> usize {
        if self.max_connections > 0 {
            return self.max_connections;
        }
        let soft = ringport_os::limits::nofile().map_or(1024, |(soft, _)| soft);
        derive_max_connections(soft, self.workers)
    }
}

/// `soft` minus the descriptor reserve for `workers` workers, at least 1.
pub fn derive_max_connections(soft: u64, workers: usize) -> usize {
    let reserve = FD_RESERVE_BASE + FD_RESERVE_PER_WORKER * workers.max(1) as u64;
    usize::try_from(soft.saturating_sub(reserve).max(1)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_round_trip_and_unknown_names_say_what_is_expected() {
        for (m, name) in Model::ALL.into_iter().zip(Model::NAMES) {
            assert_eq!(m.name(), name);
            assert_eq!(m.to_string(), name);
            assert_eq!(name.parse::<Model>(), Ok(m));
        }
        assert_eq!(" Threaded ".parse::<Model>(), Ok(Model::Threaded));
        let err = "iocp".parse::<Model>().unwrap_err().to_string();
        assert!(err.contains("`iocp`") && err.contains("single"), "{err}");
    }

    #[test]
    fn the_derived_connection_limit_keeps_a_reserve_of_descriptors() {
        assert_eq!(derive_max_connections(1024, 2), 1024 - 32 - 8);
        assert_eq!(derive_max_connections(128, 2), 88);
        assert_eq!(derive_max_connections(10, 4), 1, "never zero");
        let cfg = ServeConfig {
            max_connections: 7,
            ..ServeConfig::default()
        };
        assert_eq!(cfg.effective_max_connections(), 7);
        let derived = ServeConfig::default().effective_max_connections();
        let (soft, _) = ringport_os::limits::nofile().unwrap();
        assert!(derived as u64 <= soft, "{derived} within {soft}");
    }
}
