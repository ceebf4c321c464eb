//! The WebSocket layer of the stress client allocates nothing per message: once upgraded,
//! framing a staged message ([`WsSession::begin`] and [`WsSession::end`]: its header written,
//! the message masked in place) and taking in the echoed frames ([`WsSession::receive`]: headers
//! stripped, the payload handed on) allocate nothing after a warm-up, whatever the size (7-,
//! 16- and 64-bit lengths) and however the frames are split across reads.
//!
//! The server is the codec in the same thread, its work outside the counted closures.

use std::time::Instant;

use ringport_stress::ws::session::WsSession;
use ringport_ws::{accept_key, apply_mask, FrameHeader};

/// A session whose upgrade the test server accepted.
fn upgraded() -> WsSession {
    let now = Instant::now();
    let mut s = WsSession::new(42, now, false, true);
    let mut request = Vec::new();
    s.write_request("127.0.0.1:1", "/", &[], now, &mut request);
    let request = String::from_utf8(request).unwrap();
    let key = request
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .expect("a key")
        .trim()
        .to_string();
    let mut response = Vec::new();
    ringport_ws::handshake::write_response(&accept_key(key.as_bytes()), None, &mut response);
    assert!(s.receive(&response, |_| true).unwrap().upgraded);
    s
}

/// The server: every masked frame of `wire` back unmasked, in `back`.
fn echo_frames(mut wire: &[u8], back: &mut Vec<u8>) {
    while let Some((h, n)) = FrameHeader::parse(wire).unwrap() {
        let len = h.len as usize;
        let mut head = [0u8; 14];
        let k = FrameHeader { mask: None, ..h }.encode(&mut head);
        back.extend_from_slice(&head[..k]);
        let at = back.len();
        back.extend_from_slice(&wire[n..n + len]);
        apply_mask(&mut back[at..], h.mask.expect("masked"), 0);
        wire = &wire[n + len..];
    }
    assert!(wire.is_empty());
}

#[test]
fn the_websocket_session_allocates_nothing_per_message() {
    for (size, rounds) in [(20usize, 300), (3000, 200), (70_000, 20)] {
        let mut s = upgraded();
        let msg = vec![0x5a; size];
        let mut out = Vec::new();
        let mut back = Vec::new();
        let mut got = 0usize;
        let mut count = 0;
        for round in 0..rounds + 2 {
            out.clear();
            let framed = allocation_counter::measure(|| {
                for _ in 0..4 {
                    let at = s.begin(&mut out);
                    out.extend_from_slice(&msg);
                    s.end(&mut out, at);
                }
            });
            back.clear();
            echo_frames(&out, &mut back);
            // Split the echo where a header or a payload is cut in two.
            let cut = (round * 7919) % back.len();
            let opened = allocation_counter::measure(|| {
                for part in [&back[..cut], &back[cut..]] {
                    s.receive(part, |p| {
                        got += p.len();
                        true
                    })
                    .unwrap();
                }
            });
            if round > 1 {
                count += framed.count_total + opened.count_total;
            }
        }
        assert_eq!(got, 4 * size * (rounds + 2), "every byte echoed");
        assert_eq!(s.messages_echoed, 4 * (rounds as u64 + 2));
        assert_eq!(count, 0, "{size}-byte messages: {count} allocations");
    }
}
