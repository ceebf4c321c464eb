//! The figures of a UDP run (`stress --udp`): the `datagrams` object (every datagram counted
//! exactly: sent, echoed, lost, duplicated, reordered, corrupted), the same counts per flow
//! (`datagram_flows`) and per second (`datagrams_over_time`, with each second's jitter), the
//! `jitter_us` object (RFC 3550's interarrival jitter), the loss target (`--max-loss`) and the
//! `udp_offload` object (Linux's segmentation offload: whether it was used). Absent from TCP
//! runs.

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DatagramSecond {
    /// The second, counted from the start of the measured phase (0 is its first second).
    pub second: u64,
    /// The counts of the datagrams sent in it.
    #[serde(flatten)]
    pub counts: Datagrams,
    /// The second's jitter in microseconds: the mean of RFC 3550's transit differences
    /// `|D(i-1, i)|` of the intact first copies of datagrams sent in it (each against the
    /// previous one of its flow), what the running estimate of `jitter_us` smooths; `null` when
    /// the second has none (and in results from before it).
    #[serde(default)]
    pub jitter_us: Option<f64>,
    /// The transit differences `jitter_us` is the mean of (they add up, over the seconds, to
    /// the run's intact first copies minus one per flow that had any).
    #[serde(default)]
    pub jitter_samples: u64,
}

impl DatagramSecond {
    /// Adds `other`'s counts and jitter to this second's: the counts summed, the jitter's mean
    /// weighted by samples.
    pub fn add(&mut self, other: &DatagramSecond) {
        self.counts.add(&other.counts);
        let samples = self.jitter_samples + other.jitter_samples;
        let sum = |s: &DatagramSecond| s.jitter_us.unwrap_or(0.0) * s.jitter_samples as f64;
        self.jitter_us = (samples > 0).then(|| (sum(self) + sum(other)) / samples as f64);
        self.jitter_samples = samples;
    }
}

/// One second's account as the client keeps it while it runs: the counts of the datagrams
/// sent in it and the transit differences of their intact first copies, in whole nanoseconds,
/// so threads add exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecondAccount {
    /// The datagrams sent in the second and what became of them.
    pub counts: Datagrams,
    /// The sum of the transit differences `|D|`, in nanoseconds.
    pub jitter_sum_ns: u64,
    /// How many transit differences.
    pub jitter_samples: u64,
}

impl SecondAccount {
    /// Adds `other`'s counts and transit differences to these.
    pub fn add(&mut self, other: &SecondAccount) {
        self.counts.add(&other.counts);
        self.jitter_sum_ns += other.jitter_sum_ns;
        self.jitter_samples += other.jitter_samples;
    }

    /// Counts one transit difference of `d_ns` nanoseconds.
    pub fn transit_difference(&mut self, d_ns: u64) {
        self.jitter_sum_ns = self.jitter_sum_ns.saturating_add(d_ns);
        self.jitter_samples += 1;
    }

    /// The entry of `datagrams_over_time` for second `second` (`lost` made `sent - echoed`).
    pub fn to_second(&self, second: u64) -> DatagramSecond {
        DatagramSecond {
            second,
            counts: Datagrams {
                lost: self.counts.sent - self.counts.echoed,
                ..self.counts
            },
            jitter_us: (self.jitter_samples > 0)
                .then(|| self.jitter_sum_ns as f64 / self.jitter_samples as f64 / 1000.0),
            jitter_samples: self.jitter_samples,
        }
    }
}

/// One flow's datagrams: an entry of the `datagram_flows` array. The flows of a run add up to
/// its `datagrams`, exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DatagramFlow {
    /// The flow, numbered from 1 over the whole run (with `--segment`, a segment's flows keep
    /// their numbers in the whole run).
    pub flow: u64,
    /// In a merged result, the agent the flow is of: its place in `merged_from`, from 1 (the
    /// agents of a merge each number their flows); absent for one run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<u64>,
    /// What became of the flow's datagrams.
    #[serde(flatten)]
    pub counts: Datagrams,
    /// The flow's RFC 3550 interarrival jitter at the end of the run, in microseconds; `null`
    /// before two intact echoes.
    pub jitter_us: Option<f64>,
}

