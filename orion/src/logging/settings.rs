use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::store::LogLevel;

// 0 means "not read from the environment yet"; 255 means "off".
static CONSOLE: AtomicU8 = AtomicU8::new(0);
static STORE: AtomicU8 = AtomicU8::new(0);
const OFF: u8 = 255;

fn from_u8(v: u8) -> Option<LogLevel> {
    match v {
        10 => Some(LogLevel::Debug),
        20 => Some(LogLevel::Info),
        30 => Some(LogLevel::Warning),
        40 => Some(LogLevel::Error),
        50 => Some(LogLevel::Critical),
        _ => None,
    }
}

/// Reads `ORION_LOGGING_LEVEL` and `ORION_LOGGING_CONSOLE` once. An unusable value is
/// reported on standard error and the default (INFO, console on) is kept.
fn init() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let level = match std::env::var("ORION_LOGGING_LEVEL") {
            Ok(v) => v.parse::<LogLevel>().unwrap_or_else(|e| {
                eprintln!("orion: ignoring ORION_LOGGING_LEVEL: {e}");
                LogLevel::Info
            }),
            Err(_) => LogLevel::Info,
        };
        let console_on = match std::env::var("ORION_LOGGING_CONSOLE") {
            Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
                "0" | "false" | "off" | "no" => false,
                "1" | "true" | "on" | "yes" | "" => true,
                other => {
                    eprintln!(
                        "orion: ignoring ORION_LOGGING_CONSOLE={other:?}: expected true or false"
                    );
                    true
                }
            },
            Err(_) => true,
        };
        let _ = STORE.compare_exchange(0, level as u8, Ordering::Relaxed, Ordering::Relaxed);
        let console = if console_on { level as u8 } else { OFF };
        let _ = CONSOLE.compare_exchange(0, console, Ordering::Relaxed, Ordering::Relaxed);
    });
}

fn load(cell: &AtomicU8) -> u8 {
    let v = cell.load(Ordering::Relaxed);
    if v != 0 {
        return v;
    }
    init();
    cell.load(Ordering::Relaxed)
}

/// Sets the lowest level printed to the console; `None` turns the console off.
/// Overrides `ORION_LOGGING_LEVEL` and `ORION_LOGGING_CONSOLE` for the whole process.
///
/// ```
/// use orion::logging::{self, LogLevel};
///
/// logging::set_console_level(None); // quiet
/// assert_eq!(logging::console_level(), None);
/// logging::set_console_level(Some(LogLevel::Warning));
/// assert_eq!(logging::console_level(), Some(LogLevel::Warning));
/// ```
pub fn set_console_level(level: Option<LogLevel>) {
    init();
    CONSOLE.store(level.map_or(OFF, |l| l as u8), Ordering::Relaxed);
}

/// The lowest level printed to the console, `None` when it is off.
pub fn console_level() -> Option<LogLevel> {
    from_u8(load(&CONSOLE))
}

/// Sets the lowest level stored with runs (default INFO, or `ORION_LOGGING_LEVEL`).
pub fn set_level(level: LogLevel) {
    init();
    STORE.store(level as u8, Ordering::Relaxed);
}

/// The lowest level stored with runs.
pub fn level() -> LogLevel {
    from_u8(load(&STORE)).unwrap_or(LogLevel::Info)
}

pub(crate) fn should_print(level: LogLevel) -> bool {
    let c = load(&CONSOLE);
    c != OFF && level as u8 >= c
}

pub(crate) fn should_store(level: LogLevel) -> bool {
    level as u8 >= load(&STORE)
}
