//! Runs as the API shows them: the stored record with Prefect's top-level `state_id`,
//! `state_type` and `state_name` beside it, so a client written against Prefect's API finds
//! a run's state where it looks for it.

use serde::Serialize;
use uuid::Uuid;

use crate::state::{State, StateType};
use crate::store::bookkeeping::RunTimes;

/// A run with its state's id, type and name at the top level.
#[derive(Serialize)]
pub(crate) struct Shown<R> {
    #[serde(flatten)]
    run: R,
    state_id: Option<Uuid>,
    state_type: Option<StateType>,
    state_name: Option<String>,
}

pub(crate) fn shown<R: RunTimes>(mut run: R) -> Shown<R> {
    let state = run.state_slot().as_ref();
    Shown {
        state_id: state.map(State::id),
        state_type: state.map(State::state_type),
        state_name: state.map(|s| s.name().to_owned()),
        run,
    }
}

pub(crate) fn all_shown<R: RunTimes>(runs: Vec<R>) -> Vec<Shown<R>> {
    runs.into_iter().map(shown).collect()
}
