//! The requests pane (key `t`): per instrumented name, where its requests
//! spent their time over the window — waiting for a worker (█), polled (▓),
//! idle (░) — with requests per second and the highest per-interval p99 of
//! one request's time waiting for a worker; below, where each name's
//! requests waited by await point (wait capture) and the stuck requests.

use lagscope_wire::api::WaitsResponse;
use lagscope_wire::tasks::task_splits;
use ratatui::layout::{Constraint, Layout, Rect};
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
    let waits = app.waits.as_ref().map(wait_lines).unwrap_or_default();
    let area = if waits.is_empty() {
        area
    } else {
        let table_rows = (splits.len() as u16 + 2).max(3);
        let [table, below] =
            Layout::vertical([Constraint::Length(table_rows), Constraint::Fill(1)]).areas(area);
        frame.render_widget(
            Paragraph::new(
                waits
                    .into_iter()
                    .map(|(text, stuck)| {
                        Line::from(Span::styled(
                            text,
                            if stuck { theme.warn() } else { theme.dim() },
                        ))
                    })
                    .collect::<Vec<_>>(),
            )
            .block(
                Block::default()
                    .borders(Borders::TOP)
                    .title(" Where they wait — share of each name's waiting, by await point "),
            ),
            below,
        );
        table
    };
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

/// Await points per name (up to three, most waiting first) and the stuck
/// requests, as lines (`true`: a stuck one, drawn as a warning).
fn wait_lines(w: &WaitsResponse) -> Vec<(String, bool)> {
    let mut lines = Vec::new();
    for t in &w.tasks {
        for (i, site) in t.sites.iter().take(3).enumerate() {
            let name = if i == 0 { t.task.as_str() } else { "" };
            lines.push((
                format!(
                    "{name:<24.24} {:>3.0} % {:<8} {}",
                    site.share * 100.0,
                    site.kind,
                    site.await_point
                ),
                false,
            ));
        }
    }
    if !w.stuck.is_empty() {
        // The agents list the oldest few; their counts have them all.
        let total = w.stuck_total.max(w.stuck.len() as u64);
        lines.push((
            format!("{total} stuck (pending without a wake past the agent's threshold):"),
            true,
        ));
        for s in w.stuck.iter().take(5) {
            let at = if s.await_point.is_empty() {
                "await point not captured yet".to_string()
            } else {
                format!("{} at {}", s.kind, s.await_point)
            };
            lines.push((
                format!(
                    "  {:<22.22} {:>6} {at}",
                    s.task,
                    format::micros(s.pending_ms as f64 * 1000.0)
                ),
                true,
            ));
        }
    }
    lines
}
