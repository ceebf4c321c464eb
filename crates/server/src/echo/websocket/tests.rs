//! [`WsEcho`] against hand-made client bytes, whatever the reads' split points.

use super::*;
use ringport_ws::{client_key, MAX_HEADER_LEN};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn request() -> Vec<u8> {
    let mut out = Vec::new();
    handshake::write_request("localhost", "/", &client_key(1), &[], &mut out);
    out
}

/// A client frame: masked with [`MASK`].
fn frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        fin,
        opcode,
        mask: Some(MASK),
        len: payload.len() as u64,
    };
    let mut bytes = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut bytes);
    let mut out = bytes[..n].to_vec();
    let from = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[from..], MASK, 0);
    out
}

/// Feeds `chunks` as successive reads, the way a connection does: unconsumed bytes kept,
/// the output "sent" (collected) whenever `process` wrote some. Returns everything sent.
fn run(ws: &mut WsEcho, chunks: &[&[u8]], out_limit: usize) -> Vec<u8> {
    let mut pending: Vec<u8> = Vec::new();
    let mut sent = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        pending.extend_from_slice(chunk);
        loop {
            let n = ws.process(&pending, &mut out, out_limit);
            assert!(out.len() <= out_limit.max(OUT_MIN) + OUT_SLACK);
            assert!(pending.len() <= IN_MIN.max(chunk.len()) + IN_MIN);
            pending.drain(..n);
            if n == 0 && out.is_empty() {
                break;
            }
            sent.append(&mut out);
            if ws.is_closing() {
                return sent;
            }
        }
    }
    sent
}

/// The server's output: the response head, then its frames (unmasked).
fn decode(sent: &[u8]) -> (String, Vec<(Opcode, bool, Vec<u8>)>) {
    let end = sent
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let head = String::from_utf8(sent[..end].to_vec()).unwrap();
    let mut frames = Vec::new();
    let mut at = end;
    while at < sent.len() {
        let (h, n) = FrameHeader::parse(&sent[at..])
            .unwrap()
            .expect("a whole frame");
        assert!(h.mask.is_none(), "server frames are not masked");
        let len = h.len as usize;
        frames.push((h.opcode, h.fin, sent[at + n..at + n + len].to_vec()));
        at += n + len;
    }
    (head, frames)
}

fn upgraded() -> (WsEcho, Vec<u8>) {
    let mut ws = WsEcho::new(1 << 16);
    let sent = run(&mut ws, &[&request()], 4096);
    assert_eq!(ws.phase(), Phase::Open);
    (ws, sent)
}

