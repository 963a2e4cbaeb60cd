//! Persistence: the [`Store`] trait and its backends.
//!
//! A store keeps records and answers queries; it knows no transition rules (those live in
//! `orchestration`). Every state write is a compare-and-set on the run's current state id, so
//! two writers can never both move a run out of the same state.

pub(crate) mod bookkeeping;
mod connect;
mod error;
mod filter;
mod history;
mod ledger;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod live;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "server", feature = "remote"))]
pub mod protocol;
mod records;
#[cfg(feature = "remote")]
mod remote;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

use std::future::Future;
use std::pin::Pin;

use uuid::Uuid;

pub use connect::{URL_SCHEMES, connect, connect_blocking, redact_url};
pub use error::StoreError;

pub use filter::{DeploymentFilter, FlowRunFilter, LogFilter, Sort, TaskRunFilter};
pub use history::{HistoryBucket, HistoryCount, HistoryWindow, MAX_BUCKETS};
pub use ledger::{Acquired, ConcurrencyLimit, Slot, SlotRequest, tag_limit_name};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use records::{
    CatchUp, Collision, Deployment, DeploymentConcurrency, DeploymentSchedule, Flow, FlowRun,
    Lease, LogLevel, LogRecord, TaskRun, WorkQueue,
};
#[cfg(feature = "remote")]
pub use remote::RemoteStore;
#[cfg(feature = "sqlite")]
pub use sqlite::{Durability, SqliteStore};

use crate::state::State;

/// A guarded claim of due flow runs from one work queue, written all at once by
/// [`Store::claim_flow_runs`].
///
/// The store knows no transition rules: the client decided that each candidate may go to
/// Pending; the store only checks, atomically with the writes, that each is still in the
/// state the decision was made against, that no one else holds a live lease on it, and that
/// the queue is not paused and has room under its concurrency limit.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Claim {
    /// The queue the runs are taken from.
    pub work_queue: String,
    /// The runs, in the order to claim them.
    pub runs: Vec<ClaimRun>,
    /// The lease written on each claimed run.
    pub lease: Lease,
    /// At most this many runs are claimed (moved to their Pending state); the rest of `runs`
    /// are spares, taken in order when runs before them are gone or taken by another agent.
    pub take: usize,
}

impl Claim {
    /// A claim of `runs` from `work_queue` under `lease`.
    pub fn new(work_queue: impl Into<String>, runs: Vec<ClaimRun>, lease: Lease) -> Self {
        Claim {
            work_queue: work_queue.into(),
            runs,
            lease,
            take: usize::MAX,
        }
    }
    /// Claims at most `n` of the runs: see [`Claim::take`].
    #[must_use]
    pub fn take(mut self, n: usize) -> Self {
        self.take = n;
        self
    }
}

/// One run of a [`Claim`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ClaimRun {
    /// The run.
    pub id: Uuid,
    /// The state id it must still be in.
    pub expected: Uuid,
    /// The state it enters (Pending).
    pub state: State,
    /// Its deployment's concurrency limit, checked with the claim.
    pub deployment_limit: Option<DeploymentLimit>,
}

impl ClaimRun {
    /// Claim run `id`, expected in state `expected`, into `state`.
    pub fn new(id: Uuid, expected: Uuid, state: State) -> Self {
        ClaimRun {
            id,
            expected,
            state,
            deployment_limit: None,
        }
    }
    /// Claims it only while fewer than `limit` runs of its deployment hold a slot.
    #[must_use]
    pub fn deployment_limit(mut self, limit: DeploymentLimit) -> Self {
        self.deployment_limit = Some(limit);
        self
    }
}

/// A deployment's concurrency limit as a claim checks it: the run is claimed only while fewer
/// than `limit` runs of `deployment_id` are Pending, Running or Cancelling; otherwise, in the
/// same write, it enters `when_full` (when given and its state is still the expected one).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct DeploymentLimit {
    /// The deployment.
    pub deployment_id: Uuid,
    /// How many of its runs may hold a slot.
    pub limit: u32,
    /// The state a run that finds the deployment full enters instead of the claimed one
    /// (`AwaitingConcurrencySlot`, or `Cancelled`); None: it is left as it is.
    pub when_full: Option<State>,
}

