//! Inlined functions from DWARF line tables, when the binary has them
//! (`[profile.release] debug = "line-tables-only"`, which changes no
//! generated code).
//!
//! The ELF symbol table names only the function an address was compiled
//! into; an `async fn` the compiler inlined into its caller's future has no
//! symbol of its own. The line tables' inlined-subroutine entries do name
//! it, with the file and line. They are read through a read-only mapping of
//! the file (nothing copied), and addr2line parses a compilation unit only
//! when an address falls in it, so the cost in the host is the parsed
//! units of the code that was actually sampled.

use std::collections::HashMap;

use gimli::Reader as _;
use std::ops::{Deref, Range};
use std::path::Path;
use std::sync::Arc;

use super::elf::Elf;
use cache::{add, touch};
use names::*;

mod cache;
mod names;
mod sections;

use crate::platform::linux::mapped::MappedFile;
pub(super) use sections::SectionData;
use sections::*;

// SAFETY: the bytes live in `MappedFile`'s mapping, which does not move and
// lives as long as any clone of the `Arc` does: the target address is
// stable across moves and clones, as `StableDeref` requires.
unsafe impl gimli::StableDeref for SectionData {}
// SAFETY: as above; a clone points at the same mapping.
unsafe impl gimli::CloneStableDeref for SectionData {}

/// One file's line tables: an index of which compilation unit holds which
/// addresses (from `.debug_aranges`), and an addr2line context for each of
/// the few units that sampled user code falls in — never for all of them,
/// which for a service with its dependencies means thousands of units and
/// tens of MiB.
pub(super) struct Lines {
    file: Arc<MappedFile>,
    /// Each DWARF section by name; `.debug_info` is sliced per unit.
    sections: HashMap<&'static str, SectionData>,
    /// (start, end, unit offset in `.debug_info`), sorted by start.
    ranges: Vec<(u64, u64, usize)>,
    /// Contexts of the units used most recently, newest last.
    units: Vec<(usize, addr2line::Context<Reader>)>,
    /// Full paths of inlined functions.
    paths: Paths,
    /// The whole file's DWARF, for units that refer to other units.
    dwarf: gimli::Dwarf<Reader>,
    /// Where each unit starts in `.debug_info`, sorted.
    unit_starts: Vec<usize>,
    /// Units read for [`Lines::walk`], used most recently last.
    indexes: Vec<(usize, UnitIndex)>,
    /// The inlined subroutines of functions read for [`Lines::walk`], by
    /// (unit, function) offset.
    bodies: HashMap<(usize, usize), Arc<[Node]>>,
}

/// A unit read for walking: its parsed header and where its functions are.
struct UnitIndex {
    unit: gimli::Unit<Reader>,
    /// (start, end, function entry), sorted by start.
    functions: Vec<(u64, u64, gimli::UnitOffset)>,
}

/// An inlined subroutine in a function's body, in the order of its entries.
struct Node {
    /// How many inlined subroutines it is nested in.
    depth: usize,
    ranges: Vec<(u64, u64)>,
    scope: Scope,
}

/// Bytes of `.debug_info` the index pass reads through between releases
/// of the pages it touched.
const RELEASE_EVERY: usize = 1 << 20;
/// Units kept read for walking.
const INDEXES: usize = 16;
/// Function bodies kept read for walking; beyond it the cache starts over.
const BODIES: usize = 256;

/// One frame found at an address, before it is filtered and named.
#[derive(Debug, Clone)]
struct Found {
    path: Option<Arc<str>>,
    location: Option<String>,
    own_source: bool,
}

/// Function paths kept per file; beyond it the cache starts over.
const PATH_CACHE: usize = 4096;
/// Units whose namespace and type ranges are kept per file.
const SCOPE_UNITS: usize = 32;
/// Unit contexts kept per file.
const UNITS: usize = 16;

/// A function inlined at an address: its name and where in it the address is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Inlined {
    pub(super) name: String,
    pub(super) location: Option<String>,
}

