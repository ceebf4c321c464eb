//! The port's contract, on real sockets over loopback, on every backend.
//!
//! Each test is a function of the backend; [`on_every_backend!`] expands it into
//! `uring::NAME` and `epoll::NAME`. The tests after the original contract are the hazards of
//! emulating completions from readiness: two directions in flight on one socket, partial sends,
//! cancelling a waiting accept, closing an fd another operation still waits on.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringport_port::errors::code;
use ringport_port::{Backend, BackendChoice, Op, Outcome, OwnedFd, Port, PortConfig};
use util::{connected_pair, listener, next, nothing_completes, pattern, port, port_with};

on_every_backend!(
    posted_values_arrive_in_order_from_other_threads,
    wait_with_timeout_returns_empty_handed,
    a_wait_for_a_nearer_deadline_ends_at_it,
    waits_for_one_deadline_end_empty_handed_until_it_and_after,
    a_wait_from_a_clock_reading_ends_at_that_reading_plus_the_timeout,
    accept_recv_send_close_round_trip,
    cancel_ends_a_waiting_recv_and_nowait_does_not_wait,
    a_receive_into_a_full_buffer_is_refused,
    connect_and_shutdown_through_the_port,
    connect_refused_is_reported,
    many_operations_beyond_the_queue_size_all_complete,
    recv_and_send_in_flight_on_one_socket_at_once,
    partial_send_of_a_large_buffer_to_a_slow_reader,
    cancel_of_a_waiting_accept,
    close_with_another_op_waiting_completes_without_misrouting,
    end_of_stream_and_reset_reach_a_waiting_recv,
    wake_up_interrupts_a_wait_without_limit,
    an_overflowing_completion_queue_loses_nothing,
);

fn posted_values_arrive_in_order_from_other_threads(backend: BackendChoice) {
    let mut port = port(backend);
    let poster = port.poster();
    let t = std::thread::spawn(move || {
        for v in 1..=100u64 {
            poster.post(v).unwrap();
        }
    });
    t.join().unwrap();
    let mut pending = Vec::new();
    for v in 1..=100u64 {
        let c = next(&mut port, &mut pending);
        assert!(matches!(c.outcome, Outcome::Posted));
        assert_eq!(c.key, v);
    }
}

fn wait_with_timeout_returns_empty_handed(backend: BackendChoice) {
    let mut port = port(backend);
    let mut out = Vec::new();
    let t0 = Instant::now();
    let n = port
        .wait(&mut out, Some(Duration::from_millis(50)))
        .unwrap();
    assert_eq!(n, 0);
    assert!(t0.elapsed() >= Duration::from_millis(40));
}

/// A long wait ended early by a posted value leaves the backend's timer (io_uring's alarm)
/// set far ahead; a shorter wait after it must end at its own timeout, not sleep toward the
/// 60 s one (which would take twice this test's bound).
fn a_wait_for_a_nearer_deadline_ends_at_it(backend: BackendChoice) {
    let mut port = port(backend);
    port.poster().post(7).unwrap();
    let mut out = Vec::new();
    port.wait(&mut out, Some(Duration::from_secs(60))).unwrap();
    assert!(matches!(out.as_slice(), [c] if c.key == 7 && matches!(c.outcome, Outcome::Posted)));
    out.clear();
    let t0 = Instant::now();
    let n = port
        .wait(&mut out, Some(Duration::from_millis(50)))
        .unwrap();
    assert_eq!(n, 0, "{out:?}");
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(40), "{waited:?}");
    assert!(
        waited < Duration::from_secs(30),
        "slept {waited:?}: toward the earlier wait's 60 s"
    );
}

/// A loop waiting again and again for one deadline (as a worker waits for its next tick), then
/// for later ones: every wait ends empty-handed (the backend's own timer completions never
/// show), and the deadline is reached.
fn waits_for_one_deadline_end_empty_handed_until_it_and_after(backend: BackendChoice) {
    let mut port = port(backend);
    wait_out_three_deadlines(&mut port, false);
    let mut out = Vec::new();
    port.wait(&mut out, Some(Duration::ZERO)).unwrap();
    assert!(out.is_empty(), "{out:?}");
}

