//! The requests pane (key `t`): per instrumented name, where its requests
//! spent their time over the window — waiting for a worker (█), polled (▓),
//! idle (░) — with requests per second and the highest per-interval p99 of
//! one request's time waiting for a worker.

use lagscope_wire::tasks::task_splits;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::format;
use crate::state::App;

/// Width of the split bar, in cells.
const BAR: usize = 20;

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let theme = &app.theme;
    let splits = app.series.as_ref().map_or_else(Vec::new, |s| {
        task_splits(s.series.iter().map(|s| s.name.as_str()), |name| {
            s.series
                .iter()
                .find(|x| x.name == name)
                .map(|x| x.points.iter().map(|p| (p.t_ms, p.mean)).collect())
        })
    });
    let title = " Requests — time waiting for a worker █, polled ▓, idle ░ ";
    if splits.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::from(
                "no instrumented requests in this window (wrap futures in lagscope::instrument, \
                 or add lagscope::route::TaskMonitorLayer to the router)",
            ))
            .style(theme.dim())
            .block(Block::default().borders(Borders::TOP).title(title)),
            area,
        );
        return;
    }
    let rows = splits.iter().map(|t| {
        // Whole cells per state, the remainder to the largest share.
        let cells = |share: f64| (share * BAR as f64).round() as usize;
        let (s, p) = (cells(t.scheduled), cells(t.poll));
        let i = BAR.saturating_sub(s + p);
        let bar = Line::from(vec![
            Span::styled("█".repeat(s), theme.warn()),
            Span::styled("▓".repeat(p), theme.series(5)),
            Span::styled("░".repeat(i), theme.dim()),
        ]);
        let p99 = |us: Option<f64>| us.map_or_else(|| "—".into(), format::micros);
        Row::new(vec![
            Cell::from(t.name.clone()),
            Cell::from(if t.span_s > 0.0 {
                format!("{:.1}", t.requests / t.span_s)
            } else {
                "—".into()
            }),
            Cell::from(bar),
            Cell::from(format!(
                "{:>3.0} {:>3.0} {:>3.0}",
                t.scheduled * 100.0,
                t.poll * 100.0,
                t.idle * 100.0
            )),
            Cell::from(p99(t.scheduled_p99_us)),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Fill(1),
            Constraint::Length(6),
            Constraint::Length(BAR as u16),
            Constraint::Length(11),
            Constraint::Length(9),
        ],
    )
    .header(
        Row::new(vec!["name", "req/s", "split", "  % s   p   i", "p99 wait"]).style(theme.dim()),
    )
    .block(Block::default().borders(Borders::TOP).title(title));
    frame.render_widget(table, area);
}
