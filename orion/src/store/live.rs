//! The runs a store is executing, so their task-run writes can be queued instead of awaited
//! (the SQLite and PostgreSQL stores: the writer below is SQLite's writer thread, or
//! PostgreSQL's write-behind task).
//!
//! A task run belongs to the process that runs its flow run: nobody else moves it. While it is
//! live, its record is kept here as the file will have it, a state proposed for it is checked
//! against that record, and the caller is answered at once. The states gather here until the
//! writer takes them: one job per run writes everything gathered since its last job (the
//! record once, however many states it went through), so a task run that starts and ends
//! while the writer is busy costs one row write instead of three.
//!
//! Jobs keep their order in the writer's queue, so the flow run's own next awaited write (its
//! final state at the latest) commits after every write of its task runs: a flow call returns
//! only when all its states are on disk, and one fsync covers many task runs.
//!
//! The writer still checks each update against the file. When another process did move a live
//! task run, the update is skipped and the run is forgotten here, so the next write for it is
//! awaited and meets the real state. A queued write that fails is reported by the next
//! task-run write, flow-run write or flush.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use uuid::Uuid;

use crate::state::State;
use crate::store::{StoreError, TaskRun};

/// A state a run entered, encoded for its history, with the cache entry it makes.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub(crate) state: String,
    pub(crate) cache: Option<(String, String)>,
}

/// The live runs, the failure of a queued write not yet reported, and how many jobs are
/// queued and not yet committed.
#[derive(Debug, Default)]
pub(crate) struct Live {
    tracked: Mutex<Tracked>,
    queued: AtomicUsize,
    /// Woken when the queue shrinks to [`LOW_WATER`].
    room: tokio::sync::Notify,
}

/// Queued jobs beyond which a new queued write waits for the writer (each job is one task
/// run's writes: about a tenth of a second of the writer's work).
const HIGH_WATER: usize = 4096;
/// Queued jobs at which the waiting writes go on.
const LOW_WATER: usize = 1024;

#[derive(Debug, Default)]
struct Tracked {
    /// Flow runs known to be stored and not finished, with the task runs created in them here.
    flow_runs: HashMap<Uuid, Vec<Uuid>>,
    /// The ids of those task runs, finished or not: a new one with a taken id is refused at
    /// once rather than by the writer later.
    created: HashSet<Uuid>,
    task_runs: HashMap<Uuid, LiveRun>,
    failure: Option<StoreError>,
}

#[derive(Debug)]
struct LiveRun {
    /// The record as it is once everything gathered is written.
    record: TaskRun,
    /// Whether the writer has taken its insert.
    inserted: bool,
    /// The current state id of the row the writer has written (what an update compares).
    written_state: Option<Uuid>,
    /// Encoded states not yet taken by the writer, with cache entries to store.
    states: Vec<String>,
    cache: Vec<(String, String)>,
    /// Whether a job for it waits in the writer's queue.
    queued: bool,
    /// It reached a final state: dropped once the writer has taken the rest.
    finished: bool,
}

/// What the writer must store for one run: taken from its gathered writes.
pub(crate) struct Taken {
    /// The record to write (insert or update).
    pub(crate) record: TaskRun,
    /// `None` to insert the row; otherwise update it if its state id is still this.
    pub(crate) update_from: Option<Option<Uuid>>,
    /// The states to append to its history.
    pub(crate) states: Vec<String>,
    pub(crate) cache: Vec<(String, String)>,
}

/// What to do with a task-run write.
pub(crate) enum Route<T, B = ()> {
    /// Answer now with this; queue a job for the run when `job` is true.
    Queue { answer: T, job: bool },
    /// The run is not live here: run the write on the writer and wait for it (with this back).
    Await(B),
}

impl Tracked {
    fn forget_flow_run(&mut self, id: Uuid) {
        for task in self.flow_runs.remove(&id).unwrap_or_default() {
            self.created.remove(&task);
            if let Some(run) = self.task_runs.get_mut(&task) {
                // Still queued: dropped once the writer has taken it.
                run.finished = true;
                if !run.queued {
                    self.task_runs.remove(&task);
                }
            }
        }
    }
}

impl Live {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.tracked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The failure of a queued write, reported once.
    pub(crate) fn take_failure(&self) -> Result<(), StoreError> {
        self.lock().failure.take().map_or(Ok(()), Err)
    }

