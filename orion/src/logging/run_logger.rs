use std::fmt::Display;

use crate::engine::context::{self, RunCtx};
use crate::store::LogLevel;

/// The logger of the current flow run or task run: lines go to the console and are stored
/// with the run.
///
/// Outside any run the lines are only printed, under the source `orion`.
///
/// ```
/// use orion::prelude::*;
///
/// #[task]
/// async fn greet(name: String) {
///     let logger = get_run_logger();
///     logger.info(format!("Hello {name}!"));
/// }
/// ```
#[derive(Clone)]
pub struct RunLogger {
    ctx: Option<RunCtx>,
}

impl std::fmt::Debug for RunLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunLogger")
            .field("in_run", &self.ctx.is_some())
            .finish()
    }
}

/// The logger of the run this code executes in.
pub fn get_run_logger() -> RunLogger {
    RunLogger {
        ctx: context::current(),
    }
}

impl RunLogger {
    /// Logs at `level`.
    pub fn log(&self, level: LogLevel, message: impl Display) {
        match &self.ctx {
            Some(ctx) => ctx.log(level, None, message.to_string()),
            None => {
                if super::should_print(level) {
                    super::console::print(
                        jiff::Timestamp::now(),
                        level,
                        "orion",
                        &message.to_string(),
                    );
                }
            }
        }
    }
    /// Logs at DEBUG.
    pub fn debug(&self, message: impl Display) {
        self.log(LogLevel::Debug, message);
    }
    /// Logs at INFO.
    pub fn info(&self, message: impl Display) {
        self.log(LogLevel::Info, message);
    }
    /// Logs at WARNING.
    pub fn warning(&self, message: impl Display) {
        self.log(LogLevel::Warning, message);
    }
    /// Logs at ERROR.
    pub fn error(&self, message: impl Display) {
        self.log(LogLevel::Error, message);
    }
    /// Logs at CRITICAL.
    pub fn critical(&self, message: impl Display) {
        self.log(LogLevel::Critical, message);
    }
}
