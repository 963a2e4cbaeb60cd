//! Write-behind for task runs over HTTP (what `store/live.rs` does for the SQL stores).
//!
//! While a flow run executes in this process, nobody else moves its task runs: their creates
//! and state changes are answered here at once — each state change checked against the state
//! this process last gave the run — and sent behind by one task, many per request, as one
//! `batch` call that the server runs in order. Every other call waits until the writes queued
//! before it are answered, so a caller reads its own writes and a flow run never finishes
//! before its task runs are stored. A queued write the server refused (or could not be sent)
//! is reported by the next task-run write, flow-run write or flush; a task run another process
//! did move is no longer answered here, so its next write meets the real state.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, mpsc, oneshot};
use uuid::Uuid;

use super::Transport;
use crate::state::State;
use crate::store::bookkeeping::first_state;
use crate::store::protocol::{Outcome, StoreCall};
use crate::store::{SetState, StoreError, TaskRun};

/// Writes queued and not yet answered beyond which a new one waits for the sender.
const HIGH_WATER: usize = 4096;
/// Queued writes at which the waiting ones go on.
const LOW_WATER: usize = 1024;
/// Calls at most in one request.
const MAX_CALLS: usize = 512;
/// Bytes of calls beyond which a request is sent and the rest go in the next one (well under
/// the server's default body limit of 1 MiB).
const MAX_BYTES: usize = 256 * 1024;

/// The store's end: what is live here, and the sender's queue.
#[derive(Debug)]
pub(super) struct Behind {
    shared: Arc<Shared>,
    jobs: mpsc::UnboundedSender<Job>,
}

/// What the store and the sender share.
#[derive(Debug, Default)]
struct Shared {
    tracked: Mutex<Tracked>,
    /// Woken when the queue shrinks to [`LOW_WATER`].
    room: Notify,
}

#[derive(Debug, Default)]
struct Tracked {
    /// Flow runs executing here, with the task runs created in them here (finished or not:
    /// a second create with one of their ids is refused at once).
    flow_runs: HashMap<Uuid, HashSet<Uuid>>,
    /// Task runs answered here: the id of their state once everything queued is written.
    task_runs: HashMap<Uuid, Option<Uuid>>,
    /// Writes queued and not yet answered by the server.
    queued: usize,
    /// The first failure of a queued write, not yet reported.
    failure: Option<StoreError>,
}

enum Job {
    /// A task run's write, encoded; `state_write`: a state change (answered by a
    /// [`SetState`]), else a create.
    Write {
        task_run: Uuid,
        state_write: bool,
        call: String,
    },
    /// Answer once everything queued before has been answered.
    Barrier(oneshot::Sender<()>),
}

fn closing() -> StoreError {
    StoreError::Backend("the remote store is shutting down".to_owned())
}

impl Behind {
    /// Starts the sender, which ends once the store (every clone) is dropped and what was
    /// queued is sent.
    pub(super) fn start(transport: Arc<Transport>) -> Behind {
        let shared = Arc::new(Shared::default());
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(send(transport, shared.clone(), queue));
        Behind { shared, jobs }
    }

