//! The hot path allocates nothing: generating a message, recording it as sent, verifying its
//! echo in chunks (against a copy, or regenerated as the engine does) and recording its latency,
//! once the buffers have been set up; in request/response mode, framing and checking replies
//! (exact, delimited with a regex, HTTP with a length or chunks) once they have grown.
//!
//! `allocation_counter` installs a counting global allocator (its unsafe code, not ours) and
//! counts the allocations of the calling thread inside `measure`.

use std::time::{Duration, Instant};

use ringport_stress::config::request::{pair, HttpStatus, Item};
use ringport_stress::measure::thread::ThreadStats;
use ringport_stress::protocol::echo::{SendStamp, StreamVerifier};
use ringport_stress::protocol::payload::{PayloadGen, PayloadSpec};
use ringport_stress::protocol::reply::ReplyVerifier;
use ringport_stress::protocol::script::Script;

fn round_trips(spec: &PayloadSpec, pipeline: usize, messages: u64, regenerate: bool) -> u64 {
    let gen = PayloadGen::new(spec, 3);
    let mut verifier = if regenerate {
        StreamVerifier::regenerating(pipeline)
    } else {
        StreamVerifier::new(pipeline, spec.max_len())
    };
    let mut stats = ThreadStats::new(8);
    let mut msg = Vec::with_capacity(spec.max_len());
    let mut wire = Vec::with_capacity(pipeline * spec.max_len());
    let t0 = Instant::now();
    let mut index = 1;
    let info = allocation_counter::measure(|| {
        while index <= messages {
            wire.clear();
            while verifier.has_room() && index <= messages {
                let stamp = SendStamp {
                    index,
                    intended: t0,
                    sent: t0,
                };
                if regenerate {
                    let start = wire.len();
                    gen.append(index, &mut wire);
                    verifier.push_len(wire.len() - start, stamp).unwrap();
                } else {
                    gen.fill(index, &mut msg);
                    verifier.push(&msg, stamp).unwrap();
                    wire.extend_from_slice(&msg);
                }
                index += 1;
            }
            // The echo comes back in odd-sized chunks.
            for chunk in wire.chunks(7) {
                let record = |done| stats.record_message(3, &done, t0 + Duration::from_micros(25));
                if regenerate {
                    verifier.consume_expected(chunk, &gen, record).unwrap();
                } else {
                    verifier.consume(chunk, record).unwrap();
                }
                stats.record_echoed(3, chunk.len());
            }
        }
    });
    assert_eq!(stats.messages, messages);
    info.count_total
}

#[test]
fn the_counter_sees_allocations() {
    let info = allocation_counter::measure(|| {
        std::hint::black_box(vec![1u8; 10]);
    });
    assert_eq!(info.count_total, 1);
}

#[test]
fn the_per_message_path_does_not_allocate() {
    for regenerate in [false, true] {
        let text = PayloadSpec::Text("Swarajya Pendha".into());
        assert_eq!(
            round_trips(&text, 1, 2000, regenerate),
            0,
            "text, closed loop"
        );
        assert_eq!(
            round_trips(&text, 8, 2000, regenerate),
            0,
            "text, pipeline 8"
        );
        let random = PayloadSpec::Random {
            size: 1000,
            seed: 5,
        };
        assert_eq!(
            round_trips(&random, 4, 2000, regenerate),
            0,
            "random, pipeline 4"
        );
        let chunks = PayloadSpec::Random {
            size: 64 << 10,
            seed: 6,
        };
        assert_eq!(
            round_trips(&chunks, 4, 40, regenerate),
            0,
            "64 KiB chunks, window 4"
        );
    }
}

/// Request/response mode: `messages` requests of `script` answered by `replies` (one reply per
/// request, in order, cycled), the replies fed in chunks of 7 bytes. Returns the allocations
/// after one warm-up pass (in which the verifier's buffers and the regex's cache grow).
fn replies(script: &Script, replies: &[&[u8]], pipeline: usize, messages: u64) -> u64 {
    let mut verifier = ReplyVerifier::new(pipeline);
    let mut stats = ThreadStats::new(8);
    let mut wire = Vec::with_capacity(pipeline * 4096);
    let mut out = Vec::with_capacity(pipeline * 4096);
    let t0 = Instant::now();
    let mut index = 1;
    let mut pass = |upto: u64| {
        while index <= upto {
            wire.clear();
            out.clear();
            while verifier.has_room() && index <= upto {
                let stamp = SendStamp {
                    index,
                    intended: t0,
                    sent: t0,
                };
                out.extend_from_slice(&script.step(index).request);
                verifier.push(script.step(index).request.len(), stamp);
                wire.extend_from_slice(replies[script.position(index)]);
                index += 1;
            }
            for chunk in wire.chunks(7) {
                let record = |done| stats.record_message(3, &done, t0 + Duration::from_micros(25));
                verifier.consume(chunk, script, record).unwrap();
            }
        }
    };
    pass(2 * replies.len() as u64 * pipeline as u64);
    let info = allocation_counter::measure(|| pass(messages));
    assert_eq!(verifier.completed(), messages);
    info.count_total
}

