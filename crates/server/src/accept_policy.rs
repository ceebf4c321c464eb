//! The accept-failure policy of every server model (completion, threaded, single): which failed
//! accepts pause accepting, for how long, and what is logged. Whose failure an accept's error
//! is comes from `ringport_os::AcceptFailure`, for every system.
//!
//! - **Gone** (the client reset or aborted the connection before it was accepted: Linux
//!   `ECONNABORTED`; Windows `WSAECONNRESET`, `WSAENOTCONN`, `ERROR_NETNAME_DELETED`, ...):
//!   that connection's failure, not the listener's, and it left the backlog with it. The next
//!   accept follows at once (on IOCP with a fresh accept socket), however many clients gave up
//!   in a row: a burst of resets never pauses accepting.
//! - **Scarce** (out of descriptors or memory: `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`):
//!   accepting again at once would fail again, and spin. Accepting pauses, 100 ms doubling up
//!   to 1 s; the connections already open keep being served meanwhile.
//! - **Transient** (anything else): that one connection is lost, the next may be fine, so the
//!   next accept follows at once; after [`TRANSIENT_RETRIES`] failures in a row accepting
//!   pauses anyway, so that a failure that keeps coming never spins either.
//! - **Logging**: a pause is an *episode*, warned about once when it starts ("pausing
//!   accepts") and reported once when an accept succeeds again, however many accepts failed in
//!   between; gone clients and transient failures are debug lines.
//!
//! What is not a failure of the accept (a cancellation, "would block" on a non-blocking
//! listener, a signal; a kernel refusing multishot accept, which the port makes up for) is the
//! caller's business and never reaches the policy. [`Episode`] also serves the models' other once-per-episode warnings.

use std::io;
use std::time::Duration;

use ringport_os::AcceptFailure;
use tracing::{debug, info, warn};

/// The first pause of accepts that fail for want of descriptors or memory.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest pause between such accepts.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Transient accept errors in a row before accepting pauses anyway (so it never spins).
pub(crate) const TRANSIENT_RETRIES: u32 = 16;

/// The kind of a failed accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// The client was gone before it was accepted: accept the next at once, always.
    Gone,
    /// Out of descriptors or memory: accepting again at once would fail again.
    Scarce,
    /// That one connection is lost; the next may be fine.
    Transient,
}

/// Classifies a failed accept.
pub(crate) fn classify(e: &io::Error) -> Class {
    match AcceptFailure::of(e) {
        AcceptFailure::Gone => Class::Gone,
        AcceptFailure::Exhausted => Class::Scarce,
        AcceptFailure::Other => Class::Transient,
    }
}

/// Doubling pauses, from [`BACKOFF_MIN`] up to [`BACKOFF_MAX`].
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff { next: BACKOFF_MIN }
    }

    /// The pause to take now; the following one is twice as long (at most [`BACKOFF_MAX`]).
    pub(crate) fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        pause
    }

    /// Back to the shortest pause (after a success).
    pub(crate) fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

/// A kind of trouble that is logged once when it starts and once when it ends, however often
/// it happens in between.
#[derive(Debug, Default, Clone)]
pub(crate) struct Episode {
    hits: u64,
}

impl Episode {
    /// The trouble happened again; true when this starts an episode (log it now).
    pub(crate) fn hit(&mut self) -> bool {
        self.hits += 1;
        self.hits == 1
    }

    /// Things went well; returns how often the trouble happened if an episode just ended.
    pub(crate) fn end(&mut self) -> Option<u64> {
        let hits = std::mem::take(&mut self.hits);
        (hits > 0).then_some(hits)
    }
}

/// What to do after a failed accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Accept the next client at once.
    AcceptNext,
    /// Accept nothing for this long (a drain may end the pause early).
    Pause(Duration),
}

/// One acceptor's state under the policy: its back-off, its failures in a row, its episode.
#[derive(Debug)]
pub(crate) struct AcceptPolicy {
    /// Named in the log lines (the completion model's worker), if any.
    worker: Option<usize>,
    backoff: Backoff,
    failures: u32,
    trouble: Episode,
}

impl AcceptPolicy {
    /// The policy of one acceptor; `worker` is named in its log lines.
    pub(crate) fn new(worker: Option<usize>) -> AcceptPolicy {
        AcceptPolicy {
            worker,
            backoff: Backoff::new(),
            failures: 0,
            trouble: Episode::default(),
        }
    }

    /// An accept succeeded: the back-off and the failure count start over, and an episode of
    /// pauses ends (logged once).
    pub(crate) fn succeeded(&mut self) {
        self.failures = 0;
        self.backoff.reset();
        if let Some(n) = self.trouble.end() {
            info!(
                worker = self.worker,
                "accepting again after {n} failed accepts"
            );
        }
    }

    /// An accept failed and nothing else is accepting: what to do next (see the module's
    /// policy). Logs the start of an episode.
    pub(crate) fn failed(&mut self, e: &io::Error) -> Verdict {
        let class = classify(e);
        if class == Class::Gone {
            debug!(
                worker = self.worker,
                "accept failed: {e} (the client was gone); accepting the next"
            );
            return Verdict::AcceptNext;
        }
        self.failures += 1;
        if class == Class::Scarce || self.failures > TRANSIENT_RETRIES {
            if self.trouble.hit() {
                warn!(
                    worker = self.worker,
                    "accept failed: {e}; pausing accepts (back-off from 100 ms up to 1 s) until one succeeds"
                );
            }
            Verdict::Pause(self.backoff.next_pause())
        } else {
            debug!(
                worker = self.worker,
                "accept failed: {e}; accepting the next"
            );
            Verdict::AcceptNext
        }
    }

