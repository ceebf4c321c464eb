//! The buffer pool and the operations that use it (multishot receive, pooled receive, send from
//! a pooled buffer, multishot accept), on real sockets over loopback, on every backend.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

use ringport_port::errors::code;
use ringport_port::{BackendChoice, Completion, Op, Outcome, PoolBuf, Port};
use util::{connected_pair, listener, next, nothing_completes, pattern, port};

on_every_backend!(
    multishot_recv_fills_pooled_buffers_that_send_buf_echoes_without_a_copy,
    an_empty_pool_ends_a_multishot_recv_with_enobufs_and_a_rearm_loses_nothing,
    cancel_ends_a_multishot_recv_and_frees_its_table_entry,
    end_of_stream_ends_a_multishot_recv_without_a_buffer,
    recv_buf_once_and_nowait,
    a_waiting_single_receive_goes_after_the_batch_where_the_port_says_so_and_cancels_before_it,
    multishot_accept_takes_every_client_until_cancelled,
    a_multishot_accept_on_a_socket_that_does_not_listen_ends_once_with_einval,
    pooled_ops_without_a_pool_are_refused,
    a_buffer_of_another_ports_pool_is_refused,
    a_limited_multishot_recv_ends_at_its_limit_and_leaves_the_rest_in_the_socket,
    a_burst_of_many_buffers_arrives_whole_and_in_order_and_send_bufs_echoes_it_in_one_send,
    send_bufs_starts_at_an_offset_and_refuses_an_empty_list,
    a_pool_of_large_buffers_is_set_up_without_waiting,
    a_long_stream_cycles_through_the_pool_many_times_and_every_byte_arrives_in_order,
);

/// The next completion as a pooled receive: `(buffer, result, more)`.
#[track_caller]
fn next_recv(port: &mut Port, pending: &mut Vec<Completion>) -> (Option<PoolBuf>, i64, bool) {
    let c = next(port, pending);
    let Outcome::ReceivedBuf { buf, result, more } = c.outcome else {
        panic!("expected a pooled receive, got {:?}", c.outcome)
    };
    let result = match result {
        Ok(n) => n as i64,
        Err(e) => -i64::from(e.raw_os_error().unwrap_or(0)),
    };
    (buf, result, more)
}

/// Sends `buf` whole through the port and gives it back.
#[track_caller]
fn echo(
    port: &mut Port,
    pending: &mut Vec<Completion>,
    fd: &ringport_port::SharedFd,
    buf: PoolBuf,
) {
    let len = buf.len();
    port.submit(
        9,
        Op::SendBuf {
            fd: fd.clone(),
            buf,
            at: 0,
        },
    )
    .unwrap();
    let c = next(port, pending);
    let Outcome::SentBuf { buf, at, result } = c.outcome else {
        panic!("{:?}", c.outcome)
    };
    assert_eq!((at, result.unwrap()), (0, len));
    port.give_back(buf);
}