#[test]
fn the_upgrade_answers_with_the_accept_key_and_a_text_message_comes_back_as_text() {
    let mut ws = WsEcho::new(1 << 16);
    let mut input = request();
    // The RFC's masked "Hello", right behind the head.
    input.extend_from_slice(&[
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ]);
    let sent = run(&mut ws, &[&input], 4096);
    let (head, frames) = decode(&sent);
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    let accept = accept_key(&client_key(1));
    assert!(head.contains(&format!(
        "Sec-WebSocket-Accept: {}\r\n",
        std::str::from_utf8(&accept).unwrap()
    )));
    assert_eq!(frames, [(Opcode::Text, true, b"Hello".to_vec())]);
    assert_eq!(
        sent[sent.len() - 7..],
        [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']
    );
    assert_eq!((ws.stats.handshakes, ws.stats.text), (1, 1));
}

/// A session of every kind of frame: text, empty binary, a fragmented text with a ping between
/// its fragments, a big streamed binary (16-bit and 64-bit lengths), a pong, a close.
fn session() -> Vec<u8> {
    let mut input = request();
    input.extend(frame(true, Opcode::Text, "κόσμε".as_bytes()));
    input.extend(frame(true, Opcode::Binary, b""));
    input.extend(frame(false, Opcode::Text, b"frag"));
    input.extend(frame(true, Opcode::Ping, b"are you there"));
    input.extend(frame(
        false,
        Opcode::Continuation,
        "mented \u{e9}".as_bytes(),
    ));
    input.extend(frame(true, Opcode::Continuation, b"!"));
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    input.extend(frame(true, Opcode::Binary, &big));
    input.extend(frame(false, Opcode::Binary, &big[..300]));
    input.extend(frame(true, Opcode::Continuation, &big[300..1000]));
    input.extend(frame(true, Opcode::Pong, b"unsolicited"));
    input.extend(frame(true, Opcode::Close, b"\x03\xe8bye"));
    input
}

fn check_session(sent: &[u8]) {
    let (_, frames) = decode(sent);
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let expected: Vec<(Opcode, bool, Vec<u8>)> = vec![
        (Opcode::Text, true, "κόσμε".as_bytes().to_vec()),
        (Opcode::Binary, true, vec![]),
        (Opcode::Pong, true, b"are you there".to_vec()),
        (Opcode::Text, true, "fragmented \u{e9}!".as_bytes().to_vec()),
        (Opcode::Binary, true, big.clone()),
        (Opcode::Binary, true, big[..1000].to_vec()),
        (Opcode::Close, true, b"\x03\xe8".to_vec()),
    ];
    assert_eq!(frames.len(), expected.len());
    for (got, want) in frames.iter().zip(&expected) {
        assert!(
            got == want,
            "{:?} {} != {:?} {}",
            got.0,
            got.2.len(),
            want.0,
            want.2.len()
        );
    }
}

#[test]
fn a_session_gives_the_same_echo_whatever_the_split_into_two_reads() {
    let input = session();
    let mut whole = WsEcho::new(1 << 20);
    let reference = run(&mut whole, &[&input], 4096);
    check_session(&reference);
    assert!(whole.is_closing());
    assert_eq!(
        (
            whole.stats.text,
            whole.stats.binary,
            whole.stats.pings,
            whole.stats.closes_normal
        ),
        (2, 3, 1, 1)
    );
    // Every split point of the frames (the head and the big payload's middle in steps).
    let head = request().len();
    let splits =
        (0..input.len()).filter(|&i| i < head + 400 || i > input.len() - 2500 || i % 997 == 0);
    for split in splits {
        let mut ws = WsEcho::new(1 << 20);
        let sent = run(&mut ws, &[&input[..split], &input[split..]], 4096);
        assert!(sent == reference, "split at {split}");
    }
}

#[test]
fn byte_by_byte_and_with_the_smallest_output_the_echo_is_the_same() {
    let input = session();
    let mut whole = WsEcho::new(1 << 20);
    let reference = run(&mut whole, &[&input], 1 << 20);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let mut ws = WsEcho::new(1 << 20);
    assert_eq!(run(&mut ws, &bytes, 4096), reference);
    let mut ws = WsEcho::new(1 << 20);
    assert_eq!(run(&mut ws, &[&input], OUT_MIN), reference);
    let chunks: Vec<&[u8]> = input.chunks(1000).collect();
    let mut ws = WsEcho::new(1 << 20);
    assert_eq!(
        run(&mut ws, &chunks, 0),
        reference,
        "a limit under OUT_MIN is OUT_MIN"
    );
}

#[test]
fn a_full_output_stops_the_input_and_memory_stays_bounded() {
    let (mut ws, _) = upgraded();
    let big = frame(true, Opcode::Binary, &vec![7u8; 100_000]);
    let mut out = Vec::new();
    let n = ws.process(&big, &mut out, 1000);
    assert_eq!(out.len(), 1000, "the output stops at its limit");
    assert_eq!(
        n,
        14 + 990,
        "the input taken is what fits (a header of 10 bytes out)"
    );
    // Nothing more is taken until the output is sent.
    assert_eq!(ws.process(&big[n..], &mut out, 1000), 0);
    assert_eq!(ws.held(), 0, "a streamed frame is never held");
}

#[test]
fn a_fragmented_message_over_the_limit_is_closed_with_1009() {
    let mut ws = WsEcho::new(1000);
    let mut input = request();
    input.extend(frame(false, Opcode::Binary, &[1; 600]));
    input.extend(frame(true, Opcode::Continuation, &[2; 600]));
    let sent = run(&mut ws, &[&input], 4096);
    let (_, frames) = decode(&sent);
    assert_eq!(frames, [(Opcode::Close, true, vec![0x03, 0xF1])]);
    assert!(ws.is_closing());
    assert_eq!(ws.stats.too_big, 1);
    assert!(ws.held() <= 1000);
    // Fragments of every size up to the limit: the buffer never grows past it.
    let mut ws = WsEcho::new(100_000);
    let mut input = request();
    input.extend(frame(false, Opcode::Binary, &[1; 1]));
    for size in [1000, 7, 30_000, 50_000, 18_992] {
        input.extend(frame(false, Opcode::Continuation, &vec![2; size]));
    }
    input.extend(frame(true, Opcode::Continuation, &[]));
    let (_, frames) = decode(&run(&mut ws, &[&input], 4096));
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].2.len(), 100_000);
    assert_eq!(ws.stats.too_big, 0);
    let mut ws = WsEcho::new(100_000);
    let mut out = Vec::new();
    let cut = input.len() - 6;
    ws.process(&input[..cut], &mut out, 4096);
    assert!(ws.held() <= 100_000, "{}", ws.held());
    // A text message in one frame is reassembled (validated) too.
    let mut ws = WsEcho::new(1000);
    let mut input = request();
    input.extend(frame(true, Opcode::Text, &[b'a'; 1001]));
    let (_, frames) = decode(&run(&mut ws, &[&input], 4096));
    assert_eq!(frames[0].2, close::TOO_BIG.to_be_bytes());
    // A binary message in one frame streams, whatever its size.
    let mut ws = WsEcho::new(1000);
    let mut input = request();
    input.extend(frame(true, Opcode::Binary, &[3; 5000]));
    let (_, frames) = decode(&run(&mut ws, &[&input], 4096));
    assert_eq!(frames, [(Opcode::Binary, true, vec![3; 5000])]);
}

