//! Names for code addresses from ELF symbol tables alone.
//!
//! Full debug info (DWARF) would add inlined frames and source lines, but
//! parsing it costs tens of MiB in the host process, which would show up in
//! the very heap figures lagscope reports. A symbol table is enough to name the
//! function an address is in, and this module keeps only a sorted
//! `(address, size, name offset)` table per mapped file (16 bytes a function);
//! names are read from the file on demand and the demangled ones cached up to
//! [`NAME_CACHE`] entries, and what each address was named up to
//! [`ADDRESS_CACHE`] addresses.
//!
//! Files are found through `/proc/self/maps`, so shared libraries (libc) are
//! named too; a file loaded after the first lookup is found when an address
//! falls outside every known mapping.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::elf::{u32_at, u64_at, vaddr_of, Elf, Segment};
use super::lines::{Inlined, Lines};

/// Demangled names kept; beyond it the cache starts over.
const NAME_CACHE: usize = 8192;
/// Addresses whose names are kept (a profile window names the same hot
/// addresses again and again); beyond it the cache starts over.
const ADDRESS_CACHE: usize = 8192;
/// Longest symbol name read from a file.
const MAX_NAME: usize = 1024;

/// One executable mapping of a file.
#[derive(Debug, Clone)]
struct Mapping {
    start: usize,
    end: usize,
    offset: u64,
    file: usize,
}

/// A function in a file's symbol table.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    address: u64,
    size: u32,
    name: u32,
}

/// What we keep of one ELF file.
#[derive(Debug)]
struct Table {
    file: File,
    /// Its PT_LOAD segments.
    segments: Vec<Segment>,
    /// File offset of the string table the symbols' names point into.
    strings_at: u64,
    strings_len: u64,
    symbols: Vec<Symbol>,
}

/// Every file seen, and the process's executable mappings.
#[derive(Default)]
struct Symbolizer {
    paths: Vec<PathBuf>,
    tables: Vec<Option<Table>>,
    /// Each file's line tables, loaded at its first lookup (`None`: not
    /// tried yet; `Some(None)`: it has none).
    lines: Vec<Option<Option<Lines>>>,
    mappings: Vec<Mapping>,
    names: HashMap<(usize, u32), Arc<str>>,
    /// What each address looked up was named, valid while the mappings
    /// stay as they are.
    resolved: HashMap<usize, Vec<Named>>,
}

/// One name found for an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Named {
    /// The function; an inlined one with its `(file:line)`.
    pub(crate) name: Arc<str>,
    /// Whether it was inlined into the next one.
    pub(crate) inlined: bool,
}

static SYMBOLIZER: Mutex<Option<Symbolizer>> = Mutex::new(None);

/// The function containing each address (`None` where no table names it).
/// `addresses[0]` is taken as the interrupted instruction and the rest as
/// return addresses, which point just after their call.
pub(crate) fn names(addresses: &[usize]) -> Vec<Option<Arc<str>>> {
    frames(addresses)
        .into_iter()
        .map(|names| names.last().map(|n| n.name.clone()))
        .collect()
}

/// Like [`names`], with the functions inlined at each address before the
/// one they were inlined into (innermost first), where the file has line
/// tables; empty where nothing names the address.
pub(crate) fn frames(addresses: &[usize]) -> Vec<Vec<Named>> {
    let mut guard = SYMBOLIZER.lock().unwrap_or_else(|p| p.into_inner());
    let s = guard.get_or_insert_with(Symbolizer::default);
    let mut looked_up = false;
    let found = addresses
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            let a = if i == 0 { a } else { a.saturating_sub(1) };
            if let Some(known) = s.resolved.get(&a) {
                return known.clone();
            }
            looked_up = true;
            let named = s.lookup(a);
            // An address nothing names is looked up again: a file mapped
            // later may cover it.
            if !named.is_empty() {
                if s.resolved.len() >= ADDRESS_CACHE {
                    s.resolved.clear();
                }
                s.resolved.insert(a, named.clone());
            }
            named
        })
        .collect();
    if looked_up {
        for lines in s.lines.iter().flatten().flatten() {
            lines.release_pages();
        }
    }
    found
}

/// Loads the tables of every mapped file now, so the first real lookup is fast.
/// The line tables' index is built here too: it reads every unit's ranges,
/// which for a large binary takes long enough to make a first stall late if
/// done when the stall is named.
pub(crate) fn warm_up() {
    let here = warm_up as fn() as usize;
    let _ = names(&[here]);
    let mut guard = SYMBOLIZER.lock().unwrap_or_else(|p| p.into_inner());
    let s = guard.get_or_insert_with(Symbolizer::default);
    for (slot, path) in s.lines.iter_mut().zip(&s.paths) {
        let lines = slot.get_or_insert_with(|| Lines::load(path));
        if let Some(lines) = lines {
            lines.release_pages();
        }
    }
}

