//! `lagscope doctor`: run a command under an embedded collector (optionally
//! with load), or look at a running collector, and say what is wrong.

use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::load;
use anyhow::{bail, Context, Result};
use lagscope_client::Client;
use lagscope_collector::flame::{self, Folded};
use lagscope_collector::report::{self, Extras};
use lagscope_collector::shared::now_ms;
use lagscope_collector::CollectorConfig;
use lagscope_wire::doctor::{DoctorResponse, Severity};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The diagnosis in words.
    Text,
    /// The diagnoses and the data behind them, as JSON.
    Json,
}

/// `lagscope doctor`.
#[derive(clap::Args)]
pub struct DoctorArgs {
    /// The command to run with the agent pointed at an embedded collector
    /// (after `--`). Without it, --collector and --service say what to look at.
    #[arg(last = true)]
    command: Vec<String>,
    /// A running collector's HTTP address (instead of a command).
    #[arg(long, env = "LAGSCOPE_API")]
    collector: Option<String>,
    /// Token, if the collector requires one.
    #[arg(long, env = "LAGSCOPE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Service to diagnose (default: the first that reports).
    #[arg(long)]
    service: Option<String>,
    /// One instance (default: every instance of the service).
    #[arg(long)]
    instance: Option<String>,
    /// With --collector: the window to look at.
    #[arg(long, default_value = "5m", value_parser = lagscope_wire::duration::parse_arg)]
    window: Duration,
    /// With a command: stop watching after this long (the command is then
    /// stopped with SIGINT, SIGTERM, SIGKILL). Without it, doctor watches
    /// until the command exits or Ctrl-C, then diagnoses what it saw.
    #[arg(long, value_parser = lagscope_wire::duration::parse_arg)]
    duration: Option<Duration>,
    /// How long a stopped command gets after SIGINT, and again after
    /// SIGTERM, before the next signal.
    #[arg(long, default_value = "5s", value_parser = lagscope_wire::duration::parse_arg)]
    grace: Duration,
    /// Send HTTP load to this loopback URL while watching.
    #[arg(long, value_name = "URL")]
    load: Option<String>,
    /// Load connections.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    connections: u16,
    /// Load requests per second (0 = as fast as the service answers).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Where to write the HTML report.
    #[arg(long, default_value = "lagscope-report.html")]
    report: PathBuf,
    /// Do not write the HTML report.
    #[arg(long)]
    no_report: bool,
}

