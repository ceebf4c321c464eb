//! # ringport-metrics: `--metrics ADDR`, the Prometheus endpoint of `serve` and `stress`
//!
//! A process started with `--metrics ADDR` answers `GET /metrics` on ADDR with its counters in
//! the OpenMetrics text format (which Prometheus scrapes), encoded by `prometheus-client`.
//! Nothing is counted for it: each scrape reads the counters the process already keeps for its
//! live display, so the data path carries no lock and no extra work per message.
//!
//! - `serve`: the server's [`Live`](ringport_server::Live) view, which each worker publishes
//!   about once a second ([`server`]).
//! - `stress`: the engine's shared [`Progress`](ringport_stress::engine::Progress), which each
//!   client thread adds to once per turn of its loop ([`load`]).
//!
//! # Modules
//!
//! - [`endpoint`]: the HTTP side: a listener bound before the work starts (so a taken address
//!   is a one-line error), one thread answering scrapes with a registry's text.
//! - [`server`]: the server's metrics (`ringport_*`).
//! - [`load`]: the load generator's metrics (`ringport_stress_*`), its latency histogram among
//!   them.
//! - `encode`: writing one metric family (counter, gauge, info, labelled families).
//!
//! Every metric, its type, unit and labels are listed in `docs/metrics.md`.

#![forbid(unsafe_code)]

mod encode;
pub mod endpoint;
pub mod load;
pub mod server;

pub use endpoint::Endpoint;
pub use prometheus_client::registry::Registry;

/// The version every info metric carries: ringport's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
