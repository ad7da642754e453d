//! `lagscope profile` and `lagscope flamegraph`: fetch CPU samples or stall
//! stacks from a collector and write them as SVG, folded stacks or pprof.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use lagscope_client::Client;
use lagscope_collector::flame::{self, Folded};
use lagscope_collector::shared::now_ms;
use lagscope_wire::api::{Health, HeapKind, HeapResponse, ProfileResponse};
use lagscope_wire::duration::utc_hms;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Interactive SVG flamegraph.
    Svg,
    /// Folded stacks (`root;…;leaf count`).
    Folded,
    /// gzipped pprof protobuf (`go tool pprof`, speedscope, Pyroscope).
    Pprof,
}

/// Which heap bytes `flamegraph --heap` draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HeapArg {
    /// Allocated and not yet freed (pprof `inuse_space`).
    Inuse,
    /// Allocated over the window, freed or not (pprof `alloc_space`).
    Alloc,
}

impl HeapArg {
    fn kind(self) -> HeapKind {
        match self {
            HeapArg::Inuse => HeapKind::Inuse,
            HeapArg::Alloc => HeapKind::Alloc,
        }
    }
}

/// Where to connect and what to write.
#[derive(clap::Args)]
pub struct Target {
    /// The collector's HTTP address.
    #[arg(long, env = "LAGSCOPE_API", default_value = lagscope_client::DEFAULT_URL)]
    collector: String,
    /// Token, if the collector requires one.
    #[arg(long, env = "LAGSCOPE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Service to profile.
    #[arg(long)]
    service: String,
    /// Instance (default: `profile` picks the service's first live instance,
    /// `flamegraph` merges all).
    #[arg(long)]
    instance: Option<String>,
    /// Output file.
    #[arg(short, long, default_value = "flamegraph.svg")]
    output: PathBuf,
    /// Output format (default: from the file's extension: .svg, .folded/.txt,
    /// .pb.gz/.pprof).
    #[arg(long, value_enum)]
    format: Option<Format>,
}

/// `lagscope profile`.
#[derive(clap::Args)]
pub struct ProfileArgs {
    #[command(flatten)]
    target: Target,
    /// How long to profile.
    #[arg(long, default_value = "10s", value_parser = lagscope_wire::duration::parse_arg)]
    duration: Duration,
    /// Samples per CPU-second of each thread.
    #[arg(long, default_value_t = 199, value_parser = clap::value_parser!(u32).range(1..=1000))]
    hz: u32,
}

/// `lagscope flamegraph`.
#[derive(clap::Args)]
pub struct FlamegraphArgs {
    #[command(flatten)]
    target: Target,
    /// The window: the last this long.
    #[arg(long, default_value = "5m", value_parser = lagscope_wire::duration::parse_arg)]
    window: Duration,
    /// Draw where workers were stalled (from stall stacks, weighted by
    /// stalled time) instead of CPU samples.
    #[arg(long)]
    blocking: bool,
    /// Draw the heap by allocation site instead of CPU samples: bytes in
    /// use at the end of the window, or allocated over it (needs heap
    /// sampling, on by default with lagscope::alloc::Counting). With --compare-previous, in-use
    /// bytes draw what grew since the previous window's end.
    #[arg(long, value_enum, conflicts_with = "blocking")]
    heap: Option<HeapArg>,
    /// Draw where instrumented requests waited instead of CPU samples: each
    /// name's waiting by await point and kind (socket, timer, lock,
    /// channel, another task), weighted by time waited (pprof sample type
    /// `wait_time`, ns).
    #[arg(long, conflicts_with_all = ["blocking", "heap", "compare_previous", "base"])]
    wait: bool,
    /// With --wait: only the requests instrumented under this name.
    #[arg(long, requires = "wait")]
    task: Option<String>,
    /// Differential: compare with the window just before this one.
    #[arg(long, conflicts_with = "base")]
    compare_previous: bool,
    /// Differential: compare with a folded-stacks file written earlier.
    #[arg(long, value_name = "FILE")]
    base: Option<PathBuf>,
}

impl Target {
    fn client(&self) -> Result<Client> {
        Ok(Client::new(&self.collector, self.token.clone())?)
    }

    fn format(&self) -> Result<Format> {
        if let Some(f) = self.format {
            return Ok(f);
        }
        let name = self.output.to_string_lossy().to_lowercase();
        Ok(if name.ends_with(".svg") {
            Format::Svg
        } else if name.ends_with(".folded") || name.ends_with(".txt") {
            Format::Folded
        } else if name.ends_with(".pb.gz") || name.ends_with(".pprof") || name.ends_with(".pb") {
            Format::Pprof
        } else {
            bail!(
                "cannot tell the format of {:?} from its extension; use .svg, .folded or .pb.gz, or --format",
                self.output
            )
        })
    }
}

