use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::store::LogRecord;

/// Log records waiting to be written to the store. The engine drains it at its own await
/// points (after each task run once it is large, and at the end of every flow run), so a
/// synchronous log call never waits for the store; and a line waits at most [`FLUSH_EVERY`]
/// (a delayed write is scheduled when the buffer gets its first line), so a run's log can be
/// followed while it runs.
#[derive(Debug, Default)]
pub(crate) struct LogBuffer {
    pending: Mutex<Vec<LogRecord>>,
    /// Whether a delayed write is scheduled.
    scheduled: AtomicBool,
}

/// The longest a stored log line waits in the buffer (Prefect's API log handler sends every
/// 2 s).
pub(crate) const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Past this many records the engine writes the buffer out at its next await point.
pub(crate) const FLUSH_AT: usize = 512;

impl LogBuffer {
    fn lock(&self) -> MutexGuard<'_, Vec<LogRecord>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a record; true when the caller should schedule the delayed write (none is).
    pub(crate) fn push(&self, record: LogRecord) -> bool {
        self.lock().push(record);
        !self.scheduled.swap(true, Ordering::AcqRel)
    }

    /// The delayed write is running: the next push schedules another.
    pub(crate) fn unschedule(&self) {
        self.scheduled.store(false, Ordering::Release);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn take(&self) -> Vec<LogRecord> {
        std::mem::take(&mut *self.lock())
    }
}
