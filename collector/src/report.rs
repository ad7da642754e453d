//! The doctor's HTML report: one self-contained file (inline SVG plots and
//! flamegraphs, no scripts from anywhere) that opens offline.

use std::fmt::Write;

use lagscope_wire::doctor::{Diagnosis, Severity, Window};
use lagscope_wire::metric::Metric;

/// What goes into a report besides the diagnoses.
#[derive(Debug, Default)]
pub struct Extras<'a> {
    /// CPU flamegraph SVG.
    pub cpu_flamegraph: Option<&'a [u8]>,
    /// Blocking flamegraph SVG (from stall stacks).
    pub blocking_flamegraph: Option<&'a [u8]>,
    /// Heap growth flamegraph SVG (live bytes by site, first heap window
    /// against the last: see [`heap_growth_flamegraph`]).
    pub heap_growth_flamegraph: Option<&'a [u8]>,
    /// Wait flamegraph SVG (where the slowest names' requests waited: see
    /// [`wait_flamegraph`]).
    pub wait_flamegraph: Option<&'a [u8]>,
    /// The command that was diagnosed, if any.
    pub command: Option<String>,
}

/// A differential flamegraph of what grew in the live heap over the
/// windows (the first window's growth that has heap sites), in bytes;
/// `None` without heap sites or growth.
pub fn heap_growth_flamegraph(windows: &[Window], service: &str) -> Option<Vec<u8>> {
    let growth = windows.iter().find_map(|w| w.heap.as_ref())?;
    let (mut before, mut after) = (
        crate::flame::Folded::default(),
        crate::flame::Folded::default(),
    );
    for site in &growth.sites {
        let root_first = || site.frames.iter().rev().map(String::as_str);
        if site.before_bytes > 0 {
            before.add(root_first(), site.before_bytes);
        }
        if site.after_bytes > 0 {
            after.add(root_first(), site.after_bytes);
        }
    }
    let grew = after.total() as f64 - before.total() as f64;
    if grew <= 0.0 {
        return None;
    }
    crate::flame::diff_svg_counting(
        &before,
        &after,
        &format!("{service} — heap growth"),
        &format!(
            "live bytes by allocation site, {:+.1} MiB over {} s of heap windows",
            grew / (1024.0 * 1024.0),
            growth.to_ms.saturating_sub(growth.from_ms) / 1000
        ),
        "bytes",
        false,
    )
    .ok()
}

/// Names whose waits the report's wait flamegraph draws: the slowest.
const WAIT_NAMES: usize = 3;

/// A flamegraph of where the requests of the [`WAIT_NAMES`] names that
/// waited longest waited, in µs by name, await point and kind; `None`
/// without captured waits.
pub fn wait_flamegraph(windows: &[Window], service: &str) -> Option<Vec<u8>> {
    let mut folded = crate::flame::Folded::default();
    let mut names: Vec<&lagscope_wire::api::TaskWaits> =
        windows.iter().flat_map(|w| w.waits.iter()).collect();
    names.sort_by_key(|t| std::cmp::Reverse(t.wait_us));
    for t in names.iter().take(WAIT_NAMES) {
        for site in &t.sites {
            let kind = format!("[{}]", site.kind);
            let root_first = std::iter::once(t.task.as_str())
                .chain(site.frames.iter().rev().map(String::as_str))
                .chain(std::iter::once(kind.as_str()));
            folded.add(root_first, site.wait_us.max(1));
        }
    }
    if folded.is_empty() {
        return None;
    }
    crate::flame::svg_counting(
        &folded,
        &format!("{service} — where requests wait"),
        "µs waited from Pending to the next poll, by name and await point (sampled)",
        "µs",
    )
    .ok()
}

