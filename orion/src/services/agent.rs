//! The agent: claims due runs from work queues and executes them in this process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use uuid::Uuid;

use super::{Shutdown, log};
use crate::state::{RetryPolicy, State};
use crate::store::{FlowRun, LogLevel, WorkQueue};
use crate::{ClaimRequest, Orion, Result, RunRef};

const SOURCE: &str = "orion.agent";

/// The resolution of tokio's timer.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// Serves work queues: takes their due runs and executes them here, as flows compiled into
/// this program (runs of flows it does not have are left for an agent that has them).
///
/// Each run is claimed with one guarded write that moves it to Pending and gives this agent
/// a lease on it ([`crate::OrionClient::claim_flow_runs`]); the agent renews its leases
/// while the runs execute, so the [`super::Reaper`] finds a run crashed only when this
/// process stops renewing. A renewal that finds a run Cancelling (or no longer held) stops
/// its body. A flow that panics fails its run, never the agent.
///
/// The agent wakes at once when a run becomes due through this runtime (created, retried)
/// and at the due time of runs it has seen scheduled; runs created by other processes are
/// found by a short indexed poll ([`Agent::poll_interval`], default 25 ms).
///
/// On shutdown it stops claiming and lets its runs finish for [`Agent::grace_period`]
/// (default 30 s); runs still going then are stopped and handed back — Crashed, so their
/// retry policy decides whether another agent runs them again.
///
/// ```no_run
/// use orion::prelude::*;
/// # #[tokio::main] async fn main() -> orion::Result<()> {
/// let orion = Orion::from_env().await?;
/// orion.serve()
///     .agent(Agent::new().work_queue("reports").work_queue("default").limit(4))
///     .run_until(tokio::signal::ctrl_c())
///     .await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Agent {
    name: Option<String>,
    work_queues: Vec<String>,
    limit: usize,
    poll_interval: Duration,
    lease: Duration,
    grace_period: Duration,
}

impl Default for Agent {
    fn default() -> Self {
        Agent {
            name: None,
            work_queues: Vec::new(),
            limit: 16,
            poll_interval: Duration::from_millis(25),
            lease: Duration::from_secs(30),
            grace_period: Duration::from_secs(30),
        }
    }
}

/// The runs an agent is executing: what it renews, and what it stops.
type Running = Arc<Mutex<HashMap<Uuid, String>>>;

