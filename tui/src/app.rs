//! The event loop: one event enum, one loop. Input and collector polling run
//! on their own threads and feed the loop through a channel, so a slow
//! collector never freezes the keys.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lagscope_wire::api::{
    HeapKind, ProfileResponse, SeriesResponse, ServicesResponse, StallRecord, WaitsResponse,
};
use lagscope_wire::doctor::Diagnosis;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyEventKind};
use ratatui::DefaultTerminal;

use crate::fleet::Fleet;
use crate::state::{App, Connection, HeapSites};
use crate::theme::Theme;
use lagscope_client::Client;

/// How often everything is polled (and the fallback when the collector
/// cannot push its updates).
pub const REFRESH: Duration = Duration::from_millis(500);

/// Least time between two pushed updates: on each, the services listing
/// and the selected instance's series are fetched again (the rest waits
/// for the next [`REFRESH`]).
pub const PUSH_INTERVAL_MS: u64 = 100;

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
    /// After a listing merged from several collectors: those that did not
    /// answer, with why (empty when all did).
    Unanswered(Vec<String>),
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
    /// Where the requests of (service, instance) waited, while the
    /// requests pane is shown.
    Waits(String, String, WaitsResponse),
}

/// What the poller should fetch besides the services listing.
#[derive(Debug, Clone, Default, PartialEq)]
struct Wanted {
    instance: Option<(String, String)>,
    /// The window's length and how far it is panned back from the newest
    /// sample (the poller places it on the listing it just fetched).
    window_ms: u64,
    pan_ms: u64,
    /// Whether the heap pane is shown (its data is fetched only then).
    heap: bool,
    /// Whether the requests pane is shown (its await points are fetched
    /// only then).
    waits: bool,
}

/// Runs the dashboard against `client` until the user quits. Fails with a
/// clear error, rather than panicking, when there is no terminal to draw on.
pub fn run(client: Client) -> std::io::Result<()> {
    run_with_notices(client, Vec::new())
}

/// [`run`], with lines the user must not miss (e.g. damage found in a
/// replayed recording) kept on the status line for the whole session.
pub fn run_with_notices(client: Client, notices: Vec<String>) -> std::io::Result<()> {
    run_fleet_with_notices(Fleet::new(vec![client]), notices)
}

/// [`run`] over several collectors at once: their services in one list,
/// each instance's panes fetched from the collector that holds it.
pub fn run_fleet(fleet: Fleet) -> std::io::Result<()> {
    run_fleet_with_notices(fleet, Vec::new())
}

fn run_fleet_with_notices(fleet: Fleet, notices: Vec<String>) -> std::io::Result<()> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(std::io::Error::other(
            "the dashboard needs a terminal on standard output (demo and replay also have --headless)",
        ));
    }
    let mut terminal = ratatui::try_init()?;
    let result = run_in(&mut terminal, fleet, notices);
    ratatui::restore();
    result
}