#[test]
fn the_request_response_path_does_not_allocate() {
    let script = |items: Vec<Item>| Script::compile(&pair(items).unwrap()).unwrap();
    let req = |s: &str| Item::Request(s.as_bytes().to_vec());
    let redis = script(vec![
        req("SET k v\r\n"),
        Item::Expect(b"+OK\r\n".to_vec()),
        req("GET k\r\n"),
        Item::ExpectUntil(b"\r\n".to_vec()),
        Item::ExpectRegex(r"^\$\d+$".into()),
        req("INCR n\r\n"),
        Item::ExpectUntil(b"\r\n".to_vec()),
    ]);
    let redis_replies: &[&[u8]] = &[b"+OK\r\n", b"$1\r\n", b":12\r\n"];
    assert_eq!(
        replies(&redis, redis_replies, 1, 3000),
        0,
        "redis-like, closed loop"
    );
    assert_eq!(
        replies(&redis, redis_replies, 8, 3000),
        0,
        "redis-like, pipeline 8"
    );
    let http = script(vec![
        req("GET / HTTP/1.1\r\n\r\n"),
        Item::ExpectHttp(HttpStatus::Class(2)),
        req("GET /c HTTP/1.1\r\n\r\n"),
        Item::ExpectHttp(HttpStatus::Code(200)),
        Item::ExpectRegex("(?s)hello.*world".into()),
        req("GET /l HTTP/1.1\r\n\r\n"),
        Item::ExpectLen(19),
    ]);
    let http_replies: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b"HTTP/1.1 204 OK\r\n\r\n",
    ];
    assert_eq!(replies(&http, http_replies, 4, 3000), 0, "HTTP, pipeline 4");
}

/// `--udp`'s per-datagram work without the sockets, as a client thread does it: the header and
/// payload written into a reused buffer, the datagram tracked, its echo attributed, compared
/// with the datagram regenerated, its latency recorded, the timeout scan; once the buffers
/// exist, nothing is allocated.
#[test]
fn the_per_datagram_path_does_not_allocate() {
    use ringport_stress::udp::header::{Header, HEADER_LEN};
    use ringport_stress::udp::tracker::{Arrival, Tracker};

    for spec in [
        PayloadSpec::Random {
            size: 1000 - HEADER_LEN,
            seed: 9,
        },
        PayloadSpec::Text("Swarajya Pendha".into()),
    ] {
        let gen = PayloadGen::new(&spec, 2);
        let mut tracker = Tracker::new(64);
        let mut stats = ThreadStats::new(4);
        let mut datagram = Vec::with_capacity(HEADER_LEN + spec.max_len());
        let mut expected = Vec::with_capacity(HEADER_LEN + spec.max_len());
        let t0 = Instant::now();
        let info = allocation_counter::measure(|| {
            for k in 0..5000u64 {
                let sent_ns = k * 1000;
                datagram.clear();
                let seq = tracker.next_seq();
                Header {
                    flow: 2,
                    seq,
                    sent_ns,
                }
                .write(&mut datagram);
                gen.append(seq + 1, &mut datagram);
                tracker.sent(sent_ns, true);
                // The echo: attributed by its header, checked against the regenerated bytes.
                let h = Header::read(&datagram).unwrap();
                let arrival = tracker.echo(h.seq);
                let Arrival::First { sent_ns, .. } = arrival else {
                    panic!("{arrival:?}")
                };
                expected.clear();
                Header { sent_ns, ..h }.write(&mut expected);
                gen.append(h.seq + 1, &mut expected);
                assert!(datagram == expected);
                tracker.transit(sent_ns, sent_ns + 25_000);
                let sent = t0 + Duration::from_nanos(sent_ns);
                let done = ringport_stress::protocol::echo::Completed {
                    stamp: SendStamp {
                        index: seq + 1,
                        intended: sent,
                        sent,
                    },
                    len: datagram.len(),
                };
                stats.record_message(2, &done, sent + Duration::from_micros(25));
                tracker.expire(sent_ns.saturating_sub(1_000_000));
            }
        });
        assert_eq!(info.count_total, 0, "{spec:?}");
        assert_eq!(
            (tracker.counts().sent, tracker.counts().echoed),
            (5000, 5000)
        );
        assert_eq!(stats.messages, 5000);
    }
}
