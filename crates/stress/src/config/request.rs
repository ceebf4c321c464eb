//! Request/response mode: the requests a connection sends and the replies it expects.
//!
//! This module is responsible for the plain-data form of `--request`, `--request-hex`,
//! `--request-file` and the `--expect*` flags ([`RequestSpec`], [`Expect`]), for the text forms
//! they take on the command line ([`unescape`], [`parse_hex`], and [`escape`] for showing bytes
//! back), for pairing the flags of one command line into a sequence ([`pair`]), and for
//! compiling a sequence into the [`Script`] the engine runs (regexes compiled once, the framing
//! of each reply decided once). Reading replies off the wire and checking them is
//! [`reply`](crate::protocol::reply)'s.
//!
//! # Pairing
//!
//! Requests form a sequence in command-line order, cycled: request `i` of a connection (1-based)
//! sends element `(i - 1) mod n`. The `--expect*` flags that follow a request flag, up to the next
//! one, describe its reply. `--expect*` flags given before the first request are the defaults of
//! every request that has none of its own (with one request, it makes no difference where they
//! are). A request with no expectation at all is refused: its reply could not be framed.
//!
//! # Framing
//!
//! Each reply is framed by exactly one of: `--expect TEXT` (exactly these bytes),
//! `--expect-len N` (N bytes), `--expect-until DELIM` (up to and including the first DELIM),
//! `--expect-http[=STATUS]` (an HTTP/1.x response: its head up to the empty line, then a body
//! of `Content-Length` bytes or in chunks, none for `HEAD` requests and 1xx/204/304). The
//! status is checked against STATUS (`200`, or a class such as `2xx`; any 2xx when not given).
//! `--expect-regex RE` is checked against the framed reply (the bytes API of the `regex`
//! crate: a search, so anchor with `^` and `$` to match the whole): with `--expect-until`, the
//! reply without its delimiter; with `--expect-len`, the N bytes; with `--expect-http`, head
//! and body as received. Alone, it frames the reply as one line: `--expect-until '\n'`.

use std::fmt;

use crate::config::{ConfigError, MAX_MESSAGE_SIZE};

/// Longest head of an HTTP response (`--expect-http`) accepted, in bytes.
pub const MAX_HTTP_HEAD: usize = 64 << 10;

/// An HTTP status to expect: one code, or a class (`2xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpStatus {
    /// Exactly this code.
    Code(u16),
    /// Any code of this class (2 for `2xx`).
    Class(u8),
}

impl HttpStatus {
    /// Whether `code` is one this expects.
    pub fn accepts(self, code: u16) -> bool {
        match self {
            HttpStatus::Code(c) => c == code,
            HttpStatus::Class(k) => code / 100 == u16::from(k),
        }
    }
}

impl std::str::FromStr for HttpStatus {
    type Err = String;

    /// `200`, or a class `1xx` to `5xx`.
    fn from_str(s: &str) -> Result<Self, String> {
        let b = s.as_bytes();
        let bad = || format!("`{s}` is not an HTTP status: give a code such as 200, or 2xx");
        if b.len() != 3 || !(b'1'..=b'5').contains(&b[0]) {
            return Err(bad());
        }
        if b[1..].eq_ignore_ascii_case(b"xx") {
            return Ok(HttpStatus::Class(b[0] - b'0'));
        }
        s.parse::<u16>().map(HttpStatus::Code).map_err(|_| bad())
    }
}

impl fmt::Display for HttpStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpStatus::Code(c) => write!(f, "{c}"),
            HttpStatus::Class(k) => write!(f, "{k}xx"),
        }
    }
}

/// What the reply to one request must be: the `--expect*` flags given for it, as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    /// `--expect TEXT`: exactly these bytes.
    pub exact: Option<Vec<u8>>,
    /// `--expect-len N`: this many bytes.
    pub len: Option<usize>,
    /// `--expect-until DELIM`: up to and including the first DELIM.
    pub until: Option<Vec<u8>>,
    /// `--expect-regex RE`: a regex the framed reply must match.
    pub regex: Option<String>,
    /// `--expect-http[=STATUS]`: an HTTP/1.x response with this status.
    pub http: Option<HttpStatus>,
}

impl Expect {
    /// Whether no `--expect*` flag was given.
    pub fn is_empty(&self) -> bool {
        *self == Expect::default()
    }
}

/// One request of the sequence and the reply it expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSpec {
    /// The bytes sent.
    pub bytes: Vec<u8>,
    /// What must come back.
    pub expect: Expect,
}

/// One request or expectation flag of a command line, in the order given (see [`pair`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `--request`, `--request-hex`, `--request-file`: the bytes.
    Request(Vec<u8>),
    /// `--expect TEXT`.
    Expect(Vec<u8>),
    /// `--expect-len N`.
    ExpectLen(usize),
    /// `--expect-until DELIM`.
    ExpectUntil(Vec<u8>),
    /// `--expect-regex RE`.
    ExpectRegex(String),
    /// `--expect-http[=STATUS]`.
    ExpectHttp(HttpStatus),
}