fn run_in(
    terminal: &mut DefaultTerminal,
    fleet: Fleet,
    notices: Vec<String>,
) -> std::io::Result<()> {
    let (tx, rx) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let wanted = Arc::new(Mutex::new(Wanted::default()));
    let mut app = App::new(fleet.source(), Theme::from_env());
    app.notices = notices;

    let input = spawn_input(tx.clone(), stop.clone())?;
    let (nudge, nudges) = channel();
    // Not joined: they may sit in a read until the collector's next
    // keep-alive, and they end on the first error once `stop` is set.
    for client in fleet.clients() {
        spawn_subscriber(client.clone(), nudge.clone(), stop.clone())?;
    }
    drop(nudge);
    let poller = spawn_poller(fleet, tx, nudges, stop.clone(), wanted.clone())?;
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
        let next = Wanted {
            instance: app.selection(),
            window_ms: app.window().as_millis() as u64,
            pan_ms: app.pan_ms,
            heap: app.show_heap,
            waits: app.show_tasks,
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
        Event::Unanswered(failed) => {
            if app.connection == Connection::Connected && !failed.is_empty() {
                app.connection = Connection::Partial(failed);
            }
        }
        Event::Series(s) => app.set_series(s),
        Event::Stalls(service, instance, stalls) => app.set_stalls(&service, &instance, stalls),
        Event::Profile(instance, profile) => app.set_profile(&instance, profile),
        Event::Diagnosis(d) => app.set_diagnosis(d),
        Event::Heap(service, instance, heap) => app.set_heap(&service, &instance, heap),
        Event::Waits(service, instance, waits) => app.set_waits(&service, &instance, waits),
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

/// Follows the collector's pushed updates and nudges the poller on each;
/// reconnects every second while the collector is away (polling goes on
/// meanwhile).
fn spawn_subscriber(
    client: Client,
    nudge: Sender<()>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tui-updates".into())
        .spawn(move || {
            while !stop.load(Relaxed) {
                if let Ok(mut updates) = client.updates(PUSH_INTERVAL_MS) {
                    while updates.next_update().is_ok() {
                        if stop.load(Relaxed) || nudge.send(()).is_err() {
                            return;
                        }
                    }
                }
                for _ in 0..10 {
                    if stop.load(Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
}

fn spawn_poller(
    fleet: Fleet,
    tx: Sender<Event>,
    nudges: Receiver<()>,
    stop: Arc<AtomicBool>,
    wanted: Arc<Mutex<Wanted>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tui-poll".into())
        .spawn(move || {
            let mut last_full: Option<Instant> = None;
            let mut spacing = push_spacing(Duration::ZERO);
            while !stop.load(Relaxed) {
                let full = last_full.is_none_or(|t| t.elapsed() >= REFRESH);
                if full {
                    last_full = Some(Instant::now());
                }
                let began = Instant::now();
                if poll(&fleet, &tx, &wanted, full).is_err() {
                    break;
                }
                // Timed on the rounds pushes ask for (listing and series):
                // a full round's profile and diagnosis are not repeated then.
                if !full {
                    spacing = push_spacing(began.elapsed());
                }
                let next_push = Instant::now() + spacing;
                // Until the next full poll, or sooner when the collector
                // pushes an update (but no sooner than `next_push`); in
                // short steps so quitting is prompt.
                let mut pushed = false;
                loop {
                    if stop.load(Relaxed) {
                        return;
                    }
                    let now = Instant::now();
                    let due =
                        last_full.map_or(Duration::ZERO, |t| REFRESH.saturating_sub(t.elapsed()));
                    if due.is_zero() || (pushed && now >= next_push) {
                        break;
                    }
                    let mut step = due.min(REFRESH / 5);
                    if pushed {
                        step = step.min(next_push - now);
                    }
                    match nudges.recv_timeout(step) {
                        Ok(()) => {
                            while nudges.try_recv().is_ok() {}
                            pushed = true;
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => std::thread::sleep(step),
                    }
                }
            }
        })
}

/// Least time from the end of one round of requests to a round a pushed
/// update asks for: [`PUSH_INTERVAL_MS`], or nine times what the last such
/// round (listing and series) took when that is longer, so the dashboard spends at most a
/// tenth of its time fetching however large the fleet's listing is (and
/// never refreshes less often than it would by polling).
pub fn push_spacing(round: Duration) -> Duration {
    (round * 9).clamp(Duration::from_millis(PUSH_INTERVAL_MS), REFRESH)
}

/// The event loop is gone.
struct Closed;

fn send(tx: &Sender<Event>, event: Event) -> Result<(), Closed> {
    tx.send(event).map_err(|_| Closed)
}

/// One round of requests: the services listing and the selected
/// instance's series always; with `full`, its profile, diagnosis, heap and
/// stalls too.
fn poll(
    fleet: &Fleet,
    tx: &Sender<Event>,
    wanted: &Mutex<Wanted>,
    full: bool,
) -> Result<(), Closed> {
    let listing = fleet.services();
    let w = wanted.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let end = crate::state::window_end_ms(listing.services.as_ref(), w.pan_ms, now_ms());
    let (from_ms, to_ms) = (end.saturating_sub(w.window_ms), end);
    let client = w
        .instance
        .as_ref()
        .and_then(|(service, instance)| fleet.holder(&listing, service, instance))
        .cloned();
    // A collector that does not answer leaves the others shown; only when
    // none answers is the dashboard disconnected.
    let some_answered = listing.services.is_some();
    let services = listing.services.ok_or_else(|| listing.failed.join("; "));
    send(tx, Event::Services(services))?;
    if some_answered {
        send(tx, Event::Unanswered(listing.failed))?;
    }
    let (Some(client), Some((service, instance))) = (client, w.instance) else {
        return Ok(());
    };
    if let Ok(s) = client.series(&service, &instance, from_ms, to_ms, Some(240)) {
        send(tx, Event::Series(s))?;
    }
    if !full {
        return Ok(());
    }
    if let Ok(p) = client.profile_top(&service, &instance, from_ms, to_ms) {
        send(tx, Event::Profile(instance.clone(), p))?;
    }
    if let Ok(d) = client.doctor(&service, Some(&instance), 60_000, false) {
        if let Some(d) = d.diagnoses.into_iter().next() {
            send(tx, Event::Diagnosis(d))?;
        }
    }
    if w.heap {
        let inuse = |from, to| client.heap(&service, Some(&instance), HeapKind::Inuse, from, to);
        if let Ok(now) = inuse(from_ms, to_ms) {
            let before = inuse(0, from_ms).ok();
            let sites = HeapSites::from_responses(&now, before.as_ref());
            send(tx, Event::Heap(service.clone(), instance.clone(), sites))?;
        }
    }
    if w.waits {
        if let Ok(waits) = client.waits(&service, Some(&instance), None, from_ms, to_ms, false) {
            send(tx, Event::Waits(service.clone(), instance.clone(), waits))?;
        }
    }
    if let Ok(s) = client.stalls(&service, &instance, STALLS_SHOWN) {
        send(tx, Event::Stalls(service, instance, s.stalls))?;
    }
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_rounds_are_spaced_by_what_a_round_costs() {
        let push = Duration::from_millis(PUSH_INTERVAL_MS);
        // A small fleet's listing: as fast as updates are pushed.
        assert_eq!(push_spacing(Duration::from_millis(2)), push);
        // A listing that takes 30 ms: at most a tenth of the time fetching.
        assert_eq!(
            push_spacing(Duration::from_millis(30)),
            Duration::from_millis(270)
        );
        // Never rarer than polling would be.
        assert_eq!(push_spacing(Duration::from_secs(2)), REFRESH);
    }
}
