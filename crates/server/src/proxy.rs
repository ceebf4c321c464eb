//! `--proxy-protocol`: what every model shares around HAProxy's PROXY header (read by
//! [`ringport_proxy_protocol`], re-exported here): its timeout and the counters of headers read
//! and refused. What a header says is used as the connection's peer: its per-address count
//! (`--max-per-ip`) and its logs.

use std::time::Duration;

pub use ringport_proxy_protocol::{step, whole_len, Bad, Header, Step, MAX_HEADER};

/// How long a connection may take to send its whole header, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers read and refused, by version and cause, as the summary's `proxy:` line says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Whole headers, by version.
    pub v1: u64,
    pub v2: u64,
    /// Of those, the ones that gave no address (`LOCAL`, `UNKNOWN`).
    pub own: u64,
    /// Connections closed for their header: not the protocol, unreadable, too long.
    pub not_proxy: u64,
    pub bad: u64,
    pub too_long: u64,
    /// Connections that ended, or took longer than the timeout, before their header was
    /// whole.
    pub incomplete: u64,
    pub timeout: u64,
}

impl ProxyStats {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &ProxyStats) {
        self.v1 += other.v1;
        self.v2 += other.v2;
        self.own += other.own;
        self.not_proxy += other.not_proxy;
        self.bad += other.bad;
        self.too_long += other.too_long;
        self.incomplete += other.incomplete;
        self.timeout += other.timeout;
    }

    /// Counts a whole header.
    pub fn read(&mut self, header: &Header, version: u8) {
        if version == 1 {
            self.v1 += 1;
        } else {
            self.v2 += 1;
        }
        if header.source().is_none() {
            self.own += 1;
        }
    }

    /// Counts a refused one.
    pub fn refused(&mut self, bad: Bad) {
        match bad {
            Bad::NotProxy => self.not_proxy += 1,
            Bad::V1 | Bad::V2 => self.bad += 1,
            Bad::TooLong => self.too_long += 1,
        }
    }

    /// Connections closed for their header.
    pub fn failures(&self) -> u64 {
        self.not_proxy + self.bad + self.too_long + self.incomplete + self.timeout
    }

    /// Whether nothing was counted (the server does not read headers).
    pub fn is_empty(&self) -> bool {
        *self == ProxyStats::default()
    }

    /// The summary's line: `proxy: 5 headers (v1 2, v2 3; 1 without an address); failed:
    /// not PROXY 1, bad 0, too long 0, incomplete 0, timeout 1`.
    pub fn describe(&self) -> String {
        let n = self.v1 + self.v2;
        format!(
            "proxy: {n} {} (v1 {}, v2 {}; {} without an address); failed: not PROXY {}, bad {}, \
             too long {}, incomplete {}, timeout {}",
            if n == 1 { "header" } else { "headers" },
            self.v1,
            self.v2,
            self.own,
            self.not_proxy,
            self.bad,
            self.too_long,
            self.incomplete,
            self.timeout
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxied(src: &str, dst: &str) -> Header {
        Header::Proxied {
            source: src.parse().unwrap(),
            destination: dst.parse().unwrap(),
        }
    }

    #[test]
    fn the_summary_line_names_every_cause() {
        let mut s = ProxyStats::default();
        assert!(s.is_empty());
        s.read(&proxied("1.1.1.1:1", "2.2.2.2:2"), 1);
        s.read(&Header::Own, 2);
        s.refused(Bad::NotProxy);
        s.refused(Bad::V2);
        s.refused(Bad::TooLong);
        s.timeout += 1;
        assert_eq!(s.failures(), 4);
        let mut t = ProxyStats::default();
        t.add(&s);
        assert_eq!(
            t.describe(),
            "proxy: 2 headers (v1 1, v2 1; 1 without an address); failed: not PROXY 1, bad 1, \
             too long 1, incomplete 0, timeout 1"
        );
    }
}
