//! Request/response mode: the requests a connection sends and the replies it expects.
//!
//! This module is responsible for the plain-data form of `--request`, `--request-hex`,
//! `--request-file` and the `--expect*` flags ([`RequestSpec`], [`Expect`]), for the text forms
//! they take on the command line (in [`text`](crate::protocol::text)), and for pairing the flags
//! of one command line into a sequence ([`pair`]). Compiling a sequence into the
//! [`Script`](crate::protocol::script::Script) the engine runs is
//! [`script`](crate::protocol::script)'s; reading replies off the wire and checking them is
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

use crate::error::ConfigError;

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
/// [`check`](crate::protocol::script::check).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::script::check;

    fn req(bytes: &str) -> Item {
        Item::Request(bytes.as_bytes().to_vec())
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
}