impl DatagramFlow {
    /// `flows` ordered worst first: by share lost, then datagrams lost, corrupted, duplicated
    /// and reordered, then agent and flow.
    pub fn worst_first(flows: &[DatagramFlow]) -> Vec<DatagramFlow> {
        let mut v = flows.to_vec();
        v.sort_by(|a, b| {
            let key = |f: &DatagramFlow| {
                let c = f.counts;
                (c.lost, c.corrupted, c.duplicated, c.reordered)
            };
            b.counts
                .loss_pct()
                .total_cmp(&a.counts.loss_pct())
                .then_with(|| key(b).cmp(&key(a)))
                .then_with(|| (a.agent, a.flow).cmp(&(b.agent, b.flow)))
        });
        v
    }

    /// The flow's name for people: `3`, or `2/3` (agent 2's flow 3) in a merged result.
    pub fn label(&self) -> String {
        match self.agent {
            Some(a) => format!("{a}/{}", self.flow),
            None => self.flow.to_string(),
        }
    }
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
    fn seconds_add_counts_and_weigh_jitter_by_samples() {
        let mut a = SecondAccount::default();
        a.counts.sent = 4;
        a.counts.echoed = 3;
        a.transit_difference(1000);
        a.transit_difference(3000);
        let mut b = SecondAccount::default();
        b.counts.sent = 1;
        b.transit_difference(8000);
        let one = a.to_second(2);
        assert_eq!((one.second, one.counts.lost), (2, 1));
        assert_eq!((one.jitter_us, one.jitter_samples), (Some(2.0), 2));
        let mut both = a;
        both.add(&b);
        let whole = both.to_second(2);
        assert_eq!(whole.jitter_us, Some(4.0), "(1 + 3 + 8) / 3 µs");
        let mut merged = one;
        merged.add(&b.to_second(2));
        assert_eq!(merged, whole, "merging entries equals adding accounts");
        assert_eq!(SecondAccount::default().to_second(0).jitter_us, None);
    }

    #[test]
    fn flows_worst_first_by_share_lost() {
        let flow = |flow, sent, echoed, corrupted| DatagramFlow {
            flow,
            agent: None,
            counts: Datagrams {
                sent,
                echoed,
                lost: sent - echoed,
                corrupted,
                ..Datagrams::default()
            },
            jitter_us: None,
        };
        let flows = [
            flow(1, 100, 100, 0),
            flow(2, 10, 5, 0),
            flow(3, 100, 90, 0),
            flow(4, 100, 100, 2),
            flow(5, 100, 90, 0),
        ];
        let order: Vec<u64> = DatagramFlow::worst_first(&flows)
            .iter()
            .map(|f| f.flow)
            .collect();
        assert_eq!(order, [2, 3, 5, 4, 1]);
        let merged = DatagramFlow {
            agent: Some(2),
            ..flows[2]
        };
        assert_eq!(
            (flows[2].label(), merged.label()),
            ("3".into(), "2/3".into())
        );
    }

    #[test]
    fn a_flow_serialises_flat_and_its_agent_only_when_merged() {
        let f = DatagramFlow {
            flow: 1,
            agent: None,
            counts: Datagrams {
                sent: 3,
                echoed: 2,
                lost: 1,
                ..Datagrams::default()
            },
            jitter_us: Some(1.5),
        };
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(
            json,
            r#"{"flow":1,"sent":3,"echoed":2,"lost":1,"duplicated":0,"reordered":0,"corrupted":0,"jitter_us":1.5}"#
        );
        let back: DatagramFlow = serde_json::from_str(&json).unwrap();
        assert_eq!(back, f);
        let merged = DatagramFlow {
            agent: Some(2),
            ..f
        };
        assert!(serde_json::to_string(&merged)
            .unwrap()
            .contains(r#""agent":2,"#));
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
