//! Limits shared by a server's workers: connections open at once ([`Gate`]) and per IP address
//! ([`PerIp`]).
//!
//! # The connection gate (completion model)
//!
//! A worker takes a place for each connection it accepts. One that finds no place holds that
//! connection unserved ("parked"), submits no further accept (so nothing spins, and clients wait
//! in its listener's backlog) and marks itself paused; whoever frees a place wakes the paused
//! workers (through their ports' posters), and they try again. The pause flag is set *before*
//! the second attempt, so a place freed in between is never missed.
//!
//! Places are taken *after* the accept, not reserved before it: each worker has its own
//! `SO_REUSEPORT` listener, and a place reserved by an idle accept on one listener would starve
//! a client waiting on another. The cost is one parked descriptor per paused worker, which the
//! derived limit's reserve covers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use ringport_port::Poster;
use tracing::{info, warn};

/// The value posted to a paused worker when a place frees.
pub(crate) const SLOT_FREE: u64 = 2;

/// Places for connections, shared by the workers of one server.
#[derive(Debug)]
pub(crate) struct Gate {
    max: usize,
    taken: AtomicUsize,
    paused: Vec<AtomicBool>,
    any_paused: AtomicUsize,
    posters: Vec<OnceLock<Poster>>,
    /// An "at the limit" episode is going on (logged once when it starts and once at its end).
    episode: AtomicBool,
}

impl Gate {
    /// A gate of `max` places (at least 1) for `workers` workers.
    pub(crate) fn new(max: usize, workers: usize) -> Gate {
        Gate {
            max: max.max(1),
            taken: AtomicUsize::new(0),
            paused: (0..workers).map(|_| AtomicBool::new(false)).collect(),
            any_paused: AtomicUsize::new(0),
            posters: (0..workers).map(|_| OnceLock::new()).collect(),
            episode: AtomicBool::new(false),
        }
    }

    /// Places taken (connections open plus accepts in flight).
    #[cfg(test)]
    pub(crate) fn taken(&self) -> usize {
        self.taken.load(Ordering::SeqCst)
    }

    /// How worker `id` is woken when a place frees.
    pub(crate) fn register(&self, id: usize, poster: Poster) {
        let _ = self.posters[id].set(poster);
    }

    fn try_take(&self) -> bool {
        self.taken
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Takes a place for worker `id`. On `false` the worker is marked paused and will be posted
    /// [`SLOT_FREE`] when a place frees; it must not accept until then.
    pub(crate) fn reserve(&self, id: usize) -> bool {
        if self.try_take() {
            return true;
        }
        if !self.paused[id].swap(true, Ordering::SeqCst) {
            self.any_paused.fetch_add(1, Ordering::SeqCst);
        }
        // A place may have freed between the first attempt and the flag: try once more.
        if self.try_take() {
            if self.paused[id].swap(false, Ordering::SeqCst) {
                self.any_paused.fetch_sub(1, Ordering::SeqCst);
            }
            return true;
        }
        if !self.episode.swap(true, Ordering::SeqCst) {
            warn!(
                max_connections = self.max,
                "{} connections are open (--max-connections): accepting paused until one closes; new clients wait in the listen backlog",
                self.max
            );
        }
        false
    }

    /// Takes a place even beyond the limit (a parked connection drained at shutdown).
    pub(crate) fn take_anyway(&self) {
        self.taken.fetch_add(1, Ordering::SeqCst);
    }

    /// Gives a place back (a connection closed, or a reserved accept was cancelled), waking the
    /// paused workers.
    pub(crate) fn release(&self) {
        self.taken.fetch_sub(1, Ordering::SeqCst);
        if self.any_paused.load(Ordering::SeqCst) == 0 {
            return;
        }
        for (id, paused) in self.paused.iter().enumerate() {
            if paused.swap(false, Ordering::SeqCst) {
                self.any_paused.fetch_sub(1, Ordering::SeqCst);
                if let Some(poster) = self.posters[id].get() {
                    let _ = poster.post(SLOT_FREE);
                }
            }
        }
        if self.episode.swap(false, Ordering::SeqCst) {
            info!("below --max-connections again: accepting");
        }
    }
}

/// Connections open per IP address, shared by a server's workers.
///
/// Loopback peers (127.0.0.0/8, ::1, and IPv4-mapped loopback) are exempt unless the limit was
/// asked for explicitly ([`ServeConfig::max_per_ip_loopback`](crate::ServeConfig)): a
/// per-address cap protects nothing against a client on the same machine, and the default one
/// would fight `ringport stress --connections 2000` from this machine.
#[derive(Debug)]
pub(crate) struct PerIp {
    max: usize,
    loopback: bool,
    open: Mutex<HashMap<IpAddr, u32>>,
    episode: AtomicBool,
}

impl PerIp {
    /// At most `max` connections per address, loopback peers included; `0`: no limit (nothing
    /// is counted).
    #[cfg(test)]
    pub(crate) fn new(max: usize) -> PerIp {
        PerIp::with_loopback(max, true)
    }

