//! Recordings: every stored sample appended to a file, readable after a crash.
//!
//! Format: a 16-byte header (`LAGSCOPE-REC` + format version, u32 LE), then
//! records of `[length u32 LE][crc32 u32 LE][protobuf RecordedSample]`.
//! Writes happen on a writer thread and are flushed per batch, so after
//! `kill -9` the file holds every record up to the last flush, possibly
//! followed by a torn record.
//!
//! Damage is survivable both ways: the reader skips a damaged record and
//! resynchronises on the next intact one (each record carries its length and
//! checksum), reporting every damaged byte range; and `--record` onto an
//! existing file verifies it first, cuts a torn tail and appends after the
//! last intact record, so new samples never land behind garbage.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use lagscope_wire::api::RecordingStatus;
use lagscope_wire::{pb, Sample, MAX_MESSAGE_BYTES};
use prost::Message;

const MAGIC: &[u8; 12] = b"LAGSCOPE-REC";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 16;
/// Records waiting for the writer; beyond it new ones are dropped and counted.
const QUEUE: usize = 65_536;

/// Why a recording could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be opened or read.
    #[error("cannot read recording {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a lagscope recording.
    #[error("{path} is not a lagscope recording (bad header)")]
    NotARecording {
        /// The file.
        path: PathBuf,
    },
    /// Larger than one replay reads.
    #[error("{path} is larger than the {} GiB one replay reads; split it or replay a shorter recording", MAX_REPLAY_BYTES >> 30)]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The recording was written by an unknown format version.
    #[error("{path} has recording format {version}; this lagscope reads format {FORMAT_VERSION}")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: u32,
    },
}

/// Appends samples to a recording from a writer thread. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Recorder {
    tx: SyncSender<pb::RecordedSample>,
    state: Arc<RecordState>,
}

/// What the writer thread has done, for `/metrics` and the dashboard.
#[derive(Debug, Default)]
struct RecordState {
    /// Records not written: the queue was full, or the disk refused them.
    dropped: AtomicU64,
    /// When writing started to fail, ms since the epoch; 0 while it works.
    failing_since_ms: AtomicU64,
    /// When writing last came back after failing, ms since the epoch.
    resumed_ms: AtomicU64,
    /// The error that stopped writing last.
    error: Mutex<Option<String>>,
}

impl Recorder {
    /// Opens (or creates) `path` for appending and starts the writer thread.
    /// An existing recording is verified first: bytes after its last intact
    /// record (a torn tail) are cut so that new records follow intact ones;
    /// what was found is returned for the caller to say.
    pub fn create(path: &Path) -> std::io::Result<(Recorder, Vec<Damage>)> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        let mut damage = Vec::new();
        if file.metadata()?.len() == 0 {
            let mut header = [0u8; HEADER_LEN];
            header[..12].copy_from_slice(MAGIC);
            header[12..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
            file.write_all(&header)?;
        } else {
            // Appending to an existing recording: it must be one of ours.
            let bytes = std::fs::read(path)?;
            check_header(&bytes, path)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            let scan = scan(&bytes);
            if (scan.end_of_last_record as u64) < bytes.len() as u64 {
                file.set_len(scan.end_of_last_record as u64)?;
            }
            damage = scan.damage;
        }
        let written = file.metadata()?.len();
        let (tx, rx) = sync_channel(QUEUE);
        let state = Arc::new(RecordState::default());
        let writer = Writer {
            out: Some(BufWriter::new(file)),
            written,
            state: state.clone(),
            path: path.to_path_buf(),
            last_failed_ms: 0,
        };
        std::thread::Builder::new()
            .name("lagscope-record".into())
            .spawn(move || writer.run(rx))?;
        Ok((Recorder { tx, state }, damage))
    }