fn multishot_recv_fills_pooled_buffers_that_send_buf_echoes_without_a_copy(backend: BackendChoice) {
    let mut port = port(backend);
    // More buffers than one bundle takes (64), so that no receive empties the ring (which
    // ends a bundle receive: see the next test).
    port.provide_buffers(128, 64).unwrap();
    if backend == BackendChoice::Uring {
        assert!(port.buffer_ring(), "a provided-buffer ring on io_uring");
    }
    assert_eq!(port.buffers_available(), 128);
    let (fd, mut client) = connected_pair();
    let recv = port
        .submit(
            1,
            Op::RecvMulti {
                fd: fd.clone(),
                limit: 0,
            },
        )
        .unwrap();
    let mut pending = Vec::new();
    nothing_completes(&mut port, &mut pending);
    assert_eq!(
        port.buffers_available(),
        128,
        "an idle receive holds no buffer"
    );
    for round in 0..10u8 {
        let msg = [b'a' + round; 5];
        client.write_all(&msg).unwrap();
        let (buf, n, more) = next_recv(&mut port, &mut pending);
        assert_eq!((n, more), (5, true), "round {round}");
        let buf = buf.expect("a buffer with the bytes");
        assert_eq!(port.buf(&buf), &msg);
        assert_eq!(port.buffers_available(), 127);
        echo(&mut port, &mut pending, &fd, buf);
        assert_eq!(port.buffers_available(), 128, "given back");
        let mut back = [0u8; 5];
        client.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    assert_eq!(port.in_flight(), 1, "the multishot receive is still armed");
    port.cancel(recv).unwrap();
    let (buf, res, more) = next_recv(&mut port, &mut pending);
    assert_eq!((buf, res, more), (None, -i64::from(code::CANCELLED), false));
    assert_eq!(port.in_flight(), 0);
}

fn an_empty_pool_ends_a_multishot_recv_with_enobufs_and_a_rearm_loses_nothing(
    backend: BackendChoice,
) {
    let mut port = port(backend);
    port.provide_buffers(2, 16).unwrap();
    let (fd, mut client) = connected_pair();
    port.submit(
        1,
        Op::RecvMulti {
            fd: fd.clone(),
            limit: 0,
        },
    )
    .unwrap();
    let mut pending = Vec::new();
    let sent = pattern(16 * 5);
    let mut held = Vec::new();
    for chunk in sent.chunks(16).take(2) {
        client.write_all(chunk).unwrap();
        let (buf, n, more) = next_recv(&mut port, &mut pending);
        assert_eq!(n, 16);
        held.push(buf.unwrap());
        if !more {
            // A bundle receive (io_uring) that took the last buffers the ring showed ends
            // with its chunk: re-armed, as its owner would.
            port.submit(
                1,
                Op::RecvMulti {
                    fd: fd.clone(),
                    limit: 0,
                },
            )
            .unwrap();
        }
    }
    assert_eq!(port.buffers_available(), 0);
    // The pool is dry: the next bytes end the receive, and stay in the socket.
    client.write_all(&sent[32..]).unwrap();
    let (buf, res, more) = next_recv(&mut port, &mut pending);
    assert_eq!(
        (buf, res, more),
        (None, -i64::from(code::POOL_EMPTY), false)
    );
    assert_eq!(port.in_flight(), 0);
    let mut got: Vec<u8> = Vec::new();
    for buf in held.drain(..) {
        got.extend_from_slice(port.buf(&buf));
        port.give_back(buf);
    }
    assert_eq!(port.buffers_available(), 2);
    // Re-armed once buffers are back: the waiting bytes arrive, in order.
    port.submit(
        2,
        Op::RecvMulti {
            fd: fd.clone(),
            limit: 0,
        },
    )
    .unwrap();
    while got.len() < sent.len() {
        let (buf, n, more) = next_recv(&mut port, &mut pending);
        match buf {
            Some(buf) => {
                assert!(n > 0);
                got.extend_from_slice(port.buf(&buf));
                port.give_back(buf);
            }
            None => {
                // Two buffers for 48 bytes: it may run dry again between give-backs.
                assert_eq!((n, more), (-i64::from(code::POOL_EMPTY), false));
            }
        }
        if !more && got.len() < sent.len() {
            // Ended (dry, or a bundle that took the last buffers): re-armed.
            {
                port.submit(
                    2,
                    Op::RecvMulti {
                        fd: fd.clone(),
                        limit: 0,
                    },
                )
                .unwrap();
            }
        }
    }
    assert_eq!(got, sent, "nothing lost, nothing reordered");
    assert_eq!(port.buffers_available(), 2);
}

fn cancel_ends_a_multishot_recv_and_frees_its_table_entry(backend: BackendChoice) {
    let mut port = port(backend);
    port.provide_buffers(8, 64).unwrap();
    let (fd, mut client) = connected_pair();
    let mut pending = Vec::new();
    for _ in 0..3 {
        let token = port
            .submit(
                1,
                Op::RecvMulti {
                    fd: fd.clone(),
                    limit: 0,
                },
            )
            .unwrap();
        nothing_completes(&mut port, &mut pending);
        port.cancel(token).unwrap();
        let (buf, res, more) = next_recv(&mut port, &mut pending);
        assert_eq!((buf, res, more), (None, -i64::from(code::CANCELLED), false));
        assert_eq!(port.in_flight(), 0);
    }
    // Cancelled receives took nothing: the bytes wait for the next one.
    client.write_all(b"later").unwrap();
    port.submit(
        2,
        Op::RecvMulti {
            fd: fd.clone(),
            limit: 0,
        },
    )
    .unwrap();
    let (buf, n, _) = next_recv(&mut port, &mut pending);
    let buf = buf.unwrap();
    assert_eq!((n, port.buf(&buf)), (5, &b"later"[..]));
    port.give_back(buf);
    assert_eq!(port.buffers_available(), 8);
}

fn end_of_stream_ends_a_multishot_recv_without_a_buffer(backend: BackendChoice) {
    let mut port = port(backend);
    port.provide_buffers(128, 64).unwrap();
    let (fd, mut client) = connected_pair();
    port.submit(
        1,
        Op::RecvMulti {
            fd: fd.clone(),
            limit: 0,
        },
    )
    .unwrap();
    let mut pending = Vec::new();
    client.write_all(b"bye").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    loop {
        let (buf, n, more) = next_recv(&mut port, &mut pending);
        if let Some(buf) = buf {
            got.extend_from_slice(port.buf(&buf));
            port.give_back(buf);
            assert!(more);
            continue;
        }
        assert_eq!((n, more), (0, false), "end of stream ends it");
        break;
    }
    assert_eq!(got, b"bye");
    assert_eq!(port.in_flight(), 0);
    assert_eq!(port.buffers_available(), 128);
}

fn recv_buf_once_and_nowait(backend: BackendChoice) {
    let mut port = port(backend);
    port.provide_buffers(1, 64).unwrap();
    let (fd, mut client) = connected_pair();
    let mut pending = Vec::new();
    port.submit(
        1,
        Op::RecvBuf {
            fd: fd.clone(),
            nowait: true,
        },
    )
    .unwrap();
    let (buf, res, more) = next_recv(&mut port, &mut pending);
    assert_eq!(
        (buf, res, more),
        (None, -i64::from(code::WOULD_BLOCK), false)
    );
    client.write_all(b"x").unwrap();
    port.submit(
        2,
        Op::RecvBuf {
            fd: fd.clone(),
            nowait: false,
        },
    )
    .unwrap();
    let (buf, n, more) = next_recv(&mut port, &mut pending);
    let buf = buf.unwrap();
    assert_eq!((n, more, port.buf(&buf)), (1, false, &b"x"[..]));
    // The only buffer is out: a receive finds the pool empty.
    port.submit(
        3,
        Op::RecvBuf {
            fd: fd.clone(),
            nowait: false,
        },
    )
    .unwrap();
    client.write_all(b"y").unwrap();
    let (none, res, _) = next_recv(&mut port, &mut pending);
    assert_eq!((none, res), (None, -i64::from(code::POOL_EMPTY)));
    port.give_back(buf);
    assert_eq!(port.in_flight(), 0);
}

/// A single pooled receive that waits, submitted before a send in the same batch: where the
/// port issues such receives late ([`Port::late_single_receives`], io_uring), the send reaches
/// the system first, so its completion comes first although both find their sockets ready;
/// elsewhere both simply complete. Cancelling such a receive before the port waits finds it
/// (the cancellation follows it), and its bytes wait for the next receive.
fn a_waiting_single_receive_goes_after_the_batch_where_the_port_says_so_and_cancels_before_it(
    backend: BackendChoice,
) {
    let mut port = port(backend);
    port.provide_buffers(8, 64).unwrap();
    let (a, mut client_a) = connected_pair();
    let (b, mut client_b) = connected_pair();
    client_a.write_all(b"ping").unwrap();
    // Let the bytes reach the server's socket.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut pending = Vec::new();
    port.submit(
        1,
        Op::RecvBuf {
            fd: a.clone(),
            nowait: false,
        },
    )
    .unwrap();
    port.submit(
        2,
        Op::Send {
            fd: b.clone(),
            buf: b"pong".to_vec(),
            at: 0,
        },
    )
    .unwrap();
    let first = next(&mut port, &mut pending);
    let second = next(&mut port, &mut pending);
    let keys = [first.key, second.key];
    if port.late_single_receives() {
        assert_eq!(
            keys,
            [2, 1],
            "{backend}: the send first: {first:?}, {second:?}"
        );
    }
    let (recv, sent) = if first.key == 1 {
        (first, second)
    } else {
        (second, first)
    };
    let Outcome::ReceivedBuf {
        buf: Some(buf),
        result: Ok(4),
        more: false,
    } = recv.outcome
    else {
        panic!("{backend}: {:?}", recv.outcome)
    };
    assert_eq!(port.buf(&buf), b"ping");
    port.give_back(buf);
    assert!(
        matches!(sent.outcome, Outcome::Sent { result: Ok(4), .. }),
        "{backend}: {:?}",
        sent.outcome
    );
    let mut pong = [0u8; 4];
    client_b.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"pong");

    // Cancelled before the port waits: it ends cancelled, having taken nothing.
    let token = port
        .submit(
            3,
            Op::RecvBuf {
                fd: a.clone(),
                nowait: false,
            },
        )
        .unwrap();
    port.cancel(token).unwrap();
    let (buf, res, more) = next_recv(&mut port, &mut pending);
    assert_eq!((buf, res, more), (None, -i64::from(code::CANCELLED), false));
    assert_eq!(port.in_flight(), 0);
    client_a.write_all(b"again").unwrap();
    port.submit(
        4,
        Op::RecvBuf {
            fd: a.clone(),
            nowait: false,
        },
    )
    .unwrap();
    let (buf, n, _) = next_recv(&mut port, &mut pending);
    let buf = buf.unwrap();
    assert_eq!((n, port.buf(&buf)), (5, &b"again"[..]));
    port.give_back(buf);
    assert_eq!(port.buffers_available(), 8);
}

