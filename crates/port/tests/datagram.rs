//! Datagram operations (`RecvFrom`, `SendTo`; batched: `RecvFromMulti`, `SendBufTo`) on real
//! UDP sockets over loopback, on every backend: whole datagrams of every size with their sender,
//! truncation reported, several receives in flight on one socket, many sources at once, an
//! empty pool, cancellation, and the one-datagram path where batches are not available.

mod util;

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

use ringport_port::{
    is_cancelled, is_pool_empty, Backend, BackendChoice, Op, Outcome, PoolBuf, Port, SharedFd,
};
use util::{next, pattern, port};

on_every_backend!(
    every_size_round_trips_whole_with_its_sender,
    a_datagram_longer_than_the_room_is_reported_truncated,
    several_receives_in_flight_take_one_datagram_each,
    cancel_ends_a_waiting_datagram_receive,
    a_receive_without_room_is_refused,
    batched_every_size_round_trips_whole_with_its_sender,
    batched_a_datagram_longer_than_the_room_is_reported_truncated,
    batched_many_sources_at_once_each_datagram_with_its_sender,
    batched_an_empty_pool_ends_the_receive_and_loses_nothing,
    batched_cancel_ends_the_receive,
    batched_echoes_of_one_batch_leave_together_each_to_its_sender,
    a_refused_datagram_in_a_batch_fails_alone,
    without_batches_the_port_refuses_them_and_receives_one_at_a_time,
);

/// A UDP socket for the port, on loopback, and its address.
fn server() -> (SharedFd, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    (Rc::new(socket.into()), addr)
}

/// A client socket on loopback that gives up after 5 s.
fn client() -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

/// The datagram `payload` through the port: received with its sender, sent back to it.
fn echo_once(port: &mut Port, fd: &SharedFd, addr: SocketAddr, payload: &[u8]) {
    let c = client();
    let mut pending = Vec::new();
    port.submit(
        1,
        Op::RecvFrom {
            fd: Rc::clone(fd),
            buf: Vec::with_capacity(65_535),
        },
    )
    .unwrap();
    c.send_to(payload, addr).unwrap();
    let Outcome::ReceivedFrom {
        buf,
        result,
        truncated,
        from,
        ..
    } = next(port, &mut pending).outcome
    else {
        panic!("not a datagram receive")
    };
    assert_eq!(result.unwrap(), payload.len());
    assert!(!truncated);
    assert_eq!(buf, payload, "{} bytes, byte for byte", payload.len());
    assert_eq!(from, Some(c.local_addr().unwrap()), "the sender");
    port.submit(
        2,
        Op::SendTo {
            fd: Rc::clone(fd),
            buf,
            to: from.unwrap(),
        },
    )
    .unwrap();
    let Outcome::SentTo { buf, result } = next(port, &mut pending).outcome else {
        panic!("not a datagram send")
    };
    assert_eq!(result.unwrap(), payload.len());
    assert_eq!(buf, payload, "the buffer comes back");
    let mut back = vec![0u8; 65_536];
    let (n, source) = c.recv_from(&mut back).unwrap();
    assert_eq!(source, addr);
    assert_eq!(&back[..n], payload, "echoed whole");
}

fn every_size_round_trips_whole_with_its_sender(backend: BackendChoice) {
    let mut port = port(backend);
    let (fd, addr) = server();
    for size in [0, 1, 2, 1472, 1473, 9000, 65_507] {
        echo_once(&mut port, &fd, addr, &pattern(size));
    }
}

