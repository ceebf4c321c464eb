//! `ringport stress`: a verifying load generator for echo servers.
//!
//! The pieces that do not touch sockets live in plain modules, each unit-tested on its own:
//!
//! * [`payload`]: the bytes of message `i` on connection `c` (article-style numbered text or
//!   seeded random bytes), written into reusable buffers.
//! * [`verify`]: per-connection stream verification of echoed bytes, arriving in any chunking,
//!   and the error kinds of a run.
//! * [`stats`]: latency and connect-time histograms, fairness, error counts, client CPU; recorded
//!   per thread, merged at the end.
pub mod config;
pub mod payload;
pub mod report;
pub mod schedule;
pub mod stats;
pub mod verify;
