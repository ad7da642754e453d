//! What the rules read off a window: means and maxes of a metric, slopes
//! per minute, medians, and durations in words.

use super::*;

pub(super) const MIB: f64 = 1024.0 * 1024.0;

/// Figures the rules read off a window.
pub(super) trait Stats {
    fn means(&self, metric: Metric) -> Vec<f64>;
    fn maxes(&self, metric: Metric) -> Vec<f64>;
    fn slope_per_min(&self, metric: Metric) -> Option<f64>;
    fn window_ms(&self) -> f64;
}

impl Stats for Window {
    fn means(&self, metric: Metric) -> Vec<f64> {
        self.series
            .get(metric.series())
            .map(|p| p.iter().map(|&(_, mean, _)| mean).collect())
            .unwrap_or_default()
    }

    fn maxes(&self, metric: Metric) -> Vec<f64> {
        self.series
            .get(metric.series())
            .map(|p| p.iter().map(|&(_, _, max)| max).collect())
            .unwrap_or_default()
    }

    /// Least-squares slope of the series' means, per minute.
    fn slope_per_min(&self, metric: Metric) -> Option<f64> {
        let pts: Vec<(f64, f64)> = self
            .series
            .get(metric.series())?
            .iter()
            .map(|&(t, mean, _)| (t as f64 / 60_000.0, mean))
            .collect();
        slope(&pts)
    }

    fn window_ms(&self) -> f64 {
        (self.to_ms.saturating_sub(self.from_ms)).max(1) as f64
    }
}

pub(super) fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    Some(s[s.len() / 2])
}

pub(super) fn max(v: &[f64]) -> Option<f64> {
    v.iter().copied().max_by(f64::total_cmp)
}

/// Share of steps in which the series rose.
/// How much `v` grew from first to last without its largest single rise:
/// a one-off step (a cache filled once, symbol tables loaded) is not a
/// leak, which keeps rising.
pub(super) fn growth_beyond_largest_step(v: &[f64]) -> f64 {
    let (Some(first), Some(last)) = (v.first(), v.last()) else {
        return 0.0;
    };
    let largest = v.windows(2).map(|p| p[1] - p[0]).fold(0.0, f64::max);
    last - first - largest
}

pub(super) fn rising_share(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let up = v.windows(2).filter(|p| p[1] > p[0]).count();
    up as f64 / (v.len() - 1) as f64
}

pub(super) fn ms(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else {
        format!("{:.1} ms", us / 1e3)
    }
}
