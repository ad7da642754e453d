//! Compressed chunks of points, as in Gorilla (VLDB 2015) and Prometheus'
//! TSDB: timestamps as deltas of deltas (a regular interval costs one bit),
//! values XOR-ed with the previous one (an unchanged value costs one bit, a
//! slowly moving one a few meaningful bits). A point carries `N` values, so
//! a downsampled bucket's min, max, sum and count share one timestamp.
//!
//! Everything here is the store's own memory: decoding never meets input
//! from outside, and a reader that runs out of bits ends the iteration.

/// A bit stream written most significant bit first.
#[derive(Debug, Clone, Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits used in the last byte (8 when it is full or there is none).
    used: u32,
}

impl BitWriter {
    fn with_capacity(bytes: usize) -> Self {
        BitWriter {
            bytes: Vec::with_capacity(bytes),
            used: 8,
        }
    }

    /// Writes the low `n` bits of `value` (`n` ≤ 64).
    fn write(&mut self, value: u64, mut n: u32) {
        while n > 0 {
            if self.used == 8 {
                self.bytes.push(0);
                self.used = 0;
            }
            let free = 8 - self.used;
            let take = free.min(n);
            let bits = (value >> (n - take)) & ((1u64 << take) - 1);
            if let Some(last) = self.bytes.last_mut() {
                *last |= (bits as u8) << (free - take);
            }
            self.used += take;
            n -= take;
        }
    }

    fn bit(&mut self, set: bool) {
        self.write(u64::from(set), 1);
    }
}

