//! The runs this store is executing, so their task-run writes can be queued instead of awaited.
//!
//! A task run belongs to the process that runs its flow run: nobody else moves it. While it is
//! live, its current record is kept here, a state proposed for it is checked against that
//! record, and the write is queued for the writer without waiting for the commit. The writer
//! keeps the order, so the flow run's own next awaited write (its final state at the latest)
//! commits after every queued write of its task runs: a flow call returns only when all its
//! states are on disk, and one fsync covers many task runs instead of one each.
//!
//! The writer still checks every queued write against the file. When another process did move
//! a live task run, the write is skipped and the run is forgotten here, so the next write for
//! it is awaited and meets the real state. A queued write that fails is reported by the next
//! task-run write, flow-run write or flush.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use uuid::Uuid;

use crate::state::State;
use crate::store::{StoreError, TaskRun};

/// The live runs, the failure of a queued write not yet reported, and how many queued writes
/// have not committed.
#[derive(Debug, Default)]
pub(super) struct Live {
    tracked: Mutex<Tracked>,
    queued: AtomicUsize,
}

#[derive(Debug, Default)]
struct Tracked {
    /// Flow runs known to be stored and not finished.
    flow_runs: HashSet<Uuid>,
    /// Unfinished task runs of those flow runs, as stored once the queue is written.
    task_runs: HashMap<Uuid, TaskRun>,
    failure: Option<StoreError>,
}

/// What to do with a task-run write.
pub(super) enum Route<T> {
    /// Queue it and answer now with this.
    Queue(T),
    /// The run is not live here: run the write on the writer and wait for it.
    Await,
}

impl Live {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.tracked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The failure of a queued write, reported once.
    pub(super) fn take_failure(&self) -> Result<(), StoreError> {
        self.lock().failure.take().map_or(Ok(()), Err)
    }

    /// Records that a queued write was not stored.
    pub(super) fn fail(&self, run: Uuid, error: StoreError) {
        let mut tracked = self.lock();
        tracked.task_runs.remove(&run);
        tracked.failure.get_or_insert(StoreError::Backend(format!(
            "an earlier write of task run {run} was not stored: {error}"
        )));
    }

    /// Forgets a task run another writer moved, so its next write is awaited.
    pub(super) fn diverged(&self, run: Uuid) {
        self.lock().task_runs.remove(&run);
    }

    /// A flow run was stored in `state`: live until it finishes (taking its task runs along).
    pub(super) fn flow_run_is(&self, id: Uuid, state: Option<&State>) {
        let mut tracked = self.lock();
        if state.is_some_and(State::is_final) {
            tracked.flow_runs.remove(&id);
            tracked.task_runs.retain(|_, r| r.flow_run_id != Some(id));
        } else {
            tracked.flow_runs.insert(id);
        }
    }

    /// Flow runs were deleted: trust none of them any more.
    pub(super) fn forget_flow_runs(&self) {
        let mut tracked = self.lock();
        tracked.flow_runs.clear();
        tracked.task_runs.clear();
    }

    /// A new task run (its first state already prepared): queued when its flow run is live.
    pub(super) fn create(&self, run: &TaskRun) -> Result<Route<()>, StoreError> {
        let mut tracked = self.lock();
        if tracked.task_runs.contains_key(&run.id) {
            return Err(StoreError::AlreadyExists {
                what: "task run",
                key: run.id.to_string(),
            });
        }
        if !run
            .flow_run_id
            .is_some_and(|f| tracked.flow_runs.contains(&f))
        {
            return Ok(Route::Await);
        }
        if !run.state.as_ref().is_some_and(State::is_final) {
            tracked.task_runs.insert(run.id, run.clone());
        }
        Ok(Route::Queue(()))
    }

    /// A compare-and-set on a live task run, decided here: `write` turns the run's record into
    /// what the writer must store and is only called when `expected` is its current state id.
    pub(super) fn set_state<W>(
        &self,
        id: Uuid,
        expected: Option<Uuid>,
        write: impl FnOnce(&mut TaskRun) -> Result<W, StoreError>,
    ) -> Result<Route<Result<W, Option<State>>>, StoreError> {
        let mut tracked = self.lock();
        let Some(run) = tracked.task_runs.get_mut(&id) else {
            return Ok(Route::Await);
        };
        if run.state.as_ref().map(State::id) != expected {
            return Ok(Route::Queue(Err(run.state.clone())));
        }
        let written = write(run)?;
        if run.state.as_ref().is_some_and(State::is_final) {
            tracked.task_runs.remove(&id);
        }
        Ok(Route::Queue(Ok(written)))
    }

    /// One more write queued.
    pub(super) fn queued(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    /// A queued write's transaction ended.
    pub(super) fn settled(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether queued writes are still uncommitted (reads must wait for them).
    pub(super) fn has_queued(&self) -> bool {
        self.queued.load(Ordering::Acquire) > 0
    }
}
