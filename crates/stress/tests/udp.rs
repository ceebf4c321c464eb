//! `stress --udp` against a UDP echo of the test's own that misbehaves on a fixed pattern and
//! counts what it did: every count of the report must equal the echo's, on every backend.
//!
//! The echo numbers the datagrams it receives (all flows together, from 1) and, for the n-th:
//! drops it when n is a multiple of 7; otherwise flips its last byte (in the payload) when n is
//! a multiple of 17, sends it twice when n is a multiple of 11, and holds it back until after
//! the next datagram of its flow when n is a multiple of 13 (at most 20 ms, and no longer than
//! until another is held back).
//! From what it sent to each client socket, in order, it counts the reordered echoes the way
//! the client must: a first copy sent after a copy of a later datagram of the same flow. It
//! keeps every count per flow too (the flow named by the header), which the report's
//! `datagram_flows` must equal. The counts are exact whether the client sends a flow's
//! datagrams several per send (Linux's segmentation offload, the default) or one per send
//! (`--no-gso`).

mod util;

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The longest a datagram is held back (well within the client's `--timeout`).
const HOLD_MAX: Duration = Duration::from_millis(20);

use ringport_report::datagrams::Datagrams;
use ringport_stress::config::StressConfig;
use ringport_stress::error::ErrorKind;

/// The header's sequence number (bytes 4..12, little-endian).
fn seq_of(d: &[u8]) -> u64 {
    u64::from_le_bytes(d[4..12].try_into().unwrap())
}

/// The header's flow (bytes 0..4, little-endian; 0-based).
fn flow_of(d: &[u8]) -> u32 {
    u32::from_le_bytes(d[0..4].try_into().unwrap())
}

/// What the echo did per flow (0-based): the counts, and the corrupted first copies.
type PerFlow = HashMap<u32, (Datagrams, u64)>;

/// What the echo did, as the client must count it.
#[derive(Default)]
struct Done {
    expected: Datagrams,
    per_flow: PerFlow,
    /// First copies already sent, per client socket.
    first: HashSet<(SocketAddr, u64)>,
    /// The highest sequence number sent back so far, per client socket.
    highest: HashMap<SocketAddr, u64>,
    /// Corrupted first copies (the client verifies the other first copies).
    first_corrupted: u64,
}

impl Done {
    /// Sends `copies` of `d` to `to` and counts them.
    fn send(&mut self, s: &UdpSocket, d: &[u8], to: SocketAddr, copies: u64, flipped: bool) {
        let seq = seq_of(d);
        let flow = self.per_flow.entry(flow_of(d)).or_default();
        for _ in 0..copies {
            s.send_to(d, to).unwrap();
            let mut one = Datagrams::default();
            if self.first.insert((to, seq)) {
                one.echoed += 1;
                self.first_corrupted += u64::from(flipped);
                flow.1 += u64::from(flipped);
                if self.highest.get(&to).is_some_and(|&h| h > seq) {
                    one.reordered += 1;
                }
            } else {
                one.duplicated += 1;
            }
            let h = self.highest.entry(to).or_insert(seq);
            *h = (*h).max(seq);
            if flipped {
                one.corrupted += 1;
            }
            self.expected.add(&one);
            flow.0.add(&one);
        }
    }
}

/// Starts the misbehaving echo; returns its address, the flag that stops it and its thread,
/// which returns the counts the client's report must show, the corrupted first copies, and
/// both per flow.
fn misbehaving_echo() -> (
    SocketAddr,
    Arc<AtomicBool>,
    thread::JoinHandle<(Datagrams, u64, PerFlow)>,
) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let addr = s.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let join = thread::spawn(move || {
        let mut done = Done::default();
        let mut buf = vec![0u8; 70_000];
        let mut n = 0u64;
        let mut held: Option<(Vec<u8>, SocketAddr, u64, bool, Instant)> = None;
        while !flag.load(Ordering::Relaxed) {
            let (len, from) = match s.recv_from(&mut buf) {
                Ok(got) => got,
                Err(_) => {
                    // Quiet: what is held back goes now.
                    if let Some((d, to, copies, flipped, _)) = held.take() {
                        done.send(&s, &d, to, copies, flipped);
                    }
                    continue;
                }
            };
            n += 1;
            done.expected.sent += 1;
            let mut d = buf[..len].to_vec();
            let flow = &mut done.per_flow.entry(flow_of(&d)).or_default().0;
            flow.sent += 1;
            if n % 7 == 0 {
                done.expected.lost += 1;
                flow.lost += 1;
            } else {
                let flipped = n % 17 == 0;
                if flipped {
                    *d.last_mut().unwrap() ^= 0x20;
                }
                let copies = if n % 11 == 0 { 2 } else { 1 };
                if n % 13 == 0 {
                    if let Some((d, to, copies, flipped, _)) = held.take() {
                        done.send(&s, &d, to, copies, flipped);
                    }
                    held = Some((d, from, copies, flipped, Instant::now()));
                    continue;
                }
                done.send(&s, &d, from, copies, flipped);
            }
            // The held datagram goes after the next one of its flow (its echo is then
            // reordered, unless that one was dropped).
            if held
                .as_ref()
                .is_some_and(|h| h.1 == from || h.4.elapsed() > HOLD_MAX)
            {
                let (d, to, copies, flipped, _) = held.take().unwrap();
                done.send(&s, &d, to, copies, flipped);
            }
        }
        (done.expected, done.first_corrupted, done.per_flow)
    });
    (addr, stop, join)
}