/// Waits again and again until each of three deadlines 20 ms apart (with `wait`, or `wait_at`
/// the reading taken to compute each timeout), every wait ending empty-handed.
#[track_caller]
fn wait_out_three_deadlines(port: &mut Port, at: bool) {
    let mut out = Vec::new();
    for round in 0..3 {
        let deadline = Instant::now() + Duration::from_millis(20);
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if at {
                port.wait_at(&mut out, now, Some(deadline - now)).unwrap();
            } else {
                port.wait(&mut out, Some(deadline - now)).unwrap();
            }
            assert!(out.is_empty(), "round {round}: {out:?}");
        }
    }
}

/// `wait_at` takes the deadline from the caller's reading of the clock: a reading 2 s old
/// with a timeout of 2.1 s is a deadline 0.1 s away, not 2.1 s, on every backend; the loop of
/// the previous test, written with it, reaches its deadline the same way.
fn a_wait_from_a_clock_reading_ends_at_that_reading_plus_the_timeout(backend: BackendChoice) {
    let mut port = port(backend);
    let mut out = Vec::new();
    let Some(then) = Instant::now().checked_sub(Duration::from_secs(2)) else {
        return;
    };
    let t0 = Instant::now();
    let n = port
        .wait_at(&mut out, then, Some(Duration::from_millis(2_100)))
        .unwrap();
    let waited = t0.elapsed();
    assert_eq!(n, 0, "{backend}: {out:?}");
    assert!(waited >= Duration::from_millis(50), "{backend}: {waited:?}");
    assert!(
        waited < Duration::from_millis(1_500),
        "{backend}: waited {waited:?}: the timeout was counted from the wait, not from the reading"
    );
    wait_out_three_deadlines(&mut port, true);
}

fn accept_recv_send_close_round_trip(backend: BackendChoice) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let listener: ringport_port::SharedFd = Rc::new(listener.into());
    let mut port = port(backend);
    port.submit(
        1,
        Op::Accept {
            listener: listener.clone(),
        },
    )
    .unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    let mut pending = Vec::new();
    let c = next(&mut port, &mut pending);
    assert_eq!(c.key, 1);
    let Outcome::Accepted(Ok(acc)) = c.outcome else {
        panic!("{:?}", c.outcome)
    };
    assert_eq!(acc.peer, Some(client.local_addr().unwrap()));
    let fd = Rc::new(acc.fd);

    client.write_all(b"hello\0world").unwrap();
    port.submit(
        2,
        Op::Recv {
            fd: fd.clone(),
            buf: Vec::with_capacity(64),
            nowait: false,
        },
    )
    .unwrap();
    let c = next(&mut port, &mut pending);
    let Outcome::Received { buf, result } = c.outcome else {
        panic!()
    };
    assert_eq!(result.unwrap(), 11);
    assert_eq!(&buf[..], b"hello\0world");

    port.submit(
        3,
        Op::Send {
            fd: fd.clone(),
            buf,
            at: 6,
        },
    )
    .unwrap();
    let c = next(&mut port, &mut pending);
    let Outcome::Sent { at, result, .. } = c.outcome else {
        panic!()
    };
    assert_eq!((at, result.unwrap()), (6, 5));
    let mut got = [0u8; 5];
    client.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"world");

    port.submit(4, Op::Close { fd }).unwrap();
    let c = next(&mut port, &mut pending);
    assert!(
        matches!(c.outcome, Outcome::Closed(Ok(()))),
        "{:?}",
        c.outcome
    );
    let mut rest = Vec::new();
    assert_eq!(
        client.read_to_end(&mut rest).unwrap(),
        0,
        "server side closed"
    );
    assert_eq!(port.in_flight(), 0);
}

/// A receive needs room in its buffer: one without spare capacity is refused with `EINVAL`
/// (a stream's or a datagram's), never completed with 0 bytes, which reads as the end of the
/// stream; the bytes waiting stay in the socket for the next receive.
fn a_receive_into_a_full_buffer_is_refused(backend: BackendChoice) {
    let (fd, mut client) = connected_pair();
    client.write_all(b"hello").unwrap();
    let mut port = port(backend);
    let mut full = Vec::with_capacity(4);
    full.extend_from_slice(b"abcd");
    let full = full;
    let refused = port.submit(
        1,
        Op::Recv {
            fd: fd.clone(),
            buf: full,
            nowait: false,
        },
    );
    assert_eq!(
        refused.unwrap_err().raw_os_error(),
        Some(code::INVALID),
        "{backend}"
    );
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp: ringport_port::SharedFd = Rc::new(OwnedFd::from(udp).into());
    let refused = port.submit(
        2,
        Op::RecvFrom {
            fd: udp,
            buf: Vec::new(),
        },
    );
    assert_eq!(
        refused.unwrap_err().raw_os_error(),
        Some(code::INVALID),
        "{backend}"
    );
    assert_eq!(port.in_flight(), 0);
    let mut pending = Vec::new();
    port.submit(
        3,
        Op::Recv {
            fd,
            buf: Vec::with_capacity(16),
            nowait: false,
        },
    )
    .unwrap();
    let c = next(&mut port, &mut pending);
    let Outcome::Received { buf, result } = c.outcome else {
        panic!("{:?}", c.outcome)
    };
    assert_eq!(result.unwrap(), 5);
    assert_eq!(buf, b"hello");
}

