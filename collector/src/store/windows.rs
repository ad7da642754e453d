//! The ring both kinds of profile windows (CPU and heap) are kept in: the
//! newest `CAP` windows of one instance, their frames interned once per
//! instance, and the bytes they hold counted for the history cap.

use std::collections::VecDeque;

use super::names::Names;

/// A window that can say how many bytes it holds (its frames as `u32`s,
/// besides the names the ring interns).
pub trait Measured {
    /// Estimated bytes held by this window.
    fn bytes(&self) -> u64;
}

/// The newest `CAP` windows of one instance, oldest first.
#[derive(Debug)]
pub struct WindowRing<W, const CAP: usize> {
    names: Names,
    windows: VecDeque<W>,
    bytes: u64,
}

impl<W, const CAP: usize> Default for WindowRing<W, CAP> {
    fn default() -> Self {
        WindowRing {
            names: Names::default(),
            windows: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<W: Measured, const CAP: usize> WindowRing<W, CAP> {
    /// `frames` as ids of this ring's names (each new name counted).
    pub fn intern<'a>(&mut self, frames: impl IntoIterator<Item = &'a String>) -> Vec<u32> {
        frames
            .into_iter()
            .map(|f| {
                let (id, bytes) = self.names.intern(f);
                self.bytes += bytes;
                id
            })
            .collect()
    }

    /// Adds the newest window, dropping the oldest beyond `CAP`.
    pub fn push(&mut self, window: W) {
        if self.windows.len() >= CAP {
            if let Some(old) = self.windows.pop_front() {
                self.bytes -= old.bytes();
            }
        }
        self.bytes += window.bytes();
        self.windows.push_back(window);
    }

    /// The windows, oldest first.
    pub fn iter(&self) -> std::collections::vec_deque::Iter<'_, W> {
        self.windows.iter()
    }

    /// The name behind a frame id.
    pub fn name(&self, id: u32) -> &str {
        self.names.get(id)
    }

    /// A stack of frame ids (innermost first) as names, root first.
    pub fn root_first<'a>(&'a self, frames: &'a [u32]) -> impl Iterator<Item = &'a str> {
        frames.iter().rev().map(|&i| self.names.get(i))
    }

    /// Estimated bytes held: the windows and the names.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct W(u64);
    impl Measured for W {
        fn bytes(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_and_counts_what_it_holds() {
        let mut ring: WindowRing<W, 3> = WindowRing::default();
        for b in [10, 20, 30, 40] {
            ring.push(W(b));
        }
        assert_eq!(ring.iter().map(|w| w.0).collect::<Vec<_>>(), [20, 30, 40]);
        assert_eq!(ring.bytes(), 90);
        let names = ["main".to_string(), "svc::handler".to_string()];
        let ids = ring.intern(&names);
        let held = ring.bytes();
        assert!(held > 90, "new names are counted");
        assert_eq!(ring.intern(&names), ids);
        assert_eq!(ring.bytes(), held, "known names are not counted twice");
        assert_eq!(
            ring.root_first(&ids).collect::<Vec<_>>(),
            ["svc::handler", "main"]
        );
        assert_eq!(ring.name(ids[0]), "main");
    }
}
