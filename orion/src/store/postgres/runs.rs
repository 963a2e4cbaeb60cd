//! How a run row is written: its record, its current state's columns, and its state history
//! (a row per state), for flow runs and task runs alike.

use uuid::Uuid;

use super::db::{Fail, Q};
use super::{json, nanos, parse};
use crate::state::State;
use crate::store::bookkeeping::{RunTimes, first_state, record_state_times, strip, type_code};
use crate::store::{FlowRun, SetState, StoreError, TaskRun};

/// A table of runs with their state history: flow runs or task runs.
pub(super) trait RunTable:
    RunTimes + serde::Serialize + serde::de::DeserializeOwned
{
    const WHAT: &'static str;
    /// The run and its revision, by id.
    const READ: &'static str;
    /// Writes the run over its row if the row's revision is still `$2`, appending a state to
    /// its history; answers the number of rows written.
    const UPDATE: &'static str;
    /// Its history, oldest first.
    const HISTORY: &'static str;
    /// Remembers what a state it enters says of it; a cache entry to store with it.
    fn note(&mut self, _state: &State) -> Result<Option<(String, String)>, StoreError> {
        Ok(None)
    }
    /// Its state name, expected start and lease expiry (`$7` to `$9` of
    /// [`RunTable::UPDATE`]), for a table that keeps them in columns.
    fn extra_columns(&self) -> Option<(Option<String>, Option<i64>, Option<i64>)> {
        None
    }
}

impl RunTable for FlowRun {
    const WHAT: &'static str = "flow run";
    const READ: &'static str = "SELECT body, rev FROM flow_runs WHERE id = $1";
    const UPDATE: &'static str = "WITH u AS (UPDATE flow_runs SET body = $3, state_id = $4, state_type = $5, state_name = $7, expected_start = $8, lease_until = $9, rev = rev + 1 WHERE id = $1 AND rev = $2 RETURNING id), s AS (INSERT INTO flow_run_states (run_id, body) SELECT id, $6 FROM u) SELECT count(*) FROM u";
    const HISTORY: &'static str = "SELECT body FROM flow_run_states WHERE run_id = $1 ORDER BY seq";
    fn extra_columns(&self) -> Option<(Option<String>, Option<i64>, Option<i64>)> {
        Some((
            self.state.as_ref().map(|s| s.name().to_owned()),
            self.expected_start_time.map(nanos),
            self.lease.as_ref().map(|l| nanos(l.expires)),
        ))
    }
}

impl RunTable for TaskRun {
    const WHAT: &'static str = "task run";
    const READ: &'static str = "SELECT body, rev FROM task_runs WHERE id = $1";
    const UPDATE: &'static str = "WITH u AS (UPDATE task_runs SET body = $3, state_id = $4, state_type = $5, rev = rev + 1 WHERE id = $1 AND rev = $2 RETURNING id), s AS (INSERT INTO task_run_states (run_id, body) SELECT id, $6 FROM u) SELECT count(*) FROM u";
    const HISTORY: &'static str = "SELECT body FROM task_run_states WHERE run_id = $1 ORDER BY seq";
    /// Remembers the cache key; a Completed state with data is also the cache entry.
    fn note(&mut self, state: &State) -> Result<Option<(String, String)>, StoreError> {
        let Some(key) = &state.details().cache_key else {
            return Ok(None);
        };
        self.cache_key = Some(key.clone());
        if state.is_completed() && state.data().is_some() {
            return Ok(Some((key.clone(), json(state)?)));
        }
        Ok(None)
    }
}

/// The first state of a new run (see [`first_state`]), encoded for its history.
pub(super) fn first_state_of<R: RunTimes>(run: &mut R) -> Result<Option<String>, StoreError> {
    first_state(run).as_ref().map(json).transpose()
}

/// A run read with its revision.
pub(super) struct Read<R> {
    pub(super) run: R,
    pub(super) rev: i64,
}

