//! Unwinding a copied stack with the call-frame information every binary
//! carries (`.eh_frame`), for code built without frame pointers.
//!
//! A signal handler copies the interrupted registers and the top of the
//! stack ([`super::StackCopy`]); this module walks the copy afterwards, on
//! an agent thread, with framehop: each mapped file's `.eh_frame` and
//! `.eh_frame_hdr` say where every function keeps its return address, so
//! the walk goes through code whatever it does with the frame-pointer
//! register (glibc, serde_json, a crate built by cargo's default release
//! profile). This is how `perf --call-graph=dwarf` and samply unwind.
//!
//! The files are mapped read-only into the agent's address space (shared
//! page cache, nothing copied); a binary search of `.eh_frame_hdr` touches a
//! few pages per lookup. Files come from `/proc/self/map_files`, so a binary
//! replaced on disk after it started is still read as it was loaded.
//!
//! Where the copy ends before the stack does, the frame-pointer chain taken
//! in the same handler supplies the outer frames (see [`merge`]).

use std::collections::HashMap;
use std::ops::{Deref, Range};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};

use super::elf::{load_bias, Elf};
use super::symbols::parse_maps_line;
use crate::platform::linux::mapped::MappedFile;

/// Shortest time between two reads of `/proc/self/maps` prompted by an
/// address outside every known module.
const RELOAD_EVERY: Duration = Duration::from_secs(1);
/// Largest vDSO image copied (they are a few KiB).
const MAX_VDSO: usize = 64 * 1024;

/// Registers and stack bytes of an interrupted thread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Copied<'a> {
    pub(crate) pc: usize,
    pub(crate) sp: usize,
    pub(crate) fp: usize,
    /// The bytes from `sp` upwards.
    pub(crate) stack: &'a [u8],
}

impl Copied<'_> {
    /// The word at `address`, if the copy holds it.
    fn word(&self, address: u64) -> Result<u64, ()> {
        let from = usize::try_from(address)
            .ok()
            .and_then(|a| a.checked_sub(self.sp))
            .ok_or(())?;
        let bytes = self.stack.get(from..from + 8).ok_or(())?;
        Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| ())?))
    }
}

/// Where a module's unwind sections are read from.
#[derive(Clone)]
enum Image {
    /// A file mapped read-only.
    File(Arc<MappedFile>),
    /// A copy of an image that is not a file (the vDSO).
    Copy(Arc<[u8]>),
}

impl Image {
    fn get(&self, range: Range<usize>) -> Option<&[u8]> {
        match self {
            Image::File(f) => f.get(range),
            Image::Copy(bytes) => bytes.get(range),
        }
    }
}

/// A section of a module's image, as framehop reads it (empty by default).
#[derive(Clone, Default)]
struct SectionBytes {
    image: Option<Image>,
    range: Range<usize>,
}

impl Deref for SectionBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.image
            .as_ref()
            .and_then(|i| i.get(self.range.clone()))
            .unwrap_or_default()
    }
}

/// The loaded modules and framehop's caches.
struct Unwinding {
    unwinder: UnwinderX86_64<SectionBytes>,
    cache: CacheX86_64,
    /// Executable ranges with a module.
    known: Vec<Range<usize>>,
    /// Files mapped so far (`None`: not an ELF file we can read).
    files: HashMap<PathBuf, Option<Arc<MappedFile>>>,
    reloaded: Option<Instant>,
}

static UNWINDING: Mutex<Option<Unwinding>> = Mutex::new(None);

/// Return addresses of the copied stack, innermost first (the first is the
/// interrupted instruction), at most `max`; `fp_frames` is the frame-pointer
/// walk taken with the copy (same shape), used beyond the copy's end.
pub(crate) fn unwind(copy: &Copied<'_>, fp_frames: &[usize], max: usize) -> Vec<usize> {
    let mut guard = UNWINDING.lock().unwrap_or_else(|p| p.into_inner());
    let u = guard.get_or_insert_with(Unwinding::new);
    if !u.knows(copy.pc) {
        u.reload();
    }
    let (frames, complete) = u.walk(copy, max);
    merge(frames, complete, fp_frames, max)
}

/// Loads every mapped file's unwind tables now, so the first capture is fast.
pub(crate) fn warm_up() {
    let mut guard = UNWINDING.lock().unwrap_or_else(|p| p.into_inner());
    guard.get_or_insert_with(Unwinding::new);
}

