//! How a run row is written: its record, its current state's columns, and its state history
//! (a row per state), for flow runs and task runs alike.

use std::collections::HashMap;

use uuid::Uuid;

use super::db::{Fail, Q};
use super::{json, nanos, parse};
use crate::state::State;
use crate::store::bookkeeping::{RunTimes, first_state, record_state_times, strip, type_code};
pub(super) use crate::store::live::Encoded;
use crate::store::{FlowRun, SetState, StoreError, TaskRun};

/// The runs this store wrote last, as written, with their revisions: the next state write of
/// such a run (the engine's next step) skips reading it back. The revision check still guards
/// every write, so a stale entry (another process wrote the run since) only costs the read.
#[derive(Default)]
pub(super) struct Known {
    flow_runs: std::sync::Mutex<HashMap<Uuid, Read<FlowRun>>>,
    task_runs: std::sync::Mutex<HashMap<Uuid, Read<TaskRun>>>,
}

/// Entries beyond which the cache starts again (a process executing this many runs at once
/// reads them back instead).
const KNOWN_MAX: usize = 100_000;

impl Known {
    fn take<R: RunTable>(&self, id: Uuid) -> Option<Read<R>> {
        R::known(self)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id)
    }

    /// Remembers `run` at revision `rev`.
    pub(super) fn put<R: RunTable>(&self, run: &R, id: Uuid, rev: i64) {
        let mut map = R::known(self)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= KNOWN_MAX {
            map.clear();
        }
        map.insert(
            id,
            Read {
                run: run.clone(),
                rev,
            },
        );
    }
}

/// A table of runs with their state history: flow runs or task runs.
pub(super) trait RunTable:
    RunTimes + Clone + serde::Serialize + serde::de::DeserializeOwned
{
    /// This kind's entries of [`Known`].
    fn known(known: &Known) -> &std::sync::Mutex<HashMap<Uuid, Read<Self>>>;
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
    fn known(known: &Known) -> &std::sync::Mutex<HashMap<Uuid, Read<Self>>> {
        &known.flow_runs
    }
    const WHAT: &'static str = "flow run";
    const READ: &'static str = "SELECT body, rev FROM flow_runs WHERE id = $1";
    /// Also tells the listening processes (`$10`, a [`Wake`]) when the run may make runs
    /// claimable: always, or when it held a slot of a limited queue or deployment.
    const UPDATE: &'static str = "WITH u AS (UPDATE flow_runs SET body = $3, state_id = $4, state_type = $5, state_name = $7, expected_start = $8, lease_until = $9, rev = rev + 1 WHERE id = $1 AND rev = $2 RETURNING id, work_queue, deployment_id), s AS (INSERT INTO flow_run_states (run_id, body) SELECT id, $6 FROM u), n AS (SELECT pg_notify('orion_runs_due', '') FROM u WHERE $10::int = 2 OR ($10::int = 1 AND (EXISTS (SELECT 1 FROM work_queues q WHERE q.name = u.work_queue AND q.limited) OR EXISTS (SELECT 1 FROM deployments d WHERE d.id = u.deployment_id AND d.limited)))) SELECT (SELECT count(*) FROM u) + 0 * (SELECT count(*) FROM n)";
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
    fn known(known: &Known) -> &std::sync::Mutex<HashMap<Uuid, Read<Self>>> {
        &known.task_runs
    }
    const WHAT: &'static str = "task run";
    const READ: &'static str = "SELECT body, rev FROM task_runs WHERE id = $1";
    const UPDATE: &'static str = "WITH u AS (UPDATE task_runs SET body = $3, state_id = $4, state_type = $5, rev = rev + 1 WHERE id = $1 AND rev = $2 RETURNING id), s AS (INSERT INTO task_run_states (run_id, body) SELECT id, $6 FROM u) SELECT count(*) FROM u";
    const HISTORY: &'static str = "SELECT body FROM task_run_states WHERE run_id = $1 ORDER BY seq";
    fn note(&mut self, state: &State) -> Result<Option<(String, String)>, StoreError> {
        crate::store::bookkeeping::note_cache_key(self, state, json)
    }
}

/// The first state of a new run (see [`first_state`]), encoded for its history.
pub(super) fn first_state_of<R: RunTimes>(run: &mut R) -> Result<Option<String>, StoreError> {
    first_state(run).as_ref().map(json).transpose()
}

/// Whether a flow run's state write tells other processes that runs may be claimable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wake {
    /// No: the write makes nothing claimable (a claim, a run starting).
    Never = 0,
    /// When the run is in a queue or of a deployment with a concurrency limit: it finished,
    /// so its slot is free.
    IfLimited = 1,
    /// Yes: the run waits to be claimed (Scheduled).
    Always = 2,
}

impl Wake {
    /// What a flow run entering `state` tells.
    pub(super) fn entering(state: &State) -> Wake {
        if state.is_scheduled() {
            Wake::Always
        } else if state.is_final() {
            Wake::IfLimited
        } else {
            Wake::Never
        }
    }
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

/// Writes `run` (just moved into the state `entered`) over its row if the row is still at
/// revision `rev`; `false` when another writer changed it meanwhile (nothing written).
pub(super) async fn update<R: RunTable>(
    q: &impl Q,
    id: Uuid,
    rev: i64,
    run: &mut R,
    entered: &Encoded,
    wake: Wake,
) -> Result<bool, Fail> {
    let body = json(run)?;
    let state = run.state_slot().as_ref();
    let state_id = state.map(State::id);
    let kind = state.map(|s| type_code(s.state_type()));
    let row = match run.extra_columns() {
        Some((name, expected, lease)) => {
            let wake = wake as i32;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
                &id,
                &rev,
                &body,
                &state_id,
                &kind,
                &entered.state,
                &name,
                &expected,
                &lease,
                &wake,
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
/// itself is success. The run is taken from `known` when this store wrote it last.
pub(super) async fn set_state<R: RunTable>(
    q: &impl Q,
    known: &Known,
    id: Uuid,
    expected: Option<Uuid>,
    state: &State,
    retried: bool,
) -> Result<SetState, Fail> {
    let mut cached = if retried { None } else { known.take::<R>(id) };
    loop {
        let from_cache = cached.is_some();
        let found = match cached.take() {
            Some(read) => Some(read),
            None => read::<R>(q, id).await?,
        };
        let Some(Read { mut run, rev }) = found else {
            return Err(StoreError::NotFound { what: R::WHAT, id }.into());
        };
        let current = run.state_slot().clone();
        let current_id = current.as_ref().map(State::id);
        if retried && current_id == Some(state.id()) {
            return Ok(SetState::Written);
        }
        if current_id != expected {
            if from_cache {
                // Only the database says there is a conflict.
                continue;
            }
            return Ok(SetState::Conflict { current });
        }
        let entered = enter_state(&mut run, state.clone())?;
        if update(q, id, rev, &mut run, &entered, Wake::entering(state)).await? {
            if !state.is_final() {
                known.put(&run, id, rev + 1);
            }
            return Ok(SetState::Written);
        }
        // Another writer changed the row (a lease renewal): decide again on the new one.
    }
}
