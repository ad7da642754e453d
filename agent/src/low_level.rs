//! Building blocks under the agent, for tools and tests that need one of
//! them on its own. [`crate::Agent`] is the supported way to use lagscope:
//! it runs these off the host's threads, bounded, and reports what they
//! find; called directly, they do their work on the calling thread.
//!
//! - [`stack`] (Linux): another thread's stack, taken by signal, and names
//!   for its frames.
//! - [`current_span`]: the innermost `tracing` span a thread is in, as
//!   [`crate::tracing_layer`] keeps it.
//! - [`set_heap_sample_bytes`]: heap sampling's interval without an agent.

#[cfg(target_os = "linux")]
#[cfg_attr(docsrs, doc(cfg(target_os = "linux")))]
pub use crate::platform::stack;
pub use crate::span::current_span;

/// Sets the mean heap sampling interval in bytes (0: off); threads pick it
/// up within their next 64 KiB of allocations. An agent started with
/// [`Builder::heap_sample_bytes`](crate::Builder::heap_sample_bytes) sets
/// it, and unwinds the samples' stacks; without one, samples keep no stack.
/// Needs [`crate::alloc::Counting`] as the global allocator, on Linux
/// x86_64 with glibc.
pub fn set_heap_sample_bytes(bytes: u64) {
    crate::alloc::heap::set_mean(bytes);
}
