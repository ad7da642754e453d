//! The DWARF sections of a mapped file, as gimli reads them (borrowed
//! from the mapping, never copied), and a unit's address ranges read from
//! its root entry alone.

use super::*;

/// A section of a mapped file, as gimli reads it.
#[derive(Debug, Clone)]
pub(crate) struct SectionData {
    pub(super) file: Arc<MappedFile>,
    pub(super) range: Range<usize>,
}

impl Deref for SectionData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.file.get(self.range.clone()).unwrap_or_default()
    }
}

pub(super) type Reader = gimli::EndianReader<gimli::RunTimeEndian, SectionData>;

/// The sections a unit's lookup reads.
pub(super) const SECTIONS: [&str; 10] = [
    ".debug_abbrev",
    ".debug_addr",
    ".debug_info",
    ".debug_line",
    ".debug_line_str",
    ".debug_ranges",
    ".debug_rnglists",
    ".debug_str",
    ".debug_str_offsets",
    ".debug_aranges",
];

/// The address ranges of a unit, from its root entry alone (not a whole
/// `gimli::Unit`, whose line-program header costs far more to read).
pub(super) fn root_ranges(
    dwarf: &gimli::Dwarf<Reader>,
    header: &gimli::UnitHeader<Reader>,
) -> Vec<gimli::Range> {
    let Ok(abbreviations) = dwarf.abbreviations(header) else {
        return Vec::new();
    };
    let mut cursor = header.entries(&abbreviations);
    let Ok(Some(root)) = cursor.next_dfs() else {
        return Vec::new();
    };
    let low = match root.attr_value(gimli::DW_AT_low_pc) {
        Some(gimli::AttributeValue::Addr(a)) => Some(a),
        _ => None,
    };
    if let Some(gimli::AttributeValue::RangeListsRef(raw)) = root.attr_value(gimli::DW_AT_ranges) {
        // DWARF 4 (what rustc emits on Linux): the offset is into
        // `.debug_ranges` as it is; DWARF 5's indexed lists need a unit.
        if header.version() >= 5 {
            return Vec::new();
        }
        let offset = gimli::RangeListsOffset(raw.0);
        let Ok(mut iter) = dwarf.ranges.ranges(
            offset,
            header.encoding(),
            low.unwrap_or(0),
            &dwarf.debug_addr,
            gimli::DebugAddrBase(0),
        ) else {
            return Vec::new();
        };
        let mut all = Vec::new();
        while let Ok(Some(r)) = iter.next() {
            if r.end > r.begin {
                all.push(r);
            }
        }
        return all;
    }
    let high = match root.attr_value(gimli::DW_AT_high_pc) {
        Some(gimli::AttributeValue::Addr(a)) => Some(a),
        Some(gimli::AttributeValue::Udata(size)) => low.map(|l| l + size),
        _ => None,
    };
    match (low, high) {
        (Some(begin), Some(end)) if end > begin => vec![gimli::Range { begin, end }],
        _ => Vec::new(),
    }
}

impl SectionData {
    pub(super) fn reader(&self) -> Reader {
        gimli::EndianReader::new(self.clone(), gimli::RunTimeEndian::Little)
    }
}
