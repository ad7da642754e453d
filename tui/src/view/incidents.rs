//! The incidents pane: the selected instance's recent stalls, and the stack
//! of the newest with the function that blocked highlighted.

use lagscope_wire::api::StallRecord;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use super::format;
use crate::state::App;

/// Rows the pane takes when the instance has stalls (none otherwise).
pub(super) fn height(app: &App, available: u16) -> u16 {
    if app.stalls.is_empty() {
        0
    } else {
        (available / 2).clamp(4, 12)
    }
}

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect, now_ms: u64) {
    let theme = &app.theme;
    let ongoing = app.stalls.iter().filter(|r| r.stall.ongoing).count();
    let title = if ongoing > 0 {
        format!(" Stalls — {ongoing} NOW ")
    } else {
        format!(
            " Stalls — {} recent (age, length, where) ",
            app.stalls.len()
        )
    };
    let block = Block::default()
        .borders(Borders::TOP)
        .title(Span::styled(title, theme.warn()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let list_width = (inner.width * 2 / 5).clamp(24, 48);
    let [list_area, _, stack_area] = Layout::horizontal([
        Constraint::Length(list_width),
        Constraint::Length(1),
        Constraint::Min(10),
    ])
    .areas(inner);

    let lines: Vec<Line> = app
        .stalls
        .iter()
        .take(list_area.height as usize)
        .map(|r| {
            let s = &r.stall;
            let when = if s.ongoing {
                "NOW".to_string()
            } else {
                format::span(now_ms.saturating_sub(s.started_ms) / 1000)
            };
            let place = s
                .blocking_function
                .as_deref()
                .map_or_else(|| "?".to_string(), format::short_name);
            let style = if s.ongoing { theme.warn() } else { theme.dim() };
            Line::from(vec![
                Span::styled(format!("{when:>4} "), style),
                Span::raw(format!("{:>7} ", format::micros(s.duration_us as f64))),
                Span::raw(place.to_string()),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), list_area);

    if let Some(newest) = app.stalls.first() {
        frame.render_widget(Paragraph::new(stack_lines(app, newest)), stack_area);
    }
}

fn stack_lines(app: &App, r: &StallRecord) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let s = &r.stall;
    let mut about = format!(
        "{} on tid {} ({}, {} captures)",
        format::micros(s.duration_us as f64),
        s.tid,
        s.detection,
        s.captures()
    );
    if let Some(at) = &s.spawned_at {
        about.push_str(&format!(", task spawned at {at}"));
    }
    if let Some(span) = &s.span {
        about.push_str(&format!(", in span {span}"));
    }
    let mut lines = vec![Line::from(Span::styled(about, theme.dim()))];
    let Some(stack) = s.stacks.first() else {
        lines.push(Line::from("no stack captured"));
        return lines;
    };
    let culprit = s.blocking_function.as_deref();
    for frame in &stack.frames {
        if Some(frame.as_str()) == culprit {
            lines.push(Line::from(Span::styled(
                format!("▶ {frame}"),
                theme.warn().add_modifier(Modifier::BOLD),
            )));
            if frame.ends_with("{{closure}}") && !has_line_tables(app) {
                lines.push(Line::from(Span::styled(
                    "    may hold inlined code (an async fn): build with debug = \"limited\" to name it",
                    theme.warn(),
                )));
            }
        } else {
            lines.push(Line::from(Span::styled(format!("  {frame}"), theme.dim())));
        }
    }
    lines
}

/// Whether the selected instance's build has line tables (its agent says
/// so in its capabilities), which name inlined functions.
fn has_line_tables(app: &App) -> bool {
    let Some((service, instance)) = app.selection() else {
        return false;
    };
    app.services
        .iter()
        .flat_map(|s| &s.services)
        .filter(|s| s.service == service)
        .flat_map(|s| &s.instances)
        .find(|i| i.instance == instance)
        .is_some_and(|i| i.capabilities.iter().any(|c| c == "line-tables"))
}

#[cfg(test)]
mod tests {
    use super::format::short_name;

    #[test]
    fn names_are_shortened_to_their_last_two_segments() {
        assert_eq!(short_name("svc::api::orders::checkout"), "orders::checkout");
        assert_eq!(short_name("svc::handler::{{closure}}"), "svc::handler");
        assert_eq!(short_name("checkout"), "checkout");
    }

    #[test]
    fn methods_keep_their_type_and_inlined_frames_their_line() {
        assert_eq!(short_name("<std::time::Instant>::now"), "Instant::now");
        assert_eq!(
            short_name("<svc::db::Pool as svc::Store>::get"),
            "Pool::get"
        );
        assert_eq!(
            short_name("tokio::runtime::task::core::Core<T,S>::poll"),
            "Core<T,S>::poll"
        );
        assert_eq!(
            short_name("svc::digest::{{closure}} (src/main.rs:58)"),
            "svc::digest (src/main.rs:58)"
        );
    }
}
