//! The hot path allocates nothing: generating a message, recording it as sent, verifying its
//! echo in chunks (against a copy, or regenerated as the engine does) and recording its latency,
//! once the buffers have been set up.
//!
//! `allocation_counter` installs a counting global allocator (its unsafe code, not ours) and
//! counts the allocations of the calling thread inside `measure`.

use std::time::{Duration, Instant};

use ringport_stress::payload::{PayloadGen, PayloadSpec};
use ringport_stress::stats::ThreadStats;
use ringport_stress::verify::{SendStamp, StreamVerifier};

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