/// Reads what a [`BitWriter`] wrote, a 64-bit word at a time.
#[derive(Debug, Clone)]
struct BitReader<'a> {
    bytes: &'a [u8],
    /// Next byte to load.
    at: usize,
    /// Loaded bits, left-aligned.
    word: u64,
    /// How many bits of `word` are loaded.
    have: u32,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        BitReader {
            bytes,
            at: 0,
            word: 0,
            have: 0,
        }
    }

    fn refill(&mut self) {
        while self.have <= 56 {
            let Some(&byte) = self.bytes.get(self.at) else {
                return;
            };
            self.word |= u64::from(byte) << (56 - self.have);
            self.have += 8;
            self.at += 1;
        }
    }

    /// The next `n` bits (`n` ≤ 64), or `None` past the end.
    #[inline]
    fn read(&mut self, n: u32) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        if n > self.have {
            self.refill();
        }
        if n <= self.have {
            let value = self.word >> (64 - n);
            self.word = self.word.checked_shl(n).unwrap_or(0);
            self.have -= n;
            return Some(value);
        }
        // A refilled word holds at least 57 bits; wider reads come in two.
        if n > 32 {
            let high = self.read(n - 32)?;
            let low = self.read(32)?;
            return Some((high << 32) | low);
        }
        None
    }

    /// Ones before the next zero, at most `max` (≤ 8), consumed with the
    /// zero if there is one.
    #[inline]
    fn ones(&mut self, max: u32) -> Option<u32> {
        if self.have < 9 {
            self.refill();
        }
        let ones = (!self.word).leading_zeros().min(max);
        let used = if ones < max { ones + 1 } else { ones };
        if used > self.have {
            return None;
        }
        self.word = self.word.checked_shl(used).unwrap_or(0);
        self.have -= used;
        Some(ones)
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Prefix widths of a timestamp's delta of delta: `0` for none, then
/// `10`, `110`, `1110` with that many bits of the zigzagged value, `1111`
/// with all 64. The first tier holds a 1 Hz sender's jitter of a few ms.
const DOD_TIERS: [u32; 3] = [5, 9, 14];

/// One value column's XOR state.
#[derive(Debug, Clone, Copy, Default)]
struct XorState {
    prev: u64,
    /// The previous meaningful window, `lead == 64` when there is none.
    lead: u32,
    trail: u32,
}

impl XorState {
    fn first(bits: u64) -> Self {
        XorState {
            prev: bits,
            lead: 64,
            trail: 0,
        }
    }

    fn encode(&mut self, out: &mut BitWriter, bits: u64) {
        let x = bits ^ self.prev;
        self.prev = bits;
        if x == 0 {
            out.bit(false);
            return;
        }
        out.bit(true);
        let lead = x.leading_zeros().min(31);
        let trail = x.trailing_zeros();
        if self.lead < 64 && lead >= self.lead && trail >= self.trail {
            out.bit(false);
            out.write(x >> self.trail, 64 - self.lead - self.trail);
        } else {
            let len = 64 - lead - trail;
            out.bit(true);
            out.write(u64::from(lead), 5);
            out.write(u64::from(len - 1), 6);
            out.write(x >> trail, len);
            self.lead = lead;
            self.trail = trail;
        }
    }

    #[inline]
    fn decode(&mut self, input: &mut BitReader<'_>) -> Option<u64> {
        let control = input.ones(2)?;
        if control > 0 {
            if control == 2 {
                let lead = input.read(5)? as u32;
                let len = input.read(6)? as u32 + 1;
                if lead + len > 64 {
                    return None;
                }
                self.lead = lead;
                self.trail = 64 - lead - len;
            } else if self.lead >= 64 {
                return None;
            }
            let x = input.read(64 - self.lead - self.trail)? << self.trail;
            self.prev ^= x;
        }
        Some(self.prev)
    }
}

/// The running state of an encoder or decoder: last time, last delta, and
/// each column's XOR state.
#[derive(Debug, Clone, Copy)]
struct State<const N: usize> {
    t: u64,
    delta: i64,
    cols: [XorState; N],
}

/// A chunk being written. Points must come in time order (equal times are
/// allowed).
#[derive(Debug, Clone)]
pub struct ChunkWriter<const N: usize> {
    bits: BitWriter,
    first_t: u64,
    count: u32,
    state: Option<State<N>>,
}

impl<const N: usize> ChunkWriter<N> {
    /// An empty chunk that will hold about `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        ChunkWriter {
            bits: BitWriter::with_capacity(bytes),
            first_t: 0,
            count: 0,
            state: None,
        }
    }

    /// Appends a point.
    pub fn push(&mut self, t: u64, values: [f64; N]) {
        self.count += 1;
        let Some(state) = &mut self.state else {
            self.first_t = t;
            self.bits.write(t, 64);
            for v in values {
                self.bits.write(v.to_bits(), 64);
            }
            self.state = Some(State {
                t,
                delta: 0,
                cols: values.map(|v| XorState::first(v.to_bits())),
            });
            return;
        };
        let delta = t.wrapping_sub(state.t) as i64;
        let dod = zigzag(delta.wrapping_sub(state.delta));
        state.t = t;
        state.delta = delta;
        if dod == 0 {
            self.bits.bit(false);
        } else {
            let tier = DOD_TIERS.iter().position(|&w| dod < 1u64 << w);
            match tier {
                Some(i) => {
                    // i + 1 ones, then a zero.
                    self.bits.write((1u64 << (i + 2)) - 2, i as u32 + 2);
                    self.bits.write(dod, DOD_TIERS[i]);
                }
                None => {
                    self.bits.write(0b1111, 4);
                    self.bits.write(dod, 64);
                }
            }
        }
        for (col, v) in state.cols.iter_mut().zip(values) {
            col.encode(&mut self.bits, v.to_bits());
        }
    }

    /// Points written.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// No point written yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The newest point.
    pub fn last(&self) -> Option<(u64, [f64; N])> {
        self.state
            .map(|s| (s.t, s.cols.map(|c| f64::from_bits(c.prev))))
    }

    /// Bytes held from the allocator.
    pub fn bytes(&self) -> u64 {
        self.bits.bytes.capacity() as u64
    }

    /// The points written, oldest first.
    pub fn iter(&self) -> Points<'_, N> {
        Points::new(&self.bits.bytes, self.count)
    }

    /// Closes the chunk, giving back its bytes' spare capacity, and starts
    /// the next with room for as many bytes as this one took.
    pub fn seal(&mut self) -> Option<Chunk<N>> {
        let state = self.state?;
        let hint = self.bits.bytes.len();
        let bits = std::mem::replace(&mut self.bits, BitWriter::with_capacity(hint));
        let chunk = Chunk {
            first_t: self.first_t,
            last_t: state.t,
            count: self.count,
            bytes: bits.bytes.into_boxed_slice(),
        };
        self.count = 0;
        self.state = None;
        Some(chunk)
    }
}

/// A sealed chunk.
#[derive(Debug, Clone)]
pub struct Chunk<const N: usize> {
    /// Time of the oldest point.
    pub first_t: u64,
    /// Time of the newest point.
    pub last_t: u64,
    /// Points held.
    pub count: u32,
    bytes: Box<[u8]>,
}

impl<const N: usize> Chunk<N> {
    /// The points, oldest first.
    pub fn iter(&self) -> Points<'_, N> {
        Points::new(&self.bytes, self.count)
    }

    /// Bytes held from the allocator, the chunk's own fields included.
    pub fn bytes(&self) -> u64 {
        (std::mem::size_of::<Self>() + self.bytes.len()) as u64
    }
}

/// Decodes a chunk's points.
#[derive(Debug, Clone)]
pub struct Points<'a, const N: usize> {
    input: BitReader<'a>,
    remaining: u32,
    state: Option<State<N>>,
}

impl<'a, const N: usize> Points<'a, N> {
    fn new(bytes: &'a [u8], count: u32) -> Self {
        Points {
            input: BitReader::new(bytes),
            remaining: count,
            state: None,
        }
    }

