//! What a socket error means: the classes of errors ([`ErrorClass`]) that the server's summary,
//! the load generator's verifier and its churn report count, written once for Linux and Windows.
//!
//! An error is classed by its [`io::ErrorKind`] first, which the standard library derives from
//! the system's code on each platform (`ECONNRESET` and `WSAECONNRESET` are both
//! `ConnectionReset`). Codes the standard library leaves uncategorised are classed by their raw
//! value: on Linux `ENETRESET`; on Windows `WSAENETRESET`, `WSAESHUTDOWN` and the Win32 codes an
//! overlapped socket operation can end with (`ERROR_NETNAME_DELETED`, `ERROR_CONNECTION_ABORTED`,
//! `ERROR_CONNECTION_REFUSED`).
//!
//! | class | Linux | Windows |
//! |---|---|---|
//! | [`Reset`](ErrorClass::Reset) | `ECONNRESET`, `ECONNABORTED`, `ENETRESET` | `WSAECONNRESET`, `WSAECONNABORTED`, `WSAENETRESET`, `ERROR_NETNAME_DELETED`, `ERROR_CONNECTION_ABORTED` |
//! | [`BrokenPipe`](ErrorClass::BrokenPipe) | `EPIPE` | `WSAESHUTDOWN`, `ERROR_BROKEN_PIPE`, `ERROR_NO_DATA` |
//! | [`Refused`](ErrorClass::Refused) | `ECONNREFUSED` | `WSAECONNREFUSED`, `ERROR_CONNECTION_REFUSED` |
//! | [`TimedOut`](ErrorClass::TimedOut) | `ETIMEDOUT` | `WSAETIMEDOUT` |
//! | [`AddrUnavailable`](ErrorClass::AddrUnavailable) | `EADDRNOTAVAIL`, `EADDRINUSE` | `WSAEADDRNOTAVAIL`, `WSAEADDRINUSE` |
//! | [`Other`](ErrorClass::Other) | the rest | the rest |
//!
//! # Failed accepts
//!
//! A failed accept means something else: [`AcceptFailure`] says whose failure it is, the
//! connection's or the listener's, for the servers' accept policy.
//!
//! | failure | Linux | Windows |
//! |---|---|---|
//! | [`Gone`](AcceptFailure::Gone) | a [`Reset`](ErrorClass::Reset), `ENOTCONN`, `EPROTO` | a [`Reset`](ErrorClass::Reset), `WSAENOTCONN` |
//! | [`Exhausted`](AcceptFailure::Exhausted) | `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM` | `WSAEMFILE`, `WSAENOBUFS`, `ERROR_NOT_ENOUGH_MEMORY`, `ERROR_OUTOFMEMORY` |
//! | [`Other`](AcceptFailure::Other) | the rest | the rest |

use std::fmt;
use std::io;

/// What a socket error means, coarsely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorClass {
    /// The peer reset or aborted the connection.
    Reset,
    /// The connection could no longer be written: the peer was gone when data was sent.
    BrokenPipe,
    /// The connect was refused: nothing listens there (or its backlog is full and its kernel
    /// answers with a reset).
    Refused,
    /// The kernel gave up: retransmissions, keepalive, or a connect unanswered.
    TimedOut,
    /// No local address or port was free (`TIME_WAIT`, or the ephemeral port range, is the
    /// limit).
    AddrUnavailable,
    /// Anything else.
    Other,
}

impl ErrorClass {
    /// Every class.
    pub const ALL: [ErrorClass; 6] = [
        ErrorClass::Reset,
        ErrorClass::BrokenPipe,
        ErrorClass::Refused,
        ErrorClass::TimedOut,
        ErrorClass::AddrUnavailable,
        ErrorClass::Other,
    ];

