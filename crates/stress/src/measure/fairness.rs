//! Fairness: messages per connection summarised as min, median and max.

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
}
