//! The UDP echo with Linux segmentation offload, on io_uring and epoll: a client's segmented
//! send (`UDP_SEGMENT`: one call, the system splits it, the last datagram may be shorter)
//! reaches the echo coalesced (`UDP_GRO`) and comes back as exactly the datagrams sent, each
//! whole and in order; the counters count datagrams, not receives; the policy (denied ports,
//! the rate per source) holds per datagram; with the offload off the echo is the same, one
//! datagram per receive.
#![cfg(target_os = "linux")]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use ringport_port::os::udp_segment;
use ringport_port::{BackendChoice, PortConfig};
use ringport_server::udp::{UdpConfig, UdpStats};
use ringport_server::{ServeConfig, Shutdown};

/// A running UDP echo (alone) on `backend` with `udp`'s settings; returns its address and a
/// function that stops it and hands back its counters and its backend's description.
fn echo(
    backend: BackendChoice,
    udp: UdpConfig,
) -> (SocketAddr, impl FnOnce() -> (UdpStats, String)) {
    let cfg = ServeConfig {
        port: 0,
        workers: 1,
        port_config: PortConfig {
            backend,
            ..PortConfig::default()
        },
        udp: Some(UdpConfig { only: true, ..udp }),
        ..ServeConfig::default()
    };
    let shutdown = Shutdown::new();
    let running = ringport_server::start(&cfg, shutdown.clone()).expect("the server starts");
    let addr = running.local_addr();
    let stop = move || {
        shutdown.trigger();
        let summary = running.wait().expect("a clean shutdown");
        (*summary.udp.expect("the echo's counters"), summary.backend)
    };
    (addr, stop)
}

/// A loopback client that gives up after 5 s.
fn client() -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

/// `k` datagrams of `segment` bytes and one of `last` (none when 0), each with its own bytes.
fn burst(k: usize, segment: usize, last: usize) -> Vec<Vec<u8>> {
    let mut sizes = vec![segment; k];
    if last > 0 {
        sizes.push(last);
    }
    sizes
        .iter()
        .enumerate()
        .map(|(d, &n)| (0..n).map(|i| ((d * 37 + i) % 251) as u8).collect())
        .collect()
}

/// Sends `datagrams` from `c` to `to` in one segmented send.
fn send_segmented(c: &UdpSocket, to: SocketAddr, datagrams: &[Vec<u8>]) {
    udp_segment(c, u16::try_from(datagrams[0].len()).unwrap()).unwrap();
    let all = datagrams.concat();
    assert_eq!(c.send_to(&all, to).unwrap(), all.len());
}

/// Reads `want.len()` echoes from `c` and checks each, in order, byte for byte.
#[track_caller]
fn expect_echoes(c: &UdpSocket, from: SocketAddr, want: &[Vec<u8>]) {
    let mut back = vec![0u8; 65_536];
    for (i, d) in want.iter().enumerate() {
        let (n, source) = c.recv_from(&mut back).expect("an echo within 5 s");
        assert_eq!(source, from);
        assert_eq!(&back[..n], &d[..], "echo {i} of {}", want.len());
    }
}

/// The bursts every test sends: (full datagrams, their size, the shorter last one's).
const BURSTS: [(usize, usize, usize); 4] =
    [(10, 64, 0), (5, 1400, 700), (3, 1200, 1), (2, 9000, 0)];

fn burst_echo(backend: BackendChoice, offload: bool) {
    let (addr, stop) = echo(
        backend,
        UdpConfig {
            offload,
            ..UdpConfig::default()
        },
    );
    let c = client();
    let mut datagrams = 0;
    let mut bytes = 0;
    for (k, segment, last) in BURSTS {
        let sent = burst(k, segment, last);
        send_segmented(&c, addr, &sent);
        expect_echoes(&c, addr, &sent);
        datagrams += sent.len() as u64;
        bytes += sent.iter().map(Vec::len).sum::<usize>() as u64;
    }
    let (stats, described) = stop();
    assert_eq!(stats.datagrams_in, datagrams, "{stats:?}");
    assert_eq!(stats.datagrams_out, datagrams, "{stats:?}");
    assert_eq!(
        (stats.bytes_in, stats.bytes_out),
        (bytes, bytes),
        "{stats:?}"
    );
    assert_eq!(stats.send_errors + stats.truncated, 0, "{stats:?}");
    if offload {
        assert!(described.ends_with("GRO/GSO"), "{described}");
        // Loopback keeps a segmented send whole up to a socket that takes it coalesced.
        assert_eq!(stats.coalesced_in, BURSTS.len() as u64, "{stats:?}");
        assert_eq!(stats.segmented_out, BURSTS.len() as u64, "{stats:?}");
    } else {
        assert!(!described.contains("GRO"), "{described}");
        assert_eq!(stats.coalesced_in + stats.segmented_out, 0, "{stats:?}");
    }
}

#[test]
fn a_segmented_burst_comes_back_as_its_datagrams_each_counted() {
    for backend in support::BACKENDS {
        burst_echo(backend, true);
    }
}

#[test]
fn without_offload_a_segmented_burst_comes_back_the_same() {
    for backend in support::BACKENDS {
        burst_echo(backend, false);
    }
}

#[test]
fn the_rate_per_source_admits_the_first_datagrams_of_a_coalesced_receive() {
    for backend in support::BACKENDS {
        let (addr, stop) = echo(
            backend,
            UdpConfig {
                max_pps_per_ip: 5,
                limit_loopback: true,
                ..UdpConfig::default()
            },
        );
        let c = client();
        // Eight at once: a second's worth (5) is echoed, the first five; three are refused.
        let sent = burst(7, 300, 100);
        send_segmented(&c, addr, &sent);
        expect_echoes(&c, addr, &sent[..5]);
        let (stats, _) = stop();
        assert_eq!(stats.datagrams_in, 8, "{stats:?}");
        assert_eq!(stats.datagrams_out, 5, "{stats:?}");
        assert_eq!(stats.rate_limited, 3, "{stats:?}");
        assert_eq!(stats.coalesced_in, 1, "{stats:?}");
    }
}

#[test]
fn a_denied_port_gets_no_datagram_of_a_coalesced_receive() {
    for backend in support::BACKENDS {
        let c = client();
        let denied = c.local_addr().unwrap().port();
        let (addr, stop) = echo(
            backend,
            UdpConfig {
                deny_ports: vec![denied],
                ..UdpConfig::default()
            },
        );
        let sent = burst(6, 500, 0);
        send_segmented(&c, addr, &sent);
        // A datagram from an allowed port after it: echoed, so the burst was handled first.
        let other = client();
        other.send_to(b"after", addr).unwrap();
        expect_echoes(&other, addr, &[b"after".to_vec()]);
        let (stats, _) = stop();
        assert_eq!(stats.datagrams_in, 7, "{stats:?}");
        assert_eq!(stats.datagrams_out, 1, "{stats:?}");
        assert_eq!(stats.denied_port, 6, "{stats:?}");
        assert_eq!(stats.coalesced_in, 1, "{stats:?}");
    }
}