    /// Records that a queued write was not stored.
    pub(crate) fn fail(&self, run: Uuid, error: &StoreError) {
        let mut tracked = self.lock();
        tracked.task_runs.remove(&run);
        if let StoreError::NotFound {
            what: "flow run",
            id,
        } = error
        {
            // Gone from the file: its next task runs are created the awaited way, and refused.
            tracked.forget_flow_run(*id);
        }
        tracked.failure.get_or_insert(StoreError::Backend(format!(
            "an earlier write of task run {run} was not stored: {error}"
        )));
    }

    /// Forgets a task run another writer moved, so its next write is awaited.
    pub(crate) fn diverged(&self, run: Uuid) {
        self.lock().task_runs.remove(&run);
    }

    /// A flow run was stored, in a final state or not: live until it finishes, taking its task
    /// runs along.
    pub(crate) fn flow_run_stored(&self, id: Uuid, finished: bool) {
        if finished {
            self.flow_run_gone(id);
        } else {
            self.lock().flow_runs.entry(id).or_default();
        }
    }

    /// What a state write of flow run `id` (into a final state when `finished`) found.
    pub(crate) fn flow_run_written(
        &self,
        id: Uuid,
        finished: bool,
        written: &Result<crate::store::SetState, StoreError>,
    ) {
        match written {
            Ok(crate::store::SetState::Written) => self.flow_run_stored(id, finished),
            // Finished or removed by another process: no longer live here.
            Ok(crate::store::SetState::Conflict {
                current: Some(current),
            }) if current.is_final() => self.flow_run_gone(id),
            Err(StoreError::NotFound { .. }) => self.flow_run_gone(id),
            _ => {}
        }
    }

    /// A flow run finished or no longer exists: neither it nor its task runs are live.
    pub(crate) fn flow_run_gone(&self, id: Uuid) {
        self.lock().forget_flow_run(id);
    }

    /// Flow runs were deleted: none of them is known to exist any more.
    pub(crate) fn forget_flow_runs(&self) {
        let mut tracked = self.lock();
        tracked.flow_runs.clear();
        tracked.created.clear();
    }

    /// A new task run, its first state prepared and encoded: live when its flow run is
    /// (otherwise the encoded state is handed back).
    pub(crate) fn create(
        &self,
        run: &TaskRun,
        first: Option<String>,
    ) -> Result<Route<(), Option<String>>, StoreError> {
        let mut tracked = self.lock();
        if tracked.created.contains(&run.id) || tracked.task_runs.contains_key(&run.id) {
            return Err(StoreError::AlreadyExists {
                what: "task run",
                key: run.id.to_string(),
            });
        }
        let Some(siblings) = run.flow_run_id.and_then(|f| tracked.flow_runs.get_mut(&f)) else {
            return Ok(Route::Await(first));
        };
        siblings.push(run.id);
        tracked.created.insert(run.id);
        let live = LiveRun {
            record: run.clone(),
            inserted: false,
            written_state: None,
            states: first.into_iter().collect(),
            cache: Vec::new(),
            queued: true,
            finished: run.state.as_ref().is_some_and(State::is_final),
        };
        tracked.task_runs.insert(run.id, live);
        Ok(Route::Queue {
            answer: (),
            job: true,
        })
    }

    /// A compare-and-set on a live task run, decided here: `enter` moves the record into
    /// `state` and encodes it; it is only called when `expected` is the current state id.
    /// Answers the current state on a conflict; hands `state` back when the run is not live.
    pub(crate) fn set_state(
        &self,
        id: Uuid,
        expected: Option<Uuid>,
        state: State,
        enter: impl FnOnce(&mut TaskRun, State) -> Result<Encoded, StoreError>,
    ) -> Result<Route<Result<(), Option<State>>, State>, StoreError> {
        let mut tracked = self.lock();
        let Some(run) = tracked.task_runs.get_mut(&id).filter(|r| !r.finished) else {
            return Ok(Route::Await(state));
        };
        if run.record.state.as_ref().map(State::id) != expected {
            return Ok(Route::Queue {
                answer: Err(run.record.state.clone()),
                job: false,
            });
        }
        let encoded = enter(&mut run.record, state)?;
        run.states.push(encoded.state);
        run.cache.extend(encoded.cache);
        run.finished = run.record.state.as_ref().is_some_and(State::is_final);
        let job = !std::mem::replace(&mut run.queued, true);
        Ok(Route::Queue {
            answer: Ok(()),
            job,
        })
    }