impl Lines {
    /// The line tables of the ELF file at `path`; `None` if it has none
    /// (or no `.debug_aranges` to find a unit by address).
    pub(super) fn load(path: &Path) -> Option<Self> {
        let elf = Elf::open(path)?;
        elf.section(".debug_line")?;
        let file = Arc::new(MappedFile::open(path)?);
        let mut sections = HashMap::new();
        for name in SECTIONS {
            let Some(s) = elf.section(name) else {
                continue;
            };
            let from = usize::try_from(s.offset).ok()?;
            let to = from.checked_add(usize::try_from(s.size).ok()?)?;
            file.get(from..to)?;
            sections.insert(
                name,
                SectionData {
                    file: file.clone(),
                    range: from..to,
                },
            );
        }
        sections.get(".debug_info")?;
        let aranges = gimli::DebugAranges::from(sections.get(".debug_aranges")?.reader());
        let mut ranges = Vec::new();
        let mut headers = aranges.headers();
        while let Ok(Some(header)) = headers.next() {
            let unit = header.debug_info_offset().0;
            let mut entries = header.entries();
            while let Ok(Some(e)) = entries.next() {
                if e.length() > 0 {
                    let r = e.range();
                    ranges.push((r.begin, r.end, unit));
                }
            }
        }
        // `.debug_aranges` may leave units out (rustc's often does): their
        // ranges come from their root entries, read once here.
        let covered: std::collections::HashSet<usize> = ranges.iter().map(|r| r.2).collect();
        let load = || {
            gimli::Dwarf::load(|id| -> Result<Reader, ()> {
                Ok(sections
                    .get(id.name())
                    .cloned()
                    .unwrap_or_else(|| SectionData {
                        file: file.clone(),
                        range: 0..0,
                    })
                    .reader())
            })
            .ok()
        };
        let mut dwarf = load()?;
        dwarf.populate_abbreviations_cache(gimli::AbbreviationsCacheStrategy::Duplicates);
        let mut unit_starts = Vec::new();
        let mut headers = dwarf.units();
        let mut released_at = 0;
        while let Ok(Some(header)) = headers.next() {
            let Some(offset) = header.debug_info_offset().map(|o| o.0) else {
                continue;
            };
            // Each unit's first entries fault in (and around) pages of a
            // section tens of MiB long: without letting them go as the pass
            // goes, a large binary's RSS would jump by as much at start.
            if offset - released_at >= RELEASE_EVERY {
                file.release_pages();
                released_at = offset;
            }
            unit_starts.push(offset);
            if covered.contains(&offset) {
                continue;
            }
            for r in root_ranges(&dwarf, &header) {
                ranges.push((r.begin, r.end, offset));
            }
        }
        // The abbreviations cached for the pass above would stay resident
        // (MiBs for a large binary): lookups read their unit's own.
        drop(dwarf);
        let dwarf = load()?;
        ranges.sort_unstable();
        ranges.shrink_to_fit();
        unit_starts.sort_unstable();
        unit_starts.shrink_to_fit();
        file.release_pages();
        // The pass above allocated and freed per unit: give it back.
        crate::platform::release_free_heap();
        Some(Lines {
            file,
            sections,
            ranges,
            units: Vec::new(),
            paths: Paths::default(),
            dwarf,
            unit_starts,
            indexes: Vec::new(),
            bodies: HashMap::new(),
        })
    }

    /// Drops the DWARF pages read so far from resident memory (they are
    /// read again from the page cache when needed): lookups are rare, and
    /// the sections are tens of MiB.
    pub(super) fn release_pages(&self) {
        self.file.release_pages();
    }