/// Runs `lagscope doctor`.
pub fn run(args: DoctorArgs) -> Result<()> {
    if args.command.is_empty() {
        let Some(url) = &args.collector else {
            bail!(
                "give a command to run (lagscope doctor -- ./my-service) or a collector to ask \
                 (lagscope doctor --collector http://127.0.0.1:6671 --service NAME)"
            );
        };
        let client = Client::new(url, args.token.clone())?;
        let service = match &args.service {
            Some(s) => s.clone(),
            None => first_service(&client)?,
        };
        let window_ms = u64::try_from(args.window.as_millis()).unwrap_or(u64::MAX);
        return conclude(&args, &client, &service, window_ms, None, None);
    }
    if args.collector.is_some() {
        bail!("give either a command or --collector, not both");
    }
    let load_target = args.load.as_deref().map(loopback_target).transpose()?;
    let rt = crate::collector::runtime(1)?;
    let collector = rt
        .block_on(lagscope_collector::start(CollectorConfig::embedded()))
        .context("starting the embedded collector")?;
    let client = Client::new(&collector.http_url(), None)?;
    // Ctrl-C ends the watch, not doctor: the command is stopped and what was
    // seen is diagnosed. A second Ctrl-C skips the grace periods.
    let interrupts = Arc::new(AtomicUsize::new(0));
    {
        let interrupts = interrupts.clone();
        rt.spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                interrupts.fetch_add(1, Relaxed);
            }
        });
    }
    let mut child = Watched(spawn(&args.command, &collector.grpc_url())?);
    let service = wait_for_agent(&client, &mut child.0, args.service.as_deref(), &interrupts)?;
    let started = Instant::now();
    let progress = Progress::new(args.duration);
    let stop_load = Arc::new(AtomicBool::new(false));
    let load = match load_target {
        Some((addr, path)) => {
            wait_connectable(addr, &mut child.0)?;
            let config = load::LoadConfig {
                addr,
                path,
                connections: usize::from(args.connections),
                requests: u64::MAX,
                deadline: args.duration.unwrap_or(LOAD_AT_MOST),
                rate: (args.rate > 0.0).then_some(args.rate),
                stop: Some(stop_load.clone()),
            };
            Some(rt.spawn(async move { load::run(&config).await }))
        }
        None => None,
    };
    let ended = loop {
        progress.show(started.elapsed(), &service);
        if interrupts.load(Relaxed) > 0 {
            break Ended::Interrupted;
        }
        if let Some(status) = child.0.try_wait().context("checking the command")? {
            // A terminal's Ctrl-C reaches the whole process group: the
            // command may die of it a moment before doctor sees its own.
            std::thread::sleep(Duration::from_millis(100));
            if interrupts.load(Relaxed) > 0 {
                break Ended::Interrupted;
            }
            break Ended::CommandExited(status);
        }
        if args.duration.is_some_and(|d| started.elapsed() >= d) {
            break Ended::Duration;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    progress.done();
    let watched = started.elapsed();
    stop_load.store(true, Relaxed);
    let load_report = match load {
        Some(handle) => Some(rt.block_on(handle).context("the load generator")??),
        None => None,
    };
    let stopped = match ended {
        Ended::CommandExited(_) => None,
        Ended::Duration | Ended::Interrupted => Some(stop(&mut child.0, args.grace, &interrupts)?),
    };
    // The last sample of the window reaches the collector within one interval.
    std::thread::sleep(Duration::from_millis(700));
    let window_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if let Some(r) = &load_report {
        eprintln!(
            "load: {} requests ({:.0}/s), {} errors, p99 {:.1} ms",
            r.ok,
            r.throughput(),
            r.errors,
            r.latency_us.value_at_quantile(0.99) as f64 / 1000.0
        );
    }
    let run = RunInfo {
        watched_ms: u64::try_from(watched.as_millis()).unwrap_or(u64::MAX),
        ended_by: ended.name(),
        command_status: match &ended {
            Ended::CommandExited(status) => Some(status.to_string()),
            _ => stopped.as_ref().map(|s| s.status.to_string()),
        },
        stopped_with: stopped.as_ref().map(|s| s.signal),
        too_short: watched < MIN_WINDOW,
    };
    let result = conclude(
        &args,
        &client,
        &service,
        window_ms,
        Some(args.command.join(" ")),
        Some(&run),
    );
    drop(child);
    rt.block_on(collector.shutdown());
    result
}

/// Load runs at most this long when doctor watches until the command ends.
const LOAD_AT_MOST: Duration = Duration::from_secs(24 * 3600);

/// Shorter windows are diagnosed, but said to be too short to judge: the
/// rules look at medians and trends over many samples.
const MIN_WINDOW: Duration = Duration::from_secs(5);

/// Why doctor stopped watching.
enum Ended {
    /// `--duration` passed.
    Duration,
    /// The command exited on its own.
    CommandExited(std::process::ExitStatus),
    /// The user pressed Ctrl-C (doctor got SIGINT).
    Interrupted,
}

impl Ended {
    fn name(&self) -> &'static str {
        match self {
            Ended::Duration => "duration",
            Ended::CommandExited(_) => "command-exited",
            Ended::Interrupted => "interrupted",
        }
    }
}

/// What happened to the command, for the output (`run` in JSON).
#[derive(Debug, Clone, serde::Serialize)]
struct RunInfo {
    /// How long doctor watched the command.
    watched_ms: u64,
    /// `duration`, `command-exited` or `interrupted`.
    ended_by: &'static str,
    /// The command's exit status, as the OS reported it.
    command_status: Option<String>,
    /// The signal that ended the command, when doctor stopped it.
    stopped_with: Option<&'static str>,
    /// The window was shorter than doctor needs to judge.
    too_short: bool,
}