fn a_datagram_longer_than_the_room_is_reported_truncated(backend: BackendChoice) {
    let mut port = port(backend);
    let (fd, addr) = server();
    let c = client();
    let mut pending = Vec::new();
    for (size, cut) in [(101, true), (100, false), (5000, true)] {
        let mut buf = Vec::with_capacity(110);
        buf.extend_from_slice(&[9; 10]); // the datagram lands after what the buffer holds
        port.submit(
            0,
            Op::RecvFrom {
                fd: Rc::clone(&fd),
                buf,
            },
        )
        .unwrap();
        let payload = pattern(size);
        c.send_to(&payload, addr).unwrap();
        let Outcome::ReceivedFrom {
            buf,
            result,
            truncated,
            from,
            ..
        } = next(&mut port, &mut pending).outcome
        else {
            panic!("not a datagram receive")
        };
        let room = buf.capacity() - 10;
        assert_eq!(truncated, cut, "{size} bytes into {room}");
        assert_eq!(result.unwrap(), size.min(room));
        assert_eq!(&buf[..10], &[9; 10]);
        assert_eq!(&buf[10..], &payload[..size.min(room)]);
        assert_eq!(from, Some(c.local_addr().unwrap()));
    }
}

fn several_receives_in_flight_take_one_datagram_each(backend: BackendChoice) {
    let mut port = port(backend);
    let (fd, addr) = server();
    let c = client();
    for key in 0..8 {
        port.submit(
            key,
            Op::RecvFrom {
                fd: Rc::clone(&fd),
                buf: Vec::with_capacity(2048),
            },
        )
        .unwrap();
    }
    let sent: BTreeSet<Vec<u8>> = (0..8u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
    for d in &sent {
        c.send_to(d, addr).unwrap();
    }
    let mut pending = Vec::new();
    let mut got = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for _ in 0..8 {
        let done = next(&mut port, &mut pending);
        let Outcome::ReceivedFrom { buf, result, .. } = done.outcome else {
            panic!("not a datagram receive")
        };
        assert_eq!(result.unwrap(), buf.len());
        got.insert(buf);
        keys.insert(done.key);
    }
    assert_eq!(got, sent, "every datagram, each whole in one receive");
    assert_eq!(keys.len(), 8, "each receive completed once");
    assert_eq!(port.in_flight(), 0);
}

fn cancel_ends_a_waiting_datagram_receive(backend: BackendChoice) {
    let mut port = port(backend);
    let (fd, _addr) = server();
    let token = port
        .submit(
            3,
            Op::RecvFrom {
                fd: Rc::clone(&fd),
                buf: Vec::with_capacity(64),
            },
        )
        .unwrap();
    port.cancel(token).unwrap();
    let mut pending = Vec::new();
    let done = next(&mut port, &mut pending);
    assert_eq!(done.key, 3);
    let Outcome::ReceivedFrom { buf, result, .. } = done.outcome else {
        panic!("not a datagram receive")
    };
    assert!(is_cancelled(&result.unwrap_err()));
    assert_eq!(buf.capacity(), 64, "the buffer comes back");
    assert_eq!(port.in_flight(), 0);
}

fn a_receive_without_room_is_refused(backend: BackendChoice) {
    let mut port = port(backend);
    let (fd, _addr) = server();
    let refused = port.submit(
        4,
        Op::RecvFrom {
            fd: Rc::clone(&fd),
            buf: Vec::new(),
        },
    );
    if refused.is_ok() {
        // Refused through its completion instead of at submission (IOCP).
        let mut pending = Vec::new();
        let Outcome::ReceivedFrom { result, .. } = next(&mut port, &mut pending).outcome else {
            panic!("not a datagram receive")
        };
        assert!(result.is_err());
    }
    assert_eq!(port.in_flight(), 0);
}

/// The room a datagram receive into the pool keeps before the datagram.
const HEADROOM: usize = ringport_port::DGRAM_HEADROOM;

/// A port on `backend` with `count` pool buffers that hold datagrams of up to `room` bytes,
/// which batches datagrams; `None` on IOCP, which has no batched datagram operations (checked:
/// it refuses them, and the echo keeps one receive per buffer there).
fn batching_port(backend: BackendChoice, count: u16, room: usize) -> Option<Port> {
    let mut port = port(backend);
    port.provide_buffers(count, room + HEADROOM).unwrap();
    assert_eq!(port.datagram_room(), room);
    if port.backend() == Backend::Iocp {
        assert!(!port.datagram_batches(), "{}", port.describe());
        let (fd, _) = server();
        let refused = port.submit(1, Op::RecvFromMulti { fd });
        assert_eq!(
            refused.map(|_| ()).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::Unsupported)
        );
        return None;
    }
    assert!(port.datagram_batches(), "{}", port.describe());
    Some(port)
}

