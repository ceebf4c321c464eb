//! Datagram operations on Linux: the message header, iovec and address a `recvmsg` or a
//! `sendmsg` of one datagram reads or fills (io_uring reads them while the operation is in
//! flight, so they live boxed in its state; epoll uses one on the stack of each attempt), and
//! the account a datagram received into a pool buffer starts with.
//!
//! # A datagram in a pool buffer
//!
//! [`Op::RecvFromMulti`](crate::Op::RecvFromMulti) receives each datagram into a pool buffer
//! laid out as io_uring's multishot `recvmsg` fills it: an `io_uring_recvmsg_out` (the sender's
//! address length, the control length, the datagram's whole length, the message flags), the
//! sender's address in a field of [`NAME_ROOM`] bytes, the control messages in a field of
//! [`DGRAM_CONTROL_ROOM`] bytes (a coalesced receive's `UDP_GRO` segment size), then the
//! datagram. The epoll backend's `recvmmsg` writes the same layout ([`write_account`]), so that
//! one reader ([`read_account`]) serves both.
//!
//! # Segments
//!
//! A socket with `UDP_GRO` on may receive several datagrams of one sender at once, with a
//! control message giving their size ([`gro_segment`]); a send with a `UDP_SEGMENT` control
//! message ([`Control::segment`]) is split by the system into datagrams of that size.

use std::mem;
use std::net::SocketAddr;

use crate::op::{DGRAM_CONTROL_ROOM, DGRAM_HEADROOM};
use crate::sys::sockaddr::SockAddrBuf;

/// The size of io_uring's `io_uring_recvmsg_out`: four `u32`s.
const ACCOUNT: usize = 16;
/// The room for the sender's address in a pool buffer: an IPv6 address (an IPv4 one is shorter).
pub(crate) const NAME_ROOM: usize = mem::size_of::<libc::sockaddr_in6>();
const _: () = assert!(ACCOUNT + NAME_ROOM + DGRAM_CONTROL_ROOM == DGRAM_HEADROOM);
/// A control message's header, as `CMSG_LEN(0)` counts it (`cmsghdr` is padded to its
/// alignment, that of `size_t`).
const CMSG_HDR: usize = mem::size_of::<libc::cmsghdr>();
/// `CMSG_ALIGN`: control messages start at multiples of `size_t`.
const fn cmsg_align(n: usize) -> usize {
    let a = mem::size_of::<usize>();
    (n + a - 1) & !(a - 1)
}
// The room holds one control message carrying an `int` (`UDP_GRO`) or a `u16` (`UDP_SEGMENT`).
const _: () = assert!(cmsg_align(CMSG_HDR + 4) <= DGRAM_CONTROL_ROOM);

/// Room for one control message, aligned as the kernel reads and writes them.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct Control([u8; DGRAM_CONTROL_ROOM]);

impl Control {
    pub const EMPTY: Control = Control([0; DGRAM_CONTROL_ROOM]);

    /// Writes a `UDP_SEGMENT` control message of `segment` bytes; returns its length (the
    /// header's `msg_controllen`).
    pub fn segment(&mut self, segment: u16) -> usize {
        self.0 = [0; DGRAM_CONTROL_ROOM];
        let len = CMSG_HDR + mem::size_of::<u16>();
        self.0[..mem::size_of::<usize>()].copy_from_slice(&len.to_ne_bytes());
        let level = mem::size_of::<usize>();
        self.0[level..level + 4].copy_from_slice(&libc::SOL_UDP.to_ne_bytes());
        self.0[level + 4..level + 8].copy_from_slice(&libc::UDP_SEGMENT.to_ne_bytes());
        self.0[CMSG_HDR..CMSG_HDR + 2].copy_from_slice(&segment.to_ne_bytes());
        cmsg_align(len)
    }

