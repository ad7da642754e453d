//! One numeric series: recent points at full resolution, older ones folded
//! into fixed-width buckets that keep min, max, sum and count (so a spike
//! survives downsampling). Both levels are kept in compressed chunks
//! ([`super::gorilla`]) decoded on query; a chunk holds up to
//! [`CHUNK_POINTS`] points (two minutes of raw 1 Hz points, two hours of
//! 1-minute buckets), and the oldest chunk goes as a whole.

use std::collections::VecDeque;

use lagscope_wire::api::Point;

use super::gorilla::{Chunk, ChunkWriter};

/// Points in a chunk: fewer cost more per point (each chunk starts with
/// its first point uncompressed), more make a query decode more than it
/// shows.
pub const CHUNK_POINTS: usize = 120;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    start_ms: u64,
    min: f64,
    max: f64,
    sum: f64,
    count: u32,
}

impl Bucket {
    fn point(&self) -> (Point, u32) {
        let p = Point {
            t_ms: self.start_ms,
            min: self.min,
            max: self.max,
            mean: self.sum / f64::from(self.count.max(1)),
        };
        (p, self.count)
    }
}

/// Limits of one series.
#[derive(Debug, Clone, Copy)]
pub struct SeriesLimits {
    /// Raw points kept: at least this many, and less than one chunk more.
    pub raw_points: usize,
    /// Width of a downsampled bucket.
    pub bucket_ms: u64,
    /// Downsampled buckets kept: at least this many, and less than one
    /// chunk more.
    pub buckets: usize,
}

impl From<&super::StoreConfig> for SeriesLimits {
    fn from(config: &super::StoreConfig) -> Self {
        SeriesLimits {
            raw_points: config.raw_points,
            bucket_ms: config.bucket_ms,
            buckets: config.buckets,
        }
    }
}

/// One level of a series: sealed chunks, oldest first, and the one being
/// written.
#[derive(Debug, Clone)]
struct Level<const N: usize> {
    sealed: VecDeque<Chunk<N>>,
    head: ChunkWriter<N>,
    /// Points in `sealed` and `head`.
    len: u32,
    /// Bytes of the sealed chunks.
    sealed_bytes: u32,
}

impl<const N: usize> Level<N> {
    fn new() -> Self {
        Level {
            sealed: VecDeque::new(),
            head: ChunkWriter::with_capacity(0),
            len: 0,
            sealed_bytes: 0,
        }
    }

    /// Appends a point, sealing the head first if it holds `chunk_points`
    /// (so the head is never empty once a point came, and holds the newest).
    fn push(&mut self, t: u64, values: [f64; N], chunk_points: usize) {
        if self.head.len() as usize >= chunk_points {
            if let Some(chunk) = self.head.seal() {
                self.sealed_bytes += chunk.bytes() as u32;
                self.sealed.push_back(chunk);
            }
        }
        self.head.push(t, values);
        self.len += 1;
    }

    /// Takes the oldest chunk if the level keeps `keep` points without it.
    fn pop_beyond(&mut self, keep: usize) -> Option<Chunk<N>> {
        let front = self.sealed.front()?;
        if (self.len - front.count) as usize >= keep {
            let chunk = self.sealed.pop_front()?;
            self.len -= chunk.count;
            self.sealed_bytes -= chunk.bytes() as u32;
            Some(chunk)
        } else {
            None
        }
    }

    /// Points of the chunks that may hold times in `[from_ms, to_ms]`,
    /// given that a point covers `width_ms` from its time (at least 1: a
    /// raw point covers its own millisecond).
    fn points_in(
        &self,
        from_ms: u64,
        to_ms: u64,
        width_ms: u64,
    ) -> impl Iterator<Item = (u64, [f64; N])> + '_ {
        let sealed = self
            .sealed
            .iter()
            .filter(move |c| c.last_t.saturating_add(width_ms) > from_ms && c.first_t <= to_ms)
            .flat_map(Chunk::iter);
        sealed.chain(self.head.iter())
    }

    fn bytes(&self) -> u64 {
        u64::from(self.sealed_bytes)
            + self.sealed.capacity() as u64 * std::mem::size_of::<Chunk<N>>() as u64
            + self.head.bytes()
    }
}

