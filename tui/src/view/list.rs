//! The services → instances list, with health colours and headline figures.

use lagscope_wire::api::Health;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph};
use ratatui::Frame;

use super::format;
use crate::state::{App, Focus};

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let theme = &app.theme;
    let title = if app.filtering || !app.filter.is_empty() {
        format!(
            " Services /{}{} ",
            app.filter,
            if app.filtering { "▏" } else { "" }
        )
    } else {
        " Services ".to_string()
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .border_style(if app.focus == Focus::List {
            theme.focused()
        } else {
            Style::default()
        });
    let rows = app.rows();
    if rows.is_empty() {
        let text = if app.services.is_none() {
            "connecting…"
        } else if app.filter.is_empty() {
            "waiting for agents…\n\nstart a service with\nLAGSCOPE_COLLECTOR set"
        } else {
            "no match"
        };
        frame.render_widget(Paragraph::new(text).style(theme.dim()).block(block), area);
        return;
    }
    let services = app.services.as_ref().map(|s| &s.services);
    let mut selected_line = None;
    let mut instance_index = 0;
    let items: Vec<ListItem> = rows
        .iter()
        .enumerate()
        .map(|(line, row)| match &row.instance {
            None => {
                let lag = services
                    .and_then(|ss| ss.iter().find(|s| s.service == row.service))
                    .and_then(|s| s.lag_p99_us_max)
                    .map(|us| format!(" p99 {}", format::micros(us as f64)))
                    .unwrap_or_default();
                ListItem::new(Line::from(vec![
                    Span::styled(
                        row.service.clone(),
                        Style::default().add_modifier(Modifier::BOLD),
                    ),
                    Span::styled(lag, theme.dim()),
                ]))
            }
            Some(instance) => {
                if instance_index == app.selected {
                    selected_line = Some(line);
                }
                instance_index += 1;
                let marker = match row.health {
                    Health::Live => "●",
                    Health::Stale => "◐",
                    Health::Gone => "○",
                };
                ListItem::new(Line::from(vec![
                    Span::raw(" "),
                    Span::styled(marker, theme.health(row.health)),
                    Span::raw(" "),
                    Span::styled(instance.clone(), theme.health(row.health)),
                ]))
            }
        })
        .collect();
    let mut state = ListState::default().with_selected(selected_line);
    let list = List::new(items)
        .block(block)
        .highlight_style(theme.selected());
    frame.render_stateful_widget(list, area, &mut state);
}
