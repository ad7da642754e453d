//! The bottom line: connection state, counts, key hints.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use lagscope_wire::api::RecordingStatus;
use lagscope_wire::duration::utc_hms;

use super::format;
use crate::state::{App, Connection};

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let theme = &app.theme;
    let mut spans = match &app.connection {
        Connection::Connecting => vec![Span::styled(
            format!("… connecting to {}", app.source),
            theme.dim(),
        )],
        Connection::Connected => vec![Span::raw(format!("● {}", app.source))],
        Connection::Failed(e) => vec![Span::styled(
            format!("✗ {e} (showing last data)"),
            theme.warn(),
        )],
        Connection::Partial(failed) => vec![
            Span::raw(format!("◐ {}", app.source)),
            Span::styled(
                format!(
                    " │ ✗ {} not shown: {}",
                    match failed.len() {
                        1 => "1 collector's services".to_string(),
                        n => format!("{n} collectors' services"),
                    },
                    failed.join("; ")
                ),
                theme.warn(),
            ),
        ],
    };
    if let Some(s) = &app.services {
        let instances: usize = s.services.iter().map(|s| s.instances.len()).sum();
        let dropped: u64 = s
            .services
            .iter()
            .flat_map(|s| &s.instances)
            .map(|i| i.dropped_samples)
            .sum();
        spans.push(Span::styled(
            format!(
                " │ {} svc {} inst │ hist {}",
                s.services.len(),
                instances,
                format::bytes(s.collector.history_bytes as f64),
            ),
            theme.dim(),
        ));
        if dropped > 0 {
            spans.push(Span::styled(format!(" │ {dropped} dropped"), theme.warn()));
        }
        if let Some(r) = &s.collector.recording {
            spans.push(recording(r, theme));
        }
    }
    if let Some(first) = app.notices.first() {
        let more = match app.notices.len() {
            1 => String::new(),
            n => format!(" (+{} more)", n - 1),
        };
        spans.push(Span::styled(format!(" │ ⚠ {first}{more}"), theme.warn()));
    }
    spans.push(Span::styled(" │ ? help q quit", theme.dim()));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The recording's state: failing (and why) stands out; a recovery stays
/// said, with what was lost, so a gap in the file is explained.
fn recording<'a>(r: &RecordingStatus, theme: &crate::theme::Theme) -> Span<'a> {
    match (r.failing_since_ms, r.resumed_ms) {
        (Some(since), _) => Span::styled(
            format!(
                " │ ✗ recording failing since {}: {} ({} lost)",
                utc_hms(since),
                r.error.as_deref().unwrap_or("write error"),
                r.dropped
            ),
            theme.warn(),
        ),
        (None, Some(resumed)) => Span::styled(
            format!(" │ rec resumed {} ({} lost)", utc_hms(resumed), r.dropped),
            theme.warn(),
        ),
        (None, None) if r.dropped > 0 => {
            Span::styled(format!(" │ rec {} lost", r.dropped), theme.warn())
        }
        (None, None) => Span::styled(" │ rec", theme.dim()),
    }
}
