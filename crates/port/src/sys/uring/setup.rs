//! Setting the io_uring driver up: building the ring with the strongest flags the kernel takes,
//! checking the features and opcodes it needs (and saying why io_uring is unavailable when they
//! are missing), and probing what multishot receives into the pool may use on this kernel.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use crate::backend::{Backend, UringUnavailable};
use crate::op::DGRAM_HEADROOM;
use crate::port::PortError;
use crate::sys::dgram::DgramHdr;
use crate::sys::pool::{BufPool, BGID};
use crate::sys::Waker;
use crate::token::{PROBE_CANCEL, PROBE_RECV};

use super::{note, recv_multi_entry, sys, Alarm, Feature, UringDriver};

/// Classifies a failed `io_uring_setup`.
fn classify(err: io::Error) -> UringUnavailable {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let (cause, remedy) = match err.raw_os_error() {
        Some(libc::ENOSYS) => (
            "the kernel has no io_uring (ENOSYS: older than 5.1, or built without CONFIG_IO_URING)".to_string(),
            "use --backend epoll or a newer kernel".to_string(),
        ),
        Some(libc::EPERM) if disabled == 2 => (
            "disabled by the sysctl kernel.io_uring_disabled=2 (EPERM)".to_string(),
            "set it to 0 (sysctl -w kernel.io_uring_disabled=0) or use --backend epoll".to_string(),
        ),
        Some(libc::EPERM) if disabled == 1 => (
            "restricted by the sysctl kernel.io_uring_disabled=1 to members of kernel.io_uring_group (EPERM)".to_string(),
            "run as a member of that group, set the sysctl to 0, or use --backend epoll".to_string(),
        ),
        Some(libc::EPERM) => (
            "blocked by a seccomp filter (EPERM), as Docker's default profile does".to_string(),
            "allow io_uring_setup/io_uring_enter/io_uring_register in the profile (docker run --security-opt seccomp=unconfined) or use --backend epoll".to_string(),
        ),
        Some(libc::ENOMEM) => (
            "the ring's memory could not be locked (ENOMEM): the locked-memory limit is too low".to_string(),
            "raise it (ulimit -l, or LimitMEMLOCK= in a systemd unit), use fewer --workers, or use --backend epoll".to_string(),
        ),
        _ => (
            format!("io_uring_setup failed: {err}"),
            "use --backend epoll".to_string(),
        ),
    };
    UringUnavailable {
        backend: Backend::Uring,
        cause,
        remedy,
        source: Some(err),
    }
}