impl Symbolizer {
    fn lookup(&mut self, address: usize) -> Vec<Named> {
        let mapping = match self.find(address) {
            Some(m) => m,
            None => {
                self.reload_maps();
                match self.find(address) {
                    Some(m) => m,
                    None => return Vec::new(),
                }
            }
        };
        let Some(name) = self
            .symbol_name(address, &mapping)
            .or_else(|| self.file_and_offset(address, &mapping))
        else {
            return Vec::new();
        };
        // Only code compiled into a user function is looked up: inlined
        // frames inside the standard library's or tokio's own functions are
        // folded into them anyway, and their DWARF units are the largest.
        let mut inlined = if lagscope_wire::frames::is_user_frame(&name) {
            self.inlined(address, &mapping, &name)
        } else {
            Vec::new()
        };
        // Only the location could be read: it is the enclosing function's.
        let mut name = name;
        if let [only] = inlined.as_slice() {
            if only.name == *name {
                if let Some(at) = &only.location {
                    name = format!("{name} ({at})").into();
                }
                inlined.clear();
            }
        }
        let mut all: Vec<Named> = inlined
            .into_iter()
            .map(|i| Named {
                name: match i.location {
                    Some(at) => format!("{} ({at})", i.name).into(),
                    None => i.name.into(),
                },
                inlined: true,
            })
            .collect();
        all.push(Named {
            name,
            inlined: false,
        });
        all
    }

    /// The functions inlined at `address`, from the file's line tables.
    fn inlined(&mut self, address: usize, mapping: &Mapping, enclosing: &str) -> Vec<Inlined> {
        let Some(slot) = self.lines.get_mut(mapping.file) else {
            return Vec::new();
        };
        let Some(path) = self.paths.get(mapping.file) else {
            return Vec::new();
        };
        let Some(table) = self.tables.get(mapping.file).and_then(Option::as_ref) else {
            return Vec::new();
        };
        let lines = slot.get_or_insert_with(|| Lines::load(path));
        let Some(lines) = lines.as_mut() else {
            return Vec::new();
        };
        let file_offset = (address - mapping.start) as u64 + mapping.offset;
        match vaddr_of(&table.segments, file_offset) {
            Some(vaddr) => lines.inlined_at(vaddr, enclosing),
            None => Vec::new(),
        }
    }

    /// `libc.so.6+0x9ca94`: an address no symbol covers, as the file and
    /// the virtual address in it (what `objdump` and `addr2line` take).
    fn file_and_offset(&self, address: usize, mapping: &Mapping) -> Option<Arc<str>> {
        let name = self.paths.get(mapping.file)?.file_name()?.to_string_lossy();
        let file_offset = (address - mapping.start) as u64 + mapping.offset;
        let at = self
            .tables
            .get(mapping.file)
            .and_then(Option::as_ref)
            .and_then(|t| vaddr_of(&t.segments, file_offset))
            .unwrap_or(file_offset);
        Some(format!("{name}+{at:#x}").into())
    }

    fn symbol_name(&mut self, address: usize, mapping: &Mapping) -> Option<Arc<str>> {
        let file_offset = (address - mapping.start) as u64 + mapping.offset;
        let table = self.tables.get(mapping.file)?.as_ref()?;
        let vaddr = vaddr_of(&table.segments, file_offset)?;
        let i = table
            .symbols
            .partition_point(|s| s.address <= vaddr)
            .checked_sub(1)?;
        let sym = table.symbols[i];
        // Symbols without a size (hand-written assembly) cover up to the next one.
        if sym.size != 0 && vaddr >= sym.address + u64::from(sym.size) {
            return None;
        }
        let key = (mapping.file, sym.name);
        if let Some(n) = self.names.get(&key) {
            return Some(n.clone());
        }
        let raw = table.read_name(sym.name)?;
        let name: Arc<str> = format!("{:#}", rustc_demangle::demangle(&raw)).into();
        if self.names.len() >= NAME_CACHE {
            self.names.clear();
        }
        self.names.insert(key, name.clone());
        Some(name)
    }

    fn find(&self, address: usize) -> Option<Mapping> {
        let i = self
            .mappings
            .partition_point(|m| m.start <= address)
            .checked_sub(1)?;
        let m = &self.mappings[i];
        (address < m.end).then(|| m.clone())
    }

    fn reload_maps(&mut self) {
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
            return;
        };
        let mut mappings = Vec::new();
        for line in maps.lines() {
            let Some(m) = parse_maps_line(line) else {
                continue;
            };
            let file = match self.paths.iter().position(|p| p == m.3) {
                Some(i) => i,
                None => {
                    self.paths.push(m.3.to_path_buf());
                    self.tables.push(Table::load(m.3));
                    self.lines.push(None);
                    self.paths.len() - 1
                }
            };
            mappings.push(Mapping {
                start: m.0,
                end: m.1,
                offset: m.2,
                file,
            });
        }
        mappings.sort_by_key(|m| m.start);
        self.mappings = mappings;
        // An address may now be another file's.
        self.resolved.clear();
    }
}