/// The next completion as the end of a multishot accept (`more: false`, an error): its errno.
#[track_caller]
fn accept_end(port: &mut Port, pending: &mut Vec<Completion>) -> Option<i32> {
    let c = next(port, pending);
    let Outcome::AcceptedMulti {
        result: Err(e),
        more: false,
    } = c.outcome
    else {
        panic!(
            "expected the end of a multishot accept, got {:?}",
            c.outcome
        )
    };
    e.raw_os_error()
}

fn multishot_accept_takes_every_client_until_cancelled(backend: BackendChoice) {
    let (listener, addr) = listener();
    let mut port = port(backend);
    let token = port
        .submit(
            7,
            Op::AcceptMulti {
                listener: listener.clone(),
            },
        )
        .unwrap();
    let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut pending = Vec::new();
    let mut peers = Vec::new();
    for _ in 0..3 {
        let c = next(&mut port, &mut pending);
        assert_eq!(c.key, 7);
        let Outcome::AcceptedMulti {
            result: Ok(acc),
            more: true,
        } = c.outcome
        else {
            panic!("{:?}", c.outcome)
        };
        peers.push(acc.peer.expect("the peer address"));
    }
    let mut want: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
    want.sort();
    peers.sort();
    assert_eq!(peers, want);
    assert_eq!(port.in_flight(), 1, "still accepting");
    port.cancel(token).unwrap();
    assert_eq!(accept_end(&mut port, &mut pending), Some(code::CANCELLED));
    assert_eq!(port.in_flight(), 0);
}