    fn next_point(&mut self) -> Option<(u64, [f64; N])> {
        let Some(state) = &mut self.state else {
            let t = self.input.read(64)?;
            let mut cols = [XorState::default(); N];
            for col in &mut cols {
                *col = XorState::first(self.input.read(64)?);
            }
            let state = State { t, delta: 0, cols };
            self.state = Some(state);
            return Some((t, cols.map(|c| f64::from_bits(c.prev))));
        };
        let ones = self.input.ones(4)?;
        let dod = match ones {
            0 => 0,
            4 => self.input.read(64)?,
            n => self.input.read(DOD_TIERS[n as usize - 1])?,
        };
        state.delta = state.delta.wrapping_add(unzigzag(dod));
        state.t = state.t.wrapping_add(state.delta as u64);
        let mut values = [0.0; N];
        for (col, v) in state.cols.iter_mut().zip(&mut values) {
            *v = f64::from_bits(col.decode(&mut self.input)?);
        }
        Some((state.t, values))
    }
}

impl<const N: usize> Iterator for Points<'_, N> {
    type Item = (u64, [f64; N]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let point = self.next_point();
        if point.is_none() {
            self.remaining = 0;
        }
        point
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip<const N: usize>(points: &[(u64, [f64; N])]) -> (Vec<(u64, [f64; N])>, usize) {
        let mut w = ChunkWriter::<N>::with_capacity(0);
        for &(t, v) in points {
            w.push(t, v);
        }
        let open: Vec<_> = w.iter().collect();
        let chunk = w.seal();
        let sealed: Vec<_> = chunk.iter().flat_map(|c| c.iter()).collect();
        assert_eq!(bits_of(&open), bits_of(&sealed));
        (sealed, chunk.map_or(0, |c| c.bytes.len()))
    }

    fn bits_of<const N: usize>(points: &[(u64, [f64; N])]) -> Vec<(u64, [u64; N])> {
        points
            .iter()
            .map(|(t, v)| (*t, v.map(f64::to_bits)))
            .collect()
    }

    #[test]
    fn a_regular_constant_series_costs_about_two_bits_a_point() {
        let points: Vec<_> = (0..120u64)
            .map(|i| (1_700_000_000_000 + i * 1000, [3.5]))
            .collect();
        let (back, bytes) = roundtrip(&points);
        assert_eq!(bits_of(&back), bits_of(&points));
        // 16 bytes for the first point, 3 for the second's interval, then
        // one bit for the time and one for the value.
        assert!(bytes <= 16 + 3 + 119 * 2 / 8 + 1, "{bytes}");
    }

    #[test]
    fn jittered_times_and_small_integers_stay_small() {
        let points: Vec<_> = (0..120u64)
            .map(|i| {
                let jitter = (i * 7919) % 5;
                (
                    1_700_000_000_000 + i * 1000 + jitter,
                    [(100 + i % 9) as f64],
                )
            })
            .collect();
        let (back, bytes) = roundtrip(&points);
        assert_eq!(bits_of(&back), bits_of(&points));
        let per_point = bytes as f64 / 120.0;
        assert!(per_point < 3.0, "{per_point} bytes a point");
    }

    #[test]
    fn special_values_and_time_jumps_round_trip() {
        let points = vec![
            (0, [f64::NEG_INFINITY, -0.0]),
            (0, [f64::MAX, 0.0]),
            (5, [f64::MIN_POSITIVE, f64::NAN]),
            (u64::MAX / 2, [1.0, 1.0]),
            (u64::MAX, [1.0, 2.0]),
        ];
        let (back, _) = roundtrip(&points);
        assert_eq!(bits_of(&back), bits_of(&points));
    }

    #[test]
    fn a_truncated_chunk_ends_the_points_instead_of_inventing_them() {
        let mut w = ChunkWriter::<1>::with_capacity(0);
        for i in 0..50u64 {
            w.push(i * 1000, [i as f64 * 0.37]);
        }
        let bytes = &w.bits.bytes[..w.bits.bytes.len() / 2];
        let points: Vec<_> = Points::<1>::new(bytes, 50).collect();
        assert!(points.len() < 50);
        let expected: Vec<_> = w.iter().take(points.len()).collect();
        assert_eq!(bits_of(&points), bits_of(&expected));
    }

    proptest! {
        #[test]
        fn any_ordered_points_round_trip(
            start in any::<u64>(),
            steps in proptest::collection::vec((0u64..5_000_000, any::<f64>(), -1e6f64..1e6), 1..300),
        ) {
            let mut t = start;
            let points: Vec<(u64, [f64; 2])> = steps
                .iter()
                .map(|&(dt, a, b)| {
                    t = t.saturating_add(dt);
                    (t, [a, b.round()])
                })
                .collect();
            let (back, _) = roundtrip(&points);
            prop_assert_eq!(bits_of(&back), bits_of(&points));
        }
    }
}