    /// The unit holding `vaddr`, as (its offset, a context over it alone).
    fn unit_for(&mut self, vaddr: u64) -> Option<usize> {
        let i = self
            .ranges
            .partition_point(|r| r.0 <= vaddr)
            .checked_sub(1)?;
        let (_, end, unit) = self.ranges[i];
        if vaddr >= end {
            return None;
        }
        if let Some(at) = touch(&mut self.units, unit) {
            return Some(at);
        }
        let context = self.context_for(unit)?;
        Some(add(&mut self.units, (unit, context), UNITS))
    }

    /// An addr2line context whose `.debug_info` is the one unit at `unit`.
    fn context_for(&self, unit: usize) -> Option<addr2line::Context<Reader>> {
        let info = self.sections.get(".debug_info")?;
        let header = info
            .file
            .get(info.range.start + unit..info.range.start + unit + 4)?;
        let length = u32::from_le_bytes(header.try_into().ok()?);
        if length >= 0xffff_fff0 {
            return None; // 64-bit DWARF: not emitted by rustc
        }
        let from = info.range.start + unit;
        let to = from.checked_add(4 + length as usize)?;
        if to > info.range.end {
            return None;
        }
        let one_unit = SectionData {
            file: info.file.clone(),
            range: from..to,
        };
        let empty = SectionData {
            file: info.file.clone(),
            range: 0..0,
        };
        let dwarf = gimli::Dwarf::load(|id| -> Result<Reader, ()> {
            let data = match id.name() {
                ".debug_info" => one_unit.clone(),
                // Its offsets are into the whole `.debug_info`.
                ".debug_aranges" => empty.clone(),
                name => self
                    .sections
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| empty.clone()),
            };
            Ok(data.reader())
        })
        .ok()?;
        addr2line::Context::from_dwarf(dwarf).ok()
    }

    /// The functions inlined at `vaddr`, innermost first, without the
    /// function they were inlined into (the symbol table names that one)
    /// and without the standard library's and tokio's helpers, which are
    /// folded into their caller.
    ///
    /// Names are full paths where the DWARF has namespaces (`debug =
    /// "limited"` or more). Line tables alone (`"line-tables-only"`) give a
    /// function's own name only (`hash_upload`, or `{{closure}}` for an
    /// async fn's body); such a frame is kept when its source is the
    /// service's own (not the toolchain's or a registry crate's) and is
    /// named `<crate>::…::<name>` with the crate the unit was compiled for
    /// (its own source's crate: a generic library function it was inlined
    /// into, an axum handler say, is instantiated there), else the crate of
    /// `enclosing`, the function it was inlined into; its `(file:line)`
    /// locates it.
    ///
    /// Where the unit's inlined functions cannot be read, the one entry
    /// returned is `enclosing` itself with the address's location.
    pub(super) fn inlined_at(&mut self, vaddr: u64, enclosing: &str) -> Vec<Inlined> {
        let Some(i) = self.unit_for(vaddr) else {
            return Vec::new();
        };
        let all = match self.frames(i, vaddr) {
            Some(all) => all,
            None => match self.walk(i, vaddr) {
                Some(all) => all,
                None => {
                    // Neither could read the unit's inlined functions: say
                    // at least where the address is, when it is the
                    // service's own code, as the enclosing function's
                    // location.
                    let location = self.units[i]
                        .1
                        .find_location(vaddr)
                        .ok()
                        .flatten()
                        .and_then(|l| {
                            let file = l.file.filter(|f| !is_library_source(f))?;
                            Some(format!("{}:{}", short_path(file), l.line?))
                        });
                    return location
                        .map(|location| {
                            vec![Inlined {
                                name: enclosing.to_string(),
                                location: Some(location),
                            }]
                        })
                        .unwrap_or_default();
                }
            },
        };
        // The unit's name, from its context or, for a unit that was
        // walked, its index.
        let name_of = |name: Option<&Reader>| -> Option<String> {
            Some(name?.to_string_lossy().ok()?.into_owned())
        };
        let unit_offset = self.units[i].0;
        let unit_name = self.units[i]
            .1
            .find_dwarf_and_unit(vaddr)
            .skip_all_loads()
            .and_then(|unit| name_of(unit.name.as_ref()))
            .or_else(|| {
                self.indexes
                    .iter()
                    .find(|(offset, _)| *offset == unit_offset)
                    .and_then(|(_, index)| name_of(index.unit.name.as_ref()))
            });
        let krate = unit_name
            .as_deref()
            .and_then(unit_crate)
            .or_else(|| lagscope_wire::frames::frame_crate(enclosing));
        all.into_iter()
            .filter_map(|found| {
                let path = found.path?;
                let name = if path.contains("::") {
                    path.to_string()
                } else {
                    format!("{}::…::{path}", krate.filter(|_| found.own_source)?)
                };
                lagscope_wire::frames::is_user_frame(&name).then_some(Inlined {
                    name,
                    location: found.location,
                })
            })
            .collect()
    }

    /// The functions inlined at `vaddr` as addr2line finds them in the
    /// context of unit `i`, innermost first, without the function they were
    /// compiled into; `None` if the unit refers to entries of other units
    /// (generic code's abstract origins), which a context over one unit
    /// cannot follow.
    fn frames(&mut self, i: usize, vaddr: u64) -> Option<Vec<Found>> {
        let (unit_offset, context) = &self.units[i];
        let mut frames = context.find_frames(vaddr).skip_all_loads().ok()?;
        let unit = context.find_dwarf_and_unit(vaddr).skip_all_loads();
        let mut all = Vec::new();
        while let Ok(Some(frame)) = frames.next() {
            let path = match (unit, frame.dw_die_offset) {
                (Some(unit), Some(die)) => {
                    origin_of(unit, die).and_then(|target| match target {
                        Origin::Here(target) => self.paths.of(*unit_offset, unit, target),
                        // A one-unit context has no other unit to read it from.
                        Origin::Elsewhere(_) => None,
                    })
                }
                _ => None,
            };
            let file = frame.location.as_ref().and_then(|l| l.file);
            let location = frame
                .location
                .as_ref()
                .and_then(|l| Some(file_and_line(l.file?, l.line)));
            let own_source = file.is_some_and(|f| !is_library_source(f));
            all.push(Found {
                path,
                location,
                own_source,
            });
        }
        // The last frame is the function the code was compiled into.
        all.pop();
        Some(all)
    }

    /// Like [`Lines::frames`], for a unit whose inlined functions come from
    /// other units: the unit's functions are indexed by address once, the
    /// body of the function holding `vaddr` is read once, and the inlined
    /// subroutines holding `vaddr` in it are each named from whichever unit
    /// holds their abstract origin.
    fn walk(&mut self, i: usize, vaddr: u64) -> Option<Vec<Found>> {
        let unit_offset = self.units[i].0;
        let innermost = self.units[i]
            .1
            .find_location(vaddr)
            .ok()
            .flatten()
            .and_then(|l| Some((l.file?.to_string(), l.line)));
        let at = match touch(&mut self.indexes, unit_offset) {
            Some(at) => at,
            None => {
                let index = UnitIndex::read(&self.dwarf, unit_offset)?;
                add(&mut self.indexes, (unit_offset, index), INDEXES)
            }
        };
        let index = &self.indexes[at].1;
        let here = index.unit.unit_ref(&self.dwarf);
        let f = index
            .functions
            .partition_point(|r| r.0 <= vaddr)
            .checked_sub(1)?;
        let (_, end, function) = index.functions[f];
        if vaddr >= end {
            return None;
        }
        let body = match self.bodies.get(&(unit_offset, function.0)) {
            Some(body) => body.clone(),
            None => {
                let body: Arc<[Node]> = read_body(here, function).ok()?.into();
                if self.bodies.len() >= BODIES {
                    self.bodies.clear();
                }
                self.bodies.insert((unit_offset, function.0), body.clone());
                body
            }
        };
        // Nested ranges: the subroutines holding `vaddr` come in order of
        // depth, one per depth.
        let mut chain: Vec<&Scope> = Vec::new();
        for node in body.iter() {
            if node.depth == chain.len()
                && node.ranges.iter().any(|&(b, e)| b <= vaddr && vaddr < e)
            {
                chain.push(&node.scope);
            }
        }
        Some(frames_of(
            &self.dwarf,
            &self.unit_starts,
            &mut self.paths,
            (unit_offset, here),
            &chain,
            innermost,
        ))
    }
}