fn cancel_ends_a_waiting_recv_and_nowait_does_not_wait(backend: BackendChoice) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let fd: ringport_port::SharedFd = Rc::new(OwnedFd::from(server).into());
    let mut port = port(backend);
    let mut pending = Vec::new();

    port.submit(
        7,
        Op::Recv {
            fd: fd.clone(),
            buf: Vec::with_capacity(16),
            nowait: true,
        },
    )
    .unwrap();
    let c = next(&mut port, &mut pending);
    let Outcome::Received { result, .. } = c.outcome else {
        panic!()
    };
    assert_eq!(result.unwrap_err().kind(), std::io::ErrorKind::WouldBlock);

    let token = port
        .submit(
            8,
            Op::Recv {
                fd: fd.clone(),
                buf: Vec::with_capacity(16),
                nowait: false,
            },
        )
        .unwrap();
    port.wait(&mut pending, Some(Duration::ZERO)).unwrap();
    assert!(pending.is_empty(), "recv must wait for data");
    port.cancel(token).unwrap();
    let c = next(&mut port, &mut pending);
    assert_eq!(c.key, 8);
    let Outcome::Received { buf, result } = c.outcome else {
        panic!()
    };
    assert_eq!(result.unwrap_err().raw_os_error(), Some(cancelled_code()));
    assert!(buf.is_empty());
    assert_eq!(port.in_flight(), 0);
    // Cancelling again, after the completion, is harmless.
    port.cancel(token).unwrap();
    drop(client);
}

fn cancelled_code() -> i32 {
    code::CANCELLED
}

fn connect_and_shutdown_through_the_port(backend: BackendChoice) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let fd: ringport_port::SharedFd = Rc::new(sock.into());
    let mut port = port(backend);
    let mut pending = Vec::new();
    port.submit(
        1,
        Op::Connect {
            fd: fd.clone(),
            addr,
        },
    )
    .unwrap();
    let c = next(&mut port, &mut pending);
    assert!(
        matches!(c.outcome, Outcome::Connected(Ok(()))),
        "{:?}",
        c.outcome
    );
    let (mut server, _) = listener.accept().unwrap();
    port.submit(
        2,
        Op::Shutdown {
            fd: fd.clone(),
            how: Shutdown::Write,
        },
    )
    .unwrap();
    let c = next(&mut port, &mut pending);
    assert!(matches!(c.outcome, Outcome::ShutDown(Ok(()))));
    let mut rest = Vec::new();
    assert_eq!(server.read_to_end(&mut rest).unwrap(), 0, "FIN seen");
}

fn connect_refused_is_reported(backend: BackendChoice) {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let mut port = port(backend);
    let mut pending = Vec::new();
    port.submit(
        1,
        Op::Connect {
            fd: Rc::new(sock.into()),
            addr,
        },
    )
    .unwrap();
    let c = next(&mut port, &mut pending);
    let Outcome::Connected(Err(e)) = c.outcome else {
        panic!("{:?}", c.outcome)
    };
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
}

fn many_operations_beyond_the_queue_size_all_complete(backend: BackendChoice) {
    let mut port = port_with(backend, 8);
    for i in 0..1000u64 {
        port.submit(i, Op::Nop).unwrap();
    }
    let mut seen = vec![false; 1000];
    let mut pending = Vec::new();
    for _ in 0..1000 {
        let c = next(&mut port, &mut pending);
        assert!(matches!(c.outcome, Outcome::Nop));
        assert!(!seen[c.key as usize], "duplicate completion");
        seen[c.key as usize] = true;
    }
    assert!(seen.iter().all(|s| *s));
    assert_eq!(port.stats().stale, 0);
    assert_eq!(port.in_flight(), 0);
}

