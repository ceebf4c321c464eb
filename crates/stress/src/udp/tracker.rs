//! One flow's account of its datagrams, without sockets: which are outstanding (sent, no echo
//! yet, within `--timeout`), which came back, which were lost, and what each echo was: the
//! first copy, a duplicate, a reordered one, or one too late.
//!
//! A ring of the last `horizon` sequence numbers holds each one's state and send time (8 bytes
//! a datagram, allocated once): the bounded window of outstanding datagrams and the bitmap of
//! those seen, for duplicates, in one. A datagram cannot be sent while the one `horizon` before
//! it is still outstanding ([`Tracker::can_send`]). The highest sequence number echoed so far
//! tells a reordered echo; the interarrival jitter is RFC 3550's (section 6.4.1), over the
//! first copies in their order of arrival.
//!
//! Only datagrams sent inside the measured window (`measured` at [`Tracker::sent`]) are
//! counted; the others (warm-up) are tracked the same way, so their echoes are recognised.

use ringport_report::datagrams::Datagrams;

/// The state of one sequence number, in the ring's top two bits.
const OUTSTANDING: u64 = 1 << 62;
const ECHOED: u64 = 2 << 62;
const LOST: u64 = 3 << 62;
const STATE: u64 = 3 << 62;
/// Sent inside the measured window.
const MEASURED: u64 = 1 << 61;
/// The send time's bits (nanoseconds from the start of the load: 73 years).
const TIME: u64 = MEASURED - 1;

/// What an echo was to its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The first copy of an outstanding datagram: it is now echoed.
    First {
        /// When the datagram was sent (ns from the start of the load).
        sent_ns: u64,
        /// It was sent inside the measured window.
        measured: bool,
        /// An echo of a later datagram of the flow came before it.
        reordered: bool,
    },
    /// Another copy of a datagram already echoed.
    Duplicate {
        /// When the datagram was sent.
        sent_ns: u64,
        /// It was sent inside the measured window.
        measured: bool,
    },
    /// The echo of a datagram already counted as lost (it came after `--timeout`).
    Late {
        /// When the datagram was sent.
        sent_ns: u64,
        /// It was sent inside the measured window.
        measured: bool,
    },
    /// A sequence number this flow has not sent: a damaged header.
    Unknown,
    /// A datagram older than the horizon: too old to tell what it is.
    Forgotten,
}

impl Arrival {
    /// The datagram's send time and whether it was measured, when the flow knows it.
    pub fn sent(self) -> Option<(u64, bool)> {
        match self {
            Arrival::First {
                sent_ns, measured, ..
            }
            | Arrival::Duplicate { sent_ns, measured }
            | Arrival::Late { sent_ns, measured } => Some((sent_ns, measured)),
            Arrival::Unknown | Arrival::Forgotten => None,
        }
    }
}

/// One flow's datagrams. See the module docs.
#[derive(Debug, Clone)]
pub struct Tracker {
    ring: Vec<u64>,
    mask: u64,
    /// The next sequence number to send.
    next: u64,
    /// The lowest sequence number not yet echoed or lost.
    low: u64,
    outstanding: usize,
    /// The highest sequence number an echo (any copy) has come back for.
    highest: Option<u64>,
    counts: Datagrams,
    /// RFC 3550's running jitter estimate, in nanoseconds.
    jitter_ns: f64,
    /// The previous first copy's transit time (arrival minus send), in nanoseconds.
    last_transit: Option<i128>,
    /// First copies the jitter was fed.
    jitter_samples: u64,
}

impl Tracker {
    /// A flow keeping the state of the last `horizon` sequence numbers (rounded up to a power
    /// of two, at least 2).
    pub fn new(horizon: usize) -> Tracker {
        let size = horizon.max(2).next_power_of_two();
        Tracker {
            ring: vec![0; size],
            mask: size as u64 - 1,
            next: 0,
            low: 0,
            outstanding: 0,
            highest: None,
            counts: Datagrams::default(),
            jitter_ns: 0.0,
            last_transit: None,
            jitter_samples: 0,
        }
    }

