//! One numeric series: recent points at full resolution in a ring buffer, older
//! ones folded into fixed-width buckets that keep min, max and mean (so a spike
//! survives downsampling).

use std::collections::VecDeque;

use lagscope_wire::api::Point;

/// Bytes one raw point costs (timestamp + value).
const RAW_POINT_BYTES: u64 = 16;
/// Bytes one bucket costs.
const BUCKET_BYTES: u64 = 40;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    start_ms: u64,
    min: f64,
    max: f64,
    sum: f64,
    count: u32,
}

/// Limits of one series.
#[derive(Debug, Clone, Copy)]
pub struct SeriesLimits {
    /// Raw points kept.
    pub raw_points: usize,
    /// Width of a downsampled bucket.
    pub bucket_ms: u64,
    /// Downsampled buckets kept.
    pub buckets: usize,
}

/// A bounded time series.
#[derive(Debug, Clone)]
pub struct Series {
    raw: VecDeque<(u64, f64)>,
    buckets: VecDeque<Bucket>,
    limits: SeriesLimits,
}

impl Series {
    /// An empty series.
    pub fn new(limits: SeriesLimits) -> Self {
        Series {
            raw: VecDeque::new(),
            buckets: VecDeque::new(),
            limits,
        }
    }

    /// Appends a point; points must arrive in time order (older ones are ignored).
    pub fn push(&mut self, t_ms: u64, value: f64) {
        if !value.is_finite() || self.raw.back().is_some_and(|&(t, _)| t_ms < t) {
            return;
        }
        self.raw.push_back((t_ms, value));
        while self.raw.len() > self.limits.raw_points {
            if let Some((t, v)) = self.raw.pop_front() {
                self.fold(t, v);
            }
        }
    }

    fn fold(&mut self, t_ms: u64, value: f64) {
        let width = self.limits.bucket_ms.max(1);
        let start_ms = t_ms - t_ms % width;
        match self.buckets.back_mut() {
            Some(b) if b.start_ms == start_ms => {
                b.min = b.min.min(value);
                b.max = b.max.max(value);
                b.sum += value;
                b.count += 1;
            }
            _ => {
                self.buckets.push_back(Bucket {
                    start_ms,
                    min: value,
                    max: value,
                    sum: value,
                    count: 1,
                });
                while self.buckets.len() > self.limits.buckets {
                    self.buckets.pop_front();
                }
            }
        }
    }

    /// Points in `[from_ms, to_ms]`, oldest first: buckets, then raw points.
    /// With `max_points`, adjacent points are merged (min of mins, max of maxes,
    /// count-weighted mean) until at most that many remain.
    pub fn query(&self, from_ms: u64, to_ms: u64, max_points: Option<usize>) -> Vec<Point> {
        let mut points: Vec<(Point, u32)> = self
            .buckets
            .iter()
            .filter(|b| b.start_ms + self.limits.bucket_ms > from_ms && b.start_ms <= to_ms)
            .map(|b| {
                let p = Point {
                    t_ms: b.start_ms,
                    min: b.min,
                    max: b.max,
                    mean: b.sum / f64::from(b.count.max(1)),
                };
                (p, b.count)
            })
            .chain(
                self.raw
                    .iter()
                    .filter(|&&(t, _)| t >= from_ms && t <= to_ms)
                    .map(|&(t, v)| {
                        let p = Point {
                            t_ms: t,
                            min: v,
                            max: v,
                            mean: v,
                        };
                        (p, 1)
                    }),
            )
            .collect();
        if let Some(max) = max_points.filter(|&m| m > 0 && points.len() > m) {
            let per = points.len().div_ceil(max);
            points = points.chunks(per).map(merge).collect();
        }
        points.into_iter().map(|(p, _)| p).collect()
    }

    /// The newest value.
    pub fn last(&self) -> Option<(u64, f64)> {
        self.raw.back().copied()
    }

    /// Estimated bytes held.
    pub fn bytes(&self) -> u64 {
        // What the buffers hold from the allocator (they grow by doubling),
        // not only what they use.
        std::mem::size_of::<Series>() as u64
            + self.raw.capacity() as u64 * RAW_POINT_BYTES
            + self.buckets.capacity() as u64 * BUCKET_BYTES
    }
}

fn merge(chunk: &[(Point, u32)]) -> (Point, u32) {
    let count: u32 = chunk.iter().map(|(_, c)| c).sum();
    let sum: f64 = chunk.iter().map(|(p, c)| p.mean * f64::from(*c)).sum();
    let point = Point {
        t_ms: chunk[0].0.t_ms,
        min: chunk
            .iter()
            .map(|(p, _)| p.min)
            .fold(f64::INFINITY, f64::min),
        max: chunk
            .iter()
            .map(|(p, _)| p.max)
            .fold(f64::NEG_INFINITY, f64::max),
        mean: sum / f64::from(count.max(1)),
    };
    (point, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(raw: usize) -> SeriesLimits {
        SeriesLimits {
            raw_points: raw,
            bucket_ms: 10_000,
            buckets: 3,
        }
    }

    #[test]
    fn old_points_fold_into_buckets_that_keep_spikes() {
        let mut s = Series::new(limits(5));
        for i in 0..15u64 {
            s.push(i * 1000, if i == 3 { 100.0 } else { 1.0 });
        }
        let points = s.query(0, u64::MAX, None);
        // 10 folded points in one 10 s bucket, then 5 raw.
        assert_eq!(points.len(), 6);
        assert_eq!(points[0].max, 100.0);
        assert_eq!(points[0].min, 1.0);
        assert!((points[0].mean - 10.9).abs() < 1e-9);
        assert_eq!(points[5].t_ms, 14_000);
    }

    #[test]
    fn memory_is_bounded() {
        let mut s = Series::new(limits(5));
        for i in 0..1_000u64 {
            s.push(i * 1000, 1.0);
        }
        let full = s.bytes();
        for i in 1_000..100_000u64 {
            s.push(i * 1000, 1.0);
        }
        assert_eq!(s.bytes(), full, "a full series stops growing");
        // Buffers hold at most twice what they use (they grow by doubling).
        let used = 5 * RAW_POINT_BYTES + 3 * BUCKET_BYTES;
        assert!(
            full <= std::mem::size_of::<Series>() as u64 + 2 * used,
            "{full}"
        );
    }

    #[test]
    fn query_respects_range_and_max_points() {
        let mut s = Series::new(limits(100));
        for i in 0..100u64 {
            s.push(i, i as f64);
        }
        assert_eq!(s.query(10, 19, None).len(), 10);
        let merged = s.query(0, 99, Some(10));
        assert_eq!(merged.len(), 10);
        assert_eq!(merged[0].min, 0.0);
        assert_eq!(merged[0].max, 9.0);
        assert_eq!(merged[9].max, 99.0);
    }

    #[test]
    fn out_of_order_and_non_finite_points_are_ignored() {
        let mut s = Series::new(limits(10));
        s.push(10, 1.0);
        s.push(5, 2.0);
        s.push(20, f64::NAN);
        assert_eq!(s.query(0, 100, None).len(), 1);
    }
}