fn recv_and_send_in_flight_on_one_socket_at_once(backend: BackendChoice) {
    let (fd, mut client) = connected_pair();
    let mut port = port(backend);
    let mut pending = Vec::new();
    // The client does not read yet: send until a send has to wait for room.
    let chunk = pattern(1 << 20);
    let mut sent = 0usize;
    loop {
        port.submit(
            100,
            Op::Send {
                fd: fd.clone(),
                buf: chunk.clone(),
                at: 0,
            },
        )
        .unwrap();
        port.wait(&mut pending, Some(Duration::from_millis(50)))
            .unwrap();
        let Some(c) = pending.pop() else { break };
        let Outcome::Sent { result, .. } = c.outcome else {
            panic!("{:?}", c.outcome)
        };
        sent += result.unwrap();
        assert!(sent < 512 << 20, "the socket never filled up");
    }
    // A recv waits on the same socket, in the other direction.
    port.submit(
        200,
        Op::Recv {
            fd: fd.clone(),
            buf: Vec::with_capacity(64),
            nowait: false,
        },
    )
    .unwrap();
    nothing_completes(&mut port, &mut pending);
    assert_eq!(port.in_flight(), 2, "a send and a recv in flight at once");

    client.write_all(b"ping").unwrap();
    let c = next(&mut port, &mut pending);
    assert_eq!(c.key, 200, "the recv completes while the send still waits");
    let Outcome::Received { buf, result } = c.outcome else {
        panic!("{:?}", c.outcome)
    };
    assert_eq!(result.unwrap(), 4);
    assert_eq!(&buf[..], b"ping");
    nothing_completes(&mut port, &mut pending);

    // The client reads: the send gets room and completes.
    let reader = std::thread::spawn(move || {
        let mut total = 0usize;
        let mut b = vec![0u8; 1 << 16];
        loop {
            match client.read(&mut b).unwrap() {
                0 => return total,
                n => total += n,
            }
        }
    });
    let c = next(&mut port, &mut pending);
    assert_eq!(c.key, 100);
    let Outcome::Sent { result, .. } = c.outcome else {
        panic!("{:?}", c.outcome)
    };
    let n = result.unwrap();
    assert!(n > 0);
    sent += n;
    assert_eq!(port.in_flight(), 0);
    drop(port);
    drop(fd);
    assert_eq!(reader.join().unwrap(), sent, "every byte sent arrived");
}

fn partial_send_of_a_large_buffer_to_a_slow_reader(backend: BackendChoice) {
    const LEN: usize = 32 << 20; // more than loopback's socket buffers can hold
    let (fd, mut client) = connected_pair();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(LEN);
        let mut b = vec![0u8; 256 << 10];
        loop {
            std::thread::sleep(Duration::from_millis(1));
            match client.read(&mut b).unwrap() {
                0 => return got,
                n => got.extend_from_slice(&b[..n]),
            }
        }
    });
    let mut port = port(backend);
    let mut pending = Vec::new();
    let mut buf = pattern(LEN);
    let (mut at, mut partial) = (0usize, 0u32);
    while at < LEN {
        port.submit(
            at as u64,
            Op::Send {
                fd: fd.clone(),
                buf,
                at,
            },
        )
        .unwrap();
        let c = next(&mut port, &mut pending);
        let Outcome::Sent {
            buf: back,
            at: from,
            result,
        } = c.outcome
        else {
            panic!("{:?}", c.outcome)
        };
        assert_eq!((c.key, from), (at as u64, at));
        let n = result.expect("send");
        assert!(n > 0 && n <= LEN - at, "sent {n} of {}", LEN - at);
        if n < LEN - at {
            partial += 1;
        }
        at += n;
        buf = back;
    }
    // IOCP completes an overlapped send only once all of it is sent (it pends meanwhile):
    // partial sends are the Linux backends'.
    if cfg!(unix) {
        assert!(
            partial > 0,
            "a send larger than the socket can take is partial"
        );
    }
    drop(port);
    drop(fd);
    let got = reader.join().unwrap();
    assert_eq!(got.len(), LEN);
    assert!(got == buf, "the bytes arrived in order, each once");
}

