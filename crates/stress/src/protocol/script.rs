//! Request/response mode compiled: the [`Script`] a connection runs, and how each reply is framed.
//!
//! This module is responsible for turning the paired requests
//! ([`RequestSpec`]) into a [`Script`]: every request and
//! its expectation checked ([`check`]), regexes compiled once, the framing of each reply decided
//! once ([`Frame`]). Reading replies off the wire and checking them is
//! [`reply`](crate::protocol::reply)'s.

use crate::config::request::{HttpStatus, RequestSpec};
use crate::error::ConfigError;
use crate::protocol::payload::MAX_MESSAGE_SIZE;
use crate::protocol::text::escape;

/// Longest head of an HTTP response (`--expect-http`) accepted, in bytes.
pub const MAX_HTTP_HEAD: usize = 64 << 10;

/// Checks every request and its expectation: not empty, not too large, exactly one framing,
/// a regex that compiles.
///
/// # Errors
///
/// One line naming the request (1-based) and the flags.
pub fn check(requests: &[RequestSpec]) -> Result<(), ConfigError> {
    Script::compile(requests).map(|_| ())
}

/// How the reply to one request is framed: where it ends.
#[derive(Debug, Clone)]
pub enum Frame {
    /// Exactly these bytes (`--expect`).
    Exact(Vec<u8>),
    /// This many bytes (`--expect-len`).
    Len(usize),
    /// Up to and including the first occurrence of this delimiter (`--expect-until`; a
    /// `--expect-regex` alone frames by `\n`).
    Until(Vec<u8>),
    /// An HTTP/1.x response with this status (`--expect-http`); `head_request` says the
    /// request was a `HEAD` (no body follows).
    Http {
        /// The status expected.
        status: HttpStatus,
        /// The request's method is `HEAD`.
        head_request: bool,
    },
}

/// One request of a compiled [`Script`].
#[derive(Debug, Clone)]
pub struct Step {
    /// The bytes sent.
    pub request: Vec<u8>,
    /// Where its reply ends.
    pub frame: Frame,
    /// A regex its framed reply must match.
    pub regex: Option<regex::bytes::Regex>,
    /// A short form for reports and errors, e.g. `"GET k\r\n" -> "$1\r\nv\r\n"`.
    pub label: String,
}

impl Step {
    /// Whether the reply's bytes must be kept to check it (a regex, or an HTTP head to parse).
    pub fn keeps_reply(&self) -> bool {
        self.regex.is_some() || matches!(self.frame, Frame::Http { .. })
    }
}

/// The compiled sequence of requests the engine runs: each connection sends `steps` in order,
/// cycled.
#[derive(Debug, Clone)]
pub struct Script {
    /// The requests, in order.
    pub steps: Vec<Step>,
}

/// Bytes shown of a request or reply in a label.
const LABEL_BYTES: usize = 40;

