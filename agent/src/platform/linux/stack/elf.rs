//! The few parts of a 64-bit little-endian ELF file that naming and
//! unwinding need: its loadable segments and its section headers, read by
//! offset from the open file (nothing else of it is kept in memory).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub(super) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
pub(super) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
pub(super) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const SECTION_HEADER: usize = 64;
/// Largest section-name table read.
const MAX_SECTION_NAMES: u64 = 64 * 1024;

/// A `PT_LOAD` segment: where its bytes are in the file and in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Segment {
    pub(super) offset: u64,
    pub(super) vaddr: u64,
    pub(super) size: u64,
    /// `PF_X`: it holds code.
    pub(super) executable: bool,
}

/// One section header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Section {
    /// Offset of its name in the section-name string table.
    pub(super) name: u32,
    pub(super) kind: u32,
    pub(super) addr: u64,
    pub(super) offset: u64,
    pub(super) size: u64,
    pub(super) link: u32,
}

/// An open ELF file's segments and sections.
#[derive(Debug)]
pub(super) struct Elf {
    pub(super) file: File,
    pub(super) segments: Vec<Segment>,
    pub(super) sections: Vec<Section>,
    /// The section-name string table (a few hundred bytes).
    section_names: Vec<u8>,
}

impl Elf {
    /// Reads the headers of a 64-bit little-endian ELF file.
    pub(super) fn open(path: &Path) -> Option<Self> {
        Self::read_from(File::open(path).ok()?, 0)
    }

    /// Reads the headers of an ELF image that starts at offset `base` of
    /// `file` (an image in memory through `/proc/self/mem`, say). Offsets in
    /// the result are the image's own.
    pub(super) fn read_from(file: File, base: u64) -> Option<Self> {
        let mut header = [0u8; 64];
        file.read_exact_at(&mut header, base).ok()?;
        // Magic, 64-bit class, little-endian.
        if header[..4] != *b"\x7fELF" || header[4] != 2 || header[5] != 1 {
            return None;
        }
        let phoff = u64_at(&header, 0x20)?;
        let shoff = u64_at(&header, 0x28)?;
        let phentsize = usize::from(u16_at(&header, 0x36)?);
        let phnum = usize::from(u16_at(&header, 0x38)?);
        let shentsize = usize::from(u16_at(&header, 0x3a)?);
        let shnum = usize::from(u16_at(&header, 0x3c)?);
        let names_section = usize::from(u16_at(&header, 0x3e)?);

        let mut ph = vec![0u8; phentsize * phnum];
        file.read_exact_at(&mut ph, base + phoff).ok()?;
        let segments = ph
            .chunks_exact(phentsize.max(56))
            .filter(|p| u32_at(p, 0) == Some(PT_LOAD))
            .filter_map(|p| {
                Some(Segment {
                    offset: u64_at(p, 8)?,
                    vaddr: u64_at(p, 16)?,
                    size: u64_at(p, 32)?,
                    executable: u32_at(p, 4)? & PF_X != 0,
                })
            })
            .collect();

        let mut sh = vec![0u8; shentsize * shnum];
        file.read_exact_at(&mut sh, base + shoff).ok()?;
        let sections: Vec<Section> = sh
            .chunks_exact(shentsize.max(SECTION_HEADER))
            .filter_map(|s| {
                Some(Section {
                    name: u32_at(s, 0)?,
                    kind: u32_at(s, 4)?,
                    addr: u64_at(s, 0x10)?,
                    offset: u64_at(s, 0x18)?,
                    size: u64_at(s, 0x20)?,
                    link: u32_at(s, 0x28)?,
                })
            })
            .collect();
        let section_names = match sections.get(names_section) {
            Some(t) if t.size <= MAX_SECTION_NAMES => {
                let mut names = vec![0u8; usize::try_from(t.size).ok()?];
                file.read_exact_at(&mut names, base + t.offset).ok()?;
                names
            }
            _ => Vec::new(),
        };
        Some(Elf {
            file,
            segments,
            sections,
            section_names,
        })
    }

    /// The section called `name` (`.eh_frame`, say).
    pub(super) fn section(&self, name: &str) -> Option<Section> {
        self.sections.iter().copied().find(|s| {
            let at = s.name as usize;
            self.section_names.get(at..at + name.len()) == Some(name.as_bytes())
                && self.section_names.get(at + name.len()) == Some(&0)
        })
    }
}

/// The virtual address of file offset `offset`, through the segment that
/// maps it.
pub(super) fn vaddr_of(segments: &[Segment], offset: u64) -> Option<u64> {
    segments
        .iter()
        .find(|s| offset >= s.offset && offset < s.offset + s.size)
        .map(|s| offset - s.offset + s.vaddr)
}

/// The load bias (memory address minus virtual address) of the executable
/// mapping that puts file bytes `offset..offset + len` at `start`: found
/// through the code segment inside it, since the page the mapping begins
/// on may also hold the end of the segment before.
pub(super) fn load_bias(segments: &[Segment], start: u64, offset: u64, len: u64) -> Option<u64> {
    let s = segments
        .iter()
        .find(|s| s.executable && s.offset < offset + len && s.offset + s.size > offset)?;
    Some(
        start
            .wrapping_add(s.offset)
            .wrapping_sub(offset)
            .wrapping_sub(s.vaddr),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bias_comes_from_the_code_segment_not_the_page_it_shares() {
        // As GNU ld lays out a PIE: the code segment starts mid-page, one
        // page further on in memory than in the file.
        let segments = [
            Segment {
                offset: 0,
                vaddr: 0,
                size: 0x162d78,
                executable: false,
            },
            Segment {
                offset: 0x162d80,
                vaddr: 0x163d80,
                size: 0x2d7140,
                executable: true,
            },
        ];
        let start = 0x55a1_eb30_c000;
        let bias = load_bias(&segments, start, 0x162000, 0x2d8000).expect("bias");
        assert_eq!(bias, start - 0x163000);
        assert_eq!(load_bias(&segments[..1], start, 0x162000, 0x2d8000), None);
    }
}
