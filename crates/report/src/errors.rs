//! Errors in a result: the kinds a connection failure is counted by ([`ErrorKind`], with stable
//! names), the counts by kind ([`ErrorCounts`], the `errors_by_kind` object), and the first error
//! in detail ([`FirstError`]).

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

/// The kind of a connection failure; the key of the report's error breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// An echoed byte differed from the byte sent, or bytes arrived that were never sent.
    Mismatch,
    /// The server closed the connection while echo bytes were still outstanding.
    ShortEcho,
    /// The server closed the connection before the client was done sending.
    EarlyClose,
    /// The connection was reset (ECONNRESET, EPIPE, ECONNABORTED).
    Reset,
    /// No echo byte arrived within `--timeout` while bytes were outstanding.
    Timeout,
    /// The connection could not be established.
    ConnectFailed,
    /// Any other I/O error.
    Other,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Mismatch,
        ErrorKind::ShortEcho,
        ErrorKind::EarlyClose,
        ErrorKind::Reset,
        ErrorKind::Timeout,
        ErrorKind::ConnectFailed,
        ErrorKind::Other,
    ];

    /// The snake_case name used in JSON and in the human report.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Mismatch => "mismatch",
            ErrorKind::ShortEcho => "short_echo",
            ErrorKind::EarlyClose => "early_close",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::ConnectFailed => "connect_failed",
            ErrorKind::Other => "other",
        }
    }

    /// Position in [`ErrorKind::ALL`], for array-indexed counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error counts by kind. Serialises as an object with one key per [`ErrorKind`] (all present).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts([u64; ErrorKind::ALL.len()]);

impl ErrorCounts {
    /// Counts one error of `kind`.
    pub fn add(&mut self, kind: ErrorKind) {
        self.0[kind.index()] += 1;
    }

    /// Errors of `kind`.
    pub fn get(&self, kind: ErrorKind) -> u64 {
        self.0[kind.index()]
    }

    /// All errors.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &ErrorCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// `(kind, count)` for every kind with a non-zero count, in report order.
    pub fn nonzero(&self) -> impl Iterator<Item = (ErrorKind, u64)> + '_ {
        ErrorKind::ALL
            .iter()
            .map(|&k| (k, self.get(k)))
            .filter(|&(_, n)| n > 0)
    }
}

impl Serialize for ErrorCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("ErrorCounts", ErrorKind::ALL.len())?;
        for k in ErrorKind::ALL {
            s.serialize_field(k.as_str(), &self.get(k))?;
        }
        s.end()
    }
}

impl<'de> Deserialize<'de> for ErrorCounts {
    /// The object [`Serialize`] writes; a kind this version does not know counts as `other`.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountsVisitor;
        impl<'de> Visitor<'de> for CountsVisitor {
            type Value = ErrorCounts;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of error counts by kind")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ErrorCounts, A::Error> {
                let mut counts = ErrorCounts::default();
                while let Some((key, n)) = map.next_entry::<String, u64>()? {
                    let kind = ErrorKind::ALL
                        .iter()
                        .copied()
                        .find(|k| k.as_str() == key)
                        .unwrap_or(ErrorKind::Other);
                    counts.0[kind.index()] += n;
                }
                Ok(counts)
            }
        }
        deserializer.deserialize_map(CountsVisitor)
    }
}

/// The errors of one second of a run: an entry of the `errors_over_time` array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorSecond {
    /// The second, counted from the start of the measured phase (0 is its first second);
    /// `null` for the errors before it (while connecting or warming up).
    pub second: Option<u64>,
    /// That second's errors, by kind (the keys of `errors_by_kind`).
    pub errors: ErrorCounts,
}

/// The first error of a run, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstError {
    /// The failing connection, numbered from 1 as everywhere a connection is named (text
    /// messages call it `Thread <connection>`).
    pub connection: u64,
    /// The kind, as in `errors_by_kind`.
    pub kind: String,
    /// Connection-relative byte offset where it happened (`null` if it never connected).
    pub offset: Option<u64>,
    /// The full message, e.g. `mismatch at byte 1234 (message 5, byte 6): expected 0x41, got 0x40`.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_stable_names_and_indices() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        assert_eq!(ErrorKind::ShortEcho.to_string(), "short_echo");
    }
    #[test]
    fn error_counts_read_back_from_json() {
        let mut c = ErrorCounts::default();
        c.add(ErrorKind::Mismatch);
        c.add(ErrorKind::Timeout);
        c.add(ErrorKind::Timeout);
        let json = serde_json::to_string(&c).unwrap();
        let back: ErrorCounts = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn error_counts_serialise_every_kind() {
        let mut c = ErrorCounts::default();
        c.add(ErrorKind::Reset);
        c.add(ErrorKind::Reset);
        let v = serde_json::to_value(c).unwrap();
        assert_eq!(v["reset"], 2);
        assert_eq!(v["mismatch"], 0);
        assert_eq!(v.as_object().unwrap().len(), ErrorKind::ALL.len());
        assert_eq!(c.nonzero().collect::<Vec<_>>(), vec![(ErrorKind::Reset, 2)]);
    }
}