impl RunInfo {
    fn describe(&self) -> String {
        let secs = self.watched_ms as f64 / 1000.0;
        let status = self.command_status.as_deref().unwrap_or("unknown status");
        let mut line = match (self.ended_by, self.stopped_with) {
            ("command-exited", _) => format!("the command exited ({status}) after {secs:.1} s"),
            ("interrupted", Some(signal)) => {
                format!(
                    "interrupted after {secs:.1} s; stopped the command with {signal} ({status})"
                )
            }
            (_, Some(signal)) => {
                format!("watched for {secs:.1} s; stopped the command with {signal} ({status})")
            }
            _ => format!("watched for {secs:.1} s"),
        };
        if self.too_short {
            line.push_str(&format!(
                "; {secs:.1} s is too short to judge (doctor needs at least {} s of samples): \
                 below is only what was seen",
                MIN_WINDOW.as_secs()
            ));
        }
        line
    }
}

/// How a stopped command ended.
struct Stopped {
    signal: &'static str,
    status: std::process::ExitStatus,
}

/// Stops the command: SIGINT, then SIGTERM, each with `grace` to exit, then
/// SIGKILL. Another Ctrl-C skips the rest of the grace.
fn stop(child: &mut Child, grace: Duration, interrupts: &AtomicUsize) -> Result<Stopped> {
    let pid = Pid::from_raw(i32::try_from(child.id()).context("the command's pid")?);
    let seen = interrupts.load(Relaxed);
    for (signal, name) in [(Signal::SIGINT, "SIGINT"), (Signal::SIGTERM, "SIGTERM")] {
        if let Some(status) = child.try_wait().context("checking the command")? {
            return Ok(Stopped {
                signal: name,
                status,
            });
        }
        // The command may have exited between the check and the signal.
        let _ = kill(pid, signal);
        let end = Instant::now() + grace;
        while Instant::now() < end && interrupts.load(Relaxed) <= seen {
            if let Some(status) = child.try_wait().context("checking the command")? {
                return Ok(Stopped {
                    signal: name,
                    status,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let status = child.wait().context("waiting for the command")?;
    Ok(Stopped {
        signal: "SIGKILL",
        status,
    })
}

/// Fetches the diagnosis and the data for the report, and prints.
fn conclude(
    args: &DoctorArgs,
    client: &Client,
    service: &str,
    window_ms: u64,
    command: Option<String>,
    run: Option<&RunInfo>,
) -> Result<()> {
    let response = client
        .doctor(service, args.instance.as_deref(), window_ms, true)
        .context("asking the collector for a diagnosis")?;
    match args.format {
        Format::Json => {
            /// The diagnosis with the window it covers and, with a command, how it ended.
            #[derive(serde::Serialize)]
            struct Out<'a> {
                window_ms: u64,
                run: Option<&'a RunInfo>,
                #[serde(flatten)]
                response: &'a DoctorResponse,
            }
            let out = Out {
                window_ms,
                run,
                response: &response,
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Text => {
            if let Some(run) = run {
                println!("{}", run.describe());
            }
            print_text(&response);
        }
    }
    if !args.no_report {
        let to = now_ms();
        let from = to.saturating_sub(window_ms);
        let cpu = client
            .profile(service, args.instance.as_deref(), from, to)
            .ok()
            .and_then(|p| {
                let folded = Folded::parse(&p.folded).ok()?;
                flame::svg(
                    &folded,
                    &format!("{service} — CPU"),
                    &cpu_subtitle(p.samples, p.hz, window_ms),
                )
                .ok()
            });
        let blocking = blocking_flamegraph(&response, service);
        let html = report::html(
            &response.diagnoses,
            &response.windows,
            &Extras {
                cpu_flamegraph: cpu.as_deref(),
                blocking_flamegraph: blocking.as_deref(),
                heap_growth_flamegraph: report::heap_growth_flamegraph(&response.windows, service)
                    .as_deref(),
                wait_flamegraph: report::wait_flamegraph(&response.windows, service).as_deref(),
                command,
            },
        );
        std::fs::write(&args.report, html)
            .with_context(|| format!("writing the report to {:?}", args.report))?;
        eprintln!("report: {}", args.report.display());
    }
    Ok(())
}

/// A flamegraph of the windows' stall stacks, weighted by stalled time.
fn blocking_flamegraph(response: &DoctorResponse, service: &str) -> Option<Vec<u8>> {
    let folded = flame::from_stalls(response.windows.iter().flat_map(|w| &w.stalls));
    flame::svg(&folded, &format!("{service} — blocking"), "ms stalled").ok()
}

fn print_text(response: &DoctorResponse) {
    let mut out = std::io::stdout().lock();
    for d in &response.diagnoses {
        let _ = writeln!(
            out,
            "\n{} / {} — {} s window",
            d.service,
            d.instance,
            d.to_ms.saturating_sub(d.from_ms) / 1000
        );
        for f in &d.findings {
            let mark = match f.severity {
                Severity::Critical => "✖",
                Severity::Warning => "!",
                Severity::Info => "✓",
            };
            let _ = writeln!(out, "\n{mark} [{}] {}", f.category, f.summary);
            for e in &f.evidence {
                let _ = writeln!(out, "    · {e}");
            }
            let _ = writeln!(out, "  → {}", f.recommendation);
        }
    }
}

/// What the CPU flamegraph's samples stand for: the profiler samples CPU
/// time, so a mostly idle service has few in a long window.
fn cpu_subtitle(samples: u64, hz: u32, window_ms: u64) -> String {
    let cpu_ms = if hz == 0 {
        0
    } else {
        samples * 1000 / u64::from(hz)
    };
    format!(
        "{samples} sample{} at {hz} Hz of CPU time: ≈ {cpu_ms} ms of CPU in {:.0} s watched",
        if samples == 1 { "" } else { "s" },
        window_ms as f64 / 1000.0,
    )
}

/// The child process, killed when dropped.
struct Watched(Child);

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What doctor sets in the command it runs, unless the environment already
/// says: samples every 500 ms (and so heap windows every 5 s), heap
/// sampling on at its default interval even where the service's code
/// turned it off (it runs where `lagscope::alloc::Counting` is the global
/// allocator), wait capture on, and requests listed as stuck after 3 s
/// without a wake rather than 10, so a short watch sees them.
const WATCH_SETTINGS: [(&str, &str); 4] = [
    ("LAGSCOPE_SAMPLE_INTERVAL", "500ms"),
    ("LAGSCOPE_HEAP_SAMPLE", "512KiB"),
    ("LAGSCOPE_WAIT_CAPTURES", "32"),
    ("LAGSCOPE_STUCK_AFTER", "3s"),
];

fn spawn(command: &[String], grpc_url: &str) -> Result<Child> {
    let (program, rest) = command.split_first().context("an empty command")?;
    // The command's output goes to our stderr, so stdout stays the diagnosis.
    let err = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stderr")?;
    let err2 = err.try_clone().context("duplicating stderr")?;
    let mut cmd = Command::new(program);
    cmd.args(rest)
        .env("LAGSCOPE_COLLECTOR", grpc_url)
        .stdin(Stdio::null())
        .stdout(Stdio::from(err))
        .stderr(Stdio::from(err2));
    for (name, value) in WATCH_SETTINGS {
        if std::env::var_os(name).is_none() {
            cmd.env(name, value);
        }
    }
    cmd.spawn().with_context(|| format!("starting {program:?}"))
}

/// Before an agent reports there is nothing to diagnose.
fn check_alive(child: &mut Child) -> Result<()> {
    if let Some(status) = child.try_wait().context("checking the command")? {
        bail!(
            "the command exited ({status}) before a lagscope agent reported: nothing to diagnose"
        );
    }
    Ok(())
}

/// The service of the first agent that connects.
fn wait_for_agent(
    client: &Client,
    child: &mut Child,
    want: Option<&str>,
    interrupts: &AtomicUsize,
) -> Result<String> {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        check_alive(child)?;
        if interrupts.load(Relaxed) > 0 {
            bail!("interrupted before a lagscope agent reported: nothing to diagnose");
        }
        if let Ok(s) = client.services() {
            let found = s
                .services
                .iter()
                .find(|s| want.is_none_or(|w| w == s.service) && !s.instances.is_empty());
            if let Some(found) = found {
                return Ok(found.service.clone());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "no lagscope agent connected within 20 s: does the command link the lagscope crate and \
         start it with Agent::builder() (which reads LAGSCOPE_COLLECTOR)?"
    )
}

fn first_service(client: &Client) -> Result<String> {
    client
        .services()?
        .services
        .first()
        .map(|s| s.service.clone())
        .context("the collector has no services yet")
}

/// `http://127.0.0.1:PORT/path` → address and path; refuses non-loopback.
fn loopback_target(url: &str) -> Result<(SocketAddr, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("--load {url:?} must be an http:// URL"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let addr = host
        .to_socket_addrs()
        .with_context(|| format!("--load {url:?}: cannot resolve {host:?}"))?
        .next()
        .with_context(|| format!("--load {url:?}: no address for {host:?}"))?;
    if !addr.ip().is_loopback() {
        bail!("--load sends only to loopback addresses; {addr} is not one");
    }
    Ok((addr, path))
}

fn wait_connectable(addr: SocketAddr, child: &mut Child) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        check_alive(child)?;
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("nothing listens on {addr} (the --load target) after 15 s")
}

/// A progress bar on stderr when it is a terminal, a line every few seconds
/// otherwise.
struct Progress {
    total: Option<Duration>,
    terminal: bool,
}

impl Progress {
    fn new(total: Option<Duration>) -> Self {
        Progress {
            total,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&self, elapsed: Duration, service: &str) {
        let Some(total) = self.total else {
            if self.terminal {
                eprint!(
                    "\rwatching {service}: {:>4.0} s (until the command exits or Ctrl-C) ",
                    elapsed.as_secs_f64()
                );
            } else if elapsed.as_millis() % 5000 < 100 {
                eprintln!(
                    "watching {service}: {:.0} s (until the command exits or Ctrl-C)",
                    elapsed.as_secs_f64()
                );
            }
            return;
        };
        let done = (elapsed.as_secs_f64() / total.as_secs_f64().max(1e-9)).min(1.0);
        if self.terminal {
            let width = 30;
            let filled = (done * width as f64) as usize;
            eprint!(
                "\rwatching {service} [{}{}] {:>3.0}/{:.0} s ",
                "#".repeat(filled),
                " ".repeat(width - filled),
                elapsed.as_secs_f64(),
                total.as_secs_f64()
            );
        } else if elapsed.as_millis() % 5000 < 100 {
            eprintln!(
                "watching {service}: {:.0}/{:.0} s",
                elapsed.as_secs_f64(),
                total.as_secs_f64()
            );
        }
    }

    fn done(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{cpu_subtitle, loopback_target};

    #[test]
    fn the_cpu_flamegraph_says_its_samples_are_cpu_time() {
        assert_eq!(
            cpu_subtitle(1, 19, 25_100),
            "1 sample at 19 Hz of CPU time: ≈ 52 ms of CPU in 25 s watched"
        );
        assert!(cpu_subtitle(0, 0, 1000).starts_with("0 samples at 0 Hz"));
    }

    #[test]
    fn load_targets_must_be_loopback_http() {
        let (addr, path) = loopback_target("http://127.0.0.1:8080/api/x").expect("ok");
        assert_eq!((addr.port(), path.as_str()), (8080, "/api/x"));
        assert_eq!(loopback_target("http://127.0.0.1:9").expect("ok").1, "/");
        assert!(loopback_target("https://127.0.0.1:9/").is_err());
        assert!(loopback_target("http://10.1.2.3:80/").is_err());
    }
}