/// A run and its revision, by id.
pub(super) async fn read<R: RunTable>(q: &impl Q, id: Uuid) -> Result<Option<Read<R>>, Fail> {
    let Some(row) = q.opt(R::READ, &[&id]).await? else {
        return Ok(None);
    };
    Ok(Some(Read {
        run: parse(row.try_get::<_, &str>(0)?)?,
        rev: row.try_get(1)?,
    }))
}

/// A state a run entered, encoded, with the cache entry it makes.
pub(super) struct Entered {
    pub(super) state: String,
    pub(super) cache: Option<(String, String)>,
}

/// Moves `run` into `state` (run count, times, the kind's bookkeeping; data is not kept) and
/// encodes the state.
pub(super) fn enter_state<R: RunTable>(run: &mut R, state: State) -> Result<Entered, StoreError> {
    let cache = run.note(&state)?;
    let stored = strip(state);
    record_state_times(run, &stored);
    let encoded = json(&stored)?;
    *run.state_slot() = Some(stored);
    Ok(Entered {
        state: encoded,
        cache,
    })
}

/// Writes `run` (just moved into the state `entered`) over its row if the row is still at
/// revision `rev`; `false` when another writer changed it meanwhile (nothing written).
pub(super) async fn update<R: RunTable>(
    q: &impl Q,
    id: Uuid,
    rev: i64,
    run: &mut R,
    entered: &Entered,
) -> Result<bool, Fail> {
    let body = json(run)?;
    let state = run.state_slot().as_ref();
    let state_id = state.map(State::id);
    let kind = state.map(|s| type_code(s.state_type()));
    let row = match run.extra_columns() {
        Some((name, expected, lease)) => {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 9] = [
                &id,
                &rev,
                &body,
                &state_id,
                &kind,
                &entered.state,
                &name,
                &expected,
                &lease,
            ];
            q.one(R::UPDATE, &params).await?
        }
        None => {
            q.one(
                R::UPDATE,
                &[&id, &rev, &body, &state_id, &kind, &entered.state],
            )
            .await?
        }
    };
    let written: i64 = row.try_get(0)?;
    if written > 0 {
        store_cache(q, entered.cache.as_ref()).await?;
    }
    Ok(written > 0)
}

/// Stores the cache entry a Completed state makes.
pub(super) async fn store_cache(q: &impl Q, entry: Option<&(String, String)>) -> Result<(), Fail> {
    if let Some((key, state)) = entry {
        q.exec(
            "INSERT INTO cache (key, body) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET body = EXCLUDED.body",
            &[key, state],
        )
        .await?;
    }
    Ok(())
}

/// A run's state history, oldest first.
pub(super) async fn history<R: RunTable>(q: &impl Q, id: Uuid) -> Result<Vec<State>, Fail> {
    let states: Vec<State> = q.bodies(R::HISTORY, &[&id]).await?;
    if states.is_empty() && read::<R>(q, id).await?.is_none() {
        return Err(StoreError::NotFound { what: R::WHAT, id }.into());
    }
    Ok(states)
}

/// A compare-and-set state write. `retried`: an earlier attempt may have committed it
/// already (its connection broke before the answer came), so finding the run in `state`
/// itself is success.
pub(super) async fn set_state<R: RunTable>(
    q: &impl Q,
    id: Uuid,
    expected: Option<Uuid>,
    state: &State,
    retried: bool,
) -> Result<SetState, Fail> {
    loop {
        let Some(Read { mut run, rev }) = read::<R>(q, id).await? else {
            return Err(StoreError::NotFound { what: R::WHAT, id }.into());
        };
        let current = run.state_slot().clone();
        let current_id = current.as_ref().map(State::id);
        if retried && current_id == Some(state.id()) {
            return Ok(SetState::Written);
        }
        if current_id != expected {
            return Ok(SetState::Conflict { current });
        }
        let entered = enter_state(&mut run, state.clone())?;
        if update(q, id, rev, &mut run, &entered).await? {
            return Ok(SetState::Written);
        }
        // Another writer changed the row (a lease renewal): decide again on the new one.
    }
}
