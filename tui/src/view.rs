//! Drawing: the whole screen from an [`App`], nothing else.

mod charts;
mod format;
mod heap;
mod help;
mod incidents;
mod list;
mod status;
mod tasks;
mod top;

use ratatui::layout::{Constraint, Layout};
use ratatui::Frame;

use crate::state::App;

/// Draws the dashboard. `now_ms` anchors the time window when there is no data yet.
pub fn draw(frame: &mut Frame, app: &App, now_ms: u64) {
    let [main, status_bar] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(frame.area());
    let list_width = (main.width / 3).clamp(24, 40);
    let [list_area, charts_area] =
        Layout::horizontal([Constraint::Length(list_width), Constraint::Min(20)]).areas(main);
    list::draw(frame, app, list_area);
    charts::draw(frame, app, charts_area, now_ms);
    status::draw(frame, app, status_bar);
    if app.help {
        help::draw(frame, app);
    }
}