/// Runs `lagscope profile`.
pub fn profile(args: ProfileArgs) -> Result<()> {
    let t = &args.target;
    let format = t.format()?;
    let client = t.client()?;
    let instance = match &t.instance {
        Some(i) => i.clone(),
        None => first_live_instance(&client, &t.service)?,
    };
    let seconds = args.duration.as_secs().max(1);
    eprintln!(
        "profiling {}/{instance} for {seconds} s at {} Hz…",
        t.service, args.hz
    );
    let p = client
        .request_profile(&t.service, &instance, seconds, args.hz)
        .context("requesting the profile")?;
    let folded = Folded::parse(&p.folded).context("the collector's folded stacks")?;
    let title = format!("{} / {instance} — CPU", t.service);
    write(
        &t.output,
        format,
        &folded,
        &title,
        &subtitle(&p, "samples"),
        &p,
    )
}

/// Runs `lagscope flamegraph`.
pub fn flamegraph(args: FlamegraphArgs) -> Result<()> {
    let t = &args.target;
    let format = t.format()?;
    let client = t.client()?;
    let window_ms = u64::try_from(args.window.as_millis()).unwrap_or(u64::MAX);
    let to = now_ms();
    let from = to.saturating_sub(window_ms);
    if let Some(heap) = args.heap {
        return heap_flamegraph(&args, heap.kind(), format, &client, from, to);
    }
    if args.wait {
        return wait_flamegraph(&args, format, &client, from, to);
    }
    let (p, unit) = if args.blocking {
        (blocking(&client, t, from, to)?, "ms stalled")
    } else {
        let p = client
            .profile(&t.service, t.instance.as_deref(), from, to)
            .context("fetching the profile")?;
        (p, "samples")
    };
    let folded = Folded::parse(&p.folded).context("the collector's folded stacks")?;
    if folded.is_empty() {
        bail!(
            "no {} for {} in the last {}; is the agent's profiler on (LAGSCOPE_PROFILE_HZ)?",
            if args.blocking {
                "stalls"
            } else {
                "CPU samples"
            },
            t.service,
            lagscope_wire::duration::format(args.window)
        );
    }
    let who = t.instance.clone().unwrap_or_else(|| p.instances.join(", "));
    let kind = if args.blocking { "blocking" } else { "CPU" };
    let title = format!("{} / {who} — {kind}", t.service);
    let base = if args.compare_previous {
        let before = if args.blocking {
            blocking(&client, t, from.saturating_sub(window_ms), from)?
        } else {
            client.profile(
                &t.service,
                t.instance.as_deref(),
                from.saturating_sub(window_ms),
                from,
            )?
        };
        Some(Folded::parse(&before.folded)?)
    } else if let Some(path) = &args.base {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the base profile {path:?}"))?;
        Some(Folded::parse(&text).with_context(|| format!("{path:?} is not folded stacks"))?)
    } else {
        None
    };
    match base {
        Some(base) => {
            if format != Format::Svg {
                bail!("a differential flamegraph is written as SVG; use an .svg output");
            }
            let svg = flame::diff_svg(
                &base,
                &folded,
                &format!("{title} (diff: red grew, blue shrank)"),
                &subtitle(&p, unit),
            )?;
            save(&t.output, &svg)?;
            eprintln!(
                "wrote {} ({} stacks now, {} in the base)",
                t.output.display(),
                folded.len(),
                base.len()
            );
            Ok(())
        }
        None => write(&t.output, format, &folded, &title, &subtitle(&p, unit), &p),
    }
}

