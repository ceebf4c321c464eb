//! The header every datagram of `stress --udp` begins with: its flow, its sequence number and
//! its send time, so an echo is attributed to the datagram it echoes whatever else happened to
//! it (a damaged payload is still that datagram's).
//!
//! ```text
//!  0               4                              12                             20
//!  | flow (u32 LE) | sequence number (u64 LE)     | send time, ns (u64 LE)       | payload ...
//! ```
//!
//! The flow is the global flow index (0-based), the sequence number counts the flow's datagrams
//! from 0, the send time is nanoseconds from the start of the load. The payload is the bytes of
//! message `sequence + 1` of the flow ([`payload`](crate::protocol::payload)).

/// Bytes of the header.
pub const HEADER_LEN: usize = 20;
/// The longest datagram sent (IPv4's longest UDP payload: 65,535 minus the IPv4 and UDP
/// headers), header included.
pub const DATAGRAM_MAX: usize = 65_507;

/// A datagram's header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The flow (global index, 0-based).
    pub flow: u32,
    /// The datagram's number in its flow, from 0.
    pub seq: u64,
    /// When it was sent: nanoseconds from the start of the load.
    pub sent_ns: u64,
}

impl Header {
    /// Appends the header's bytes to `buf`.
    pub fn write(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.flow.to_le_bytes());
        buf.extend_from_slice(&self.seq.to_le_bytes());
        buf.extend_from_slice(&self.sent_ns.to_le_bytes());
    }

    /// The header at the start of `datagram`; `None` when it is shorter than a header.
    pub fn read(datagram: &[u8]) -> Option<Header> {
        let h = datagram.get(..HEADER_LEN)?;
        let mut flow = [0u8; 4];
        let (mut seq, mut sent) = ([0u8; 8], [0u8; 8]);
        flow.copy_from_slice(&h[0..4]);
        seq.copy_from_slice(&h[4..12]);
        sent.copy_from_slice(&h[12..20]);
        Some(Header {
            flow: u32::from_le_bytes(flow),
            seq: u64::from_le_bytes(seq),
            sent_ns: u64::from_le_bytes(sent),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reads_back_as_written() {
        let h = Header {
            flow: 7,
            seq: 0x0102_0304_0506_0708,
            sent_ns: u64::MAX - 1,
        };
        let mut buf = Vec::new();
        h.write(&mut buf);
        assert_eq!(buf.len(), HEADER_LEN);
        buf.extend_from_slice(b"payload");
        assert_eq!(Header::read(&buf), Some(h));
        assert_eq!(&buf[..4], &[7, 0, 0, 0], "little-endian");
        assert_eq!(Header::read(&buf[..HEADER_LEN - 1]), None);
    }
}
