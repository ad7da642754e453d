//! Renderings of CPU profiles and stall stacks. Folded stacks
//! (`root;…;leaf count`) are the exchange format; the interactive SVG and
//! the differential flamegraph come from inferno, and the pprof protobuf
//! (`.pb.gz`, for `go tool pprof`, speedscope and Pyroscope) is written here.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use flate2::write::GzEncoder;
pub use lagscope_wire::api::TopFunction;
use lagscope_wire::frames::is_user_frame;
use prost::Message;

/// Why a rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum FlameError {
    /// A folded-stack line without a count.
    #[error("line {line} is not `frame;frame;… count`: {text:?}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// Nothing to draw.
    #[error("the profile has no samples{0}")]
    Empty(String),
    /// inferno or the encoder failed.
    #[error("rendering failed: {0}")]
    Render(#[from] std::io::Error),
}

/// Folded stacks: `root;…;leaf` → samples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folded {
    stacks: BTreeMap<String, u64>,
}

impl Folded {
    /// Folds stacks given innermost frame first, as agents send them.
    pub fn from_stacks<'a>(stacks: impl IntoIterator<Item = (&'a [String], u64)>) -> Folded {
        let mut folded = Folded::default();
        for (frames, count) in stacks {
            folded.add(frames.iter().rev().map(String::as_str), count);
        }
        folded
    }

    /// Adds one stack, root first.
    pub fn add<'a>(&mut self, root_first: impl Iterator<Item = &'a str>, count: u64) {
        if count == 0 {
            return;
        }
        let mut line = String::new();
        for (i, frame) in root_first.enumerate() {
            if i > 0 {
                line.push(';');
            }
            // `;` separates frames (it appears in array types like `[u8; 4]`).
            line.extend(frame.chars().map(|c| if c == ';' { ',' } else { c }));
        }
        if !line.is_empty() {
            *self.stacks.entry(line).or_default() += count;
        }
    }

    /// Merges another profile into this one.
    pub fn merge(&mut self, other: &Folded) {
        for (stack, count) in &other.stacks {
            *self.stacks.entry(stack.clone()).or_default() += count;
        }
    }

    /// Reads folded text (blank lines are skipped).
    pub fn parse(text: &str) -> Result<Folded, FlameError> {
        let mut folded = Folded::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let bad = || FlameError::BadLine {
                line: i + 1,
                text: line.chars().take(200).collect(),
            };
            let (stack, count) = line.rsplit_once(' ').ok_or_else(bad)?;
            let count: u64 = count.parse().map_err(|_| bad())?;
            *folded.stacks.entry(stack.to_string()).or_default() += count;
        }
        Ok(folded)
    }

    /// The folded text, one stack per line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (stack, count) in &self.stacks {
            out.push_str(stack);
            out.push(' ');
            out.push_str(&count.to_string());
            out.push('\n');
        }
        out
    }

    /// Samples in all.
    pub fn total(&self) -> u64 {
        self.stacks.values().sum()
    }

    /// Distinct stacks.
    pub fn len(&self) -> usize {
        self.stacks.len()
    }

    /// Whether there are no stacks.
    pub fn is_empty(&self) -> bool {
        self.stacks.is_empty()
    }

    /// The `n` user functions (see [`lagscope_wire::frames::is_user_frame`])
    /// with the most samples, each sample charged to the innermost user
    /// frame of its stack (the library code it called counts for it); the
    /// total counts are as in [`Folded::top_functions`]. Stacks without a
    /// user frame count for none.
    pub fn top_user_functions(&self, n: usize) -> Vec<TopFunction> {
        let mut own: HashMap<&str, u64> = HashMap::new();
        for (stack, &count) in &self.stacks {
            if let Some(user) = stack.split(';').rev().find(|f| is_user_frame(f)) {
                *own.entry(user).or_default() += count;
            }
        }
        let mut total: HashMap<&str, u64> = HashMap::new();
        for (stack, &count) in &self.stacks {
            let mut frames: Vec<&str> = stack.split(';').collect();
            frames.sort_unstable();
            frames.dedup();
            for f in frames.into_iter().filter(|f| own.contains_key(f)) {
                *total.entry(f).or_default() += count;
            }
        }
        let mut top: Vec<TopFunction> = own
            .into_iter()
            .map(|(name, own)| TopFunction {
                name: name.to_string(),
                self_samples: own,
                total_samples: total.get(name).copied().unwrap_or(own),
            })
            .collect();
        sort_top(&mut top);
        top.truncate(n);
        top
    }

    /// The `n` functions with the most samples on top of the stack (self),
    /// with their self and total (anywhere on the stack) counts.
    pub fn top_functions(&self, n: usize) -> Vec<TopFunction> {
        let mut by_name: HashMap<&str, (u64, u64)> = HashMap::new();
        for (stack, &count) in &self.stacks {
            let frames: Vec<&str> = stack.split(';').collect();
            if let Some(leaf) = frames.last() {
                by_name.entry(leaf).or_default().0 += count;
            }
            let mut seen: Vec<&str> = Vec::new();
            for f in frames {
                if !seen.contains(&f) {
                    seen.push(f);
                    by_name.entry(f).or_default().1 += count;
                }
            }
        }
        let mut top: Vec<TopFunction> = by_name
            .into_iter()
            .filter(|(_, (own, _))| *own > 0)
            .map(|(name, (own, total))| TopFunction {
                name: name.to_string(),
                self_samples: own,
                total_samples: total,
            })
            .collect();
        sort_top(&mut top);
        top.truncate(n);
        top
    }
}

