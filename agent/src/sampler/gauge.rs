//! User gauges: closures read once per sample on the agent's thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use crate::sample::GaugeValue;

/// A gauge's read function.
pub(crate) type GaugeFn = Box<dyn Fn() -> f64 + Send + Sync>;

/// Registered gauges. The lock is shared only by the agent thread and callers
/// of `AgentHandle::gauge`, never by the watched runtime.
#[derive(Default)]
pub(crate) struct Gauges {
    list: Mutex<Vec<(String, GaugeFn)>>,
}

impl Gauges {
    pub(crate) fn new(initial: Vec<(String, GaugeFn)>) -> Self {
        Gauges {
            list: Mutex::new(initial),
        }
    }

    /// Adds a gauge, replacing one of the same name.
    pub(crate) fn set(&self, name: String, read: GaugeFn) {
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        match list.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = read,
            None => list.push((name, read)),
        }
    }

    /// Reads every gauge. A gauge that panics reads as `None`; the panic is
    /// contained here and never reaches the host.
    pub(crate) fn read(&self) -> Vec<GaugeValue> {
        let list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        list.iter()
            .map(|(name, read)| {
                let mut gauge_value = GaugeValue::default();
                gauge_value.name = name.clone();
                gauge_value.value = catch_unwind(AssertUnwindSafe(read)).ok();
                gauge_value
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panicking_gauge_reads_as_none_and_others_still_read() {
        let g = Gauges::new(vec![("ok".into(), Box::new(|| 3.0))]);
        g.set("boom".into(), Box::new(|| panic!("user bug")));
        let values = g.read();
        assert_eq!(values[0].value, Some(3.0));
        assert_eq!(values[1].value, None);
    }

    #[test]
    fn setting_a_gauge_twice_replaces_it() {
        let g = Gauges::default();
        g.set("x".into(), Box::new(|| 1.0));
        g.set("x".into(), Box::new(|| 2.0));
        assert_eq!(g.read().len(), 1);
        assert_eq!(g.read()[0].value, Some(2.0));
    }
}
