//! The completion model's idle and write timeouts: one scan of the worker's table per tick,
//! never a timer per operation. Each connection records the time of its last progress (the
//! worker's coarse clock, in milliseconds); one waiting for its peer's bytes longer than
//! `idle_timeout`, or for its peer to read its echo longer than `write_timeout`, is expired:
//! its operations are cancelled through the port, and their completions lead to the close.

use std::time::Duration;

use tracing::debug;

use super::worker::Worker;
use crate::echo::Waiting;

/// How often a worker scans for timeouts and publishes its counters, at most.
const TICK_MAX: Duration = Duration::from_secs(1);
/// How often at least (for very short timeouts).
const TICK_MIN: Duration = Duration::from_millis(50);

/// The longest timeout, in milliseconds (about 24.8 days): a longer one counts as this. It
/// keeps a connection's 32-bit record of its last progress readable (see
/// [`Conn::quiet_ms`](super::conn::Conn::quiet_ms)).
pub(super) const MAX_TIMEOUT_MS: u64 = (u32::MAX / 2) as u64;

/// Why a connection is closed by the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiry {
    /// Its peer sent nothing for `idle_timeout`.
    Idle,
    /// Its peer read none of its echo for `write_timeout`.
    Write,
}

/// A worker's timeouts in milliseconds of its clock (zero: none), and how often it scans.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    idle_ms: Option<u64>,
    write_ms: Option<u64>,
    /// How often the worker scans and publishes its counters: a second, a quarter of the
    /// shortest timeout when that is less (at least [`TICK_MIN`]).
    pub(super) tick: Duration,
}

impl Timeouts {
    pub(super) fn new(idle: Option<Duration>, write: Option<Duration>) -> Timeouts {
        let idle = idle.filter(|d| !d.is_zero());
        let write = write.filter(|d| !d.is_zero());
        let ms = |d: Option<Duration>| {
            d.map(|d| {
                u64::try_from(d.as_millis()).map_or(MAX_TIMEOUT_MS, |ms| ms.min(MAX_TIMEOUT_MS))
            })
        };
        let shortest = [idle, write].into_iter().flatten().min();
        let tick = shortest.map_or(TICK_MAX, |d| (d / 4).clamp(TICK_MIN, TICK_MAX));
        Timeouts {
            idle_ms: ms(idle),
            write_ms: ms(write),
            tick,
        }
    }

    /// Scans at least four times per handshake timeout too (TLS, WebSocket, the PROXY header),
    /// within the same bounds.
    pub(super) fn with_handshake(mut self, handshake: Option<Duration>) -> Timeouts {
        if let Some(d) = handshake.filter(|d| !d.is_zero()) {
            self.tick = self.tick.min((d / 4).clamp(TICK_MIN, TICK_MAX));
        }
        self
    }

    /// No timeout is set: the scan has nothing to do.
    fn is_off(&self) -> bool {
        self.idle_ms.is_none() && self.write_ms.is_none()
    }

