//! Human-readable numbers with units.

/// Microseconds as `850µs`, `12.3ms`, `4.20s`.
pub fn micros(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.1}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

/// Bytes as `512B`, `12.0KiB`, `3.4MiB`, `1.20GiB`.
pub fn bytes(b: f64) -> String {
    let abs = b.abs();
    if abs < 1024.0 {
        format!("{b:.0}B")
    } else if abs < 1024.0 * 1024.0 {
        format!("{:.1}KiB", b / 1024.0)
    } else if abs < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1}MiB", b / 1048576.0)
    } else {
        format!("{:.2}GiB", b / 1073741824.0)
    }
}

/// A ratio as a percentage, `45%`.
pub fn percent(r: f64) -> String {
    format!("{:.0}%", r * 100.0)
}

pub use lagscope_wire::duration::utc_hms as clock;

/// A duration in seconds as `1m`, `5m`, `1h`, `90s`.
pub fn span(secs: u64) -> String {
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// The last two path segments, so `a::b::c::handler` reads `c::handler`.
pub fn short_name(path: &str) -> String {
    // An inlined frame's location stays: it is what tells lines apart.
    let (name, location) = match path.rsplit_once(" (") {
        Some((name, at)) if at.ends_with(')') => (name, Some(at)),
        _ => (path, None),
    };
    let trimmed = name.trim_end_matches("::{{closure}}");
    let short = match qualified_self(trimmed) {
        // `<checkout::Cart as core::fmt::Debug>::fmt` is `Cart::fmt`.
        Some((ty, rest)) => format!("{}::{rest}", last_segments(ty, 1)),
        None => last_segments(trimmed, 2).to_string(),
    };
    match location {
        Some(at) => format!("{short} ({at}"),
        None => short,
    }
}

/// `(Type, rest)` of `<Type as Trait>::rest` or `<Type>::rest`.
fn qualified_self(name: &str) -> Option<(&str, &str)> {
    let inner = name.strip_prefix('<')?;
    let mut depth = 1;
    for (i, c) in inner.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    let ty = inner[..i].split(" as ").next().unwrap_or(&inner[..i]);
                    let rest = inner[i + 1..].strip_prefix("::")?;
                    return Some((ty, rest));
                }
            }
            _ => {}
        }
    }
    None
}

/// The last `n` `::`-separated segments of `path`, not counting `::`
/// inside generic arguments.
fn last_segments(path: &str, n: usize) -> &str {
    let bytes = path.as_bytes();
    let mut depth = 0i32;
    let mut found = 0;
    let mut i = bytes.len();
    while i > 0 {
        i -= 1;
        match bytes[i] {
            b'>' => depth += 1,
            b'<' => depth -= 1,
            b':' if depth == 0 && i > 0 && bytes[i - 1] == b':' => {
                found += 1;
                if found == n {
                    return &path[i + 1..];
                }
                i -= 1;
            }
            _ => {}
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_scale() {
        assert_eq!(micros(850.0), "850µs");
        assert_eq!(micros(12_300.0), "12.3ms");
        assert_eq!(micros(4_200_000.0), "4.20s");
        assert_eq!(bytes(3.5 * 1048576.0), "3.5MiB");
        assert_eq!(percent(0.456), "46%");
        assert_eq!(span(300), "5m");
        assert_eq!(span(90), "90s");
    }
}