/// Arms a batched receive on `fd`, with key 1.
fn arm(port: &mut Port, fd: &SharedFd) -> ringport_port::Token {
    port.submit(1, Op::RecvFromMulti { fd: Rc::clone(fd) })
        .unwrap()
}

/// The next datagram of a batched receive on `fd`: its buffer, bytes, cut, sender. A receive
/// that ended with it (io_uring ends one at an empty datagram) is armed again.
#[track_caller]
fn next_datagram(
    port: &mut Port,
    fd: &SharedFd,
    pending: &mut Vec<ringport_port::Completion>,
) -> (PoolBuf, usize, bool, SocketAddr) {
    let Outcome::ReceivedFromBuf {
        buf,
        result,
        truncated,
        from,
        more,
        ..
    } = next(port, pending).outcome
    else {
        panic!("not a batched datagram receive")
    };
    let n = result.unwrap();
    let buf = buf.expect("a datagram comes in a buffer");
    assert_eq!(buf.len(), n);
    if !more {
        assert_eq!(n, 0, "only an empty datagram ends the receive");
        arm(port, fd);
    }
    (buf, n, truncated, from.expect("the sender"))
}

fn batched_every_size_round_trips_whole_with_its_sender(backend: BackendChoice) {
    let Some(mut port) = batching_port(backend, 8, 65_507) else {
        return;
    };
    let (fd, addr) = server();
    arm(&mut port, &fd);
    let mut pending = Vec::new();
    let c = client();
    for size in [0, 1, 1400, 1473, 65_507] {
        let payload = pattern(size);
        c.send_to(&payload, addr).unwrap();
        let (buf, n, truncated, from) = next_datagram(&mut port, &fd, &mut pending);
        assert_eq!(n, size);
        assert!(!truncated, "{size} bytes");
        assert_eq!(from, c.local_addr().unwrap(), "the sender");
        assert_eq!(port.buf(&buf), &payload[..], "{size} bytes, byte for byte");
        port.submit(
            2,
            Op::SendBufTo {
                fd: Rc::clone(&fd),
                buf,
                to: from,
                segment: 0,
            },
        )
        .unwrap();
        let done = next(&mut port, &mut pending);
        assert_eq!(done.key, 2);
        let Outcome::SentBufTo { buf, result } = done.outcome else {
            panic!("not a pooled datagram send")
        };
        assert_eq!(result.unwrap(), size);
        port.give_back(buf);
        let mut back = vec![0u8; 65_536];
        let (n, source) = c.recv_from(&mut back).unwrap();
        assert_eq!(source, addr);
        assert_eq!(&back[..n], &payload[..], "echoed whole");
    }
    assert_eq!(port.in_flight(), 1, "still receiving");
    assert_eq!(port.stats().pool_in_use, 0, "every buffer back");
}

fn batched_a_datagram_longer_than_the_room_is_reported_truncated(backend: BackendChoice) {
    let Some(mut port) = batching_port(backend, 4, 100) else {
        return;
    };
    let (fd, addr) = server();
    arm(&mut port, &fd);
    let c = client();
    let mut pending = Vec::new();
    for (size, cut) in [(101, true), (100, false), (5000, true), (0, false)] {
        let payload = pattern(size);
        c.send_to(&payload, addr).unwrap();
        let (buf, n, truncated, from) = next_datagram(&mut port, &fd, &mut pending);
        assert_eq!(truncated, cut, "{size} bytes into 100");
        assert_eq!(n, size.min(100));
        assert_eq!(port.buf(&buf), &payload[..size.min(100)]);
        assert_eq!(from, c.local_addr().unwrap());
        port.give_back(buf);
    }
}

