//! How lagscope writes durations in flags and environment variables:
//! `<number><unit>` with unit `us`, `ms`, `s`, `m` or `h`, e.g. `250ms`, `1.5s`, `2m`.

use std::time::Duration;

/// Parses a duration such as `250ms`, `1s`, `1.5s`, `2m`, `500us`, `1h`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(lagscope_wire::duration::parse("250ms"), Some(Duration::from_millis(250)));
/// assert_eq!(lagscope_wire::duration::parse("10"), None);
/// ```
pub fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "us" | "µs" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

/// [`parse`] as a command-line value parser: the error says what a valid
/// value looks like.
///
/// ```
/// assert!(lagscope_wire::duration::parse_arg("10").unwrap_err().contains("such as"));
/// ```
pub fn parse_arg(text: &str) -> Result<Duration, String> {
    parse(text).ok_or_else(|| format!("{text:?} is not a duration such as 500ms, 10s or 2m"))
}

/// `10s`, `5m`, `250ms`: the inverse of [`parse`] for messages.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(lagscope_wire::duration::format(Duration::from_secs(300)), "5m");
/// assert_eq!(lagscope_wire::duration::format(Duration::from_millis(1500)), "1500ms");
/// ```
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A Unix time in ms as `HH:MM:SS` (UTC).
///
/// ```
/// assert_eq!(lagscope_wire::duration::utc_hms(0), "00:00:00");
/// assert_eq!(lagscope_wire::duration::utc_hms(1_800_000_000_000), "08:00:00");
/// ```
pub fn utc_hms(ms: u64) -> String {
    let secs = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_fractions() {
        assert_eq!(parse("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse("500us"), Some(Duration::from_micros(500)));
        assert_eq!(parse("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("ms"), None);
        assert_eq!(parse("10d"), None);
    }
}