fn udp_config(addr: SocketAddr) -> StressConfig {
    StressConfig {
        port: addr.port(),
        udp: true,
        threads: 2,
        connections: 2,
        size: Some(64),
        timeout: Duration::from_secs(2),
        ..StressConfig::default()
    }
}

/// Every count equals what the echo did; corrupted echoes are mismatch errors.
fn check_exact(config: StressConfig) {
    // Each backend gets an echo of its own, so the echo's counts are the run's.
    for &backend in util::BACKENDS {
        let (addr, stop, join) = misbehaving_echo();
        let c = StressConfig {
            backend,
            port: addr.port(),
            ..config.clone()
        };
        let outcome = ringport_stress::engine::run(&c).unwrap();
        stop.store(true, Ordering::Relaxed);
        let (expected, first_corrupted, per_flow) = join.join().unwrap();
        let r = &outcome.report;
        eprintln!("--- {backend:?}\n{}", r.render());
        let got = r.datagrams.expect("a UDP run reports its datagrams");
        assert_eq!(got, expected, "{backend:?}: every count exact");
        let mut by_second = Datagrams::default();
        for s in &r.datagrams_over_time {
            by_second.add(&s.counts);
        }
        assert_eq!(by_second, got, "the seconds add up to the run");
        assert_eq!(expected.sent, c.count.unwrap() * c.connections as u64);
        for (what, n) in [
            ("lost", expected.lost),
            ("duplicated", expected.duplicated),
            ("reordered", expected.reordered),
            ("corrupted", expected.corrupted),
        ] {
            assert!(n > 0, "the pattern produced no {what} datagram");
        }
        assert_eq!(
            r.errors_by_kind.get(ErrorKind::Mismatch),
            expected.corrupted
        );
        assert_eq!(r.exit_code(), 1, "corrupted echoes fail the run");
        assert_eq!(
            r.messages,
            expected.echoed - first_corrupted,
            "intact first copies are the verified round trips"
        );
        assert!(r.jitter_us.is_some_and(|j| j.flows == 2));
        check_flows(r, &per_flow, backend);
        let offload = r.udp_offload.expect("a UDP run says how it sent");
        // Several datagrams per send wherever a flow may send several at once (Linux): in
        // closed loop with a pipeline (its first ones at least leave together); in open loop
        // when sends come due together, which depends on the clock.
        let open = c.rate.is_some();
        let gso = !c.no_gso && (open || c.pipeline > 1) && cfg!(target_os = "linux");
        assert_eq!(offload.gso, gso, "{offload:?}");
        if !open || !gso {
            assert_eq!(offload.segmented_sends > 0, gso, "{offload:?}");
        }
        // This echo sends one datagram at a time: nothing comes back coalesced.
        assert_eq!(offload.coalesced_receives, 0, "{offload:?}");
        if c.no_gso {
            assert!(!offload.gro, "{offload:?}");
        }
    }
}

/// Each flow's counts equal what the echo did to that flow; the flows add up to the run, and
/// the seconds' jitter samples to the intact first copies of each flow after its first.
fn check_flows(
    r: &ringport_report::StressReport,
    per_flow: &PerFlow,
    backend: ringport_port::BackendChoice,
) {
    let flows = &r.datagram_flows;
    assert_eq!(
        flows.len(),
        r.connections,
        "{backend:?}: one entry per flow"
    );
    let mut total = Datagrams::default();
    let mut samples = 0;
    for (i, f) in flows.iter().enumerate() {
        assert_eq!(f.flow, i as u64 + 1, "numbered from 1, in order");
        assert_eq!(f.agent, None, "one run: no agent");
        let (expected, first_corrupted) = per_flow[&(f.flow as u32 - 1)];
        assert_eq!(f.counts, expected, "{backend:?}: flow {} exact", f.flow);
        assert!(
            expected.lost > 0 && expected.echoed > 0,
            "the pattern reached flow {}",
            f.flow
        );
        total.add(&f.counts);
        let intact = expected.echoed - first_corrupted;
        samples += intact.saturating_sub(1);
        assert_eq!(f.jitter_us.is_some(), intact >= 2, "flow {}", f.flow);
    }
    assert_eq!(Some(total), r.datagrams, "the flows add up to the run");
    let mut by_second = 0;
    for s in &r.datagrams_over_time {
        by_second += s.jitter_samples;
        match s.jitter_us {
            Some(j) => assert!(j.is_finite() && j >= 0.0 && s.jitter_samples > 0, "{s:?}"),
            None => assert_eq!(s.jitter_samples, 0, "{s:?}"),
        }
    }
    assert_eq!(
        by_second, samples,
        "every transit difference counted in the second its datagram was sent in"
    );
    assert!(
        r.datagrams_over_time.iter().any(|s| s.jitter_us.is_some()),
        "a second's jitter"
    );
}

#[test]
fn open_loop_counts_equal_what_the_echo_did() {
    check_exact(StressConfig {
        rate: Some(1000.0),
        count: Some(300),
        ..udp_config("127.0.0.1:9".parse().unwrap())
    });
}

#[test]
fn closed_loop_counts_equal_what_the_echo_did() {
    check_exact(StressConfig {
        pipeline: 8,
        count: Some(150),
        timeout: Duration::from_secs(1),
        ..udp_config("127.0.0.1:9".parse().unwrap())
    });
}

#[test]
fn closed_loop_counts_equal_what_the_echo_did_one_datagram_per_send() {
    check_exact(StressConfig {
        pipeline: 8,
        count: Some(150),
        timeout: Duration::from_secs(1),
        no_gso: true,
        ..udp_config("127.0.0.1:9".parse().unwrap())
    });
}
