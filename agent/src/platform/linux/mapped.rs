//! A file mapped read-only into memory: the unwinder reads the call-frame
//! tables of the process's binaries through it without copying them, and
//! the pages it touches are the page cache's, shared with the loaded image.

use std::fs::File;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// A whole file, mapped `PROT_READ`, `MAP_PRIVATE`; unmapped on drop.
#[derive(Debug)]
pub(crate) struct MappedFile {
    address: *const u8,
    len: usize,
    path: PathBuf,
}

// SAFETY: the mapping is read-only and owned by this value alone; reading it
// from several threads is as safe as reading a `&[u8]`.
unsafe impl Send for MappedFile {}
// SAFETY: as above: no interior mutability.
unsafe impl Sync for MappedFile {}

impl MappedFile {
    /// Maps the file at `path`; `None` if it cannot be opened or is empty.
    pub(crate) fn open(path: &Path) -> Option<Self> {
        let file = File::open(path).ok()?;
        let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
        if len == 0 {
            return None;
        }
        // SAFETY: a fresh read-only private mapping of an open descriptor;
        // the kernel picks the address. The result is checked below.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return None;
        }
        Some(MappedFile {
            address: address.cast(),
            len,
            path: path.to_path_buf(),
        })
    }

    /// The path it was opened from.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Drops the pages read so far from this process's resident memory; the
    /// next read maps them again from the page cache. What has been parsed
    /// out of them stays valid: the mapping itself is unchanged.
    pub(crate) fn release_pages(&self) {
        // SAFETY: `address..address + len` is our own private read-only
        // mapping of a file; MADV_DONTNEED on it only drops resident pages,
        // which are refilled from the file on the next access.
        unsafe {
            libc::madvise(
                self.address.cast_mut().cast(),
                self.len,
                libc::MADV_DONTNEED,
            );
        }
    }

    /// Bytes `range` of the file, if it lies inside it.
    ///
    /// A file truncated on disk after it was mapped would make reads past
    /// its new end fault (`SIGBUS`); the unwinder maps only binaries the
    /// process has loaded, which the loader itself relies on staying whole.
    pub(crate) fn get(&self, range: Range<usize>) -> Option<&[u8]> {
        if range.start > range.end || range.end > self.len {
            return None;
        }
        // SAFETY: `address..address + len` is a live read-only mapping owned
        // by `self`, and `range` lies inside it; the slice borrows `self`.
        Some(unsafe {
            std::slice::from_raw_parts(self.address.add(range.start), range.end - range.start)
        })
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `open` made, once.
        unsafe {
            libc::munmap(self.address.cast_mut().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_file_through_its_mapping() {
        let path = std::env::temp_dir().join(format!("lagscope-mapped-{}", std::process::id()));
        std::fs::write(&path, b"hello, mapping").expect("write");
        let m = MappedFile::open(&path).expect("mapped");
        assert_eq!(m.get(0..5), Some(&b"hello"[..]));
        assert_eq!(m.get(7..14), Some(&b"mapping"[..]));
        assert_eq!(m.get(7..15), None);
        m.release_pages();
        assert_eq!(m.get(0..5), Some(&b"hello"[..]), "read again after release");
        drop(m);
        std::fs::remove_file(&path).expect("remove");
    }

    #[test]
    fn an_empty_or_missing_file_is_none() {
        assert!(MappedFile::open(Path::new("/nonexistent/lagscope")).is_none());
        let path = std::env::temp_dir().join(format!("lagscope-empty-{}", std::process::id()));
        std::fs::write(&path, b"").expect("write");
        assert!(MappedFile::open(&path).is_none());
        std::fs::remove_file(&path).expect("remove");
    }
}
