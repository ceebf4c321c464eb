//! The figures of a UDP run (`stress --udp`): the `datagrams` object (every datagram counted
//! exactly: sent, echoed, lost, duplicated, reordered, corrupted), the `jitter_us` object (RFC
//! 3550's interarrival jitter), the loss target (`--max-loss`) and the `udp_offload` object
//! (Linux's segmentation offload: whether it was used). Absent from TCP runs.

use serde::{Deserialize, Serialize};

/// What became of a UDP run's datagrams: the `datagrams` object of the JSON output. Every count
/// is exact, and adds across merged runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Datagrams {
    /// Datagrams sent in the measured window.
    pub sent: u64,
    /// Distinct datagrams whose echo came back within `--timeout`, damaged ones included.
    pub echoed: u64,
    /// `sent - echoed`: no echo within `--timeout`.
    pub lost: u64,
    /// Extra copies that came back (an echo of a datagram already echoed).
    pub duplicated: u64,
    /// Echoes that arrived after an echo of a later datagram of the same flow.
    pub reordered: u64,
    /// Echoes (every copy) whose bytes differ from what was sent.
    pub corrupted: u64,
}

impl Datagrams {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Datagrams) {
        self.sent += other.sent;
        self.echoed += other.echoed;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.corrupted += other.corrupted;
    }

    /// Lost datagrams in percent of those sent (0 when none was sent).
    pub fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            100.0 * self.lost as f64 / self.sent as f64
        }
    }
}

/// The datagrams sent in one second of the measured phase and what became of them: an entry of
/// the `datagrams_over_time` array. Each datagram counts in the second it was sent in (its
/// echo, duplicates and damage too), so `lost` is exact per second and the seconds add up to
/// the run's `datagrams`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatagramSecond {
    /// The second, counted from the start of the measured phase (0 is its first second).
    pub second: u64,
    /// The counts of the datagrams sent in it.
    #[serde(flatten)]
    pub counts: Datagrams,
}

/// The interarrival jitter of RFC 3550 (section 6.4.1), in microseconds: each flow's running
/// estimate at the end of the run, over its flows. The `jitter_us` object of the JSON output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Jitter {
    /// The mean of the flows' jitter (merged runs: weighted by their flows).
    pub mean: f64,
    /// The largest flow's jitter (merged runs: the largest of all).
    pub max: f64,
    /// Flows that had two echoes or more, the ones the figures are over.
    pub flows: u64,
}

impl Jitter {
    /// The figures of the flows' jitters `per_flow` (in microseconds).
    pub fn of(per_flow: &[f64]) -> Jitter {
        let flows = per_flow.len() as u64;
        let sum: f64 = per_flow.iter().sum();
        Jitter {
            mean: if flows == 0 { 0.0 } else { sum / flows as f64 },
            max: per_flow.iter().copied().fold(0.0, f64::max),
            flows,
        }
    }

    /// Several runs' jitter as one: the mean weighted by flows, the largest max.
    pub fn merged<'a>(all: impl IntoIterator<Item = &'a Jitter>) -> Jitter {
        let (mut weighted, mut flows, mut max) = (0.0, 0u64, 0.0f64);
        for j in all {
            weighted += j.mean * j.flows as f64;
            flows += j.flows;
            max = max.max(j.max);
        }
        Jitter {
            mean: if flows == 0 {
                0.0
            } else {
                weighted / flows as f64
            },
            max,
            flows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_and_loss_is_a_share_of_the_sent() {
        let mut a = Datagrams {
            sent: 10,
            echoed: 9,
            lost: 1,
            duplicated: 2,
            reordered: 3,
            corrupted: 4,
        };
        a.add(&a.clone());
        assert_eq!(
            a,
            Datagrams {
                sent: 20,
                echoed: 18,
                lost: 2,
                duplicated: 4,
                reordered: 6,
                corrupted: 8
            }
        );
        assert_eq!(a.loss_pct(), 10.0);
        assert_eq!(Datagrams::default().loss_pct(), 0.0);
    }

    #[test]
    fn offload_adds_on_only_where_every_part_had_it() {
        let mut a = UdpOffload {
            gso: true,
            gro: true,
            segmented_sends: 5,
            coalesced_receives: 4,
        };
        a.add(&UdpOffload {
            gso: true,
            gro: false,
            segmented_sends: 1,
            coalesced_receives: 0,
        });
        assert_eq!(
            a,
            UdpOffload {
                gso: true,
                gro: false,
                segmented_sends: 6,
                coalesced_receives: 4
            }
        );
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            json,
            r#"{"gso":true,"gro":false,"segmented_sends":6,"coalesced_receives":4}"#
        );
    }

    #[test]
    fn jitter_merges_weighted_by_flows() {
        let a = Jitter::of(&[10.0, 20.0]);
        assert_eq!((a.mean, a.max, a.flows), (15.0, 20.0, 2));
        let b = Jitter::of(&[60.0]);
        let m = Jitter::merged([&a, &b]);
        assert_eq!((m.mean, m.max, m.flows), (30.0, 60.0, 3));
        assert_eq!(Jitter::merged([]).flows, 0);
    }
}

/// Whether the client used Linux's UDP segmentation offload, and how often: the `udp_offload`
/// object of the JSON output (`stress --udp`; all off with `--no-gso`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpOffload {
    /// A flow's datagrams that may leave together went in one send, split by the system
    /// (`UDP_SEGMENT`), on every client thread.
    pub gso: bool,
    /// Echoes could come back coalesced, several in one receive (`UDP_GRO`), on every client
    /// thread.
    pub gro: bool,
    /// Sends that carried several datagrams.
    pub segmented_sends: u64,
    /// Receives that held several echoes.
    pub coalesced_receives: u64,
}

impl UdpOffload {
    /// Adds `other` (another thread's or agent's): on only where on in both, counts added.
    pub fn add(&mut self, other: &UdpOffload) {
        self.gso &= other.gso;
        self.gro &= other.gro;
        self.segmented_sends += other.segmented_sends;
        self.coalesced_receives += other.coalesced_receives;
    }
}