    /// The sequence number the next datagram gets.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Datagrams sent and neither echoed nor lost yet.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Whether another datagram may be sent: the horizon has room (the datagram `horizon`
    /// sequence numbers back is echoed or lost).
    pub fn can_send(&self) -> bool {
        self.next - self.low < self.ring.len() as u64
    }

    /// Records the next datagram as sent at `sent_ns`; returns its sequence number. Call only
    /// when [`can_send`](Self::can_send).
    pub fn sent(&mut self, sent_ns: u64, measured: bool) -> u64 {
        debug_assert!(self.can_send());
        let seq = self.next;
        self.ring[(seq & self.mask) as usize] =
            OUTSTANDING | if measured { MEASURED } else { 0 } | (sent_ns & TIME);
        self.next += 1;
        self.outstanding += 1;
        if measured {
            self.counts.sent += 1;
        }
        seq
    }

    /// Records an echo of sequence number `seq`, and says what it was.
    /// Counts it as echoed, duplicated or reordered; its bytes are the caller's to check
    /// ([`corrupted`](Self::corrupted)).
    pub fn echo(&mut self, seq: u64) -> Arrival {
        if seq >= self.next {
            return Arrival::Unknown;
        }
        if self.next - seq > self.ring.len() as u64 {
            return Arrival::Forgotten;
        }
        let slot = &mut self.ring[(seq & self.mask) as usize];
        let (sent_ns, measured) = (*slot & TIME, *slot & MEASURED != 0);
        let arrival = match *slot & STATE {
            OUTSTANDING => {
                *slot = (*slot & !STATE) | ECHOED;
                self.outstanding -= 1;
                let reordered = self.highest.is_some_and(|h| h > seq);
                if measured {
                    self.counts.echoed += 1;
                    self.counts.reordered += u64::from(reordered);
                }
                self.advance_low();
                Arrival::First {
                    sent_ns,
                    measured,
                    reordered,
                }
            }
            ECHOED => {
                if measured {
                    self.counts.duplicated += 1;
                }
                Arrival::Duplicate { sent_ns, measured }
            }
            _ => Arrival::Late { sent_ns, measured },
        };
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        arrival
    }

    /// Feeds the jitter estimate with a first copy sent at `sent_ns` that arrived at `at_ns`
    /// (RFC 3550 6.4.1: `J += (|D(i-1, i)| - J) / 16`); returns the transit difference `|D|`
    /// in nanoseconds, `None` for the flow's first (there is nothing to compare it with).
    pub fn transit(&mut self, sent_ns: u64, at_ns: u64) -> Option<u64> {
        let transit = i128::from(at_ns) - i128::from(sent_ns);
        let d = self.last_transit.map(|last| {
            let d = u64::try_from((transit - last).unsigned_abs()).unwrap_or(u64::MAX);
            self.jitter_ns += (d as f64 - self.jitter_ns) / 16.0;
            self.jitter_samples += 1;
            d
        });
        self.last_transit = Some(transit);
        d
    }

    /// The jitter estimate in microseconds; `None` before two first copies arrived.
    pub fn jitter_us(&self) -> Option<f64> {
        (self.jitter_samples > 0).then(|| self.jitter_ns / 1000.0)
    }

    /// Counts an echo (of a measured datagram, or one that cannot be attributed) whose bytes
    /// differ from what was sent.
    pub fn corrupted(&mut self) {
        self.counts.corrupted += 1;
    }

    /// Marks every outstanding datagram sent at or before `deadline_ns` as lost (its echo did
    /// not come within the timeout); returns how many.
    pub fn expire(&mut self, deadline_ns: u64) -> usize {
        let mut lost = 0;
        while self.low < self.next {
            let slot = &mut self.ring[(self.low & self.mask) as usize];
            if *slot & STATE == OUTSTANDING {
                if *slot & TIME > deadline_ns {
                    break;
                }
                *slot = (*slot & !STATE) | LOST;
                self.outstanding -= 1;
                lost += 1;
            }
            self.low += 1;
        }
        lost
    }

