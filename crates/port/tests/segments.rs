//! Linux UDP offloads through the port, on real loopback sockets, io_uring and epoll: a send
//! on a socket with a segment size (`UDP_SEGMENT`) arrives as its datagrams, each whole; a socket with
//! `UDP_GRO` on receives such a burst coalesced, and the receive says its segment size (a
//! single receive and a batched one); a coalesced receive sent back with its segment size
//! arrives as the very datagrams that came, the shorter last one included.

#![cfg(target_os = "linux")]

mod util;

use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringport_port::os::{udp_gro, udp_gso, udp_segment};
use ringport_port::{BackendChoice, Completion, Op, Outcome, Port, SharedFd, DGRAM_HEADROOM};
use util::{next, port};

on_every_backend!(
    a_segmented_send_arrives_as_its_datagrams,
    a_coalesced_receive_says_its_segment,
    batched_a_coalesced_receive_echoes_as_one_segmented_send,
    without_gro_a_segmented_burst_arrives_one_datagram_per_receive,
);

/// `k` datagrams of `segment` bytes, then one of `last` bytes (none when 0), each its own
/// pattern (its index in every byte's high bits) so that a swap or a cut shows.
fn burst(k: usize, segment: usize, last: usize) -> Vec<Vec<u8>> {
    let mut sizes = vec![segment; k];
    if last > 0 {
        sizes.push(last);
    }
    sizes
        .iter()
        .enumerate()
        .map(|(d, &n)| (0..n).map(|i| ((d * 31 + i) % 251) as u8).collect())
        .collect()
}

/// A loopback UDP socket, for the port and (a clone) for plain calls, giving up after 5 s.
fn socket() -> (UdpSocket, SharedFd, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let addr = s.local_addr().unwrap();
    let fd: SharedFd = Rc::new(s.try_clone().unwrap().into());
    (s, fd, addr)
}

/// The completion with key `key`, leaving the others in `pending` in their order.
#[track_caller]
fn take_key(port: &mut Port, pending: &mut Vec<Completion>, key: u64) -> Completion {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(i) = pending.iter().position(|c| c.key == key) {
            return pending.remove(i);
        }
        assert!(Instant::now() < deadline, "no completion {key} within 5 s");
        port.wait(pending, Some(Duration::from_millis(100)))
            .expect("wait");
    }
}

/// Sends `datagrams` (all as long as the first but the last) from `s` (`fd`) to `to` in one
/// send (key 7), `s` segmenting at the first's length; other completions stay in `pending`.
fn send_segmented(
    port: &mut Port,
    pending: &mut Vec<Completion>,
    (s, fd): (&UdpSocket, &SharedFd),
    to: SocketAddr,
    datagrams: &[Vec<u8>],
) {
    udp_segment(s, u16::try_from(datagrams[0].len()).unwrap()).unwrap();
    let buf: Vec<u8> = datagrams.concat();
    let total = buf.len();
    port.submit(
        7,
        Op::SendTo {
            fd: Rc::clone(fd),
            buf,
            to,
        },
    )
    .unwrap();
    let Outcome::SentTo { result, .. } = take_key(port, pending, 7).outcome else {
        panic!("not a datagram send")
    };
    assert_eq!(result.unwrap(), total, "the whole burst in one send");
}

/// Reads `want.len()` datagrams from `s` and checks them, in order, byte for byte.
#[track_caller]
fn expect_datagrams(s: &UdpSocket, from: SocketAddr, want: &[Vec<u8>]) {
    let mut back = vec![0u8; 65_536];
    for (i, d) in want.iter().enumerate() {
        let (n, source) = s.recv_from(&mut back).unwrap();
        assert_eq!(source, from);
        assert_eq!(&back[..n], &d[..], "datagram {i} of {}", want.len());
    }
}

/// `bytes` cut every `segment` bytes (the last piece may be shorter), as a coalesced receive
/// is read.
fn split(bytes: &[u8], segment: u16) -> Vec<Vec<u8>> {
    match segment {
        0 => vec![bytes.to_vec()],
        s => bytes.chunks(usize::from(s)).map(<[u8]>::to_vec).collect(),
    }
}

fn a_segmented_send_arrives_as_its_datagrams(backend: BackendChoice) {
    let mut port = port(backend);
    assert!(port.datagram_segments());
    let (c, cfd, caddr) = socket();
    let (r, _rfd, raddr) = socket();
    assert!(udp_gso(&r));
    let mut pending = Vec::new();
    for (k, segment, last) in [(5, 1200, 0), (4, 64, 17), (2, 1400, 1)] {
        let sent = burst(k, segment, last);
        send_segmented(&mut port, &mut pending, (&c, &cfd), raddr, &sent);
        expect_datagrams(&r, caddr, &sent);
    }
}