/// `EINVAL` is also how kernels before 5.19 refuse a multishot accept, which the port then
/// retries as single accepts: a socket that does not listen refuses those too, and the
/// operation ends once, with that error, instead of retrying for ever.
fn a_multishot_accept_on_a_socket_that_does_not_listen_ends_once_with_einval(
    backend: BackendChoice,
) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let not_listening: ringport_port::SharedFd = std::rc::Rc::new(socket.into());
    let mut port = port(backend);
    port.submit(
        3,
        Op::AcceptMulti {
            listener: not_listening,
        },
    )
    .unwrap();
    let mut pending = Vec::new();
    assert_eq!(accept_end(&mut port, &mut pending), Some(code::INVALID));
    assert_eq!(port.in_flight(), 0);
    nothing_completes(&mut port, &mut pending);
}

fn pooled_ops_without_a_pool_are_refused(backend: BackendChoice) {
    let mut port = port(backend);
    let (fd, _client) = connected_pair();
    let mut pending = Vec::new();
    match port.submit(1, Op::RecvMulti { fd, limit: 0 }) {
        Err(e) => assert_eq!(e.raw_os_error(), Some(code::INVALID)),
        Ok(_) => {
            let (buf, res, more) = next_recv(&mut port, &mut pending);
            assert_eq!((buf, res, more), (None, -i64::from(code::INVALID), false));
        }
    }
    assert_eq!(port.in_flight(), 0);
    assert!(port.provide_buffers(0, 64).is_err());
    assert!(port.provide_buffers(2, 64).is_ok());
    assert!(port.provide_buffers(2, 64).is_err(), "one pool per port");
}

