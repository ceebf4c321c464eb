//! Which backend a port runs on: the [`Backend`]s, the [`BackendChoice`] of the command line
//! and its resolution on this machine, and why io_uring may be unavailable.
//!
//! A port runs on one of three backends: on Linux io_uring, or epoll where io_uring cannot be
//! used (a seccomp filter, the `kernel.io_uring_disabled` sysctl, a memlock limit, an old
//! kernel); on Windows an I/O completion port (IOCP). [`BackendChoice::Auto`] takes io_uring on
//! Linux and falls back to epoll by itself with one log line (IOCP on Windows); the fallback is
//! decided in one place, where a port's driver is opened, whether for a port or for
//! [`BackendChoice::resolve`].
//!
//! What differs between backends and matters above the port is asked of the [`Backend`]
//! ([`Backend::timer_resolution`]), never decided by naming one.

use std::fmt;
use std::io;
use std::str::FromStr;
use std::time::Duration;

use crate::port::{PortConfig, PortError};
use crate::sys::AnyDriver;

/// The mechanism under a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// io_uring: operations are carried out by the kernel.
    Uring,
    /// epoll: operations are carried out by the port when their fd is ready (see the
    /// `sys::epoll` module); for machines where io_uring cannot be used.
    Epoll,
    /// An I/O completion port (Windows only): operations are carried out by Windows.
    Iocp,
}

impl Backend {
    /// Every backend, whether it exists here or not.
    pub const ALL: [Backend; 3] = [Backend::Uring, Backend::Epoll, Backend::Iocp];

    /// The backends that exist on the system the program was built for, the one
    /// [`BackendChoice::Auto`] prefers first (io_uring and epoll on Linux, IOCP on Windows).
    #[cfg(unix)]
    pub const HERE: &'static [Backend] = &[Backend::Uring, Backend::Epoll];
    /// The backends that exist on the system the program was built for, the one
    /// [`BackendChoice::Auto`] prefers first (io_uring and epoll on Linux, IOCP on Windows).
    #[cfg(windows)]
    pub const HERE: &'static [Backend] = &[Backend::Iocp];

    /// The backend that needs nothing optional of the system, so that a port on it can always
    /// be made: epoll on Linux (what [`BackendChoice::Auto`] falls back to), IOCP on Windows.
    #[cfg(unix)]
    pub const FALLBACK: Backend = Backend::Epoll;
    /// The backend that needs nothing optional of the system, so that a port on it can always
    /// be made: epoll on Linux (what [`BackendChoice::Auto`] falls back to), IOCP on Windows.
    #[cfg(windows)]
    pub const FALLBACK: Backend = Backend::Iocp;

    /// How finely a [`Port::wait`](crate::Port::wait)'s timeout is kept: io_uring and epoll to the nanosecond
    /// (epoll with `epoll_pwait2`, Linux 5.11+; where that call is missing or filtered, to the
    /// millisecond), IOCP to the millisecond (`GetQueuedCompletionStatusEx` takes whole
    /// milliseconds, rounded up). A caller that must act at a precise moment polls when this is
    /// fine enough to be worth it, and expects to be up to this late otherwise.
    pub const fn timer_resolution(self) -> Duration {
        match self {
            Backend::Uring | Backend::Epoll => Duration::from_nanos(1),
            Backend::Iocp => Duration::from_millis(1),
        }
    }

    /// The choice that asks for exactly this backend.
    pub const fn choice(self) -> BackendChoice {
        match self {
            Backend::Uring => BackendChoice::Uring,
            Backend::Epoll => BackendChoice::Epoll,
            Backend::Iocp => BackendChoice::Iocp,
        }
    }

    /// A short, stable name for logs and reports: `io_uring`, `epoll` or `iocp`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Uring => "io_uring",
            Backend::Epoll => "epoll",
            Backend::Iocp => "iocp",
        }
    }

    /// Whether this backend exists on the system the program was built for (io_uring and
    /// epoll on Linux, IOCP on Windows).
    pub fn exists_here(self) -> bool {
        match self {
            Backend::Uring | Backend::Epoll => cfg!(unix),
            Backend::Iocp => cfg!(windows),
        }
    }

    /// Why this backend cannot be used here, when it does not exist on this system.
    pub(crate) fn not_here(self) -> UringUnavailable {
        let (system, remedy) = if cfg!(windows) {
            ("Linux", "use --backend iocp (or auto) on Windows")
        } else {
            ("Windows", "use --backend auto, uring or epoll on Linux")
        };
        UringUnavailable {
            backend: self,
            cause: format!("it exists only on {system}"),
            remedy: remedy.into(),
            source: None,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = ParseBackendError;

    /// Parses a backend's [`name`](Backend::name) (`io_uring`, `epoll`, `iocp`) or its choice's
    /// (`uring`), in any case; not `auto`, which names no backend.
    fn from_str(s: &str) -> Result<Backend, ParseBackendError> {
        match s.parse::<BackendChoice>() {
            Ok(BackendChoice::Uring) => Ok(Backend::Uring),
            Ok(BackendChoice::Epoll) => Ok(Backend::Epoll),
            Ok(BackendChoice::Iocp) => Ok(Backend::Iocp),
            Ok(BackendChoice::Auto) | Err(_) => Err(ParseBackendError(s.to_string())),
        }
    }
}

/// Which mechanism a port should use: the `--backend auto|uring|epoll|iocp` of the command
/// line. Every choice exists on every system; one whose backend does not exist here (`iocp` on
/// Linux, `uring` and `epoll` on Windows) fails with one line saying so.
///
/// # Choosing once for many ports
///
/// [`BackendChoice::Auto`] probes io_uring each time a port is created and logs a warning each
/// time it falls back. A program with one port per worker thread should decide once, at
/// start-up, with [`resolve`](BackendChoice::resolve) (which logs the fallback once), and give
/// the resolved choice to every worker:
///
/// ```no_run
/// use ringport_port::{BackendChoice, Port, PortConfig};
///
/// let choice: BackendChoice = "auto".parse()?;
/// let backend = choice.resolve()?; // Uring, or Epoll with one warning naming the cause
/// println!("backend: {backend}");
/// let config = PortConfig { backend: backend.into(), ..PortConfig::default() };
/// let port = Port::new(&config)?; // in each worker
/// assert_eq!(port.backend(), backend);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendChoice {
    /// io_uring where it can be used, epoll otherwise (with one warning naming the cause).
    #[default]
    Auto,
    /// io_uring or fail with [`PortError::UringUnavailable`].
    Uring,
    /// epoll, even where io_uring could be used.
    Epoll,
    /// An I/O completion port: Windows only (where `Auto` picks it).
    Iocp,
}

