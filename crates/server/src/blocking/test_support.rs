//! Helpers of the blocking models' tests: a connected pair of sockets, a connection served in a
//! named thread, and (on Linux) waiting until a named thread is blocked in a system call.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
#[cfg(target_os = "linux")]
use std::time::{Duration, Instant};

use super::{serve_conn, ConnCtx, Registry};
use crate::summary::WorkerStats;

/// A connected pair on loopback: (client, server).
pub(super) fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// Serves `server` in a thread called `name` (at most 15 bytes, so that it is the thread's
/// whole name in `/proc`).
pub(super) fn serve_in_thread(
    name: &str,
    reg: &Arc<Registry>,
    server: TcpStream,
    buffer_size: usize,
) -> std::thread::JoinHandle<WorkerStats> {
    let reg = reg.clone();
    let named = std::thread::Builder::new().name(name.to_string());
    named
        .spawn(move || {
            let server = Arc::new(server);
            let token = reg.register(&server).unwrap();
            let ctx = ConnCtx {
                registry: &reg,
                buffer_size,
                log_messages: false,
                worker: 0,
                conn: token.id(),
                peer: None,
                idle_timeout: None,
                write_timeout: None,
                tls: None,
                websocket: None,
            };
            serve_conn(&server, &ctx)
        })
        .unwrap()
}

/// A blocking receive's system calls.
#[cfg(target_os = "linux")]
pub(super) const RECEIVE: [libc::c_long; 3] =
    [libc::SYS_recvfrom, libc::SYS_recvmsg, libc::SYS_read];
/// A blocking send's system calls.
#[cfg(target_os = "linux")]
pub(super) const SEND: [libc::c_long; 3] = [libc::SYS_sendto, libc::SYS_sendmsg, libc::SYS_write];
/// A blocking accept's system calls.
#[cfg(target_os = "linux")]
pub(super) const ACCEPT: [libc::c_long; 2] = [libc::SYS_accept4, libc::SYS_accept];

/// Waits (at most 5 s) until this process's thread called `name` is blocked in one of the
/// system calls `calls`: `/proc/self/task/TID/syscall` names one only while the thread
/// sleeps in it.
#[cfg(target_os = "linux")]
#[track_caller]
pub(super) fn wait_until_blocked_in(name: &str, calls: &[libc::c_long]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut seen = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() != name {
                continue;
            }
            let syscall = std::fs::read_to_string(task.path().join("syscall")).unwrap_or_default();
            let number = syscall.split_whitespace().next().unwrap_or("");
            if number
                .parse::<libc::c_long>()
                .is_ok_and(|n| calls.contains(&n))
            {
                return;
            }
            seen.push(syscall);
        }
        assert!(
            Instant::now() < deadline,
            "thread {name} not blocked in {calls:?} within 5 s: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
