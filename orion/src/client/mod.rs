//! [`OrionClient`]: the one API over a store.

mod clock;
mod deployments;
mod limits;
mod queues;
mod slots;

pub use clock::Clock;
pub use limits::ConcurrencyLimitStatus;
pub use queues::{ClaimRequest, WorkQueueStatus};
pub(crate) use slots::{SlotAsk, SlotHold, SlotLine};

use std::sync::Arc;

use jiff::Timestamp;
use uuid::Uuid;

use crate::orchestration::{self, Decision, Proposal, RetryPolicy, RunKind};
use crate::state::State;
use crate::store::{
    Flow, FlowRun, FlowRunFilter, LogFilter, LogRecord, SetState, Store, TaskRun, TaskRunFilter,
};
use crate::{Error, Result};

/// Reads and writes flows, runs, states and logs. State writes go through the orchestration
/// rules, then a compare-and-set in the store.
///
/// Cheap to clone: it is a handle on a shared store.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> orion::Result<()> {
/// use orion::store::FlowRunFilter;
///
/// let orion = orion::Orion::memory();
/// let client = orion.client();
/// let runs = client.read_flow_runs(&FlowRunFilter::new().flow_name("etl")).await?;
/// assert!(runs.is_empty());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OrionClient {
    store: Arc<dyn Store>,
    clock: Clock,
    signals: Arc<Signals>,
}

/// What the clients of one runtime tell each other at once, in this process; other
/// processes learn the same through the store, by polling.
#[derive(Debug)]
pub(crate) struct Signals {
    /// Woken when flow runs were created or moved back to Scheduled: an agent looks again.
    /// The store's own hint when it has one (see [`Store::runs_due_hint`]), so other
    /// processes' changes wake this runtime's agents too.
    pub(crate) runs_due: Arc<tokio::sync::Notify>,
    /// The ids of flow runs asked to cancel.
    pub(crate) cancels: tokio::sync::broadcast::Sender<Uuid>,
    /// Concurrency slots: this runtime's lease owner, what it renews, who waits.
    pub(crate) slots: slots::SlotSignals,
}

impl Signals {
    fn new(store: &dyn Store) -> Self {
        Signals {
            runs_due: store.runs_due_hint().unwrap_or_default(),
            cancels: tokio::sync::broadcast::channel(1024).0,
            slots: slots::SlotSignals::default(),
        }
    }
}

impl std::fmt::Debug for OrionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrionClient").finish_non_exhaustive()
    }
}

/// What became of a proposed state.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// This state (the proposed one, or the one orchestration chose instead) is now current.
    Set(State),
    /// Orchestration asks to propose again after the delay.
    Wait(std::time::Duration),
}

/// The run a state is proposed for, with what orchestration needs to know about it.
#[derive(Debug, Clone, Copy)]
pub struct RunRef<'a> {
    /// Flow run or task run.
    pub kind: RunKind,
    /// Its id.
    pub id: Uuid,
    /// The state the caller believes is current; used as the compare-and-set guess.
    pub current: Option<&'a State>,
    /// Times it has entered Running.
    pub run_count: u32,
    /// Its retry policy.
    pub retry: &'a RetryPolicy,
    /// When true, a state write that finds the run moved by another writer fails with
    /// [`Error::Conflict`] instead of being decided again against the new state: how the
    /// holder of a claimed run learns it lost it (reaped, cancelled) and never overwrites the
    /// newer state.
    pub fenced: bool,
}

impl<'a> RunRef<'a> {
    /// A flow run believed to be in `current`.
    pub fn flow(
        id: Uuid,
        current: Option<&'a State>,
        run_count: u32,
        retry: &'a RetryPolicy,
    ) -> Self {
        RunRef {
            kind: RunKind::Flow,
            id,
            current,
            run_count,
            retry,
            fenced: false,
        }
    }
    /// A task run believed to be in `current`.
    pub fn task(
        id: Uuid,
        current: Option<&'a State>,
        run_count: u32,
        retry: &'a RetryPolicy,
    ) -> Self {
        RunRef {
            kind: RunKind::Task,
            id,
            current,
            run_count,
            retry,
            fenced: false,
        }
    }
    /// The same run, fenced: see [`RunRef::fenced`].
    #[must_use]
    pub fn fence(mut self) -> Self {
        self.fenced = true;
        self
    }
}