fn cancel_of_a_waiting_accept(backend: BackendChoice) {
    let (listener, addr) = listener();
    let mut port = port(backend);
    let mut pending = Vec::new();
    let token = port
        .submit(
            1,
            Op::Accept {
                listener: listener.clone(),
            },
        )
        .unwrap();
    nothing_completes(&mut port, &mut pending);
    port.cancel(token).unwrap();
    let c = next(&mut port, &mut pending);
    assert_eq!(c.key, 1);
    let Outcome::Accepted(Err(e)) = c.outcome else {
        panic!("{:?}", c.outcome)
    };
    assert_eq!(e.raw_os_error(), Some(code::CANCELLED));
    assert_eq!(port.in_flight(), 0);

    // The listener still accepts, through the port.
    port.submit(
        2,
        Op::Accept {
            listener: listener.clone(),
        },
    )
    .unwrap();
    let client = TcpStream::connect(addr).unwrap();
    let c = next(&mut port, &mut pending);
    assert_eq!(c.key, 2);
    let Outcome::Accepted(Ok(acc)) = c.outcome else {
        panic!("{:?}", c.outcome)
    };
    assert_eq!(acc.peer, Some(client.local_addr().unwrap()));
    assert_eq!(port.stats().stale, 0);
}

fn close_with_another_op_waiting_completes_without_misrouting(backend: BackendChoice) {
    let mut port = port(backend);
    let mut pending = Vec::new();
    let recv = |fd: &ringport_port::SharedFd| Op::Recv {
        fd: fd.clone(),
        buf: Vec::with_capacity(16),
        nowait: false,
    };

    // Close the caller's last handle while a recv waits on the fd: the Close completes, the
    // recv keeps its handle and still completes, with its own key.
    let (fd, mut client) = connected_pair();
    port.submit(1, recv(&fd)).unwrap();
    nothing_completes(&mut port, &mut pending);
    port.submit(2, Op::Close { fd }).unwrap();
    let c = next(&mut port, &mut pending);
    assert_eq!(c.key, 2);
    assert!(
        matches!(c.outcome, Outcome::Closed(Ok(()))),
        "{:?}",
        c.outcome
    );
    nothing_completes(&mut port, &mut pending);
    client.write_all(b"late").unwrap();
    let c = next(&mut port, &mut pending);
    assert_eq!(c.key, 1);
    let Outcome::Received { buf, result } = c.outcome else {
        panic!("{:?}", c.outcome)
    };
    assert_eq!((result.unwrap(), &buf[..]), (4, &b"late"[..]));
    // The recv's handle was the last: the descriptor is closed by the next wait at the latest.
    port.wait(&mut pending, Some(Duration::ZERO)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(client.read(&mut [0u8; 8]).unwrap(), 0, "closed for real");

    // Close, then cancel the recv still waiting: both complete, each with its own key.
    let (fd, mut client) = connected_pair();
    let waiting = port.submit(3, recv(&fd)).unwrap();
    port.submit(4, Op::Close { fd }).unwrap();
    let c = next(&mut port, &mut pending);
    assert_eq!(c.key, 4);
    assert!(matches!(c.outcome, Outcome::Closed(Ok(()))));
    port.cancel(waiting).unwrap();
    let c = next(&mut port, &mut pending);
    assert_eq!(c.key, 3);
    let Outcome::Received { result, .. } = c.outcome else {
        panic!("{:?}", c.outcome)
    };
    assert_eq!(result.unwrap_err().raw_os_error(), Some(code::CANCELLED));
    port.wait(&mut pending, Some(Duration::ZERO)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(client.read(&mut [0u8; 8]).unwrap(), 0, "closed for real");

    // Drop the handle right after a completion and open a new socket before the next wait (the
    // number may be reused): the new socket's operations get the new socket's bytes.
    for round in 0..20u64 {
        let (fd, mut client) = connected_pair();
        port.submit(10 + round, recv(&fd)).unwrap();
        client.write_all(b"old").unwrap();
        let c = next(&mut port, &mut pending);
        assert_eq!(c.key, 10 + round);
        drop(fd);
        drop(client);
        let (fd, mut client) = connected_pair();
        port.submit(100 + round, recv(&fd)).unwrap();
        nothing_completes(&mut port, &mut pending);
        client.write_all(b"new").unwrap();
        let c = next(&mut port, &mut pending);
        assert_eq!(c.key, 100 + round);
        let Outcome::Received { buf, result } = c.outcome else {
            panic!("{:?}", c.outcome)
        };
        assert_eq!((result.unwrap(), &buf[..]), (3, &b"new"[..]));
    }
    assert_eq!(port.stats().stale, 0);
    assert_eq!(port.in_flight(), 0);
}

/// The epoll backend completes the operations waiting on one fd and direction in submission
/// order. io_uring does not promise this (on 6.18 three waiting recvs complete last first), so a
/// caller that needs order keeps one recv in flight per socket; this test is epoll's only.
#[cfg(target_os = "linux")]
#[test]
fn epoll_completes_waiting_recvs_on_one_socket_in_submission_order() {
    waiting_recvs_on_one_socket_complete_in_submission_order(BackendChoice::Epoll);
}

#[cfg(target_os = "linux")]
fn waiting_recvs_on_one_socket_complete_in_submission_order(backend: BackendChoice) {
    let (fd, mut client) = connected_pair();
    let mut port = port(backend);
    let mut pending = Vec::new();
    for key in 1..=3 {
        port.submit(
            key,
            Op::Recv {
                fd: fd.clone(),
                buf: Vec::with_capacity(4),
                nowait: false,
            },
        )
        .unwrap();
    }
    nothing_completes(&mut port, &mut pending);
    client.write_all(b"aaaabbbbcccc").unwrap();
    for (key, want) in [(1, b"aaaa"), (2, b"bbbb"), (3, b"cccc")] {
        let c = next(&mut port, &mut pending);
        assert_eq!(c.key, key);
        let Outcome::Received { buf, result } = c.outcome else {
            panic!("{:?}", c.outcome)
        };
        assert_eq!((result.unwrap(), &buf[..]), (4, &want[..]));
    }
}

fn end_of_stream_and_reset_reach_a_waiting_recv(backend: BackendChoice) {
    let mut port = port(backend);
    let mut pending = Vec::new();
    let (fd, client) = connected_pair();
    port.submit(
        1,
        Op::Recv {
            fd: fd.clone(),
            buf: Vec::with_capacity(16),
            nowait: false,
        },
    )
    .unwrap();
    nothing_completes(&mut port, &mut pending);
    client.shutdown(Shutdown::Write).unwrap();
    let c = next(&mut port, &mut pending);
    let Outcome::Received { result, .. } = c.outcome else {
        panic!("{:?}", c.outcome)
    };
    assert_eq!(result.unwrap(), 0, "end of stream");

    let (fd, client) = connected_pair();
    port.submit(
        2,
        Op::Recv {
            fd: fd.clone(),
            buf: Vec::with_capacity(16),
            nowait: false,
        },
    )
    .unwrap();
    nothing_completes(&mut port, &mut pending);
    socket2::SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client); // an abortive close: RST
    let c = next(&mut port, &mut pending);
    assert_eq!(c.key, 2);
    let Outcome::Received { result, .. } = c.outcome else {
        panic!("{:?}", c.outcome)
    };
    assert_eq!(
        result.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionReset
    );
}

/// A wake-up ends a wait without limit: `None`, or a timeout too long for a deadline to be
/// represented (`Duration::MAX`, from `wait` and from `wait_at`), which is no limit either.
fn wake_up_interrupts_a_wait_without_limit(backend: BackendChoice) {
    let mut port = port(backend);
    for (key, timeout, at) in [
        (7, None, false),
        (8, Some(Duration::MAX), false),
        (9, Some(Duration::MAX), true),
    ] {
        let poster = port.poster();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            poster.post(key).unwrap();
        });
        let mut out = Vec::new();
        while out.is_empty() {
            if at {
                port.wait_at(&mut out, Instant::now(), timeout).unwrap();
            } else {
                port.wait(&mut out, timeout).unwrap();
            }
        }
        t.join().unwrap();
        assert_eq!(out.len(), 1);
        assert!(matches!(out[0].outcome, Outcome::Posted));
        assert_eq!(out[0].key, key);
    }
}

