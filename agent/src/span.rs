//! Which `tracing` span each thread is in, so a stall can name the request
//! it stalled: install [`tracing_layer`] in your subscriber.
//!
//! Each thread keeps its stack of entered spans (name and fields, formatted
//! once when the span is created) behind its own mutex, which only the
//! watchdog ever contends for.
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let subscriber = tracing_subscriber::registry().with(lagscope::tracing_layer());
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("checkout", order = 42);
//!     let _entered = span.enter();
//!     # #[cfg(target_os = "linux")]
//!     assert_eq!(
//!         lagscope::low_level::current_span(lagscope::low_level::stack::current_tid()).as_deref(),
//!         Some("checkout{order=42}")
//!     );
//! });
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id};
use tracing_core::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// One entered span: its label and, under tracing-opentelemetry, its W3C
/// `traceparent`.
type Frame = (Arc<str>, Option<Arc<str>>);
type Entered = Arc<Mutex<Vec<Frame>>>;

/// Every thread's entered spans, by OS thread id.
static THREADS: Mutex<Option<HashMap<i32, Entered>>> = Mutex::new(None);

thread_local! {
    static MINE: Mine = Mine::register();
}

/// This thread's entry in [`THREADS`], removed when the thread exits so
/// short-lived threads do not pile up.
struct Mine {
    tid: i32,
    entered: Entered,
}

impl Mine {
    fn register() -> Self {
        let entered = Entered::default();
        let tid = tid();
        let mut threads = THREADS.lock().unwrap_or_else(|p| p.into_inner());
        threads
            .get_or_insert_with(HashMap::new)
            .insert(tid, entered.clone());
        Mine { tid, entered }
    }

    fn with(&self, f: impl FnOnce(&mut Vec<Frame>)) {
        f(&mut self.entered.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

impl Drop for Mine {
    fn drop(&mut self) {
        let mut threads = THREADS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(map) = threads.as_mut() {
            if map
                .get(&self.tid)
                .is_some_and(|e| Arc::ptr_eq(e, &self.entered))
            {
                map.remove(&self.tid);
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn tid() -> i32 {
    crate::platform::current_tid()
}

#[cfg(not(target_os = "linux"))]
fn tid() -> i32 {
    0
}

/// The innermost span thread `tid` is in, as `name{field=value …}`, if the
/// thread runs under a subscriber with [`tracing_layer`].
pub fn current_span(tid: i32) -> Option<String> {
    innermost(tid).map(|(label, _)| label.to_string())
}

fn innermost(tid: i32) -> Option<Frame> {
    let threads = THREADS.lock().unwrap_or_else(|p| p.into_inner());
    let entered = threads.as_ref()?.get(&tid)?.clone();
    drop(threads);
    let stack = entered.lock().unwrap_or_else(|p| p.into_inner());
    stack.last().cloned()
}

pub(crate) fn current(tid: i32) -> Option<String> {
    if tid == 0 {
        return None;
    }
    current_span(tid)
}

/// The OpenTelemetry `traceparent` of the innermost span thread `tid` is in,
/// when the subscriber also has tracing-opentelemetry's layer.
pub(crate) fn current_trace_parent(tid: i32) -> Option<String> {
    if tid == 0 {
        return None;
    }
    innermost(tid)?.1.map(|p| p.to_string())
}

/// A [`tracing_subscriber::Layer`] that lets stall reports name the span
/// (for example the request) the stuck thread was in.
pub fn tracing_layer() -> SpanLayer {
    SpanLayer(())
}

/// See [`tracing_layer`].
#[derive(Debug)]
pub struct SpanLayer(());

/// A span's `name{fields}`, kept in its extensions, and its `traceparent`
/// once looked up.
struct Label(Arc<str>, std::sync::OnceLock<Option<Arc<str>>>);

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.0.ends_with('{') {
            self.0.push(' ');
        }
        let _ = write!(self.0, "{}={:?}", field.name(), value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.0.ends_with('{') {
            self.0.push(' ');
        }
        let _ = write!(self.0, "{}={}", field.name(), value);
    }
}

impl<S> Layer<S> for SpanLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut label = format!("{}{{", attrs.metadata().name());
        attrs.record(&mut Fields(&mut label));
        if label.ends_with('{') {
            label.pop();
        } else {
            label.push('}');
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut()
                .insert(Label(label.into(), std::sync::OnceLock::new()));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let known = span
            .extensions()
            .get::<Label>()
            .map(|l| (l.0.clone(), l.1.get().cloned()));
        let Some((label, parent)) = known else {
            return;
        };
        // Looked up once per span, without holding its extensions (the
        // OpenTelemetry layer locks them).
        let parent = match parent {
            Some(p) => p,
            None => {
                let p = trace_parent(id);
                if let Some(l) = span.extensions().get::<Label>() {
                    let _ = l.1.set(p.clone());
                }
                p
            }
        };
        let _ = MINE.try_with(|m| m.with(|stack| stack.push((label, parent))));
    }

    fn on_exit(&self, _id: &Id, _ctx: Context<'_, S>) {
        let _ = MINE.try_with(|m| m.with(|stack| drop(stack.pop())));
    }
}

/// The OpenTelemetry context of span `id` as a `traceparent`, if the current
/// subscriber has tracing-opentelemetry's layer and the span is valid.
#[cfg(feature = "otel")]
fn trace_parent(id: &Id) -> Option<Arc<str>> {
    use opentelemetry::trace::TraceContextExt;
    tracing::dispatcher::get_default(|dispatch| {
        let cx = tracing_opentelemetry::get_otel_context(id, dispatch)?;
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| {
            format!(
                "00-{}-{}-{:02x}",
                sc.trace_id(),
                sc.span_id(),
                sc.trace_flags().to_u8()
            )
            .into()
        })
    })
}

#[cfg(not(feature = "otel"))]
fn trace_parent(_id: &Id) -> Option<Arc<str>> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn nested_spans_show_the_innermost_and_unwind() {
        let subscriber = tracing_subscriber::registry().with(tracing_layer());
        tracing::subscriber::with_default(subscriber, || {
            let me = tid();
            assert_eq!(current_span(me), None);
            let outer = tracing::info_span!("request", path = "/checkout");
            let _o = outer.enter();
            assert_eq!(current_span(me).as_deref(), Some("request{path=/checkout}"));
            {
                let inner = tracing::info_span!("db");
                let _i = inner.enter();
                assert_eq!(current_span(me).as_deref(), Some("db"));
            }
            assert_eq!(current_span(me).as_deref(), Some("request{path=/checkout}"));
        });
    }
}