impl DeploymentLimit {
    /// `limit` runs of `deployment_id`; a run finding it full enters `when_full`.
    pub fn new(deployment_id: Uuid, limit: u32, when_full: Option<State>) -> Self {
        DeploymentLimit {
            deployment_id,
            limit,
            when_full,
        }
    }
}

/// What a lease renewal found for one run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Renewal {
    /// The run.
    pub id: Uuid,
    /// Whether the caller still holds the lease (it was extended).
    pub held: bool,
    /// The run's current state (None: the run is gone).
    pub state: Option<State>,
}

/// A deployment's id, last update and pause: see [`Store::read_deployment_versions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct DeploymentVersion {
    /// The deployment.
    pub id: Uuid,
    /// When it was last applied or paused.
    pub updated: jiff::Timestamp,
    /// Whether its schedules are off.
    pub paused: bool,
}

/// The boxed future every [`Store`] method returns, so the trait stays dyn-compatible.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The result of a compare-and-set state write.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SetState {
    /// The state was written; it is now the run's current state.
    Written,
    /// The run's current state was not the expected one; nothing was written.
    Conflict {
        /// The run's actual current state.
        current: Option<State>,
    },
}

/// A backend that persists flows, runs, states and logs.
///
/// Methods return boxed futures so that `Arc<dyn Store>` works everywhere; the client,
/// services and servers carry no type parameters.
pub trait Store: Send + Sync + 'static {
    /// Creates the flow if no flow of that name exists; returns the stored flow either way.
    fn upsert_flow(&self, flow: Flow) -> StoreFuture<'_, Flow>;
    /// A flow by id.
    fn read_flow(&self, id: Uuid) -> StoreFuture<'_, Option<Flow>>;
    /// A flow by name.
    fn read_flow_by_name<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Flow>>;
    /// All flows, by name.
    fn read_flows(&self) -> StoreFuture<'_, Vec<Flow>>;

    /// Inserts a new flow run. Its `state` becomes the first entry of its state history.
    /// When a run of the same flow with the same `idempotency_key` exists, nothing is
    /// inserted and that run is returned.
    fn create_flow_run(&self, run: FlowRun) -> StoreFuture<'_, FlowRun>;
    /// Deletes the flow runs matching `filter` (paging ignored) with their states, task runs
    /// and logs; returns how many.
    fn delete_flow_runs<'a>(&'a self, filter: &'a FlowRunFilter) -> StoreFuture<'a, usize>;

    /// Creates or updates deployments, all or none; a deployment with the flow and name of a
    /// stored one updates it, keeping its id and creation time. Each flow must exist.
    fn upsert_deployments(&self, deployments: Vec<Deployment>) -> StoreFuture<'_, Vec<Deployment>>;
    /// A deployment by id.
    fn read_deployment(&self, id: Uuid) -> StoreFuture<'_, Option<Deployment>>;
    /// A deployment by flow name and deployment name.
    fn read_deployment_by_name<'a>(
        &'a self,
        flow_name: &'a str,
        name: &'a str,
    ) -> StoreFuture<'a, Option<Deployment>>;
    /// Deployments matching a filter, by full name.
    fn read_deployments<'a>(
        &'a self,
        filter: &'a DeploymentFilter,
    ) -> StoreFuture<'a, Vec<Deployment>>;
    /// Every deployment's id, last update and pause, without the rest of the record: how a
    /// scheduler finds, cheaply, which deployments changed since its last pass.
    fn read_deployment_versions(&self) -> StoreFuture<'_, Vec<DeploymentVersion>> {
        Box::pin(async move {
            let all = self.read_deployments(&DeploymentFilter::new()).await?;
            Ok(all
                .iter()
                .map(|d| DeploymentVersion {
                    id: d.id,
                    updated: d.updated,
                    paused: d.paused,
                })
                .collect())
        })
    }
    /// Deletes a deployment (its runs stay); returns whether it existed.
    fn delete_deployment(&self, id: Uuid) -> StoreFuture<'_, bool>;
    /// A flow run by id.
    fn read_flow_run(&self, id: Uuid) -> StoreFuture<'_, Option<FlowRun>>;
    /// Flow runs matching a filter, sorted and paged.
    fn read_flow_runs<'a>(&'a self, filter: &'a FlowRunFilter) -> StoreFuture<'a, Vec<FlowRun>>;
    /// How many flow runs pass `filter` (paging ignored). Backends answer it without reading
    /// the runs where they can; the default counts what [`Store::read_flow_runs`] returns.
    fn count_flow_runs<'a>(&'a self, filter: &'a FlowRunFilter) -> StoreFuture<'a, usize> {
        Box::pin(async move { Ok(self.read_flow_runs(&filter.unpaged()).await?.len()) })
    }
    /// The flow runs passing `filter` (paging ignored) counted by state type in the buckets
    /// of `window`. Backends group in the database where they can; the default reads the runs.
    fn flow_run_history<'a>(
        &'a self,
        filter: &'a FlowRunFilter,
        window: HistoryWindow,
    ) -> StoreFuture<'a, Vec<HistoryBucket>> {
        Box::pin(async move {
            let runs = self.read_flow_runs(&filter.unpaged()).await?;
            Ok(window.fill_runs(&runs))
        })
    }
    /// Writes `state` as the flow run's current state if its current state id is `expected`.
    fn set_flow_run_state(
        &self,
        id: Uuid,
        expected: Option<Uuid>,
        state: State,
    ) -> StoreFuture<'_, SetState>;
    /// Every state the flow run has been in, oldest first.
    fn read_flow_run_states(&self, id: Uuid) -> StoreFuture<'_, Vec<State>>;

    /// Inserts a new task run. Its `state` becomes the first entry of its state history.
    fn create_task_run(&self, run: TaskRun) -> StoreFuture<'_, TaskRun>;
    /// A task run by id.
    fn read_task_run(&self, id: Uuid) -> StoreFuture<'_, Option<TaskRun>>;
    /// Task runs matching a filter.
    fn read_task_runs<'a>(&'a self, filter: &'a TaskRunFilter) -> StoreFuture<'a, Vec<TaskRun>>;
    /// Writes `state` as the task run's current state if its current state id is `expected`.
    /// A Completed state with a cache key and data is also indexed for [`Store::read_cached_state`].
    fn set_task_run_state(
        &self,
        id: Uuid,
        expected: Option<Uuid>,
        state: State,
    ) -> StoreFuture<'_, SetState>;
    /// Every state the task run has been in, oldest first.
    fn read_task_run_states(&self, id: Uuid) -> StoreFuture<'_, Vec<State>>;
    /// The newest Completed state stored under `key`, with its data.
    fn read_cached_state<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<State>>;

    /// Inserts several flow runs as [`Store::create_flow_run`] does each, in one write where
    /// the backend can; returns each stored run (the existing one for a taken idempotency
    /// key), in order.
    fn create_flow_runs(&self, runs: Vec<FlowRun>) -> StoreFuture<'_, Vec<FlowRun>> {
        Box::pin(async move {
            let mut stored = Vec::with_capacity(runs.len());
            for run in runs {
                stored.push(self.create_flow_run(run).await?);
            }
            Ok(stored)
        })
    }

    /// Claims due flow runs: see [`Claim`]. Each run still in its expected state, without a
    /// live lease of another owner, is moved to its Pending state with the claim's lease, in
    /// order, while the queue is unpaused and has room; the rest are left alone. A run whose
    /// [`DeploymentLimit`] is reached is not claimed: it enters the limit's `when_full` state
    /// instead (without a lease), and is returned too, in that state. Returns the runs
    /// written. All of it is one atomic write: two claimers never both get a run, and queue
    /// and deployment limits hold however many agents claim at once.
    fn claim_flow_runs<'a>(&'a self, claim: &'a Claim) -> StoreFuture<'a, Vec<FlowRun>>;

    /// Extends the leases `owner` holds on `runs` to `expires` (renewed at `now`) and reports
    /// each run's current state, so the holder learns of cancellation requests and of runs it
    /// no longer holds (reaped, finished elsewhere).
    fn renew_leases(
        &self,
        owner: Uuid,
        runs: Vec<Uuid>,
        expires: jiff::Timestamp,
        now: jiff::Timestamp,
    ) -> StoreFuture<'_, Vec<Renewal>>;

    /// Creates a work queue, or updates the one of that name (keeping its id, creation time
    /// and poll status).
    fn upsert_work_queue(&self, queue: WorkQueue) -> StoreFuture<'_, WorkQueue>;
    /// A work queue by name.
    fn read_work_queue<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<WorkQueue>>;
    /// Every work queue, by priority then name.
    fn read_work_queues(&self) -> StoreFuture<'_, Vec<WorkQueue>>;
    /// Deletes a work queue (its runs stay); returns whether it existed.
    fn delete_work_queue<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool>;
    /// Records that `agent` asked the queues `names` for work at `at`.
    fn poll_work_queues(
        &self,
        names: Vec<String>,
        agent: String,
        at: jiff::Timestamp,
    ) -> StoreFuture<'_, ()>;

    /// Creates a concurrency limit, or updates the one of that name (keeping its id and
    /// creation time).
    fn upsert_concurrency_limit(
        &self,
        limit: ConcurrencyLimit,
    ) -> StoreFuture<'_, ConcurrencyLimit>;
    /// A concurrency limit by name.
    fn read_concurrency_limit<'a>(
        &'a self,
        name: &'a str,
    ) -> StoreFuture<'a, Option<ConcurrencyLimit>>;
    /// Every concurrency limit, by name.
    fn read_concurrency_limits(&self) -> StoreFuture<'_, Vec<ConcurrencyLimit>>;
    /// Deletes a concurrency limit with its ledger rows; returns whether it existed.
    fn delete_concurrency_limit<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool>;
    /// The ledger rows of a limit, live or lapsed: holders by ticket, then waiters by ticket.
    fn read_slots<'a>(&'a self, limit: &'a str) -> StoreFuture<'a, Vec<Slot>>;
    /// Takes one slot (or [`SlotRequest::occupy`] slots) of each limit named, all or none, in
    /// one atomic write: granted when every limit has room for it after its live holders and
    /// the live waiters ahead of it in line; otherwise nothing is held and, when the request
    /// waits, the holder keeps (or takes) its place in line. Names without a stored limit are
    /// not limited. Lapsed rows count for nothing.
    fn acquire_slots(&self, request: SlotRequest) -> StoreFuture<'_, Acquired>;
    /// Deletes the rows of `holder`, held or waiting (rate-limit slots excepted: they lapse);
    /// returns the limits it had rows in.
    fn release_slots(&self, holder: Uuid) -> StoreFuture<'_, Vec<String>>;
    /// Extends to `expires` the live rows `owner` has for each of `holders` (renewed at
    /// `now`); returns the holders that have none left (reset, deleted, or lapsed: a lapsed
    /// row is never revived, since its slot may have been granted to another meanwhile).
    fn renew_slots(
        &self,
        owner: Uuid,
        holders: Vec<Uuid>,
        expires: jiff::Timestamp,
        now: jiff::Timestamp,
    ) -> StoreFuture<'_, Vec<Uuid>>;
    /// Deletes every row of a limit (its holders lose their slots); returns how many.
    fn reset_slots<'a>(&'a self, limit: &'a str) -> StoreFuture<'a, usize>;
    /// Deletes the rows whose lease lapsed by `now`; returns the limits that had any.
    fn reap_slots(&self, now: jiff::Timestamp) -> StoreFuture<'_, Vec<String>>;

    /// Appends log records.
    fn write_logs(&self, logs: Vec<LogRecord>) -> StoreFuture<'_, ()>;
    /// Log records matching a filter, oldest first.
    fn read_logs<'a>(&'a self, filter: &'a LogFilter) -> StoreFuture<'a, Vec<LogRecord>>;

    /// Resolves once every write made so far is durable, or with the error of a write that
    /// was answered before it was stored and then failed.
    ///
    /// A backend may answer the writes of a task run whose flow run it is executing before
    /// they commit (the SQLite store does: one fsync then covers many task runs). It keeps
    /// their order, so any later write that is awaited, such as the flow run's final state,
    /// commits after them; `flush` is for a caller that needs that point earlier. The default
    /// resolves at once, for backends whose writes are durable when answered.
    fn flush(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Woken (a hint, never a promise) when another process may have made flow runs
    /// claimable: created or rescheduled them, resumed a queue, freed a slot. A runtime's
    /// agents wake on it as on their own process's changes, instead of at their next poll.
    /// None (the default): the backend has no such channel, and agents in other processes
    /// find new work by polling.
    fn runs_due_hint(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }

    /// How often, at the most, agents over this store should look for runs made by other
    /// processes, when each look is costly (a request to a server) and
    /// [`Store::runs_due_hint`] wakes them for new runs anyway. None (the default): the
    /// agent's own [`poll_interval`](crate::services::Agent::poll_interval).
    fn poll_interval(&self) -> Option<std::time::Duration> {
        None
    }
}