fn batched_many_sources_at_once_each_datagram_with_its_sender(backend: BackendChoice) {
    let Some(mut port) = batching_port(backend, 256, 1400) else {
        return;
    };
    let (fd, addr) = server();
    let clients: Vec<UdpSocket> = (0..20).map(|_| client()).collect();
    // Everything waits in the socket before the receive is armed: batches, not one by one.
    let mut sent = BTreeSet::new();
    for seq in 0..5u8 {
        for (i, c) in clients.iter().enumerate() {
            let payload = vec![i as u8; 64 + usize::from(seq)];
            c.send_to(&payload, addr).unwrap();
            sent.insert((c.local_addr().unwrap(), payload));
        }
    }
    arm(&mut port, &fd);
    let mut pending = Vec::new();
    let mut got = BTreeSet::new();
    let mut largest_batch = 0;
    while got.len() < sent.len() {
        if pending.is_empty() {
            port.wait(&mut pending, Some(Duration::from_secs(5)))
                .unwrap();
            assert!(!pending.is_empty(), "no datagram within 5 s");
            largest_batch = largest_batch.max(pending.len());
        }
        let (buf, _, truncated, from) = next_datagram(&mut port, &fd, &mut pending);
        assert!(!truncated);
        assert!(
            got.insert((from, port.buf(&buf).to_vec())),
            "a datagram twice"
        );
        port.give_back(buf);
    }
    assert_eq!(got, sent, "every datagram, each with its own sender");
    assert!(largest_batch > 1, "one wait brought several datagrams");
    assert_eq!(port.stats().pool_in_use, 0);
}

fn batched_an_empty_pool_ends_the_receive_and_loses_nothing(backend: BackendChoice) {
    let Some(mut port) = batching_port(backend, 4, 200) else {
        return;
    };
    let (fd, addr) = server();
    let c = client();
    for i in 0..10u8 {
        c.send_to(&[i; 50], addr).unwrap();
    }
    let mut pending = Vec::new();
    let mut got = Vec::new();
    let mut held = Vec::new();
    for _round in 0..10 {
        if got.len() == 10 {
            break;
        }
        arm(&mut port, &fd);
        // Datagrams until the pool runs dry, which ends the receive (the rest wait in the
        // socket), or until all ten came.
        loop {
            let Outcome::ReceivedFromBuf {
                buf, result, more, ..
            } = next(&mut port, &mut pending).outcome
            else {
                panic!("not a batched datagram receive")
            };
            if !more {
                let e = result.unwrap_err();
                assert!(is_pool_empty(&e), "{e}");
                assert!(buf.is_none());
                assert_eq!(held.len(), 4, "the pool is what bounds it");
                break;
            }
            let buf = buf.unwrap();
            got.push(port.buf(&buf).to_vec());
            held.push(buf);
            if got.len() == 10 {
                break;
            }
        }
        for buf in held.drain(..) {
            port.give_back(buf);
        }
    }
    let want: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 50]).collect();
    assert_eq!(got, want, "every datagram, in order");
}

fn batched_cancel_ends_the_receive(backend: BackendChoice) {
    let Some(mut port) = batching_port(backend, 4, 100) else {
        return;
    };
    let (fd, _addr) = server();
    let token = arm(&mut port, &fd);
    port.cancel(token).unwrap();
    let mut pending = Vec::new();
    let done = next(&mut port, &mut pending);
    let Outcome::ReceivedFromBuf {
        buf, result, more, ..
    } = done.outcome
    else {
        panic!("not a batched datagram receive")
    };
    assert!(!more);
    assert!(buf.is_none());
    assert!(is_cancelled(&result.unwrap_err()));
    assert_eq!(port.in_flight(), 0);
}

