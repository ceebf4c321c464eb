//! What a started server says about itself, for programs: where it listens, its model, its
//! backend and its workers, as one line of JSON ([`Ready`]).
//!
//! `ringport serve --ready-json PATH` writes it (`-`: on standard output, right after the
//! `listening on` line); `ringport bench` and the end-to-end tests read it instead of the log,
//! whose wording is for people and may change. Fields are only ever added.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use ringport_port::Backend;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Model;

/// A server that accepts connections, as `serve --ready-json` writes it:
///
/// ```json
/// {"addr":"127.0.0.1:3333","model":"completion","backend":"io_uring",
///  "backend_detail":"io_uring (setup flags: ...)","workers":4,"pid":4242,"tls":false}
/// ```
///
/// (on one line). For the threaded and single models `backend` and `workers` are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// The address the server accepts on, with the real port when port 0 was asked for:
    /// `"127.0.0.1:3333"`, `"[::1]:3333"`.
    pub addr: SocketAddr,
    /// The server design: `completion`, `threaded` or `single`.
    #[serde(serialize_with = "by_name", deserialize_with = "from_name")]
    pub model: Model,
    /// The completion port's mechanism: `io_uring`, `epoll` or `iocp`; `null` for the threaded
    /// and single models, which use blocking sockets and no port.
    #[serde(serialize_with = "opt_by_name", deserialize_with = "opt_from_name")]
    pub backend: Option<Backend>,
    /// The mechanism as the log and the shutdown summary describe it, with its details:
    /// `io_uring (setup flags: ...)`, `epoll (edge-triggered)`, `blocking sockets`.
    pub backend_detail: String,
    /// Worker threads of the completion model, each with its own completion port; `null` for
    /// the threaded model (a thread per client) and the single model (one client at a time).
    pub workers: Option<usize>,
    /// The server's process id.
    pub pid: u32,
    /// Whether it serves TLS (`--tls-cert`/`--tls-key` or `--tls-self-signed`); absent in the
    /// lines of servers from before TLS, read as `false`.
    #[serde(default)]
    pub tls: bool,
    /// The UDP echo runs too, on the same port number (`serve --udp`), or alone (`--udp-only`:
    /// `addr` is then the UDP socket's). Written only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub udp: bool,
    /// It speaks WebSocket (`serve --websocket`; `wss` when `tls` is true too). Written only
    /// when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub websocket: bool,
    /// Every worker accepts its connections as io_uring direct descriptors (`serve
    /// --direct-fds on` where the kernel allows). Written only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub direct_fds: bool,
}

impl Ready {
    /// The JSON object, on one line (no newline at the end).
    pub fn to_json(&self) -> String {
        // Every field serialises (addresses, names, numbers): this cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads what [`to_json`](Ready::to_json) wrote.
    ///
    /// # Errors
    ///
    /// When `text` is not such an object (another line of the server's output, a field of the
    /// wrong type, an unknown model or backend).
    pub fn from_json(text: &str) -> Result<Ready, serde_json::Error> {
        serde_json::from_str(text.trim())
    }
}

fn by_name<T: fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn from_name<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: FromStr<Err: fmt::Display>,
    D: Deserializer<'de>,
{
    String::deserialize(d)?
        .parse()
        .map_err(serde::de::Error::custom)
}

fn opt_by_name<T: fmt::Display, S: Serializer>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

fn opt_from_name<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
where
    T: FromStr<Err: fmt::Display>,
    D: Deserializer<'de>,
{
    Option::<String>::deserialize(d)?
        .map(|name| name.parse().map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion() -> Ready {
        Ready {
            addr: "127.0.0.1:3333".parse().unwrap(),
            model: Model::Completion,
            backend: Some(Backend::Epoll),
            backend_detail: "epoll (edge-triggered)".into(),
            workers: Some(4),
            pid: 42,
            tls: false,
            udp: false,
            websocket: false,
            direct_fds: false,
        }
    }

    #[test]
    fn one_line_with_names_not_variants() {
        let line = completion().to_json();
        assert_eq!(
            line,
            r#"{"addr":"127.0.0.1:3333","model":"completion","backend":"epoll","backend_detail":"epoll (edge-triggered)","workers":4,"pid":42,"tls":false}"#
        );
        assert_eq!(
            Ready::from_json(&format!("{line}\n")).unwrap(),
            completion()
        );
    }

    #[test]
    fn the_blocking_models_have_no_backend_and_no_workers() {
        let ready = Ready {
            addr: "[::1]:1".parse().unwrap(),
            model: Model::Threaded,
            backend: None,
            backend_detail: "blocking sockets".into(),
            workers: None,
            pid: 1,
            tls: true,
            udp: false,
            websocket: false,
            direct_fds: false,
        };
        let line = ready.to_json();
        assert!(line.contains(r#""backend":null"#), "{line}");
        assert!(line.contains(r#""workers":null"#), "{line}");
        assert!(line.contains(r#""addr":"[::1]:1""#), "{line}");
        assert!(line.contains(r#""tls":true"#), "{line}");
        assert_eq!(Ready::from_json(&line).unwrap(), ready);
    }

    #[test]
    fn other_lines_and_unknown_names_are_errors() {
        assert!(Ready::from_json("listening on 127.0.0.1:3333").is_err());
        let line = completion().to_json();
        assert!(Ready::from_json(&line.replace("\"epoll\"", "\"kqueue\"")).is_err());
        assert!(Ready::from_json(&line.replace("\"completion\"", "\"forked\"")).is_err());
    }

    #[test]
    fn a_line_from_before_tls_reads_as_plaintext() {
        let line = completion().to_json().replace(r#","tls":false"#, "");
        assert!(!line.contains("tls"), "{line}");
        assert_eq!(Ready::from_json(&line).unwrap(), completion());
    }
}