impl OrionClient {
    /// A client over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with_clock(store, Clock::System)
    }

    /// A client over `store` that reads time from `clock`.
    pub fn with_clock(store: Arc<dyn Store>, clock: Clock) -> Self {
        let signals = Arc::new(Signals::new(&*store));
        OrionClient {
            store,
            clock,
            signals,
        }
    }

    /// The clock this client reads.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub(crate) fn signals(&self) -> &Signals {
        &self.signals
    }

    /// The current time by this client's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The underlying store, for what the client does not offer (backend maintenance).
    /// Writing through it goes around orchestration.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Creates the flow or returns the existing one of that name.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn create_flow(&self, name: &str) -> Result<Flow> {
        let mut flow = Flow::new(name);
        flow.created = self.now();
        Ok(self.store.upsert_flow(flow).await?)
    }
    /// A flow by id.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn read_flow(&self, id: Uuid) -> Result<Option<Flow>> {
        Ok(self.store.read_flow(id).await?)
    }
    /// A flow by name.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn read_flow_by_name(&self, name: &str) -> Result<Option<Flow>> {
        Ok(self.store.read_flow_by_name(name).await?)
    }
    /// All flows.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn read_flows(&self) -> Result<Vec<Flow>> {
        Ok(self.store.read_flows().await?)
    }

    /// Stores a new flow run (its `state`, if set, is its first state).
    ///
    /// # Errors
    ///
    /// When the flow does not exist or the store fails.
    pub async fn create_flow_run(&self, run: FlowRun) -> Result<FlowRun> {
        Ok(self.store.create_flow_run(run).await?)
    }
    /// A flow run by id.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn read_flow_run(&self, id: Uuid) -> Result<Option<FlowRun>> {
        Ok(self.store.read_flow_run(id).await?)
    }

    /// A flow run that must exist: [`Error::NotFound`] when it does not.
    pub(crate) async fn existing_flow_run(&self, id: Uuid) -> Result<FlowRun> {
        self.read_flow_run(id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "flow run",
                name: id.to_string(),
            })
    }
    /// Flow runs matching `filter`.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn read_flow_runs(&self, filter: &FlowRunFilter) -> Result<Vec<FlowRun>> {
        Ok(self.store.read_flow_runs(filter).await?)
    }
    /// A flow run's state history, oldest first.
    ///
    /// # Errors
    ///
    /// When the run does not exist or the store fails.
    pub async fn read_flow_run_states(&self, id: Uuid) -> Result<Vec<State>> {
        Ok(self.store.read_flow_run_states(id).await?)
    }

    /// Stores a new task run.
    ///
    /// # Errors
    ///
    /// When its flow run does not exist or the store fails.
    pub async fn create_task_run(&self, run: TaskRun) -> Result<TaskRun> {
        Ok(self.store.create_task_run(run).await?)
    }
    /// A task run by id.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn read_task_run(&self, id: Uuid) -> Result<Option<TaskRun>> {
        Ok(self.store.read_task_run(id).await?)
    }
    /// Task runs matching `filter`.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn read_task_runs(&self, filter: &TaskRunFilter) -> Result<Vec<TaskRun>> {
        Ok(self.store.read_task_runs(filter).await?)
    }
    /// The task runs of one flow run, in creation order.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn read_task_runs_of(&self, flow_run_id: Uuid) -> Result<Vec<TaskRun>> {
        self.read_task_runs(&TaskRunFilter::new().flow_run_id(flow_run_id))
            .await
    }
    /// A task run's state history, oldest first.
    ///
    /// # Errors
    ///
    /// When the run does not exist or the store fails.
    pub async fn read_task_run_states(&self, id: Uuid) -> Result<Vec<State>> {
        Ok(self.store.read_task_run_states(id).await?)
    }

    /// Stores log records.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn write_logs(&self, logs: Vec<LogRecord>) -> Result<()> {
        Ok(self.store.write_logs(logs).await?)
    }
    /// Log records matching `filter`, oldest first.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn read_logs(&self, filter: &LogFilter) -> Result<Vec<LogRecord>> {
        Ok(self.store.read_logs(filter).await?)
    }

    /// Waits until every write made through this client's store so far is on disk.
    ///
    /// A flow call already returns only after all its states are stored; this is for a
    /// program that must know earlier, for example before it reports a task's work done to
    /// another system. See [`Store::flush`].
    ///
    /// # Errors
    ///
    /// When a write that was answered before it committed could not be stored.
    pub async fn flush(&self) -> Result<()> {
        Ok(self.store.flush().await?)
    }

    /// Deletes the flow runs (with their task runs, states and logs) created more than `age`
    /// ago that have finished; returns how many. Runs still scheduled or running are kept.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn delete_runs_older_than(&self, age: std::time::Duration) -> Result<usize> {
        let age = jiff::SignedDuration::try_from(age).unwrap_or(jiff::SignedDuration::MAX);
        let cutoff = self.now().checked_sub(age).unwrap_or(Timestamp::MIN);
        let finished = crate::StateType::ALL
            .into_iter()
            .filter(|t| t.is_terminal());
        let filter = FlowRunFilter::new()
            .created_between(None, Some(cutoff))
            .state_types(finished);
        Ok(self.store.delete_flow_runs(&filter).await?)
    }

    /// Proposes `proposed` as the run's next state: the orchestration rules decide, then the
    /// chosen state is written with a compare-and-set. When another writer moved the run
    /// meanwhile, the rules are run again against the state it is really in.
    ///
    /// # Errors
    ///
    /// [`Error::Aborted`] when the rules refuse the transition; store failures.
    pub async fn propose_state(&self, run: RunRef<'_>, proposed: State) -> Result<Transition> {
        let cached = match (&proposed.details().cache_key, proposed.is_running()) {
            (Some(key), true) if !proposed.details().refresh_cache => {
                self.store.read_cached_state(key).await?
            }
            _ => None,
        };
        let mut current = run.current.cloned();
        // One retry after a conflict is enough for a caller with a stale guess; more conflicts
        // mean another writer really is racing for this run.
        for _ in 0..3 {
            let now = self.clock.now();
            let ctx = Proposal {
                kind: run.kind,
                run_count: run.run_count,
                retry: run.retry,
                cached: cached.as_ref(),
                now,
                random: fastrand::f64(),
            };
            // States are stamped by the client's clock, the same one the rules read.
            let chosen = match orchestration::decide(current.as_ref(), &proposed, &ctx) {
                Decision::Accept => proposed.clone().with_timestamp(now),
                Decision::Reject(state) if current.as_ref().map(State::id) == Some(state.id()) => {
                    // Rejected in favour of the state the run is already in: nothing to write.
                    return Ok(Transition::Set(state));
                }
                Decision::Reject(state) => state.renewed().with_timestamp(now),
                Decision::Wait(d) => return Ok(Transition::Wait(d)),
                Decision::Abort(reason) => return Err(Error::Aborted { reason }),
            };
            let expected = current.as_ref().map(State::id);
            let written = match run.kind {
                RunKind::Flow => self
                    .store
                    .set_flow_run_state(run.id, expected, chosen.clone()),
                RunKind::Task => self
                    .store
                    .set_task_run_state(run.id, expected, chosen.clone()),
            }
            .await?;
            match written {
                SetState::Written => {
                    // A run made due, or a flow run that ended and so freed a queue or
                    // deployment slot: agents of this runtime look again.
                    if run.kind == RunKind::Flow && (chosen.is_scheduled() || chosen.is_final()) {
                        self.signals.runs_due.notify_waiters();
                    }
                    return Ok(Transition::Set(chosen));
                }
                SetState::Conflict { current: actual } if run.fenced => {
                    return Err(Error::Conflict {
                        what: match run.kind {
                            RunKind::Flow => "flow run",
                            RunKind::Task => "task run",
                        },
                        id: run.id,
                        current: actual.map(|s| Box::new(s.without_data())),
                    });
                }
                SetState::Conflict { current: actual } => current = actual,
            }
        }
        Err(Error::Aborted {
            reason: format!("run {} is being changed by another writer", run.id),
        })
    }
}