/// A handle names its pool: another port's pool (here with the same buffer numbers) refuses
/// to send from it, to move its window or to take it back, so it never stands for a buffer of
/// that pool which the kernel may be writing; its own port still takes it.
fn a_buffer_of_another_ports_pool_is_refused(backend: BackendChoice) {
    let mut a = port(backend);
    let mut b = port(backend);
    a.provide_buffers(2, 64).unwrap();
    b.provide_buffers(2, 64).unwrap();
    let (fd, mut client) = connected_pair();
    let mut pending = Vec::new();
    a.submit(
        1,
        Op::RecvBuf {
            fd: fd.clone(),
            nowait: false,
        },
    )
    .unwrap();
    client.write_all(b"AAAA").unwrap();
    let (buf, res, _) = next_recv(&mut a, &mut pending);
    assert_eq!(res, 4);
    let mut buf = buf.expect("a buffer");
    assert!(!b.set_window(&mut buf, 0, 2), "another pool's window");
    assert_eq!(buf.len(), 4, "unchanged");
    let refused = b.submit(
        2,
        Op::SendBuf {
            fd: fd.clone(),
            buf,
            at: 0,
        },
    );
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    // The refused operation took its handle with it: the buffer stays out of pool A for good,
    // and the next receive takes A's other buffer.
    a.submit(
        3,
        Op::RecvBuf {
            fd: fd.clone(),
            nowait: false,
        },
    )
    .unwrap();
    client.write_all(b"BBBB").unwrap();
    let (buf, _, _) = next_recv(&mut a, &mut pending);
    let buf = buf.expect("a buffer");
    assert_eq!(a.buf(&buf), b"BBBB");
    let given = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.give_back(buf)));
    assert!(given.is_err(), "another pool's buffer is not taken back");
}