impl UnitIndex {
    /// Reads the unit at `unit_offset` and the address ranges of its
    /// functions.
    fn read(dwarf: &gimli::Dwarf<Reader>, unit_offset: usize) -> Option<UnitIndex> {
        let header = dwarf
            .debug_info
            .header_from_offset(gimli::DebugInfoOffset(unit_offset))
            .ok()?;
        let unit = dwarf.unit(header).ok()?;
        let here = unit.unit_ref(dwarf);
        let mut functions = Vec::new();
        let mut entries = unit.entries();
        while let Ok(Some(entry)) = entries.next_dfs() {
            if entry.tag() != gimli::DW_TAG_subprogram {
                continue;
            }
            let Ok(mut ranges) = here.die_ranges(entry) else {
                continue;
            };
            while let Ok(Some(r)) = ranges.next() {
                if r.end > r.begin {
                    functions.push((r.begin, r.end, entry.offset()));
                }
            }
        }
        functions.sort_unstable_by_key(|f| f.0);
        Some(UnitIndex { unit, functions })
    }
}

/// The inlined subroutines of the function at `function`, in the order of
/// their entries, each with its nesting depth and address ranges.
fn read_body(
    unit: gimli::UnitRef<'_, Reader>,
    function: gimli::UnitOffset,
) -> gimli::Result<Vec<Node>> {
    let mut tree = unit.entries_tree(Some(function))?;
    let root = tree.root()?;
    let mut body = Vec::new();
    collect(unit, root, 0, &mut body)?;
    Ok(body)
}

