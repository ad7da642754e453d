//! The `?` overlay.

use ratatui::layout::{Constraint, Flex, Layout};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use crate::state::App;

const KEYS: &str = " ↑↓ / j k    select instance
 Enter       open its charts
 Tab         switch pane
 ← → / h l   pan in time (charts pane)
 0 / Home    back to now
 + / -       zoom window in / out
 f           top CPU functions / charts
 t           requests by name / charts
 m           heap sites / charts
 /           filter by name (Esc clears)
 ?           this help
 q / Esc     quit

 Charts: lag (probe delay p50/p99/max),
 busy ratio per worker and CPU, queues,
 blocking pool (title: longest blocking
 wait), memory (heap, RSS, C heap,
 external) with its growth trend; stalls
 with the blocking function's stack.";

pub(super) fn draw(frame: &mut Frame, app: &App) {
    let [area] = Layout::horizontal([Constraint::Length(46)])
        .flex(Flex::Center)
        .areas(frame.area());
    let [area] = Layout::vertical([Constraint::Length(21)])
        .flex(Flex::Center)
        .areas(area);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(KEYS).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Keys ")
                .border_style(app.theme.focused()),
        ),
        area,
    );
}