    /// Queues a sample for writing; never blocks (drops and counts when full).
    pub fn append(&self, sample: &Sample) {
        let record = pb::RecordedSample {
            service: sample.service.clone(),
            instance: sample.instance.clone(),
            sample: Some(sample.to_pb()),
        };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(record) {
            self.state.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Records not written: the writer fell behind, or the disk refused them.
    pub fn dropped(&self) -> u64 {
        self.state.dropped.load(Relaxed)
    }

    /// How recording goes, for the dashboard.
    pub fn status(&self) -> RecordingStatus {
        let since = self.state.failing_since_ms.load(Relaxed);
        let resumed = self.state.resumed_ms.load(Relaxed);
        RecordingStatus {
            dropped: self.dropped(),
            failing_since_ms: (since > 0).then_some(since),
            resumed_ms: (resumed > 0).then_some(resumed),
            error: self
                .state
                .error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// A recording file the writer can cut back to its last whole batch.
trait RecordFile: Write {
    /// Cuts the file to `len` bytes.
    fn truncate(&mut self, len: u64) -> std::io::Result<()>;
}

impl RecordFile for File {
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)
    }
}

/// The writer thread's side: batches of records, flushed once each. A batch
/// the disk refuses (full, say) is dropped whole and counted, the file is
/// cut back to the end of the last whole batch so it stays replayable with
/// no damage, and writing resumes by itself when the disk takes it again.
struct Writer<F: RecordFile> {
    /// Always there but while a failed batch is being discarded.
    out: Option<BufWriter<F>>,
    /// Bytes of the file up to the end of the last batch written whole.
    written: u64,
    state: Arc<RecordState>,
    path: PathBuf,
    /// When the last batch was refused, ms since the epoch.
    last_failed_ms: u64,
}

/// How long writes must go through after a failure before recording counts
/// as resumed. A nearly full disk takes a small batch now and then (cutting
/// a refused batch frees its bytes): without this the status would flap
/// between failing and resumed, and say so twice a batch.
const RESUMED_AFTER_MS: u64 = 10_000;

impl<F: RecordFile> Writer<F> {
    fn run(mut self, rx: Receiver<pb::RecordedSample>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            self.write_batch(&batch, crate::shared::now_ms());
        }
    }

    fn write_batch(&mut self, batch: &[pb::RecordedSample], now_ms: u64) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let mut bytes = 0;
        let result = batch
            .iter()
            .try_for_each(|r| write_record(out, r).map(|n| bytes += n))
            .and_then(|()| out.flush());
        let state = &self.state;
        match result {
            Ok(()) => {
                self.written += bytes;
                let failing = state.failing_since_ms.load(Relaxed) > 0;
                if failing && now_ms >= self.last_failed_ms.saturating_add(RESUMED_AFTER_MS) {
                    state.failing_since_ms.store(0, Relaxed);
                    state.resumed_ms.store(now_ms, Relaxed);
                    eprintln!(
                        "lagscope collector: recording {} again ({} records lost in all)",
                        self.path.display(),
                        state.dropped.load(Relaxed)
                    );
                }
            }
            Err(e) => {
                self.last_failed_ms = now_ms;
                state.dropped.fetch_add(batch.len() as u64, Relaxed);
                *state.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                if state.failing_since_ms.load(Relaxed) == 0 {
                    state.failing_since_ms.store(now_ms, Relaxed);
                    eprintln!(
                        "lagscope collector: cannot write recording {}: {e}; dropping records (counted) until it can",
                        self.path.display()
                    );
                }
                self.discard_partial();
            }
        }
    }

    /// Forgets what is buffered and cuts what reached the file of a batch
    /// that failed, so the next batch follows the last whole one.
    fn discard_partial(&mut self) {
        if let Some(old) = self.out.take() {
            let (mut file, _unwritten) = old.into_parts();
            let _ = file.truncate(self.written);
            self.out = Some(BufWriter::new(file));
        }
    }
}

/// Writes one record; the bytes it took.
fn write_record(out: &mut impl Write, record: &pb::RecordedSample) -> std::io::Result<u64> {
    let payload = record.encode_to_vec();
    out.write_all(&(payload.len() as u32).to_le_bytes())?;
    out.write_all(&crc32fast::hash(&payload).to_le_bytes())?;
    out.write_all(&payload)?;
    Ok(8 + payload.len() as u64)
}

/// A byte range of a recording that held no intact record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// First damaged byte.
    pub start: u64,
    /// One past the last damaged byte (the next intact record, or the end).
    pub end: u64,
    /// What was wrong at `start`.
    pub problem: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bytes {}..{} ({} bytes): {}",
            self.start,
            self.end,
            self.end - self.start,
            self.problem
        )
    }
}

