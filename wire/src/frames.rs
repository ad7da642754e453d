//! Names of stack frames: which crate a demangled Rust function belongs
//! to, and whether it is user code or the runtime's. Shared by the agent
//! (to mark a stall's blocking function) and the collector (to name it in a
//! diagnosis).

/// Crates whose frames are never "the function that blocked".
pub const RUNTIME_CRATES: [&str; 9] = [
    "std",
    "core",
    "alloc",
    "tokio",
    "mio",
    "lagscope",
    "libc",
    // The allocator shim rustc generates (`__rustc::__rust_dealloc`).
    "__rustc",
    // The poll timing lagscope's instrumentation wraps every future in.
    "tokio_metrics",
];

/// Whether a frame name is user code: a Rust path whose crate is not the
/// standard library, tokio, mio, libc or lagscope (with the tokio-metrics
/// timing it wraps futures in). C functions and raw
/// addresses are not.
///
/// ```
/// use lagscope_wire::frames::is_user_frame;
/// assert!(is_user_frame("checkout::handlers::price_cart"));
/// assert!(!is_user_frame("std::thread::sleep"));
/// assert!(!is_user_frame("clock_nanosleep"));
/// assert!(!is_user_frame("tokio_metrics::task::instrument_poll"));
/// assert!(!is_user_frame("__rustc::__rust_dealloc"));
/// ```
pub fn is_user_frame(name: &str) -> bool {
    frame_crate(name).is_some_and(|krate| !RUNTIME_CRATES.contains(&krate))
}

/// The crate a demangled Rust function belongs to: the first path segment,
/// or for `<Type as Trait>::f` the type's crate — or the trait's when the
/// type is a generic parameter or a primitive (`<T as alloc::…>`). `None`
/// for C functions and raw addresses.
pub fn frame_crate(name: &str) -> Option<&str> {
    let Some(inner) = name.strip_prefix('<') else {
        return name.split_once("::").map(|(krate, _)| krate);
    };
    let inner = inner.trim_start_matches(['&', '*', '[', '(']);
    let inner = inner
        .strip_prefix("mut ")
        .or_else(|| inner.strip_prefix("const "))
        .unwrap_or(inner);
    let (ty, rest) = match inner.split_once(" as ") {
        Some((ty, rest)) => (ty, Some(rest)),
        None => (inner, None),
    };
    match ty.split_once("::") {
        // A path type, unless " as " came before its first "::".
        Some((krate, _)) if !krate.contains(['<', '>', ' ']) => Some(krate),
        _ => rest.and_then(frame_crate),
    }
}

/// Crates whose frames are the collection that allocated, not the code
/// whose data it holds: an allocation site is named by the user frame that
/// called them.
pub const COLLECTION_CRATES: [&str; 3] = ["hashbrown", "indexmap", "smallvec"];

/// Where an allocation site's stack (innermost first) is named: the
/// innermost user frame that is not a collection library's; `None` if it
/// has none.
///
/// ```
/// use lagscope_wire::frames::allocating_frame;
/// let stack = [
///     "hashbrown::raw::RawTable<T,A>::reserve_rehash",
///     "std::collections::hash::map::HashMap<K,V,S>::insert",
///     "checkout::cache::Cache::remember",
///     "checkout::handler",
/// ];
/// assert_eq!(allocating_frame(&stack), Some(2));
/// assert_eq!(allocating_frame(&["malloc", "alloc::vec::from_elem"]), None);
/// ```
pub fn allocating_frame(frames: &[impl AsRef<str>]) -> Option<usize> {
    frames.iter().position(|f| {
        let f = f.as_ref();
        is_user_frame(f) && !frame_crate(f).is_some_and(|c| COLLECTION_CRATES.contains(&c))
    })
}

