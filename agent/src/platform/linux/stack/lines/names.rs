//! Full function paths from DWARF (`crate::module::Type::method`): the
//! namespaces and types around a function's entry, read once per unit and
//! cached.

use super::*;

/// Full paths of functions, by (unit, DIE) offset, and the namespaces and
/// types of the units they were read from.
#[derive(Default)]
pub(super) struct Paths {
    pub(super) known: HashMap<(usize, usize), Option<Arc<str>>>,
    /// Per unit, used most recently last: the DIE offset ranges of its
    /// namespaces and types, so that a function's path is read from the
    /// few entries around it instead of a walk of the unit.
    scopes: Vec<(usize, Vec<(u32, u32)>)>,
}

impl Paths {
    /// The full path of the function named by entry `die` of the unit at
    /// `unit_offset` (its name inside its namespaces).
    pub(super) fn of(
        &mut self,
        unit_offset: usize,
        unit: gimli::UnitRef<'_, Reader>,
        die: gimli::UnitOffset,
    ) -> Option<Arc<str>> {
        let key = (unit_offset, die.0);
        if let Some(known) = self.known.get(&key) {
            return known.clone();
        }
        let at = touch(&mut self.scopes, unit_offset).unwrap_or_else(|| {
            add(
                &mut self.scopes,
                (unit_offset, scopes_of(unit)),
                SCOPE_UNITS,
            )
        });
        let path = function_path(unit, &self.scopes[at].1, die).map(Arc::<str>::from);
        if self.known.len() >= PATH_CACHE {
            self.known.clear();
        }
        self.known.insert(key, path.clone());
        path
    }
}

/// The offset ranges `[start, end)` of `unit`'s namespaces and types (the
/// entries a function's path is made of), in the order they start.
pub(super) fn scopes_of(unit: gimli::UnitRef<'_, Reader>) -> Vec<(u32, u32)> {
    let mut all: Vec<(u32, u32)> = Vec::new();
    // Open scopes, as (depth, index in `all`).
    let mut open: Vec<(isize, usize)> = Vec::new();
    let mut cursor = unit.entries();
    while let Ok(Some(e)) = cursor.next_dfs() {
        let depth = e.depth();
        while open.last().is_some_and(|(d, _)| *d >= depth) {
            if let Some((_, i)) = open.pop() {
                all[i].1 = offset_u32(e.offset());
            }
        }
        let scope = matches!(
            e.tag(),
            gimli::DW_TAG_namespace
                | gimli::DW_TAG_structure_type
                | gimli::DW_TAG_enumeration_type
                | gimli::DW_TAG_union_type
        );
        if scope {
            open.push((depth, all.len()));
            all.push((offset_u32(e.offset()), u32::MAX));
        }
    }
    all.shrink_to_fit();
    all
}

/// An offset inside a unit (units are far smaller than 4 GiB).
pub(super) fn offset_u32(offset: gimli::UnitOffset) -> u32 {
    u32::try_from(offset.0).unwrap_or(u32::MAX)
}

/// The path of the function entry `target` of `unit`: the names of the
/// namespaces and types in `scopes` (from [`scopes_of`]) around it, then
/// its own.
pub(super) fn function_path(
    unit: gimli::UnitRef<'_, Reader>,
    scopes: &[(u32, u32)],
    target: gimli::UnitOffset,
) -> Option<String> {
    // A method's entry has no name of its own: it points at its
    // declaration inside its type, which has the name and the scopes.
    let target = match unit
        .entry(target)
        .ok()?
        .attr_value(gimli::DW_AT_specification)
    {
        Some(gimli::AttributeValue::UnitRef(declaration)) => declaration,
        _ => target,
    };
    let at = offset_u32(target);
    let name_of = |offset: gimli::UnitOffset| -> Option<String> {
        let e = unit.entry(offset).ok()?;
        let value = e.attr_value(gimli::DW_AT_name)?;
        let raw = unit.attr_string(value).ok()?;
        Some(segment(&raw.to_string_lossy().ok()?))
    };
    let before = scopes.partition_point(|(start, _)| *start < at);
    let mut path: Vec<String> = scopes[..before]
        .iter()
        .filter(|(_, end)| *end > at)
        .filter_map(|(start, _)| name_of(gimli::UnitOffset(*start as usize)))
        .collect();
    path.push(name_of(target)?);
    Some(path.join("::"))
}

/// A DWARF name as the symbol demangler writes it: closures and async
/// bodies (`{closure#0}`, `{async_fn#0}`) as `{{closure}}`, impl blocks
/// (`{impl#3}`) as `<impl>`, generic arguments dropped.
pub(super) fn segment(name: &str) -> String {
    let body = ["{closure#", "{async_fn#", "{async_block#"];
    if body.iter().any(|b| name.starts_with(b)) {
        return "{{closure}}".into();
    }
    if name.starts_with("{impl#") {
        return "<impl>".into();
    }
    match name.find('<') {
        Some(at) if at > 0 => name[..at].to_string(),
        _ => name.to_string(),
    }
}

/// `src/checkout.rs` of `/home/me/checkout/src/checkout.rs`: the path from
/// the last `src/` on, else the file name.
pub(super) fn short_path(path: &str) -> &str {
    match path.rfind("/src/") {
        Some(at) => &path[at + 1..],
        None => path.rsplit('/').next().unwrap_or(path),
    }
}
