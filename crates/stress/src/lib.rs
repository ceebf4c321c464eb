//! `ringport stress`: a verifying load generator for echo servers.
//!
//! Many connections per client thread on the same completion port as the server, every echoed
//! byte checked, latency measured from each message's intended send time, one result type with
//! human, JSON and HdrHistogram-log exporters. Messages go one at a time, pipelined, at a fixed
//! rate, or as a continuous stream (`--stream`, reported in echoed Gbit/s).
//! Any TCP server can be loaded too: in request/response mode (`--request` with `--expect*`)
//! each connection sends requests and frames and checks their replies instead of an echo.
//!
//! # Using it
//!
//! ```no_run
//! use ringport_stress::config::StressConfig;
//!
//! let config = StressConfig { port: 3333, count: Some(100), ..StressConfig::default() };
//! let outcome = ringport_stress::engine::run(&config)?; // validates, pre-flight, runs
//! print!("{}", outcome.report.render());
//! outcome.write_outputs(&config)?; // --json, --hdr-log
//! std::process::exit(outcome.report.exit_code());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules
//!
//! * [`config`]: every option as plain data, its validation, and what options mean together
//!   (payload, stop condition, workload).
//! * [`interactive`]: the article's questions on a terminal, answered into a config.
//! * [`preflight`]: the check of the fd limit and the ephemeral port range before anything is
//!   opened, raising the limit or spreading source addresses where it can.
//! * [`engine`]: running a config: the orchestration (threads, start barrier, merging) in
//!   `engine`, one thread's I/O on its port in `engine::client`, one connection's state
//!   machine (what to stage and send, verifying, finishing) in `engine::conn`.
//! * [`payload`]: the bytes of message `i` on connection `c` (article-style numbered text or
//!   seeded random bytes), appended to reusable buffers, and regenerated for checking.
//! * [`verify`]: per-connection stream verification of echoed bytes, arriving in any chunking,
//!   against a copy or regenerated, and the error kinds of a run.
//! * [`request`]: request/response mode's flags as data (`--request*`, `--expect*`), their
//!   escapes and pairing, compiled into the [`Script`](request::Script) a run sends.
//! * [`reply`]: request/response mode's replies framed and checked, per connection.
//! * [`schedule`]: intended send times of the open loop (`--rate`) and connect pacing.
//! * [`stats`]: latency and connect-time histograms, fairness, error counts, client CPU; recorded
//!   per thread, merged at the end.
//! * [`live`]: what a run shows while it goes on: the live latency histogram and the progress
//!   lines (phase, rate, p50/p99 of the interval, errors).
//! * [`ramp`]: `--rate` and `--connections` ramps (linear or stepped): parsing, reported steps,
//!   intended send times under a rate ramp, when connections join.
//! * [`search`]: `--find-max-rate`: the highest open-loop rate whose corrected latency stays
//!   under a target, found over several engine runs, with the curve measured and the
//!   client-bound check.
//! * [`segment`]: `--segment I/N` (a share of the run that adds up exactly with the others)
//!   and `--start-at` (a common wall-clock start), for load from many hosts.
//! * [`merge`]: `ringport merge`: the results and interval logs of several agents added into
//!   one result.
//! * [`report`]: the [`StressReport`](report::StressReport) result type and its exporters.
//! * [`churn`]: `--messages-per-connection`: connections per second, connect latency, failed
//!   connections by cause, and the warning when TIME_WAIT or the ephemeral ports are the limit.

#![forbid(unsafe_code)]
pub mod config;
pub mod engine;
pub mod error;
pub mod measure;
pub mod merge;
pub mod plan;
pub mod protocol;
pub mod report;
pub mod search;
