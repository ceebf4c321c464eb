//! Clock ticks per second of `/proc`'s CPU counters (`USER_HZ`), and ticks as durations.
//!
//! One way of asking: `sysconf(_SC_CLK_TCK)` (which the C library answers from the auxiliary
//! vector, without a system call), once per process.

use std::sync::OnceLock;
use std::time::Duration;

/// Ticks per second where the system cannot say: Linux's `USER_HZ` on every common architecture.
pub const DEFAULT_TICKS_PER_SECOND: u64 = 100;

/// Clock ticks per second of the CPU times in `/proc/PID/stat` and `/proc/stat`
/// (`sysconf(_SC_CLK_TCK)`, asked once; [`DEFAULT_TICKS_PER_SECOND`] where it cannot be read,
/// and on Windows, which has no `/proc`).
pub fn ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(ask)
}

#[cfg(unix)]
fn ask() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => DEFAULT_TICKS_PER_SECOND,
    }
}

#[cfg(not(unix))]
fn ask() -> u64 {
    DEFAULT_TICKS_PER_SECOND
}

/// `ticks` clock ticks at `per_second` ticks a second, exactly (no floating point); a
/// `per_second` of 0 counts as 1.
pub fn ticks_at(ticks: u64, per_second: u64) -> Duration {
    let tps = per_second.max(1);
    Duration::from_secs(ticks / tps) + Duration::from_nanos((ticks % tps) * 1_000_000_000 / tps)
}

/// `ticks` clock ticks of this system ([`ticks_per_second`]) as a duration.
pub fn ticks(ticks: u64) -> Duration {
    ticks_at(ticks, ticks_per_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_exactly() {
        assert_eq!(ticks_at(731, 100), Duration::from_millis(7310));
        assert_eq!(ticks_at(1, 3), Duration::from_nanos(333_333_333));
        assert_eq!(ticks_at(250, 250), Duration::from_secs(1));
        assert_eq!(
            ticks_at(5, 0),
            Duration::from_secs(5),
            "0 per second counts as 1"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_system_answers_a_plausible_tick_rate() {
        let tps = ticks_per_second();
        // USER_HZ is 100 on every common architecture; some configurations use up to 1024.
        assert!((1..=1024).contains(&tps), "{tps}");
        assert_eq!(ticks(tps), Duration::from_secs(1));
    }
}