/// `flamegraph --heap`: heap bytes by allocation site over `[from, to]`.
fn heap_flamegraph(
    args: &FlamegraphArgs,
    kind: HeapKind,
    format: Format,
    client: &Client,
    from: u64,
    to: u64,
) -> Result<()> {
    let t = &args.target;
    let fetch = |kind: HeapKind, from: u64, to: u64| -> Result<(HeapResponse, Folded)> {
        let h = client
            .heap(&t.service, t.instance.as_deref(), kind, from, to)
            .context("fetching the heap profile")?;
        let folded = Folded::parse(&h.folded).context("the collector's folded stacks")?;
        Ok((h, folded))
    };
    let (h, folded) = fetch(kind, from, to)?;
    if folded.is_empty() {
        bail!(
            "no heap samples for {} in the last {}; is lagscope::alloc::Counting the service's \
             global allocator, and heap sampling not off (LAGSCOPE_HEAP_SAMPLE=0)? The agent \
             sends the heap every 10 s.",
            t.service,
            lagscope_wire::duration::format(args.window)
        );
    }
    let who = t.instance.clone().unwrap_or_else(|| h.instances.join(", "));
    let what = match kind {
        HeapKind::Inuse => "heap in use",
        HeapKind::Alloc => "heap allocated",
    };
    let title = format!("{} / {who} — {what}", t.service);
    let subtitle = heap_subtitle(&h);
    if (args.compare_previous || args.base.is_some()) && format != Format::Svg {
        bail!("a differential flamegraph is written as SVG; use an .svg output");
    }
    let base = if args.compare_previous {
        let window = to - from;
        let (before, base) = fetch(kind, from.saturating_sub(window), from)?;
        if base.is_empty() {
            bail!(
                "no heap window of {} ends before {} UTC to compare with; try a shorter --window",
                t.service,
                utc_hms(from)
            );
        }
        let span = format!("{} → {} UTC", utc_hms(before.end_ms), utc_hms(h.end_ms));
        Some((span, base))
    } else if let Some(path) = &args.base {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the base profile {path:?}"))?;
        let base =
            Folded::parse(&text).with_context(|| format!("{path:?} is not folded stacks"))?;
        Some((format!("against {}", path.display()), base))
    } else {
        None
    };
    if let Some((span, base)) = base {
        let grew = folded.total() as f64 - base.total() as f64;
        let svg = flame::diff_svg_counting(
            &base,
            &folded,
            &format!("{title}: what changed (red grew, blue shrank)"),
            &format!("{span}, {:+.1} MiB estimated; {subtitle}", grew / MIB),
            "bytes",
            false,
        )?;
        save(&t.output, &svg)?;
        eprintln!(
            "wrote {} ({} sites now, {} in the base, {:+.1} MiB)",
            t.output.display(),
            folded.len(),
            base.len(),
            grew / MIB
        );
        return Ok(());
    }
    let bytes = match format {
        Format::Svg => flame::svg_counting(&folded, &title, &subtitle, "bytes")?,
        Format::Folded => folded.to_text().into_bytes(),
        Format::Pprof => {
            // Both kinds in one file; `-sample_index` picks the other.
            let other = match kind {
                HeapKind::Inuse => HeapKind::Alloc,
                HeapKind::Alloc => HeapKind::Inuse,
            };
            let (_, other_folded) = fetch(other, from, to)?;
            let (allocated, inuse) = match kind {
                HeapKind::Alloc => (&folded, &other_folded),
                HeapKind::Inuse => (&other_folded, &folded),
            };
            flame::heap_pprof_gz(allocated, inuse, kind, h.sample_bytes, h.start_ms, h.end_ms)?
        }
    };
    save(&t.output, &bytes)?;
    eprintln!(
        "wrote {} ({} sites, {:.1} MiB {})",
        t.output.display(),
        folded.len(),
        folded.total() as f64 / MIB,
        match kind {
            HeapKind::Inuse => "in use",
            HeapKind::Alloc => "allocated",
        }
    );
    Ok(())
}

const MIB: f64 = 1024.0 * 1024.0;

/// `flamegraph --wait`: where instrumented requests waited over
/// `[from, to]`, in µs by name, await point and kind.
fn wait_flamegraph(
    args: &FlamegraphArgs,
    format: Format,
    client: &Client,
    from: u64,
    to: u64,
) -> Result<()> {
    let t = &args.target;
    let w = client
        .waits(
            &t.service,
            t.instance.as_deref(),
            args.task.as_deref(),
            from,
            to,
            true,
        )
        .context("fetching the wait profile")?;
    let folded = Folded::parse(&w.folded).context("the collector's folded stacks")?;
    if folded.is_empty() {
        bail!(
            "no waits of instrumented requests{} for {} in the last {}; are requests wrapped              in lagscope::instrument (or the tower layer), and wait capture not off              (LAGSCOPE_WAIT_CAPTURES=0)?",
            args.task
                .as_deref()
                .map(|n| format!(" named {n:?}"))
                .unwrap_or_default(),
            t.service,
            lagscope_wire::duration::format(args.window)
        );
    }
    let who = t.instance.clone().unwrap_or_else(|| w.instances.join(", "));
    let title = match &args.task {
        Some(task) => format!("{} / {who} — where {task} waits", t.service),
        None => format!("{} / {who} — where requests wait", t.service),
    };
    let mut subtitle = format!(
        "{}–{} UTC, µs waited from Pending to the next poll, estimated from {} sampled await points",
        utc_hms(w.start_ms),
        utc_hms(w.end_ms),
        w.captures
    );
    if w.dropped > 0 {
        subtitle.push_str(&format!(", {} lost", w.dropped));
    }
    let bytes = match format {
        Format::Svg => flame::svg_counting(&folded, &title, &subtitle, "µs")?,
        Format::Folded => folded.to_text().into_bytes(),
        Format::Pprof => flame::wait_pprof_gz(&folded, w.start_ms, w.end_ms)?,
    };
    save(&t.output, &bytes)?;
    eprintln!(
        "wrote {} ({} await points, {:.1} s waited)",
        t.output.display(),
        folded.len(),
        folded.total() as f64 / 1e6
    );
    Ok(())
}