/// The downsampled level, made when the first point folds: most series
/// of a short-lived instance never get there.
#[derive(Debug, Clone)]
struct Buckets {
    /// Closed buckets as `[min, max, sum, count]`.
    closed: Level<4>,
    /// The bucket points are folding into.
    open: Option<Bucket>,
}

/// A bounded time series.
#[derive(Debug, Clone)]
///
/// Its limits are the store's, passed to each call that needs them (one
/// copy per store rather than one per series).
pub struct Series {
    raw: Level<1>,
    buckets: Option<Box<Buckets>>,
}

impl Default for Series {
    fn default() -> Self {
        Self::new()
    }
}

impl Series {
    /// An empty series.
    pub fn new() -> Self {
        Series {
            raw: Level::new(),
            buckets: None,
        }
    }

    /// Appends a point; points must arrive in time order (older ones are ignored).
    pub fn push(&mut self, limits: &SeriesLimits, t_ms: u64, value: f64) {
        if !value.is_finite() || self.last().is_some_and(|(t, _)| t_ms < t) {
            return;
        }
        let chunk = limits.raw_points.clamp(1, CHUNK_POINTS);
        self.raw.push(t_ms, [value], chunk);
        while let Some(old) = self.raw.pop_beyond(limits.raw_points) {
            for (t, [v]) in old.iter() {
                self.fold(limits, t, v);
            }
        }
    }

    fn fold(&mut self, limits: &SeriesLimits, t_ms: u64, value: f64) {
        let width = limits.bucket_ms.max(1);
        let start_ms = t_ms - t_ms % width;
        let chunk = limits.buckets.clamp(1, CHUNK_POINTS);
        // The open bucket counts among those kept.
        let keep = limits.buckets.saturating_sub(1);
        let buckets = self.buckets.get_or_insert_with(|| {
            Box::new(Buckets {
                closed: Level::new(),
                open: None,
            })
        });
        match &mut buckets.open {
            Some(b) if b.start_ms == start_ms => {
                b.min = b.min.min(value);
                b.max = b.max.max(value);
                b.sum += value;
                b.count += 1;
            }
            open => {
                let closed = open.replace(Bucket {
                    start_ms,
                    min: value,
                    max: value,
                    sum: value,
                    count: 1,
                });
                if let Some(b) = closed {
                    let values = [b.min, b.max, b.sum, f64::from(b.count)];
                    buckets.closed.push(b.start_ms, values, chunk);
                    while buckets.closed.pop_beyond(keep).is_some() {}
                }
            }
        }
    }