    fn lock(&self) -> MutexGuard<'_, Tracked> {
        self.shared.lock()
    }

    /// `call` (a write of `task_run`) as the sender takes it.
    fn encode(task_run: Uuid, call: &StoreCall) -> Result<Job, StoreError> {
        let encoded = serde_json::to_string(call)
            .map_err(|e| StoreError::Backend(format!("encoding a task-run write: {e}")))?;
        Ok(Job::Write {
            task_run,
            state_write: matches!(call, StoreCall::SetTaskRunState { .. }),
            call: encoded,
        })
    }

    /// Queues `job`, under the lock that just recorded what it does (so the queue's order
    /// is the order of the answers given here).
    fn queue(&self, t: &mut Tracked, job: Job) -> Result<(), StoreError> {
        self.jobs.send(job).map_err(|_| closing())?;
        t.queued += 1;
        Ok(())
    }

    /// The failure of a queued write, reported once.
    pub(super) fn take_failure(&self) -> Result<(), StoreError> {
        self.lock().failure.take().map_or(Ok(()), Err)
    }

    /// Queues the create of `run` when its flow run executes here, answering with the
    /// record as the server stores it; `None`: the create is to be awaited.
    pub(super) fn create(&self, run: &TaskRun) -> Result<Option<TaskRun>, StoreError> {
        let here = |t: &Tracked| {
            run.flow_run_id
                .is_some_and(|f| t.flow_runs.contains_key(&f))
        };
        if !here(&self.lock()) {
            return Ok(None);
        }
        let job = Self::encode(run.id, &StoreCall::CreateTaskRun { run: run.clone() })?;
        let mut stored = run.clone();
        first_state(&mut stored);
        let mut t = self.lock();
        let Some(created) = run.flow_run_id.and_then(|f| t.flow_runs.get_mut(&f)) else {
            // Finished meanwhile: the create is awaited, and meets the real state.
            return Ok(None);
        };
        if !created.insert(run.id) {
            return Err(StoreError::AlreadyExists {
                what: "task run",
                key: run.id.to_string(),
            });
        }
        t.task_runs
            .insert(run.id, stored.state.as_ref().map(State::id));
        self.queue(&mut t, job)?;
        Ok(Some(stored))
    }

    /// Queues task run `id` entering `state` when it is answered here and is in the
    /// `expected` state (the write is then `Written`); otherwise gives `state` back, for a
    /// write that is awaited (and meets the real state).
    pub(super) fn set_state(
        &self,
        id: Uuid,
        expected: Option<Uuid>,
        state: State,
    ) -> Result<Option<State>, StoreError> {
        let answered_here = |t: &Tracked| t.task_runs.get(&id) == Some(&expected);
        if !answered_here(&self.lock()) {
            return Ok(Some(state));
        }
        let next = state.id();
        let call = StoreCall::SetTaskRunState {
            id,
            expected,
            state,
        };
        let job = Self::encode(id, &call)?;
        let mut t = self.lock();
        if !answered_here(&t) {
            let StoreCall::SetTaskRunState { state, .. } = call else {
                unreachable!("built above")
            };
            return Ok(Some(state));
        }
        t.task_runs.insert(id, Some(next));
        self.queue(&mut t, job)?;
        Ok(None)
    }

    /// A flow run's state write answered: it executes here while `running_here` (Running
    /// was written); otherwise its task runs are no longer answered here.
    pub(super) fn flow_run_written(&self, id: Uuid, running_here: bool) {
        let mut t = self.lock();
        if running_here {
            t.flow_runs.entry(id).or_default();
        } else if let Some(created) = t.flow_runs.remove(&id) {
            for task_run in created {
                t.task_runs.remove(&task_run);
            }
        }
    }

    /// Waits until every write queued so far has been answered (at once when none is).
    pub(super) async fn settle(&self) -> Result<(), StoreError> {
        if self.lock().queued == 0 {
            return Ok(());
        }
        let (done, answered) = oneshot::channel();
        self.jobs.send(Job::Barrier(done)).map_err(|_| closing())?;
        answered.await.map_err(|_| closing())
    }

    /// Waits while the sender is far behind (a fast flow cannot pile writes up).
    pub(super) async fn room(&self) {
        loop {
            let waiting = self.shared.room.notified();
            if self.lock().queued <= HIGH_WATER {
                return;
            }
            waiting.await;
            if self.lock().queued <= LOW_WATER {
                return;
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Tracked> {
        // Nothing done under the lock panics; were it poisoned, each entry it guards is still
        // whole (inserts, removes and counts), so it stays usable.
        self.tracked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `n` writes were answered (written or refused).
    fn answered(&self, n: usize) {
        let queued = {
            let mut t = self.lock();
            t.queued = t.queued.saturating_sub(n);
            t.queued
        };
        if queued <= LOW_WATER {
            self.room.notify_waiters();
        }
    }

    /// A queued write of `task_run` failed: reported later; the run is no longer answered
    /// here.
    fn failed(&self, task_run: Uuid, error: &StoreError) {
        let mut t = self.lock();
        t.task_runs.remove(&task_run);
        if let StoreError::NotFound {
            what: "flow run",
            id,
        } = error
        {
            // Gone from the server: its next task runs are created the awaited way, and
            // refused.
            if let Some(created) = t.flow_runs.remove(id) {
                for run in created {
                    t.task_runs.remove(&run);
                }
            }
        }
        t.failure.get_or_insert(StoreError::Backend(format!(
            "an earlier write of task run {task_run} was not stored: {error}"
        )));
    }

    /// Another process moved `task_run`: its next write is awaited and meets the real state.
    fn diverged(&self, task_run: Uuid) {
        self.lock().task_runs.remove(&task_run);
    }
}

/// The sender: takes the jobs queued so far, sends their writes in as few requests as fit,
/// then answers the barriers among them.
async fn send(
    transport: Arc<Transport>,
    shared: Arc<Shared>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_CALLS {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut request = Request::default();
        let mut barriers = Vec::new();
        for job in batch {
            match job {
                Job::Write {
                    task_run,
                    state_write,
                    call,
                } => {
                    if request.bytes() + call.len() > MAX_BYTES && !request.runs.is_empty() {
                        request.send(&transport, &shared).await;
                    }
                    request.push(task_run, state_write, call);
                }
                Job::Barrier(done) => barriers.push(done),
            }
        }
        if !request.runs.is_empty() {
            request.send(&transport, &shared).await;
        }
        for done in barriers {
            let _ = done.send(());
        }
    }
}

/// One `batch` call being put together: its JSON, written as calls are added.
#[derive(Default)]
struct Request {
    /// Each call's task run, and whether it is a state write (answered by a [`SetState`]).
    runs: Vec<(Uuid, bool)>,
    /// The calls so far, comma-separated.
    calls: String,
}

impl Request {
    fn bytes(&self) -> usize {
        self.calls.len()
    }

    fn push(&mut self, task_run: Uuid, state_write: bool, call: String) {
        if !self.runs.is_empty() {
            self.calls.push(',');
        }
        self.calls.push_str(&call);
        self.runs.push((task_run, state_write));
    }

    /// Sends the calls gathered (leaving none) and notes what each answered.
    async fn send(&mut self, transport: &Transport, shared: &Shared) {
        let runs = std::mem::take(&mut self.runs);
        let calls = std::mem::take(&mut self.calls);
        let mut body = String::with_capacity(calls.len() + 32);
        body.push_str("{\"op\":\"batch\",\"calls\":[");
        body.push_str(&calls);
        body.push_str("]}");
        match transport
            .call_encoded::<Vec<Outcome>>(body.into_bytes())
            .await
        {
            Ok(outcomes) if outcomes.len() == runs.len() => {
                for (&(task_run, state_write), outcome) in runs.iter().zip(outcomes) {
                    match outcome {
                        Outcome::Ok(answer) if state_write => {
                            if let Ok(SetState::Conflict { .. }) = serde_json::from_value(answer) {
                                shared.diverged(task_run);
                            }
                        }
                        Outcome::Ok(_) => {}
                        Outcome::Err(e) => shared.failed(task_run, &e.into()),
                    }
                }
            }
            Ok(outcomes) => {
                let e = StoreError::Backend(format!(
                    "the orion server answered {} of {} task-run writes",
                    outcomes.len(),
                    runs.len()
                ));
                for &(task_run, _) in &runs {
                    shared.failed(task_run, &e);
                }
            }
            Err(e) => {
                for &(task_run, _) in &runs {
                    shared.failed(task_run, &e);
                }
            }
        }
        shared.answered(runs.len());
    }
}