impl Item {
    fn flag(&self) -> &'static str {
        match self {
            Item::Request(_) => "--request",
            Item::Expect(_) => "--expect",
            Item::ExpectLen(_) => "--expect-len",
            Item::ExpectUntil(_) => "--expect-until",
            Item::ExpectRegex(_) => "--expect-regex",
            Item::ExpectHttp(_) => "--expect-http",
        }
    }
}

fn bad<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Adds one expectation flag to `e`; `whose` names the request in the error.
fn add(e: &mut Expect, item: Item, whose: &str) -> Result<(), ConfigError> {
    let flag = item.flag();
    let twice = |set: bool| {
        if set {
            bad(format!("{flag} is given twice for {whose}"))
        } else {
            Ok(())
        }
    };
    match item {
        Item::Request(_) => unreachable!("requests are not expectations"),
        Item::Expect(b) => {
            twice(e.exact.is_some())?;
            e.exact = Some(b);
        }
        Item::ExpectLen(n) => {
            twice(e.len.is_some())?;
            e.len = Some(n);
        }
        Item::ExpectUntil(d) => {
            twice(e.until.is_some())?;
            e.until = Some(d);
        }
        Item::ExpectRegex(r) => {
            twice(e.regex.is_some())?;
            e.regex = Some(r);
        }
        Item::ExpectHttp(s) => {
            twice(e.http.is_some())?;
            e.http = Some(s);
        }
    }
    Ok(())
}

/// Pairs the request and expectation flags of one command line, in the order given, into the
/// sequence of requests (see the module docs). Combinations are checked later, by
/// [`check`].
///
/// # Errors
///
/// Expectations with no request, or one flag given twice for one request.
pub fn pair(items: Vec<Item>) -> Result<Vec<RequestSpec>, ConfigError> {
    let mut defaults = Expect::default();
    let mut requests: Vec<RequestSpec> = Vec::new();
    for item in items {
        match item {
            Item::Request(bytes) => requests.push(RequestSpec {
                bytes,
                expect: Expect::default(),
            }),
            other => match requests.len() {
                0 => add(&mut defaults, other, "the requests (before the first)")?,
                n => {
                    let whose = format!("request {n}");
                    add(&mut requests[n - 1].expect, other, &whose)?;
                }
            },
        }
    }
    if requests.is_empty() {
        if !defaults.is_empty() {
            return bad(
                "--expect, --expect-len, --expect-until, --expect-regex and --expect-http need \
                 a request: give --request, --request-hex or --request-file",
            );
        }
        return Ok(requests);
    }
    for r in &mut requests {
        if r.expect.is_empty() {
            r.expect = defaults.clone();
        }
    }
    Ok(requests)
}

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

/// Decodes the escapes of `--request`, `--expect` and `--expect-until`: `\r`, `\n`, `\t`,
/// `\\`, `\0` and `\xHH` (two hex digits); every other character stands for its UTF-8 bytes.
///
/// # Errors
///
/// An unknown escape, or `\x` without two hex digits, named in one line.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.char_indices();
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            let mut b = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            continue;
        }
        match chars.next().map(|(_, c)| c) {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('\\') => out.push(b'\\'),
            Some('0') => out.push(0),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).map(|(_, c)| c).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) if hex.len() == 2 => out.push(b),
                    _ => {
                        return Err(format!(
                            "`\\x{hex}` at character {at}: \\x needs two hex digits, as in \\x00"
                        ))
                    }
                }
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape `\\{other}` at character {at}: use \\r \\n \\t \\\\ \\0 or \
                     \\xHH"
                ))
            }
            None => return Err("a lone `\\` at the end: write \\\\ for a backslash".to_string()),
        }
    }
    Ok(out)
}

/// Decodes `--request-hex`: pairs of hex digits, with any whitespace, `:` or `-` between them
/// ignored (`50494e470d0a`, `50 49 4e 47 0d 0a`).
///
/// # Errors
///
/// A character that is not a hex digit, or an odd number of digits.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b':' && *b != b'-')
        .collect();
    if let Some(b) = digits.iter().find(|b| !b.is_ascii_hexdigit()) {
        return Err(format!("`{}` is not a hex digit", char::from(*b)));
    }
    if digits.len() % 2 == 1 {
        return Err(format!("{} hex digits: bytes take two each", digits.len()));
    }
    Ok(digits
        .chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).expect("ASCII hex digits");
            u8::from_str_radix(s, 16).expect("checked hex digits")
        })
        .collect())
}