    /// Hands the writer what run `id` gathered since its last job (None when it was dropped).
    pub(crate) fn take(&self, id: Uuid) -> Option<Taken> {
        let mut tracked = self.lock();
        let run = tracked.task_runs.get_mut(&id)?;
        run.queued = false;
        let states = std::mem::take(&mut run.states);
        let taken = Taken {
            record: run.record.clone(),
            update_from: run.inserted.then_some(run.written_state),
            cache: std::mem::take(&mut run.cache),
            states,
        };
        run.inserted = true;
        run.written_state = run.record.state.as_ref().map(State::id);
        if run.finished {
            tracked.task_runs.remove(&id);
        }
        Some(taken)
    }

    /// One more job queued.
    pub(crate) fn queued(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    /// A queued job's transaction ended.
    pub(crate) fn settled(&self) {
        if self.queued.fetch_sub(1, Ordering::AcqRel) == LOW_WATER + 1 {
            self.room.notify_waiters();
        }
    }

    /// Whether the writer is so far behind that new queued writes should wait.
    pub(crate) fn backlogged(&self) -> bool {
        self.queued.load(Ordering::Acquire) > HIGH_WATER
    }

    /// Resolves once the queue is down to [`LOW_WATER`].
    pub(crate) async fn room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.queued.load(Ordering::Acquire) <= LOW_WATER {
                return;
            }
            notified.await;
        }
    }

    /// How many queued jobs have not committed.
    pub(crate) fn queued_count(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Whether queued jobs are still uncommitted (reads must wait for them).
    pub(crate) fn has_queued(&self) -> bool {
        self.queued.load(Ordering::Acquire) > 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{HIGH_WATER, LOW_WATER, Live, Route};
    use crate::state::State;
    use crate::store::TaskRun;

    /// Moves a record into a state, as a backend's writer would.
    fn enter(run: &mut TaskRun, state: State) -> Result<super::Encoded, crate::store::StoreError> {
        let stored = crate::store::bookkeeping::strip(state);
        crate::store::bookkeeping::record_state_times(run, &stored);
        let encoded = serde_json::to_string(&stored).unwrap();
        run.state = Some(stored);
        Ok(super::Encoded {
            state: encoded,
            cache: None,
        })
    }

    #[test]
    fn writes_gather_into_one_job_until_the_writer_takes_them() {
        let live = Live::default();
        let flow_run = crate::ids::new_id();
        live.flow_run_stored(flow_run, false);
        let mut run = TaskRun::new("t", Arc::from("t"), 0);
        run.flow_run_id = Some(flow_run);
        run.state = Some(State::pending());
        let pending = run.state.as_ref().map(State::id);
        assert!(matches!(
            live.create(&run, Some("p".into())).unwrap(),
            Route::Queue { job: true, .. }
        ));
        let running = State::running();
        let running_id = running.id();
        let route = live.set_state(run.id, pending, running, enter).unwrap();
        assert!(matches!(
            route,
            Route::Queue {
                answer: Ok(()),
                job: false
            }
        ));

        let taken = live.take(run.id).unwrap();
        assert!(taken.update_from.is_none(), "not inserted yet: one insert");
        assert_eq!(taken.states.len(), 2);
        assert_eq!(taken.record.run_count, 1);

        let route = live
            .set_state(run.id, Some(running_id), State::completed(), enter)
            .unwrap();
        assert!(matches!(
            route,
            Route::Queue {
                answer: Ok(()),
                job: true
            }
        ));
        let taken = live.take(run.id).unwrap();
        assert_eq!(taken.update_from, Some(Some(running_id)));
        assert_eq!(taken.states.len(), 1);
        // Finished and taken: no longer live, so a later write is awaited.
        assert!(live.take(run.id).is_none());
        let late = live
            .set_state(run.id, None, State::running(), enter)
            .unwrap();
        assert!(matches!(late, Route::Await(s) if s.is_running()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlogged_queue_holds_writers_until_it_drains_to_the_low_mark() {
        let live = Arc::new(Live::default());
        for _ in 0..=HIGH_WATER {
            live.queued();
        }
        assert!(live.backlogged());
        let waiter = tokio::spawn({
            let live = Arc::clone(&live);
            async move { live.room().await }
        });
        while live.queued_count() > LOW_WATER + 1 {
            live.settled();
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "went on above the low mark");
        live.settled();
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("still held at the low mark")
            .unwrap();
        assert!(!live.backlogged());
    }
}