/// Most samples first, then by name.
fn sort_top(top: &mut [TopFunction]) {
    top.sort_by(|a, b| {
        b.self_samples
            .cmp(&a.self_samples)
            .then_with(|| a.name.cmp(&b.name))
    });
}

/// An interactive SVG flamegraph of `folded` titled `title`.
pub fn svg(folded: &Folded, title: &str, subtitle: &str) -> Result<Vec<u8>, FlameError> {
    svg_counting(folded, title, subtitle, "samples")
}

/// Like [`svg`], its counts called `count_name` (`bytes`) in the tooltips.
pub fn svg_counting(
    folded: &Folded,
    title: &str,
    subtitle: &str,
    count_name: &str,
) -> Result<Vec<u8>, FlameError> {
    if folded.is_empty() {
        return Err(FlameError::Empty(String::new()));
    }
    render(&folded.to_text(), title, subtitle, count_name)
}

/// inferno's flamegraph of folded `text`.
fn render(
    text: &str,
    title: &str,
    subtitle: &str,
    count_name: &str,
) -> Result<Vec<u8>, FlameError> {
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_string();
    options.subtitle = Some(subtitle.to_string());
    options.count_name = count_name.to_string();
    options.deterministic = true;
    let mut out = Vec::new();
    inferno::flamegraph::from_lines(&mut options, text.lines(), &mut out)?;
    Ok(out)
}

/// Stall stacks folded and weighted by the milliseconds of stall each
/// capture stands for (a stall's time split over its captures).
pub fn from_stalls<'a>(stalls: impl IntoIterator<Item = &'a lagscope_wire::StallEvent>) -> Folded {
    let mut folded = Folded::default();
    for s in stalls {
        let captures = u64::from(s.captures().max(1));
        for stack in &s.stacks {
            let ms = (s.duration_us / 1000 * u64::from(stack.count) / captures).max(1);
            folded.add(stack.frames.iter().rev().map(String::as_str), ms);
        }
    }
    folded
}

/// A differential flamegraph: `new`'s shape, coloured by the change from
/// `base` (red grew, blue shrank), with counts normalised to equal totals.
pub fn diff_svg(
    base: &Folded,
    new: &Folded,
    title: &str,
    subtitle: &str,
) -> Result<Vec<u8>, FlameError> {
    diff_svg_counting(base, new, title, subtitle, "samples", true)
}

/// Like [`diff_svg`], its counts called `count_name`; `normalize: false`
/// keeps them as they are, for a growth chart of bytes.
pub fn diff_svg_counting(
    base: &Folded,
    new: &Folded,
    title: &str,
    subtitle: &str,
    count_name: &str,
    normalize: bool,
) -> Result<Vec<u8>, FlameError> {
    if new.is_empty() {
        return Err(FlameError::Empty(" in the newer window".into()));
    }
    let diff_options = inferno::differential::Options {
        normalize,
        ..Default::default()
    };
    let mut folded_diff = Vec::new();
    inferno::differential::from_readers(
        diff_options,
        base.to_text().as_bytes(),
        new.to_text().as_bytes(),
        &mut folded_diff,
    )?;
    render(
        &String::from_utf8_lossy(&folded_diff),
        title,
        subtitle,
        count_name,
    )
}

/// A gzipped pprof protobuf of `folded`, each sample worth `1/hz` s of CPU.
pub fn pprof_gz(
    folded: &Folded,
    hz: u32,
    start_ms: u64,
    end_ms: u64,
) -> Result<Vec<u8>, FlameError> {
    let period_ns = 1_000_000_000 / i64::from(hz.max(1));
    let stacks = folded.stacks.iter().map(|(stack, &count)| {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        (stack.as_str(), vec![count, count.saturating_mul(period_ns)])
    });
    let layout = Layout {
        sample_types: &[("samples", "count"), ("cpu", "nanoseconds")],
        default_type: None,
        period_type: ("cpu", "nanoseconds"),
        period: period_ns,
        start_ms,
        end_ms,
    };
    encode_pprof(stacks, &layout)
}

