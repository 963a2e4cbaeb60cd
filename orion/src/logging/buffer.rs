use std::sync::{Mutex, MutexGuard};

use crate::store::LogRecord;

/// Log records waiting to be written to the store. The engine drains it at its own await
/// points (after each task run once it is large, and at the end of every flow run), so a
/// synchronous log call never waits for the store.
#[derive(Debug, Default)]
pub(crate) struct LogBuffer {
    pending: Mutex<Vec<LogRecord>>,
}

/// Past this many records the engine writes the buffer out at its next await point.
pub(crate) const FLUSH_AT: usize = 512;

impl LogBuffer {
    fn lock(&self) -> MutexGuard<'_, Vec<LogRecord>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn push(&self, record: LogRecord) {
        self.lock().push(record);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn take(&self) -> Vec<LogRecord> {
        std::mem::take(&mut *self.lock())
    }
}