    /// Points in `[from_ms, to_ms]`, oldest first: buckets, then raw points.
    /// With `max_points`, adjacent points are merged (min of mins, max of maxes,
    /// count-weighted mean) until at most that many remain.
    pub fn query(
        &self,
        limits: &SeriesLimits,
        from_ms: u64,
        to_ms: u64,
        max_points: Option<usize>,
    ) -> Vec<Point> {
        let width = limits.bucket_ms;
        let in_range =
            |start_ms: u64| start_ms.saturating_add(width) > from_ms && start_ms <= to_ms;
        let closed = self
            .buckets
            .iter()
            .flat_map(|b| b.closed.points_in(from_ms, to_ms, width))
            .map(|(t, [min, max, sum, count])| Bucket {
                start_ms: t,
                min,
                max,
                sum,
                count: count as u32,
            });
        let open = self.buckets.as_ref().and_then(|b| b.open);
        let mut points: Vec<(Point, u32)> = closed
            .chain(open)
            .filter(|b| in_range(b.start_ms))
            .map(|b| b.point())
            .chain(
                self.raw
                    .points_in(from_ms, to_ms, 1)
                    .filter(|&(t, _)| t >= from_ms && t <= to_ms)
                    .map(|(t, [v])| {
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
        self.raw.head.last().map(|(t, [v])| (t, v))
    }

    /// Raw points held.
    pub fn raw_len(&self) -> usize {
        self.raw.len as usize
    }

    /// Bytes held from the allocator: the compressed chunks, the chunk
    /// queues' capacity and the series itself.
    pub fn bytes(&self) -> u64 {
        let buckets = self.buckets.as_ref().map_or(0, |b| {
            std::mem::size_of::<Buckets>() as u64 + b.closed.bytes()
        });
        std::mem::size_of::<Series>() as u64 + self.raw.bytes() + buckets
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

    /// A series with its limits beside it.
    struct Fixed {
        s: Series,
        limits: SeriesLimits,
    }

    impl Fixed {
        fn new(limits: SeriesLimits) -> Self {
            Fixed {
                s: Series::new(),
                limits,
            }
        }
        fn push(&mut self, t_ms: u64, value: f64) {
            self.s.push(&self.limits, t_ms, value);
        }
        fn query(&self, from_ms: u64, to_ms: u64, max: Option<usize>) -> Vec<Point> {
            self.s.query(&self.limits, from_ms, to_ms, max)
        }
        fn bytes(&self) -> u64 {
            self.s.bytes()
        }
        fn raw_len(&self) -> usize {
            self.s.raw_len()
        }
        fn last(&self) -> Option<(u64, f64)> {
            self.s.last()
        }
    }

    fn limits(raw: usize) -> SeriesLimits {
        SeriesLimits {
            raw_points: raw,
            bucket_ms: 10_000,
            buckets: 3,
        }
    }

    #[test]
    fn old_points_fold_into_buckets_that_keep_spikes() {
        let mut s = Fixed::new(limits(5));
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
        let limits = SeriesLimits {
            raw_points: 300,
            bucket_ms: 10_000,
            buckets: 200,
        };
        let mut s = Fixed::new(limits);
        // Past both levels' limits: 300 raw points and 200 10 s buckets.
        let fill = 300 + 200 * 10 + 2 * CHUNK_POINTS as u64 * 10;
        for i in 0..fill {
            s.push(i * 1000, (i % 17) as f64);
        }
        let full = s.bytes();
        for i in fill..fill * 20 {
            s.push(i * 1000, (i % 17) as f64);
        }
        assert!(s.bytes() <= full + full / 10, "{} then {}", full, s.bytes());
        assert!(s.raw_len() >= 300 && s.raw_len() < 300 + CHUNK_POINTS);
        let points = s.query(0, u64::MAX, None);
        let buckets = points.len() - s.raw_len();
        assert!((200..200 + CHUNK_POINTS).contains(&buckets), "{buckets}");
        // Well under the 16 bytes a raw point and 40 a bucket took when
        // kept as they came.
        let plain = 16 * s.raw_len() as u64 + 40 * buckets as u64;
        assert!(s.bytes() * 4 < plain, "{} of {plain}", s.bytes());
    }

    #[test]
    fn folded_buckets_keep_what_they_folded() {
        let mut s = Fixed::new(limits(10));
        let values: Vec<f64> = (0..400u64).map(|i| (i * 37 % 101) as f64 / 3.0).collect();
        for (i, v) in values.iter().enumerate() {
            s.push(i as u64 * 1000, *v);
        }
        let points = s.query(0, u64::MAX, None);
        let raw = s.raw_len();
        let buckets = &points[..points.len() - raw];
        assert!((3..6).contains(&buckets.len()), "{}", buckets.len());
        for b in buckets {
            let start = (b.t_ms / 1000) as usize;
            let folded = &values[start..start + 10];
            assert_eq!(b.min, folded.iter().copied().fold(f64::INFINITY, f64::min));
            assert_eq!(
                b.max,
                folded.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            );
            let mean = folded.iter().sum::<f64>() / 10.0;
            assert!((b.mean - mean).abs() < 1e-9);
        }
        let tail = &points[points.len() - raw..];
        for p in tail {
            assert_eq!(p.mean, values[(p.t_ms / 1000) as usize]);
        }
        assert_eq!(s.last(), Some((399_000, values[399])));
    }

    #[test]
    fn a_range_starting_at_a_chunks_last_point_keeps_it() {
        let mut s = Fixed::new(limits(250));
        for i in 0..250u64 {
            s.push(i * 1000, i as f64);
        }
        // Chunks of 120: the first ends at 119 s.
        let points = s.query(119_000, 120_000, None);
        let times: Vec<u64> = points.iter().map(|p| p.t_ms).collect();
        assert_eq!(times, [119_000, 120_000]);
    }

    #[test]
    fn query_respects_range_and_max_points() {
        let mut s = Fixed::new(limits(100));
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
        let mut s = Fixed::new(limits(10));
        s.push(10, 1.0);
        s.push(5, 2.0);
        s.push(20, f64::NAN);
        assert_eq!(s.query(0, 100, None).len(), 1);
    }
}