/// A gzipped pprof heap profile: `alloc_space` and `inuse_space` in bytes
/// per stack, as `go tool pprof -sample_index=alloc_space|inuse_space`
/// reads them, `default` the one shown first.
pub fn heap_pprof_gz(
    allocated: &Folded,
    inuse: &Folded,
    default: lagscope_wire::api::HeapKind,
    sample_bytes: u64,
    start_ms: u64,
    end_ms: u64,
) -> Result<Vec<u8>, FlameError> {
    let mut values: std::collections::BTreeMap<&str, [i64; 2]> = Default::default();
    for (i, folded) in [allocated, inuse].into_iter().enumerate() {
        for (stack, &bytes) in &folded.stacks {
            values.entry(stack.as_str()).or_default()[i] = i64::try_from(bytes).unwrap_or(i64::MAX);
        }
    }
    let layout = Layout {
        sample_types: &[("alloc_space", "bytes"), ("inuse_space", "bytes")],
        default_type: Some(match default {
            lagscope_wire::api::HeapKind::Alloc => "alloc_space",
            lagscope_wire::api::HeapKind::Inuse => "inuse_space",
        }),
        period_type: ("space", "bytes"),
        period: i64::try_from(sample_bytes).unwrap_or(i64::MAX),
        start_ms,
        end_ms,
    };
    encode_pprof(values.into_iter().map(|(s, v)| (s, v.to_vec())), &layout)
}

/// A gzipped pprof wait profile of `folded` (counts in µs): `waits` (the
/// µs as counted) and `wait_time` in nanoseconds, as
/// `go tool pprof -sample_index=wait_time` reads it.
pub fn wait_pprof_gz(folded: &Folded, start_ms: u64, end_ms: u64) -> Result<Vec<u8>, FlameError> {
    let stacks = folded.stacks.iter().map(|(stack, &us)| {
        let us = i64::try_from(us).unwrap_or(i64::MAX);
        (stack.as_str(), vec![us.saturating_mul(1000)])
    });
    let layout = Layout {
        sample_types: &[("wait_time", "nanoseconds")],
        default_type: None,
        period_type: ("wait_time", "nanoseconds"),
        period: 1,
        start_ms,
        end_ms,
    };
    encode_pprof(stacks, &layout)
}

/// What a pprof file's values are.
struct Layout<'a> {
    /// (type, unit) of each value of a sample.
    sample_types: &'a [(&'a str, &'a str)],
    /// The type shown first, if not the last.
    default_type: Option<&'a str>,
    period_type: (&'a str, &'a str),
    period: i64,
    start_ms: u64,
    end_ms: u64,
}

/// A gzipped pprof protobuf of `stacks` (folded, root first) with their
/// values.
fn encode_pprof<'a>(
    stacks: impl Iterator<Item = (&'a str, Vec<i64>)>,
    layout: &Layout<'_>,
) -> Result<Vec<u8>, FlameError> {
    let mut strings = Strings::default();
    let mut value_type = |(t, u): (&str, &str)| pprof::ValueType {
        r#type: strings.id(t),
        unit: strings.id(u),
    };
    let sample_type = layout.sample_types.iter().map(|&t| value_type(t)).collect();
    let period_type = Some(value_type(layout.period_type));
    let mut functions: Vec<pprof::Function> = Vec::new();
    let mut function_ids: HashMap<String, u64> = HashMap::new();
    let mut samples = Vec::new();
    for (stack, value) in stacks {
        // pprof lists locations leaf first; one location per function name.
        let location_id = stack
            .split(';')
            .rev()
            .map(|name| {
                *function_ids.entry(name.to_string()).or_insert_with(|| {
                    let id = functions.len() as u64 + 1;
                    // No system name: pprof tools simplify a name equal to
                    // it as if it were C++ (`<T as Trait>::poll` would show
                    // as `::poll`), but keep a name given apart from it.
                    functions.push(pprof::Function {
                        id,
                        name: strings.id(name),
                        system_name: 0,
                        filename: 0,
                    });
                    id
                })
            })
            .collect();
        samples.push(pprof::Sample { location_id, value });
    }
    let locations = functions
        .iter()
        .map(|f| pprof::Location {
            id: f.id,
            line: vec![pprof::Line {
                function_id: f.id,
                line: 0,
            }],
        })
        .collect();
    let default_sample_type = layout.default_type.map_or(0, |t| strings.id(t));
    let profile = pprof::Profile {
        sample_type,
        sample: samples,
        location: locations,
        function: functions,
        string_table: strings.table,
        time_nanos: i64::try_from(layout.start_ms)
            .unwrap_or(0)
            .saturating_mul(1_000_000),
        duration_nanos: i64::try_from(layout.end_ms.saturating_sub(layout.start_ms))
            .unwrap_or(0)
            .saturating_mul(1_000_000),
        period_type,
        period: layout.period,
        default_sample_type,
    };
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&profile.encode_to_vec())?;
    Ok(gz.finish()?)
}

