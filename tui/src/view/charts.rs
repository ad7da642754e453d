//! The selected instance: headline figures and four charts over the window.

use lagscope_wire::api::{InstanceSummary, Point, Series};
use lagscope_wire::doctor::Category;
use lagscope_wire::metric::Metric;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph};
use ratatui::Frame;

use super::format;
use crate::state::{App, Focus};

/// A line to plot: its label, series name, which statistic, and a scale.
struct Plot {
    label: &'static str,
    series: String,
    use_max: bool,
}

/// A metric's line, labelled as the metric table labels it.
fn line(metric: Metric, use_max: bool) -> Plot {
    Plot {
        label: metric.def().label,
        series: metric.series().into(),
        use_max,
    }
}

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect, now_ms: u64) {
    let theme = &app.theme;
    let block =
        Block::default()
            .borders(Borders::ALL)
            .border_style(if app.focus == Focus::Charts {
                theme.focused()
            } else {
                Style::default()
            });
    let Some((service, instance)) = app.selection() else {
        frame.render_widget(
            Paragraph::new("select an instance on the left")
                .style(theme.dim())
                .block(block.title(" Instance ")),
            area,
        );
        return;
    };
    let summary = app
        .services
        .iter()
        .flat_map(|s| &s.services)
        .filter(|s| s.service == service)
        .flat_map(|s| &s.instances)
        .find(|i| i.instance == instance);
    let window_s = app.window().as_secs();
    let pan = if app.pan_ms > 0 {
        format!(", {} ago", format::span(app.pan_ms / 1000))
    } else {
        String::new()
    };
    let block = block.title(format!(
        " {service} / {instance} — last {}{pan} ",
        format::span(window_s)
    ));
    let inner = block.inner(area);
    frame.render_widget(block, area);

    let head = headline(app, summary);
    let head_height = head.len() as u16;
    let incidents_height = super::incidents::height(app, inner.height.saturating_sub(head_height));
    let [header, grid, incidents] = Layout::vertical([
        Constraint::Length(head_height),
        Constraint::Min(4),
        Constraint::Length(incidents_height),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(head), header);
    if incidents_height > 0 {
        super::incidents::draw(frame, app, incidents, now_ms);
    }

    let [top, bottom] =
        Layout::vertical([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(grid);
    let [lag_area, busy_area] =
        Layout::horizontal([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(top);
    let [queue_area, memory_area] =
        Layout::horizontal([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(bottom);

    let end_ms = app.window_end_ms(now_ms);
    let start_ms = end_ms.saturating_sub(window_s * 1000);
    let series: &[Series] = app.series.as_ref().map_or(&[], |s| &s.series);
    let ctx = Ctx {
        app,
        series,
        start_ms,
        end_ms,
    };

    ctx.chart(
        frame,
        lag_area,
        "Lag".to_string(),
        &[
            line(Metric::LagP50, false),
            line(Metric::LagP99, false),
            line(Metric::LagMax, true),
        ],
        format::micros,
        None,
    );
    let worker_prefix = format!("{}.", Metric::WorkerBusyRatio.series());
    let workers = series
        .iter()
        .filter(|s| s.name.starts_with(&worker_prefix))
        .count()
        .min(6);
    const WORKER_LABELS: [&str; 6] = ["w0", "w1", "w2", "w3", "w4", "w5"];
    let mut busy_lines: Vec<Plot> = if workers == 0 {
        vec![line(Metric::BusyRatio, false)]
    } else {
        (0..workers)
            .map(|w| Plot {
                label: WORKER_LABELS[w],
                series: Metric::WorkerBusyRatio.worker_series(w),
                use_max: false,
            })
            .collect()
    };
    // Process CPU in the same units (fraction of one core): busy workers with
    // low CPU point at blocking syscalls rather than computation.
    busy_lines.push(line(Metric::CpuRatio, false));
    ctx.chart(
        frame,
        busy_area,
        "Busy/CPU".to_string(),
        &busy_lines,
        format::percent,
        Some(1.0),
    );
    if app.show_top || app.show_tasks || app.show_heap {
        let [_, bottom_row] =
            Layout::vertical([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(grid);
        if app.show_tasks {
            super::tasks::draw(frame, app, bottom_row);
        } else if app.show_heap {
            super::heap::draw(frame, app, bottom_row);
        } else {
            super::top::draw(frame, app, bottom_row);
        }
        return;
    }
    // The blocking probe's wait is a time, not a count: in the title, where
    // it is also the only blocking-pool figure on stable tokio.
    let blocking_wait = series
        .iter()
        .find(|s| s.name == Metric::BlockingWait.series())
        .and_then(|s| {
            s.within(start_ms, end_ms)
                .map(|p| p.max)
                .max_by(f64::total_cmp)
        });
    let queue_title = match blocking_wait {
        Some(us) if us >= 1000.0 => format!("Queues (blk wait {})", format::micros(us)),
        _ => "Queues".to_string(),
    };
    ctx.chart(
        frame,
        queue_area,
        queue_title,
        &[
            line(Metric::GlobalQueueDepth, true),
            line(Metric::LocalQueueDepth, true),
            line(Metric::BlockingQueueDepth, true),
            line(Metric::BlockingThreads, true),
            line(Metric::IdleBlockingThreads, false),
        ],
        |v| format!("{v:.0}"),
        None,
    );
    let trend = growth_per_min(series, Metric::HeapLive, start_ms, end_ms)
        .map(|g| ("heap", g))
        .or_else(|| growth_per_min(series, Metric::Rss, start_ms, end_ms).map(|g| ("rss", g)));
    let memory_title = match trend {
        Some((what, g)) => format!(
            "Memory ({what} {}{}/min)",
            if g >= 0.0 { "+" } else { "" },
            format::bytes(g)
        ),
        None => "Memory".to_string(),
    };
    ctx.chart(
        frame,
        memory_area,
        memory_title,
        &[
            line(Metric::HeapLive, false),
            line(Metric::Rss, false),
            line(Metric::CHeap, false),
            line(Metric::External, false),
        ],
        format::bytes,
        None,
    );
}

/// A plot with its colour index and points.
type Drawn<'p> = (usize, &'p Plot, Vec<(f64, f64)>);

struct Ctx<'a> {
    app: &'a App,
    series: &'a [Series],
    start_ms: u64,
    end_ms: u64,
}

impl Ctx<'_> {
    fn points(&self, l: &Plot) -> Vec<(f64, f64)> {
        let Some(s) = self.series.iter().find(|s| s.name == l.series) else {
            return Vec::new();
        };
        s.within(self.start_ms, self.end_ms)
            .map(|p: &Point| {
                let x = (p.t_ms as f64 - self.end_ms as f64) / 1000.0;
                (x, if l.use_max { p.max } else { p.mean })
            })
            .collect()
    }

    fn chart(
        &self,
        frame: &mut Frame,
        area: Rect,
        title: String,
        lines: &[Plot],
        fmt: impl Fn(f64) -> String,
        fixed_top: Option<f64>,
    ) {
        let theme = &self.app.theme;
        let data: Vec<Drawn> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i, l, self.points(l)))
            .filter(|(_, _, p)| !p.is_empty())
            .collect();
        if data.is_empty() {
            let block = Block::default().borders(Borders::TOP).title(title);
            frame.render_widget(
                Paragraph::new("no data in window")
                    .style(theme.dim())
                    .block(block),
                area,
            );
            return;
        }
        // Current values ride in the title, after the chart's name.
        let mut title_spans = vec![Span::raw(format!("{title} "))];
        title_spans.extend(data.iter().map(|(i, l, p)| {
            let v = p.last().map_or(0.0, |(_, y)| *y);
            Span::styled(format!("{} {} ", l.label, fmt(v)), theme.series(*i))
        }));
        let block = Block::default()
            .borders(Borders::TOP)
            .title(Line::from(title_spans));
        let top = data
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|(_, y)| *y))
            .fold(0.0f64, f64::max);
        let top = match fixed_top {
            Some(t) => t,
            None if top <= 0.0 => 1.0,
            None => top * 1.1,
        };
        let datasets: Vec<Dataset> = data
            .iter()
            .map(|(i, l, p)| {
                Dataset::default()
                    .name(l.label)
                    .marker(Marker::Braille)
                    .graph_type(GraphType::Line)
                    .style(theme.series(*i))
                    .data(p)
            })
            .collect();
        let window = (self.end_ms - self.start_ms) as f64 / 1000.0;
        let chart = Chart::new(datasets)
            .block(block)
            .x_axis(Axis::default().bounds([-window, 0.0]))
            .y_axis(
                Axis::default()
                    .bounds([0.0, top])
                    .labels([Line::from("0"), Line::from(fmt(top))]),
            )
            .legend_position(None);
        frame.render_widget(chart, area);
    }
}

fn growth_per_min(series: &[Series], metric: Metric, start_ms: u64, end_ms: u64) -> Option<f64> {
    series
        .iter()
        .find(|s| s.name == metric.series())?
        .slope_per_min(start_ms, end_ms)
}

fn headline(app: &App, summary: Option<&InstanceSummary>) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let Some(i) = summary else {
        return vec![Line::from("no such instance")];
    };
    let Some(s) = &i.latest else {
        return vec![Line::from(Span::styled(
            "waiting for the first sample…",
            theme.dim(),
        ))];
    };
    let mut first = vec![Span::raw(format!("pid {} on {} ", i.pid, i.host))];
    if !i.capabilities.is_empty() {
        first.push(Span::styled(
            format!("[{}]", i.capabilities.join(",")),
            theme.dim(),
        ));
    }
    let mut second = Vec::new();
    if let Some(r) = s
        .runtimes
        .iter()
        .find(|r| r.name == "main")
        .or(s.runtimes.first())
    {
        if let Some(lag) = &r.lag {
            let style = if lag.max_us >= 100_000 || lag.p50_us >= 10_000 {
                theme.warn()
            } else {
                Style::default()
            };
            second.push(Span::styled(
                format!(
                    "lag p99 {} max {} ",
                    format::micros(lag.p99_us as f64),
                    format::micros(lag.max_us as f64)
                ),
                style,
            ));
        }
        let busy_style = if r.busy_ratio >= 0.95 {
            theme.warn()
        } else {
            Style::default()
        };
        second.push(Span::styled(
            format!("busy {} ", format::percent(r.busy_ratio)),
            busy_style,
        ));
        second.push(Span::raw(format!("tasks {} ", r.alive_tasks)));
    }
    if let Some(c) = s.process.cpu_ratio {
        second.push(Span::raw(format!("cpu {} ", format::percent(c))));
    }
    if s.dropped_samples > 0 {
        second.push(Span::styled(
            format!("dropped {}", s.dropped_samples),
            theme.warn(),
        ));
    }
    if let Some(stall) = app.stalls.first().map(|r| &r.stall).filter(|e| e.ongoing) {
        let place = stall.blocking_function.as_deref().unwrap_or("?");
        second.push(Span::styled(
            format!(
                " STALLED {} in {place}",
                format::micros(stall.duration_us as f64)
            ),
            theme.warn(),
        ));
    }
    let mut lines = vec![Line::from(first), Line::from(second)];
    // A part of the agent that stopped working since it started.
    if let Some(n) = i.notices.last() {
        let more = match i.notices.len() {
            1 => String::new(),
            n => format!(" (+{} more)", n - 1),
        };
        lines.push(Line::from(Span::styled(
            format!("agent: {n}{more}"),
            theme.warn(),
        )));
    }
    // Settings the agent ignored: the operator should know their change did
    // not take.
    if let Some(w) = i.config_warnings.first() {
        let more = match i.config_warnings.len() {
            1 => String::new(),
            n => format!(" (+{} more)", n - 1),
        };
        lines.push(Line::from(Span::styled(
            format!("agent config: {w}{more}"),
            theme.warn(),
        )));
    }
    // The doctor's live verdict, when it has something to say.
    if let Some(d) = app.diagnosis.as_ref().and_then(|d| d.findings.first()) {
        if d.category != Category::None {
            let culprit = d
                .culprit
                .as_deref()
                .map(|c| format!(" in {}", format::short_name(c)))
                .unwrap_or_default();
            lines.push(Line::from(Span::styled(
                format!("doctor: {}{culprit} — {}", d.category, d.summary),
                theme.warn(),
            )));
        }
    }
    lines
}