impl Agent {
    /// An agent serving the `default` queue unless queues are named, running at most 16
    /// runs at once.
    pub fn new() -> Self {
        Self::default()
    }
    /// Its name, shown in queue status and in the messages of runs it held (default
    /// `agent-<8 hex>`).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Serves this queue too (queues are taken in their priority order).
    #[must_use]
    pub fn work_queue(mut self, name: impl Into<String>) -> Self {
        self.work_queues.push(name.into());
        self
    }
    /// At most this many runs at once (default 16).
    #[must_use]
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n.max(1);
        self
    }
    /// How often it looks for runs made due by other processes (default 25 ms).
    #[must_use]
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }
    /// How long a lease lasts without renewal (default 30 s); it is renewed every third.
    #[must_use]
    pub fn lease_duration(mut self, d: Duration) -> Self {
        self.lease = d.max(Duration::from_millis(30));
        self
    }
    /// How long runs may go on after shutdown is asked for (default 30 s).
    #[must_use]
    pub fn grace_period(mut self, d: Duration) -> Self {
        self.grace_period = d;
        self
    }

    /// Serves until `shutdown`.
    ///
    /// # Errors
    ///
    /// None in practice: store errors are logged and the agent tries again.
    pub async fn run(self, orion: Orion, mut shutdown: Shutdown) -> Result<()> {
        let id = crate::ids::new_id();
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("agent-{}", &id.simple().to_string()[24..]));
        let queues = if self.work_queues.is_empty() {
            vec![WorkQueue::DEFAULT.to_owned()]
        } else {
            self.work_queues.clone()
        };
        let client = orion.client().clone();
        let flows: Vec<String> = crate::registry::flows()
            .iter()
            .map(|f| f.name.to_owned())
            .collect();
        log(
            LogLevel::Info,
            SOURCE,
            &format!(
                "Agent '{name}' started! Looking for work from queue(s): {}...",
                queues.join(", ")
            ),
        );
        let running: Running = Arc::default();
        let mut tasks: JoinSet<Uuid> = JoinSet::new();
        let renewer = tokio::spawn(renew(
            orion.clone(),
            id,
            Arc::clone(&running),
            self.lease,
            shutdown.clone(),
        ));
        let mut last_polled: Option<tokio::time::Instant> = None;
        loop {
            while let Some(done) = tasks.try_join_next() {
                forget(&running, done);
            }
            if shutdown.is_requested() {
                break;
            }
            // Queue status: who polled and when, at most once a second.
            if last_polled.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                if let Err(e) = client.poll_work_queues(&queues, &name).await {
                    log(
                        LogLevel::Error,
                        SOURCE,
                        &format!("could not poll the work queues: {e}"),
                    );
                }
                last_polled = Some(tokio::time::Instant::now());
            }
            // Listen before looking: a run made due while this pass looks wakes the next wait.
            let due = client.runs_due().notified();
            tokio::pin!(due);
            due.as_mut().enable();
            let free = self.limit.saturating_sub(tasks.len());
            let mut claimed_all = false;
            let looked_at = client.now();
            if free > 0 {
                let request = ClaimRequest::new(id, &name, queues.clone(), free, self.lease)
                    .flows(flows.clone());
                match client.claim_flow_runs(&request).await {
                    Ok(runs) => {
                        claimed_all = !runs.is_empty() && runs.len() == free;
                        for run in runs {
                            self.submit(&orion, &running, &mut tasks, run);
                        }
                    }
                    Err(e) => log(
                        LogLevel::Error,
                        SOURCE,
                        &format!("could not claim runs: {e}"),
                    ),
                }
            }
            if claimed_all && tasks.len() < self.limit {
                continue;
            }
            // Sleep until a run is due, a slot frees, this runtime makes runs due, or the
            // poll interval passes.
            let mut wait = client
                .store()
                .poll_interval()
                .map_or(self.poll_interval, |p| p.max(self.poll_interval));
            if tasks.len() < self.limit {
                // A run due already was not claimable (another program's flow, a paused or
                // full queue): only a future due time shortens the wait.
                if let Ok(Some(at)) = client.next_due(&queues).await {
                    if at > looked_at && at <= client.now() {
                        // Became due after the claim looked: look again at once.
                        continue;
                    }
                    let until = client.now().duration_until(at);
                    if let Ok(until) = Duration::try_from(until) {
                        if until > TIMER_TICK * 2 {
                            // The timer rounds up to its 1 ms tick: wake a tick early.
                            wait = wait.min(until - TIMER_TICK);
                        } else if !until.is_zero() {
                            // Less than two ticks to go: yield until it is due. (On a paused
                            // test clock time stands still while tasks yield: sleep then.)
                            let deadline = std::time::Instant::now() + until;
                            while client.now() < at && std::time::Instant::now() < deadline {
                                tokio::task::yield_now().await;
                            }
                            if client.now() < at {
                                tokio::time::sleep(until).await;
                            }
                            continue;
                        }
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = due => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => forget(&running, done),
                () = shutdown.requested() => {}
            }
        }

        // Shutdown: claim nothing more; let the runs finish within the grace period.
        if !tasks.is_empty() {
            log(
                LogLevel::Info,
                SOURCE,
                &format!(
                    "Agent '{name}' stopping: waiting up to {} s for {} run(s) to finish",
                    self.grace_period.as_secs_f64(),
                    tasks.len()
                ),
            );
        }
        let deadline = tokio::time::Instant::now() + self.grace_period;
        while !tasks.is_empty() {
            match tokio::time::timeout_at(deadline, tasks.join_next()).await {
                Ok(Some(done)) => forget(&running, done),
                Ok(None) => break,
                Err(_) => break,
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        renewer.abort();
        let left: Vec<Uuid> = running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect();
        for run_id in left {
            hand_back(&orion, run_id, &name).await;
        }
        log(LogLevel::Info, SOURCE, &format!("Agent '{name}' stopped"));
        Ok(())
    }

    fn submit(&self, orion: &Orion, running: &Running, tasks: &mut JoinSet<Uuid>, run: FlowRun) {
        let (run_id, run_name) = (run.id, run.name.clone());
        log(
            LogLevel::Info,
            SOURCE,
            &format!("Submitting flow run '{run_name}'"),
        );
        running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run_id, run_name.clone());
        let orion = orion.clone();
        tasks.spawn(async move {
            let Some(flow) = crate::registry::flow(&run.flow_name) else {
                return run_id;
            };
            if let Err(e) = flow.run_existing(&orion, run).await {
                // Parameters that do not fit the flow: the run cannot start here.
                let proposed = State::failed(format!("Flow run could not start: {e}"));
                fail_unstarted(&orion, run_id, proposed).await;
            }
            run_id
        });
        log(
            LogLevel::Info,
            SOURCE,
            &format!("Completed submission of flow run '{run_name}'"),
        );
    }
}