fn without_batches_the_port_refuses_them_and_receives_one_at_a_time(backend: BackendChoice) {
    let mut port = port(backend);
    port.provide_buffers(4, 2048).unwrap();
    port.without_datagram_batches();
    assert!(!port.datagram_batches());
    let (fd, addr) = server();
    let refused = port
        .submit(1, Op::RecvFromMulti { fd: Rc::clone(&fd) })
        .unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::Unsupported);
    assert_eq!(port.in_flight(), 0);
    // The path callers fall back to still works.
    for size in [0, 1400] {
        echo_once(&mut port, &fd, addr, &pattern(size));
    }
}

fn batched_echoes_of_one_batch_leave_together_each_to_its_sender(backend: BackendChoice) {
    let Some(mut port) = batching_port(backend, 128, 1400) else {
        return;
    };
    let (fd, addr) = server();
    let clients: Vec<UdpSocket> = (0..40).map(|_| client()).collect();
    for (i, c) in clients.iter().enumerate() {
        c.send_to(&pattern(100 + i), addr).unwrap();
    }
    arm(&mut port, &fd);
    let mut pending = Vec::new();
    let mut received = Vec::new();
    while received.len() < clients.len() {
        received.push(next_datagram(&mut port, &fd, &mut pending));
    }
    // Every echo submitted before the next wait: 40 sends in one batch (epoll: sendmmsg calls
    // of up to 32, so more than one).
    for (buf, _, _, from) in received {
        port.submit(
            2,
            Op::SendBufTo {
                fd: Rc::clone(&fd),
                buf,
                to: from,
                segment: 0,
            },
        )
        .unwrap();
    }
    for _ in 0..clients.len() {
        let Outcome::SentBufTo { buf, result } = next(&mut port, &mut pending).outcome else {
            panic!("not a pooled datagram send")
        };
        assert_eq!(result.unwrap(), buf.len());
        port.give_back(buf);
    }
    for (i, c) in clients.iter().enumerate() {
        let mut back = vec![0u8; 2048];
        let (n, source) = c.recv_from(&mut back).unwrap();
        assert_eq!(source, addr);
        assert_eq!(&back[..n], &pattern(100 + i)[..], "its own datagram, whole");
    }
    assert_eq!(port.stats().pool_in_use, 0);
}

fn a_refused_datagram_in_a_batch_fails_alone(backend: BackendChoice) {
    let Some(mut port) = batching_port(backend, 16, 1400) else {
        return;
    };
    let (fd, addr) = server();
    let c = client();
    for i in 0..6u8 {
        c.send_to(&[i; 10], addr).unwrap();
    }
    arm(&mut port, &fd);
    let mut pending = Vec::new();
    let mut received = Vec::new();
    while received.len() < 6 {
        received.push(next_datagram(&mut port, &fd, &mut pending));
    }
    // Six sends in one batch, the third to port 0, which the system refuses: it fails alone
    // (epoll: the `sendmmsg` stops at it, it completes with its error, the rest go on).
    let nowhere: SocketAddr = "127.0.0.1:0".parse().unwrap();
    for (k, (buf, _, _, from)) in received.into_iter().enumerate() {
        let to = if k == 2 { nowhere } else { from };
        port.submit(
            k as u64,
            Op::SendBufTo {
                fd: Rc::clone(&fd),
                buf,
                to,
                segment: 0,
            },
        )
        .unwrap();
    }
    let mut failed = Vec::new();
    for _ in 0..6 {
        let done = next(&mut port, &mut pending);
        let Outcome::SentBufTo { buf, result } = done.outcome else {
            panic!("not a pooled datagram send")
        };
        match result {
            Ok(n) => assert_eq!(n, 10),
            Err(e) => failed.push((done.key, e.raw_os_error())),
        }
        port.give_back(buf);
    }
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, 2, "the one to port 0: {failed:?}");
    let mut back = [0u8; 64];
    let mut echoed = Vec::new();
    for _ in 0..5 {
        let n = c.recv(&mut back).unwrap();
        echoed.push(back[..n].to_vec());
    }
    echoed.sort();
    let want: Vec<Vec<u8>> = [0u8, 1, 3, 4, 5].iter().map(|&i| vec![i; 10]).collect();
    assert_eq!(echoed, want, "the others, each whole");
}