    pub fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        self.0.as_mut_ptr().cast()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The segment size a coalesced receive's control messages `control` give (`UDP_GRO`), if
/// they hold several datagrams: 0 when there is no such message, or when it says the datagram
/// is one segment (`held` bytes, no longer than the segment).
pub(crate) fn gro_segment(control: &[u8], held: usize) -> u16 {
    let word = mem::size_of::<usize>();
    let mut at = 0;
    while at + CMSG_HDR <= control.len() {
        let len = usize::from_ne_bytes(control[at..at + word].try_into().expect("a word"));
        let int = |i: usize| i32::from_ne_bytes(control[i..i + 4].try_into().expect("four bytes"));
        if len < CMSG_HDR || at + len > control.len() {
            break;
        }
        if int(at + word) == libc::SOL_UDP
            && int(at + word + 4) == libc::UDP_GRO
            && len >= CMSG_HDR + 4
        {
            let segment = int(at + CMSG_HDR);
            return match u16::try_from(segment) {
                Ok(s) if s > 0 && (s as usize) < held => s,
                _ => 0,
            };
        }
        at += cmsg_align(len);
    }
    0
}

/// What a datagram receive or send hands the kernel: a message header pointing at one iovec,
/// at a socket address and at room for a control message. Boxed by whoever lends it, so that
/// the pointers between its fields stay valid.
pub(crate) struct DgramHdr {
    pub hdr: libc::msghdr,
    pub iov: libc::iovec,
    pub addr: SockAddrBuf,
    pub control: Control,
}

impl Default for DgramHdr {
    fn default() -> DgramHdr {
        DgramHdr {
            // SAFETY: msghdr is plain old data for which all-zero bytes (null pointers, zero
            // lengths) are valid.
            hdr: unsafe { mem::zeroed() },
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            addr: SockAddrBuf::empty(),
            control: Control::EMPTY,
        }
    }
}

impl std::fmt::Debug for DgramHdr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DgramHdr({:?})", self.addr)
    }
}

impl DgramHdr {
    /// Points the header at the spare capacity of `buf`, at empty address storage and at room
    /// for a control message (a coalesced receive's segment size), for a receive; returns the
    /// header. The header must not move until the receive is over.
    pub fn for_recv(&mut self, buf: &mut Vec<u8>) -> *mut libc::msghdr {
        let spare = buf.spare_capacity_mut();
        self.iov = libc::iovec {
            iov_base: spare.as_mut_ptr().cast(),
            iov_len: spare.len(),
        };
        self.addr = SockAddrBuf::empty();
        self.point();
        self.control = Control::EMPTY;
        self.hdr.msg_control = self.control.as_mut_ptr();
        self.hdr.msg_controllen = DGRAM_CONTROL_ROOM as _;
        &mut self.hdr
    }

    /// Points the header at the bytes of `buf` and at the address `to`, for a send; returns the
    /// header. The header must not move until the send is over.
    pub fn for_send(&mut self, buf: &[u8], to: &SocketAddr) -> *const libc::msghdr {
        self.for_send_raw(buf.as_ptr(), buf.len(), to, 0)
    }

    /// A header for a multishot `recvmsg` into pool buffers: no iovec (the kernel picks the
    /// buffer), room for an IPv6 sender and for one control message. The header must not move
    /// until the receive is over.
    pub fn for_recv_multi(&mut self) -> *const libc::msghdr {
        // SAFETY: msghdr is plain old data; all-zero is valid (null pointers, zero lengths).
        self.hdr = unsafe { mem::zeroed() };
        self.hdr.msg_namelen = NAME_ROOM as libc::socklen_t;
        self.hdr.msg_controllen = DGRAM_CONTROL_ROOM as _;
        &self.hdr
    }

    /// Points the header at `len` bytes at `ptr` (a pool buffer's) and at the address `to`,
    /// for a send (of datagrams of `segment` bytes when not 0: a `UDP_SEGMENT` control
    /// message); returns the header. The header must not move until the send is over, nor the
    /// bytes change.
    pub fn for_send_raw(
        &mut self,
        ptr: *const u8,
        len: usize,
        to: &SocketAddr,
        segment: u16,
    ) -> *const libc::msghdr {
        self.iov = libc::iovec {
            iov_base: ptr.cast_mut().cast(),
            iov_len: len,
        };
        self.addr = SockAddrBuf::from_socket_addr(to);
        self.point();
        if segment > 0 {
            let controllen = self.control.segment(segment);
            self.hdr.msg_control = self.control.as_mut_ptr();
            self.hdr.msg_controllen = controllen as _;
        }
        &self.hdr
    }

