//! The dashboard's state and how keys change it. No drawing, no I/O.

use std::time::Duration;

use std::collections::BTreeMap;

use lagscope_wire::api::{
    Health, HeapResponse, ProfileResponse, SeriesResponse, ServicesResponse, StallRecord,
    WaitsResponse,
};
use lagscope_wire::frames::{allocating_frame, function_name};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use lagscope_wire::doctor::Diagnosis;

use crate::theme::Theme;

/// Time windows `+`/`-` step through.
pub const ZOOMS: [Duration; 6] = [
    Duration::from_secs(60),
    Duration::from_secs(300),
    Duration::from_secs(900),
    Duration::from_secs(3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(24 * 3600),
];

/// Which pane keys go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The services → instances list.
    List,
    /// The selected instance's charts (h/l pan in time).
    Charts,
}

/// Whether the collector is answering.
#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    /// No answer yet.
    Connecting,
    /// The last request succeeded.
    Connected,
    /// The last request failed; history shown is from before.
    Failed(String),
    /// Some of the dashboard's collectors answered and these did not (why,
    /// naming each): what they hold is missing from the list.
    Partial(Vec<String>),
}

/// One line of the list: a service header or one of its instances.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Service name.
    pub service: String,
    /// Instance id; `None` for the service's header row.
    pub instance: Option<String>,
    /// Instance health (the worst of its instances for a header).
    pub health: Health,
}

/// Everything the views draw from.
#[derive(Debug)]
pub struct App {
    /// Where data comes from, for the status bar.
    pub source: String,
    /// Latest services listing.
    pub services: Option<ServicesResponse>,
    /// Series of the selected instance.
    pub series: Option<SeriesResponse>,
    /// Recent stalls of the selected instance, newest first.
    pub stalls: Vec<StallRecord>,
    /// CPU profile of the selected instance over the window (top functions).
    pub profile: Option<ProfileResponse>,
    /// Whether the top-functions table replaces the queue and memory charts.
    pub show_top: bool,
    /// Heap by allocation site of the selected instance, while its pane is
    /// shown (fetched only then).
    pub heap: Option<HeapSites>,
    /// Whether the heap-sites table replaces the lower charts.
    pub show_heap: bool,
    /// Whether the requests pane (per task name) replaces the lower charts.
    pub show_tasks: bool,
    /// Where the selected instance's requests waited, and the stuck ones,
    /// while the requests pane is shown (fetched only then).
    pub waits: Option<WaitsResponse>,
    /// The doctor's live diagnosis of the selected instance (last minute).
    pub diagnosis: Option<Diagnosis>,
    /// Index of the selected instance among the visible instance rows.
    pub selected: usize,
    /// Which pane has the keys.
    pub focus: Focus,
    /// Index into [`ZOOMS`].
    pub zoom: usize,
    /// How far back from the newest data the window ends, in ms.
    pub pan_ms: u64,
    /// Substring filter over service and instance names.
    pub filter: String,
    /// Whether keys are typing into the filter.
    pub filtering: bool,
    /// Whether the help overlay is shown.
    pub help: bool,
    /// Collector reachability.
    pub connection: Connection,
    /// Colours (or none, with `NO_COLOR`).
    pub theme: Theme,
    /// Lines the user must not miss, on the status line all session.
    pub notices: Vec<String>,
    /// Set when the user asked to quit.
    pub quit: bool,
}

impl App {
    /// A fresh dashboard reading from `source`.
    pub fn new(source: impl Into<String>, theme: Theme) -> Self {
        App {
            source: source.into(),
            services: None,
            series: None,
            stalls: Vec::new(),
            profile: None,
            show_top: false,
            heap: None,
            show_heap: false,
            show_tasks: false,
            waits: None,
            diagnosis: None,
            selected: 0,
            focus: Focus::List,
            zoom: 0,
            pan_ms: 0,
            filter: String::new(),
            filtering: false,
            help: false,
            connection: Connection::Connecting,
            theme,
            notices: Vec::new(),
            quit: false,
        }
    }

    /// The list's rows, filtered.
    pub fn rows(&self) -> Vec<Row> {
        let Some(services) = &self.services else {
            return Vec::new();
        };
        let filter = self.filter.to_lowercase();
        let mut rows = Vec::new();
        for s in &services.services {
            let service_matches = s.service.to_lowercase().contains(&filter);
            let instances: Vec<_> = s
                .instances
                .iter()
                .filter(|i| service_matches || i.instance.to_lowercase().contains(&filter))
                .collect();
            if instances.is_empty() {
                continue;
            }
            let worst = instances
                .iter()
                .map(|i| i.health)
                .min_by_key(|h| match h {
                    Health::Gone => 2,
                    Health::Stale => 0,
                    Health::Live => 1,
                })
                .unwrap_or(Health::Live);
            rows.push(Row {
                service: s.service.clone(),
                instance: None,
                health: worst,
            });
            for i in instances {
                rows.push(Row {
                    service: s.service.clone(),
                    instance: Some(i.instance.clone()),
                    health: i.health,
                });
            }
        }
        rows
    }

