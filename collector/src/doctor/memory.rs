//! Memory: `heap-leak` (named by the allocating function when heap
//! sampling is on) and `external-memory` (the C heap, or RSS outside the
//! Rust heap).

use super::*;

pub(super) fn heap_leak(w: &Window) -> Vec<Finding> {
    let heap = w.means(Metric::HeapLive);
    let (Some(rate), Some(&first), Some(&last)) =
        (w.slope_per_min(Metric::HeapLive), heap.first(), heap.last())
    else {
        return Vec::new();
    };
    let growth = last - first;
    // The same tests without the largest step: the rate scaled by what is
    // left of the growth.
    let steady = growth_beyond_largest_step(&heap);
    if rate < HEAP_GROWTH_PER_MIN
        || growth < HEAP_GROWTH_SHARE * first.max(1.0)
        || rising_share(&heap) < HEAP_RISING_SHARE
        || steady < HEAP_GROWTH_SHARE * first.max(1.0)
        || rate * steady / growth < HEAP_GROWTH_PER_MIN
    {
        return Vec::new();
    }
    let site = w.heap.as_ref().and_then(growing_site);
    let mut evidence = vec![
        format!(
            "heap live {:.1} MiB → {:.1} MiB over the window",
            first / MIB,
            last / MIB
        ),
        format!("rose in {:.0} % of samples", rising_share(&heap) * 100.0),
    ];
    let bound = "Bound it (an LRU such as the `moka` or `lru` crates, a capacity check, or \
        eviction by age), and check the collection's size with AgentHandle::gauge.";
    let (summary, recommendation) = match &site {
        Some(site) => {
            evidence.push(site.evidence());
            (
                format!(
                    "The Rust heap grows steadily: +{:.1} MiB/min, allocated in {}",
                    rate / MIB,
                    site.function
                ),
                format!(
                    "What {} allocates is kept: a cache, map or queue that only grows? {bound}",
                    site.function
                ),
            )
        }
        None => (
            format!("The Rust heap grows steadily: +{:.1} MiB/min", rate / MIB),
            format!(
                "Something keeps what it allocates: look for caches, maps and queues that only \
                 grow. {bound} {}",
                if w.capabilities.iter().any(|c| c == "heap-sampling") {
                    "Heap sampling is on: watch longer (two heap windows: 10 s apart at the \
                     default sample interval, 5 s under `lagscope doctor -- CMD`) for where the \
                     growth was allocated."
                } else {
                    "Heap sampling names where it was allocated: it is on by default where \
                     lagscope::alloc::Counting is the global allocator (Linux x86_64, glibc), \
                     unless LAGSCOPE_HEAP_SAMPLE=0."
                }
            ),
        ),
    };
    vec![Finding {
        category: Category::HeapLeak,
        severity: if rate >= MEMORY_CRITICAL_PER_MIN {
            Severity::Critical
        } else {
            Severity::Warning
        },
        score: 50.0 + (rate / MIB / 10.0).min(25.0),
        summary,
        evidence,
        recommendation,
        culprit: site.map(|s| s.function),
    }]
}

/// Where most of a heap's growth was allocated, by the user function
/// that asked for it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct GrowingSite {
    /// The innermost user frame of the sites that grew most.
    function: String,
    /// The library function it called that allocated, if any
    /// (`std::collections::HashMap::insert`).
    via: Option<String>,
    /// Its share of all the growth (0..1).
    share: f64,
    /// Bytes it grew by.
    bytes: f64,
    /// Seconds between the readings.
    seconds: f64,
}

impl GrowingSite {
    fn evidence(&self) -> String {
        format!(
            "{:.0} % of the growth ({:+.1} MiB over {:.0} s of heap samples) was allocated in {}{}",
            self.share * 100.0,
            self.bytes / MIB,
            self.seconds,
            self.function,
            self.via
                .as_ref()
                .map(|v| format!(" (via {v})"))
                .unwrap_or_default()
        )
    }
}

/// The user function under which the most live heap grew between the two
/// readings; `None` if nothing grew or no grown site has a user frame.
pub(super) fn growing_site(growth: &lagscope_wire::doctor::HeapGrowth) -> Option<GrowingSite> {
    let grown: f64 = growth.sites.iter().map(|s| s.grew().max(0) as f64).sum();
    if grown <= 0.0 {
        return None;
    }
    let mut by_function: BTreeMap<String, (f64, Option<String>)> = BTreeMap::new();
    for site in growth.sites.iter().filter(|s| s.grew() > 0) {
        let Some(at) = lagscope_wire::frames::allocating_frame(&site.frames) else {
            continue;
        };
        let function = lagscope_wire::frames::function_name(&site.frames[at]).to_string();
        // The library call the user function made (`BTreeMap::insert`).
        let via = at
            .checked_sub(1)
            .map(|i| lagscope_wire::frames::function_name(&site.frames[i]).to_string());
        let entry = by_function.entry(function).or_insert((0.0, via));
        entry.0 += site.grew() as f64;
    }
    let (function, (bytes, via)) = by_function
        .into_iter()
        .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))?;
    Some(GrowingSite {
        function,
        via,
        share: bytes / grown,
        bytes,
        seconds: growth.to_ms.saturating_sub(growth.from_ms) as f64 / 1000.0,
    })
}