/// Whether a frame has no function name: a bare address (`0x7f…`) or a
/// place in a file no symbol covers (`libc.so.6+0x9ca94`, or the older
/// `[libc.so.6]`).
///
/// ```
/// use lagscope_wire::frames::is_unnamed;
/// assert!(is_unnamed("0x7f3a2c001840"));
/// assert!(is_unnamed("libc.so.6+0x9ca94"));
/// assert!(is_unnamed("[libc.so.6]"));
/// assert!(!is_unnamed("malloc"));
/// assert!(!is_unnamed("checkout::price_cart"));
/// ```
pub fn is_unnamed(frame: &str) -> bool {
    frame.starts_with("0x")
        || frame.starts_with('[')
        || frame.rsplit_once("+0x").is_some_and(|(file, at)| {
            !file.contains("::") && !at.is_empty() && at.bytes().all(|b| b.is_ascii_hexdigit())
        })
}

/// A frame's function without the `(file:line)` an inlined frame carries:
/// `checkout::hash_upload (src/checkout.rs:88)` is `checkout::hash_upload`.
/// Stalls in one inlined function are one function, whatever line they
/// stopped on.
///
/// ```
/// use lagscope_wire::frames::function_name;
/// assert_eq!(function_name("checkout::hash_upload (src/checkout.rs:88)"), "checkout::hash_upload");
/// assert_eq!(function_name("checkout::hash_upload"), "checkout::hash_upload");
/// assert_eq!(function_name("<(A, B) as x::T>::f"), "<(A, B) as x::T>::f");
/// ```
pub fn function_name(frame: &str) -> &str {
    let Some((name, location)) = frame.rsplit_once(" (") else {
        return frame;
    };
    let located = location
        .strip_suffix(')')
        .and_then(|l| l.rsplit_once(':'))
        .is_some_and(|(file, line)| {
            !file.is_empty() && !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit())
        });
    if located {
        name
    } else {
        frame
    }
}

/// The first user frame outside `culprit`'s crate, further out on the stack
/// (innermost first) and inside the same task: who called into a library
/// that blocked, e.g. the handler that called `serde_json`. Future adapters
/// (`<tracing::Instrumented<F> as Future>::poll` and the like) are not
/// callers, and the search stops at the runtime's task poll.
pub fn caller_outside(frames: &[String], culprit: &str) -> Option<String> {
    let krate = frame_crate(culprit)?;
    let culprit = function_name(culprit);
    let at = frames.iter().position(|f| function_name(f) == culprit)?;
    frames[at + 1..]
        .iter()
        .take_while(|f| frame_crate(f) != Some("tokio"))
        .filter(|f| !f.ends_with("as core::future::future::Future>::poll"))
        .find(|f| is_user_frame(f) && frame_crate(f) != Some(krate))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crates_of_trait_impls_and_generics() {
        assert!(is_user_frame("<my_service::Db as my_service::Store>::get"));
        assert!(is_user_frame("<my_service::Db as core::fmt::Debug>::fmt"));
        assert!(!is_user_frame(
            "<T as alloc::slice::<impl [T]>::to_vec_in::ConvertVec>::to_vec"
        ));
        assert!(!is_user_frame("<&T as core::fmt::Display>::fmt"));
        assert!(!is_user_frame("<std::fs::File as std::io::Read>::read"));
        assert!(is_user_frame(
            "<serde_json::value::ser::Serializer as serde_core::ser::Serializer>::serialize_str"
        ));
        assert!(!is_user_frame("0x55d0c0a01234"));
        assert!(!is_user_frame("[libc.so.6]"));
    }

    #[test]
    fn the_caller_of_a_library() {
        let frames: Vec<String> = [
            "fancy_regex::vm::run",
            "fancy_regex::Regex::is_match",
            "svc::validate",
            "tokio::runtime::task::raw::poll",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            caller_outside(&frames, "fancy_regex::vm::run").as_deref(),
            Some("svc::validate")
        );
        assert_eq!(caller_outside(&frames, "svc::validate"), None);
        let wrapped: Vec<String> = [
            "svc::handler",
            "<tracing::instrument::Instrumented<T> as core::future::future::Future>::poll",
            "tokio::runtime::task::core::Core<T,S>::poll",
            "other_crate::outside_the_task",
        ]
        .map(String::from)
        .into();
        assert_eq!(caller_outside(&wrapped, "svc::handler"), None);
    }
}
