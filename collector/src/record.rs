//! Recordings: every stored sample appended to a file, readable after a crash.
//!
//! Format: a 16-byte header (`LAGSCOPE-REC` + format version, u32 LE), then
//! records of `[length u32 LE][crc32 u32 LE][protobuf RecordedSample]`.
//! Writes happen on a writer thread and are flushed per batch, so after
//! `kill -9` the file holds every record up to the last flush, possibly
//! followed by a torn record, which the reader skips with a warning.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

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
    dropped: Arc<AtomicU64>,
}

impl Recorder {
    /// Opens (or creates) `path` for appending and starts the writer thread.
    pub fn create(path: &Path) -> std::io::Result<Recorder> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        if file.metadata()?.len() == 0 {
            let mut header = [0u8; HEADER_LEN];
            header[..12].copy_from_slice(MAGIC);
            header[12..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
            file.write_all(&header)?;
        } else {
            // Appending to an existing recording: it must be one of ours.
            let mut header = [0u8; HEADER_LEN];
            std::io::Read::read_exact(&mut File::open(path)?, &mut header)?;
            if &header[..12] != MAGIC {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} exists and is not a lagscope recording", path.display()),
                ));
            }
        }
        let (tx, rx) = sync_channel(QUEUE);
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("lagscope-record".into())
            .spawn(move || write_loop(BufWriter::new(file), rx, &path))?;
        Ok(Recorder {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Queues a sample for writing; never blocks (drops and counts when full).
    pub fn append(&self, sample: &Sample) {
        let record = pb::RecordedSample {
            service: sample.service.clone(),
            instance: sample.instance.clone(),
            sample: Some(sample.to_pb()),
        };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(record) {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Records dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

fn write_loop(mut out: BufWriter<File>, rx: Receiver<pb::RecordedSample>, path: &Path) {
    let mut failed = false;
    while let Ok(first) = rx.recv() {
        let mut result = write_record(&mut out, &first);
        // Write whatever else is already waiting, then flush once.
        while let Ok(next) = rx.try_recv() {
            result = result.and_then(|()| write_record(&mut out, &next));
        }
        result = result.and_then(|()| out.flush());
        match result {
            Err(e) if !failed => {
                failed = true;
                eprintln!(
                    "lagscope collector: cannot write recording {}: {e}",
                    path.display()
                );
            }
            Err(_) => {}
            Ok(()) => failed = false,
        }
    }
}

fn write_record(out: &mut impl Write, record: &pb::RecordedSample) -> std::io::Result<()> {
    let payload = record.encode_to_vec();
    out.write_all(&(payload.len() as u32).to_le_bytes())?;
    out.write_all(&crc32fast::hash(&payload).to_le_bytes())?;
    out.write_all(&payload)
}

/// What reading a recording found.
#[derive(Debug, Default)]
pub struct Recording {
    /// The samples, in file order.
    pub samples: Vec<Sample>,
    /// Problem at the end of the file (a torn or corrupt record) that ended
    /// reading, with its byte offset: everything before it was read.
    pub damaged_tail: Option<(u64, String)>,
}

/// Reads a whole recording.
pub fn read(path: &Path) -> Result<Recording, RecordError> {
    let io = |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut input = BufReader::new(file);
    let mut header = [0u8; HEADER_LEN];
    input
        .read_exact(&mut header)
        .map_err(|_| RecordError::NotARecording {
            path: path.to_path_buf(),
        })?;
    if &header[..12] != MAGIC {
        return Err(RecordError::NotARecording {
            path: path.to_path_buf(),
        });
    }
    let version = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    if version != FORMAT_VERSION {
        return Err(RecordError::Version {
            path: path.to_path_buf(),
            version,
        });
    }
    let mut recording = Recording::default();
    let mut offset = HEADER_LEN as u64;
    loop {
        let mut prefix = [0u8; 8];
        match read_full(&mut input, &mut prefix).map_err(io)? {
            0 => break,
            8 => {}
            n => {
                recording.damaged_tail =
                    Some((offset, format!("torn record header ({n} of 8 bytes)")));
                break;
            }
        }
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let crc = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
        if len > MAX_MESSAGE_BYTES {
            recording.damaged_tail = Some((offset, format!("record length {len} is implausible")));
            break;
        }
        let mut payload = vec![0u8; len];
        let got = read_full(&mut input, &mut payload).map_err(io)?;
        if got < len {
            recording.damaged_tail = Some((offset, format!("torn record ({got} of {len} bytes)")));
            break;
        }
        if crc32fast::hash(&payload) != crc {
            recording.damaged_tail = Some((offset, "checksum mismatch".into()));
            break;
        }
        match pb::RecordedSample::decode(payload.as_slice()) {
            Ok(r) => {
                if let Some(s) = r.sample {
                    recording
                        .samples
                        .push(Sample::from_pb(s, &r.service, &r.instance));
                }
            }
            Err(e) => {
                recording.damaged_tail = Some((offset, format!("undecodable record: {e}")));
                break;
            }
        }
        offset += 8 + len as u64;
    }
    Ok(recording)
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

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
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

    fn write_samples(path: &Path, n: u64) {
        let rec = Recorder::create(path).expect("create");
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
        assert!(r.damaged_tail.is_none());
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
        assert!(r.damaged_tail.expect("reported").1.contains("torn"));
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
        assert_eq!(r.damaged_tail.expect("reported").1, "checksum mismatch");
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
