//! The IOCP driver's system calls, each behind a function: the completion port's handle, the
//! Winsock calls (overlapped and not), the extension functions (`AcceptEx`, `ConnectEx`,
//! `GetAcceptExSockaddrs`). The overlapped calls are `unsafe fn`s: the memory they hand the
//! system must outlive the I/O, which only the driver can see to; everything else is safe.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::windows::io::{IntoRawSocket, OwnedSocket};
use std::sync::OnceLock;

use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, ERROR_INVALID_PARAMETER, HANDLE, WAIT_TIMEOUT,
};
use windows_sys::Win32::Networking::WinSock::{
    closesocket, getsockopt, recv, setsockopt, shutdown as wsa_shutdown, WSAGetLastError,
    WSAGetOverlappedResult, WSAIoctl, WSAPoll, WSARecv, WSARecvFrom, WSASend, WSASendTo,
    LPFN_ACCEPTEX, LPFN_CONNECTEX, LPFN_GETACCEPTEXSOCKADDRS, POLLERR, POLLHUP, POLLRDNORM,
    SIO_GET_EXTENSION_FUNCTION_POINTER, SOCKADDR, SOCKADDR_STORAGE, SOCKET, SOCKET_ERROR,
    SOL_SOCKET, SO_ACCEPTCONN, SO_UPDATE_ACCEPT_CONTEXT, SO_UPDATE_CONNECT_CONTEXT, WSABUF,
    WSAEINVAL, WSAID_ACCEPTEX, WSAID_CONNECTEX, WSAID_GETACCEPTEXSOCKADDRS, WSAPOLLFD,
    WSA_IO_PENDING,
};
use windows_sys::Win32::Storage::FileSystem::SetFileCompletionNotificationModes;
use windows_sys::Win32::System::IO::{
    CancelIoEx, CreateIoCompletionPort, GetQueuedCompletionStatusEx, PostQueuedCompletionStatus,
    OVERLAPPED, OVERLAPPED_ENTRY,
};

/// A result in the system's convention: bytes transferred, or a Windows error code.
pub(super) type IoResult = Result<u32, i32>;

/// `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS | FILE_SKIP_SET_EVENT_ON_HANDLE`.
const SKIP_ON_SUCCESS: u8 = 1 | 2;

/// Room for one address in AcceptEx's output buffer, as its documentation asks.
pub(super) const ACCEPT_ADDR_LEN: usize = mem::size_of::<SOCKADDR_STORAGE>() + 16;

/// AcceptEx's output buffer: the local and remote addresses.
pub(super) type AcceptAddrs = [u8; 2 * ACCEPT_ADDR_LEN];

/// How an overlapped call started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Started {
    /// It succeeded at once with these bytes (a packet follows, unless skip-on-success is set
    /// on the socket).
    Now(u32),
    /// It is in the system: a packet will come.
    Pending,
    /// It failed at once with this code: no packet will come.
    Failed(i32),
}

impl Started {
    /// How a call that returned `ok` (after moving `bytes`) started.
    fn of(ok: bool, bytes: u32) -> Started {
        if ok {
            return Started::Now(bytes);
        }
        match last_wsa_code() {
            WSA_IO_PENDING => Started::Pending,
            code => Started::Failed(code),
        }
    }

    /// How an overlapped `WSARecv`/`WSASend`/`WSARecvFrom`/`WSASendTo` that returned `ok`
    /// started. Winsock asks callers that pass an `OVERLAPPED` not to take the bytes of an
    /// immediate success from the call's byte count argument (passed NULL), so they are read
    /// from the `OVERLAPPED` (`InternalHigh`), which the system filled before returning.
    ///
    /// # Safety
    ///
    /// `ov` must be the `OVERLAPPED` the call was given, still valid.
    unsafe fn of_overlapped(ok: bool, ov: *const OVERLAPPED) -> Started {
        if !ok {
            return Started::of(false, 0);
        }
        // SAFETY: as the caller promises; the call succeeded at once, so the system has written
        // the OVERLAPPED's status (a plain field read).
        let bytes = unsafe { (*ov).InternalHigh };
        Started::Now(u32::try_from(bytes).unwrap_or(u32::MAX))
    }
}