    /// Marks every outstanding datagram as lost (the run is over).
    pub fn expire_all(&mut self) -> usize {
        self.expire(TIME)
    }

    /// The flow's counts so far (`lost` is `sent - echoed`).
    pub fn counts(&self) -> Datagrams {
        Datagrams {
            lost: self.counts.sent - self.counts.echoed,
            ..self.counts
        }
    }

    fn advance_low(&mut self) {
        while self.low < self.next
            && self.ring[(self.low & self.mask) as usize] & STATE != OUTSTANDING
        {
            self.low += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_copies_duplicates_and_reordering_are_told_apart() {
        let mut t = Tracker::new(16);
        for i in 0..5 {
            assert_eq!(t.sent(100 * i, true), i);
        }
        assert_eq!(
            t.echo(0),
            Arrival::First {
                sent_ns: 0,
                measured: true,
                reordered: false
            }
        );
        assert!(matches!(t.echo(2), Arrival::First { .. }));
        assert!(
            matches!(
                t.echo(1),
                Arrival::First {
                    reordered: true,
                    ..
                }
            ),
            "after 2"
        );
        assert!(matches!(t.echo(1), Arrival::Duplicate { .. }));
        assert!(matches!(t.echo(2), Arrival::Duplicate { .. }));
        assert_eq!(t.echo(9), Arrival::Unknown);
        assert_eq!(t.outstanding(), 2);
        let c = t.counts();
        assert_eq!(
            (c.sent, c.echoed, c.lost, c.duplicated, c.reordered),
            (5, 3, 2, 2, 1)
        );
    }

    #[test]
    fn a_datagram_past_its_timeout_is_lost_and_its_late_echo_does_not_count() {
        let mut t = Tracker::new(4);
        t.sent(10, true);
        t.sent(20, true);
        t.sent(30, true);
        assert!(matches!(t.echo(1), Arrival::First { .. }));
        assert_eq!(t.expire(25), 1, "0 is lost, 1 was echoed, 2 is not due yet");
        assert_eq!(t.outstanding(), 1);
        assert_eq!(
            t.echo(0),
            Arrival::Late {
                sent_ns: 10,
                measured: true
            }
        );
        assert_eq!(t.expire_all(), 1);
        let c = t.counts();
        assert_eq!((c.sent, c.echoed, c.lost, c.reordered), (3, 1, 2, 0));
    }

    #[test]
    fn the_horizon_bounds_what_is_outstanding_and_remembered() {
        let mut t = Tracker::new(3); // 4 slots
        for i in 0..4 {
            t.sent(i, true);
        }
        assert!(
            !t.can_send(),
            "0 is still outstanding, 4 sequence numbers back"
        );
        assert!(matches!(t.echo(0), Arrival::First { .. }));
        assert!(t.can_send());
        t.sent(4, true);
        assert_eq!(t.echo(0), Arrival::Forgotten, "its slot is 4's now");
    }

    #[test]
    fn unmeasured_datagrams_are_tracked_but_not_counted() {
        let mut t = Tracker::new(8);
        t.sent(0, false);
        t.sent(1, true);
        assert!(matches!(
            t.echo(0),
            Arrival::First {
                measured: false,
                ..
            }
        ));
        t.echo(0);
        let c = t.counts();
        assert_eq!((c.sent, c.echoed, c.lost, c.duplicated), (1, 0, 1, 0));
    }

    #[test]
    fn jitter_follows_rfc_3550() {
        let mut t = Tracker::new(8);
        assert_eq!(t.jitter_us(), None);
        // Transits 1000, 3000, 2000 ns: D = 2000 then 1000.
        assert_eq!(
            t.transit(0, 1000),
            None,
            "nothing to compare the first with"
        );
        assert_eq!(t.transit(10_000, 13_000), Some(2000));
        assert_eq!(t.transit(20_000, 22_000), Some(1000));
        let j1 = 2000.0 / 16.0;
        let j2 = j1 + (1000.0 - j1) / 16.0;
        assert!((t.jitter_us().unwrap() - j2 / 1000.0).abs() < 1e-12);
    }
}