    /// (service, instance) of the selected row.
    pub fn selection(&self) -> Option<(String, String)> {
        let row = self
            .rows()
            .into_iter()
            .filter(|r| r.instance.is_some())
            .nth(self.selected)?;
        Some((row.service, row.instance?))
    }

    fn instance_count(&self) -> usize {
        self.rows().iter().filter(|r| r.instance.is_some()).count()
    }

    /// The time window shown.
    pub fn window(&self) -> Duration {
        ZOOMS[self.zoom.min(ZOOMS.len() - 1)]
    }

    /// End of the window, ms since the epoch: the newest sample seen (so a
    /// replayed recording shows its own time), moved back by the pan.
    pub fn window_end_ms(&self, now_ms: u64) -> u64 {
        window_end_ms(self.services.as_ref(), self.pan_ms, now_ms)
    }

    /// New services listing; keeps the selection on the same instance if it is still there.
    pub fn set_services(&mut self, services: ServicesResponse) {
        let before = self.selection();
        self.services = Some(services);
        self.connection = Connection::Connected;
        if let Some((service, instance)) = before {
            let position = self
                .rows()
                .into_iter()
                .filter(|r| r.instance.is_some())
                .position(|r| r.service == service && r.instance.as_deref() == Some(&instance));
            if let Some(p) = position {
                self.selected = p;
            }
        }
        self.clamp_selection();
    }

    /// New series for the selected instance (ignored if the selection moved on).
    pub fn set_series(&mut self, series: SeriesResponse) {
        if self
            .selection()
            .is_some_and(|(s, i)| s == series.service && i == series.instance)
        {
            self.series = Some(series);
        }
    }

    /// New stalls for the selected instance (ignored if the selection moved on).
    pub fn set_stalls(&mut self, service: &str, instance: &str, stalls: Vec<StallRecord>) {
        if self
            .selection()
            .is_some_and(|(s, i)| s == service && i == instance)
        {
            self.stalls = stalls;
        }
    }

    /// A new profile for the selected instance (ignored if the selection moved on).
    pub fn set_profile(&mut self, instance: &str, profile: ProfileResponse) {
        if self
            .selection()
            .is_some_and(|(s, i)| s == profile.service && i == instance)
        {
            self.profile = Some(profile);
        }
    }

    /// New heap sites for the selected instance (ignored if the selection moved on).
    pub fn set_heap(&mut self, service: &str, instance: &str, heap: HeapSites) {
        if self
            .selection()
            .is_some_and(|(s, i)| s == service && i == instance)
        {
            self.heap = Some(heap);
        }
    }

    /// Where the selected instance's requests waited (ignored if the
    /// selection moved on).
    pub fn set_waits(&mut self, service: &str, instance: &str, waits: WaitsResponse) {
        if self
            .selection()
            .is_some_and(|(s, i)| s == service && i == instance)
        {
            self.waits = Some(waits);
        }
    }

    /// A new diagnosis for the selected instance (ignored if the selection moved on).
    pub fn set_diagnosis(&mut self, diagnosis: Diagnosis) {
        if self
            .selection()
            .is_some_and(|(s, i)| s == diagnosis.service && i == diagnosis.instance)
        {
            self.diagnosis = Some(diagnosis);
        }
    }

    fn clamp_selection(&mut self) {
        let n = self.instance_count();
        self.selected = if n == 0 { 0 } else { self.selected.min(n - 1) };
    }

    fn select(&mut self, delta: isize) {
        let n = self.instance_count();
        if n == 0 {
            return;
        }
        let next = (self.selected as isize + delta).rem_euclid(n as isize) as usize;
        if next != self.selected {
            self.selected = next;
            self.series = None;
            self.stalls.clear();
            self.profile = None;
            self.heap = None;
            self.waits = None;
            self.diagnosis = None;
        }
    }