/// An `OVERLAPPED` in the state the system expects of a new I/O.
pub(super) fn fresh_overlapped() -> OVERLAPPED {
    // SAFETY: OVERLAPPED is plain old data for which all-zero bytes are the initial state.
    unsafe { mem::zeroed() }
}

/// An empty `OVERLAPPED_ENTRY`, for `GetQueuedCompletionStatusEx` to fill.
pub(super) fn empty_entry() -> OVERLAPPED_ENTRY {
    // SAFETY: OVERLAPPED_ENTRY is plain old data; all-zero bytes are valid.
    unsafe { mem::zeroed() }
}

/// The calling thread's last Winsock error code.
pub(super) fn last_wsa_code() -> i32 {
    // SAFETY: no arguments; reads this thread's last Winsock error.
    unsafe { WSAGetLastError() }
}

/// The completion port's handle, shared with the [`Poster`](crate::Poster)s.
#[derive(Debug)]
pub(crate) struct PortHandle(HANDLE);

// SAFETY: a completion port handle may be used from any thread (PostQueuedCompletionStatus is
// the documented way for other threads to reach a port); the handle is closed only on drop.
unsafe impl Send for PortHandle {}
// SAFETY: as above; no method takes `&mut`.
unsafe impl Sync for PortHandle {}

/// Why a socket could not be associated with a port.
#[derive(Debug)]
pub(super) enum AssociateError {
    /// The socket is associated with a completion port already (`ERROR_INVALID_PARAMETER`).
    Taken,
    /// Another error.
    Other(io::Error),
}

impl PortHandle {
    /// A new completion port.
    pub(crate) fn new() -> io::Result<PortHandle> {
        // SAFETY: creating a new port: no handle to associate (INVALID_HANDLE_VALUE), no
        // pointers; a non-null result is a handle we own.
        let h = unsafe { CreateIoCompletionPort(-1isize as HANDLE, std::ptr::null_mut(), 0, 1) };
        if h.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(PortHandle(h))
    }

