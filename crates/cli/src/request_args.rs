//! The request/response flags of `ringport stress`, read in command-line order.
//!
//! `--request`, `--request-hex`, `--request-file` and the `--expect*` flags pair by position
//! (an expectation belongs to the request before it; see
//! [`ringport_stress::config::request`]), which clap's derive cannot see: this module defines them
//! by hand ([`clap::Args`]) and reads them back with their indices ([`clap::FromArgMatches`])
//! into [`Item`]s in the order given. Pairing and checking them is the library's.

use clap::{Arg, ArgAction, ArgMatches, Command};
use ringport_stress::config::request::{HttpStatus, Item};
use ringport_stress::protocol::text::{parse_hex, unescape};

/// The request/response flags, in the order they were given.
#[derive(Debug, Clone, Default)]
pub struct RequestArgs {
    /// Every `--request*` and `--expect*` flag, in command-line order.
    pub items: Vec<Item>,
}

fn text(s: &str) -> Result<Vec<u8>, String> {
    unescape(s)
}

fn hex(s: &str) -> Result<Vec<u8>, String> {
    parse_hex(s)
}

fn file(s: &str) -> Result<Vec<u8>, String> {
    let f = std::fs::File::open(s).map_err(|e| format!("cannot read {s}: {e}"))?;
    crate::bytes::read_bounded(f, s, "a request is held in memory whole")
}

fn status(s: &str) -> Result<HttpStatus, String> {
    s.parse()
}

const ESCAPES: &str = "escapes: \\r \\n \\t \\\\ \\0 \\xHH";

impl clap::Args for RequestArgs {
    fn augment_args(cmd: Command) -> Command {
        let many = |id: &'static str| Arg::new(id).long(id).action(ArgAction::Append);
        cmd.next_help_heading("Request/response (instead of echo)")
            .arg(
                many("request")
                    .value_name("TEXT")
                    .value_parser(text)
                    .help(format!(
                        "Send this request and wait for its reply instead of an echo ({ESCAPES}); \
                         repeat for a sequence, cycled. The --expect* flags after it describe \
                         its reply"
                    )),
            )
            .arg(
                many("request-hex")
                    .value_name("HEX")
                    .value_parser(hex)
                    .help("A request given as hex digits (spaces, : and - ignored)"),
            )
            .arg(
                many("request-file")
                    .value_name("PATH")
                    .value_parser(file)
                    .help("A request read from a file, byte for byte"),
            )
            .arg(
                many("expect")
                    .value_name("TEXT")
                    .value_parser(text)
                    .help(format!("The reply is exactly these bytes ({ESCAPES})")),
            )
            .arg(
                many("expect-len")
                    .value_name("N")
                    .value_parser(clap::value_parser!(usize))
                    .help("The reply is N bytes"),
            )
            .arg(
                many("expect-until")
                    .value_name("DELIM")
                    .value_parser(text)
                    .help(format!(
                        "The reply ends with the first DELIM, e.g. '\\r\\n' ({ESCAPES})"
                    )),
            )
            .arg(many("expect-regex").value_name("RE").help(
                "The reply matches this regex (searched; anchor with ^ $), over the reply \
                 framed by --expect-until (without the delimiter), --expect-len or \
                 --expect-http; alone, over one line (--expect-until '\\n')",
            ))
            .arg(
                many("expect-http")
                    .value_name("STATUS")
                    .num_args(0..=1)
                    .require_equals(true)
                    .default_missing_value("2xx")
                    .value_parser(status)
                    .help(
                        "The reply is an HTTP/1.x response (head, then Content-Length or \
                         chunked body) with this status: --expect-http (any 2xx), \
                         --expect-http=200, --expect-http=3xx",
                    ),
            )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

/// `--expect-http`'s status is taken only after `=` (`--expect-http=200`; alone, the flag means
/// any 2xx), so in `--expect-http 200` clap takes the status for the next positional argument:
/// a port. Finds that spelling in the raw command line and says how to write it.
///
/// # Errors
///
/// One line naming what was typed and the form with `=`.
pub fn check_expect_http_spacing<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<(), String> {
    let mut words = args.iter().map(|a| a.as_ref().to_string_lossy());
    while let Some(word) = words.next() {
        if word == "--" {
            return Ok(());
        }
        if word != "--expect-http" {
            continue;
        }
        if let Some(next) = words.next() {
            if next.parse::<HttpStatus>().is_ok() {
                return Err(format!(
                    "`--expect-http {next}`: the status needs `=`, as in --expect-http={next} \
                     (without it, `{next}` is taken as the PORT, and --expect-http alone means \
                     any 2xx)"
                ));
            }
        }
    }
    Ok(())
}

/// Appends the values of flag `id` with their indices, as `make` turns them into items.
fn collect<T: Clone + Send + Sync + 'static>(
    m: &ArgMatches,
    id: &str,
    make: impl Fn(T) -> Item,
    out: &mut Vec<(usize, Item)>,
) {
    if let (Some(at), Some(values)) = (m.indices_of(id), m.get_many::<T>(id)) {
        out.extend(at.zip(values).map(|(i, v)| (i, make(v.clone()))));
    }
}

impl clap::FromArgMatches for RequestArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = RequestArgs::default();
        args.update_from_arg_matches(m)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        let mut items = Vec::new();
        for id in ["request", "request-hex", "request-file"] {
            collect::<Vec<u8>>(m, id, Item::Request, &mut items);
        }
        collect::<Vec<u8>>(m, "expect", Item::Expect, &mut items);
        collect::<usize>(m, "expect-len", Item::ExpectLen, &mut items);
        collect::<Vec<u8>>(m, "expect-until", Item::ExpectUntil, &mut items);
        collect::<String>(m, "expect-regex", Item::ExpectRegex, &mut items);
        collect::<HttpStatus>(m, "expect-http", Item::ExpectHttp, &mut items);
        items.sort_by_key(|(at, _)| *at);
        self.items = items.into_iter().map(|(_, item)| item).collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::check_expect_http_spacing as check;

    /// `--expect-http 200` dialled port 200; it is refused, naming the `=`.
    #[test]
    fn a_status_after_a_space_is_refused_naming_the_equals() {
        let e = check(&["stress", "8080", "--expect-http", "200"]).unwrap_err();
        assert!(e.contains("--expect-http=200"), "{e}");
        assert!(check(&["stress", "--expect-http", "3xx", "8080"]).is_err());
        assert!(check(&["stress", "--expect-http=200", "8080"]).is_ok());
        assert!(
            check(&["stress", "--expect-http", "8080"]).is_ok(),
            "a port"
        );
        assert!(check(&["stress", "--expect-http"]).is_ok());
        assert!(check(&["stress", "--", "--expect-http", "200"]).is_ok());
    }
}
