//! The heap-sites table: where the selected instance's live heap was
//! allocated, by function, and how much each grew over the window (key `m`).

use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::format;
use crate::state::App;

const MIB: f64 = 1024.0 * 1024.0;

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let theme = &app.theme;
    let Some(h) = app.heap.as_ref().filter(|h| !h.sites.is_empty()) else {
        // A heap window came, but none of its samples was still live: the
        // instance only allocates what it frees soon after.
        let text = match app.heap.as_ref() {
            Some(h) if h.sample_bytes > 0 => format!(
                "nothing sampled is live at the last heap window: this instance's \
                 allocations are short-lived (sampled every {} KiB on average)",
                h.sample_bytes / 1024
            ),
            _ => "no heap samples in this window yet (heap windows arrive every 10 s; heap \
                  sampling needs lagscope::alloc::Counting as the global allocator)"
                .to_string(),
        };
        frame.render_widget(
            Paragraph::new(Line::from(text))
                .wrap(Wrap { trim: true })
                .style(theme.dim())
                .block(
                    Block::default()
                        .borders(Borders::TOP)
                        .title(" Heap by allocation site "),
                ),
            area,
        );
        return;
    };
    let mib = |bytes: f64| format!("{:.1}", bytes / MIB);
    let rows = h.sites.iter().map(|s| {
        let grew = if h.since_ms.is_some() {
            format!("{:+.1}", s.grew_bytes as f64 / MIB)
        } else {
            "–".to_string()
        };
        let row = Row::new(vec![mib(s.live_bytes as f64), grew, s.function.clone()]);
        if h.since_ms.is_some() && s.grew_bytes as f64 >= 0.5 * MIB {
            row.style(theme.warn())
        } else {
            row
        }
    });
    let growth = match h.since_ms {
        Some(since) => format!("grew since {}", format::clock(since)),
        None => "no earlier heap window".to_string(),
    };
    let title = format!(
        " Heap sites — {} MiB live at {}, {growth} ",
        mib(h.live_bytes as f64),
        format::clock(h.at_ms),
    );
    let function = format!("allocated in (sampled every {} KiB)", h.sample_bytes / 1024);
    let table = Table::new(
        rows,
        [
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(vec!["MiB".to_string(), "grew".to_string(), function]).style(theme.dim()))
    .block(Block::default().borders(Borders::TOP).title(title));
    frame.render_widget(table, area);
}