/// How bad native memory growing at `rate` bytes/min is.
pub(super) fn memory_growth_severity(rate: f64) -> Severity {
    if rate >= MEMORY_CRITICAL_PER_MIN {
        Severity::Critical
    } else {
        Severity::Warning
    }
}

/// The score of a native-memory growth finding at `rate` bytes/min.
pub(super) fn memory_growth_score(rate: f64) -> f64 {
    50.0 + (rate / MIB / 10.0).min(25.0)
}

/// Memory C code allocates with malloc (the C heap class) growing while the
/// Rust heap does not explain it.
pub(super) fn c_heap_growth(w: &Window) -> Vec<Finding> {
    let values = w.means(Metric::CHeap);
    let (Some(rate), Some(&first), Some(&last)) = (
        w.slope_per_min(Metric::CHeap),
        values.first(),
        values.last(),
    ) else {
        return Vec::new();
    };
    let heap_rate = w.slope_per_min(Metric::HeapLive).unwrap_or(0.0);
    // Malloc's per-block overhead on Rust's own allocations lands in the C
    // heap too: growth that the Rust heap's explains is not C code's.
    if rate < NATIVE_GROWTH_PER_MIN
        || last - first < NATIVE_GROWTH_MIN_BYTES
        || rate < C_HEAP_OVER_RUST * heap_rate.max(0.0)
    {
        return Vec::new();
    }
    let mapped = w.slope_per_min(Metric::External).map(|r| {
        format!(
            "mapped/other (RSS − allocator-held) {:+.1} MiB/min",
            r / MIB
        )
    });
    vec![Finding {
        category: Category::ExternalMemory,
        severity: memory_growth_severity(rate),
        score: memory_growth_score(rate),
        summary: format!(
            "The C heap grows: code outside Rust allocates with malloc, +{:.1} MiB/min, while \
             the Rust heap is flat",
            rate / MIB
        ),
        evidence: [
            format!(
                "C heap (malloc by C code, Rust's own allocations excluded) {:.1} MiB → {:.1} MiB",
                first / MIB,
                last / MIB
            ),
            format!("Rust heap {:+.1} MiB/min", heap_rate / MIB),
        ]
        .into_iter()
        .chain(mapped)
        .collect(),
        recommendation: "A C library or -sys crate allocates with malloc and does not free: \
            check that every object or handle it returns is released (its *_free / *_destroy \
            call, or Drop on the Rust wrapper), and bound its own caches. heaptrack or \
            valgrind --tool=massif on a test run name the allocating C function."
            .into(),
        culprit: None,
    }]
}

pub(super) fn external_memory(w: &Window) -> Vec<Finding> {
    let heap_rate = w.slope_per_min(Metric::HeapLive).unwrap_or(0.0);
    let (name, values) = if w.series.contains_key(Metric::External.series()) {
        (Metric::External, w.means(Metric::External))
    } else {
        (Metric::Rss, w.means(Metric::Rss))
    };
    let (Some(rate), Some(&first), Some(&last)) =
        (w.slope_per_min(name), values.first(), values.last())
    else {
        return Vec::new();
    };
    // "Flat" beside the growth: the agent's own tables (heap sampling's
    // sites) add a little to a heap that does not leak.
    if rate < NATIVE_GROWTH_PER_MIN
        || heap_rate >= HEAP_FLAT_PER_MIN.max(rate * HEAP_FLAT_SHARE)
        || last - first < NATIVE_GROWTH_MIN_BYTES
    {
        return Vec::new();
    }
    vec![Finding {
        category: Category::ExternalMemory,
        severity: memory_growth_severity(rate),
        score: memory_growth_score(rate),
        summary: format!(
            "Memory outside the Rust heap grows: +{:.1} MiB/min while the heap is flat",
            rate / MIB
        ),
        evidence: vec![
            format!(
                "{} {:.1} MiB → {:.1} MiB",
                name.def().label,
                first / MIB,
                last / MIB
            ),
            format!("Rust heap {:+.1} MiB/min", heap_rate / MIB),
        ],
        recommendation: "The growth is in memory the Rust allocator never saw: C libraries \
            behind FFI, mmap'd files or buffers, thread stacks, or a second allocator. Check \
            native dependencies' own limits and caches, and threads created per request."
            .into(),
        culprit: None,
    }]
}
