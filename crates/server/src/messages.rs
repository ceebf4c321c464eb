//! `--log-messages`: each received chunk printed on stderr, for every model (stdout carries only
//! the `listening on` line, the ready line and the summary).

use std::net::SocketAddr;

/// Prints a received chunk the way the article's server console did, lossy and truncated.
/// `serial` numbers the connection among those its worker accepted, from 1, never reused (the
/// completion model's slot keys are, and named three peers `conn 1`).
pub(crate) fn log_message(worker: usize, serial: u64, peer: Option<SocketAddr>, bytes: &[u8]) {
    use std::io::Write;
    const MAX: usize = 80;
    let shown = &bytes[..bytes.len().min(MAX)];
    let text: String = String::from_utf8_lossy(shown)
        .chars()
        .flat_map(char::escape_debug)
        .collect();
    let more = if bytes.len() > MAX { "..." } else { "" };
    let peer = peer.map_or_else(|| "?".to_string(), |p| p.to_string());
    let mut out = std::io::stderr().lock();
    let _ = writeln!(
        out,
        "worker {worker}: {peer} (conn {}): {} bytes: \"{text}\"{more}",
        serial,
        bytes.len()
    );
}