/// What reading a recording found.
#[derive(Debug, Default)]
pub struct Recording {
    /// The samples of every intact record, in file order.
    pub samples: Vec<Sample>,
    /// Every damaged range, in file order; reading went on after each.
    pub damage: Vec<Damage>,
}

/// Most bytes of a recording one replay reads (what it holds in memory is
/// this plus the store's own bounds).
pub const MAX_REPLAY_BYTES: u64 = 1 << 30;

/// Reads a whole recording, skipping damaged ranges. The header is checked
/// before anything else is read, so a file that is not a recording (a
/// device, a huge log) is refused at once, and at most
/// [`MAX_REPLAY_BYTES`] are read.
pub fn read(path: &Path) -> Result<Recording, RecordError> {
    use std::io::Read;
    let io = |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut bytes = vec![0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match file.read(&mut bytes[got..]).map_err(io)? {
            0 => break,
            n => got += n,
        }
    }
    bytes.truncate(got);
    check_header(&bytes, path)?;
    (&mut file)
        .take(MAX_REPLAY_BYTES - HEADER_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_REPLAY_BYTES {
        return Err(RecordError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let scan = scan(&bytes);
    let samples = scan
        .records
        .into_iter()
        .filter_map(|r| {
            r.sample
                .map(|s| Sample::from_pb(s, &r.service, &r.instance))
        })
        .collect();
    Ok(Recording {
        samples,
        damage: scan.damage,
    })
}

fn check_header(bytes: &[u8], path: &Path) -> Result<(), RecordError> {
    if bytes.len() < HEADER_LEN || &bytes[..12] != MAGIC {
        return Err(RecordError::NotARecording {
            path: path.to_path_buf(),
        });
    }
    let version = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if version != FORMAT_VERSION {
        return Err(RecordError::Version {
            path: path.to_path_buf(),
            version,
        });
    }
    Ok(())
}

/// The intact records of a recording's bytes (header included) and the
/// ranges between them that held none.
struct Scan {
    records: Vec<pb::RecordedSample>,
    damage: Vec<Damage>,
    /// Offset just past the last intact record (the header's end if none).
    end_of_last_record: usize,
}

/// Why the record at `at` is not intact, or the record and its length.
fn record_at(bytes: &[u8], at: usize) -> Result<(pb::RecordedSample, usize), String> {
    let Some(prefix) = bytes.get(at..at + 8) else {
        return Err(format!(
            "torn record header ({} of 8 bytes)",
            bytes.len() - at
        ));
    };
    let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    let crc = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    if len > MAX_MESSAGE_BYTES {
        return Err(format!("record length {len} is implausible"));
    }
    let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
        return Err(format!(
            "torn record ({} of {len} bytes)",
            bytes.len() - at - 8
        ));
    };
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch".into());
    }
    let record =
        pb::RecordedSample::decode(payload).map_err(|e| format!("undecodable record: {e}"))?;
    if record.service.is_empty() || record.sample.is_none() {
        return Err("record without a sample".into());
    }
    Ok((record, 8 + len))
}

fn scan(bytes: &[u8]) -> Scan {
    let mut scan = Scan {
        records: Vec::new(),
        damage: Vec::new(),
        end_of_last_record: HEADER_LEN.min(bytes.len()),
    };
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        match record_at(bytes, at) {
            Ok((record, len)) => {
                scan.records.push(record);
                at += len;
                scan.end_of_last_record = at;
            }
            Err(problem) => {
                let next = resync(bytes, at);
                scan.damage.push(Damage {
                    start: at as u64,
                    end: next as u64,
                    problem,
                });
                at = next;
            }
        }
    }
    scan
}

/// The offset of the next intact record after a damaged one at `bad`, or
/// the end. The record's own length is tried first (only its payload may be
/// damaged); otherwise every following offset is, until one checks out.
fn resync(bytes: &[u8], bad: usize) -> usize {
    if let Some(prefix) = bytes.get(bad..bad + 4) {
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let next = bad + 8 + len;
        if len <= MAX_MESSAGE_BYTES && next < bytes.len() && record_at(bytes, next).is_ok() {
            return next;
        }
    }
    (bad + 1..bytes.len())
        .find(|&at| record_at(bytes, at).is_ok())
        .unwrap_or(bytes.len())
}

