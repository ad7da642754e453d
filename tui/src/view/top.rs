//! The top-functions table: where the selected instance's CPU went over the
//! window, from its continuous profile (key `f`).

use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};
use ratatui::Frame;

use super::format;
use crate::state::App;

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let theme = &app.theme;
    let Some(p) = app.profile.as_ref().filter(|p| p.samples > 0) else {
        frame.render_widget(
            Paragraph::new(Line::from(
                "no CPU samples in this window yet (profiles arrive every 10 s; LAGSCOPE_PROFILE_HZ=0 turns them off)",
            ))
            .style(theme.dim())
            .block(Block::default().borders(Borders::TOP).title(" Top functions ")),
            area,
        );
        return;
    };
    let total = p.samples.max(1) as f64;
    let rows = p.top.iter().map(|t| {
        Row::new(vec![
            format::percent(t.self_samples as f64 / total),
            format::percent(t.total_samples as f64 / total),
            t.name.clone(),
        ])
    });
    let title = format!(
        " Top functions — {} samples at {} Hz (self, total, function) ",
        p.samples, p.hz
    );
    let table = Table::new(
        rows,
        [
            Constraint::Length(5),
            Constraint::Length(6),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(vec!["self", "total", "function"]).style(theme.dim()))
    .block(Block::default().borders(Borders::TOP).title(title));
    frame.render_widget(table, area);
}
