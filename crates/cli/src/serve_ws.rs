//! `ringport serve`'s WebSocket flags (`--websocket`, `--ws-max-message`,
//! `--ws-handshake-timeout`), flattened into `serve`'s, and the settings they make.

use std::time::Duration;

use clap::Args;
use ringport_server::echo::websocket::{WsConfig, DEFAULT_HANDSHAKE_TIMEOUT};

use crate::secs::{parse_positive_secs, secs};

/// The WebSocket flags of `ringport serve`.
#[derive(Debug, Args)]
pub struct WsArgs {
    /// Serve WebSocket (RFC 6455) instead of the raw echo: the upgrade, then each text or
    /// binary message echoed as a message of the same type, pings answered, the close
    /// handshake. With --tls-cert or --tls-self-signed it is `wss`, on every model.
    #[arg(long)]
    websocket: bool,
    /// The longest message reassembled, in bytes (`K`, `M` suffixes: KiB, MiB): a fragmented
    /// message or a text message (validated as UTF-8 before its echo); a longer one is closed
    /// with 1009. A binary message in one frame is streamed whatever its size. Also the bound
    /// on a connection's reassembly memory.
    #[arg(long, value_name = "BYTES", default_value = "1M", value_parser = crate::bytes::parse_bytes, requires = "websocket")]
    ws_max_message: usize,
    /// Seconds a client may take to send its upgrade request before its connection is closed
    /// (and counted as `handshake timeout` in the summary's `websocket:` line); more than 0.
    #[arg(long, value_name = "SECS", default_value_t = secs(DEFAULT_HANDSHAKE_TIMEOUT), value_parser = parse_positive_secs, requires = "websocket")]
    ws_handshake_timeout: f64,
}

impl WsArgs {
    /// Whether `--websocket` was given.
    pub fn on(&self) -> bool {
        self.websocket
    }

    /// The settings, or `None` without `--websocket`.
    pub fn config(&self) -> Option<WsConfig> {
        self.websocket.then(|| WsConfig {
            max_message: self.ws_max_message,
            handshake_timeout: Duration::from_secs_f64(self.ws_handshake_timeout),
        })
    }
}

#[cfg(test)]
mod tests {
    use ringport_server::echo::websocket::DEFAULT_MAX_MESSAGE;

    /// The default `--ws-max-message`, as the help shows it, is the library's.
    #[test]
    fn the_default_max_message_is_the_librarys() {
        assert_eq!(crate::bytes::parse_bytes("1M"), Ok(DEFAULT_MAX_MESSAGE));
    }
}
