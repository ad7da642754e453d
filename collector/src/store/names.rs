//! Frame names interned per instance: a profile window stores a `u32` per
//! frame, and each distinct name once.

use std::collections::HashMap;

/// Names by id and ids by name.
#[derive(Debug, Default)]
pub struct Names {
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Names {
    /// The id of `name`, and the bytes newly held for it (0 if it was known).
    pub fn intern(&mut self, name: &str) -> (u32, u64) {
        if let Some(&id) = self.ids.get(name) {
            return (id, 0);
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        (id, 2 * name.len() as u64 + 48)
    }

    /// The name of `id` (empty for an id it never gave).
    pub fn get(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_held_once() {
        let mut n = Names::default();
        let (a, bytes) = n.intern("svc::handler");
        assert!(bytes > 0);
        assert_eq!(n.intern("svc::handler"), (a, 0));
        assert_ne!(n.intern("main").0, a);
        assert_eq!(n.get(a), "svc::handler");
        assert_eq!(n.get(99), "");
    }
}