impl BackendChoice {
    /// Every choice, in the order of the command line's help.
    pub const ALL: [BackendChoice; 4] = [
        BackendChoice::Auto,
        BackendChoice::Uring,
        BackendChoice::Epoll,
        BackendChoice::Iocp,
    ];

    /// The name on the command line: `auto`, `uring`, `epoll` or `iocp`.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Uring => "uring",
            BackendChoice::Epoll => "epoll",
            BackendChoice::Iocp => "iocp",
        }
    }

    /// Decides which backend this choice means on this machine, probing io_uring for `Auto`
    /// and `Uring` (see [`probe_uring`]). `Auto` falls back to epoll with one `tracing::warn!`
    /// line naming the cause. On Windows `Auto` is IOCP.
    ///
    /// # Errors
    ///
    /// For `Uring`: why io_uring cannot be used, with the remedy; for a backend that does not
    /// exist on this system, that it does not.
    pub fn resolve(self) -> Result<Backend, UringUnavailable> {
        match self {
            // Nothing to probe: the backend exists here or it does not.
            BackendChoice::Epoll | BackendChoice::Iocp => {
                let backend = match self {
                    BackendChoice::Epoll => Backend::Epoll,
                    _ => Backend::Iocp,
                };
                if backend.exists_here() {
                    Ok(backend)
                } else {
                    Err(backend.not_here())
                }
            }
            // The driver a port would get, built once and dropped (a handful of system
            // calls): the fallback is decided where every port's is.
            BackendChoice::Uring | BackendChoice::Auto => {
                match AnyDriver::open(self, PortConfig::default().entries) {
                    Ok(driver) => Ok(driver.backend()),
                    Err(PortError::UringUnavailable(e)) => Err(e),
                    Err(PortError::Io(e)) => Err(UringUnavailable {
                        backend: Backend::Uring,
                        cause: format!("the probe could not create an eventfd ({e})"),
                        remedy: "check the open-file limit (ulimit -n)".into(),
                        source: Some(e),
                    }),
                }
            }
        }
    }
}

impl From<Backend> for BackendChoice {
    fn from(backend: Backend) -> BackendChoice {
        backend.choice()
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend name that is not `auto`, `uring`, `epoll` or `iocp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseBackendError(String);

impl fmt::Display for ParseBackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown backend `{}`: expected auto, uring, epoll or iocp",
            self.0
        )
    }
}

impl std::error::Error for ParseBackendError {}

impl FromStr for BackendChoice {
    type Err = ParseBackendError;

    /// Parses `auto`, `uring` (or `io_uring`), `epoll` and `iocp`, in any case.
    fn from_str(s: &str) -> Result<BackendChoice, ParseBackendError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(BackendChoice::Uring),
            "epoll" => Ok(BackendChoice::Epoll),
            "iocp" => Ok(BackendChoice::Iocp),
            _ => Err(ParseBackendError(s.to_string())),
        }
    }
}

/// Checks that io_uring can be used here, with everything a port needs (the setup flags'
/// fallbacks, the features and opcodes), by building one small ring with the default number of
/// entries and dropping it: a handful of system calls.
///
/// # Errors
///
/// Why io_uring cannot be used (seccomp, `kernel.io_uring_disabled`, memlock limit, kernel too
/// old), with the remedy; on Windows, that it exists only on Linux.
pub fn probe_uring() -> Result<(), UringUnavailable> {
    BackendChoice::Uring.resolve().map(drop)
}

/// Why io_uring (or a backend of another system) cannot be used on this machine, with what to
/// do about it.
#[derive(Debug)]
pub struct UringUnavailable {
    /// The backend that cannot be used (io_uring, or one that does not exist on this system).
    pub backend: Backend,
    /// The cause in a few words, e.g. "blocked by a seccomp filter (EPERM)".
    pub cause: String,
    /// What the user can do.
    pub remedy: String,
    /// The error the kernel returned, if any.
    pub source: Option<io::Error>,
}

impl fmt::Display for UringUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is unavailable: {}; {}",
            self.backend, self.cause, self.remedy
        )
    }
}

impl std::error::Error for UringUnavailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
