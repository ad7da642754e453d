//! Colours, or none when `NO_COLOR` is set (<https://no-color.org>).

use lagscope_wire::api::Health;
use ratatui::style::{Color, Modifier, Style};

/// The dashboard's styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    color: bool,
}

impl Theme {
    /// Colours unless `NO_COLOR` is set to a non-empty value.
    pub fn from_env() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Theme { color: !no_color }
    }

    /// A theme with or without colours.
    pub fn new(color: bool) -> Self {
        Theme { color }
    }

    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }

    /// Style for an instance's health.
    pub fn health(&self, h: Health) -> Style {
        match h {
            Health::Live => self.fg(Color::Green),
            Health::Stale => self.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            Health::Gone => self.fg(Color::DarkGray).add_modifier(Modifier::DIM),
        }
    }

    /// Style of a value past a warning threshold.
    pub fn warn(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// Style of the selected row.
    pub fn selected(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }

    /// Style of the focused pane's border.
    pub fn focused(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// Style of secondary text.
    pub fn dim(&self) -> Style {
        self.fg(Color::DarkGray)
    }

    /// Style of the n-th line of a chart.
    pub fn series(&self, n: usize) -> Style {
        const PALETTE: [Color; 6] = [
            Color::Green,
            Color::Yellow,
            Color::Red,
            Color::Cyan,
            Color::Magenta,
            Color::Blue,
        ];
        self.fg(PALETTE[n % PALETTE.len()])
    }
}
