//! The result model of ringport's load runs, and its exporters.
//!
//! One home for what a run found, whichever command produced it: `ringport stress` builds a
//! [`StressReport`] from what its threads measured, `ringport merge` reads several back and adds
//! them into one, `--find-max-rate` gathers its probes into a [`SearchReport`], and `bench`
//! summarises its runs with the same latency figures. Every field is documented and serialised
//! with serde; the JSON field names are part of the command-line contract.
//!
//! Every output format is one small exporter behind one trait ([`export::Exporter`]): human,
//! JSON, CSV, the HdrHistogram interval log and a self-contained HTML page with charts. Nothing
//! else renders a result.
//!
//! # Modules
//!
//! * [`run`]: [`StressReport`], the result of one run (or of several merged), and its parts
//!   (stream and ramp-step figures, the agents of a merge).
//! * [`histogram`]: the latency histograms' bounds, their V2 encoding, and [`LatencySummary`].
//! * [`datagrams`]: the `datagrams` and `jitter_us` objects of UDP runs (`stress --udp`).
//! * [`errors`]: the kinds failures are counted by, the counts, and the first error.
//! * [`fairness`]: messages per connection as min, median and max, exact across merges.
//! * [`reconnects`]: the `churn` object of runs with `--messages-per-connection`.
//! * [`tls`]: the `tls` object of runs with `--tls`: handshakes, their latency, failures.
//! * [`websocket`]: the `websocket` object of runs with `--websocket`: upgrades, their latency,
//!   failures, messages, close codes.
//! * [`search`]: the latency search's probes, verdicts and report.
//! * [`segment`]: which share of a run a result covers (`--segment I/N`).
//! * [`hdrlog`]: a run's latency over time as the standard HdrHistogram interval log.
//! * [`export`]: the exporters.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod datagrams;
pub mod errors;
pub mod export;
pub mod fairness;
pub mod hdrlog;
pub mod histogram;
pub mod reconnects;
pub mod run;
pub mod search;
pub mod segment;
pub mod tls;
pub mod websocket;

pub use histogram::LatencySummary;
pub use run::StressReport;
pub use search::SearchReport;
