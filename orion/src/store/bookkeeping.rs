//! Bookkeeping every backend does the same way: on a run's state write (run count, start
//! and end time, expected start, the lease of a finished run, no result data in histories),
//! and the checks and updates of claims, leases and work queues.

use jiff::Timestamp;
use uuid::Uuid;

use crate::state::{State, StateType};
use crate::store::{ClaimRun, ConcurrencyLimit, FlowRun, Lease, Renewal, TaskRun, WorkQueue};

/// The fields a state write updates on either kind of run.
pub(crate) trait RunTimes {
    fn state_slot(&mut self) -> &mut Option<State>;
    /// The kind's own bookkeeping on a state it enters.
    fn entered(&mut self, _state: &State) {}
    fn times(
        &mut self,
    ) -> (
        &mut u32,
        &mut Option<jiff::Timestamp>,
        &mut Option<jiff::Timestamp>,
    );
}

/// The two accessors, the same for both kinds of run.
macro_rules! run_fields {
    () => {
        fn state_slot(&mut self) -> &mut Option<State> {
            &mut self.state
        }
        fn times(
            &mut self,
        ) -> (
            &mut u32,
            &mut Option<jiff::Timestamp>,
            &mut Option<jiff::Timestamp>,
        ) {
            (
                &mut self.run_count,
                &mut self.start_time,
                &mut self.end_time,
            )
        }
    };
}

impl RunTimes for TaskRun {
    run_fields!();
}

impl RunTimes for FlowRun {
    run_fields!();
    /// A Scheduled state moves the expected start to its time (a retry, a rescheduled run);
    /// a final state ends the lease.
    fn entered(&mut self, state: &State) {
        if let Some(at) = state
            .details()
            .scheduled_time
            .filter(|_| state.is_scheduled())
        {
            self.expected_start_time = Some(at);
        }
        if state.is_final() {
            self.lease = None;
        }
    }
}

/// Bookkeeping every backend does on an accepted state write: run count, start and end time.
pub(crate) fn record_state_times<R: RunTimes>(run: &mut R, state: &State) {
    let (run_count, start, end) = run.times();
    match state.state_type() {
        StateType::Running => {
            *run_count += 1;
            start.get_or_insert(state.timestamp());
            *end = None;
        }
        t if t.is_terminal() => *end = Some(state.timestamp()),
        _ => {}
    }
    run.entered(state);
}

/// The first state of a new run: stored without data, with the run's times set from it.
pub(crate) fn first_state<R: RunTimes>(run: &mut R) -> Option<State> {
    let first = run.state_slot().take().map(strip)?;
    record_state_times(run, &first);
    *run.state_slot() = Some(first.clone());
    Some(first)
}

/// A task run entering `state` remembers its cache key; a Completed state with data is also
/// the cache entry to store (its key, and the state as `encode` writes it).
pub(crate) fn note_cache_key(
    run: &mut TaskRun,
    state: &State,
    encode: impl FnOnce(&State) -> Result<String, crate::store::StoreError>,
) -> Result<Option<(String, String)>, crate::store::StoreError> {
    let Some(key) = &state.details().cache_key else {
        return Ok(None);
    };
    run.cache_key = Some(key.clone());
    if state.is_completed() && state.data().is_some() {
        return Ok(Some((key.clone(), encode(state)?)));
    }
    Ok(None)
}

/// A record as the SQL stores keep it: JSON text.
pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<String, crate::store::StoreError> {
    serde_json::to_string(value)
        .map_err(|e| crate::store::StoreError::Backend(format!("cannot encode a record: {e}")))
}

/// A record read back from JSON text.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<T, crate::store::StoreError> {
    serde_json::from_str(text).map_err(|e| {
        crate::store::StoreError::Backend(format!("corrupt record in the database: {e}"))
    })
}

/// The history keeps no result data: results live in the cache index only.
pub(crate) fn strip(state: State) -> State {
    if state.data().is_some() {
        state.map_data(|_| None)
    } else {
        state
    }
}

/// Whether a run in this state counts against its queue's concurrency limit.
pub(crate) fn holds_a_slot(state: Option<&State>) -> bool {
    state.is_some_and(|s| {
        matches!(
            s.state_type(),
            StateType::Pending | StateType::Running | StateType::Cancelling
        )
    })
}

/// Whether `run` may be claimed as `want` under `lease`: still in the expected state, and no
/// one else holds a lease on it that is still live.
pub(crate) fn claimable(run: &FlowRun, want: &ClaimRun, lease: &Lease) -> bool {
    let leased_elsewhere = run
        .lease
        .as_ref()
        .is_some_and(|l| l.owner != lease.owner && l.expires > lease.renewed);
    run.state.as_ref().map(State::id) == Some(want.expected) && !leased_elsewhere
}

/// Extends `owner`'s lease on `run` (if it holds one) and says what the renewal found.
pub(crate) fn renew(run: &mut FlowRun, owner: Uuid, expires: Timestamp, now: Timestamp) -> Renewal {
    let held = match &mut run.lease {
        Some(lease) if lease.owner == owner => {
            lease.expires = expires;
            lease.renewed = now;
            true
        }
        _ => false,
    };
    Renewal {
        id: run.id,
        held,
        state: run.state.clone(),
    }
}

/// An update of a stored work queue keeps its id, creation time and poll status.
pub(crate) fn keep_identity(queue: &mut WorkQueue, stored: &WorkQueue) {
    queue.id = stored.id;
    queue.created = stored.created;
    queue.last_polled = stored.last_polled;
    queue.last_polled_by.clone_from(&stored.last_polled_by);
}

/// An update of a stored concurrency limit keeps its id and creation time.
pub(crate) fn keep_limit_identity(limit: &mut ConcurrencyLimit, stored: &ConcurrencyLimit) {
    limit.id = stored.id;
    limit.created = stored.created;
}

/// Work queues in an agent's order: by priority, then name.
pub(crate) fn sort_queues(queues: &mut [WorkQueue]) {
    queues.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
}

/// A state type as stored (the JSON spelling, `"COMPLETED"`).
pub(crate) const fn type_code(kind: crate::state::StateType) -> &'static str {
    use crate::state::StateType as T;
    match kind {
        T::Scheduled => "SCHEDULED",
        T::Pending => "PENDING",
        T::Running => "RUNNING",
        T::Completed => "COMPLETED",
        T::Failed => "FAILED",
        T::Cancelled => "CANCELLED",
        T::Crashed => "CRASHED",
        T::Paused => "PAUSED",
        T::Cancelling => "CANCELLING",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn type_codes_are_the_json_spelling() {
        for kind in crate::state::StateType::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                super::type_code(kind),
                "{kind:?}"
            );
        }
    }
}