    /// Posts a packet with no `OVERLAPPED`: the driver reports it as a wake-up
    /// ([`WAKE`](crate::token::WAKE)), and the port then drains the values its posters queued.
    pub(crate) fn post(&self) -> io::Result<()> {
        // SAFETY: the handle is a live completion port; a null OVERLAPPED is allowed and marks
        // the packet as posted.
        let ok = unsafe { PostQueuedCompletionStatus(self.0, 0, 0, std::ptr::null()) };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Associates `s` with this port (`CreateIoCompletionPort`).
    pub(super) fn associate(&self, s: SOCKET) -> Result<(), AssociateError> {
        // SAFETY: `s` is a socket handle (a stale one fails); the port handle is live.
        let h = unsafe { CreateIoCompletionPort(s as HANDLE, self.0, 0, 0) };
        if !h.is_null() {
            return Ok(());
        }
        // SAFETY: no arguments.
        match unsafe { GetLastError() } {
            ERROR_INVALID_PARAMETER => Err(AssociateError::Taken),
            err => Err(AssociateError::Other(io::Error::from_raw_os_error(
                err as i32,
            ))),
        }
    }

    /// One `GetQueuedCompletionStatusEx` into `entries`, waiting at most `ms` milliseconds
    /// (`u32::MAX`: no limit): how many it dequeued (0 when the wait timed out).
    pub(super) fn dequeue(&self, entries: &mut [OVERLAPPED_ENTRY], ms: u32) -> io::Result<usize> {
        let mut n = 0u32;
        // SAFETY: the entries slice is live and `len` long; the port handle is live.
        let ok = unsafe {
            GetQueuedCompletionStatusEx(
                self.0,
                entries.as_mut_ptr(),
                entries.len() as u32,
                &mut n,
                ms,
                0,
            )
        };
        if ok == 0 {
            // SAFETY: no arguments.
            let err = unsafe { GetLastError() };
            if err == WAIT_TIMEOUT {
                return Ok(0);
            }
            return Err(io::Error::from_raw_os_error(err as i32));
        }
        Ok(n as usize)
    }
}

impl Drop for PortHandle {
    fn drop(&mut self) {
        // SAFETY: the handle is ours and closed once.
        unsafe { CloseHandle(self.0) };
    }
}

/// Sets skip-on-success on `s` (an I/O that completes inline then posts no packet); whether
/// the system accepted it.
pub(super) fn skip_on_success(s: SOCKET) -> bool {
    // SAFETY: `s` is a socket handle; the call takes no pointers.
    unsafe { SetFileCompletionNotificationModes(s as HANDLE, SKIP_ON_SUCCESS) != 0 }
}

/// Closes the socket whose last owned handle is `fd` (`closesocket`), with its result.
pub(super) fn close(fd: OwnedSocket) -> Result<(), i32> {
    let raw = fd.into_raw_socket() as SOCKET;
    // SAFETY: `raw` was the last owned handle of the socket, just released by
    // `into_raw_socket`: it is closed once, here.
    if unsafe { closesocket(raw) } == 0 {
        Ok(())
    } else {
        Err(last_wsa_code())
    }
}

/// `shutdown` of one or both directions of `s`.
pub(super) fn shutdown(s: SOCKET, how: std::net::Shutdown) -> Result<(), i32> {
    let how = match how {
        std::net::Shutdown::Read => 0,
        std::net::Shutdown::Write => 1,
        std::net::Shutdown::Both => 2,
    };
    // SAFETY: `s` is a socket handle held by the caller; no pointers.
    if unsafe { wsa_shutdown(s, how) } == 0 {
        Ok(())
    } else {
        Err(last_wsa_code())
    }
}

/// Asks the system to end the I/O of `ov` on `s` early (`CancelIoEx`); it completes as usual.
/// Nothing happens when it has just completed (its packet is queued).
pub(super) fn cancel(s: SOCKET, ov: &OVERLAPPED) {
    // SAFETY: CancelIoEx only names the OVERLAPPED (compared by address), which the borrow
    // keeps alive for the call; `s` is a socket handle.
    unsafe { CancelIoEx(s as HANDLE, ov) };
}

/// The final result of the I/O of `ov` on `s`, once its packet has been dequeued.
pub(super) fn overlapped_result(s: SOCKET, ov: &OVERLAPPED) -> IoResult {
    let (mut bytes, mut flags) = (0u32, 0u32);
    // SAFETY: the OVERLAPPED is borrowed for the call, which only reads it (fWait FALSE).
    let ok = unsafe { WSAGetOverlappedResult(s, ov, &mut bytes, 0, &mut flags) } != 0;
    if ok {
        Ok(bytes)
    } else {
        Err(last_wsa_code())
    }
}

/// The Winsock extension functions, loaded once per process.
struct Ext {
    accept_ex: LPFN_ACCEPTEX,
    connect_ex: LPFN_CONNECTEX,
    sockaddrs: LPFN_GETACCEPTEXSOCKADDRS,
}

static EXT: OnceLock<Ext> = OnceLock::new();

/// The extension functions, loaded through `s` the first time.
fn ext(s: SOCKET) -> io::Result<&'static Ext> {
    if let Some(e) = EXT.get() {
        return Ok(e);
    }
    /// One extension function pointer (`F` is an `Option<extern "system" fn ...>`).
    fn load<F: Copy + Default>(s: SOCKET, guid: &windows_sys::core::GUID) -> io::Result<F> {
        let mut f = F::default();
        let mut bytes = 0u32;
        // SAFETY: WSAIoctl reads one GUID from a live reference and writes one function
        // pointer into a live local of exactly a pointer's size (`Option<fn>` is a nullable
        // pointer); no overlapped.
        let ret = unsafe {
            WSAIoctl(
                s,
                SIO_GET_EXTENSION_FUNCTION_POINTER,
                (guid as *const windows_sys::core::GUID).cast(),
                mem::size_of::<windows_sys::core::GUID>() as u32,
                (&mut f as *mut F).cast(),
                mem::size_of::<F>() as u32,
                &mut bytes,
                std::ptr::null_mut(),
                None,
            )
        };
        if ret == SOCKET_ERROR {
            return Err(io::Error::from_raw_os_error(last_wsa_code()));
        }
        Ok(f)
    }
    let loaded = Ext {
        accept_ex: load(s, &WSAID_ACCEPTEX)?,
        connect_ex: load(s, &WSAID_CONNECTEX)?,
        sockaddrs: load(s, &WSAID_GETACCEPTEXSOCKADDRS)?,
    };
    if loaded.accept_ex.is_none() || loaded.connect_ex.is_none() || loaded.sockaddrs.is_none() {
        return Err(io::Error::other(
            "Winsock lacks AcceptEx, ConnectEx or GetAcceptExSockaddrs",
        ));
    }
    let _ = EXT.set(loaded);
    Ok(EXT.get().expect("just set"))
}

