//! Readers of `/proc/self`: CPU time, threads, RSS, open descriptors.
//!
//! Every reader returns `None` where `/proc` is missing (non-Linux) or its
//! format is unexpected, so a sample field is absent rather than wrong.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` times. The kernel exports
/// USER_HZ = 100 to user space on every mainstream architecture, whatever its
/// internal tick rate.
const USER_HZ: u64 = 100;

/// CPU times and thread count from `/proc/self/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) user: Duration,
    pub(crate) system: Duration,
    pub(crate) threads: u64,
}

pub(crate) fn stat() -> Option<Stat> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted from the last `)`.
pub(crate) fn parse_stat(line: &str) -> Option<Stat> {
    let rest = &line[line.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15, num_threads 20.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let ticks = |t: u64| Duration::from_micros(t * (1_000_000 / USER_HZ));
    Some(Stat {
        user: ticks(field(14)?),
        system: ticks(field(15)?),
        threads: field(20)?,
    })
}

/// Resident set size, from `VmRSS` in `/proc/self/status`.
pub(crate) fn rss_bytes() -> Option<u64> {
    parse_vm_rss(&std::fs::read_to_string("/proc/self/status").ok()?)
}

pub(crate) fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Number of open file descriptors.
pub(crate) fn open_fds() -> Option<u64> {
    // The directory handle used for counting is itself one descriptor.
    Some((std::fs::read_dir("/proc/self/fd").ok()?.count() as u64).saturating_sub(1))
}

/// The host name, for the default instance id.
pub(crate) fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parses_command_names_with_spaces_and_parens() {
        let line = "1234 (my (weird) app) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 9 0 100 1000 200";
        let s = parse_stat(line).expect("parses");
        assert_eq!(s.user, Duration::from_millis(2500));
        assert_eq!(s.system, Duration::from_millis(370));
        assert_eq!(s.threads, 9);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    4096 kB\nThreads: 3\n";
        assert_eq!(parse_vm_rss(status), Some(4096 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn this_process_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(stat().expect("stat").threads >= 1);
            assert!(rss_bytes().expect("rss") > 0);
            assert!(open_fds().expect("fds") >= 3);
        }
    }
}