    /// The class of `e` (see the module's table).
    pub fn of(e: &io::Error) -> ErrorClass {
        match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => ErrorClass::Reset,
            io::ErrorKind::BrokenPipe => ErrorClass::BrokenPipe,
            io::ErrorKind::ConnectionRefused => ErrorClass::Refused,
            io::ErrorKind::TimedOut => ErrorClass::TimedOut,
            io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse => {
                ErrorClass::AddrUnavailable
            }
            _ => e
                .raw_os_error()
                .and_then(ErrorClass::of_code)
                .unwrap_or(ErrorClass::Other),
        }
    }

    /// The class of this system's raw error code (`errno`, or a Windows error code), `None` for
    /// a code no class names.
    pub fn of_code(code: i32) -> Option<ErrorClass> {
        #[cfg(windows)]
        return of_windows_code(code);
        #[cfg(not(windows))]
        of_unix_code(code)
    }

    /// Whether the peer is gone: a reset or a broken pipe (what the load generator counts as
    /// `reset`).
    pub fn peer_gone(self) -> bool {
        matches!(self, ErrorClass::Reset | ErrorClass::BrokenPipe)
    }

    /// A short name: `reset`, `broken pipe`, `refused`, `timed out`, `address unavailable`,
    /// `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Reset => "reset",
            ErrorClass::BrokenPipe => "broken pipe",
            ErrorClass::Refused => "refused",
            ErrorClass::TimedOut => "timed out",
            ErrorClass::AddrUnavailable => "address unavailable",
            ErrorClass::Other => "other",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&io::Error> for ErrorClass {
    fn from(e: &io::Error) -> ErrorClass {
        ErrorClass::of(e)
    }
}

/// Whose failure a failed accept is: the connection's, or the listener's (see the module's
/// table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AcceptFailure {
    /// The connection was gone before it could be accepted (the client reset or aborted it,
    /// or it is no longer connected): that client's failure, and it left the listen backlog
    /// with it, so the next accept may be tried at once.
    Gone,
    /// Out of descriptors or memory: the connection stays in the backlog, and accepting again at
    /// once would fail again.
    Exhausted,
    /// Anything else.
    Other,
}

impl AcceptFailure {
    /// Whose failure the failed accept `e` is.
    pub fn of(e: &io::Error) -> AcceptFailure {
        if ErrorClass::of(e) == ErrorClass::Reset || e.kind() == io::ErrorKind::NotConnected {
            return AcceptFailure::Gone;
        }
        match e.raw_os_error() {
            #[cfg(windows)]
            Some(code) => accept_failure_of_windows_code(code),
            #[cfg(not(windows))]
            Some(code) => accept_failure_of_unix_code(code),
            None => AcceptFailure::Other,
        }
    }
}