/// The CFI walk, continued by the frame-pointer walk where the copy ended:
/// the outer frames of the latter begin after the CFI walk's last return
/// address. A CFI walk that got nowhere (a single frame) yields to the
/// frame-pointer walk.
fn merge(mut cfi: Vec<usize>, complete: bool, fp: &[usize], max: usize) -> Vec<usize> {
    if cfi.len() <= 1 && fp.len() > cfi.len() {
        return fp.to_vec();
    }
    if complete {
        return cfi;
    }
    if let Some(&last) = cfi.last().filter(|_| cfi.len() > 1) {
        if let Some(at) = fp.iter().skip(1).position(|&a| a == last) {
            let rest = &fp[at + 2..];
            let room = max.saturating_sub(cfi.len());
            cfi.extend(rest.iter().take(room));
        }
    }
    cfi
}

impl Unwinding {
    fn new() -> Self {
        let mut u = Unwinding {
            unwinder: UnwinderX86_64::new(),
            cache: CacheX86_64::new(),
            known: Vec::new(),
            files: HashMap::new(),
            reloaded: None,
        };
        u.reload();
        u
    }

    fn knows(&self, address: usize) -> bool {
        self.known.iter().any(|r| r.contains(&address))
    }

    /// Adds a module for every executable file mapping not yet known.
    fn reload(&mut self) {
        if self
            .reloaded
            .is_some_and(|at| at.elapsed() < RELOAD_EVERY && !self.known.is_empty())
        {
            return;
        }
        self.reloaded = Some(Instant::now());
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
            return;
        };
        for line in maps.lines() {
            if line.ends_with("[vdso]") {
                self.add_vdso(line);
                continue;
            }
            let Some((start, end, offset, path)) = parse_maps_line(line) else {
                continue;
            };
            if self.knows(start) {
                continue;
            }
            let file = self
                .files
                .entry(path.to_path_buf())
                .or_insert_with(|| map_file(start, end, path))
                .clone();
            let Some(file) = file else {
                continue;
            };
            let Some(elf) = Elf::open(file.path()) else {
                continue;
            };
            let name = path.to_string_lossy().into_owned();
            if let Some(module) = module(&elf, Image::File(file), start, end, offset, name) {
                self.unwinder.add_module(module);
                self.known.push(start..end);
            }
        }
    }

    /// The vDSO (`clock_gettime` behind `Instant::now`) is no file: its
    /// image is copied from memory (a few KiB) for its unwind tables.
    fn add_vdso(&mut self, line: &str) {
        let Some((range, _)) = line.split_once(' ') else {
            return;
        };
        let Some((start, end)) = range.split_once('-').and_then(|(s, e)| {
            Some((
                usize::from_str_radix(s, 16).ok()?,
                usize::from_str_radix(e, 16).ok()?,
            ))
        }) else {
            return;
        };
        if self.knows(start) || end <= start || end - start > MAX_VDSO {
            return;
        }
        let Ok(mem) = std::fs::File::open("/proc/self/mem") else {
            return;
        };
        let mut image = vec![0u8; end - start];
        if std::os::unix::fs::FileExt::read_exact_at(&mem, &mut image, start as u64).is_err() {
            return;
        }
        let Some(elf) = Elf::read_from(mem, start as u64) else {
            return;
        };
        let image = Image::Copy(image.into());
        if let Some(module) = module(&elf, image, start, end, 0, "[vdso]".into()) {
            self.unwinder.add_module(module);
            self.known.push(start..end);
        }
    }

    /// Walks `copy` with the CFI: the frames, and whether the walk reached
    /// the stack's root (rather than the end of the copy or a dead end).
    fn walk(&mut self, copy: &Copied<'_>, max: usize) -> (Vec<usize>, bool) {
        let mut frames = vec![copy.pc];
        let mut regs = UnwindRegsX86_64::new(copy.pc as u64, copy.sp as u64, copy.fp as u64);
        let mut address = FrameAddress::from_instruction_pointer(copy.pc as u64);
        let mut read = |a: u64| copy.word(a);
        while frames.len() < max {
            match self
                .unwinder
                .unwind_frame(address, &mut regs, &mut self.cache, &mut read)
            {
                Ok(Some(ra)) => {
                    let Some(next) = FrameAddress::from_return_address(ra) else {
                        return (frames, true);
                    };
                    let Ok(ra) = usize::try_from(ra) else {
                        break;
                    };
                    frames.push(ra);
                    address = next;
                }
                Ok(None) => return (frames, true),
                Err(_) => break,
            }
        }
        (frames, false)
    }
}

