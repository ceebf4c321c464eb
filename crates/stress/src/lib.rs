//! `ringport stress`: a verifying load generator for echo servers.
//!
//! Many connections per client thread on the same completion port as the server, every echoed
//! byte checked, latency measured from each message's intended send time, the result written by
//! the result model's exporters (`ringport-report`: human, JSON, CSV, HdrHistogram log). Messages go one at a time, pipelined, at a fixed
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
//! outcome.write_outputs(&config)?; // --json, --hdr-log, --csv
//! std::process::exit(outcome.report.exit_code());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layers
//!
//! Each folder is a layer, each file one job; no module imports the module that declares it.
//! The result type and its exporters are not here: they are the result model's,
//! `ringport-report`.
//!
//! * [`error`]: the error taxonomy: a bad option ([`ConfigError`](error::ConfigError)), the
//!   kinds failures are counted by ([`ErrorKind`](error::ErrorKind)) and one connection's
//!   failure ([`ConnError`](error::ConnError)), socket errors classified.
//! * [`protocol`]: what goes over the wire, per connection.
//!   * [`payload`](protocol::payload): the bytes of message `i` on connection `c`.
//!   * [`echo`](protocol::echo): the echo verifier, every echoed byte checked.
//!   * [`text`](protocol::text): bytes as text (escapes, hex, bytes shown back).
//!   * [`script`](protocol::script): request/response mode's requests compiled into a script.
//!   * [`reply`](protocol::reply): request/response mode's replies framed and checked.
//! * [`config`]: every option as plain data ([`StressConfig`](config::StressConfig)), checked
//!   and resolved in one `impl`.
//!   * [`request`](config::request): the `--request*` and `--expect*` flags as data, paired.
//!   * [`interactive`](config::interactive): the article's questions on a terminal.
//!   * [`preflight`](config::preflight): the fd limit and the ephemeral ports, checked (and
//!     raised or spread) before anything is opened.
//! * [`plan`]: when things are due, as plain arithmetic.
//!   * [`send_times`](plan::send_times): intended send times (`--rate`) and connect pacing.
//!   * [`ramp`](plan::ramp): `--rate` and `--connections` ramps.
//!   * [`segment`](plan::segment): `--segment I/N` and `--start-at`, for load from many hosts.
//!   * [`reconnect`](plan::reconnect): when a slot reconnects (`--messages-per-connection`).
//! * [`measure`]: the numbers of a run, per client thread, merged at the end.
//!   * [`thread`](measure::thread): one thread's record: latency, connect time, bytes, errors.
//!   * [`interval`](measure::interval): per-second latency histograms (`--hdr-log`, `--csv`).
//!   * [`cpu`](measure::cpu): the client threads' CPU, and the client-bound warning.
//!   * [`reconnects`](measure::reconnects): connects and failed connections by cause.
//!   * [`ports`](measure::ports): `TIME_WAIT` and the kernel's reuse of its ports.
//! * [`engine`]: running a config: threads, the start barrier, merging (`engine`); one thread's
//!   port loop (`client`) with its connect pacing (`connect`), reconnect queue (`reconnects`),
//!   timeout scan (`timeouts`); one connection's state machine (`conn`); echo or
//!   request/response (`exchange`); what the threads share (`shared`); the live counters and
//!   progress lines ([`progress`](engine::progress)).
//! * [`report`]: the result of a run built from what was measured
//!   ([`build`](report::build), [`interval_log`](report::interval_log)), and its
//!   [`warnings`](report::warnings).
//! * [`search`]: `--find-max-rate`: the algorithm (`search`), its settings
//!   ([`config`](search::config)) and each probe's verdict ([`verdict`](search::verdict)).
//! * [`tls`]: `--tls`: the options, the shared client configuration, one connection's TLS
//!   over the engine's buffers, failed handshakes classified, the probe before the load.
//! * [`udp`]: `--udp`: flows of datagrams on the port, each echo attributed by its header
//!   ([`header`](udp::header)), counted by its flow's [`tracker`](udp::tracker) (echoed, lost,
//!   duplicated, reordered, corrupted, jitter).
//! * [`merge`]: `ringport merge`: several agents' results and interval logs added into one.

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
pub mod tls;
pub mod udp;
pub mod ws;