    /// An accept failed, but the accept goes on by itself (a multishot accept still armed, as
    /// IOCP's after a client that was gone): the same policy as [`failed`](Self::failed); on
    /// [`Verdict::Pause`] the caller stops the armed accept for the pause.
    pub(crate) fn failed_armed(&mut self, e: &io::Error) -> Verdict {
        self.failed(e)
    }

    /// Accepting could not even be attempted (the accept could not be submitted): the next
    /// pause of the back-off, outside any episode.
    pub(crate) fn pause(&mut self) -> Duration {
        self.backoff.next_pause()
    }
}

// Unix-only: the cases are errno values (the Windows codes are mapped in `classify`).
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn errno(n: i32) -> io::Error {
        io::Error::from_raw_os_error(n)
    }

    #[test]
    fn out_of_descriptors_or_memory_is_scarce_the_rest_transient() {
        for n in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(classify(&errno(n)), Class::Scarce, "{n}");
        }
        for n in [
            libc::ECONNABORTED,
            libc::ECONNRESET,
            libc::EPROTO,
            libc::ENOTCONN,
        ] {
            assert_eq!(classify(&errno(n)), Class::Gone, "{n}");
        }
        for n in [libc::EPERM, libc::EINTR, libc::EINVAL] {
            assert_eq!(classify(&errno(n)), Class::Transient, "{n}");
        }
        assert_eq!(classify(&io::Error::other("no errno")), Class::Transient);
    }

    #[test]
    fn backoff_doubles_up_to_a_second_and_resets() {
        let mut b = Backoff::new();
        let pauses: Vec<_> = (0..6).map(|_| b.next_pause().as_millis()).collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_pause(), BACKOFF_MIN);
    }

    #[test]
    fn episodes_log_once_at_the_start_and_count_until_the_end() {
        let mut e = Episode::default();
        assert_eq!(e.end(), None);
        assert!(e.hit());
        assert!(!e.hit());
        assert!(!e.hit());
        assert_eq!(e.end(), Some(3));
        assert_eq!(e.end(), None);
        assert!(e.hit(), "a new episode is logged again");
    }

    #[test]
    fn scarce_failures_pause_doubling_and_a_success_starts_over() {
        let mut p = AcceptPolicy::new(Some(0));
        let pauses: Vec<_> = (0..6)
            .map(|_| match p.failed(&errno(libc::EMFILE)) {
                Verdict::Pause(d) => d.as_millis(),
                Verdict::AcceptNext => panic!("EMFILE must pause"),
            })
            .collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.trouble.hits, 6, "one episode");
        p.succeeded();
        assert_eq!(p.trouble.hits, 0, "the episode ended");
        assert_eq!(
            p.failed(&errno(libc::ENFILE)),
            Verdict::Pause(BACKOFF_MIN),
            "back to the shortest pause"
        );
    }

    #[test]
    fn transient_failures_accept_the_next_until_too_many_in_a_row() {
        let mut p = AcceptPolicy::new(None);
        for _ in 0..TRANSIENT_RETRIES {
            assert_eq!(p.failed(&errno(libc::EPERM)), Verdict::AcceptNext);
        }
        assert_eq!(
            p.failed(&errno(libc::EPERM)),
            Verdict::Pause(BACKOFF_MIN),
            "never spins"
        );
        p.succeeded();
        assert_eq!(p.failed(&errno(libc::EPERM)), Verdict::AcceptNext);
    }

    #[test]
    fn clients_gone_before_their_accept_never_pause_accepting() {
        // A burst of 200 resets in the backlog: every accept is followed by the next, at once.
        let mut p = AcceptPolicy::new(Some(0));
        for n in 0..200 {
            assert_eq!(
                p.failed(&errno(libc::ECONNABORTED)),
                Verdict::AcceptNext,
                "gone client {n}"
            );
            assert_eq!(p.failed_armed(&errno(libc::ENOTCONN)), Verdict::AcceptNext);
        }
        assert_eq!(p.trouble.hits, 0, "no episode");
        // Nor do they count towards the other failures in a row.
        assert_eq!(p.failures, 0);
    }

    #[test]
    fn failures_of_an_armed_accept_follow_the_same_policy() {
        let mut p = AcceptPolicy::new(Some(1));
        for _ in 0..TRANSIENT_RETRIES {
            assert_eq!(p.failed_armed(&errno(libc::EPERM)), Verdict::AcceptNext);
        }
        assert_eq!(p.trouble.hits, 0, "no episode");
        assert_eq!(
            p.failed(&errno(libc::EPERM)),
            Verdict::Pause(BACKOFF_MIN),
            "never spins"
        );
        assert_eq!(
            p.failed_armed(&errno(libc::EMFILE)),
            Verdict::Pause(BACKOFF_MIN * 2),
            "out of descriptors pauses an armed accept too"
        );
    }

    #[test]
    fn a_pause_outside_failures_advances_the_backoff_without_an_episode() {
        let mut p = AcceptPolicy::new(Some(0));
        assert_eq!(p.pause(), BACKOFF_MIN);
        assert_eq!(p.pause(), BACKOFF_MIN * 2);
        assert_eq!(p.trouble.hits, 0);
    }
}