/// (start, end, file offset, path) of an executable file mapping.
pub(super) fn parse_maps_line(line: &str) -> Option<(usize, usize, u64, &Path)> {
    let mut parts = line.split_whitespace();
    let range = parts.next()?;
    let perms = parts.next()?;
    let offset = parts.next()?;
    let _dev = parts.next()?;
    let _inode = parts.next()?;
    let path = parts.next()?;
    if !perms.contains('x') || !path.starts_with('/') {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    Some((
        usize::from_str_radix(start, 16).ok()?,
        usize::from_str_radix(end, 16).ok()?,
        u64::from_str_radix(offset, 16).ok()?,
        Path::new(path),
    ))
}

const SHT_SYMTAB: u32 = 2;
const SHT_DYNSYM: u32 = 11;
const STT_FUNC: u8 = 2;
const SYM_SIZE: usize = 24;

impl Table {
    /// Reads a 64-bit little-endian ELF file's function symbols (the full
    /// `.symtab`, or `.dynsym` when the file is stripped).
    fn load(path: &Path) -> Option<Self> {
        let elf = Elf::open(path)?;
        let sections = &elf.sections;
        let table = sections
            .iter()
            .find(|s| s.kind == SHT_SYMTAB)
            .or_else(|| sections.iter().find(|s| s.kind == SHT_DYNSYM))?;
        let (at, len) = (table.offset, table.size);
        let strings = sections.get(usize::try_from(table.link).ok()?)?;
        let (strings_at, strings_len) = (strings.offset, strings.size);

        let mut symbols = Vec::new();
        let mut chunk = vec![0u8; SYM_SIZE * 2048];
        let mut done = 0u64;
        while done < len {
            let n = usize::try_from((len - done).min(chunk.len() as u64)).ok()?;
            elf.file.read_exact_at(&mut chunk[..n], at + done).ok()?;
            for s in chunk[..n].chunks_exact(SYM_SIZE) {
                let (name, info, value, size) =
                    (u32_at(s, 0)?, s[4], u64_at(s, 8)?, u64_at(s, 16)?);
                if info & 0xf == STT_FUNC && value != 0 {
                    symbols.push(Symbol {
                        address: value,
                        size: u32::try_from(size).unwrap_or(u32::MAX),
                        name,
                    });
                }
            }
            done += n as u64;
        }
        symbols.sort_by_key(|s| s.address);
        symbols.dedup_by_key(|s| s.address);
        symbols.shrink_to_fit();
        Some(Table {
            segments: elf.segments.clone(),
            file: elf.file,
            strings_at,
            strings_len,
            symbols,
        })
    }

    fn read_name(&self, offset: u32) -> Option<String> {
        let offset = u64::from(offset);
        if offset >= self.strings_len {
            return None;
        }
        let n = usize::try_from((self.strings_len - offset).min(MAX_NAME as u64)).ok()?;
        let mut buf = vec![0u8; n];
        self.file
            .read_exact_at(&mut buf, self.strings_at + offset)
            .ok()?;
        let end = buf.iter().position(|&b| b == 0)?;
        buf.truncate(end);
        String::from_utf8(buf).ok()
    }
}

/// Bytes the loaded tables hold (for the memory budget's tests).
#[cfg(test)]
fn table_bytes() -> usize {
    let guard = SYMBOLIZER.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_ref().map_or(0, |s| {
        s.tables
            .iter()
            .flatten()
            .map(|t| t.symbols.capacity() * std::mem::size_of::<Symbol>())
            .sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn a_function_with_a_findable_name() -> usize {
        std::hint::black_box(a_function_with_a_findable_name as fn() -> usize as usize)
    }

    #[test]
    fn names_a_function_in_this_binary_and_one_in_libc() {
        let here = a_function_with_a_findable_name();
        let libc_fn = libc::getpid as unsafe extern "C" fn() -> libc::pid_t as usize;
        let names = names(&[here + 1, libc_fn + 1]);
        let first = names[0].as_deref().unwrap_or_default();
        assert!(
            first.ends_with("tests::a_function_with_a_findable_name"),
            "{first}"
        );
        assert!(!first.contains("::h"), "hash left in {first}");
        assert!(names[1].as_deref().unwrap_or_default().contains("getpid"));
    }

    #[test]
    fn unknown_addresses_have_no_name() {
        assert_eq!(names(&[8]), vec![None]);
    }

    #[test]
    fn the_table_is_small() {
        warm_up();
        let bytes = table_bytes();
        assert!(bytes > 0);
        assert!(bytes < 8 << 20, "{bytes} bytes of symbol tables");
    }

    #[test]
    fn maps_lines_are_parsed() {
        let line = "55d0c0a00000-55d0c0b00000 r-xp 00001000 08:01 1234  /usr/bin/x";
        let (s, e, o, p) = parse_maps_line(line).expect("parsed");
        assert_eq!(
            (s, e, o, p),
            (
                0x55d0c0a00000,
                0x55d0c0b00000,
                0x1000,
                Path::new("/usr/bin/x")
            )
        );
        assert!(parse_maps_line("7f00-7f01 rw-p 0 00:00 0 [heap]").is_none());
        assert!(parse_maps_line("garbage").is_none());
    }
}
