//! The `--websocket[=PATH]` and `--header 'Name: value'` flags of `stress` and `send` as plain
//! data, and their checks.

/// Headers the upgrade writes itself: a `--header` may not set them.
const RESERVED: [&str; 6] = [
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-accept",
];

/// How a client speaks WebSocket: the upgrade's path and extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsOptions {
    /// The request target of the upgrade, e.g. `/` or `/chat?room=1`.
    pub path: String,
    /// Extra headers of the upgrade request (`--header`), in order.
    pub headers: Vec<(String, String)>,
}

impl Default for WsOptions {
    fn default() -> Self {
        WsOptions {
            path: "/".to_string(),
            headers: Vec::new(),
        }
    }
}

impl WsOptions {
    /// The options for `path` (`None`: `/`) and the `--header` values `headers`.
    ///
    /// # Errors
    ///
    /// One line naming the flag and what is wrong with it.
    pub fn new(path: Option<&str>, headers: &[String]) -> Result<WsOptions, String> {
        let path = path.unwrap_or("/");
        if !path.starts_with('/') {
            return Err(format!("--websocket={path}: the path must start with /"));
        }
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!(
                "--websocket={path}: the path may not hold spaces or control characters \
                 (percent-encode them)"
            ));
        }
        let headers = headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(WsOptions {
            path: path.to_string(),
            headers,
        })
    }

    /// The extra headers as borrowed pairs, for the upgrade request.
    pub fn header_pairs(&self) -> Vec<(&str, &str)> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }
}

/// One `--header 'Name: value'`.
///
/// # Errors
///
/// No colon, a name that is not an HTTP token, a value with a line break, or a header the
/// upgrade writes itself.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let Some((name, value)) = s.split_once(':') else {
        return Err(format!("--header {s:?}: write it as 'Name: value'"));
    };
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(is_token) {
        return Err(format!(
            "--header {s:?}: {name:?} is not a header name (letters, digits and !#$%&'*+-.^_`|~)"
        ));
    }
    let value = value.trim();
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!(
            "--header {s:?}: the value may not hold a line break"
        ));
    }
    if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "--header {name}: the upgrade request writes {name} itself"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

/// An HTTP token character (RFC 9110's `tchar`).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_headers_are_checked() {
        let o = WsOptions::new(None, &["X-Token: abc ".to_string()]).unwrap();
        assert_eq!(o.path, "/");
        assert_eq!(o.headers, [("X-Token".to_string(), "abc".to_string())]);
        assert_eq!(WsOptions::new(Some("/a?b=1"), &[]).unwrap().path, "/a?b=1");
        assert!(WsOptions::new(Some("chat"), &[])
            .unwrap_err()
            .contains("must start with /"));
        assert!(WsOptions::new(Some("/a b"), &[]).is_err());
        assert!(parse_header("novalue")
            .unwrap_err()
            .contains("'Name: value'"));
        assert!(parse_header("Bad Name: x").is_err());
        assert!(parse_header("Sec-WebSocket-Key: x")
            .unwrap_err()
            .contains("writes Sec-WebSocket-Key itself"));
        assert_eq!(
            parse_header("Origin: http://a:1").unwrap(),
            ("Origin".to_string(), "http://a:1".to_string())
        );
    }
}
