//! Work queues, claims, leases and cancellation through the client.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use uuid::Uuid;

use super::{OrionClient, RunRef};
use crate::orchestration::{self, Decision, Proposal, RunKind};
use crate::state::{RetryPolicy, State, StateType, names};
use crate::store::{
    Claim, ClaimRun, Collision, DeploymentConcurrency, DeploymentLimit, FlowRun, FlowRunFilter,
    Lease, Renewal, Sort, WorkQueue,
};
use crate::{Error, Result};

/// What an agent asks for when it claims runs: see [`OrionClient::claim_flow_runs`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClaimRequest {
    /// The claiming agent's id: the lease owner.
    pub agent_id: Uuid,
    /// Its name, for messages and queue status.
    pub agent_name: String,
    /// The queues it serves; they are taken in priority order (lower first).
    pub work_queues: Vec<String>,
    /// At most this many runs.
    pub limit: usize,
    /// How long the lease lasts unless renewed.
    pub lease: Duration,
    /// Only runs of these flows (the flows compiled into the agent's program); `None`: any.
    pub flows: Option<Vec<String>>,
}

impl ClaimRequest {
    /// A claim of at most `limit` runs from `work_queues` by the agent `agent_id`.
    pub fn new(
        agent_id: Uuid,
        agent_name: impl Into<String>,
        work_queues: Vec<String>,
        limit: usize,
        lease: Duration,
    ) -> Self {
        ClaimRequest {
            agent_id,
            agent_name: agent_name.into(),
            work_queues,
            limit,
            lease,
            flows: None,
        }
    }
    /// Only runs of these flows.
    #[must_use]
    pub fn flows(mut self, flows: Vec<String>) -> Self {
        self.flows = Some(flows);
        self
    }
}

/// A work queue with what is happening in it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct WorkQueueStatus {
    /// The queue.
    pub queue: WorkQueue,
    /// Its runs in state Late.
    pub late_runs: usize,
    /// Its runs that are claimed, running or being cancelled.
    pub active_runs: usize,
    /// Its runs waiting (Scheduled, due or not).
    pub scheduled_runs: usize,
}

