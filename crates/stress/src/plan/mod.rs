//! When things are due: intended send times, ramps, a host's segment of the load, reconnects.
//!
//! Plain arithmetic over the configuration, with no I/O and no clock reads of its own, so it
//! can be tested exactly.
//!
//! * [`send_times`]: intended send times of the open loop (`--rate`) and connect pacing.
//! * [`ramp`]: `--rate` and `--connections` ramps (linear or stepped).
//! * [`segment`]: `--segment I/N` and `--start-at`, for load from many hosts.
//! * [`reconnect`]: when a slot reconnects under `--messages-per-connection`.

pub mod ramp;
pub mod reconnect;
pub mod segment;
pub mod send_times;
