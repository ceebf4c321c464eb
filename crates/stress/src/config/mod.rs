//! The run's settings: every `ringport stress` option as plain data, and its validation.
//!
//! This module is responsible for [`StressConfig`], the plain-data form of every `ringport
//! stress` option (the CLI parses flags into it; no clap here), for rejecting bad combinations
//! with one-line messages ([`StressConfig::validate`]), and for resolving what the options mean
//! together: the payload ([`StressConfig::payload`]), the stop condition ([`Stop`]) and how sends
//! are paced ([`Workload`]: closed loop, open loop at a rate, or a continuous stream).
//!
//! Two jobs that read a configuration live elsewhere: the article's interactive questions
//! ([`interactive::ask`]) and the check of the system's
//! limits before anything is opened ([`preflight`]).

pub mod interactive;
mod options;
pub mod outputs;
pub mod preflight;
pub mod request;

pub use options::*;

#[cfg(test)]
mod tests;