/// The error code of a failed extension load.
fn ext_code(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(WSAEINVAL)
}

/// `AcceptEx`: accepts a connection of `listener` into `accept`, the addresses into `addrs`.
///
/// # Safety
///
/// `addrs` and `ov` must stay valid and unmoved, and `accept` open, until the I/O's packet
/// has been dequeued (or the call failed at once).
pub(super) unsafe fn accept_ex(
    listener: SOCKET,
    accept: SOCKET,
    addrs: *mut AcceptAddrs,
    ov: *mut OVERLAPPED,
) -> Started {
    let accept_ex = match ext(listener) {
        Ok(e) => e.accept_ex.expect("checked when loaded"),
        Err(e) => return Started::Failed(ext_code(&e)),
    };
    let mut bytes = 0u32;
    // SAFETY: both sockets are live; the output buffer and the OVERLAPPED outlive the I/O, as
    // the caller promises; no receive data.
    let ok = unsafe {
        accept_ex(
            listener,
            accept,
            addrs.cast(),
            0,
            ACCEPT_ADDR_LEN as u32,
            ACCEPT_ADDR_LEN as u32,
            &mut bytes,
            ov,
        )
    } != 0;
    Started::of(ok, bytes)
}

/// `ConnectEx`: connects `s`, which must be bound, to `target`.
///
/// # Safety
///
/// `target` and `ov` must stay valid and unmoved until the I/O's packet has been dequeued (or
/// the call failed at once).
pub(super) unsafe fn connect_ex(
    s: SOCKET,
    target: &socket2::SockAddr,
    ov: *mut OVERLAPPED,
) -> Started {
    let connect_ex = match ext(s) {
        Ok(e) => e.connect_ex.expect("checked when loaded"),
        Err(e) => return Started::Failed(ext_code(&e)),
    };
    let mut bytes = 0u32;
    // SAFETY: the socket is live; the address and the OVERLAPPED outlive the I/O, as the
    // caller promises; no data is sent.
    let ok = unsafe {
        connect_ex(
            s,
            target.as_ptr().cast::<SOCKADDR>(),
            target.len(),
            std::ptr::null(),
            0,
            &mut bytes,
            ov,
        )
    } != 0;
    Started::of(ok, bytes)
}

/// `WSARecv` into `wsabuf`, with `flags` in and out.
///
/// # Safety
///
/// The bytes `wsabuf` points at, `flags` and `ov` must stay valid and unmoved, and be touched
/// by nobody else, until the I/O's packet has been dequeued (or the call failed at once).
/// `WSARecv` copies the `WSABUF` itself.
pub(super) unsafe fn wsa_recv(
    s: SOCKET,
    wsabuf: WSABUF,
    flags: *mut u32,
    ov: *mut OVERLAPPED,
) -> Started {
    // SAFETY: as the caller promises.
    unsafe { *flags = 0 };
    // SAFETY: as the caller promises; the WSABUF is a live local, read during the call; no
    // byte count (see `Started::of_overlapped`).
    let ret = unsafe { WSARecv(s, &wsabuf, 1, std::ptr::null_mut(), flags, ov, None) };
    // SAFETY: `ov` is the call's, valid as the caller promises.
    unsafe { Started::of_overlapped(ret == 0, ov) }
}

