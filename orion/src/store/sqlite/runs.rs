//! How a run row is written: its record, its current state's id and its history of states,
//! for flow runs and task runs alike.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{backend, by_id, exec, json, parse};
use crate::state::State;
pub(super) use crate::store::bookkeeping::first_state;
use crate::store::bookkeeping::{RunTimes, record_state_times, strip, type_code};
pub(super) use crate::store::live::Encoded;
use crate::store::{FlowRun, SetState, StoreError, TaskRun};

/// The statement that writes a run over its row in `$table`; see [`update_run`]. The
/// history is always our own compact array, so appending is text surgery, not a parse.
/// Flow runs also keep their expected start and lease expiry in columns (`$extra`).
macro_rules! update_sql {
    ($table:literal, $extra:literal) => {
        concat!(
            "UPDATE ",
            $table,
            " SET body = ?2, state_id = ?3, state_type = ?6, state_name = ?7",
            $extra,
            ", history = CASE history WHEN '[]' THEN '[' || ?5 || ']' ELSE substr(history, 1, length(history) - 1) || ',' || ?5 || ']' END WHERE id = ?1 AND state_id IS ?4"
        )
    };
}

/// A time as its column keeps it: nanoseconds since the epoch.
pub(super) fn nanos(t: jiff::Timestamp) -> Option<i64> {
    i64::try_from(t.as_nanosecond()).ok()
}

/// A table of runs with their state history: flow runs or task runs.
pub(super) trait RunTable: RunTimes + Serialize + DeserializeOwned {
    const TABLE: &'static str;
    const WHAT: &'static str;
    /// Its [`update_sql`] statement, written out once (a write must not format it each time).
    const UPDATE: &'static str;
    /// This kind of run's own bookkeeping on a state it enters; a cache entry to store with it.
    fn note(&mut self, _state: &State) -> Result<Option<(String, String)>, StoreError> {
        Ok(None)
    }
    /// The values of its extra columns (`?8`, `?9` of [`RunTable::UPDATE`]), if it has any.
    fn extra_columns(&self) -> Option<[Option<i64>; 2]> {
        None
    }
}

impl RunTable for FlowRun {
    const TABLE: &'static str = "flow_runs";
    const WHAT: &'static str = "flow run";
    const UPDATE: &'static str =
        update_sql!("flow_runs", ", expected_start = ?8, lease_until = ?9");
    fn extra_columns(&self) -> Option<[Option<i64>; 2]> {
        Some([
            self.expected_start_time.and_then(nanos),
            self.lease.as_ref().and_then(|l| nanos(l.expires)),
        ])
    }
}

impl RunTable for TaskRun {
    const TABLE: &'static str = "task_runs";
    const WHAT: &'static str = "task run";
    const UPDATE: &'static str = update_sql!("task_runs", "");
    fn note(&mut self, state: &State) -> Result<Option<(String, String)>, StoreError> {
        crate::store::bookkeeping::note_cache_key(self, state, json)
    }
}

/// Moves `run` into `state` (run count, times, the kind's bookkeeping; data is not kept) and
/// encodes the state.
pub(super) fn enter_state<R: RunTable>(run: &mut R, state: State) -> Result<Encoded, StoreError> {
    let cache = run.note(&state)?;
    let stored = strip(state);
    record_state_times(run, &stored);
    let encoded = json(&stored)?;
    *run.state_slot() = Some(stored);
    Ok(Encoded {
        state: encoded,
        cache,
    })
}

/// A run's current state as its columns keep it: id, type (as in the JSON) and name.
pub(super) struct StateColumns {
    pub(super) id: Option<String>,
    pub(super) kind: Option<&'static str>,
    pub(super) name: Option<String>,
}

/// The state columns of a run.
pub(super) fn state_columns<R: RunTable>(run: &mut R) -> StateColumns {
    let state = run.state_slot().as_ref();
    StateColumns {
        id: state.map(|s| s.id().to_string()),
        kind: state.map(|s| type_code(s.state_type())),
        name: state.map(|s| s.name().to_owned()),
    }
}

/// A run's history as stored: a JSON array of the encoded states.
pub(super) fn history(states: &[String]) -> String {
    format!("[{}]", states.join(","))
}

/// Writes `run` over its row, appending `states` (encoded, comma-separated) to its history,
/// if the row's state id is still `expected`; `false` (nothing written) when it is not.
pub(super) fn update_run<R: RunTable>(
    conn: &Connection,
    run: &mut R,
    id: &str,
    expected: Option<Uuid>,
    states: &str,
) -> Result<bool, StoreError> {
    let expected = expected.map(|e| e.to_string());
    let body = json(run)?;
    let state = state_columns(run);
    let written = match run.extra_columns() {
        Some([a, b]) => exec(
            conn,
            R::UPDATE,
            params![
                id, body, state.id, expected, states, state.kind, state.name, a, b
            ],
        )?,
        None => exec(
            conn,
            R::UPDATE,
            params![id, body, state.id, expected, states, state.kind, state.name],
        )?,
    };
    Ok(written > 0)
}

/// Stores cache entries made by Completed states.
pub(super) fn store_cache<'a>(
    conn: &Connection,
    entries: impl IntoIterator<Item = &'a (String, String)>,
) -> Result<(), StoreError> {
    for (key, state) in entries {
        exec(
            conn,
            "INSERT OR REPLACE INTO cache (key, body) VALUES (?1, ?2)",
            params![key, state],
        )?;
    }
    Ok(())
}

/// A run's state history, oldest first.
pub(super) fn read_history<R: RunTable>(
    conn: &Connection,
    id: Uuid,
) -> Result<Vec<State>, StoreError> {
    let sql = format!("SELECT history FROM {} WHERE id = ?1", R::TABLE);
    let history: Option<String> = conn
        .prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([id.to_string()], |r| r.get(0)).optional())
        .map_err(backend)?;
    parse(&history.ok_or(StoreError::NotFound { what: R::WHAT, id })?)
}

/// A compare-and-set state write, decided on the writer against the stored run.
pub(super) fn set_state<R: RunTable>(
    conn: &Connection,
    id: Uuid,
    expected: Option<Uuid>,
    state: State,
) -> Result<SetState, StoreError> {
    let mut run: R =
        by_id(conn, R::TABLE, id)?.ok_or(StoreError::NotFound { what: R::WHAT, id })?;
    let current = run.state_slot().clone();
    if current.as_ref().map(State::id) != expected {
        return Ok(SetState::Conflict { current });
    }
    let entered = enter_state(&mut run, state)?;
    update_run(conn, &mut run, &id.to_string(), expected, &entered.state)?;
    store_cache(conn, &entered.cache)?;
    Ok(SetState::Written)
}
