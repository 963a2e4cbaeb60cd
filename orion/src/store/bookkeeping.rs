//! Bookkeeping every backend does on a run's state write, so each does it the same way:
//! run count, start and end time, expected start, the lease of a finished run, no result data
//! in histories.

use crate::state::{State, StateType};
use crate::store::{FlowRun, TaskRun};

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

/// The history keeps no result data: results live in the cache index only.
pub(crate) fn strip(state: State) -> State {
    if state.data().is_some() {
        state.map_data(|_| None)
    } else {
        state
    }
}
