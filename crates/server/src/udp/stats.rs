//! The UDP echo's counters ([`UdpStats`]) and the summary line they make.

use std::fmt;

use ringport_os::{human_bytes, plural};

use super::policy::Refusal;

/// What the UDP echo did: datagrams and bytes in and out, and every datagram not echoed, by
/// cause (none is dropped silently).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpStats {
    /// Datagrams received (truncated and refused ones included).
    pub datagrams_in: u64,
    /// Bytes of the datagrams received whole (a truncated datagram's are not known).
    pub bytes_in: u64,
    /// Datagrams echoed.
    pub datagrams_out: u64,
    /// Bytes echoed.
    pub bytes_out: u64,
    /// Datagrams longer than the buffer (`--udp-buffer-size`): cut by the system, so not
    /// echoed.
    pub truncated: u64,
    /// Datagrams from an echo-like service's port (7, 13, 17, 19, 37, `--udp-deny-port`) or
    /// port 0: not echoed.
    pub denied_port: u64,
    /// Datagrams beyond their source's rate (`--udp-max-pps-per-ip`): not echoed.
    pub rate_limited: u64,
    /// Datagrams from a new source while the table of sources was full of active ones: not
    /// echoed.
    pub table_full: u64,
    /// Datagrams whose sender the system did not report: not echoed.
    pub no_sender: u64,
    /// Receives that failed (an ICMP error reported on the socket, for example).
    pub recv_errors: u64,
    /// Datagrams whose echo the system refused to send.
    pub send_errors: u64,
    /// Receives that held several datagrams of one sender, coalesced by the system (Linux UDP
    /// GRO): each of their datagrams is counted in `datagrams_in`.
    pub coalesced_in: u64,
    /// Echo sends that carried several datagrams, split by the system (Linux UDP GSO): each of
    /// their datagrams is counted in `datagrams_out`.
    pub segmented_out: u64,
    /// Buffers of the echo: the most datagrams it holds at once.
    pub buffers: u64,
    /// Calls to the port's wait, and the completions they returned.
    pub waits: u64,
    /// Completions reaped.
    pub completions: u64,
}

impl UdpStats {
    /// Counts one refusal under its cause.
    pub fn refused(&mut self, why: Refusal) {
        match why {
            Refusal::DeniedPort => self.denied_port += 1,
            Refusal::RateLimited => self.rate_limited += 1,
            Refusal::TableFull => self.table_full += 1,
        }
    }

    /// Counts an echo's completion, a send that carried `carried` datagrams: sent (`Ok`, its
    /// bytes), or refused by the system.
    pub fn sent(&mut self, result: &std::io::Result<usize>, carried: u64) {
        match result {
            Ok(n) => {
                self.datagrams_out += carried;
                self.bytes_out += *n as u64;
            }
            Err(_) => self.send_errors += carried,
        }
    }

    /// Datagrams received and not echoed by policy, all causes.
    pub fn dropped_by_policy(&self) -> u64 {
        self.denied_port + self.rate_limited + self.table_full
    }
}

impl fmt::Display for UdpStats {
    /// The summary's `udp:` line and its `dropped by policy` line, each ending in a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  udp: {} echoed of {} received ({} echoed of {}; exactly {} bytes echoed, {} \
             received); {} truncated (longer than --udp-buffer-size), {}, {}",
            self.datagrams_out,
            plural(self.datagrams_in, "datagram", "datagrams"),
            human_bytes(self.bytes_out),
            human_bytes(self.bytes_in),
            self.bytes_out,
            self.bytes_in,
            self.truncated,
            plural(self.recv_errors, "receive error", "receive errors"),
            plural(self.send_errors, "send error", "send errors"),
        )?;
        if self.coalesced_in + self.segmented_out > 0 {
            writeln!(
                f,
                "  udp offload: {} of several datagrams (GRO), {} of several (GSO)",
                plural(self.coalesced_in, "receive", "receives"),
                plural(self.segmented_out, "send", "sends"),
            )?;
        }
        writeln!(
            f,
            "  udp dropped by policy: {} from denied ports, {} over --udp-max-pps-per-ip, {} with the source table full, {} without a sender",
            self.denied_port, self.rate_limited, self.table_full, self.no_sender
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_lines_name_every_cause() {
        let mut s = UdpStats {
            datagrams_in: 10,
            datagrams_out: 4,
            bytes_in: 400,
            bytes_out: 400,
            truncated: 1,
            ..UdpStats::default()
        };
        s.refused(Refusal::DeniedPort);
        s.refused(Refusal::RateLimited);
        s.refused(Refusal::RateLimited);
        s.refused(Refusal::TableFull);
        assert_eq!(s.dropped_by_policy(), 4);
        let text = s.to_string();
        assert!(
            text.contains("udp: 4 echoed of 10 datagrams received"),
            "{text}"
        );
        assert!(
            text.contains("exactly 400 bytes echoed, 400 received"),
            "{text}"
        );
        assert!(text.contains("1 truncated"), "{text}");
        assert!(
            text.contains(
                "1 from denied ports, 2 over --udp-max-pps-per-ip, 1 with the source table full"
            ),
            "{text}"
        );
        assert_eq!(text.lines().count(), 2);
        s.coalesced_in = 3;
        s.segmented_out = 1;
        let text = s.to_string();
        assert!(
            text.contains(
                "udp offload: 3 receives of several datagrams (GRO), 1 send of several (GSO)"
            ),
            "{text}"
        );
    }
}