fn a_coalesced_receive_says_its_segment(backend: BackendChoice) {
    let mut port = port(backend);
    let (c, cfd, caddr) = socket();
    let (r, rfd, raddr) = socket();
    udp_gro(&r, true).unwrap();
    let mut pending = Vec::new();
    for (k, segment, last) in [(8, 1000, 0), (3, 64, 10)] {
        let sent = burst(k, segment, last);
        send_segmented(&mut port, &mut pending, (&c, &cfd), raddr, &sent);
        let mut got = Vec::new();
        let mut coalesced = 0;
        while got.len() < sent.len() {
            port.submit(
                1,
                Op::RecvFrom {
                    fd: Rc::clone(&rfd),
                    buf: Vec::with_capacity(65_536),
                },
            )
            .unwrap();
            let Outcome::ReceivedFrom {
                buf,
                result,
                truncated,
                from,
                segment: s,
            } = next(&mut port, &mut pending).outcome
            else {
                panic!("not a datagram receive")
            };
            assert_eq!(result.unwrap(), buf.len());
            assert!(!truncated);
            assert_eq!(from, Some(caddr));
            if s > 0 {
                coalesced += 1;
                assert_eq!(usize::from(s), segment, "the segment size");
            }
            got.extend(split(&buf, s));
        }
        assert_eq!(got, sent, "every datagram, whole and in order");
        // Loopback keeps a segmented send whole up to a socket that takes it coalesced.
        assert!(coalesced > 0, "no receive was coalesced");
    }
}

fn batched_a_coalesced_receive_echoes_as_one_segmented_send(backend: BackendChoice) {
    let mut port = port(backend);
    port.provide_buffers(4, 65_535 + DGRAM_HEADROOM).unwrap();
    assert!(port.datagram_batches(), "{}", port.describe());
    let (c, cfd, caddr) = socket();
    let (s, sfd, saddr) = socket();
    udp_gro(&s, true).unwrap();
    port.submit(
        1,
        Op::RecvFromMulti {
            fd: Rc::clone(&sfd),
        },
    )
    .unwrap();
    let mut pending = Vec::new();
    for (k, segment, last) in [(6, 1400, 700), (40, 64, 0), (2, 9000, 1)] {
        let sent = burst(k, segment, last);
        send_segmented(&mut port, &mut pending, (&c, &cfd), saddr, &sent);
        let mut got = Vec::new();
        let mut coalesced = 0;
        while got.len() < sent.len() {
            let Outcome::ReceivedFromBuf {
                buf,
                result,
                truncated,
                from,
                segment: seg,
                more,
            } = next(&mut port, &mut pending).outcome
            else {
                panic!("not a batched datagram receive")
            };
            assert!(more, "the receive stays armed");
            let buf = buf.expect("a buffer");
            assert_eq!(result.unwrap(), buf.len());
            assert!(!truncated);
            assert_eq!(from, Some(caddr));
            let part = split(port.buf(&buf), seg);
            got.extend(part.iter().cloned());
            if seg > 0 {
                coalesced += 1;
                assert_eq!(usize::from(seg), segment);
            }
            // Back to the sender as it came: one send, split at the same boundaries.
            port.submit(
                2,
                Op::SendBufTo {
                    fd: Rc::clone(&sfd),
                    buf,
                    to: caddr,
                    segment: seg,
                },
            )
            .unwrap();
            let Outcome::SentBufTo { buf, result } = take_key(&mut port, &mut pending, 2).outcome
            else {
                panic!("not a datagram send")
            };
            assert_eq!(result.unwrap(), buf.len());
            port.give_back(buf);
            expect_datagrams(&c, saddr, &part);
        }
        assert_eq!(got, sent, "every datagram, whole and in order");
        assert!(coalesced > 0, "no receive was coalesced");
    }
}

fn without_gro_a_segmented_burst_arrives_one_datagram_per_receive(backend: BackendChoice) {
    let mut port = port(backend);
    port.provide_buffers(16, 2048 + DGRAM_HEADROOM).unwrap();
    assert!(port.datagram_batches(), "{}", port.describe());
    let (c, cfd, caddr) = socket();
    let (_s, sfd, saddr) = socket();
    port.submit(
        1,
        Op::RecvFromMulti {
            fd: Rc::clone(&sfd),
        },
    )
    .unwrap();
    let sent = burst(7, 1500, 200);
    let mut pending = Vec::new();
    send_segmented(&mut port, &mut pending, (&c, &cfd), saddr, &sent);
    for (i, d) in sent.iter().enumerate() {
        let Outcome::ReceivedFromBuf {
            buf,
            result,
            from,
            segment,
            ..
        } = next(&mut port, &mut pending).outcome
        else {
            panic!("not a batched datagram receive")
        };
        let buf = buf.expect("a buffer");
        assert_eq!(result.unwrap(), d.len(), "datagram {i}");
        assert_eq!(segment, 0, "a socket without GRO gets datagrams one by one");
        assert_eq!(from, Some(caddr));
        assert_eq!(port.buf(&buf), &d[..], "datagram {i}");
        port.give_back(buf);
    }
}