    fn point(&mut self) {
        // SAFETY: msghdr is plain old data; zeroing resets the control and flags fields.
        self.hdr = unsafe { mem::zeroed() };
        self.hdr.msg_name = (&mut self.addr.storage as *mut libc::sockaddr_storage).cast();
        self.hdr.msg_namelen = self.addr.len;
        self.hdr.msg_iov = &mut self.iov;
        self.hdr.msg_iovlen = 1;
    }

    /// The sender a finished receive reported (the kernel wrote the address and its length).
    pub fn sender(&self) -> Option<SocketAddr> {
        let mut addr = self.addr;
        addr.len = self.hdr.msg_namelen;
        addr.socket_addr()
    }

    /// The segment size a finished receive's `UDP_GRO` control message gave, or 0 (the caller
    /// compares it with the bytes received: one segment or less is one datagram).
    pub fn segment(&self) -> u16 {
        #[allow(clippy::unnecessary_cast)] // `size_t` with glibc, `socklen_t` with musl
        let len = (self.hdr.msg_controllen as usize).min(DGRAM_CONTROL_ROOM);
        if self.hdr.msg_control.is_null() {
            return 0;
        }
        gro_segment(&self.control.bytes()[..len], usize::MAX)
    }
}

/// Where a datagram received into the pool buffer at `base` goes: its sender's address field,
/// its control messages' field ([`DGRAM_CONTROL_ROOM`] bytes) and the room for the datagram
/// (`size` is the buffer's size, above [`DGRAM_HEADROOM`]).
pub(crate) fn pooled_fields(
    base: *mut u8,
    size: usize,
) -> (*mut libc::c_void, *mut libc::c_void, libc::iovec) {
    let name = base.wrapping_add(ACCOUNT).cast();
    let control = base.wrapping_add(ACCOUNT + NAME_ROOM).cast();
    let iov = libc::iovec {
        iov_base: base.wrapping_add(DGRAM_HEADROOM).cast(),
        iov_len: size.saturating_sub(DGRAM_HEADROOM),
    };
    (name, control, iov)
}

/// Writes the account of a datagram received into the pool buffer at `base` (whose sender's
/// address and bytes [`pooled_fields`] placed), as io_uring's multishot `recvmsg` writes it.
///
/// # Safety
///
/// `base` must point at a pool buffer of more than [`DGRAM_HEADROOM`] bytes that nothing else
/// reads or writes meanwhile.
pub(crate) unsafe fn write_account(
    base: *mut u8,
    namelen: u32,
    controllen: u32,
    payloadlen: u32,
    flags: u32,
) {
    let mut account = [0u8; ACCOUNT];
    account[0..4].copy_from_slice(&namelen.to_ne_bytes());
    account[4..8].copy_from_slice(&controllen.to_ne_bytes());
    account[8..12].copy_from_slice(&payloadlen.to_ne_bytes());
    account[12..16].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: as the caller promises, the first ACCOUNT bytes at `base` are ours to write.
    unsafe { std::ptr::copy_nonoverlapping(account.as_ptr(), base, ACCOUNT) };
}

/// What a datagram receive into a pool buffer reported, from the buffer's first `bytes` (the
/// completion's result).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Account {
    /// The sender.
    pub from: Option<SocketAddr>,
    /// The datagram's bytes in the buffer (after [`DGRAM_HEADROOM`]).
    pub held: usize,
    /// Whether it was cut.
    pub truncated: bool,
    /// The segment size of several datagrams coalesced ([`gro_segment`]), or 0.
    pub segment: u16,
}