    /// At most `max` connections per address; loopback peers are counted only if `loopback`.
    pub(crate) fn with_loopback(max: usize, loopback: bool) -> PerIp {
        PerIp {
            max,
            loopback,
            open: Mutex::new(HashMap::new()),
            episode: AtomicBool::new(false),
        }
    }

    /// The limit `cfg` asks for (`max_per_ip`, `max_per_ip_loopback`).
    pub(crate) fn of(cfg: &crate::ServeConfig) -> PerIp {
        PerIp::with_loopback(cfg.max_per_ip, cfg.max_per_ip_loopback)
    }

    /// The address to count a connection from `ip` under, if any.
    fn counted(&self, ip: Option<IpAddr>) -> Option<IpAddr> {
        ip.filter(|ip| self.max > 0 && (self.loopback || !ip.to_canonical().is_loopback()))
    }

    /// Counts a new connection from `ip`; `false` if `ip` already has the most (the connection
    /// must be closed, and is not counted). Logs once per episode.
    pub(crate) fn admit(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = self.counted(ip) else {
            return true;
        };
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n as usize >= self.max {
            drop(open);
            if !self.episode.swap(true, Ordering::SeqCst) {
                warn!(
                    %ip,
                    max_per_ip = self.max,
                    "{ip} has {} connections open (--max-per-ip): closing its new connections at once; \
                     if many clients share that address (a proxy, a load balancer, NAT), \
                     --max-per-ip 0 lifts the cap",
                    self.max
                );
            }
            return false;
        }
        *n += 1;
        true
    }

    /// A connection from `ip` admitted by [`admit`](PerIp::admit) closed.
    pub(crate) fn leave(&self, ip: Option<IpAddr>) {
        let Some(ip) = self.counted(ip) else {
            return;
        };
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&ip);
            }
        }
        if open.is_empty() || open.values().all(|&n| (n as usize) < self.max) {
            self.episode.store(false, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn the_gate_is_exact_and_wakes_paused_workers() {
        let gate = Gate::new(2, 2);
        // Any backend posts: the fallback (epoll on Linux, no io_uring needed; IOCP on Windows).
        let mut port = ringport_port::Port::new(&ringport_port::PortConfig {
            backend: ringport_port::Backend::FALLBACK.choice(),
            ..ringport_port::PortConfig::default()
        })
        .unwrap();
        gate.register(1, port.poster());
        assert!(gate.reserve(0));
        assert!(gate.reserve(0));
        assert!(!gate.reserve(1), "full");
        assert_eq!(gate.taken(), 2);
        gate.release();
        let mut done = Vec::new();
        port.wait(&mut done, Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].key, SLOT_FREE);
        assert!(gate.reserve(1));
        assert!(!gate.reserve(0));
        gate.release();
        gate.release();
        assert_eq!(gate.taken(), 0);
    }

    #[test]
    fn per_ip_counts_each_address_and_zero_is_no_limit() {
        let a = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        let b = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        let limit = PerIp::new(2);
        assert!(limit.admit(a) && limit.admit(a));
        assert!(!limit.admit(a));
        assert!(limit.admit(b));
        limit.leave(a);
        assert!(limit.admit(a));
        assert!(limit.admit(None), "no address, no limit");
        let off = PerIp::new(0);
        assert!((0..10_000).all(|_| off.admit(a)));
    }

    /// Issue 14, item 6: the default cap reset `ringport stress --connections 2000` from the
    /// same machine after the 512th connection.
    #[test]
    fn loopback_is_exempt_unless_the_limit_covers_it() {
        let lo = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)));
        let lo6 = Some("::1".parse().unwrap());
        let mapped = Some("::ffff:127.0.0.9".parse().unwrap());
        let remote = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        let default = PerIp::with_loopback(2, false);
        for ip in [lo, lo6, mapped] {
            assert!((0..100).all(|_| default.admit(ip)), "{ip:?} is exempt");
        }
        assert!(default.admit(remote) && default.admit(remote));
        assert!(!default.admit(remote), "other addresses are still capped");
        for ip in [lo, lo6, mapped] {
            default.leave(ip);
        }
        let explicit = PerIp::with_loopback(2, true);
        assert!(explicit.admit(lo) && explicit.admit(lo));
        assert!(
            !explicit.admit(lo),
            "an explicit limit applies to loopback too"
        );
    }
}
