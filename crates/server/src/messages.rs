//! `--log-messages`: each received chunk printed on stdout, for every model.

use std::net::SocketAddr;

/// Prints a received chunk the way the article's server console did, lossy and truncated.
pub(crate) fn log_message(worker: usize, key: u64, peer: Option<SocketAddr>, bytes: &[u8]) {
    use std::io::Write;
    const MAX: usize = 80;
    let shown = &bytes[..bytes.len().min(MAX)];
    let text: String = String::from_utf8_lossy(shown)
        .chars()
        .flat_map(char::escape_debug)
        .collect();
    let more = if bytes.len() > MAX { "..." } else { "" };
    let peer = peer.map_or_else(|| "?".to_string(), |p| p.to_string());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "worker {worker}: {peer} (conn {}): {} bytes: \"{text}\"{more}",
        key & 0xffff_ffff,
        bytes.len()
    );
}
