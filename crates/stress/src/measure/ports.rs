//! The host's TCP port facts a churn run is limited by: sockets in `TIME_WAIT`
//! (`/proc/net/sockstat`) and whether the kernel reuses their ports (`net.ipv4.tcp_tw_reuse`).

use std::fs;

/// How long Linux keeps a connection in `TIME_WAIT` (`TCP_TIMEWAIT_LEN`).
pub const TIME_WAIT_SECS: f64 = 60.0;

/// Sockets in `TIME_WAIT` from the text of `/proc/net/sockstat` (`TCP: inuse 5 orphan 0 tw 12
/// ...`; the count covers IPv4 and IPv6).
pub fn parse_sockstat_tw(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("TCP:"))?;
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "tw" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// Sockets in `TIME_WAIT` on this host now; `None` where `/proc/net/sockstat` cannot be read.
pub fn time_wait_now() -> Option<u64> {
    fs::read_to_string("/proc/net/sockstat")
        .ok()
        .and_then(|t| parse_sockstat_tw(&t))
}

/// Whether Linux may reuse a `TIME_WAIT` port for a new connection to `loopback` or not
/// (`net.ipv4.tcp_tw_reuse`: 1 always, 2 for loopback only, the default); `None` where unknown.
pub fn tw_reuse_applies(loopback: bool) -> Option<bool> {
    let v = fs::read_to_string("/proc/sys/net/ipv4/tcp_tw_reuse").ok()?;
    Some(match v.trim() {
        "1" => true,
        "2" => loopback,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockstat_time_wait() {
        let text =
            "sockets: used 120\nTCP: inuse 5 orphan 0 tw 12345 alloc 7 mem 1\nUDP: inuse 1 mem 0\n";
        assert_eq!(parse_sockstat_tw(text), Some(12345));
        assert_eq!(parse_sockstat_tw("TCP6: inuse 2\n"), None);
        assert_eq!(parse_sockstat_tw("garbage"), None);
    }
}
