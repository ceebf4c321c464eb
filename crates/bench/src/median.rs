//! Medians over rounds: how every figure of a design at a point is taken from its rounds, for
//! the sweep ([`aggregate`](crate::aggregate)) and the churn point ([`churn`](crate::churn))
//! alike.
//!
//! A figure is the median of the rounds' values (rounds are few and a median ignores one odd
//! round); a count of errors is the largest of any round, so that no error is hidden.

/// The median of `v` (mean of the two middle values for an even count); 0 for none.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The rounds of one design at one point, read figure by figure.
#[derive(Debug, Clone, Copy)]
pub struct Rounds<'a, T>(pub &'a [T]);

impl<T> Rounds<'_, T> {
    /// The median of `figure` over the rounds.
    pub fn median(&self, figure: impl Fn(&T) -> f64) -> f64 {
        median(&self.0.iter().map(figure).collect::<Vec<_>>())
    }

    /// The median of the count `figure` over the rounds, rounded to a count.
    pub fn median_count(&self, figure: impl Fn(&T) -> u64) -> u64 {
        self.median(|r| figure(r) as f64).round() as u64
    }

    /// The median of `figure` over the rounds that have it; `None` when none has.
    pub fn median_of_some(&self, figure: impl Fn(&T) -> Option<f64>) -> Option<f64> {
        let some: Vec<f64> = self.0.iter().filter_map(figure).collect();
        (!some.is_empty()).then(|| median(&some))
    }

    /// The largest `count` of any round (0 for none): for errors, which a median would hide.
    pub fn max(&self, count: impl Fn(&T) -> u64) -> u64 {
        self.0.iter().map(count).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn figure_by_figure() {
        let rounds = [
            (10.0, 3, Some(1.0), 0),
            (30.0, 4, None, 2),
            (20.0, 8, Some(3.0), 0),
        ];
        let r = Rounds(&rounds);
        assert_eq!(r.median(|x| x.0), 20.0);
        assert_eq!(r.median_count(|x| x.1), 4);
        assert_eq!(
            Rounds(&rounds[..2]).median_count(|x| x.1),
            4,
            "3.5 rounds to 4"
        );
        assert_eq!(r.median_of_some(|x| x.2), Some(2.0));
        assert_eq!(Rounds(&rounds[1..2]).median_of_some(|x| x.2), None);
        assert_eq!(r.max(|x| x.3), 2, "an error in one round is never hidden");
        let none: [(f64, u64, Option<f64>, u64); 0] = [];
        assert_eq!(
            (Rounds(&none).median(|x| x.0), Rounds(&none).max(|x| x.3)),
            (0.0, 0)
        );
    }
}
