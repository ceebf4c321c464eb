//! Datagram operations (`RecvFrom`, `SendTo`) on real UDP sockets over loopback, on every
//! backend: whole datagrams of every size with their sender, truncation reported, several
//! receives in flight on one socket, cancellation.

mod util;

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

use ringport_port::{is_cancelled, BackendChoice, Op, Outcome, Port, SharedFd};
use util::{next, pattern, port};

on_every_backend!(
    every_size_round_trips_whole_with_its_sender,
    a_datagram_longer_than_the_room_is_reported_truncated,
    several_receives_in_flight_take_one_datagram_each,
    cancel_ends_a_waiting_datagram_receive,
    a_receive_without_room_is_refused,
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