#[test]
fn invalid_utf8_is_closed_with_1007_even_split_across_fragments() {
    for pieces in [
        vec![frame(true, Opcode::Text, b"ok \xff")],
        vec![
            frame(false, Opcode::Text, b"ok \xf0\x9f"),
            frame(true, Opcode::Continuation, b"\x98"),
        ],
        vec![
            frame(false, Opcode::Text, b"ok \xed"),
            frame(true, Opcode::Continuation, b"\xa0\x80"),
        ],
    ] {
        let (mut ws, _) = upgraded();
        let input: Vec<u8> = pieces.concat();
        let mut out = Vec::new();
        ws.process(&input, &mut out, 4096);
        assert_eq!(out, [0x88, 0x02, 0x03, 0xEF], "{pieces:x?}");
        assert!(ws.is_closing());
        assert_eq!(ws.stats.invalid_utf8, 1);
        assert_eq!(ws.stats.text, 0, "nothing of it was echoed");
    }
    // A split sequence that completes is fine.
    let (mut ws, _) = upgraded();
    let mut input = frame(false, Opcode::Text, b"\xf0\x9f");
    input.extend(frame(true, Opcode::Continuation, b"\x98\x80"));
    let mut out = Vec::new();
    ws.process(&input, &mut out, 4096);
    assert_eq!(out, [&[0x81, 0x04][..], "😀".as_bytes()].concat());
}