/// The opcodes ringport needs, with their names for error messages.
const NEEDED: [(u8, &str); 11] = [
    (opcode::Nop::CODE, "NOP"),
    (opcode::Accept::CODE, "ACCEPT"),
    (opcode::Recv::CODE, "RECV"),
    (opcode::Send::CODE, "SEND"),
    (opcode::Connect::CODE, "CONNECT"),
    (opcode::Shutdown::CODE, "SHUTDOWN"),
    (opcode::Close::CODE, "CLOSE"),
    (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    (opcode::Read::CODE, "READ"),
    (opcode::Timeout::CODE, "TIMEOUT"),
    (opcode::TimeoutUpdate::CODE, "TIMEOUT_REMOVE"),
];

impl UringDriver {
    /// A ring with room for `entries` submissions (see [`new`](UringDriver::new)) and its
    /// waker; [`PortError::Io`] when the waker's eventfd cannot be created.
    pub fn open(entries: u32) -> Result<UringDriver, PortError> {
        let wake = Arc::new(Waker::new(false).map_err(PortError::Io)?);
        UringDriver::new(entries, wake).map_err(PortError::UringUnavailable)
    }

    /// A ring with room for `entries` submissions, the strongest setup flags the kernel takes,
    /// and every opcode ringport needs; `wake` is a blocking eventfd.
    fn new(entries: u32, wake: Arc<Waker>) -> Result<UringDriver, UringUnavailable> {
        type Setup = fn(&mut io_uring::Builder);
        let attempts: [(&'static str, Setup); 3] = [
            ("single_issuer,coop_taskrun,defer_taskrun", |b| {
                b.setup_single_issuer()
                    .setup_coop_taskrun()
                    .setup_taskrun_flag()
                    .setup_defer_taskrun();
            }),
            ("coop_taskrun", |b| {
                b.setup_coop_taskrun().setup_taskrun_flag();
            }),
            ("none", |_| {}),
        ];
        let mut last_err = None;
        let mut built = None;
        for (name, setup) in attempts {
            let mut builder = IoUring::builder();
            builder.setup_cqsize(entries.saturating_mul(4));
            setup(&mut builder);
            match builder.build(entries) {
                Ok(ring) => {
                    built = Some((ring, name));
                    break;
                }
                // EINVAL: a flag this kernel does not know; try weaker ones.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_err = Some(e),
                Err(e) => return Err(classify(e)),
            }
        }
        let Some((ring, flags)) = built else {
            return Err(classify(
                last_err.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL)),
            ));
        };
        let params = ring.params();
        if !params.is_feature_ext_arg() || !params.is_feature_nodrop() {
            return Err(UringUnavailable {
                backend: Backend::Uring,
                cause: "the kernel's io_uring lacks EXT_ARG or NODROP (needs 5.11 or newer)".into(),
                remedy: "use --backend epoll or a newer kernel".into(),
                source: None,
            });
        }
        let mut probe = Probe::new();
        if let Err(e) = ring.submitter().register_probe(&mut probe) {
            return Err(UringUnavailable {
                backend: Backend::Uring,
                cause: format!("the kernel cannot list its io_uring opcodes ({e})"),
                remedy: "use --backend epoll or a kernel of 5.11 or newer".into(),
                source: Some(e),
            });
        }
        let missing: Vec<&str> = NEEDED
            .iter()
            .filter(|(code, _)| !probe.is_supported(*code))
            .map(|(_, name)| *name)
            .collect();
        if !missing.is_empty() {
            return Err(UringUnavailable {
                backend: Backend::Uring,
                cause: format!("the kernel's io_uring lacks {}", missing.join(", ")),
                remedy: "use --backend epoll or a kernel of 5.11 or newer".into(),
                source: None,
            });
        }
        let silent_updates = params.is_feature_skip_cqe_on_success();
        let ring_index = match sys::register_ring(&ring) {
            Ok(index) => Some(index),
            Err(e) => {
                tracing::debug!(
                    "the kernel refused to register the ring ({e}); entered by its descriptor"
                );
                None
            }
        };
        let mut driver = UringDriver {
            ring,
            wake,
            wake_buf: Box::new(0),
            wake_armed: false,
            flags,
            backlog: Vec::new(),
            late: Vec::with_capacity(256),
            mshot_len: 0,
            bundles: false,
            dgram_multi: false,
            spare_msgs: Vec::new(),
            spare_dgrams: Vec::new(),
            accept_multi: Feature::Unknown,
            accept_watch: false,
            accept_cancels: Vec::new(),
            alarm: Box::new(Alarm {
                at: None,
                ts: types::Timespec::new(),
            }),
            silent_updates,
            ring_index,
            direct: None,
            orphans: Vec::new(),
            refuse_direct: false,
        };
        driver.arm_wake().map_err(classify)?;
        Ok(driver)
    }

    /// Registers `pool`'s provided-buffer ring with this io_uring, and probes what multishot
    /// receives may use on this kernel: byte limits, then bundles.
    pub(super) fn attach_ring(&mut self, pool: &mut BufPool) -> io::Result<()> {
        pool.attach_ring(&self.ring.submitter())?;
        let size = u32::try_from(pool.buf_size()).unwrap_or(u32::MAX);
        self.mshot_len = match self.mshot_cap(size, pool) {
            Ok(true) => size,
            _ => 0,
        };
        self.bundles = self.mshot_len > 0
            && size <= u32::MAX / 4
            && matches!(self.bundle_probe(size, pool), Ok(true));
        self.dgram_multi = matches!(self.dgram_probe(pool), Ok(true));
        Ok(())
    }

    /// Whether the kernel takes multishot `recvmsg` into the ring (Linux 6.0+; older kernels
    /// refuse it with `EINVAL`): with a 4-byte datagram waiting on a local datagram pair, the
    /// receive's first completion must hold the account, the address field and the datagram.
    fn dgram_probe(&mut self, pool: &mut BufPool) -> io::Result<bool> {
        if pool.buf_size() <= DGRAM_HEADROOM + 4 {
            return Ok(false);
        }
        let mut hdr = Box::<DgramHdr>::default();
        let msg = hdr.for_recv_multi();
        let mut first = None;
        self.probe_recv(
            libc::SOCK_DGRAM,
            4,
            |fd| {
                opcode::RecvMsgMulti::new(types::Fd(fd), msg, BGID)
                    .flags(libc::MSG_TRUNC as u32)
                    .build()
            },
            pool,
            |res| {
                first.get_or_insert(res);
            },
        )?;
        drop(hdr);
        Ok(first == Some((DGRAM_HEADROOM + 4) as i32))
    }

    /// Whether a multishot bundle receive honours its byte limits (Linux 6.16+; bundles alone
    /// are 6.10+): with four buffers' worth of bytes waiting on a local socket pair, a bundle
    /// capped and limited to two buffers' worth must take exactly that, in one completion
    /// holding more than one buffer, and end. A kernel that ignores the cap would let one
    /// completion take every buffer the bytes fill, past the bound a connection may hold.
    fn bundle_probe(&mut self, size: u32, pool: &mut BufPool) -> io::Result<bool> {
        let total = 2 * size;
        let mut results = [0i32; 4];
        let mut n = 0;
        let ended = self.probe_recv(
            libc::SOCK_STREAM,
            4 * size as usize,
            |fd| recv_multi_entry(fd, total, total, true),
            pool,
            |res| {
                if n < results.len() {
                    results[n] = res;
                }
                n += 1;
            },
        )?;
        Ok(ended && n == 1 && results[0] == total as i32)
    }

    /// Whether the kernel takes byte limits on multishot receives (Linux 6.16+: `sqe->len` per
    /// invocation, `sqe->optlen` in total; older kernels refuse them with `EINVAL`): on a local
    /// socket pair holding 32 bytes, a multishot receive limited to 16 in total must end with
    /// its first chunk (which takes all 32: the kernel ends the receive once the limit is
    /// reached, it does not shorten a chunk to it). Without the limit, a multishot receive
    /// retries up to 32 times per wake-up, taking a buffer each time, before its owner can
    /// cancel it.
    fn mshot_cap(&mut self, cap: u32, pool: &mut BufPool) -> io::Result<bool> {
        let mut first = None;
        let mut chunks = 0;
        let ended = self.probe_recv(
            libc::SOCK_STREAM,
            32,
            |fd| recv_multi_entry(fd, cap.max(16), 16, false),
            pool,
            |res| {
                first.get_or_insert(res);
                chunks += 1;
            },
        )?;
        Ok(ended && chunks == 1 && first.is_some_and(|r| r > 0))
    }

    /// Runs one multishot receive probe: writes `bytes` bytes into a fresh local socket pair of
    /// type `kind` (one datagram for `SOCK_DGRAM`),
    /// submits the receive `entry` builds for the pair's reading end and a cancellation of it,
    /// and calls `chunk` with the result of every completion of the receive, giving the pool
    /// buffers back. Returns whether the receive ended by itself (its first completion without
    /// `IORING_CQE_F_MORE` was not the cancellation's `ECANCELED`).
    fn probe_recv(
        &mut self,
        kind: libc::c_int,
        bytes: usize,
        entry: impl FnOnce(RawFd) -> squeue::Entry,
        pool: &mut BufPool,
        mut chunk: impl FnMut(i32),
    ) -> io::Result<bool> {
        let pair = sys::local_pair(kind)?;
        let data = vec![0u8; bytes];
        // Non-blocking: where the pair cannot hold the bytes (large buffers), the probe cannot
        // tell, and says no rather than wait.
        if sys::write(&pair[1], &data).ok() != Some(bytes) {
            return Ok(false);
        }
        let entry = entry(pair[0].as_raw_fd()).user_data(PROBE_RECV);
        let cancel = opcode::AsyncCancel::new(PROBE_RECV)
            .build()
            .user_data(PROBE_CANCEL);
        self.push_entry(&entry)?;
        self.push_entry(&cancel)?;
        let mut ended: Option<bool> = None;
        let mut seen = 0;
        while seen < 2 {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err(e),
            }
            for cqe in self.ring.completion() {
                let entry: cqueue::Entry = cqe;
                match entry.user_data() {
                    PROBE_RECV => {
                        let res = entry.result();
                        if let Some(first) = cqueue::buffer_select(entry.flags()) {
                            // Back into the ring, as the pool expects.
                            let len = usize::try_from(res).unwrap_or(0);
                            let bundle = pool.bundle(first, len);
                            for k in 0..bundle.parts {
                                let (id, _) = pool.bundle_part(&bundle, k);
                                let buf = pool.hand_out(id, 0, true);
                                pool.give_back(buf);
                            }
                        }
                        if res != -libc::ECANCELED {
                            chunk(res);
                        }
                        if !cqueue::more(entry.flags()) {
                            ended.get_or_insert(res > 0);
                            seen += 1;
                        }
                    }
                    PROBE_CANCEL => seen += 1,
                    _ => {
                        if let Some(c) = note(&mut self.alarm.at, &mut self.wake_armed, &entry) {
                            self.backlog.push(c);
                        }
                    }
                }
            }
        }
        drop(pair);
        Ok(ended.unwrap_or(false))
    }
}
