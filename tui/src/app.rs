//! The event loop: one event enum, one loop. Input and collector polling run
//! on their own threads and feed the loop through a channel, so a slow
//! collector never freezes the keys.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lagscope_wire::api::{
    HeapKind, ProfileResponse, SeriesResponse, ServicesResponse, StallRecord,
};
use lagscope_wire::doctor::Diagnosis;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyEventKind};
use ratatui::DefaultTerminal;

use crate::state::{App, Connection, HeapSites};
use crate::theme::Theme;
use lagscope_client::Client;

/// How often the collector is polled.
pub const REFRESH: Duration = Duration::from_millis(500);

/// Stalls fetched for the incidents pane.
const STALLS_SHOWN: usize = 20;

/// Everything the loop reacts to.
#[derive(Debug)]
pub enum Event {
    /// A key press.
    Key(event::KeyEvent),
    /// The terminal changed size.
    Resize,
    /// A fresh services listing, or why it failed.
    Services(Result<ServicesResponse, String>),
    /// Fresh series of the selected instance.
    Series(SeriesResponse),
    /// Recent stalls of (service, instance).
    Stalls(String, String, Vec<StallRecord>),
    /// CPU profile (top functions) of an instance over the window.
    Profile(String, ProfileResponse),
    /// The doctor's diagnosis of an instance over the last minute.
    Diagnosis(Diagnosis),
    /// Heap sites of (service, instance), while the heap pane is shown.
    Heap(String, String, HeapSites),
}

/// What the poller should fetch besides the services listing.
#[derive(Debug, Clone, Default, PartialEq)]
struct Wanted {
    instance: Option<(String, String)>,
    from_ms: u64,
    to_ms: u64,
    /// Whether the heap pane is shown (its data is fetched only then).
    heap: bool,
}

/// Runs the dashboard against `client` until the user quits. Fails with a
/// clear error, rather than panicking, when there is no terminal to draw on.
pub fn run(client: Client) -> std::io::Result<()> {
    run_with_notices(client, Vec::new())
}

/// [`run`], with lines the user must not miss (e.g. damage found in a
/// replayed recording) kept on the status line for the whole session.
pub fn run_with_notices(client: Client, notices: Vec<String>) -> std::io::Result<()> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(std::io::Error::other(
            "the dashboard needs a terminal on standard output (demo and replay also have --headless)",
        ));
    }
    let mut terminal = ratatui::try_init()?;
    let result = run_in(&mut terminal, client, notices);
    ratatui::restore();
    result
}

fn run_in(
    terminal: &mut DefaultTerminal,
    client: Client,
    notices: Vec<String>,
) -> std::io::Result<()> {
    let (tx, rx) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let wanted = Arc::new(Mutex::new(Wanted::default()));
    let mut app = App::new(client.url().to_string(), Theme::from_env());
    app.notices = notices;

    let input = spawn_input(tx.clone(), stop.clone())?;
    let poller = spawn_poller(client, tx, stop.clone(), wanted.clone())?;
    let result = event_loop(terminal, &mut app, &rx, &wanted);
    stop.store(true, Relaxed);
    let _ = input.join();
    let _ = poller.join();
    result
}

fn event_loop(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    rx: &Receiver<Event>,
    wanted: &Mutex<Wanted>,
) -> std::io::Result<()> {
    while !app.quit {
        let now = now_ms();
        terminal.draw(|f| crate::view::draw(f, app, now))?;
        match rx.recv_timeout(REFRESH) {
            Ok(event) => apply(app, event),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // Take whatever else arrived before redrawing once.
        while let Ok(event) = rx.try_recv() {
            apply(app, event);
        }
        let end = app.window_end_ms(now);
        let next = Wanted {
            instance: app.selection(),
            from_ms: end.saturating_sub(app.window().as_millis() as u64),
            to_ms: end,
            heap: app.show_heap,
        };
        *wanted.lock().unwrap_or_else(|p| p.into_inner()) = next;
    }
    Ok(())
}

/// Applies one event to the state.
pub fn apply(app: &mut App, event: Event) {
    match event {
        Event::Key(key) if key.kind != KeyEventKind::Release => app.on_key(key),
        Event::Key(_) | Event::Resize => {}
        Event::Services(Ok(s)) => app.set_services(s),
        Event::Services(Err(e)) => app.connection = Connection::Failed(e),
        Event::Series(s) => app.set_series(s),
        Event::Stalls(service, instance, stalls) => app.set_stalls(&service, &instance, stalls),
        Event::Profile(instance, profile) => app.set_profile(&instance, profile),
        Event::Diagnosis(d) => app.set_diagnosis(d),
        Event::Heap(service, instance, heap) => app.set_heap(&service, &instance, heap),
    }
}

fn spawn_input(
    tx: Sender<Event>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tui-input".into())
        .spawn(move || {
            while !stop.load(Relaxed) {
                match event::poll(Duration::from_millis(100)) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(_) => break,
                }
                let event = match event::read() {
                    Ok(TermEvent::Key(k)) => Event::Key(k),
                    Ok(TermEvent::Resize(..)) => Event::Resize,
                    Ok(_) => continue,
                    Err(_) => break,
                };
                if tx.send(event).is_err() {
                    break;
                }
            }
        })
}

fn spawn_poller(
    client: Client,
    tx: Sender<Event>,
    stop: Arc<AtomicBool>,
    wanted: Arc<Mutex<Wanted>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tui-poll".into())
        .spawn(move || {
            while !stop.load(Relaxed) {
                let services = client.services().map_err(|e| e.to_string());
                let ok = services.is_ok();
                if tx.send(Event::Services(services)).is_err() {
                    break;
                }
                let w = wanted.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let (true, Some((service, instance))) = (ok, w.instance) {
                    if let Ok(s) = client.series(&service, &instance, w.from_ms, w.to_ms, Some(240))
                    {
                        if tx.send(Event::Series(s)).is_err() {
                            break;
                        }
                    }
                    if let Ok(p) = client.profile_top(&service, &instance, w.from_ms, w.to_ms) {
                        if tx.send(Event::Profile(instance.clone(), p)).is_err() {
                            break;
                        }
                    }
                    if let Ok(d) = client.doctor(&service, Some(&instance), 60_000, false) {
                        if let Some(d) = d.diagnoses.into_iter().next() {
                            if tx.send(Event::Diagnosis(d)).is_err() {
                                break;
                            }
                        }
                    }
                    if w.heap {
                        let inuse = |from, to| {
                            client.heap(&service, Some(&instance), HeapKind::Inuse, from, to)
                        };
                        if let Ok(now) = inuse(w.from_ms, w.to_ms) {
                            let before = inuse(0, w.from_ms).ok();
                            let sites = HeapSites::from_responses(&now, before.as_ref());
                            let event = Event::Heap(service.clone(), instance.clone(), sites);
                            if tx.send(event).is_err() {
                                break;
                            }
                        }
                    }
                    if let Ok(s) = client.stalls(&service, &instance, STALLS_SHOWN) {
                        if tx.send(Event::Stalls(service, instance, s.stalls)).is_err() {
                            break;
                        }
                    }
                }
                // Sleep in short steps so quitting is prompt.
                for _ in 0..5 {
                    if stop.load(Relaxed) {
                        return;
                    }
                    std::thread::sleep(REFRESH / 5);
                }
            }
        })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
