//! The Windows-only part of [`os`](crate::os) (re-exported there).

use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use std::os::windows::io::AsRawSocket;
use windows_sys::core::BOOL;

use windows_sys::Win32::Foundation::{ERROR_NOT_FOUND, FILETIME, HANDLE};
use windows_sys::Win32::System::Console::{
    SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT, CTRL_C_EVENT,
};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetCurrentThread, GetProcessTimes, GetThreadTimes,
};
use windows_sys::Win32::System::IO::CancelIoEx;

/// Cancels every I/O in progress on `socket`, from any thread (`CancelIoEx` with no
/// `OVERLAPPED`): a blocking `send` or `recv` another thread is blocked in fails at once with
/// `WSA_OPERATION_ABORTED`. What `shutdown(SHUT_RDWR)` does to a blocked call on Linux, which
/// `shutdown(SD_BOTH)` does not do on Windows. `Ok` also when nothing was in progress.
pub fn cancel_io(socket: &impl AsRawSocket) -> io::Result<()> {
    // SAFETY: the socket is open (borrowed for the call); CancelIoEx with a null OVERLAPPED
    // only asks the system to end what is in progress on it and dereferences nothing of ours.
    let ok = unsafe { CancelIoEx(socket.as_raw_socket() as HANDLE, std::ptr::null()) };
    if ok == 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(ERROR_NOT_FOUND as i32) {
            return Err(e);
        }
    }
    Ok(())
}

/// Kernel plus user time of a `GetThreadTimes`/`GetProcessTimes` pair (100 ns units).
fn cpu_of(kernel: FILETIME, user: FILETIME) -> Duration {
    let ticks = |t: FILETIME| (u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime);
    let total = ticks(kernel) + ticks(user);
    Duration::from_secs(total / 10_000_000) + Duration::from_nanos(total % 10_000_000 * 100)
}

/// CPU time (user + kernel) used so far by the calling thread (`GetThreadTimes`): Windows'
/// `/proc/thread-self/stat`.
pub fn thread_cpu_time() -> io::Result<Duration> {
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: the pseudo-handle of the current thread is always valid; the four pointers are
    // to live, writable FILETIMEs.
    let ok = unsafe {
        GetThreadTimes(
            GetCurrentThread(),
            &mut created,
            &mut exited,
            &mut kernel,
            &mut user,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cpu_of(kernel, user))
}

/// CPU time (user + kernel) used so far by the whole process (`GetProcessTimes`).
pub fn process_cpu_time() -> io::Result<Duration> {
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: the pseudo-handle of the current process is always valid; the four pointers
    // are to live, writable FILETIMEs.
    let ok = unsafe {
        GetProcessTimes(
            GetCurrentProcess(),
            &mut created,
            &mut exited,
            &mut kernel,
            &mut user,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cpu_of(kernel, user))
}

static CONSOLE_CTRL: OnceLock<Box<dyn Fn() + Send + Sync>> = OnceLock::new();

unsafe extern "system" fn console_ctrl(event: u32) -> BOOL {
    match event {
        CTRL_C_EVENT | CTRL_BREAK_EVENT | CTRL_CLOSE_EVENT => match CONSOLE_CTRL.get() {
            Some(f) => {
                f();
                1
            }
            None => 0,
        },
        _ => 0,
    }
}

/// Calls `f` (on a thread of the system's) when the console sends Ctrl-C, Ctrl-Break or
/// close: Windows' SIGINT/SIGTERM, for a graceful shutdown. The process is not ended for
/// those events while `f` is installed. Once per process.
///
/// # Errors
///
/// A second call, or the system refusing the handler.
pub fn on_console_ctrl(f: impl Fn() + Send + Sync + 'static) -> io::Result<()> {
    CONSOLE_CTRL
        .set(Box::new(f))
        .map_err(|_| io::Error::other("a console control handler is already installed"))?;
    // SAFETY: `console_ctrl` is a plain function valid for the whole process, and it only
    // reads a `OnceLock` set above.
    if unsafe { SetConsoleCtrlHandler(Some(console_ctrl), 1) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
