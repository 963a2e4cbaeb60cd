//! The reaper: runs whose agent stopped renewing its lease are found crashed.

use std::time::Duration;

use super::{Shutdown, log};
use crate::state::{State, StateType};
use crate::store::{FlowRunFilter, LogLevel};
use crate::{Orion, Result, RunRef};

const SOURCE: &str = "orion.reaper";

/// Finds flow runs whose lease expired — their agent's process died, its machine froze, its
/// network went away — and ends them as their agent never could:
///
/// - a Running run becomes `Crashed`, with a message naming the agent and when it was last
///   heard from; when its retry policy has retries left, the rules send it to
///   `AwaitingRetry` instead, and another agent runs it again;
/// - a Pending run (claimed, never started) goes back to `Scheduled` for another agent;
/// - a Cancelling run, with no one left to stop it, becomes `Cancelled`.
///
/// Its queue and deployment slots are free again at once (they are counted from states).
/// Each pass also drops the concurrency-ledger rows (task-tag and named limit slots, places
/// in line) whose leases lapsed, and wakes the waiters of this process for those limits. A stale agent that
/// wakes up later cannot overwrite the newer state: its writes are fenced by the state id.
/// A healthy run is never reaped, however long it runs: its agent renews the lease (by
/// default every 10 s of a 30 s lease).
#[derive(Debug, Clone)]
pub struct Reaper {
    loop_interval: Duration,
}

impl Default for Reaper {
    fn default() -> Self {
        Reaper {
            loop_interval: Duration::from_secs(5),
        }
    }
}

impl Reaper {
    /// A reaper passing every 5 s.
    pub fn new() -> Self {
        Self::default()
    }
    /// Time between passes.
    #[must_use]
    pub fn loop_interval(mut self, d: Duration) -> Self {
        self.loop_interval = d;
        self
    }

    /// Runs passes until shutdown.
    ///
    /// # Errors
    ///
    /// None in practice: a failed pass is logged and tried again.
    pub async fn run(self, orion: Orion, shutdown: Shutdown) -> Result<()> {
        super::every(SOURCE, self.loop_interval, shutdown, || async {
            self.run_once(&orion).await.map(|_| ())
        })
        .await
    }

    /// One pass; returns the runs it ended or rescheduled, with the state each is in now.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn run_once(&self, orion: &Orion) -> Result<Vec<(uuid::Uuid, State)>> {
        let client = orion.client();
        let freed = client.reap_slots().await?;
        if !freed.is_empty() {
            log(
                LogLevel::Warning,
                SOURCE,
                &format!(
                    "Freed concurrency slots whose holders stopped renewing them: {}",
                    freed.join(", ")
                ),
            );
        }
        let now = client.now();
        let filter = FlowRunFilter::new()
            .state_types([
                StateType::Pending,
                StateType::Running,
                StateType::Cancelling,
            ])
            .lease_expires_before(now);
        let mut reaped = Vec::new();
        for run in client.read_flow_runs(&filter).await? {
            let (Some(current), Some(lease)) = (run.state.as_ref(), run.lease.as_ref()) else {
                continue;
            };
            let heard = format!(
                "agent '{}' was last heard from at {} (its lease expired at {})",
                lease.owner_name,
                lease.renewed.strftime("%Y-%m-%d %H:%M:%S%.3f UTC"),
                lease.expires.strftime("%H:%M:%S%.3f"),
            );
            let proposed = match current.state_type() {
                StateType::Pending => State::scheduled(now)
                    .with_message(format!("Rescheduled: {heard} before it started the run")),
                StateType::Cancelling => {
                    State::cancelled(format!("Cancelled: {heard}, so no one was left to stop it"))
                }
                _ => State::crashed(format!("The run's {heard}")),
            };
            let run_ref = RunRef::flow(run.id, Some(current), run.run_count, &run.retry).fence();
            match client.propose_state(run_ref, proposed).await {
                Ok(crate::Transition::Set(state)) => {
                    log(
                        LogLevel::Warning,
                        SOURCE,
                        &format!("Flow run '{}': {heard}; now {state}", run.name),
                    );
                    reaped.push((run.id, state));
                }
                // Renewed, finished or reaped elsewhere meanwhile.
                Ok(crate::Transition::Wait(_)) | Err(crate::Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(reaped)
    }
}