fn forget(running: &Running, done: std::result::Result<Uuid, tokio::task::JoinError>) {
    match done {
        Ok(id) => {
            running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
        // A panic outside the flow body (the body's own panics fail its run): the run is
        // left to the reaper, which finds its lease lapsed once no one renews it.
        Err(e) if e.is_panic() => log(
            LogLevel::Error,
            SOURCE,
            &format!(
                "a flow run's task panicked: {}",
                crate::engine::panic_text(&e.into_panic())
            ),
        ),
        Err(_) => {}
    }
}

/// Renews the leases of the running runs every third of the lease; a run found Cancelling,
/// finished or held by someone else is stopped here.
async fn renew(
    orion: Orion,
    owner: Uuid,
    running: Running,
    lease: Duration,
    mut shutdown: Shutdown,
) {
    let client = orion.client();
    let mut stopping = false;
    loop {
        if stopping {
            // Runs still going during the grace period keep their leases.
            tokio::time::sleep(lease / 3).await;
        } else {
            stopping = shutdown.sleep(lease / 3).await;
        }
        if stopping && running.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
            return;
        }
        let ids: Vec<Uuid> = running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect();
        if ids.is_empty() {
            continue;
        }
        match client.renew_leases(owner, ids, lease).await {
            Ok(renewals) => {
                for r in renewals {
                    let stop = !r.held
                        || r.state.as_ref().is_none_or(|s| {
                            s.is_final() || s.state_type() == crate::StateType::Cancelling
                        });
                    if stop {
                        client.request_stop(r.id);
                    }
                }
            }
            Err(e) => log(
                LogLevel::Error,
                SOURCE,
                &format!("could not renew leases: {e}"),
            ),
        }
    }
}

/// A run stopped at shutdown: Crashed (its retry policy may send it back to the queue).
async fn hand_back(orion: &Orion, id: Uuid, agent: &str) {
    let client = orion.client();
    let Ok(Some(run)) = client.read_flow_run(id).await else {
        return;
    };
    let Some(current) = run.state.as_ref().filter(|s| !s.is_final()) else {
        return;
    };
    let proposed = State::crashed(format!("agent '{agent}' shut down before the run finished"));
    let run_ref = RunRef::flow(id, Some(current), run.run_count, &run.retry).fence();
    let _ = client.propose_state(run_ref, proposed).await;
}

/// A claimed run that could not start: it ends with `proposed`.
async fn fail_unstarted(orion: &Orion, id: Uuid, proposed: State) {
    let client = orion.client();
    if let Ok(Some(run)) = client.read_flow_run(id).await {
        if let Some(current) = run.state.as_ref().filter(|s| !s.is_final()) {
            let run_ref =
                RunRef::flow(id, Some(current), run.run_count, &RetryPolicy::NONE).fence();
            let _ = client.propose_state(run_ref, proposed).await;
        }
    }
}
