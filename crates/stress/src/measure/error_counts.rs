//! Errors counted by kind, serialised as one key per kind, and the first error kept in detail.

use std::time::Instant;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::ErrorKind;

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

/// The first error of a run, in detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRecord {
    /// The connection (0-based, global across threads).
    pub connection: u64,
    /// Its kind.
    pub kind: ErrorKind,
    /// Connection-relative byte offset, if the connection was open.
    pub offset: Option<u64>,
    /// The error's message.
    pub detail: String,
    /// When it was recorded.
    pub at: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

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