/// `bytes` as a quoted string with escapes (`\r`, `\n`, `\t`, `\\`, `\"`, `\0`, `\xHH`), at most
/// `max` of them shown: a longer one ends `..." (N bytes)`.
pub fn escape(bytes: &[u8], max: usize) -> String {
    let mut s = String::with_capacity(bytes.len().min(max) + 2);
    s.push('"');
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0 => s.push_str("\\0"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let _ = fmt::Write::write_fmt(&mut s, format_args!("\\x{b:02x}"));
            }
        }
    }
    if bytes.len() > max {
        let _ = fmt::Write::write_fmt(&mut s, format_args!("...\" ({} bytes)", bytes.len()));
    } else {
        s.push('"');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(bytes: &str) -> Item {
        Item::Request(bytes.as_bytes().to_vec())
    }

    #[test]
    fn escapes_decode_and_encode_back() {
        assert_eq!(
            unescape(r"PING\r\n\t\\\0\x41\xff").unwrap(),
            b"PING\r\n\t\\\0A\xff"
        );
        assert_eq!(unescape("héllo").unwrap(), "héllo".as_bytes());
        assert!(unescape(r"\q")
            .unwrap_err()
            .contains("unknown escape `\\q`"));
        assert!(unescape(r"\x4").unwrap_err().contains("two hex digits"));
        assert!(unescape(r"\xzz").unwrap_err().contains("two hex digits"));
        assert!(unescape("a\\").unwrap_err().contains("lone"));
        assert_eq!(escape(b"+PONG\r\n", 40), r#""+PONG\r\n""#);
        assert_eq!(escape(b"a\"\0\x80", 40), r#""a\"\0\x80""#);
        assert_eq!(escape(b"abcdef", 3), r#""abc..." (6 bytes)"#);
    }

    #[test]
    fn hex_decodes_with_separators() {
        assert_eq!(parse_hex("50494e470d0a").unwrap(), b"PING\r\n");
        assert_eq!(parse_hex("50 49:4E-47\n0d 0a").unwrap(), b"PING\r\n");
        assert!(parse_hex("504").unwrap_err().contains("3 hex digits"));
        assert!(parse_hex("5g").unwrap_err().contains("`g`"));
    }

    #[test]
    fn http_status_parses() {
        assert_eq!("200".parse(), Ok(HttpStatus::Code(200)));
        assert_eq!("2xx".parse(), Ok(HttpStatus::Class(2)));
        assert_eq!("4XX".parse(), Ok(HttpStatus::Class(4)));
        assert!("20".parse::<HttpStatus>().is_err());
        assert!("600".parse::<HttpStatus>().is_err());
        assert!(HttpStatus::Class(2).accepts(204));
        assert!(!HttpStatus::Code(200).accepts(204));
    }

    #[test]
    fn expectations_pair_with_the_request_before_them() {
        let r = pair(vec![
            Item::ExpectUntil(b"\r\n".to_vec()),
            req("SET k v\r\n"),
            Item::Expect(b"+OK\r\n".to_vec()),
            req("GET k\r\n"),
            Item::ExpectLen(7),
            req("PING\r\n"),
        ])
        .unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].expect.exact.as_deref(), Some(&b"+OK\r\n"[..]));
        assert_eq!(r[1].expect.len, Some(7));
        assert_eq!(r[1].expect.until, None, "its own expectation, no defaults");
        assert_eq!(
            r[2].expect.until.as_deref(),
            Some(&b"\r\n"[..]),
            "the defaults"
        );
        // With one request, the order does not matter.
        let one = pair(vec![Item::ExpectLen(3), req("x")]).unwrap();
        assert_eq!(one[0].expect.len, Some(3));
        assert!(pair(vec![req("x"), Item::ExpectLen(1), Item::ExpectLen(2)])
            .unwrap_err()
            .0
            .contains("--expect-len is given twice for request 1"));
        assert!(pair(vec![Item::ExpectLen(1)])
            .unwrap_err()
            .0
            .contains("need a request"));
        assert!(pair(vec![]).unwrap().is_empty());
    }

    #[track_caller]
    fn refused(items: Vec<Item>, needle: &str) {
        let e = pair(items).and_then(|r| check(&r)).unwrap_err();
        assert!(e.0.contains(needle), "{e:?} should mention {needle:?}");
        assert!(!e.0.contains('\n'));
    }

    #[test]
    fn combinations_are_checked() {
        refused(vec![req("x")], "has no expected reply");
        refused(
            vec![req("x"), Item::Expect(b"y".to_vec()), Item::ExpectLen(1)],
            "--expect and --expect-len cannot be used together",
        );
        refused(
            vec![
                req("x"),
                Item::ExpectUntil(b"\n".to_vec()),
                Item::ExpectHttp(HttpStatus::Class(2)),
            ],
            "--expect-until and --expect-http",
        );
        refused(
            vec![
                req("x"),
                Item::Expect(b"y".to_vec()),
                Item::ExpectRegex("y".into()),
            ],
            "--expect and --expect-regex",
        );
        refused(
            vec![req("x"), Item::ExpectRegex("(".into())],
            "--expect-regex `(`",
        );
        refused(vec![req("x"), Item::ExpectLen(0)], "--expect-len");
        refused(vec![req("x"), Item::ExpectUntil(vec![])], "--expect-until");
        refused(vec![req(""), Item::ExpectLen(1)], "the request is empty");
        refused(
            vec![req("a"), Item::ExpectLen(1), req("b")],
            "request 2 has no expected reply",
        );
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