/// Every backend's name parses and displays on every system (`iocp` too on Linux).
#[test]
fn backend_names_parse_and_display() {
    for choice in BackendChoice::ALL {
        assert_eq!(choice.to_string().parse::<BackendChoice>(), Ok(choice));
    }
    assert_eq!(
        "io_uring".parse::<BackendChoice>(),
        Ok(BackendChoice::Uring)
    );
    assert_eq!("EPOLL".parse::<BackendChoice>(), Ok(BackendChoice::Epoll));
    assert_eq!("IOCP".parse::<BackendChoice>(), Ok(BackendChoice::Iocp));
    let err = "kqueue".parse::<BackendChoice>().unwrap_err();
    assert!(
        err.to_string().contains("auto, uring, epoll or iocp"),
        "{err}"
    );
    assert_eq!(BackendChoice::default(), BackendChoice::Auto);
    assert_eq!(PortConfig::default().backend, BackendChoice::Auto);
    assert_eq!(Backend::Uring.to_string(), "io_uring");
    assert_eq!(Backend::Epoll.to_string(), "epoll");
    assert_eq!(Backend::Iocp.to_string(), "iocp");
    assert_eq!(BackendChoice::from(Backend::Epoll), BackendChoice::Epoll);
    assert_eq!(BackendChoice::from(Backend::Iocp), BackendChoice::Iocp);
}