/// Loads a recording into a fresh store, as if its agents had just sent it.
/// Returns the store and the time of the newest sample.
pub fn into_store(
    recording: &Recording,
    config: crate::store::StoreConfig,
) -> (crate::store::Store, u64) {
    let mut store = crate::store::Store::new(config);
    let mut end_ms = 0;
    for sample in &recording.samples {
        // Each instance appears at its first sample; a full store skips the rest.
        if store.latest(&sample.service, &sample.instance).is_none() {
            let info = crate::store::AgentInfo::default();
            if store
                .connect(&sample.service, &sample.instance, info, sample.timestamp_ms)
                .is_err()
            {
                continue;
            }
        }
        end_ms = end_ms.max(sample.timestamp_ms);
        let _ = store.ingest(sample.clone());
    }
    (store, end_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests_support::sample;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lagscope-rec-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    /// A file that takes at most `room` more bytes, then fails as a full
    /// disk does.
    #[derive(Clone, Default)]
    struct Disk {
        bytes: Arc<Mutex<Vec<u8>>>,
        room: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Write for Disk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let room = self.room.load(Relaxed);
            if room == 0 {
                return Err(std::io::Error::other("No space left on device"));
            }
            let n = buf.len().min(room);
            self.room.fetch_sub(n, Relaxed);
            self.bytes
                .lock()
                .expect("lock")
                .extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl RecordFile for Disk {
        fn truncate(&mut self, len: u64) -> std::io::Result<()> {
            self.bytes.lock().expect("lock").truncate(len as usize);
            Ok(())
        }
    }

    fn records(from: u64, n: u64) -> Vec<pb::RecordedSample> {
        (from..from + n)
            .map(|i| {
                let s = sample("svc", "a", i, 1000 * i);
                pb::RecordedSample {
                    service: s.service.clone(),
                    instance: s.instance.clone(),
                    sample: Some(s.to_pb()),
                }
            })
            .collect()
    }

    #[test]
    fn a_full_disk_drops_whole_batches_counts_them_and_leaves_a_clean_file() {
        let disk = Disk::default();
        disk.room.store(usize::MAX, Relaxed);
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        disk.bytes.lock().expect("lock").extend_from_slice(&header);
        let state = Arc::new(RecordState::default());
        let mut writer = Writer {
            out: Some(BufWriter::new(disk.clone())),
            written: HEADER_LEN as u64,
            state: state.clone(),
            path: PathBuf::from("test.lsr"),
            last_failed_ms: 0,
        };
        let status = || {
            Recorder {
                tx: sync_channel(1).0,
                state: state.clone(),
            }
            .status()
        };
        writer.write_batch(&records(0, 3), 1_000);
        assert_eq!(status(), RecordingStatus::default());

        // The disk fills halfway through a batch.
        disk.room.store(50, Relaxed);
        writer.write_batch(&records(3, 4), 2_000);
        writer.write_batch(&records(7, 2), 3_000);
        let failing = status();
        assert_eq!(failing.dropped, 6);
        assert_eq!(failing.failing_since_ms, Some(2_000));
        assert!(failing.error.is_some_and(|e| e.contains("No space")));

        // Room again: writing resumes by itself and, once it has gone
        // through for a while, says when.
        disk.room.store(usize::MAX, Relaxed);
        writer.write_batch(&records(9, 2), 4_000);
        assert_eq!(status().failing_since_ms, Some(2_000));
        writer.write_batch(&records(11, 1), 3_000 + RESUMED_AFTER_MS);
        let resumed = status();
        assert_eq!(resumed.failing_since_ms, None);
        assert_eq!(resumed.resumed_ms, Some(3_000 + RESUMED_AFTER_MS));
        assert_eq!(resumed.dropped, 6);

        let bytes = disk.bytes.lock().expect("lock").clone();
        let scan = scan(&bytes);
        assert!(scan.damage.is_empty(), "{:?}", scan.damage);
        let seqs: Vec<u64> = scan
            .records
            .iter()
            .filter_map(|r| r.sample.as_ref().map(|s| s.seq))
            .collect();
        assert_eq!(seqs, [0, 1, 2, 9, 10, 11]);
    }

    #[test]
    fn a_device_that_never_ends_is_refused_at_its_header() {
        let started = std::time::Instant::now();
        let e = read(Path::new("/dev/zero")).expect_err("not a recording");
        assert!(matches!(e, RecordError::NotARecording { .. }), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    fn write_samples(path: &Path, n: u64) {
        let (rec, _) = Recorder::create(path).expect("create");
        for i in 0..n {
            rec.append(&sample("svc", "a", i, 1000 * i));
        }
        drop(rec);
        // The writer thread drains the channel once all senders are gone.
        for _ in 0..100 {
            if read(path)
                .map(|r| r.samples.len() as u64 == n)
                .unwrap_or(false)
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn round_trips_samples() {
        let path = temp("rt");
        write_samples(&path, 5);
        let r = read(&path).expect("readable");
        assert_eq!(r.samples.len(), 5);
        assert_eq!(r.samples[4], sample("svc", "a", 4, 4000));
        assert!(r.damage.is_empty());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn truncated_tail_is_skipped_and_reported() {
        let path = temp("trunc");
        write_samples(&path, 5);
        let len = std::fs::metadata(&path).expect("exists").len();
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.set_len(len - 7).expect("truncate");
        let r = read(&path).expect("readable");
        assert_eq!(r.samples.len(), 4);
        assert_eq!(r.damage.len(), 1);
        assert!(r.damage[0].problem.contains("torn"), "{:?}", r.damage);
        assert_eq!(r.damage[0].end, len - 7);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_damaged_record_mid_file_hides_none_of_the_records_after_it() {
        let path = temp("mid");
        write_samples(&path, 25);
        let mut bytes = std::fs::read(&path).expect("exists");
        // Flip five bytes inside record 15 (0-based 14): its payload.
        let scan = scan(&bytes);
        assert_eq!(scan.records.len(), 25);
        let mut at = HEADER_LEN;
        for _ in 0..14 {
            at += record_at(&bytes, at).expect("intact").1;
        }
        for b in &mut bytes[at + 20..at + 25] {
            *b ^= 0x5a;
        }
        std::fs::write(&path, &bytes).expect("write");
        let r = read(&path).expect("readable");
        assert_eq!(r.samples.len(), 24, "every intact record is read");
        assert_eq!(r.samples[14], sample("svc", "a", 15, 15_000));
        assert_eq!(r.damage.len(), 1, "{:?}", r.damage);
        assert_eq!(r.damage[0].start, at as u64);
        assert_eq!(r.damage[0].problem, "checksum mismatch");

        // A damaged length field too: found again by scanning.
        bytes[at] ^= 0xff;
        bytes[at + 1] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        let r = read(&path).expect("readable");
        assert_eq!(r.samples.len(), 24);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn recording_onto_a_torn_file_cuts_the_tail_and_every_new_sample_is_readable() {
        let path = temp("resume");
        write_samples(&path, 5);
        let len = std::fs::metadata(&path).expect("exists").len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(len - 7)
            .expect("tear");
        let (rec, damage) = Recorder::create(&path).expect("resume");
        assert_eq!(damage.len(), 1, "the torn tail is reported");
        for i in 5..10 {
            rec.append(&sample("svc", "a", i, 1000 * i));
        }
        drop(rec);
        let r = (0..100)
            .find_map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(10));
                read(&path).ok().filter(|r| r.samples.len() == 9)
            })
            .expect("4 old and 5 new samples");
        assert!(r.damage.is_empty(), "the tail was cut: {:?}", r.damage);
        assert_eq!(r.samples[8], sample("svc", "a", 9, 9000));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn flipped_byte_stops_at_the_checksum() {
        let path = temp("flip");
        write_samples(&path, 3);
        let mut bytes = std::fs::read(&path).expect("exists");
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).expect("write");
        let r = read(&path).expect("readable");
        assert_eq!(r.samples.len(), 2);
        assert_eq!(r.damage[0].problem, "checksum mismatch");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn other_files_are_refused_clearly() {
        let path = temp("other");
        std::fs::write(&path, b"hello world, not a recording").expect("write");
        assert!(matches!(
            read(&path),
            Err(RecordError::NotARecording { .. })
        ));
        assert!(
            Recorder::create(&path).is_err(),
            "never appends to a foreign file"
        );
        let _ = std::fs::remove_file(&path);
    }
}
