//! The reflector rules of the UDP echo: which datagrams are not echoed, and why.
//!
//! A UDP echo answers whoever the source address names, and that address can be forged. Two
//! abuses follow (RFC 862's UDP half is why `echo` is off everywhere): an echo–chargen loop (a
//! datagram "from" another echo-like service's port makes two servers answer each other for
//! ever) and reflection (forged sources make the server send its traffic to a victim). So:
//!
//! - datagrams from the ports of echo-like services (7 echo, 13 daytime, 17 qotd, 19 chargen,
//!   37 time, and any the operator adds) are never echoed, nor from port 0 (nobody can receive
//!   on it);
//! - each source address gets a token bucket of `max_pps` datagrams per second (a burst of a
//!   second's worth); a datagram beyond it is not echoed. The table of buckets is bounded: when
//!   it is full, buckets that have refilled (a source quiet for a second) are forgotten, and if
//!   none has, a datagram from a new source is refused rather than the table grown.
//!
//! Every refusal has its [`Refusal`] cause, which the worker counts; [`Policy::judge`] is the
//! whole decision for what one receive brought (one datagram, or several coalesced from one
//! sender), counted per datagram, as both of the echo's loops make it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::stats::UdpStats;

/// The source ports of echo-like services, never echoed to (besides port 0).
pub const DENIED_PORTS: [u16; 5] = [7, 13, 17, 19, 37];

/// Why a datagram was not echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its source port is an echo-like service's ([`DENIED_PORTS`], `--udp-deny-port`) or 0.
    DeniedPort,
    /// Its source address sent more than its rate allows.
    RateLimited,
    /// The table of source addresses was full of active sources: a new one is not admitted.
    TableFull,
}

/// One source's token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The rules, with the per-source buckets.
#[derive(Debug)]
pub struct Policy {
    deny: Vec<u16>,
    /// Datagrams per second per source address; 0: no limit.
    max_pps: u32,
    /// Whether the rate limit applies to loopback sources.
    limit_loopback: bool,
    /// Most source addresses tracked at once.
    table_max: usize,
    buckets: HashMap<IpAddr, Bucket>,
    /// When the table was last swept of refilled buckets.
    swept: Option<Instant>,
}

impl Policy {
    /// Rules denying [`DENIED_PORTS`] and `extra`, limiting each source to `max_pps` datagrams
    /// per second (0: no limit; loopback sources only with `limit_loopback`), tracking at most
    /// `table_max` sources.
    pub fn new(extra: &[u16], max_pps: u32, limit_loopback: bool, table_max: usize) -> Policy {
        let mut deny: Vec<u16> = DENIED_PORTS.iter().chain(extra).copied().collect();
        deny.push(0);
        deny.sort_unstable();
        deny.dedup();
        Policy {
            deny,
            max_pps,
            limit_loopback,
            table_max: table_max.max(1),
            buckets: HashMap::new(),
            swept: None,
        }
    }

