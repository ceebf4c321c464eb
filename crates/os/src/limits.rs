//! Limits of this process: open files (`RLIMIT_NOFILE`: read, set, raise), and the CPUs it may
//! run on.
//!
//! # Portability
//!
//! Windows has no limit on open sockets like `RLIMIT_NOFILE`: there the limit reads as
//! [`WINDOWS_NOFILE`] for both soft and hard, and setting it does nothing.

use std::io;

/// The open-file limit reported on Windows, soft and hard: large, as there is none.
pub const WINDOWS_NOFILE: u64 = 1 << 24;

/// The soft and hard limits on open files (`RLIMIT_NOFILE`).
///
/// # Errors
///
/// When the system refuses to say (`getrlimit` fails).
pub fn nofile() -> io::Result<(u64, u64)> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{getrlimit, Resource};
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
        Ok((soft, hard))
    }
    #[cfg(not(unix))]
    Ok((WINDOWS_NOFILE, WINDOWS_NOFILE))
}

/// Sets the soft and the hard limit on open files. Lowering the hard limit cannot be undone
/// without privilege; raising it needs privilege (`CAP_SYS_RESOURCE`).
///
/// # Errors
///
/// When the system refuses (`setrlimit` fails: `soft` above `hard`, or a raised hard limit
/// without privilege).
pub fn set_nofile(soft: u64, hard: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{setrlimit, Resource};
        setrlimit(Resource::RLIMIT_NOFILE, soft as _, hard as _).map_err(io::Error::from)
    }
    #[cfg(not(unix))]
    {
        let _ = (soft, hard);
        Ok(())
    }
}

/// Sets the soft limit on open files to `soft`, or to the hard limit if that is lower.
///
/// # Errors
///
/// When the limits cannot be read or set.
pub fn set_nofile_soft(soft: u64) -> io::Result<()> {
    let (_, hard) = nofile()?;
    set_nofile(soft.min(hard), hard)
}

/// Raises the soft limit on open files to the hard limit (what children started afterwards
/// inherit) and returns the soft limit now in force.
///
/// # Errors
///
/// When the limits cannot be read or set.
pub fn raise_nofile() -> io::Result<u64> {
    let (_, hard) = nofile()?;
    set_nofile_soft(hard)?;
    Ok(nofile()?.0)
}

/// The number of CPUs this process may run on (1 where the system does not say).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_can_be_lowered_and_raised_again_within_the_hard_limit() {
        let (soft, hard) = nofile().unwrap();
        assert!(soft <= hard, "{soft} > {hard}");
        assert!(soft > 0);
        // Other tests of this binary open descriptors meanwhile: stay well above their needs.
        let lower = soft.min(hard).saturating_sub(1).max(256);
        set_nofile_soft(lower).unwrap();
        if cfg!(unix) {
            assert_eq!(nofile().unwrap(), (lower.min(hard), hard));
        }
        set_nofile_soft(u64::MAX).unwrap();
        assert_eq!(
            nofile().unwrap().0,
            hard,
            "the soft limit stops at the hard one"
        );
        assert_eq!(raise_nofile().unwrap(), hard);
        set_nofile_soft(soft).unwrap();
        assert_eq!(nofile().unwrap(), (soft, hard));
        assert!(available_cpus() >= 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_soft_limit_above_the_hard_one_is_refused() {
        let (_, hard) = nofile().unwrap();
        if hard != u64::MAX {
            assert!(set_nofile(hard + 1, hard).is_err());
        }
    }
}
