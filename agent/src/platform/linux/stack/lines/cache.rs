//! The small most-recently-used lists the line tables' caches are kept in.

/// Moves `key`'s entry of `list` (kept used most recently last) to the end
/// and returns its index, if there is one.
pub(super) fn touch<V>(list: &mut Vec<(usize, V)>, key: usize) -> Option<usize> {
    let at = list.iter().position(|(k, _)| *k == key)?;
    let used = list.remove(at);
    list.push(used);
    Some(list.len() - 1)
}

/// Adds `entry` to `list` as the most recently used, dropping the least
/// recently used beyond `cap`; returns its index.
pub(super) fn add<V>(list: &mut Vec<(usize, V)>, entry: (usize, V), cap: usize) -> usize {
    if list.len() >= cap {
        list.remove(0);
    }
    list.push(entry);
    list.len() - 1
}
