//! Measurement: latency, connect time, fairness, errors and client CPU, per thread then merged.
//!
//! This module is responsible for the numbers of a run. Each client thread owns one
//! [`ThreadStats`](thread::ThreadStats) ([`thread`]) and records into it without locks or
//! allocation; at the end the engine merges them and the report is built from the result.
//!
//! * **Latency** is recorded in microseconds in two [HdrHistogram]s: *corrected*, measured from
//!   each message's intended send time (in open-loop `--rate` mode that is its slot in the
//!   schedule, so a stalled server cannot hide its stall by delaying the sends that would have
//!   measured it: coordinated omission), and *uncorrected*, measured from the moment the send was
//!   actually issued. In closed-loop mode the two are the same.
//! * **Fairness**: messages per connection, summarised as min, median and max.
//! * **Echoed bytes** (what `--stream` reports): bytes verified while the measured window was
//!   open, counted when they arrive (not when their message completes), in total and per
//!   connection.
//! * **Connect time** in microseconds, in its own histogram.
//! * **TLS handshakes** ([`tls`]): their time in its own histogram, full and resumed, and the
//!   failed ones by cause.
//! * **WebSocket upgrades** ([`ws`]): their time in its own histogram, the failed ones by
//!   cause, messages sent and echoed, close codes received.
//! * **Errors** counted by [`ErrorKind`](crate::error::ErrorKind) ([`thread`]), with the first one (by time) kept in detail: connection,
//!   kind, byte offset and message.
//! * **Errors over time** ([`error_times`]): errors per second of the measured phase, for the
//!   result's `errors_over_time`.
//! * **Intervals** (for `--hdr-log`): the same latencies again in one histogram per second of
//!   the measured phase, by completion time ([`interval`]); a second's histograms are
//!   serialised (a few hundred bytes) when it ends, so a long run does not hold one full
//!   histogram per second.
//! * **Client CPU** ([`cpu`]): [`CpuMeter`](cpu::CpuMeter) reads a thread's own CPU time from `/proc/thread-self/stat`
//!   (utime + stime) so the report can warn when a client thread was near 100% busy, which means
//!   the figures may describe the client rather than the server.
//!
//! The figures' types, summaries and encodings are the result model's
//! ([`ringport_report`]: histogram bounds, latency summaries, fairness, error counts).
//!
//! [HdrHistogram]: https://hdrhistogram.github.io/HdrHistogram/

pub mod cpu;
pub mod error_times;
pub mod interval;
pub mod ports;
pub mod reconnects;
pub mod thread;
pub mod tls;
pub mod ws;