fn a_limited_multishot_recv_ends_at_its_limit_and_leaves_the_rest_in_the_socket(
    backend: BackendChoice,
) {
    let mut port = port(backend);
    port.provide_buffers(64, 16).unwrap();
    let (fd, mut client) = connected_pair();
    let sent = pattern(512);
    client.write_all(&sent).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    port.submit(
        1,
        Op::RecvMulti {
            fd: fd.clone(),
            limit: 64,
        },
    )
    .unwrap();
    let mut pending = Vec::new();
    let mut got = Vec::new();
    loop {
        let (buf, n, more) = next_recv(&mut port, &mut pending);
        let buf = buf.expect("a chunk");
        got.extend_from_slice(port.buf(&buf));
        port.give_back(buf);
        assert!(n > 0);
        if !more {
            break;
        }
    }
    let capped = port.describe().contains("receives limited");
    if backend == BackendChoice::Uring && kernel_at_least(6, 16) {
        assert!(
            capped,
            "Linux 6.16+ limits multishot receives: {}",
            port.describe()
        );
    }
    let kernel_limits = backend == BackendChoice::Epoll || capped;
    if kernel_limits {
        assert_eq!(got.len(), 64, "the burst ends at the limit");
    }
    // The rest waits in the socket for the next receive.
    while got.len() < sent.len() {
        port.submit(
            2,
            Op::RecvMulti {
                fd: fd.clone(),
                limit: 0,
            },
        )
        .unwrap();
        let (buf, _, more) = next_recv(&mut port, &mut pending);
        let buf = buf.expect("a chunk");
        got.extend_from_slice(port.buf(&buf));
        port.give_back(buf);
        if more {
            while got.len() < sent.len() {
                let (buf, _, _) = next_recv(&mut port, &mut pending);
                let buf = buf.expect("a chunk");
                got.extend_from_slice(port.buf(&buf));
                port.give_back(buf);
            }
            break;
        }
    }
    assert_eq!(got, sent);
}

fn a_burst_of_many_buffers_arrives_whole_and_in_order_and_send_bufs_echoes_it_in_one_send(
    backend: BackendChoice,
) {
    let mut port = port(backend);
    port.provide_buffers(256, 512).unwrap();
    if backend == BackendChoice::Uring && kernel_at_least(6, 16) {
        assert!(
            port.describe().contains("as bundles"),
            "Linux 6.16+ receives bundles with limits: {}",
            port.describe()
        );
    }
    let (fd, mut client) = connected_pair();
    // 40 buffers' worth, with a pattern that shows a chunk out of place.
    let sent = pattern(20_000);
    client.write_all(&sent).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    port.submit(
        1,
        Op::RecvMulti {
            fd: fd.clone(),
            limit: sent.len(),
        },
    )
    .unwrap();
    let mut pending = Vec::new();
    let mut bufs = Vec::new();
    let mut got = 0;
    while got < sent.len() {
        let (buf, n, _) = next_recv(&mut port, &mut pending);
        let buf = buf.expect("a chunk");
        assert!(n > 0 && n as usize <= 512, "one buffer per completion: {n}");
        assert_eq!(port.buf(&buf), &sent[got..got + n as usize], "at {got}");
        got += n as usize;
        bufs.push(buf);
    }
    assert_eq!(port.buffers_available(), 256 - bufs.len());
    let nbufs = bufs.len();
    let mut back = vec![0u8; sent.len()];
    let reader = std::thread::spawn(move || {
        client.read_exact(&mut back).unwrap();
        back
    });
    let mut at = 0;
    let mut done = 0;
    let mut sends = 0;
    while !bufs.is_empty() {
        port.submit(
            2,
            Op::SendBufs {
                fd: fd.clone(),
                bufs: std::mem::take(&mut bufs),
                at,
            },
        )
        .unwrap();
        sends += 1;
        let c = next(&mut port, &mut pending);
        let Outcome::SentBufs {
            bufs: mut list,
            at: from,
            result,
        } = c.outcome
        else {
            panic!("{:?}", c.outcome)
        };
        assert_eq!(from, at);
        let mut n = result.unwrap();
        done += n;
        // Give back what was sent whole; resume the rest.
        while let Some(first) = list.first() {
            let left = first.len() - at;
            if n < left {
                at += n;
                break;
            }
            n -= left;
            at = 0;
            port.give_back(list.remove(0));
        }
        bufs = list;
    }
    assert_eq!(done, sent.len());
    assert!(sends < nbufs, "{sends} sends for {nbufs} buffers");
    assert_eq!(reader.join().unwrap(), sent);
    assert_eq!(port.buffers_available(), 256, "every buffer given back");
}