/// `WSASend` of the bytes `wsabufs` point at, in order.
///
/// # Safety
///
/// Those bytes and `ov` must stay valid and unmoved, and unwritten, until the I/O's packet has
/// been dequeued (or the call failed at once). `WSASend` copies the `WSABUF` array itself.
pub(super) unsafe fn wsa_send(s: SOCKET, wsabufs: &[WSABUF], ov: *mut OVERLAPPED) -> Started {
    // SAFETY: as the caller promises; the array is borrowed for the call; no byte count (see
    // `Started::of_overlapped`).
    let ret = unsafe {
        WSASend(
            s,
            wsabufs.as_ptr(),
            wsabufs.len() as u32,
            std::ptr::null_mut(),
            0,
            ov,
            None,
        )
    };
    // SAFETY: `ov` is the call's, valid as the caller promises.
    unsafe { Started::of_overlapped(ret == 0, ov) }
}

/// `WSARecvFrom` of one datagram into `wsabuf`, its sender into `from` (`from_len` in and out),
/// with `flags` in and out.
///
/// # Safety
///
/// The bytes `wsabuf` points at, `flags`, `from`, `from_len` and `ov` must stay valid and
/// unmoved, and be touched by nobody else, until the I/O's packet has been dequeued (or the call
/// failed at once).
pub(super) unsafe fn wsa_recv_from(
    s: SOCKET,
    wsabuf: WSABUF,
    flags: *mut u32,
    from: *mut SOCKADDR_STORAGE,
    from_len: *mut i32,
    ov: *mut OVERLAPPED,
) -> Started {
    // SAFETY: as the caller promises.
    unsafe {
        *flags = 0;
        *from_len = mem::size_of::<SOCKADDR_STORAGE>() as i32;
    }
    // SAFETY: as the caller promises; the WSABUF is a live local, read during the call; no
    // byte count (see `Started::of_overlapped`).
    let ret = unsafe {
        WSARecvFrom(
            s,
            &wsabuf,
            1,
            std::ptr::null_mut(),
            flags,
            from.cast(),
            from_len,
            ov,
            None,
        )
    };
    // SAFETY: `ov` is the call's, valid as the caller promises.
    unsafe { Started::of_overlapped(ret == 0, ov) }
}

/// `WSASendTo` of the bytes `wsabuf` points at as one datagram to `to`.
///
/// # Safety
///
/// Those bytes, `to` and `ov` must stay valid and unmoved, and unwritten, until the I/O's packet
/// has been dequeued (or the call failed at once).
pub(super) unsafe fn wsa_send_to(
    s: SOCKET,
    wsabuf: WSABUF,
    to: &socket2::SockAddr,
    ov: *mut OVERLAPPED,
) -> Started {
    // SAFETY: as the caller promises; the WSABUF is a live local, read during the call; no
    // byte count (see `Started::of_overlapped`).
    let ret = unsafe {
        WSASendTo(
            s,
            &wsabuf,
            1,
            std::ptr::null_mut(),
            0,
            to.as_ptr().cast(),
            to.len(),
            ov,
            None,
        )
    };
    // SAFETY: `ov` is the call's, valid as the caller promises.
    unsafe { Started::of_overlapped(ret == 0, ov) }
}

/// The sender a finished `WSARecvFrom` wrote.
pub(super) fn datagram_sender(from: &SOCKADDR_STORAGE, len: i32) -> Option<SocketAddr> {
    let len = usize::try_from(len)
        .ok()?
        .min(mem::size_of::<SOCKADDR_STORAGE>());
    // SAFETY: SOCKADDR_STORAGE is plain old data; its bytes are read through a shared borrow
    // that lives for this call, within its size.
    let bytes =
        unsafe { std::slice::from_raw_parts((from as *const SOCKADDR_STORAGE).cast::<u8>(), len) };
    parse_sockaddr(bytes)
}