fn heap_subtitle(h: &HeapResponse) -> String {
    let when = match h.kind {
        HeapKind::Inuse => format!("at {} UTC", utc_hms(h.end_ms)),
        HeapKind::Alloc => format!("{}–{} UTC", utc_hms(h.start_ms), utc_hms(h.end_ms)),
    };
    let mut s = format!(
        "{:.1} MiB {when}, estimated from allocations sampled every {} KiB on average",
        h.total_bytes as f64 / MIB,
        h.sample_bytes / 1024
    );
    if h.dropped > 0 {
        s.push_str(&format!(", {} samples lost", h.dropped));
    }
    s
}

/// Stall stacks of the window as a profile, each stack weighted by the
/// milliseconds of stall its captures stand for.
fn blocking(client: &Client, t: &Target, from: u64, to: u64) -> Result<ProfileResponse> {
    let stalls = client
        .stalls_of(&t.service, t.instance.as_deref(), 10_000)
        .context("fetching stalls")?;
    let in_window: Vec<_> = stalls
        .stalls
        .iter()
        .filter(|r| {
            let s = &r.stall;
            s.started_ms < to && s.started_ms + s.duration_us / 1000 >= from
        })
        .collect();
    let folded = flame::from_stalls(in_window.iter().map(|r| &r.stall));
    let mut instances: Vec<String> = Vec::new();
    for r in &in_window {
        if !instances.contains(&r.instance) {
            instances.push(r.instance.clone());
        }
    }
    let start = in_window
        .iter()
        .map(|r| r.stall.started_ms)
        .min()
        .unwrap_or(u64::MAX);
    let end = in_window
        .iter()
        .map(|r| r.stall.started_ms + r.stall.duration_us / 1000)
        .max()
        .unwrap_or(0);
    Ok(ProfileResponse {
        service: t.service.clone(),
        instances,
        start_ms: if end == 0 { from } else { start },
        end_ms: if end == 0 { to } else { end },
        hz: 1000,
        samples: folded.total(),
        dropped: 0,
        top: folded.top_functions(20),
        folded: folded.to_text(),
    })
}

fn write(
    path: &Path,
    format: Format,
    folded: &Folded,
    title: &str,
    subtitle: &str,
    p: &ProfileResponse,
) -> Result<()> {
    let bytes = match format {
        Format::Svg => flame::svg(folded, title, subtitle)?,
        Format::Folded => folded.to_text().into_bytes(),
        Format::Pprof => flame::pprof_gz(folded, p.hz, p.start_ms, p.end_ms)?,
    };
    save(path, &bytes)?;
    let lost = if p.dropped > 0 {
        format!("; {} samples lost by the agent", p.dropped)
    } else {
        String::new()
    };
    eprintln!(
        "wrote {} ({} stacks, {} {}{lost})",
        path.display(),
        folded.len(),
        folded.total(),
        if p.hz == 1000 && title.ends_with("blocking") {
            "ms"
        } else {
            "samples"
        }
    );
    Ok(())
}

fn save(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {path:?}"))
}

fn subtitle(p: &ProfileResponse, unit: &str) -> String {
    let mut s = format!(
        "{} {unit}, {}–{} UTC",
        p.samples,
        utc_hms(p.start_ms),
        utc_hms(p.end_ms)
    );
    if unit == "samples" {
        s.push_str(&format!(", {} Hz per thread CPU-second", p.hz));
    }
    if p.dropped > 0 {
        s.push_str(&format!(", {} dropped", p.dropped));
    }
    s
}

fn first_live_instance(client: &Client, service: &str) -> Result<String> {
    let services = client.services()?;
    let s = services
        .services
        .iter()
        .find(|s| s.service == service)
        .with_context(|| {
            let known: Vec<&str> = services
                .services
                .iter()
                .map(|s| s.service.as_str())
                .collect();
            format!(
                "no service {service:?} at the collector; known: {}",
                known.join(", ")
            )
        })?;
    s.instances
        .iter()
        .find(|i| i.health == Health::Live)
        .map(|i| i.instance.clone())
        .with_context(|| format!("{service} has no live instance to profile"))
}
