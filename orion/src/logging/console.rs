use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::store::LogLevel;

fn local_zone() -> &'static TimeZone {
    static ZONE: OnceLock<TimeZone> = OnceLock::new();
    ZONE.get_or_init(|| TimeZone::try_system().unwrap_or(TimeZone::UTC))
}

/// Formats one console line as Prefect does, in `zone`:
/// `HH:MM:SS.mmm | LEVEL   | source - message`.
///
/// ```
/// use orion::logging::{format_line, LogLevel};
///
/// let at: jiff::Timestamp = "2026-01-01T20:49:47.7309Z".parse().unwrap();
/// let line = format_line(at, &jiff::tz::TimeZone::UTC, LogLevel::Info, "Flow run 'rare-frog'", "Hi");
/// assert_eq!(line, "20:49:47.730 | INFO    | Flow run 'rare-frog' - Hi");
/// ```
pub fn format_line(
    at: Timestamp,
    zone: &TimeZone,
    level: LogLevel,
    source: &str,
    message: &str,
) -> String {
    let dt = zone.to_datetime(at);
    let mut line = String::with_capacity(32 + source.len() + message.len());
    let _ = write!(
        line,
        "{:02}:{:02}:{:02}.{:03} | {:<7} | {} - {}",
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond(),
        level,
        source,
        message
    );
    line
}

/// Prints a line to standard error in the local time zone.
///
/// Through `eprint!`, so that a test harness capturing output (libtest's, for the tests of
/// the user's own flows and orion's) shows run logs only for the tests that fail.
pub(crate) fn print(at: Timestamp, level: LogLevel, source: &str, message: &str) {
    static BROKEN: AtomicBool = AtomicBool::new(false);
    let mut line = format_line(at, local_zone(), level, source, message);
    line.push('\n');
    if BROKEN.load(Ordering::Relaxed) || std::thread::panicking() {
        // A broken stderr must not take a run down: the line is still stored.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        return;
    }
    // `eprint!` panics when stderr is broken (a closed pipe); note it and stop using it.
    let printed = std::panic::catch_unwind(|| eprint!("{line}"));
    if printed.is_err() {
        BROKEN.store(true, Ordering::Relaxed);
    }
}