/// Maps the file behind the mapping `start..end` (through
/// `/proc/self/map_files`, falling back to `path`).
fn map_file(start: usize, end: usize, path: &Path) -> Option<Arc<MappedFile>> {
    let by_mapping = PathBuf::from(format!("/proc/self/map_files/{start:x}-{end:x}"));
    MappedFile::open(&by_mapping)
        .or_else(|| MappedFile::open(path))
        .map(Arc::new)
}

/// framehop's module for the executable mapping `start..end` of `image`
/// (whose headers `elf` holds), which maps image offset `offset` at `start`.
fn module(
    elf: &Elf,
    image: Image,
    start: usize,
    end: usize,
    offset: u64,
    name: String,
) -> Option<Module<SectionBytes>> {
    let bias = load_bias(&elf.segments, start as u64, offset, (end - start) as u64)?;
    let svma = |name: &str| elf.section(name).map(|s| s.addr..s.addr + s.size);
    let bytes = |name: &str| {
        let s = elf.section(name)?;
        let from = usize::try_from(s.offset).ok()?;
        let to = from.checked_add(usize::try_from(s.size).ok()?)?;
        image.get(from..to)?;
        Some(SectionBytes {
            image: Some(image.clone()),
            range: from..to,
        })
    };
    let eh_frame = bytes(".eh_frame")?;
    let info = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: svma(".text"),
        got_svma: svma(".got"),
        eh_frame_svma: svma(".eh_frame"),
        eh_frame: Some(eh_frame),
        eh_frame_hdr_svma: svma(".eh_frame_hdr"),
        eh_frame_hdr: bytes(".eh_frame_hdr"),
        ..Default::default()
    };
    Some(Module::new(name, start as u64..end as u64, bias, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_cfi_walk_is_kept_as_it_is() {
        assert_eq!(merge(vec![1, 2, 3], true, &[1, 9], 64), vec![1, 2, 3]);
    }

    #[test]
    fn the_frame_pointer_walk_continues_past_the_copy() {
        // The CFI walk ended at 3 (the copy ended); the FP walk lost frame 2
        // but knows what lies beyond 3.
        let fp = [1, 3, 4, 5];
        assert_eq!(merge(vec![1, 2, 3], false, &fp, 64), vec![1, 2, 3, 4, 5]);
        assert_eq!(merge(vec![1, 2, 3], false, &fp, 4), vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_cfi_walk_that_went_nowhere_yields_to_frame_pointers() {
        assert_eq!(merge(vec![1], false, &[1, 7, 8], 64), vec![1, 7, 8]);
        assert_eq!(merge(vec![1, 2], false, &[1, 7, 8], 64), vec![1, 2]);
    }

    #[test]
    fn the_vdso_and_this_binary_have_unwind_tables() {
        let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
        let u = Unwinding::new();
        let here = Unwinding::new as fn() -> Unwinding as usize;
        assert!(u.knows(here), "this binary has no module");
        if let Some(vdso) = maps.lines().find(|l| l.ends_with("[vdso]")) {
            let start = vdso
                .split('-')
                .next()
                .and_then(|s| usize::from_str_radix(s, 16).ok())
                .expect("vdso start");
            assert!(u.knows(start), "no module for the vDSO: {vdso}");
        }
    }

    #[test]
    fn words_are_read_only_from_inside_the_copy() {
        let bytes: Vec<u8> = (0u8..16).collect();
        let c = Copied {
            pc: 0,
            sp: 0x1000,
            fp: 0,
            stack: &bytes,
        };
        assert_eq!(c.word(0x1000), Ok(0x0706_0504_0302_0100));
        assert_eq!(c.word(0x1008), Ok(0x0f0e_0d0c_0b0a_0908));
        assert_eq!(c.word(0x1009), Err(()));
        assert_eq!(c.word(0xff8), Err(()));
    }
}