impl OrionClient {
    /// Creates a work queue, or updates the one of that name.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> orion::Result<()> {
    /// use orion::store::WorkQueue;
    ///
    /// let orion = orion::Orion::memory();
    /// let client = orion.client();
    /// let queue = WorkQueue::new("reports", client.now()).priority(5).concurrency_limit(Some(2));
    /// client.upsert_work_queue(queue).await?;
    /// let names: Vec<String> = client.read_work_queues().await?.into_iter().map(|q| q.name).collect();
    /// assert_eq!(names, ["default", "reports"]); // by priority; `default` always exists
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Setting`] for an empty name; store failures.
    pub async fn upsert_work_queue(&self, queue: WorkQueue) -> Result<WorkQueue> {
        if queue.name.trim().is_empty() {
            return Err(Error::Setting {
                name: "work queue name",
                value: queue.name,
                reason: "must not be empty".into(),
            });
        }
        let stored = self.store.upsert_work_queue(queue).await?;
        self.signals.runs_due.notify_waiters();
        Ok(stored)
    }

    /// A work queue by name. The `default` queue always exists (it is created on first use).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub async fn read_work_queue(&self, name: &str) -> Result<WorkQueue> {
        if let Some(queue) = self.store.read_work_queue(name).await? {
            return Ok(queue);
        }
        if name == WorkQueue::DEFAULT {
            return self.ensure_work_queue(name).await;
        }
        Err(Error::NotFound {
            what: "work queue",
            name: name.to_owned(),
        })
    }

    /// Every work queue, by priority then name; `default` among them.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn read_work_queues(&self) -> Result<Vec<WorkQueue>> {
        let queues = self.store.read_work_queues().await?;
        if queues.iter().any(|q| q.name == WorkQueue::DEFAULT) {
            return Ok(queues);
        }
        self.ensure_work_queue(WorkQueue::DEFAULT).await?;
        Ok(self.store.read_work_queues().await?)
    }

    /// Deletes a work queue; its runs stay (an agent serving that name still finds them).
    ///
    /// # Errors
    ///
    /// [`Error::Setting`] for `default`, which always exists; store failures.
    pub async fn delete_work_queue(&self, name: &str) -> Result<bool> {
        if name == WorkQueue::DEFAULT {
            return Err(Error::Setting {
                name: "work queue name",
                value: name.to_owned(),
                reason: "the default queue cannot be deleted".into(),
            });
        }
        Ok(self.store.delete_work_queue(name).await?)
    }

    /// Pauses a queue: it hands out no runs until resumed.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub async fn pause_work_queue(&self, name: &str) -> Result<WorkQueue> {
        let queue = self.read_work_queue(name).await?;
        self.upsert_work_queue(queue.paused(true)).await
    }

    /// Resumes a paused queue.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub async fn resume_work_queue(&self, name: &str) -> Result<WorkQueue> {
        let queue = self.read_work_queue(name).await?;
        self.upsert_work_queue(queue.paused(false)).await
    }

    /// The queue `name`, created (unpaused, no limit) when it does not exist.
    pub(crate) async fn ensure_work_queue(&self, name: &str) -> Result<WorkQueue> {
        match self.store.read_work_queue(name).await? {
            Some(queue) => Ok(queue),
            None => Ok(self
                .store
                .upsert_work_queue(WorkQueue::new(name, self.now()))
                .await?),
        }
    }

    /// The runs the queue would hand out next, in order (due or not): what an agent serving
    /// only this queue would start, earliest first.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub async fn preview_work_queue(&self, name: &str, limit: usize) -> Result<Vec<FlowRun>> {
        let queue = self.read_work_queue(name).await?;
        let filter = waiting_in(&queue).limit(limit);
        self.read_flow_runs(&filter).await
    }

    /// A queue with its late, active and waiting run counts and its last poll.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub async fn work_queue_status(&self, name: &str) -> Result<WorkQueueStatus> {
        let queue = self.read_work_queue(name).await?;
        let of_queue = FlowRunFilter::new().work_queue_name(name);
        let count = |filter: FlowRunFilter| async move {
            Ok::<_, Error>(self.store.count_flow_runs(&filter).await?)
        };
        Ok(WorkQueueStatus {
            late_runs: count(of_queue.clone().state_names([crate::state::names::LATE])).await?,
            active_runs: count(of_queue.clone().state_types([
                StateType::Pending,
                StateType::Running,
                StateType::Cancelling,
            ]))
            .await?,
            scheduled_runs: count(of_queue.state_types([StateType::Scheduled])).await?,
            queue,
        })
    }

    /// Claims due runs for an agent: from each queue in priority order (lower first; a later
    /// queue only gets what capacity is left), the runs due now, earliest first, that the
    /// rules let go to Pending, of the agent's flows and carrying the queue's tags — each
    /// moved to Pending with a lease in one guarded write that also respects the queue's
    /// pause and concurrency limit (see [`crate::store::Claim`]). Two agents never claim one
    /// run; runs that cannot start are skipped, never held.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn claim_flow_runs(&self, request: &ClaimRequest) -> Result<Vec<FlowRun>> {
        let now = self.now();
        let mut queues = Vec::with_capacity(request.work_queues.len());
        for name in &request.work_queues {
            let queue = match self.store.read_work_queue(name).await? {
                Some(queue) => queue,
                None => WorkQueue::new(name.clone(), now),
            };
            queues.push(queue);
        }
        // Stable: queues of equal priority keep the agent's order.
        queues.sort_by_key(|q| q.priority);
        let lease = Lease::new(request.agent_id, &request.agent_name, now, request.lease);
        let mut limits = DeploymentLimits::default();
        let mut claimed: Vec<FlowRun> = Vec::new();
        for queue in queues.iter().filter(|q| !q.paused) {
            // A full deployment's runs are passed over on the next look, so its waiting runs
            // never hide the runs of others behind them.
            for _ in 0..4 {
                let want = request.limit.saturating_sub(claimed.len());
                if want == 0 {
                    break;
                }
                // A few more than wanted: some may be of flows this agent does not have.
                let filter = waiting_in(queue)
                    .expected_start_between(None, Some(now))
                    .exclude_deployments(limits.full.iter().copied())
                    .limit(want.saturating_mul(2).saturating_add(8));
                let candidates = self.read_flow_runs(&filter).await?;
                // Every candidate goes to the store, `want` of them to take: when other agents
                // take the first ones meanwhile, this claim takes the next instead of none.
                let mut runs: Vec<ClaimRun> = Vec::new();
                for r in &candidates {
                    if !request
                        .flows
                        .as_ref()
                        .is_none_or(|f| f.contains(&r.flow_name))
                    {
                        continue;
                    }
                    let Some(current) = r.state.as_ref() else {
                        continue;
                    };
                    let pending = State::pending().with_timestamp(now);
                    let ctx = Proposal {
                        kind: RunKind::Flow,
                        run_count: r.run_count,
                        retry: &r.retry,
                        cached: None,
                        now,
                        random: 0.0,
                    };
                    if orchestration::decide(Some(current), &pending, &ctx) != Decision::Accept {
                        continue;
                    }
                    let mut run = ClaimRun::new(r.id, current.id(), pending);
                    if let Some(limit) = limits.of(self, r, current, now).await? {
                        run = run.deployment_limit(limit);
                    }
                    runs.push(run);
                }
                if runs.is_empty() {
                    break;
                }
                let asked: Vec<(Uuid, Option<Uuid>)> = runs
                    .iter()
                    .map(|c| (c.id, c.deployment_limit.as_ref().map(|d| d.deployment_id)))
                    .collect();
                let claim = Claim::new(queue.name.clone(), runs, lease.clone()).take(want);
                let written = self.store.claim_flow_runs(&claim).await?;
                let full_before = limits.full.len();
                let took = written
                    .iter()
                    .filter(|w| w.state.as_ref().is_some_and(State::is_pending))
                    .count();
                // A claim that took all it wanted may have stopped before later runs: only
                // one that took fewer went through every run it was given.
                let looked_at_all = took < want;
                for (id, deployment) in asked.into_iter().filter(|_| looked_at_all) {
                    let run = written.iter().find(|w| w.id == id);
                    let pending =
                        run.is_some_and(|w| w.state.as_ref().is_some_and(State::is_pending));
                    if let (false, Some(d)) = (pending, deployment) {
                        // Found full (or taken meanwhile by another agent: passed over for
                        // this claim only).
                        limits.full.insert(d);
                    }
                }
                claimed.extend(
                    written
                        .into_iter()
                        .filter(|w| w.state.as_ref().is_some_and(State::is_pending)),
                );
                if limits.full.len() == full_before {
                    break;
                }
            }
        }
        Ok(claimed)
    }

    /// When the next run waiting in any of `work_queues` is due (None: nothing waits).
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn next_due(&self, work_queues: &[String]) -> Result<Option<jiff::Timestamp>> {
        let mut next: Option<jiff::Timestamp> = None;
        for name in work_queues {
            let filter = FlowRunFilter::new()
                .work_queue_name(name.clone())
                .state_types([StateType::Scheduled])
                .sort(Sort::ExpectedStartAsc)
                .limit(1);
            if let Some(at) = self
                .read_flow_runs(&filter)
                .await?
                .first()
                .and_then(|r| r.expected_start_time)
            {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        Ok(next)
    }

    /// Extends the leases `owner` holds on `runs` by `duration` from now, and reports each
    /// run's state: a holder stops a run it no longer holds or that is being cancelled.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn renew_leases(
        &self,
        owner: Uuid,
        runs: Vec<Uuid>,
        duration: Duration,
    ) -> Result<Vec<Renewal>> {
        let now = self.now();
        let until = Lease::new(owner, "", now, duration).expires;
        Ok(self.store.renew_leases(owner, runs, until, now).await?)
    }

    /// Records that `agent` asked `work_queues` for work now (the queues' status).
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn poll_work_queues(&self, work_queues: &[String], agent: &str) -> Result<()> {
        for name in work_queues {
            self.ensure_work_queue(name).await?;
        }
        Ok(self
            .store
            .poll_work_queues(work_queues.to_vec(), agent.to_owned(), self.now())
            .await?)
    }

    /// Cancels a flow run: one that has not started (Scheduled, Late, Pending, Paused) is
    /// Cancelled at once; a Running one goes to Cancelling, and the agent holding it stops
    /// its body and its task runs and ends it Cancelled (at once in this process, at its
    /// next lease renewal in another; the reaper finishes it when no holder is left). A run
    /// that already ended is left as it is. Returns the state it is now in.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub async fn cancel_flow_run(&self, id: Uuid) -> Result<State> {
        for _ in 0..5 {
            let run = self.existing_flow_run(id).await?;
            let Some(current) = run.state.clone() else {
                return Err(Error::NotFound {
                    what: "flow run state",
                    name: id.to_string(),
                });
            };
            let proposed = match current.state_type() {
                t if t.is_terminal() => return Ok(current),
                StateType::Cancelling => {
                    let _ = self.signals.cancels.send(id);
                    return Ok(current);
                }
                StateType::Running => {
                    State::of_type(StateType::Cancelling).with_message("Cancellation requested.")
                }
                _ => State::cancelled("Cancelled before it started."),
            };
            let run_ref =
                RunRef::flow(id, Some(&current), run.run_count, &RetryPolicy::NONE).fence();
            match self.propose_state(run_ref, proposed).await {
                Ok(super::Transition::Set(state)) => {
                    let _ = self.signals.cancels.send(id);
                    return Ok(state);
                }
                Ok(super::Transition::Wait(_)) => {}
                // Moved meanwhile (claimed, started): decide again from its new state.
                Err(Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::Aborted {
            reason: format!("flow run {id} kept changing while it was being cancelled"),
        })
    }

    /// Asks the flow run `id`, if it executes in this runtime, to stop (what an agent does
    /// when a lease renewal finds the run Cancelling or taken from it).
    pub(crate) fn request_stop(&self, id: Uuid) {
        let _ = self.signals.cancels.send(id);
    }

    /// A receiver of the ids of flow runs cancelled through any client of this runtime.
    pub(crate) fn cancellations(&self) -> tokio::sync::broadcast::Receiver<Uuid> {
        self.signals.cancels.subscribe()
    }

    /// Notified when runs may have become due through this runtime (created, retried,
    /// queues changed).
    pub(crate) fn runs_due(&self) -> &tokio::sync::Notify {
        &self.signals.runs_due
    }
}

/// The concurrency limits of the deployments met during one claim.
#[derive(Default)]
struct DeploymentLimits {
    read: HashMap<Uuid, Option<DeploymentConcurrency>>,
    /// Deployments found full.
    full: HashSet<Uuid>,
}

impl DeploymentLimits {
    /// The limit run `run` (in `current`) is claimed under, with the state it enters when
    /// its deployment is full: `AwaitingConcurrencySlot` (once) or `Cancelled`.
    async fn of(
        &mut self,
        client: &OrionClient,
        run: &FlowRun,
        current: &State,
        now: jiff::Timestamp,
    ) -> Result<Option<DeploymentLimit>> {
        let Some(id) = run.deployment_id else {
            return Ok(None);
        };
        let concurrency = match self.read.get(&id) {
            Some(c) => *c,
            None => {
                let c = client
                    .store
                    .read_deployment(id)
                    .await?
                    .and_then(|d| d.concurrency);
                self.read.insert(id, c);
                c
            }
        };
        let Some(c) = concurrency else {
            return Ok(None);
        };
        let when_full = match c.collision {
            Collision::Enqueue if current.name() == names::AWAITING_CONCURRENCY_SLOT => None,
            Collision::Enqueue => Some(
                State::awaiting_concurrency_slot()
                    .with_message(format!(
                        "Deployment concurrency limit of {} reached: waiting for a slot.",
                        c.limit
                    ))
                    .with_timestamp(now),
            ),
            Collision::CancelNew => Some(
                State::cancelled(format!(
                    "Deployment concurrency limit of {} reached: cancelled by its collision strategy CANCEL_NEW.",
                    c.limit
                ))
                .with_timestamp(now),
            ),
        };
        Ok(Some(DeploymentLimit::new(id, c.limit, when_full)))
    }
}

/// The runs waiting in `queue` that it hands out, earliest first.
fn waiting_in(queue: &WorkQueue) -> FlowRunFilter {
    FlowRunFilter::new()
        .work_queue_name(queue.name.clone())
        .state_types([StateType::Scheduled])
        .tags(queue.tags.clone())
        .sort(Sort::ExpectedStartAsc)
}
