//! Fairness: messages per connection summarised as min, median and max, and per-connection
//! figures run-length encoded so that merged results keep the exact median.

use serde::{Deserialize, Serialize};

/// Messages per connection: min, median and max over every connection of the run (including
/// connections that failed or never connected, which count 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fairness {
    /// Fewest messages any connection completed.
    pub min: u64,
    /// Median messages per connection (lower median for an even count).
    pub median: u64,
    /// Most messages any connection completed.
    pub max: u64,
}

impl Fairness {
    /// Fairness of `counts` (messages per connection); `None` when there are no connections.
    pub fn of(counts: &[u64]) -> Option<Fairness> {
        if counts.is_empty() {
            return None;
        }
        let mut sorted = counts.to_vec();
        sorted.sort_unstable();
        Some(Fairness {
            min: sorted[0],
            median: sorted[(sorted.len() - 1) / 2],
            max: sorted[sorted.len() - 1],
        })
    }
}

/// `values` sorted and run-length encoded: `[value, how many]` pairs, smallest value first.
/// Per-connection figures travel in this form so that `ringport merge` can take the exact
/// median of the union (a run where every connection did its `--count` is one pair).
pub fn run_lengths(values: &[u64]) -> Vec<[u64; 2]> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<[u64; 2]> = Vec::new();
    for v in sorted {
        match out.last_mut() {
            Some(last) if last[0] == v => last[1] += 1,
            _ => out.push([v, 1]),
        }
    }
    out
}

/// The value at sorted position `k` (0-based) of run-length encoded `runs`.
fn nth_of_runs(runs: &[[u64; 2]], k: u64) -> Option<u64> {
    let mut seen = 0;
    for &[v, n] in runs {
        seen += n;
        if k < seen {
            return Some(v);
        }
    }
    None
}

/// Min, (lower) median and max of run-length encoded `runs` (see [`run_lengths`]), which need
/// not be sorted or merged; `None` when empty.
pub fn fairness_of_runs(runs: &[[u64; 2]]) -> Option<Fairness> {
    let mut sorted = runs.to_vec();
    sorted.sort_unstable();
    let n: u64 = sorted.iter().map(|r| r[1]).sum();
    if n == 0 {
        return None;
    }
    Some(Fairness {
        min: nth_of_runs(&sorted, 0)?,
        median: nth_of_runs(&sorted, (n - 1) / 2)?,
        max: nth_of_runs(&sorted, n - 1)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fairness_min_median_max() {
        assert_eq!(
            Fairness::of(&[5, 1, 9, 3]),
            Some(Fairness {
                min: 1,
                median: 3,
                max: 9
            })
        );
        assert_eq!(
            Fairness::of(&[7]),
            Some(Fairness {
                min: 7,
                median: 7,
                max: 7
            })
        );
        assert_eq!(Fairness::of(&[]), None);
    }

    #[test]
    fn fairness_from_run_lengths_is_exact() {
        let runs = run_lengths(&[5, 3, 5, 9, 3, 3]);
        assert_eq!(runs, vec![[3, 3], [5, 2], [9, 1]]);
        // Two agents' runs, unsorted and overlapping: the union is 1 3 3 3 5 5 7 9.
        let merged = [runs.clone(), vec![[7, 1], [1, 1]]].concat();
        assert_eq!(
            fairness_of_runs(&merged),
            Some(Fairness {
                min: 1,
                median: 3,
                max: 9
            })
        );
        assert_eq!(fairness_of_runs(&[]), None);
    }
}