fn collect(
    unit: gimli::UnitRef<'_, Reader>,
    node: gimli::EntriesTreeNode<'_, '_, Reader>,
    depth: usize,
    body: &mut Vec<Node>,
) -> gimli::Result<()> {
    let mut children = node.children();
    while let Some(child) = children.next()? {
        let entry = child.entry();
        match entry.tag() {
            gimli::DW_TAG_inlined_subroutine => {
                let mut ranges = Vec::new();
                let mut iter = unit.die_ranges(entry)?;
                while let Some(r) = iter.next()? {
                    if r.end > r.begin {
                        ranges.push((r.begin, r.end));
                    }
                }
                body.push(Node {
                    depth,
                    ranges,
                    scope: Scope::of(entry),
                });
                collect(unit, child, depth + 1, body)?;
            }
            gimli::DW_TAG_lexical_block => collect(unit, child, depth, body)?,
            _ => {}
        }
    }
    Ok(())
}

/// Where a function's name is: an entry of the same unit, or of another.
#[derive(Debug, Clone, Copy)]
enum Origin {
    Here(gimli::UnitOffset),
    Elsewhere(gimli::DebugInfoOffset),
}

/// The entry naming the function whose (inlined or concrete) entry is
/// `die`: its abstract origin, or itself.
fn origin_of(unit: gimli::UnitRef<'_, Reader>, die: gimli::UnitOffset) -> Option<Origin> {
    let entry = unit.entry(die).ok()?;
    match entry.attr_value(gimli::DW_AT_abstract_origin) {
        Some(gimli::AttributeValue::UnitRef(origin)) => Some(Origin::Here(origin)),
        Some(gimli::AttributeValue::DebugInfoRef(origin)) => Some(Origin::Elsewhere(origin)),
        Some(_) => None,
        None => Some(Origin::Here(die)),
    }
}

