//! The numbers of a run, recorded per client thread and merged at the end.
//!
//! * [`stats`]: latency and connect-time histograms, intervals, errors, client CPU.

pub mod stats;