/// pprof's string table: index 0 is the empty string.
struct Strings {
    table: Vec<String>,
    ids: HashMap<String, i64>,
}

impl Default for Strings {
    fn default() -> Self {
        Strings {
            table: vec![String::new()],
            ids: HashMap::new(),
        }
    }
}

impl Strings {
    fn id(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.table.len() as i64;
        self.table.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        id
    }
}

/// The subset of pprof's `profile.proto` lagscope writes.
pub mod pprof {
    /// `perftools.profiles.Profile`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        /// What each sample value is.
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        /// The samples.
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        /// Code locations.
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        /// Functions.
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        /// Strings, referenced by index.
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        /// Start, ns since the epoch.
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        /// Length, ns.
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        /// What the period is in.
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        /// Time between samples.
        #[prost(int64, tag = "12")]
        pub period: i64,
        /// The sample type shown first (string table index; 0: the last).
        #[prost(int64, tag = "14")]
        pub default_sample_type: i64,
    }

    /// A value's type and unit (string table indexes).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        /// Type.
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        /// Unit.
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    /// One stack with its values.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        /// Locations, leaf first.
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        /// One value per sample type.
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
    }

    /// A code location.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        /// Id (non-zero).
        #[prost(uint64, tag = "1")]
        pub id: u64,
        /// The functions at it (several when inlined).
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
    }

    /// A function at a location.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        /// The function.
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        /// Source line, 0 when unknown.
        #[prost(int64, tag = "2")]
        pub line: i64,
    }

    /// A function.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        /// Id (non-zero).
        #[prost(uint64, tag = "1")]
        pub id: u64,
        /// Name (string table index).
        #[prost(int64, tag = "2")]
        pub name: i64,
        /// Mangled or system name.
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        /// Source file.
        #[prost(int64, tag = "4")]
        pub filename: i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample() -> Folded {
        let a: Vec<String> = ["hash", "handler", "main"].map(String::from).into();
        let b: Vec<String> = ["read", "handler", "main"].map(String::from).into();
        let c: Vec<String> = ["<[u8; 4] as Foo>::bar", "main"].map(String::from).into();
        Folded::from_stacks([(&a[..], 30), (&b[..], 10), (&c[..], 1)])
    }

    #[test]
    fn user_functions_are_charged_with_the_library_code_they_call() {
        let mut f = Folded::default();
        let stack = |frames: &[&'static str], count| (frames.to_vec(), count);
        for (frames, count) in [
            stack(
                &[
                    "tokio::run",
                    "app::handle",
                    "app::encode",
                    "core::fmt::write",
                ],
                40,
            ),
            stack(&["tokio::run", "app::handle", "app::encode"], 10),
            stack(
                &["tokio::run", "app::handle", "std::io::copy", "memcpy"],
                30,
            ),
            stack(&["tokio::run", "tokio::park"], 25),
        ] {
            f.add(frames.into_iter(), count);
        }
        let top = f.top_user_functions(10);
        let got: Vec<(&str, u64, u64)> = top
            .iter()
            .map(|t| (t.name.as_str(), t.self_samples, t.total_samples))
            .collect();
        // encode's own 10 and core::fmt's 40; handle's memcpy; tokio's
        // own time is no user function's.
        assert_eq!(got, [("app::encode", 50, 50), ("app::handle", 30, 80)]);
        // By self time alone the library leaf comes first.
        assert_eq!(f.top_functions(1)[0].name, "core::fmt::write");
    }

    #[test]
    fn folds_root_first_and_round_trips_through_text() {
        let f = sample();
        let text = f.to_text();
        assert!(text.contains("main;handler;hash 30\n"), "{text}");
        assert!(text.contains("main;<[u8, 4] as Foo>::bar 1\n"), "{text}");
        assert_eq!(Folded::parse(&text).expect("parses"), f);
        assert_eq!(f.total(), 41);
        assert!(matches!(
            Folded::parse("main;x\n"),
            Err(FlameError::BadLine { line: 1, .. })
        ));
    }

    #[test]
    fn top_functions_count_self_and_total() {
        let top = sample().top_functions(2);
        assert_eq!(top[0].name, "hash");
        assert_eq!((top[0].self_samples, top[0].total_samples), (30, 30));
        assert_eq!(top[1].name, "read");
        let all = sample().top_functions(10);
        assert!(all.iter().all(|t| t.name != "main"), "main never on top");
    }

    #[test]
    fn svg_has_the_title_and_the_frames() {
        let svg = String::from_utf8(svg(&sample(), "svc / web-1", "41 samples").expect("svg"))
            .expect("utf-8");
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("svc / web-1"));
        assert!(svg.contains("handler"));
        assert!(matches!(
            super::svg(&Folded::default(), "t", ""),
            Err(FlameError::Empty(_))
        ));
    }

    #[test]
    fn diff_svg_renders() {
        let mut before = Folded::default();
        before.add(["main", "handler", "read"].into_iter(), 30);
        let svg = diff_svg(&before, &sample(), "diff", "").expect("svg");
        assert!(String::from_utf8_lossy(&svg).contains("hash"));
    }

    #[test]
    fn pprof_decodes_back_with_leaf_first_locations() {
        let gz = pprof_gz(&sample(), 19, 1_000, 11_000).expect("encoded");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .expect("gunzip");
        let p = pprof::Profile::decode(&raw[..]).expect("decodes");
        assert_eq!(p.string_table[0], "");
        assert_eq!(p.sample.len(), 3);
        let name = |loc: u64| {
            let f = &p.function[(loc - 1) as usize];
            p.string_table[f.name as usize].clone()
        };
        let hot = p
            .sample
            .iter()
            .find(|s| s.value[0] == 30)
            .expect("the hot stack");
        assert_eq!(name(hot.location_id[0]), "hash");
        assert_eq!(name(*hot.location_id.last().expect("root")), "main");
        assert_eq!(hot.value[1], 30 * (1_000_000_000 / 19));
        assert_eq!(p.duration_nanos, 10_000_000_000);
    }

    #[test]
    fn pprof_names_rust_trait_frames_apart_from_a_system_name() {
        let mut folded = Folded::default();
        let stack = [
            "<std::sys::thread::unix::Thread>::new::thread_start",
            "<F as core::future::future::Future>::poll",
            "app::handler",
        ];
        folded.add(stack.into_iter(), 5);
        let gz = pprof_gz(&folded, 19, 1_000, 2_000).expect("encoded");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .expect("gunzip");
        let p = pprof::Profile::decode(&raw[..]).expect("decodes");
        let names: Vec<&str> = p
            .function
            .iter()
            .map(|f| {
                // A system name equal to the name is what makes pprof
                // simplify it.
                assert_ne!(f.system_name, f.name);
                p.string_table[f.name as usize].as_str()
            })
            .collect();
        assert_eq!(names.len(), 3);
        for name in stack {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
    }

    #[test]
    fn heap_pprof_carries_alloc_and_inuse_space_per_stack() {
        let mut allocated = Folded::default();
        allocated.add(["main", "remember"].into_iter(), 3 << 20);
        allocated.add(["main", "parse"].into_iter(), 5 << 20);
        let mut inuse = Folded::default();
        inuse.add(["main", "remember"].into_iter(), 2 << 20);
        let gz = heap_pprof_gz(
            &allocated,
            &inuse,
            lagscope_wire::api::HeapKind::Inuse,
            512 * 1024,
            1_000,
            11_000,
        )
        .expect("encoded");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .expect("gunzip");
        let p = pprof::Profile::decode(&raw[..]).expect("decodes");
        let text = |i: i64| p.string_table[i as usize].as_str();
        let types: Vec<_> = p
            .sample_type
            .iter()
            .map(|t| (text(t.r#type), text(t.unit)))
            .collect();
        assert_eq!(types, [("alloc_space", "bytes"), ("inuse_space", "bytes")]);
        assert_eq!(text(p.default_sample_type), "inuse_space");
        assert_eq!(p.period, 512 * 1024);
        let leaf = |s: &pprof::Sample| {
            let f = &p.function[(s.location_id[0] - 1) as usize];
            text(f.name)
        };
        let mut values: Vec<_> = p
            .sample
            .iter()
            .map(|s| (leaf(s), s.value.clone()))
            .collect();
        values.sort();
        assert_eq!(
            values,
            [
                ("parse", vec![5 << 20, 0]),
                ("remember", vec![3 << 20, 2 << 20])
            ]
        );
    }
}