    /// Applies one key press.
    pub fn on_key(&mut self, key: KeyEvent) {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return;
        }
        if self.filtering {
            match key.code {
                KeyCode::Esc => {
                    self.filtering = false;
                    self.filter.clear();
                }
                KeyCode::Enter => self.filtering = false,
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) => self.filter.push(c),
                _ => {}
            }
            self.clamp_selection();
            return;
        }
        if self.help {
            if matches!(
                key.code,
                KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q')
            ) {
                self.help = false;
            }
            return;
        }
        let pan_step = self.window().as_millis() as u64 / 4;
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => self.quit = true,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('/') => {
                self.filtering = true;
                self.focus = Focus::List;
            }
            KeyCode::Tab | KeyCode::BackTab => {
                self.focus = match self.focus {
                    Focus::List => Focus::Charts,
                    Focus::Charts => Focus::List,
                }
            }
            KeyCode::Enter => self.focus = Focus::Charts,
            KeyCode::Char('+') | KeyCode::Char('=') => {
                self.zoom = self.zoom.saturating_sub(1);
                self.series = None;
            }
            KeyCode::Char('-') => {
                self.zoom = (self.zoom + 1).min(ZOOMS.len() - 1);
                self.series = None;
            }
            KeyCode::Up | KeyCode::Char('k') => self.select(-1),
            KeyCode::Down | KeyCode::Char('j') => self.select(1),
            KeyCode::Left | KeyCode::Char('h') if self.focus == Focus::Charts => {
                self.pan_ms = self.pan_ms.saturating_add(pan_step);
            }
            KeyCode::Right | KeyCode::Char('l') if self.focus == Focus::Charts => {
                self.pan_ms = self.pan_ms.saturating_sub(pan_step);
            }
            KeyCode::Left | KeyCode::Char('h') => self.focus = Focus::List,
            KeyCode::Right | KeyCode::Char('l') => self.focus = Focus::Charts,
            KeyCode::Home | KeyCode::Char('0') => self.pan_ms = 0,
            KeyCode::Char('f') => {
                self.show_top = !self.show_top;
                self.show_tasks = false;
                self.show_heap = false;
            }
            KeyCode::Char('t') => {
                self.show_tasks = !self.show_tasks;
                self.show_top = false;
                self.show_heap = false;
            }
            KeyCode::Char('m') => {
                self.show_heap = !self.show_heap;
                self.show_top = false;
                self.show_tasks = false;
            }
            _ => {}
        }
    }
}

/// The heap of one instance by allocation site: live bytes now and their
/// growth since the window's start, by the function that allocated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeapSites {
    /// When the live bytes were read (the last heap window), ms since the epoch.
    pub at_ms: u64,
    /// When the bytes growth is counted from were read, if a heap window
    /// ended before the window.
    pub since_ms: Option<u64>,
    /// Mean sampling interval, bytes.
    pub sample_bytes: u64,
    /// Live bytes in all.
    pub live_bytes: u64,
    /// By function, most live bytes first.
    pub sites: Vec<HeapSiteRow>,
}

/// One row of [`HeapSites`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeapSiteRow {
    /// The innermost user function of its stacks (the leaf where none is).
    pub function: String,
    /// Live bytes now.
    pub live_bytes: u64,
    /// Growth since `since_ms` (0 without it).
    pub grew_bytes: i64,
}

impl HeapSites {
    /// Rows from the heap in use now and, if one exists, before the window.
    pub fn from_responses(now: &HeapResponse, before: Option<&HeapResponse>) -> HeapSites {
        let by_function = |h: &HeapResponse| -> BTreeMap<String, u64> {
            let mut out = BTreeMap::new();
            for line in h.folded.lines() {
                let Some((stack, bytes)) = line.rsplit_once(' ') else {
                    continue;
                };
                let Ok(bytes) = bytes.parse::<u64>() else {
                    continue;
                };
                let frames: Vec<&str> = stack.rsplit(';').collect();
                let at = allocating_frame(&frames).unwrap_or(0);
                let name = function_name(frames.get(at).copied().unwrap_or("?"));
                *out.entry(name.to_string()).or_default() += bytes;
            }
            out
        };
        let live = by_function(now);
        let before = before.filter(|b| !b.folded.is_empty() && b.end_ms < now.end_ms);
        let then = before.map(by_function).unwrap_or_default();
        let mut sites: Vec<HeapSiteRow> = live
            .iter()
            .map(|(function, &bytes)| HeapSiteRow {
                function: function.clone(),
                live_bytes: bytes,
                grew_bytes: before.map_or(0, |_| {
                    bytes as i64 - then.get(function).copied().unwrap_or(0) as i64
                }),
            })
            .collect();
        sites.sort_by_key(|s| std::cmp::Reverse(s.live_bytes));
        HeapSites {
            at_ms: now.end_ms,
            since_ms: before.map(|b| b.end_ms),
            sample_bytes: now.sample_bytes,
            live_bytes: now.total_bytes,
            sites,
        }
    }
}

/// End of a window panned back `pan_ms` from the newest sample `services`
/// lists (`now_ms` when it lists none).
pub fn window_end_ms(services: Option<&ServicesResponse>, pan_ms: u64, now_ms: u64) -> u64 {
    let newest = services
        .iter()
        .flat_map(|s| &s.services)
        .flat_map(|s| &s.instances)
        .filter_map(|i| i.last_sample_ms)
        .max()
        .unwrap_or(now_ms);
    newest.saturating_sub(pan_ms)
}
