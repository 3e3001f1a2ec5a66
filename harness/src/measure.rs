//! Measurements repeated over several fault cycles, summarised the way the
//! closing notes and CI logs report them: min / median / max.

use std::fmt;
use std::time::Duration;

/// min / median / max of a series (the median of an even count is the mean
/// of the two middle values).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Summary {
            n,
            min: v[0],
            median,
            max: v[n - 1],
        })
    }

    pub fn of_durations(values: &[Duration]) -> Option<Summary> {
        Summary::of(&values.iter().map(Duration::as_secs_f64).collect::<Vec<_>>())
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "min {:.1} / median {:.1} / max {:.1} (n={})",
            self.min, self.median, self.max, self.n
        )
    }
}

/// How many fault cycles a repeating scenario runs: `KE2LAB_CYCLES`, else
/// `default`.
pub fn cycles(default: usize) -> usize {
    std::env::var("KE2LAB_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_and_even_counts() {
        let s = Summary::of(&[8.3, 6.6, 6.9]).unwrap();
        assert_eq!((s.min, s.median, s.max, s.n), (6.6, 6.9, 8.3, 3));
        let s = Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(
            Summary::of(&[1.0, 2.0, 3.0]).unwrap().to_string(),
            "min 1.0 / median 2.0 / max 3.0 (n=3)"
        );
    }
}
