//! `ringport serve`'s UDP flags (`--udp`, `--udp-only` and the reflector rules), flattened
//! into `serve`'s, and the UDP echo's settings they make.

use clap::Args;
use ringport_server::udp::{policy::DENIED_PORTS, UdpConfig, DATAGRAM_MAX};

/// The UDP echo's flags.
/// The flags after `--udp-only` require one of the two (the group `udp_served`, which
/// `serve`'s command defines over them).
#[derive(Debug, Args)]
pub struct UdpArgs {
    /// Also serve UDP echo (RFC 862) on the same port number: every datagram echoed whole to
    /// its sender, with the reflector rules of `--udp-deny-port` and `--udp-max-pps-per-ip`.
    #[arg(long)]
    udp: bool,
    /// Serve UDP echo alone, without TCP: the `listening on` line and the ready line give the
    /// UDP socket's address. The UDP echo runs on a completion port (--backend) whatever the
    /// --model.
    #[arg(long, conflicts_with = "udp")]
    udp_only: bool,
    /// The longest datagram echoed, in bytes; a longer one is counted as truncated and not
    /// echoed. The default takes every datagram (65,507 bytes over IPv4, 65,527 over IPv6).
    #[arg(long, requires = "udp_served", default_value_t = UdpConfig::default().buffer_size as u32,
        value_parser = clap::value_parser!(u32).range(1..=DATAGRAM_MAX as i64))]
    udp_buffer_size: u32,
    /// Datagrams the UDP echo holds at once (receiving or being echoed): its memory is this
    /// many buffers of --udp-buffer-size bytes, whatever arrives.
    #[arg(long, requires = "udp_served", default_value_t = UdpConfig::default().buffers as u32,
        value_parser = clap::value_parser!(u32).range(1..=4096))]
    udp_buffers: u32,
    // The list is the library's, shown in the help.
    #[arg(long, value_name = "PORT", value_delimiter = ',', requires = "udp_served", help = format!(
        "A source port never echoed to, besides those of echo-like services ({}) and 0 \
         (repeat it or give a list: 53,123)",
        DENIED_PORTS.map(|p| p.to_string()).join(", ")
    ))]
    udp_deny_port: Vec<u16>,
    // The default is the library's, shown in the help; absent, loopback sources are exempt.
    #[arg(long, value_name = "N", requires = "udp_served", help = format!(
        "Datagrams per second echoed to one source address (a burst of one second's worth); \
         beyond it they are counted and not echoed. 0: no limit [default: {}, loopback sources \
         exempt; given explicitly, it applies to loopback sources too]",
        UdpConfig::default().max_pps_per_ip
    ))]
    udp_max_pps_per_ip: Option<u32>,
    /// Receive and echo one datagram at a time. Otherwise, on Linux with the default
    /// --udp-buffer-size, datagrams of one sender that arrive together are received at once
    /// (UDP GRO) and echoed in one send that the system splits at the same boundaries (UDP
    /// GSO); the datagrams on the wire are the same.
    #[arg(long, requires = "udp_served")]
    udp_no_gso: bool,
}

impl UdpArgs {
    /// Whether `--udp-only` was given: no TCP is served.
    pub fn only(&self) -> bool {
        self.udp_only
    }

    /// The echo's settings, or `None` when neither `--udp` nor `--udp-only` was given.
    pub fn config(&self) -> Option<UdpConfig> {
        if !(self.udp || self.udp_only) {
            return None;
        }
        let default = UdpConfig::default();
        Some(UdpConfig {
            only: self.udp_only,
            buffer_size: self.udp_buffer_size as usize,
            buffers: self.udp_buffers as usize,
            deny_ports: self.udp_deny_port.clone(),
            max_pps_per_ip: self.udp_max_pps_per_ip.unwrap_or(default.max_pps_per_ip),
            limit_loopback: self.udp_max_pps_per_ip.is_some(),
            offload: !self.udp_no_gso,
            ..default
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    fn udp(args: &[&str]) -> Result<Option<UdpConfig>, clap::Error> {
        let mut argv = vec!["ringport", "serve"];
        argv.extend_from_slice(args);
        let Command::Serve(serve) = Cli::try_parse_from(argv)?.command else {
            panic!("not serve")
        };
        Ok(serve.config().udp)
    }

    #[test]
    fn the_flags_make_the_libraries_defaults_and_what_they_say() {
        assert_eq!(udp(&[]).unwrap(), None, "no UDP unless asked");
        assert_eq!(udp(&["--udp"]).unwrap(), Some(UdpConfig::default()));
        let only = udp(&[
            "--udp-only",
            "--udp-deny-port",
            "53,123",
            "--udp-deny-port",
            "5353",
            "--udp-max-pps-per-ip",
            "10",
            "--udp-buffer-size",
            "1472",
        ])
        .unwrap()
        .unwrap();
        assert!(only.only);
        assert_eq!(only.deny_ports, [53, 123, 5353]);
        assert_eq!(only.max_pps_per_ip, 10);
        assert!(only.limit_loopback, "an explicit rate applies to loopback");
        assert_eq!(only.buffer_size, 1472);
        assert!(only.offload, "GRO and GSO unless --udp-no-gso");
        let plain = udp(&["--udp", "--udp-no-gso"]).unwrap().unwrap();
        assert!(!plain.offload);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["--udp", "--udp-only"][..],
            &["--udp", "--udp-buffer-size", "65536"],
            &["--udp", "--udp-buffer-size", "0"],
            &["--udp", "--udp-buffers", "0"],
            &["--udp", "--udp-deny-port", "70000"],
        ] {
            assert!(udp(args).is_err(), "{args:?}");
        }
    }
}
