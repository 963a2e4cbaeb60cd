//! Run logs: the console format, [`get_run_logger`], and capture of `tracing` events.
//!
//! Every line a run logs — the engine's own messages, [`RunLogger`] calls, and plain `tracing`
//! events emitted while the run executes — is stored with the run (readable through
//! [`crate::OrionClient::read_logs`]) and printed to standard error in Prefect's format:
//!
//! ```text
//! 20:49:47.839 | INFO    | Task run 'log_message-dd6ef374-0' - Hello Leo!
//! ```
//!
//! The host program controls both with [`set_console_level`] and [`set_level`], or with the
//! `ORION_LOGGING_LEVEL` environment variable (`DEBUG`, `INFO`, `WARNING`, `ERROR`,
//! `CRITICAL`; `ORION_LOGGING_CONSOLE=false` silences the console). A `tracing` subscriber
//! the host installed keeps receiving every event.

mod buffer;
mod capture;
mod console;
mod run_logger;
mod settings;

pub use crate::store::LogLevel;
pub(crate) use buffer::{FLUSH_AT, FLUSH_EVERY, LogBuffer};
pub(crate) use capture::{Captured, outer_default, with_capture};
pub use console::format_line;
pub(crate) use console::print;
pub use run_logger::{RunLogger, get_run_logger};
pub use settings::{console_level, level, set_console_level, set_level};
pub(crate) use settings::{should_print, should_store};