/// The report for `diagnoses` made from `windows` (same order).
pub fn html(diagnoses: &[Diagnosis], windows: &[Window], extras: &Extras<'_>) -> String {
    let mut out = String::new();
    let title = diagnoses
        .first()
        .map(|d| format!("lagscope doctor — {}", d.service))
        .unwrap_or_else(|| "lagscope doctor".into());
    let _ = write!(
        out,
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{}</title><style>{}</style></head><body><h1>{}</h1>",
        esc(&title),
        STYLE,
        esc(&title)
    );
    if let Some(cmd) = &extras.command {
        let _ = write!(out, "<p class=dim>command: <code>{}</code></p>", esc(cmd));
    }
    for (i, d) in diagnoses.iter().enumerate() {
        let _ = write!(
            out,
            "<section><h2>{} <span class=dim>{} s window</span></h2>",
            esc(&d.instance),
            d.to_ms.saturating_sub(d.from_ms) / 1000
        );
        for f in &d.findings {
            let class = match f.severity {
                Severity::Critical => "critical",
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            let _ = write!(
                out,
                "<div class='finding {class}'><div class=cat>{} · {}</div><h3>{}</h3><ul>",
                f.category.name(),
                class,
                esc(&f.summary)
            );
            for e in &f.evidence {
                let _ = write!(out, "<li>{}</li>", esc(e));
            }
            let _ = write!(
                out,
                "</ul><p class=fix><b>What to do:</b> {}</p></div>",
                esc(&f.recommendation)
            );
        }
        if let Some(w) = windows.get(i) {
            charts(&mut out, w);
            tasks(&mut out, w);
            waits(&mut out, w);
            stalls(&mut out, w);
        }
        out.push_str("</section>");
    }
    for (name, svg) in [
        ("CPU flamegraph", extras.cpu_flamegraph),
        (
            "Blocking flamegraph (stall stacks, by stalled time)",
            extras.blocking_flamegraph,
        ),
        (
            "Heap growth flamegraph (live bytes by allocation site: red grew, blue shrank)",
            extras.heap_growth_flamegraph,
        ),
        (
            "Wait flamegraph (where requests waited, by time waited)",
            extras.wait_flamegraph,
        ),
    ] {
        if let Some(svg) = svg {
            let _ = write!(
                out,
                "<section><h2>{name}</h2><img class=flame alt='{name}' src='data:image/svg+xml;base64,{}'></section>",
                base64(svg)
            );
        }
    }
    out.push_str("<p class=dim>made by lagscope</p></body></html>");
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}\
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd}.dim{color:#777;font-weight:normal}\
.finding{border-left:6px solid #999;padding:.3em 1em;margin:1em 0;background:#fafafa}\
.critical{border-color:#c62828}.warning{border-color:#ef6c00}.info{border-color:#2e7d32}\
.cat{font-size:12px;text-transform:uppercase;color:#555}.fix{background:#eef6ee;padding:.4em}\
.charts{display:grid;grid-template-columns:1fr 1fr;gap:12px}.chart{border:1px solid #eee}\
pre{background:#f4f4f4;padding:.5em;overflow:auto;font-size:12px}.culprit{background:#ffe0b2;font-weight:bold}\
img.flame{width:100%;border:1px solid #eee}code{background:#f4f4f4}\
table.tasks{border-collapse:collapse}table.tasks td,table.tasks th{padding:2px 8px;text-align:left}\
.split{display:flex;width:200px;height:12px;background:#eee}.split .s{background:#c62828}\
.split .p{background:#1565c0}.split .i{background:#9e9e9e}";

/// Plots of the window: lag, busy, queues and tasks, memory.
fn charts(out: &mut String, w: &Window) {
    out.push_str("<div class=charts>");
    let plots: [Plot<'_>; 4] = [
        (
            "Lag (probe delay)",
            &[(Metric::LagP99, false), (Metric::LagMax, true)],
            |v| format!("{:.1} ms", v / 1000.0),
        ),
        (
            "Busy ratio and CPU (cores)",
            &[(Metric::BusyRatio, false), (Metric::CpuRatio, false)],
            |v| format!("{v:.2}"),
        ),
        (
            "Queues and tasks",
            &[
                (Metric::GlobalQueueDepth, true),
                (Metric::BlockingQueueDepth, true),
                (Metric::AliveTasks, false),
            ],
            |v| format!("{v:.0}"),
        ),
        (
            "Memory",
            &[
                (Metric::HeapLive, false),
                (Metric::Rss, false),
                (Metric::External, false),
            ],
            |v| format!("{:.1} MiB", v / 1048576.0),
        ),
    ];
    for (title, lines, fmt) in plots {
        chart(out, w, title, lines, fmt);
    }
    out.push_str("</div>");
}

/// A chart: title, (metric, plot its max rather than mean), value format.
type Plot<'a> = (&'a str, &'a [(Metric, bool)], fn(f64) -> String);

const COLOURS: [&str; 3] = ["#1565c0", "#c62828", "#2e7d32"];

fn chart(
    out: &mut String,
    w: &Window,
    title: &str,
    lines: &[(Metric, bool)],
    fmt: fn(f64) -> String,
) {
    let (width, height, pad) = (560.0, 170.0, 30.0);
    let span = w.to_ms.saturating_sub(w.from_ms).max(1) as f64;
    let series: Vec<(&str, Vec<(f64, f64)>)> = lines
        .iter()
        .filter_map(|&(metric, use_max)| {
            let label = metric.def().label;
            let pts = w.series.get(metric.series())?;
            let v: Vec<(f64, f64)> = pts
                .iter()
                .map(|&(t, mean, max)| {
                    (
                        t.saturating_sub(w.from_ms) as f64 / span,
                        if use_max { max } else { mean },
                    )
                })
                .collect();
            (!v.is_empty()).then_some((label, v))
        })
        .collect();
    let top = series
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let _ = write!(
        out,
        "<svg class=chart viewBox='0 0 {width} {height}' role=img aria-label='{}'><text x=8 y=16 font-size=13>{}</text><text x=8 y=32 font-size=11 fill='#777'>max {}</text>",
        esc(title),
        esc(title),
        esc(&fmt(top))
    );
    let plot_h = height - pad - 20.0;
    let _ = write!(
        out,
        "<line x1={pad} y1={} x2={} y2={} stroke='#ccc'/>",
        height - 20.0,
        width - 10.0,
        height - 20.0
    );
    for (i, (label, v)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = v
            .iter()
            .map(|&(x, y)| {
                format!(
                    "{:.1},{:.1}",
                    pad + x * (width - pad - 10.0),
                    height - 20.0 - (y / top) * plot_h
                )
            })
            .collect();
        let _ = write!(
            out,
            "<polyline fill=none stroke='{colour}' stroke-width=1.5 points='{}'/><text x={} y=16 font-size=11 fill='{colour}'>{}</text>",
            points.join(" "),
            260.0 + 90.0 * i as f64,
            esc(label)
        );
    }
    let _ = write!(
        out,
        "<text x={pad} y={} font-size=10 fill='#777'>0 s</text><text x={} y={} font-size=10 fill='#777' text-anchor=end>{} s</text></svg>",
        height - 6.0,
        width - 10.0,
        height - 6.0,
        (span / 1000.0).round()
    );
}

/// The window's longest stalls with their stacks, blocking function marked.
/// Per instrumented name: where its requests spent their time.
fn tasks(out: &mut String, w: &Window) {
    let splits = crate::doctor::task_splits(w);
    if splits.is_empty() {
        return;
    }
    out.push_str(
        "<h3>Where requests spend their time</h3><table class=tasks><tr><th>name</th>\
         <th>requests</th><th>waiting for a worker</th><th>polled</th><th>idle</th>\
         <th>split</th><th>p99 per request (scheduled / poll / idle)</th></tr>",
    );
    let ms = |us: Option<f64>| us.map_or_else(|| "—".into(), |v| format!("{:.1} ms", v / 1000.0));
    for t in splits.iter().take(20) {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{:.0}</td><td>{:.0} %</td><td>{:.0} %</td>\
             <td>{:.0} %</td><td><div class=split><span class=s style='width:{:.1}%'></span>\
             <span class=p style='width:{:.1}%'></span><span class=i style='width:{:.1}%'></span>\
             </div></td><td>{} / {} / {}</td></tr>",
            esc(&t.name),
            t.requests,
            t.scheduled * 100.0,
            t.poll * 100.0,
            t.idle * 100.0,
            t.scheduled * 100.0,
            t.poll * 100.0,
            t.idle * 100.0,
            ms(t.scheduled_p99_us),
            ms(t.poll_p99_us),
            ms(t.idle_p99_us),
        );
    }
    out.push_str("</table>");
}

fn waits(out: &mut String, w: &Window) {
    if !w.waits.is_empty() {
        out.push_str(
            "<h3>Where requests wait</h3><table class=tasks><tr><th>name</th><th>share</th>\
             <th>kind</th><th>await point</th></tr>",
        );
        for t in w.waits.iter().take(10) {
            for (i, site) in t.sites.iter().take(5).enumerate() {
                let _ = write!(
                    out,
                    "<tr><td><code>{}</code></td><td>{:.0} %</td><td>{}</td><td><code>{}</code></td></tr>",
                    if i == 0 { esc(&t.task) } else { String::new() },
                    site.share * 100.0,
                    esc(&site.kind),
                    esc(&site.await_point)
                );
            }
        }
        out.push_str("</table>");
    }
    if !w.stuck.is_empty() {
        out.push_str(
            "<h3>Stuck requests (pending without a wake)</h3><table class=tasks><tr><th>name</th>\
             <th>pending</th><th>kind</th><th>await point</th></tr>",
        );
        for s in w.stuck.iter().take(20) {
            let at = if s.frames.is_empty() {
                "not captured yet".to_string()
            } else {
                lagscope_wire::waits::await_point(&s.frames).label()
            };
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{:.1} s</td><td>{}</td><td><code>{}</code></td></tr>",
                esc(&s.task),
                s.pending_ms as f64 / 1000.0,
                esc(&s.kind),
                esc(&at)
            );
        }
        out.push_str("</table>");
    }
}

fn stalls(out: &mut String, w: &Window) {
    if w.stalls.is_empty() {
        return;
    }
    let mut longest: Vec<_> = w.stalls.iter().collect();
    longest.sort_by_key(|s| std::cmp::Reverse(s.duration_us));
    // The longest stall of each distinct stack, so repeats do not crowd out the rest.
    let mut seen: Vec<&[String]> = Vec::new();
    longest.retain(|s| {
        let frames = s.stacks.first().map_or(&[][..], |st| &st.frames[..]);
        let new = !seen.contains(&frames);
        seen.push(frames);
        new
    });
    let _ = write!(
        out,
        "<h3>Longest stalls ({} in the window; one per distinct stack)</h3>",
        w.stalls.len()
    );
    for s in longest.iter().take(3) {
        let _ = write!(
            out,
            "<p>{:.1} ms on thread {} ({}), {} captures{}</p><pre>",
            s.duration_us as f64 / 1000.0,
            s.tid,
            s.detection.name(),
            s.captures(),
            s.span
                .as_ref()
                .map(|sp| format!(", span {}", esc(sp)))
                .unwrap_or_default()
        );
        if let Some(stack) = s.stacks.first() {
            for f in &stack.frames {
                if Some(f) == s.blocking_function.as_ref() {
                    let _ = writeln!(out, "<span class=culprit>▶ {}</span>", esc(f));
                } else {
                    let _ = writeln!(out, "  {}", esc(f));
                }
            }
        }
        out.push_str("</pre>");
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
        .replace('"', "&quot;")
}

/// Standard base64 (for `data:` URLs).
fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lagscope_wire::doctor::{Category, Finding};

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn the_report_is_self_contained_and_escaped() {
        let mut w = Window {
            service: "svc".into(),
            instance: "a<b>".into(),
            from_ms: 0,
            to_ms: 20_000,
            ..Window::default()
        };
        w.series.insert(
            Metric::LagP99.series().into(),
            (0..20).map(|i| (i * 1000, 300.0, 900.0)).collect(),
        );
        for (metric, step) in [
            (Metric::TaskScheduledTime, 60_000.0),
            (Metric::TaskPollTime, 30_000.0),
            (Metric::TaskIdleTime, 10_000.0),
            (Metric::TaskCompleted, 10.0),
        ] {
            w.series.insert(
                metric.task_series("GET /<x>"),
                (0..20u64)
                    .map(|i| (i * 1000, i as f64 * step, i as f64 * step))
                    .collect(),
            );
        }
        let d = Diagnosis {
            service: "svc".into(),
            instance: "a<b>".into(),
            from_ms: 0,
            to_ms: 20_000,
            findings: vec![Finding {
                category: Category::HeapLeak,
                severity: Severity::Warning,
                score: 1.0,
                summary: "grows".into(),
                evidence: vec!["1 → 2".into()],
                recommendation: "bound it".into(),
                culprit: None,
            }],
        };
        let svg = b"<svg xmlns='http://www.w3.org/2000/svg'/>";
        let html = html(
            &[d],
            &[w],
            &Extras {
                cpu_flamegraph: Some(svg),
                ..Extras::default()
            },
        );
        assert!(html.contains("a&lt;b&gt;"));
        assert!(html.contains("<polyline"));
        assert!(
            html.contains("<td><code>GET /&lt;x&gt;</code></td><td>190</td><td>60 %</td>"),
            "the per-name split is in the report"
        );
        assert!(html.contains("data:image/svg+xml;base64,"));
        assert!(
            !html.contains("http://") || !html.contains("<script src"),
            "no remote scripts"
        );
        assert!(!html.contains("<link"), "no external stylesheets");
    }

    #[test]
    fn heap_growth_is_drawn_only_when_the_heap_grew() {
        use lagscope_wire::doctor::{HeapGrowth, SiteGrowth};
        let mut w = Window {
            heap: Some(HeapGrowth {
                from_ms: 10_000,
                to_ms: 30_000,
                sites: vec![SiteGrowth {
                    frames: ["svc::cache::remember", "svc::main"]
                        .map(String::from)
                        .into(),
                    before_bytes: 1 << 20,
                    after_bytes: 9 << 20,
                }],
            }),
            ..Window::default()
        };
        let svg = heap_growth_flamegraph(std::slice::from_ref(&w), "svc").expect("grew");
        let text = String::from_utf8(svg).expect("utf-8");
        assert!(text.contains("svc — heap growth") && text.contains("+8.0 MiB over 20 s"));
        assert!(text.contains("remember"));
        if let Some(h) = w.heap.as_mut() {
            h.sites[0].after_bytes = 1 << 20;
        }
        assert!(heap_growth_flamegraph(&[w], "svc").is_none());
        assert!(heap_growth_flamegraph(&[Window::default()], "svc").is_none());
    }
}