fn send_bufs_starts_at_an_offset_and_refuses_an_empty_list(backend: BackendChoice) {
    let mut port = port(backend);
    port.provide_buffers(8, 16).unwrap();
    let (fd, mut client) = connected_pair();
    client.write_all(b"0123456789abcdefXYZ").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut pending = Vec::new();
    let mut bufs = Vec::new();
    while bufs.iter().map(PoolBuf::len).sum::<usize>() < 19 {
        port.submit(
            1,
            Op::RecvBuf {
                fd: fd.clone(),
                nowait: false,
            },
        )
        .unwrap();
        let (buf, _, _) = next_recv(&mut port, &mut pending);
        bufs.push(buf.expect("a chunk"));
    }
    port.submit(
        2,
        Op::SendBufs {
            fd: fd.clone(),
            bufs,
            at: 4,
        },
    )
    .unwrap();
    let c = next(&mut port, &mut pending);
    let Outcome::SentBufs { bufs, at, result } = c.outcome else {
        panic!("{:?}", c.outcome)
    };
    assert_eq!((at, result.unwrap()), (4, 15));
    for buf in bufs {
        port.give_back(buf);
    }
    let mut back = [0u8; 15];
    client.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"456789abcdefXYZ");
    let refused = port.submit(
        3,
        Op::SendBufs {
            fd: fd.clone(),
            bufs: Vec::new(),
            at: 0,
        },
    );
    assert_eq!(refused.unwrap_err().raw_os_error(), Some(code::INVALID));
    assert_eq!(port.in_flight(), 0);
    assert_eq!(port.buffers_available(), 8);
}

/// The kernel-feature probes run when a pool is provided must not wait on a socket that cannot
/// hold their bytes (buffers larger than a local socket pair's queue).
fn a_pool_of_large_buffers_is_set_up_without_waiting(backend: BackendChoice) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut port = port(backend);
        let provided = port.provide_buffers(16, 1 << 20).is_ok();
        let _ = tx.send((provided, port.buffers_available()));
    });
    let got = rx.recv_timeout(std::time::Duration::from_secs(10));
    assert_eq!(got, Ok((true, 16)), "provide_buffers returned");
}

/// Many bundles through a pool larger than the kernel's ring keeps (see `BufPool::refill`),
/// buffers given back late and in batches, as a server holding chunks for their echo does:
/// every byte arrives once and in order, and every buffer comes back.
fn a_long_stream_cycles_through_the_pool_many_times_and_every_byte_arrives_in_order(
    backend: BackendChoice,
) {
    let mut port = port(backend);
    port.provide_buffers(1024, 256).unwrap();
    let (fd, mut client) = connected_pair();
    let sent = pattern(4 << 20);
    let writer = {
        let sent = sent.clone();
        std::thread::spawn(move || {
            client.write_all(&sent).unwrap();
            client
        })
    };
    let mut pending = Vec::new();
    let mut got = Vec::with_capacity(sent.len());
    let mut held: std::collections::VecDeque<PoolBuf> = std::collections::VecDeque::new();
    let mut armed = false;
    while got.len() < sent.len() {
        if !armed {
            // A limit that is not a whole number of buffers, as a connection's room is.
            port.submit(
                1,
                Op::RecvMulti {
                    fd: fd.clone(),
                    limit: 5000,
                },
            )
            .unwrap();
        }
        let (buf, n, more) = next_recv(&mut port, &mut pending);
        armed = more;
        if let Some(buf) = buf {
            got.extend_from_slice(port.buf(&buf));
            held.push_back(buf);
        } else {
            assert_eq!(
                n,
                -i64::from(code::POOL_EMPTY),
                "only a dry pool ends it without bytes"
            );
        }
        // Give back the oldest in bursts, keeping up to 40 chunks.
        if held.len() > 40 || n < 0 {
            for buf in held.drain(..held.len() / 2 + 1) {
                port.give_back(buf);
            }
        }
    }
    assert!(got == sent, "the stream arrived altered");
    for buf in held.drain(..) {
        port.give_back(buf);
    }
    drop(writer.join().unwrap());
    if armed {
        let (_, n, _) = next_recv(&mut port, &mut pending);
        assert_eq!(n, 0, "end of stream");
    }
    assert_eq!(port.buffers_available(), 1024);
}

/// Whether the running kernel's release is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}