/// The accept failure of an `errno` value that is not a reset.
#[cfg(not(windows))]
fn accept_failure_of_unix_code(code: i32) -> AcceptFailure {
    #[cfg(unix)]
    {
        use nix::errno::Errno;
        match Errno::from_raw(code) {
            Errno::ENOTCONN | Errno::EPROTO => AcceptFailure::Gone,
            Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM => {
                AcceptFailure::Exhausted
            }
            _ => AcceptFailure::Other,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = code;
        AcceptFailure::Other
    }
}

/// The accept failure of a Windows error code (Win32 or Winsock).
#[cfg_attr(not(windows), allow(dead_code))]
fn accept_failure_of_windows_code(code: i32) -> AcceptFailure {
    use win::*;
    match code {
        WSAENOTCONN => AcceptFailure::Gone,
        _ if of_windows_code(code) == Some(ErrorClass::Reset) => AcceptFailure::Gone,
        WSAEMFILE | WSAENOBUFS | ERROR_NOT_ENOUGH_MEMORY | ERROR_OUTOFMEMORY => {
            AcceptFailure::Exhausted
        }
        _ => AcceptFailure::Other,
    }
}

/// The class of an `errno` value.
#[cfg(not(windows))]
fn of_unix_code(code: i32) -> Option<ErrorClass> {
    #[cfg(unix)]
    {
        use nix::errno::Errno;
        Some(match Errno::from_raw(code) {
            Errno::ECONNRESET | Errno::ECONNABORTED | Errno::ENETRESET => ErrorClass::Reset,
            Errno::EPIPE => ErrorClass::BrokenPipe,
            Errno::ECONNREFUSED => ErrorClass::Refused,
            Errno::ETIMEDOUT => ErrorClass::TimedOut,
            Errno::EADDRNOTAVAIL | Errno::EADDRINUSE => ErrorClass::AddrUnavailable,
            _ => return None,
        })
    }
    #[cfg(not(unix))]
    {
        let _ = code;
        None
    }
}

/// Windows error codes (winerror.h), by name.
#[cfg_attr(not(windows), allow(dead_code))]
mod win {
    pub const ERROR_NOT_ENOUGH_MEMORY: i32 = 8;
    pub const ERROR_OUTOFMEMORY: i32 = 14;
    pub const ERROR_BROKEN_PIPE: i32 = 109;
    pub const ERROR_NO_DATA: i32 = 232;
    pub const ERROR_NETNAME_DELETED: i32 = 64;
    pub const ERROR_CONNECTION_REFUSED: i32 = 1225;
    pub const ERROR_CONNECTION_ABORTED: i32 = 1236;
    pub const WSAEMFILE: i32 = 10024;
    pub const WSAEADDRINUSE: i32 = 10048;
    pub const WSAEADDRNOTAVAIL: i32 = 10049;
    pub const WSAENETRESET: i32 = 10052;
    pub const WSAECONNABORTED: i32 = 10053;
    pub const WSAECONNRESET: i32 = 10054;
    pub const WSAENOBUFS: i32 = 10055;
    pub const WSAENOTCONN: i32 = 10057;
    pub const WSAESHUTDOWN: i32 = 10058;
    pub const WSAETIMEDOUT: i32 = 10060;
    pub const WSAECONNREFUSED: i32 = 10061;
}

/// The class of a Windows error code (Win32 or Winsock).
#[cfg_attr(not(windows), allow(dead_code))]
fn of_windows_code(code: i32) -> Option<ErrorClass> {
    use win::*;
    Some(match code {
        WSAECONNRESET
        | WSAECONNABORTED
        | WSAENETRESET
        | ERROR_NETNAME_DELETED
        | ERROR_CONNECTION_ABORTED => ErrorClass::Reset,
        WSAESHUTDOWN | ERROR_BROKEN_PIPE | ERROR_NO_DATA => ErrorClass::BrokenPipe,
        WSAECONNREFUSED | ERROR_CONNECTION_REFUSED => ErrorClass::Refused,
        WSAETIMEDOUT => ErrorClass::TimedOut,
        WSAEADDRNOTAVAIL | WSAEADDRINUSE => ErrorClass::AddrUnavailable,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::time::Duration;

    #[test]
    fn kinds_are_classed_on_every_platform() {
        let of = |k: io::ErrorKind| ErrorClass::of(&io::Error::from(k));
        assert_eq!(of(io::ErrorKind::ConnectionReset), ErrorClass::Reset);
        assert_eq!(of(io::ErrorKind::ConnectionAborted), ErrorClass::Reset);
        assert_eq!(of(io::ErrorKind::BrokenPipe), ErrorClass::BrokenPipe);
        assert_eq!(of(io::ErrorKind::ConnectionRefused), ErrorClass::Refused);
        assert_eq!(of(io::ErrorKind::TimedOut), ErrorClass::TimedOut);
        assert_eq!(
            of(io::ErrorKind::AddrNotAvailable),
            ErrorClass::AddrUnavailable
        );
        assert_eq!(of(io::ErrorKind::AddrInUse), ErrorClass::AddrUnavailable);
        assert_eq!(of(io::ErrorKind::WouldBlock), ErrorClass::Other);
        assert_eq!(ErrorClass::of(&io::Error::other("x")), ErrorClass::Other);
        assert!(ErrorClass::Reset.peer_gone() && ErrorClass::BrokenPipe.peer_gone());
        assert!(ErrorClass::ALL[2..].iter().all(|c| !c.peer_gone()));
        assert_eq!(ErrorClass::BrokenPipe.to_string(), "broken pipe");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn linux_codes_are_classed() {
        let raw = |c: i32| ErrorClass::of(&io::Error::from_raw_os_error(c));
        // Values of Linux's errno.h.
        assert_eq!(raw(104), ErrorClass::Reset, "ECONNRESET");
        assert_eq!(raw(103), ErrorClass::Reset, "ECONNABORTED");
        assert_eq!(
            raw(102),
            ErrorClass::Reset,
            "ENETRESET, which std leaves uncategorised"
        );
        assert_eq!(raw(32), ErrorClass::BrokenPipe, "EPIPE");
        assert_eq!(raw(111), ErrorClass::Refused, "ECONNREFUSED");
        assert_eq!(raw(110), ErrorClass::TimedOut, "ETIMEDOUT");
        assert_eq!(raw(99), ErrorClass::AddrUnavailable, "EADDRNOTAVAIL");
        assert_eq!(raw(98), ErrorClass::AddrUnavailable, "EADDRINUSE");
        assert_eq!(raw(24), ErrorClass::Other, "EMFILE");
        assert_eq!(ErrorClass::of_code(11), None, "EAGAIN");
    }

    #[test]
    fn windows_codes_are_classed() {
        for (code, class) in [
            (10054, ErrorClass::Reset),
            (10053, ErrorClass::Reset),
            (10052, ErrorClass::Reset),
            (64, ErrorClass::Reset),
            (1236, ErrorClass::Reset),
            (10058, ErrorClass::BrokenPipe),
            (109, ErrorClass::BrokenPipe),
            (232, ErrorClass::BrokenPipe),
            (10061, ErrorClass::Refused),
            (1225, ErrorClass::Refused),
            (10060, ErrorClass::TimedOut),
            (10049, ErrorClass::AddrUnavailable),
            (10048, ErrorClass::AddrUnavailable),
        ] {
            assert_eq!(of_windows_code(code), Some(class), "{code}");
            if cfg!(windows) {
                let e = io::Error::from_raw_os_error(code);
                assert_eq!(ErrorClass::of(&e), class, "{code}: {e}");
            }
        }
        assert_eq!(of_windows_code(10035), None, "WSAEWOULDBLOCK");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn linux_accept_failures_are_the_connections_or_scarcity() {
        let of = |c: i32| AcceptFailure::of(&io::Error::from_raw_os_error(c));
        // Values of Linux's errno.h.
        for (code, name) in [
            (103, "ECONNABORTED"),
            (104, "ECONNRESET"),
            (107, "ENOTCONN"),
        ] {
            assert_eq!(of(code), AcceptFailure::Gone, "{name}");
        }
        assert_eq!(of(71), AcceptFailure::Gone, "EPROTO");
        for (code, name) in [
            (24, "EMFILE"),
            (23, "ENFILE"),
            (105, "ENOBUFS"),
            (12, "ENOMEM"),
        ] {
            assert_eq!(of(code), AcceptFailure::Exhausted, "{name}");
        }
        for (code, name) in [(22, "EINVAL"), (1, "EPERM"), (9, "EBADF")] {
            assert_eq!(of(code), AcceptFailure::Other, "{name}");
        }
        assert_eq!(
            AcceptFailure::of(&io::Error::other("no code")),
            AcceptFailure::Other
        );
    }

    #[test]
    fn windows_accept_failures_are_the_connections_or_scarcity() {
        for (code, failure) in [
            (10054, AcceptFailure::Gone),
            (10057, AcceptFailure::Gone),
            (10053, AcceptFailure::Gone),
            (64, AcceptFailure::Gone),
            (1236, AcceptFailure::Gone),
            (10024, AcceptFailure::Exhausted),
            (10055, AcceptFailure::Exhausted),
            (8, AcceptFailure::Exhausted),
            (14, AcceptFailure::Exhausted),
            (10022, AcceptFailure::Other),
            (10038, AcceptFailure::Other),
        ] {
            assert_eq!(accept_failure_of_windows_code(code), failure, "{code}");
            if cfg!(windows) {
                let e = io::Error::from_raw_os_error(code);
                assert_eq!(AcceptFailure::of(&e), failure, "{code}: {e}");
            }
        }
    }

    /// A connection on loopback whose peer closes with `SO_LINGER` 0: a reset.
    fn reset_pair() -> TcpStream {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        socket2::SockRef::from(&server)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(server);
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        client
    }

    #[test]
    fn a_real_reset_on_loopback_is_a_reset_and_the_peer_is_gone() {
        let mut client = reset_pair();
        let mut buf = [0u8; 16];
        match client.read(&mut buf) {
            Err(e) => assert_eq!(
                ErrorClass::of(&e),
                ErrorClass::Reset,
                "{e} ({:?})",
                e.kind()
            ),
            // Wine reports a reset reaching a blocked receive as the end of the stream.
            Ok(0) if cfg!(windows) => {}
            Ok(n) => panic!("a reset, not {n} bytes"),
        }
        // Writing to the reset connection fails too: a broken pipe on Linux, a reset on
        // Windows; the peer is gone either way.
        let e = (0..100)
            .find_map(|_| client.write_all(&[0u8; 4096]).err())
            .expect("writes to a reset connection fail");
        assert!(ErrorClass::of(&e).peer_gone(), "{e} ({:?})", e.kind());
        #[cfg(target_os = "linux")]
        assert_eq!(ErrorClass::of(&e), ErrorClass::BrokenPipe, "{e}");
    }

    #[test]
    fn a_real_refused_connect_on_loopback_is_refused() {
        // A port that was free a moment ago: bound, then closed, nothing listens there.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = TcpStream::connect_timeout(
            &(Ipv4Addr::LOCALHOST, port).into(),
            Duration::from_secs(10),
        )
        .expect_err("nothing listens");
        assert_eq!(ErrorClass::of(&e), ErrorClass::Refused, "{e}");
    }

    #[test]
    fn a_real_address_in_use_is_address_unavailable() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let e = TcpListener::bind(listener.local_addr().unwrap()).expect_err("in use");
        assert_eq!(ErrorClass::of(&e), ErrorClass::AddrUnavailable, "{e}");
    }
}
