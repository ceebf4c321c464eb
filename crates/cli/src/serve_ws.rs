//! `ringport serve`'s WebSocket flags (`--websocket`, `--ws-max-message`,
//! `--ws-handshake-timeout`), flattened into `serve`'s, and the settings they make.

use std::time::Duration;

use clap::Args;
use ringport_server::echo::websocket::{WsConfig, DEFAULT_HANDSHAKE_TIMEOUT};

use crate::secs::{parse_secs, secs};

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
    #[arg(long, value_name = "BYTES", default_value = "1M", value_parser = parse_bytes, requires = "websocket")]
    ws_max_message: usize,
    /// Seconds a client may take to send its upgrade request before its connection is closed
    /// (and counted as `handshake timeout` in the summary's `websocket:` line).
    #[arg(long, value_name = "SECS", default_value_t = secs(DEFAULT_HANDSHAKE_TIMEOUT), value_parser = parse_secs, requires = "websocket")]
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

/// A size in bytes: `65536`, `64K`, `64KiB`, `1M`, `1MiB` (binary units), at least 1 and at
/// most 1 GiB.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let n: usize = number
        .parse()
        .map_err(|_| format!("`{s}` is not a size in bytes (e.g. 65536, 64K, 1M)"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("`{s}`: unknown unit (K, M or G: binary units)")),
    };
    let bytes = n
        .checked_mul(scale)
        .filter(|b| (1..=1 << 30).contains(b))
        .ok_or_else(|| format!("`{s}` is out of range (1 byte to 1G)"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringport_server::echo::websocket::DEFAULT_MAX_MESSAGE;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("64K"), Ok(65536));
        assert_eq!(parse_bytes("64KiB"), Ok(65536));
        assert_eq!(parse_bytes("1M"), Ok(DEFAULT_MAX_MESSAGE));
        assert_eq!(parse_bytes(" 2mib "), Ok(2 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        for bad in ["", "0", "K", "1.5M", "2G", "12Q", "-1"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
