//! A waker that sees its own clones: the one `RawWaker` vtable of the
//! agent, used to find where an instrumented future registers its waker
//! (see `crate::tasks::wait`).

use std::mem::ManuallyDrop;
use std::task::{Context, RawWaker, RawWakerVTable, Waker};

/// What the waker's data pointer points at: the real waker, and what to
/// call on a clone.
struct Hooked<'a> {
    real: &'a Waker,
    on_clone: &'a (dyn Fn() + Sync),
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_waker, wake, wake_by_ref, drop_waker);

/// Calls `poll` with a context whose waker wakes `cx`'s and calls
/// `on_clone` each time it is cloned, on the cloning thread, before the
/// clone is made (a waker is `Sync`, so `on_clone` must be too: a future
/// may lend its context to another thread). Every clone is a plain clone of
/// the real waker: nothing of this waker outlives `poll`.
pub(crate) fn poll_with_clone_hook<T>(
    cx: &mut Context<'_>,
    on_clone: &(dyn Fn() + Sync),
    poll: impl FnOnce(&mut Context<'_>) -> T,
) -> T {
    let hooked = Hooked {
        real: cx.waker(),
        on_clone,
    };
    let raw = RawWaker::new(std::ptr::from_ref(&hooked).cast(), &VTABLE);
    // SAFETY: the vtable's functions uphold `RawWaker`'s contract for this
    // data pointer, a `Hooked` that outlives the waker: the waker is only
    // lent to `poll` (a `Context` cannot keep it past the call; what a
    // future keeps is a clone, which is the real waker's own) and is never
    // dropped through the vtable (`ManuallyDrop`), so `hooked` is read only
    // while `poll` runs, on this thread or another it lends the context to.
    let waker = ManuallyDrop::new(unsafe { Waker::from_raw(raw) });
    let mut inner = Context::from_waker(&waker);
    poll(&mut inner)
}

/// Named so a capture taken in `on_clone` can be cut where lagscope's own
/// frames end (`waker::clone_waker`).
#[inline(never)]
unsafe fn clone_waker(data: *const ()) -> RawWaker {
    // SAFETY: `data` is the `Hooked` of `poll_with_clone_hook`, alive
    // while its waker is lent (see there).
    let hooked = unsafe { &*data.cast::<Hooked<'_>>() };
    (hooked.on_clone)();
    let real = ManuallyDrop::new(hooked.real.clone());
    RawWaker::new(real.data(), real.vtable())
}

/// Never called: only clones are owned, and they are the real waker's.
unsafe fn wake(data: *const ()) {
    // SAFETY: as `wake_by_ref`'s caller.
    unsafe { wake_by_ref(data) }
}

unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: `data` is the `Hooked` of `poll_with_clone_hook`, alive
    // while its waker is lent.
    let hooked = unsafe { &*data.cast::<Hooked<'_>>() };
    hooked.real.wake_by_ref();
}

/// The lent waker owns nothing.
unsafe fn drop_waker(_: *const ()) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Poll, Wake};

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn clones_are_the_real_wakers_and_the_hook_sees_each() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let real = Waker::from(count.clone());
        let mut cx = Context::from_waker(&real);
        let clones = AtomicUsize::new(0);
        let kept = poll_with_clone_hook(
            &mut cx,
            &|| {
                clones.fetch_add(1, Ordering::SeqCst);
            },
            |cx| {
                cx.waker().wake_by_ref();
                let a = cx.waker().clone();
                let b = cx.waker().clone();
                assert!(a.will_wake(&real), "a clone is the real waker");
                drop(b);
                Poll::Ready(a)
            },
        );
        let Poll::Ready(kept) = kept else {
            unreachable!("returned ready")
        };
        assert_eq!(clones.load(Ordering::SeqCst), 2);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken by ref");
        kept.wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 2, "the kept clone wakes");
        // The real waker's count is back to the test's two handles.
        assert_eq!(Arc::strong_count(&count), 2);
    }
}
