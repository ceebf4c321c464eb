//! The shutdown signal shared by a server's threads.
//!
//! A [`Shutdown`] is triggered once (by a signal handler thread, a key press, or a test) and
//! runs every waker registered by the server model: the completion model posts a completion to
//! each worker's port, the blocking models unblock their accept loops. Triggering twice does
//! nothing more.
//!
//! It also holds [`LINGER_QUIET`], the one rule of the lingering close every model follows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

type Waker = Box<dyn Fn() + Send + Sync>;

/// A connection the drain ends that lingers with its FIN sent, dropping what its peer still
/// sends until the peer's end (so that the close does not reset the connection under the
/// last bytes sent), closes once the peer has been quiet this long: a peer that neither sends
/// nor closes does not hold the shutdown until the drain deadline.
pub const LINGER_QUIET: std::time::Duration = std::time::Duration::from_millis(200);

#[derive(Default)]
struct Inner {
    triggered: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

/// A cloneable, thread-safe "stop now, gracefully" flag with wake-ups.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

impl Shutdown {
    /// A new, untriggered flag.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Starts the graceful shutdown; returns false if it had already started.
    pub fn trigger(&self) -> bool {
        if self.inner.triggered.swap(true, Ordering::SeqCst) {
            return false;
        }
        let wakers = self.inner.wakers.lock().unwrap_or_else(|p| p.into_inner());
        for wake in wakers.iter() {
            wake();
        }
        true
    }

    /// Whether [`trigger`](Shutdown::trigger) was called.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Registers `wake` to run on trigger; runs it at once if already triggered.
    pub fn on_trigger(&self, wake: impl Fn() + Send + Sync + 'static) {
        let mut wakers = self.inner.wakers.lock().unwrap_or_else(|p| p.into_inner());
        if self.is_triggered() {
            wake();
        }
        wakers.push(Box::new(wake));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn wakers_run_once_and_late_wakers_run_at_once() {
        let s = Shutdown::new();
        let n = Arc::new(AtomicUsize::new(0));
        let n1 = n.clone();
        s.on_trigger(move || {
            n1.fetch_add(1, Ordering::SeqCst);
        });
        assert!(s.trigger());
        assert!(!s.trigger());
        assert_eq!(n.load(Ordering::SeqCst), 1);
        let n2 = n.clone();
        s.on_trigger(move || {
            n2.fetch_add(10, Ordering::SeqCst);
        });
        assert_eq!(n.load(Ordering::SeqCst), 11);
        assert!(s.is_triggered());
    }
}
