//! A `&'static T` one thread publishes and another reads, without locks
//! (a poll hook records where the task it polls was spawned; the watchdog
//! reads it from its own thread).

use std::sync::atomic::{AtomicPtr, Ordering};

/// An atomic `Option<&'static T>`.
#[derive(Debug)]
pub(crate) struct AtomicStaticRef<T: 'static>(AtomicPtr<T>);

impl<T: 'static> AtomicStaticRef<T> {
    /// Holding nothing.
    pub(crate) const fn none() -> Self {
        AtomicStaticRef(AtomicPtr::new(std::ptr::null_mut()))
    }

    /// Publishes `value`.
    pub(crate) fn store(&self, value: &'static T, order: Ordering) {
        self.0.store(std::ptr::from_ref(value).cast_mut(), order);
    }

    /// The value last published, if any.
    pub(crate) fn load(&self, order: Ordering) -> Option<&'static T> {
        let p = self.0.load(order);
        // SAFETY: the pointer is null or was made by `store` from a
        // `&'static T`, which stays valid and is never written through.
        unsafe { p.as_ref() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_nothing_until_a_value_is_stored_from_another_thread() {
        static CELL: AtomicStaticRef<&str> = AtomicStaticRef::none();
        static VALUE: &str = "spawned here";
        assert!(CELL.load(Ordering::Acquire).is_none());
        std::thread::spawn(|| CELL.store(&VALUE, Ordering::Release))
            .join()
            .expect("the storing thread");
        assert_eq!(CELL.load(Ordering::Acquire).copied(), Some("spawned here"));
    }
}