/// On Linux `iocp` is refused with one line saying it exists only on Windows.
#[cfg(unix)]
#[test]
fn iocp_is_refused_on_linux_with_one_line() {
    let err = BackendChoice::Iocp.resolve().unwrap_err();
    assert_eq!(err.backend, Backend::Iocp);
    let err = Port::new(&PortConfig {
        backend: BackendChoice::Iocp,
        ..PortConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("only on Windows"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

/// On Windows `auto` is IOCP, and io_uring and epoll are refused with one line.
#[cfg(windows)]
#[test]
fn auto_is_iocp_and_the_linux_backends_are_refused() {
    for choice in BackendChoice::ALL {
        assert_eq!(choice.to_string().parse::<BackendChoice>(), Ok(choice));
    }
    assert_eq!("IOCP".parse::<BackendChoice>(), Ok(BackendChoice::Iocp));
    assert_eq!(BackendChoice::Auto.resolve().unwrap(), Backend::Iocp);
    assert!(ringport_port::probe_uring().is_err());
    let port = Port::new(&PortConfig::default()).unwrap();
    assert_eq!(port.backend(), Backend::Iocp);
    assert!(port.describe().starts_with("iocp"), "{}", port.describe());
    for linux_only in [BackendChoice::Uring, BackendChoice::Epoll] {
        let err = Port::new(&PortConfig {
            backend: linux_only,
            ..PortConfig::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("only on Linux"), "{err}");
    }
}

/// A backend is named by what it is, parses back from its name (or its choice's), and answers
/// for itself what callers need to know, on every system.
#[test]
fn backends_name_themselves_and_answer_for_their_timers() {
    for backend in Backend::ALL {
        assert_eq!(backend.name().parse::<Backend>(), Ok(backend));
        assert_eq!(backend.choice().to_string().parse::<Backend>(), Ok(backend));
        assert_eq!(BackendChoice::from(backend), backend.choice());
        assert_eq!(Backend::HERE.contains(&backend), backend.exists_here());
    }
    assert!("auto".parse::<Backend>().is_err(), "auto names no backend");
    assert!("kqueue".parse::<Backend>().is_err());
    // Where a wait's timeout is kept to the millisecond, a caller cannot aim finer.
    assert_eq!(Backend::Iocp.timer_resolution(), Duration::from_millis(1));
    for fine in [Backend::Uring, Backend::Epoll] {
        assert!(fine.timer_resolution() < Duration::from_micros(1));
    }
    // The fallback exists here and always makes a port.
    assert!(Backend::FALLBACK.exists_here());
    let port = util::port(Backend::FALLBACK.choice());
    assert_eq!(port.backend(), Backend::FALLBACK);
    // Auto's first preference is the first backend here.
    let auto = BackendChoice::Auto.resolve().unwrap();
    assert!(Backend::HERE.contains(&auto));
    let port = Port::new(&PortConfig::default()).unwrap();
    assert_eq!(port.timer_resolution(), port.backend().timer_resolution());
}

// io_uring and epoll are Linux's.
#[cfg(target_os = "linux")]
#[test]
fn auto_agrees_with_the_probe() {
    let want = match ringport_port::probe_uring() {
        Ok(()) => Backend::Uring,
        Err(_) => Backend::Epoll,
    };
    assert_eq!(BackendChoice::Auto.resolve().unwrap(), want);
    assert_eq!(BackendChoice::Epoll.resolve().unwrap(), Backend::Epoll);
    let port = Port::new(&PortConfig::default()).unwrap();
    assert_eq!(port.backend(), want);
    assert!(
        port.describe().starts_with(want.name()),
        "{}",
        port.describe()
    );
    let port = util::port(BackendChoice::Epoll);
    assert_eq!(port.describe(), "epoll (edge-triggered)");
}

/// The epoll backend leaves a listener `O_NONBLOCK`; io_uring's accept must still wait on it,
/// and a socket the epoll backend waited on must still be blocking for io_uring's recv.
#[cfg(target_os = "linux")]
#[test]
fn io_uring_is_unaffected_by_fds_the_epoll_backend_has_used() {
    let (listener, addr) = listener();
    let mut epoll = util::port(BackendChoice::Epoll);
    let mut uring = util::port(BackendChoice::Uring);
    let mut pending = Vec::new();
    let accept = || Op::Accept {
        listener: listener.clone(),
    };

    epoll.submit(1, accept()).unwrap();
    nothing_completes(&mut epoll, &mut pending);
    let mut c1 = TcpStream::connect(addr).unwrap();
    let c = next(&mut epoll, &mut pending);
    let Outcome::Accepted(Ok(acc)) = c.outcome else {
        panic!("{:?}", c.outcome)
    };
    let server_side = Rc::new(acc.fd);
    // The epoll backend waits on the accepted socket too.
    epoll
        .submit(
            2,
            Op::Recv {
                fd: server_side.clone(),
                buf: Vec::with_capacity(8),
                nowait: false,
            },
        )
        .unwrap();
    nothing_completes(&mut epoll, &mut pending);
    c1.write_all(b"one").unwrap();
    let c = next(&mut epoll, &mut pending);
    assert_eq!(c.key, 2);
    drop(epoll);

    // Now io_uring, on the same listener and socket: both must wait, not fail with EAGAIN.
    uring.submit(3, accept()).unwrap();
    uring
        .submit(
            4,
            Op::Recv {
                fd: server_side.clone(),
                buf: Vec::with_capacity(8),
                nowait: false,
            },
        )
        .unwrap();
    nothing_completes(&mut uring, &mut pending);
    let _c2 = TcpStream::connect(addr).unwrap();
    c1.write_all(b"two").unwrap();
    let mut keys = Vec::new();
    for _ in 0..2 {
        let c = next(&mut uring, &mut pending);
        match (c.key, c.outcome) {
            (3, Outcome::Accepted(Ok(_))) => keys.push(3),
            (4, Outcome::Received { buf, result }) => {
                assert_eq!((result.unwrap(), &buf[..]), (3, &b"two"[..]));
                keys.push(4);
            }
            other => panic!("{other:?}"),
        }
    }
    keys.sort_unstable();
    assert_eq!(keys, [3, 4]);
}

/// A ring of 8 entries has a completion queue of 32. Receives on 200 sockets complete while
/// nobody reaps (their data arrives between two waits), and 5,000 no-ops are submitted on top:
/// far more completions than the queue holds. Every operation completes exactly once, with its
/// own key and its own bytes, and nothing is counted stale.
fn an_overflowing_completion_queue_loses_nothing(backend: BackendChoice) {
    const SOCKETS: u64 = 200;
    const NOPS: u64 = 5_000;
    let mut port = port_with(backend, 8);
    let mut pending = Vec::new();
    let mut clients = Vec::new();
    let mut fds = Vec::new();
    for i in 0..SOCKETS {
        let (fd, client) = connected_pair();
        port.submit(
            i,
            Op::Recv {
                fd: fd.clone(),
                buf: Vec::with_capacity(8),
                nowait: false,
            },
        )
        .unwrap();
        fds.push(fd);
        clients.push(client);
    }
    // Submit the receives; none can complete yet.
    nothing_completes(&mut port, &mut pending);
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(&(i as u64).to_le_bytes()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    for i in 0..NOPS {
        port.submit(SOCKETS + i, Op::Nop).unwrap();
    }
    let total = (SOCKETS + NOPS) as usize;
    let mut seen = vec![0u32; total];
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while done < total {
        assert!(
            Instant::now() < deadline,
            "{done} of {total} completions within 10 s"
        );
        port.wait(&mut pending, Some(Duration::from_millis(100)))
            .unwrap();
        for c in pending.drain(..) {
            let key = c.key as usize;
            seen[key] += 1;
            done += 1;
            if c.key < SOCKETS {
                let Outcome::Received { buf, result } = c.outcome else {
                    panic!("{:?}", c.outcome)
                };
                assert_eq!(result.unwrap(), 8);
                assert_eq!(buf, c.key.to_le_bytes(), "socket {key} got another's bytes");
            } else {
                assert!(matches!(c.outcome, Outcome::Nop), "{:?}", c.outcome);
            }
        }
    }
    nothing_completes(&mut port, &mut pending);
    assert!(seen.iter().all(|&n| n == 1), "every key exactly once");
    assert_eq!(port.stats().stale, 0);
    assert_eq!(port.in_flight(), 0);
    assert_eq!(port.stats().completions, total as u64);
}
