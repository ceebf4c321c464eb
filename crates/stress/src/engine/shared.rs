//! What a run's client threads share: the caller's hooks ([`RunOptions`]), the configuration
//! resolved once, the server's address, the start barrier, and the common start of the load
//! (`--start-at`).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use ringport_port::Backend;

use super::progress::Progress;
use crate::config::StressConfig;
use crate::protocol::payload::PayloadSpec;
use crate::protocol::script::Script;
use crate::tls::client_config::TlsClient;

/// Hooks into a run besides its configuration.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Counters to update while running.
    pub progress: Option<Arc<Progress>>,
    /// Set to stop early (Ctrl-C): no new message is sent, messages in flight are still
    /// verified, then the run ends and reports what it measured.
    pub stop: Option<Arc<AtomicBool>>,
}

/// What all client threads share (read-only but for the once-set fields).
pub(super) struct Shared<'a> {
    pub(super) config: &'a StressConfig,
    /// Global index of the first connection of this process (its `--segment`'s).
    pub(super) first: usize,
    /// With `--start-at`: how late the load started, if it did.
    pub(super) start_late: OnceLock<Duration>,
    pub(super) payload: PayloadSpec,
    /// Request/response mode: the script every connection runs (`None`: echo).
    pub(super) script: Option<Script>,
    pub(super) addr: SocketAddr,
    pub(super) sources: Vec<IpAddr>,
    pub(super) connect_start: Instant,
    pub(super) barrier: Barrier,
    pub(super) load_start: OnceLock<Instant>,
    pub(super) backend: Backend,
    pub(super) opts: &'a RunOptions,
    /// `--tls`: what every connection's session is made from; `None`: plaintext.
    pub(super) tls: Option<TlsClient>,
    /// Plaintext (no `--tls`, no `--websocket`): the watch for a server that speaks TLS.
    pub(super) tls_check: Option<super::tls_check::TlsCheck>,
}

impl Shared<'_> {
    /// The common start of the load: now, or with `--start-at` that wall-clock time (waited
    /// for, unless the stop flag is raised first). A start already past is noted in
    /// `start_late` and warned about at once.
    pub(super) fn wait_for_start(&self) -> Instant {
        wait_for_start(self.config, self.opts, &self.start_late)
    }
}

/// The common start of the load of `config`: now, or with `--start-at` that wall-clock time
/// (waited for, unless `opts`' stop flag is raised first). A start already past is noted in
/// `start_late` and warned about at once.
pub(crate) fn wait_for_start(
    config: &StressConfig,
    opts: &RunOptions,
    start_late: &OnceLock<Duration>,
) -> Instant {
    let Some(at) = config.start_at else {
        return Instant::now();
    };
    match at.duration_since(SystemTime::now()) {
        Ok(wait) => {
            if wait > Duration::from_millis(100) {
                tracing::info!(
                    "connected; starting the load in {:.3}s (--start-at)",
                    wait.as_secs_f64()
                );
            }
            let stop = opts.stop.as_deref();
            while let Ok(left) = at.duration_since(SystemTime::now()) {
                if left.is_zero() || stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                    break;
                }
                // Sleep in slices: the wall clock may be stepped meanwhile, and Ctrl-C
                // must not wait for the whole delay.
                thread::sleep(left.min(Duration::from_millis(50)));
            }
        }
        Err(past) => {
            let late = past.duration();
            tracing::warn!(
                "starting {:.3}s after --start-at (connecting took longer, or the clock is \
                 ahead)",
                late.as_secs_f64()
            );
            let _ = start_late.set(late);
        }
    }
    Instant::now()
}