#[test]
fn protocol_errors_are_closed_with_1002_and_counted_by_cause() {
    let unmasked = [0x81, 0x02, b'h', b'i'];
    let reserved_opcode = frame(true, Opcode::Text, b"x")
        .iter()
        .enumerate()
        .map(|(i, b)| if i == 0 { 0x83 } else { *b })
        .collect::<Vec<u8>>();
    let reserved_bit = [0xC1, 0x80, 0, 0, 0, 0];
    let lone_continuation = frame(true, Opcode::Continuation, b"x");
    let text_inside_message = [
        frame(false, Opcode::Text, b"a"),
        frame(true, Opcode::Text, b"b"),
    ]
    .concat();
    let long_ping = [0x89, 0xFE, 0x00, 0x7E, 1, 2, 3, 4];
    let fragmented_ping = [0x09, 0x80, 1, 2, 3, 4];
    let bad_close_code = frame(true, Opcode::Close, &1005u16.to_be_bytes());
    let one_byte_close = frame(true, Opcode::Close, &[3]);
    type Counter = fn(&WsStats) -> u64;
    let cases: [(&[u8], Counter); 9] = [
        (&unmasked, |s| s.unmasked),
        (&reserved_opcode, |s| s.reserved_opcode),
        (&reserved_bit, |s| s.protocol),
        (&lone_continuation, |s| s.protocol),
        (&text_inside_message, |s| s.protocol),
        (&long_ping, |s| s.protocol),
        (&fragmented_ping, |s| s.protocol),
        (&bad_close_code, |s| s.protocol),
        (&one_byte_close, |s| s.protocol),
    ];
    for (input, counter) in cases {
        let (mut ws, _) = upgraded();
        let mut out = Vec::new();
        assert_eq!(ws.process(input, &mut out, 4096), input.len());
        assert_eq!(out, [0x88, 0x02, 0x03, 0xEA], "{input:x?}");
        assert!(ws.is_closing());
        assert_eq!(counter(&ws.stats), 1, "{input:x?}");
        assert_eq!(ws.stats.failures(), 1);
        // Whatever follows is discarded.
        out.clear();
        assert_eq!(
            ws.process(&frame(true, Opcode::Text, b"more"), &mut out, 4096),
            10
        );
        assert!(out.is_empty());
    }
}

#[test]
fn the_close_handshake_echoes_the_code_and_closes() {
    for (payload, reply, counter) in [
        (
            &b"\x03\xe8bye"[..],
            &[0x88, 0x02, 0x03, 0xE8][..],
            (1, 0, 0, 0),
        ),
        (
            &b"\x03\xe9"[..],
            &[0x88, 0x02, 0x03, 0xE9][..],
            (0, 1, 0, 0),
        ),
        (&b""[..], &[0x88, 0x00][..], (0, 0, 1, 0)),
        (
            &b"\x0f\xa0app"[..],
            &[0x88, 0x02, 0x0F, 0xA0][..],
            (0, 0, 0, 1),
        ),
    ] {
        let (mut ws, _) = upgraded();
        let mut input = frame(true, Opcode::Close, payload);
        input.extend(frame(true, Opcode::Text, b"after the close"));
        let mut out = Vec::new();
        ws.process(&input, &mut out, 4096);
        assert_eq!(out, reply);
        assert!(ws.is_closing());
        let s = ws.stats;
        assert_eq!(
            (
                s.closes_normal,
                s.closes_going_away,
                s.closes_no_code,
                s.closes_other
            ),
            counter
        );
        assert_eq!(s.failures(), 0);
    }
}

#[test]
fn going_away_after_the_echo_but_never_inside_a_frame() {
    let (mut ws, _) = upgraded();
    let mut out = Vec::new();
    ws.process(&frame(true, Opcode::Binary, b"last"), &mut out, 4096);
    assert!(ws.going_away(&mut out));
    assert_eq!(
        out,
        [&[0x82, 0x04][..], b"last", &[0x88, 0x02, 0x03, 0xE9]].concat()
    );
    assert_eq!(ws.stats.going_away, 1);

    // Half of a streamed frame is out: no close frame can follow it.
    let (mut ws, _) = upgraded();
    let input = frame(true, Opcode::Binary, &[5; 100]);
    let mut out = Vec::new();
    ws.process(&input[..50], &mut out, 4096);
    assert!(!ws.going_away(&mut out));
    assert!(ws.is_closing());
    assert_eq!(out.len(), 2 + 50 - 6);

    // Before the upgrade: nothing to say.
    let mut ws = WsEcho::new(100);
    let mut out = Vec::new();
    assert!(!ws.going_away(&mut out));
    assert!(out.is_empty());
}