/// An inlined subroutine (or the subprogram) on the way to an address.
struct Scope {
    origin: Option<Origin>,
    /// Where it was called from: (file index, line).
    call: Option<(u64, Option<u64>)>,
}

/// The frames of `chain`, the inlined subroutines holding an address from
/// the outermost in, as [`Found`]s innermost first. `innermost` is the
/// address's own file and line, from the line table.
fn frames_of(
    dwarf: &gimli::Dwarf<Reader>,
    unit_starts: &[usize],
    paths: &mut Paths,
    (unit_offset, here): (usize, gimli::UnitRef<'_, Reader>),
    chain: &[&Scope],
    innermost: Option<(String, Option<u32>)>,
) -> Vec<Found> {
    let mut all = Vec::new();
    for k in (0..chain.len()).rev() {
        let (file, line) = match chain.get(k + 1).and_then(|callee| callee.call) {
            Some((index, line)) => (
                file_name(here, index),
                line.and_then(|l| u32::try_from(l).ok()),
            ),
            None if k == chain.len() - 1 => match &innermost {
                Some((file, line)) => (Some(file.clone()), *line),
                None => (None, None),
            },
            None => (None, None),
        };
        let path = chain[k].origin.and_then(|origin| match origin {
            Origin::Here(target) => paths.of(unit_offset, here, target),
            Origin::Elsewhere(target) => {
                let at = unit_starts
                    .partition_point(|s| *s <= target.0)
                    .checked_sub(1)?;
                let start = unit_starts[at];
                let header = dwarf
                    .debug_info
                    .header_from_offset(gimli::DebugInfoOffset(start))
                    .ok()?;
                let target = target.to_unit_offset(&header)?;
                if let Some(known) = paths.known.get(&(start, target.0)) {
                    return known.clone();
                }
                let other = dwarf.unit(header).ok()?;
                paths.of(start, other.unit_ref(dwarf), target)
            }
        });
        all.push(Found {
            path,
            own_source: file.as_deref().is_some_and(|f| !is_library_source(f)),
            location: file.map(|f| file_and_line(&f, line)),
        });
    }
    all
}

impl Scope {
    /// The origin and call site of an inlined subroutine's entry.
    fn of(entry: &gimli::DebuggingInformationEntry<Reader>) -> Scope {
        let origin = match entry.attr_value(gimli::DW_AT_abstract_origin) {
            Some(gimli::AttributeValue::UnitRef(o)) => Some(Origin::Here(o)),
            Some(gimli::AttributeValue::DebugInfoRef(o)) => Some(Origin::Elsewhere(o)),
            _ => None,
        };
        let call = match entry.attr_value(gimli::DW_AT_call_file) {
            Some(gimli::AttributeValue::FileIndex(index)) => Some((
                index,
                entry
                    .attr(gimli::DW_AT_call_line)
                    .and_then(|a| a.udata_value()),
            )),
            _ => None,
        };
        Scope { origin, call }
    }
}

/// The path of file `index` of the unit's line table, with its directory
/// (the unit's own directory for relative ones).
fn file_name(unit: gimli::UnitRef<'_, Reader>, index: u64) -> Option<String> {
    let header = unit.line_program.as_ref()?.header();
    let file = header.file(index)?;
    let text = |value| -> Option<String> {
        let raw = unit.attr_string(value).ok()?;
        Some(raw.to_string_lossy().ok()?.into_owned())
    };
    let name = text(file.path_name())?;
    if name.starts_with('/') {
        return Some(name);
    }
    let mut path = match file.directory(header).and_then(text) {
        Some(dir) if dir.starts_with('/') => dir,
        Some(dir) => match unit
            .comp_dir
            .as_ref()
            .and_then(|c| c.to_string_lossy().ok())
        {
            Some(comp) => format!("{comp}/{dir}"),
            None => dir,
        },
        None => String::new(),
    };
    if !path.is_empty() && !path.ends_with('/') {
        path.push('/');
    }
    path.push_str(&name);
    Some(path)
}

/// `src/main.rs:61`, or the file alone without a line.
fn file_and_line(file: &str, line: Option<u32>) -> String {
    let file = short_path(file);
    match line {
        Some(line) => format!("{file}:{line}"),
        None => file.to_string(),
    }
}

/// Whether a source path is the toolchain's (`/rustc/<hash>/library/…`) or
/// a dependency's from a cargo registry or git checkout.
fn is_library_source(path: &str) -> bool {
    path.starts_with("/rustc/")
        || path.contains("/.cargo/registry/")
        || path.contains("/.cargo/git/")
        || path.contains("/library/core/src/")
        || path.contains("/library/std/src/")
        || path.contains("/library/alloc/src/")
}

/// The crate a compilation unit was compiled for, from the name rustc gives
/// it: `<root file>/@/<crate>.<hash>-cgu.<n>`.
fn unit_crate(name: &str) -> Option<&str> {
    let (_, cgu) = name.rsplit_once("/@/")?;
    let krate = cgu.split('.').next()?;
    (!krate.is_empty() && krate.chars().all(|c| c.is_alphanumeric() || c == '_')).then_some(krate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_units_crate_is_read_from_its_name() {
        assert_eq!(
            unit_crate("fixtures/src/lib.rs/@/lagscope_fixtures.900ef6ba751bc1a9-cgu.10"),
            Some("lagscope_fixtures")
        );
        assert_eq!(
            unit_crate("src/main.rs/@/shipped.1a2b-cgu.0"),
            Some("shipped")
        );
        assert_eq!(
            unit_crate("into_iter<lagscope_fixtures::scenario::Scenario, 18>"),
            None
        );
        assert_eq!(unit_crate("src/lib.rs"), None);
    }

    #[test]
    fn paths_are_shortened_to_the_crate_source() {
        assert_eq!(
            short_path("/home/me/checkout/src/checkout.rs"),
            "src/checkout.rs"
        );
        assert_eq!(
            short_path("/rustc/abc/library/core/src/iter/range.rs"),
            "src/iter/range.rs"
        );
        assert_eq!(short_path("/tmp/build.rs"), "build.rs");
        assert_eq!(short_path("main.rs"), "main.rs");
    }

    #[test]
    fn locations_are_the_short_path_and_the_line() {
        assert_eq!(
            file_and_line("/home/me/checkout/src/checkout.rs", Some(88)),
            "src/checkout.rs:88"
        );
        assert_eq!(file_and_line("/tmp/build.rs", None), "build.rs");
    }

    #[test]
    fn dwarf_names_are_written_as_the_demangler_does() {
        assert_eq!(segment("{async_fn#0}"), "{{closure}}");
        assert_eq!(segment("{closure#2}"), "{{closure}}");
        assert_eq!(segment("{async_block#1}"), "{{closure}}");
        assert_eq!(segment("{impl#3}"), "<impl>");
        assert_eq!(segment("rotate_left<u64>"), "rotate_left");
        assert_eq!(segment("<impl Foo for Bar>"), "<impl Foo for Bar>");
        assert_eq!(segment("digest_request"), "digest_request");
    }

    #[test]
    fn library_sources_are_told_from_the_services_own() {
        assert!(is_library_source(
            "/rustc/59807616/library/core/src/num/mod.rs"
        ));
        assert!(is_library_source(
            "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/serde_json-1.0.1/src/de.rs"
        ));
        assert!(!is_library_source("src/main.rs"));
        assert!(!is_library_source("/home/me/checkout/src/checkout.rs"));
    }

    #[test]
    fn a_file_without_line_tables_has_none() {
        let path = std::env::temp_dir().join(format!("lagscope-nolines-{}", std::process::id()));
        std::fs::write(&path, b"not an ELF file").expect("write");
        assert!(Lines::load(&path).is_none());
        std::fs::remove_file(&path).expect("remove");
    }
}
