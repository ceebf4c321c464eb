//! Which share of a run a result covers (`--segment I/N`): its index and count, the connections
//! and rate that are its share, and its text form `I/N`.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One share of a run: `index` of `count`, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Which share, 1 to `count`.
    pub index: usize,
    /// How many shares the run is split into.
    pub count: usize,
}

impl Segment {
    /// The whole run as one segment.
    pub const WHOLE: Segment = Segment { index: 1, count: 1 };

    /// The global connection indices of this share of `total` connections.
    pub fn range(&self, total: usize) -> Range<usize> {
        let bound = |i: usize| (total as u128 * i as u128 / self.count as u128) as usize;
        bound(self.index - 1)..bound(self.index)
    }

    /// This share's part of `rate` messages per second over `total` connections.
    pub fn rate(&self, rate: f64, total: usize) -> f64 {
        rate * self.range(total).len() as f64 / total.max(1) as f64
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Segment {
    type Err = String;

    /// `I/N` with `1 <= I <= N`; the error is one line and says how to count.
    fn from_str(s: &str) -> Result<Segment, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not I/N (e.g. 2/3: the second of three shares)"))?;
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{s}` is not I/N with whole numbers (e.g. 2/3)"))
        };
        let (index, count) = (num(i)?, num(n)?);
        if count == 0 {
            return Err(format!("`{s}`: N must be at least 1"));
        }
        if index == 0 {
            return Err(format!(
                "`{s}`: I counts from 1 (1/{count} to {count}/{count}); from a 0-based index \
                 such as JOB_COMPLETION_INDEX pass $((JOB_COMPLETION_INDEX + 1))/{count}"
            ));
        }
        if index > count {
            return Err(format!("`{s}`: I must be between 1 and {count}"));
        }
        Ok(Segment { index, count })
    }
}