    /// Whether a datagram from `from`, arriving `now`, may be echoed; `Err` names why not.
    pub fn admit(&mut self, from: SocketAddr, now: Instant) -> Result<(), Refusal> {
        if self.deny.binary_search(&from.port()).is_ok() {
            return Err(Refusal::DeniedPort);
        }
        let ip = from.ip().to_canonical();
        if self.max_pps == 0 || (ip.is_loopback() && !self.limit_loopback) {
            return Ok(());
        }
        let rate = f64::from(self.max_pps);
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= self.table_max {
            self.sweep(now);
            if self.buckets.len() >= self.table_max {
                return Err(Refusal::TableFull);
            }
        }
        let bucket = self.buckets.entry(ip).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Refusal::RateLimited)
        }
    }

    /// Forgets the buckets that have refilled (their sources were quiet for a second), at most
    /// once per second: a full bucket is what a new source gets anyway.
    fn sweep(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        self.swept = Some(now);
        let rate = f64::from(self.max_pps);
        self.buckets.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens + elapsed * rate < rate
        });
    }

    /// Source addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// The one rule for what one receive brought, whichever loop received it: `count`
    /// datagrams (several when the system coalesced them, each of the receive's segment size,
    /// the last maybe shorter) of `len` bytes in all, from one sender. They are counted in
    /// `stats` as received (one when `truncated`: cut to the buffer, never echoed), then each
    /// under its fate: no sender reported (`from`), refused by these rules at `now` (the
    /// datagrams of one receive share a sender, so once one is refused the rest are too, for
    /// the same cause, and the admitted ones are the first ones), or admitted. Returns the
    /// address to echo to and how many of the first datagrams to echo, or `None` when none.
    pub fn judge(
        &mut self,
        stats: &mut UdpStats,
        len: usize,
        count: u64,
        truncated: bool,
        from: Option<SocketAddr>,
        now: Instant,
    ) -> Option<(SocketAddr, u64)> {
        if truncated {
            stats.datagrams_in += 1;
            stats.truncated += 1;
            return None;
        }
        stats.datagrams_in += count;
        stats.bytes_in += len as u64;
        if count > 1 {
            stats.coalesced_in += 1;
        }
        let Some(to) = from else {
            stats.no_sender += count;
            return None;
        };
        let mut admitted = 0;
        while admitted < count {
            if let Err(why) = self.admit(to, now) {
                for _ in admitted..count {
                    stats.refused(why);
                }
                break;
            }
            admitted += 1;
        }
        (admitted > 0).then_some((to, admitted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn echo_like_ports_port_zero_and_extra_ports_are_denied() {
        let mut p = Policy::new(&[5353], 0, false, 16);
        let now = Instant::now();
        for port in [0, 7, 13, 17, 19, 37, 5353] {
            assert_eq!(
                p.admit(addr(&format!("192.0.2.1:{port}")), now),
                Err(Refusal::DeniedPort),
                "port {port}"
            );
        }
        assert_eq!(p.admit(addr("192.0.2.1:40000"), now), Ok(()));
        assert_eq!(
            p.admit(addr("[2001:db8::1]:19"), now),
            Err(Refusal::DeniedPort)
        );
    }

    #[test]
    fn a_source_gets_its_rate_and_no_more_and_refills_with_time() {
        let mut p = Policy::new(&[], 10, false, 16);
        let t0 = Instant::now();
        let a = addr("192.0.2.1:40000");
        let admitted = (0..25).filter(|_| p.admit(a, t0).is_ok()).count();
        assert_eq!(admitted, 10, "a burst of one second's worth");
        assert_eq!(p.admit(a, t0), Err(Refusal::RateLimited));
        // Another source address has its own bucket; another port of the same address shares it.
        assert_eq!(p.admit(addr("192.0.2.2:40000"), t0), Ok(()));
        assert_eq!(
            p.admit(addr("192.0.2.1:40001"), t0),
            Err(Refusal::RateLimited)
        );
        // Half a second later: five more.
        let t1 = t0 + Duration::from_millis(500);
        let admitted = (0..25).filter(|_| p.admit(a, t1).is_ok()).count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn loopback_is_exempt_unless_asked_and_zero_is_no_limit() {
        let now = Instant::now();
        let lo = addr("127.0.0.1:40000");
        let mut exempt = Policy::new(&[], 1, false, 16);
        assert!((0..100).all(|_| exempt.admit(lo, now).is_ok()));
        let mut limited = Policy::new(&[], 1, true, 16);
        assert_eq!(limited.admit(lo, now), Ok(()));
        assert_eq!(limited.admit(lo, now), Err(Refusal::RateLimited));
        // An IPv4-mapped loopback is loopback too.
        assert_eq!(
            limited.admit(addr("[::ffff:127.0.0.1]:40000"), now),
            Err(Refusal::RateLimited)
        );
        let mut off = Policy::new(&[], 0, true, 16);
        assert!((0..100).all(|_| off.admit(addr("192.0.2.1:4000"), now).is_ok()));
        assert_eq!(off.tracked(), 0);
    }

    #[test]
    fn the_table_is_bounded_and_forgets_quiet_sources_first() {
        let mut p = Policy::new(&[], 100, false, 2);
        let t0 = Instant::now();
        assert_eq!(p.admit(addr("192.0.2.1:1000"), t0), Ok(()));
        assert_eq!(p.admit(addr("192.0.2.2:1000"), t0), Ok(()));
        assert_eq!(p.admit(addr("192.0.2.3:1000"), t0), Err(Refusal::TableFull));
        assert_eq!(p.tracked(), 2, "never grown past its bound");
        // Two seconds on, both buckets have refilled: the new source takes a place.
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(p.admit(addr("192.0.2.3:1000"), t2), Ok(()));
        assert!(p.tracked() <= 2);
    }

    /// Every datagram judged is counted once as received, and once more under its fate: the
    /// sender to echo to, or the cause it was not echoed.
    #[test]
    fn a_datagram_judged_is_counted_under_its_fate() {
        let mut p = Policy::new(&[], 1, false, 16);
        let mut stats = UdpStats::default();
        let now = Instant::now();
        let a = addr("192.0.2.1:40000");
        assert_eq!(
            p.judge(&mut stats, 64, 1, false, Some(a), now),
            Some((a, 1))
        );
        assert_eq!(p.judge(&mut stats, 64, 1, false, Some(a), now), None);
        assert_eq!(p.judge(&mut stats, 9_000, 1, true, Some(a), now), None);
        assert_eq!(p.judge(&mut stats, 8, 1, false, None, now), None);
        assert_eq!(
            p.judge(&mut stats, 8, 1, false, Some(addr("192.0.2.2:7")), now),
            None
        );
        let want = UdpStats {
            datagrams_in: 5,
            bytes_in: 64 + 64 + 8 + 8,
            truncated: 1,
            no_sender: 1,
            rate_limited: 1,
            denied_port: 1,
            ..UdpStats::default()
        };
        assert_eq!(stats, want);

        let mut sent = UdpStats::default();
        sent.sent(&Ok(64), 1);
        sent.sent(&Err(std::io::Error::from(std::io::ErrorKind::Other)), 1);
        sent.sent(&Ok(640), 10);
        sent.sent(&Err(std::io::Error::from(std::io::ErrorKind::Other)), 3);
        assert_eq!(
            (sent.datagrams_out, sent.bytes_out, sent.send_errors),
            (11, 704, 4)
        );
    }

    /// A coalesced receive's datagrams are judged one by one: the first ones the rate admits
    /// are echoed, the rest counted as refused; a truncated receive is one datagram.
    #[test]
    fn a_coalesced_receive_admits_its_first_datagrams() {
        let mut p = Policy::new(&[], 3, false, 16);
        let mut stats = UdpStats::default();
        let now = Instant::now();
        let a = addr("192.0.2.1:40000");
        assert_eq!(
            p.judge(&mut stats, 5 * 100, 5, false, Some(a), now),
            Some((a, 3))
        );
        assert_eq!(p.judge(&mut stats, 200, 2, false, Some(a), now), None);
        assert_eq!(p.judge(&mut stats, 300, 3, false, None, now), None);
        assert_eq!(p.judge(&mut stats, 70_000, 4, true, Some(a), now), None);
        let want = UdpStats {
            datagrams_in: 5 + 2 + 3 + 1,
            bytes_in: 500 + 200 + 300,
            coalesced_in: 3,
            rate_limited: 2 + 2,
            no_sender: 3,
            truncated: 1,
            ..UdpStats::default()
        };
        assert_eq!(stats, want);
    }
}