impl Script {
    /// Compiles `requests` (non-empty) into a script: one framing per reply, regexes compiled.
    ///
    /// # Errors
    ///
    /// As [`check`].
    pub fn compile(requests: &[RequestSpec]) -> Result<Script, ConfigError> {
        if requests.is_empty() {
            return bad("no request given");
        }
        let steps = requests
            .iter()
            .enumerate()
            .map(|(i, r)| compile_step(i + 1, requests.len(), r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Script { steps })
    }

    /// The step of request `index` (1-based) of a connection.
    pub fn step(&self, index: u64) -> &Step {
        &self.steps[((index - 1) % self.steps.len() as u64) as usize]
    }

    /// Position (0-based) in the sequence of request `index` (1-based).
    pub fn position(&self, index: u64) -> usize {
        ((index - 1) % self.steps.len() as u64) as usize
    }

    /// The longest request, in bytes.
    pub fn max_request_len(&self) -> usize {
        self.steps
            .iter()
            .map(|s| s.request.len())
            .max()
            .unwrap_or(0)
    }

    /// A one-line description for the report, e.g.
    /// `request/response: "PING\r\n" -> "+PONG\r\n"`, or for a sequence
    /// `request/response, 2 requests cycled: "SET k v\r\n" -> "+OK\r\n"; ...`.
    pub fn describe(&self) -> String {
        let labels: Vec<&str> = self.steps.iter().map(|s| s.label.as_str()).collect();
        if labels.len() == 1 {
            format!("request/response: {}", labels[0])
        } else {
            format!(
                "request/response, {} requests cycled: {}",
                labels.len(),
                labels.join("; ")
            )
        }
    }
}

fn compile_step(n: usize, of: usize, r: &RequestSpec) -> Result<Step, ConfigError> {
    let whose = if of == 1 {
        "the request".to_string()
    } else {
        format!("request {n}")
    };
    if r.bytes.is_empty() {
        return bad(format!("{whose} is empty"));
    }
    if r.bytes.len() > MAX_MESSAGE_SIZE {
        return bad(format!(
            "{whose} is {} bytes, more than the limit of {MAX_MESSAGE_SIZE}",
            r.bytes.len()
        ));
    }
    let e = &r.expect;
    if e.is_empty() {
        return bad(format!(
            "{whose} has no expected reply: give --expect, --expect-len, --expect-until, \
             --expect-regex or --expect-http after it"
        ));
    }
    let framings: Vec<&str> = [
        (e.exact.is_some(), "--expect"),
        (e.len.is_some(), "--expect-len"),
        (e.until.is_some(), "--expect-until"),
        (e.http.is_some(), "--expect-http"),
    ]
    .into_iter()
    .filter_map(|(set, flag)| set.then_some(flag))
    .collect();
    if framings.len() > 1 {
        return bad(format!(
            "{} cannot be used together (for {whose}): each frames the reply its own way",
            framings.join(" and ")
        ));
    }
    if e.exact.is_some() && e.regex.is_some() {
        return bad(format!(
            "--expect and --expect-regex cannot be used together (for {whose}): --expect \
             already gives every byte"
        ));
    }
    let frame = match (&e.exact, e.len, &e.until, e.http) {
        (Some(x), ..) if x.is_empty() => return bad(format!("--expect is empty (for {whose})")),
        (Some(x), ..) if x.len() > MAX_MESSAGE_SIZE => {
            return bad(format!(
                "--expect is longer than the limit of {MAX_MESSAGE_SIZE} bytes (for {whose})"
            ))
        }
        (Some(x), ..) => Frame::Exact(x.clone()),
        (_, Some(0), ..) => return bad(format!("--expect-len must be at least 1 (for {whose})")),
        (_, Some(n), ..) if n > MAX_MESSAGE_SIZE => {
            return bad(format!(
                "--expect-len {n} is larger than the limit of {MAX_MESSAGE_SIZE} bytes (for \
                 {whose})"
            ))
        }
        (_, Some(n), ..) => Frame::Len(n),
        (_, _, Some(d), _) if d.is_empty() => {
            return bad(format!("--expect-until is empty (for {whose})"))
        }
        (_, _, Some(d), _) => Frame::Until(d.clone()),
        (_, _, _, Some(status)) => Frame::Http {
            status,
            head_request: r.bytes.starts_with(b"HEAD "),
        },
        // A regex alone: one line.
        _ => Frame::Until(b"\n".to_vec()),
    };
    let regex = match &e.regex {
        Some(re) => Some(regex::bytes::Regex::new(re).map_err(|err| {
            let first = err.to_string();
            let first = first.lines().last().unwrap_or("invalid").trim().to_string();
            ConfigError(format!("--expect-regex `{re}` (for {whose}): {first}"))
        })?),
        None => None,
    };
    let reply = match &frame {
        Frame::Exact(x) => escape(x, LABEL_BYTES),
        Frame::Len(n) => format!("{n} bytes"),
        Frame::Until(d) => format!("until {}", escape(d, LABEL_BYTES)),
        Frame::Http { status, .. } => format!("HTTP {status}"),
    };
    let label = format!(
        "{} -> {reply}{}",
        escape(&r.bytes, LABEL_BYTES),
        e.regex
            .as_ref()
            .map(|re| format!(" matching /{re}/"))
            .unwrap_or_default()
    );
    Ok(Step {
        request: r.bytes.clone(),
        frame,
        regex,
        label,
    })
}

fn bad<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::request::{pair, Item};

    fn req(bytes: &str) -> Item {
        Item::Request(bytes.as_bytes().to_vec())
    }

    #[test]
    fn scripts_frame_and_describe() {
        let s = Script::compile(
            &pair(vec![
                req("HEAD / HTTP/1.1\r\n\r\n"),
                Item::ExpectHttp(HttpStatus::Code(200)),
                req("x"),
                Item::ExpectRegex("^ok$".into()),
            ])
            .unwrap(),
        )
        .unwrap();
        assert!(matches!(
            s.steps[0].frame,
            Frame::Http {
                head_request: true,
                ..
            }
        ));
        assert!(
            matches!(&s.steps[1].frame, Frame::Until(d) if d == b"\n"),
            "a regex alone frames one line"
        );
        assert_eq!(s.position(1), 0);
        assert_eq!(s.position(4), 1);
        assert_eq!(s.step(3).request, b"HEAD / HTTP/1.1\r\n\r\n");
        assert_eq!(
            s.describe(),
            r#"request/response, 2 requests cycled: "HEAD / HTTP/1.1\r\n\r\n" -> HTTP 200; "x" -> until "\n" matching /^ok$/"#
        );
    }
}