/// A plain `recv` of at most `len` bytes into `ptr`, on a socket that is readable (so it does
/// not wait): bytes received (0: end of stream), or the error code.
///
/// # Safety
///
/// `ptr` must be valid for writes of `len` bytes, touched by nobody else during the call.
pub(super) unsafe fn recv_now(s: SOCKET, ptr: *mut u8, len: usize) -> Result<usize, i32> {
    let len = len.min(i32::MAX as usize) as i32;
    // SAFETY: as the caller promises.
    let n = unsafe { recv(s, ptr, len, 0) };
    usize::try_from(n).map_err(|_| last_wsa_code())
}

/// Makes an accepted socket ready for use (`SO_UPDATE_ACCEPT_CONTEXT`).
pub(super) fn update_accept_context(accepted: SOCKET, listener: SOCKET) -> Result<(), i32> {
    // SAFETY: both sockets are live; the option value is the listener's SOCKET, read during
    // the call.
    let ret = unsafe {
        setsockopt(
            accepted,
            SOL_SOCKET,
            SO_UPDATE_ACCEPT_CONTEXT,
            (&listener as *const SOCKET).cast(),
            mem::size_of::<SOCKET>() as i32,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(last_wsa_code())
    }
}

/// Makes a connected socket ready for use (`SO_UPDATE_CONNECT_CONTEXT`).
pub(super) fn update_connect_context(s: SOCKET) -> Result<(), i32> {
    // SAFETY: the socket is live; no option value.
    let ret = unsafe {
        setsockopt(
            s,
            SOL_SOCKET,
            SO_UPDATE_CONNECT_CONTEXT,
            std::ptr::null(),
            0,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(last_wsa_code())
    }
}

/// The peer address in the output of a finished `AcceptEx` (`GetAcceptExSockaddrs`).
pub(super) fn accepted_peer(addrs: &AcceptAddrs) -> Option<SocketAddr> {
    let sockaddrs = EXT.get()?.sockaddrs?;
    let (mut local, mut remote): (*mut SOCKADDR, *mut SOCKADDR) =
        (std::ptr::null_mut(), std::ptr::null_mut());
    let (mut local_len, mut remote_len) = (0i32, 0i32);
    // SAFETY: the buffer is the one AcceptEx filled, with the same lengths, borrowed for the
    // call; the function writes pointers into it and their lengths into live locals.
    unsafe {
        sockaddrs(
            addrs.as_ptr().cast(),
            0,
            ACCEPT_ADDR_LEN as u32,
            ACCEPT_ADDR_LEN as u32,
            &mut local,
            &mut local_len,
            &mut remote,
            &mut remote_len,
        )
    };
    let base = addrs.as_ptr() as usize;
    let at = (remote as usize).checked_sub(base)?;
    let len = usize::try_from(remote_len).ok()?;
    parse_sockaddr(addrs.get(at..at.checked_add(len)?)?)
}

/// A socket address from its C form (as GetAcceptExSockaddrs returns it).
fn parse_sockaddr(b: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(b.get(0..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
    match family {
        2 => {
            let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        23 => {
            let flow = u32::from_ne_bytes(b.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(b.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flow,
                scope,
            )))
        }
        _ => None,
    }
}

/// Whether `s` is a listening socket (`SO_ACCEPTCONN`).
pub(super) fn listening(s: SOCKET) -> bool {
    let mut on: i32 = 0;
    let mut len = mem::size_of::<i32>() as i32;
    // SAFETY: getsockopt writes at most `len` bytes into a live local i32 and its length into
    // a live local; the socket is held by the operation.
    let ret = unsafe {
        getsockopt(
            s,
            SOL_SOCKET,
            SO_ACCEPTCONN,
            (&mut on as *mut i32).cast(),
            &mut len,
        )
    };
    ret == 0 && on != 0
}

/// Whether a receive on `s` would not wait: bytes, the end of the stream or an error are there.
pub(super) fn readable(s: SOCKET) -> bool {
    let mut fd = WSAPOLLFD {
        fd: s,
        events: POLLRDNORM,
        revents: 0,
    };
    // SAFETY: one live WSAPOLLFD; a zero timeout never waits.
    let n = unsafe { WSAPoll(&mut fd, 1, 0) };
    n > 0 && fd.revents & (POLLRDNORM | POLLHUP | POLLERR) != 0
}