    /// Whether a connection `waiting` for its peer, without progress for `quiet_ms`, is past
    /// its timeout.
    pub(super) fn expiry(&self, waiting: Waiting, quiet_ms: u64) -> Option<Expiry> {
        let (limit, expiry) = match waiting {
            Waiting::PeerData => (self.idle_ms, Expiry::Idle),
            Waiting::PeerReading => (self.write_ms, Expiry::Write),
            Waiting::Nothing => return None,
        };
        (quiet_ms >= limit?).then_some(expiry)
    }
}
impl Worker<'_> {
    /// Once per tick: publish the counters, expire the connections past their timeouts.
    pub(super) fn on_tick(&mut self) {
        self.publish();
        self.owned_tick::<super::tls_conn::TlsConn>();
        self.owned_tick::<super::ws_conn::WsConn>();
        self.owned_tick::<super::proxy_conn::ProxyConn>();
        if self.draining || self.timeouts.is_off() {
            return;
        }
        let now = self.now_ms;
        let mut expired = std::mem::take(&mut self.expired);
        for (key, conn) in self.conns.iter_mut() {
            let quiet_ms = conn.quiet_ms(now);
            let Some(expiry) = self.timeouts.expiry(conn.echo.waiting(), quiet_ms) else {
                continue;
            };
            match expiry {
                Expiry::Idle => self.stats.idle_closed += 1,
                Expiry::Write => self.stats.write_timeouts += 1,
            }
            let idle = expiry == Expiry::Idle;
            debug!(worker = self.id, peer = ?conn.peer, idle, "timeout: closing the connection");
            expired.push(key);
        }
        // Their operations are cancelled through the port; the completions lead to the close.
        for key in expired.drain(..) {
            if let Some(conn) = self.conns.get_mut(key) {
                let todo = conn.echo.force(self.bounds);
                self.apply(key, todo);
            }
        }
        self.expired = expired;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::completion::worker::testing::{pair, worker};
    use crate::ServeConfig;
    use ringport_port::{Accepted, Outcome, PortConfig};
    use std::io::Read;
    use std::time::Instant;

    #[test]
    fn the_tick_is_a_quarter_of_the_shortest_timeout_within_bounds() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(Timeouts::new(None, None).tick, TICK_MAX);
        assert!(Timeouts::new(None, None).is_off());
        assert!(
            Timeouts::new(Some(s(0)), Some(s(0))).is_off(),
            "zero is no timeout"
        );
        assert_eq!(Timeouts::new(Some(s(60)), None).tick, TICK_MAX);
        assert_eq!(Timeouts::new(Some(s(60)), Some(ms(2000))).tick, ms(500));
        assert_eq!(Timeouts::new(None, Some(ms(100))).tick, TICK_MIN);
        let long = Timeouts::new(Some(s(90 * 24 * 3600)), Some(s(u64::MAX)));
        assert_eq!(long.idle_ms, Some(MAX_TIMEOUT_MS), "at most MAX_TIMEOUT_MS");
        assert_eq!(long.write_ms, Some(MAX_TIMEOUT_MS));
        assert_eq!(Timeouts::new(Some(s(60)), None).idle_ms, Some(60_000));
    }

    #[test]
    fn a_connection_expires_by_what_it_waits_for() {
        let t = Timeouts::new(Some(Duration::from_millis(100)), None);
        assert_eq!(t.expiry(Waiting::PeerData, 99), None);
        assert_eq!(t.expiry(Waiting::PeerData, 100), Some(Expiry::Idle));
        assert_eq!(
            t.expiry(Waiting::PeerReading, 10_000),
            None,
            "no write timeout"
        );
        assert_eq!(t.expiry(Waiting::Nothing, 10_000), None);
        let t = Timeouts::new(None, Some(Duration::from_millis(100)));
        assert_eq!(t.expiry(Waiting::PeerData, 10_000), None, "no idle timeout");
        assert_eq!(t.expiry(Waiting::PeerReading, 100), Some(Expiry::Write));
    }

    /// The idle timeout closes a connection that sends nothing through the port (its receive
    /// is cancelled, the close follows) and frees its slot and its place at the gate, when the
    /// close has completed and not before: until then, whatever the scan and the other
    /// completions do, the slot and the place stay taken.
    #[test]
    fn the_idle_scan_cancels_through_the_port_and_frees_the_slot_after_the_close() {
        for backend in crate::completion::worker::testing::BACKENDS {
            let cfg = ServeConfig {
                port_config: PortConfig {
                    backend,
                    ..PortConfig::default()
                },
                idle_timeout: Some(Duration::from_millis(100)),
                ..ServeConfig::default()
            };
            let mut w = worker(&cfg);
            let (fd, mut client) = pair();
            assert!(w.gate.reserve(0));
            w.new_conn(Accepted {
                fd: fd.into(),
                peer: None,
            });
            let held = |w: &Worker<'_>, after: &str| {
                assert_eq!(
                    w.conns.len(),
                    1,
                    "slot freed after {after}, before the close, on {backend}"
                );
                assert_eq!(
                    w.gate.taken(),
                    1,
                    "place freed after {after}, before the close, on {backend}"
                );
            };
            let mut done = Vec::new();
            let mut closes = 0;
            let deadline = Instant::now() + Duration::from_secs(5);
            while closes == 0 {
                assert!(Instant::now() < deadline, "not closed on {backend}");
                w.now_ms = u64::try_from(w.epoch.elapsed().as_millis()).unwrap();
                w.on_tick();
                held(&w, "the scan");
                w.port
                    .wait(&mut done, Some(Duration::from_millis(20)))
                    .unwrap();
                for c in done.drain(..) {
                    if !matches!(c.outcome, Outcome::Closed(_)) {
                        let what = format!("{:?}", c.outcome);
                        w.on_completion(c);
                        held(&w, &what);
                        continue;
                    }
                    // The close has completed: now, and only now, the slot and the place go.
                    closes += 1;
                    w.on_completion(c);
                    assert!(w.conns.is_empty(), "slot kept after the close on {backend}");
                }
            }
            assert_eq!(closes, 1, "one close on {backend}");
            assert_eq!(w.stats.idle_closed, 1);
            assert_eq!(w.stats.closed, 1);
            assert_eq!(w.gate.taken(), 0, "its place is free");
            assert_eq!(w.port.in_flight(), 0, "every completion reaped");
            let mut b = [0u8; 1];
            assert_eq!(client.read(&mut b).unwrap(), 0, "closed for real");
        }
    }
}
