//! The names of the named states, so policy compares constants, not spelled-out strings.

/// A Scheduled run past its start time.
pub(crate) const LATE: &str = "Late";
/// A Scheduled run that failed (or crashed) and will run again.
pub(crate) const AWAITING_RETRY: &str = "AwaitingRetry";
/// A Running run on its second or later attempt.
pub(crate) const RETRYING: &str = "Retrying";
/// A Completed run whose result came from the cache.
pub(crate) const CACHED: &str = "Cached";
/// A Failed run that exceeded its timeout.
pub(crate) const TIMED_OUT: &str = "TimedOut";
/// A Scheduled run waiting for a concurrency slot (a task-tag or deployment limit is full).
pub(crate) const AWAITING_CONCURRENCY_SLOT: &str = "AwaitingConcurrencySlot";
