//! What a server is asked to be: the parsed, validated form of `ringport serve`'s flags.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ringport_port::PortConfig;

/// The server designs of the article.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Worker threads, each driving many connections on its own completion port.
    Completion,
}

impl Model {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Model::Completion => "completion",
        }
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
    /// The one buffer a connection holds, in bytes: it receives no more until this much is
    /// echoed.
    pub buffer_size: usize,
    /// How long a graceful shutdown may spend echoing what was already received.
    pub drain_timeout: Duration,
    /// Print every received chunk (with its worker number) on stdout.
    pub log_messages: bool,
    /// The listen backlog.
    pub backlog: i32,
    /// Settings for each worker's completion port.
    pub port_config: PortConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 3333,
            workers: ringport_port::os::available_cpus(),
            model: Model::Completion,
            buffer_size: 16 * 1024,
            drain_timeout: Duration::from_secs(5),
            log_messages: false,
            backlog: 4096,
            port_config: PortConfig::default(),
        }
    }
}

impl ServeConfig {
    /// The socket address to bind.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }
}