/// The [`Account`] of a datagram receive into a pool buffer, from the buffer's first `bytes`
/// (the completion's result). `None` when the bytes are too few to hold an account.
pub(crate) fn read_account(bytes: &[u8]) -> Option<Account> {
    if bytes.len() < DGRAM_HEADROOM {
        return None;
    }
    let word = |i: usize| u32::from_ne_bytes(bytes[i..i + 4].try_into().expect("four bytes"));
    let (namelen, controllen) = (word(0) as usize, word(4) as usize);
    let (payloadlen, flags) = (word(8) as usize, word(12));
    let held = bytes.len() - DGRAM_HEADROOM;
    let truncated = flags & libc::MSG_TRUNC as u32 != 0 || payloadlen > held;
    let control_at = ACCOUNT + NAME_ROOM;
    let control = &bytes[control_at..control_at + controllen.min(DGRAM_CONTROL_ROOM)];
    let segment = if truncated {
        0
    } else {
        gro_segment(control, held)
    };
    let mut addr = SockAddrBuf::empty();
    let name = &bytes[ACCOUNT..ACCOUNT + namelen.min(NAME_ROOM)];
    // SAFETY: sockaddr_storage is plain old data larger than NAME_ROOM; the copy writes
    // `name.len() <= NAME_ROOM` bytes at its start, from a slice that does not overlap it.
    unsafe {
        std::ptr::copy_nonoverlapping(
            name.as_ptr(),
            (&mut addr.storage as *mut libc::sockaddr_storage).cast::<u8>(),
            name.len(),
        );
    }
    addr.len = name.len() as libc::socklen_t;
    Some(Account {
        from: addr.socket_addr(),
        held,
        truncated,
        segment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gro(segment: i32) -> Vec<u8> {
        let word = mem::size_of::<usize>();
        let mut c = vec![0u8; DGRAM_CONTROL_ROOM];
        c[..word].copy_from_slice(&(CMSG_HDR + 4).to_ne_bytes());
        c[word..word + 4].copy_from_slice(&libc::SOL_UDP.to_ne_bytes());
        c[word + 4..word + 8].copy_from_slice(&libc::UDP_GRO.to_ne_bytes());
        c[CMSG_HDR..CMSG_HDR + 4].copy_from_slice(&segment.to_ne_bytes());
        c
    }

    #[test]
    fn a_gro_message_gives_the_segment_only_when_several_datagrams_are_held() {
        assert_eq!(gro_segment(&gro(1400), 2800), 1400);
        assert_eq!(gro_segment(&gro(1400), 1401), 1400);
        // One datagram, as long as the segment or shorter: nothing to split.
        assert_eq!(gro_segment(&gro(1400), 1400), 0);
        assert_eq!(gro_segment(&gro(1400), 900), 0);
        assert_eq!(gro_segment(&gro(0), 900), 0);
        assert_eq!(gro_segment(&gro(-1), 900), 0);
        // No message, or one too short, or another kind.
        assert_eq!(gro_segment(&[], 2800), 0);
        assert_eq!(gro_segment(&gro(1400)[..CMSG_HDR], 2800), 0);
        let mut other = gro(1400);
        other[mem::size_of::<usize>() + 4..mem::size_of::<usize>() + 8]
            .copy_from_slice(&libc::UDP_SEGMENT.to_ne_bytes());
        assert_eq!(gro_segment(&other, 2800), 0);
    }

    #[test]
    fn a_segment_message_is_what_the_kernel_reads() {
        let mut c = Control::EMPTY;
        let len = c.segment(1200);
        // SAFETY: CMSG_SPACE and CMSG_LEN only compute lengths.
        let (space, cmsg_len) = unsafe { (libc::CMSG_SPACE(2), libc::CMSG_LEN(2)) };
        assert_eq!(len, space as usize);
        let word = mem::size_of::<usize>();
        let b = c.bytes();
        assert_eq!(
            usize::from_ne_bytes(b[..word].try_into().unwrap()),
            cmsg_len as usize
        );
        assert_eq!(&b[CMSG_HDR..CMSG_HDR + 2], &1200u16.to_ne_bytes());
    }
}
