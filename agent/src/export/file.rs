//! JSON-lines file sink: one [`crate::Sample`] per line, appended.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::export::queue::BoundedQueue;
use crate::sample::Sample;

pub(crate) struct FileSink {
    path: PathBuf,
    out: BufWriter<File>,
    failed: bool,
}

impl FileSink {
    pub(crate) fn open(path: &Path) -> Result<Self, Error> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| Error::File {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(FileSink {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            failed: false,
        })
    }

    /// Writes samples until the queue is closed and drained.
    pub(crate) fn run(mut self, queue: Arc<BoundedQueue<Arc<Sample>>>) {
        loop {
            match queue.pop(Duration::from_millis(500)) {
                Some(sample) => self.write(&sample),
                None if queue.is_closed() => break,
                None => {}
            }
        }
        self.flush();
    }

    fn write(&mut self, sample: &Sample) {
        let result = serde_json::to_writer(&mut self.out, sample)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            // One flush per sample: a reader (or a crash) sees whole lines promptly.
            .and_then(|()| self.out.flush());
        self.report(result);
    }

    fn flush(&mut self) {
        let result = self.out.flush();
        self.report(result);
    }

    fn report(&mut self, result: std::io::Result<()>) {
        match result {
            Ok(()) => self.failed = false,
            // Say it once per failure streak, not once per sample.
            Err(e) if !self.failed => {
                self.failed = true;
                tracing::warn!(target: "lagscope", "cannot write samples to {}: {e}",
                    self.path.display()
                );
            }
            Err(_) => {}
        }
    }
}