#[test]
fn a_request_that_is_no_upgrade_is_refused_and_a_long_head_gets_431() {
    let mut ws = WsEcho::new(100);
    let sent = run(&mut ws, &[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"], 4096);
    assert!(String::from_utf8_lossy(&sent).starts_with("HTTP/1.1 426 "));
    assert_eq!(ws.stats.bad_request, 1);
    assert!(ws.is_closing());

    let mut ws = WsEcho::new(100);
    let sent = run(&mut ws, &[b"\x16\x03\x01\x00\xff garbage\r\n\r\n"], 4096);
    assert!(String::from_utf8_lossy(&sent).starts_with("HTTP/1.1 400 "));

    let mut ws = WsEcho::new(100);
    // One long header: the head is too large before the header count matters.
    let mut long = b"GET / HTTP/1.1\r\nX-Padding: ".to_vec();
    long.resize(IN_MIN + 10, b'a');
    let mut out = Vec::new();
    assert_eq!(ws.process(&long, &mut out, 4096), long.len());
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 431 "));
    assert_eq!(ws.stats.head_too_large, 1);

    // A head still arriving, under the limit, just waits.
    let mut ws = WsEcho::new(100);
    let mut out = Vec::new();
    assert_eq!(ws.process(&long[..IN_MIN - 1], &mut out, 4096), 0);
    assert!(out.is_empty() && ws.phase() == Phase::Handshake);
    ws.handshake_timed_out();
    assert_eq!(ws.stats.handshake_timeout, 1);
    assert!(ws.is_closing());
}

#[test]
fn end_of_input_without_a_close_is_counted() {
    let (mut ws, _) = upgraded();
    ws.end_of_input();
    assert!(ws.is_closing());
    assert_eq!(ws.stats.no_close, 1);
    let mut ws = WsEcho::new(100);
    ws.end_of_input();
    assert_eq!(ws.stats.no_close, 0, "never upgraded");
}

#[test]
fn wants_room_tells_a_full_output_from_missing_input() {
    let mut ws = WsEcho::new(1 << 20);
    let mut out = Vec::new();
    let req = request();
    assert_eq!(ws.process(&req, &mut out, OUT_MIN), req.len());
    assert!(!ws.wants_room());
    out.clear();
    // Half a header: input is missing.
    let big = frame(true, Opcode::Binary, &[5u8; 2_000]);
    assert_eq!(ws.process(&big[..1], &mut out, OUT_MIN), 0);
    assert!(!ws.wants_room() && out.is_empty());
    // A streamed frame larger than the output: it stops at the bound, for want of room.
    let used = ws.process(&big, &mut out, OUT_MIN);
    assert!(
        used < big.len() && out.len() == OUT_MIN,
        "{used} {}",
        out.len()
    );
    assert!(ws.wants_room());
    // Room again: the rest goes through, and then only input is missing.
    out.clear();
    let rest = &big[used..];
    assert_eq!(ws.process(rest, &mut out, 4 * OUT_MIN), rest.len());
    assert!(!ws.wants_room());
    // A ping when the output has no room for its pong: room is wanted, nothing consumed.
    let ping = frame(true, Opcode::Ping, b"hello");
    let mut full = vec![0u8; OUT_MIN - 3];
    assert_eq!(ws.process(&ping, &mut full, OUT_MIN), 0);
    assert!(ws.wants_room());
}
