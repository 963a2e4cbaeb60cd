//! The scheduler: keeps each active deployment's runs created ahead, and applies its
//! catch-up policy to the slots missed while nothing was serving.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

use super::{Shutdown, log};
use crate::deployment::DeploymentRunOptions;
use crate::state::{RetryPolicy, State, StateType};
use crate::store::{CatchUp, Deployment, DeploymentFilter, FlowRun, FlowRunFilter, LogLevel, Sort};
use crate::{Orion, OrionClient, Result, RunRef};

const SOURCE: &str = "orion.scheduler";

/// Creates the future runs of every active deployment's active schedules, as Prefect 3
/// does: at least [`Scheduler::min_runs`] runs and [`Scheduler::min_time`] ahead, at most
/// [`Scheduler::max_runs`] runs and [`Scheduler::max_time`] ahead (defaults 3 runs and one
/// hour, 100 runs and 100 days).
///
/// Each run is `Scheduled` at its slot, `auto_scheduled`, tagged `auto-scheduled`, with the
/// schedule's parameters merged over the deployment's, and carries an idempotency key made
/// of the deployment's id and the slot's time: however many schedulers run at once (in any
/// number of processes on one store), and however often a deployment is applied again, a
/// slot has one run. Runs are inserted in one write per deployment.
///
/// Each pass also applies the deployments' catch-up policies ([`CatchUp`]) to runs whose
/// slot passed more than [`Scheduler::catchup_after`] ago without any agent taking them.
///
/// ```
/// use std::time::Duration;
/// use orion::prelude::*;
/// use orion::services::Scheduler;
///
/// #[flow(name = "nightly-report")]
/// async fn report() {}
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> orion::Result<()> {
/// let orion = Orion::memory();
/// DeploymentSpec::new("hourly")
///     .flow(report)
///     .schedule(IntervalSchedule::new(Duration::from_secs(3600))?)
///     .apply(orion.client())
///     .await?;
/// let pass = Scheduler::new().run_once(&orion).await?;
/// assert_eq!(pass.created, 3, "three runs, the first one hour ahead or less");
/// assert_eq!(Scheduler::new().run_once(&orion).await?.created, 0, "never twice");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Scheduler {
    loop_interval: Duration,
    min_runs: usize,
    max_runs: usize,
    min_time: Duration,
    max_time: Duration,
    catchup_after: Duration,
    /// Per deployment: the version seen (its `updated`) and the last slot created, so a pass
    /// over deployments that have enough runs ahead reads nothing more.
    ahead: Mutex<HashMap<Uuid, (Timestamp, Option<Timestamp>)>>,
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler {
            loop_interval: Duration::from_secs(10),
            min_runs: 3,
            max_runs: 100,
            min_time: Duration::from_secs(3600),
            max_time: Duration::from_secs(100 * 86_400),
            catchup_after: Duration::from_secs(15),
            ahead: Mutex::default(),
        }
    }
}

/// What one scheduler pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchedulerPass {
    /// Deployments looked at.
    pub deployments: usize,
    /// Runs created.
    pub created: usize,
    /// Missed runs cancelled by a catch-up policy.
    pub skipped: usize,
}

impl Scheduler {
    /// A scheduler with Prefect's settings, passing every 10 seconds.
    pub fn new() -> Self {
        Self::default()
    }
    /// Time between passes (default 10 s).
    #[must_use]
    pub fn loop_interval(mut self, d: Duration) -> Self {
        self.loop_interval = d;
        self
    }
    /// Runs kept ahead per schedule at least (default 3).
    #[must_use]
    pub fn min_runs(mut self, n: usize) -> Self {
        self.min_runs = n;
        self
    }
    /// Runs kept ahead per schedule at most (default 100).
    #[must_use]
    pub fn max_runs(mut self, n: usize) -> Self {
        self.max_runs = n.max(1);
        self
    }
    /// Time covered ahead at least (default one hour).
    #[must_use]
    pub fn min_time(mut self, d: Duration) -> Self {
        self.min_time = d;
        self
    }
    /// Time covered ahead at most (default 100 days).
    #[must_use]
    pub fn max_time(mut self, d: Duration) -> Self {
        self.max_time = d;
        self
    }
    /// How long past its slot a run waits for an agent before a catch-up policy counts it
    /// missed (default 15 s, the late-run threshold).
    #[must_use]
    pub fn catchup_after(mut self, d: Duration) -> Self {
        self.catchup_after = d;
        self
    }

    /// Runs passes every [`Scheduler::loop_interval`] until shutdown.
    ///
    /// # Errors
    ///
    /// None in practice: a failed pass is logged and tried again.
    pub async fn run(self, orion: Orion, shutdown: Shutdown) -> Result<()> {
        log(LogLevel::Info, SOURCE, "Scheduler started");
        let every = self.loop_interval;
        super::every(SOURCE, every, shutdown, || async {
            let pass = self.run_once(&orion).await?;
            if pass.created > 0 || pass.skipped > 0 {
                log(
                    LogLevel::Info,
                    SOURCE,
                    &format!(
                        "Scheduled {} run(s) of {} deployment(s); skipped {} missed run(s)",
                        pass.created, pass.deployments, pass.skipped
                    ),
                );
            }
            Ok(())
        })
        .await
    }

    /// One pass over every active deployment.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn run_once(&self, orion: &Orion) -> Result<SchedulerPass> {
        let client = orion.client();
        let now = client.now();
        let deployments = client
            .read_deployments(&DeploymentFilter::new().paused(false))
            .await?;
        let mut pass = SchedulerPass {
            deployments: deployments.len(),
            ..SchedulerPass::default()
        };
        for d in &deployments {
            if d.catchup != CatchUp::All {
                pass.skipped += self.catch_up(client, d, now).await?;
            }
            if self.has_enough(d, now) {
                continue;
            }
            let mut runs = self.runs_ahead(client, d, now);
            let last = runs.iter().filter_map(|r| r.expected_start_time).max();
            if let Some(through) = self.created_through(d) {
                // Slots up to there have their runs already.
                runs.retain(|r| r.expected_start_time.is_some_and(|at| at > through));
            }
            if !runs.is_empty() {
                let ours: std::collections::HashSet<Uuid> = runs.iter().map(|r| r.id).collect();
                let stored = client.create_flow_runs(runs).await?;
                // A taken idempotency key gives back the run that holds the slot already.
                pass.created += stored.iter().filter(|r| ours.contains(&r.id)).count();
            }
            let last = last.max(self.created_through(d));
            self.lock().insert(d.id, (d.updated, last));
        }
        Ok(pass)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Timestamp, Option<Timestamp>)>> {
        self.ahead.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last slot an earlier pass created for `d` as it is now (None: `d` is new or
    /// changed since).
    fn created_through(&self, d: &Deployment) -> Option<Timestamp> {
        match self.lock().get(&d.id).copied() {
            Some((seen, last)) if seen == d.updated => last,
            _ => None,
        }
    }

    /// Whether the runs created through `last` are all the rule asks for now, found without
    /// reading the store: the next slot after `last` would not be added, and at least
    /// `min_runs` are still ahead. Cheap for sparse schedules (an hourly cron takes one step).
    fn has_enough(&self, d: &Deployment, now: Timestamp) -> bool {
        let Some(last) = self.created_through(d) else {
            return false;
        };
        let min_end = add(now, self.min_time);
        let max_end = add(now, self.max_time);
        d.schedules.iter().filter(|s| s.active).all(|s| {
            let Some(next) = s
                .schedule
                .iter_from(add(last, Duration::from_nanos(1)))
                .next()
            else {
                return true; // the schedule ends: nothing more to create
            };
            let next = next.timestamp();
            let ahead_at_least = |n: usize| {
                n == 0
                    || s.schedule
                        .iter_from(now)
                        .nth(n - 1)
                        .is_some_and(|z| z.timestamp() <= last)
            };
            if !ahead_at_least(self.min_runs) {
                return false;
            }
            next > min_end || next > max_end || ahead_at_least(self.max_runs)
        })
    }

    /// The runs that should exist ahead for `d`'s active schedules.
    fn runs_ahead(&self, client: &OrionClient, d: &Deployment, now: Timestamp) -> Vec<FlowRun> {
        let min_end = add(now, self.min_time);
        let max_end = add(now, self.max_time);
        let mut slots: Vec<(Timestamp, usize)> = Vec::new();
        for (index, s) in d.schedules.iter().enumerate().filter(|(_, s)| s.active) {
            for (count, date) in s.schedule.iter_from(now).enumerate() {
                let at = date.timestamp();
                if count >= self.max_runs || at > max_end {
                    break;
                }
                if count >= self.min_runs && at > min_end {
                    break;
                }
                slots.push((at, index));
            }
        }
        slots.sort();
        // One run per slot of the deployment, whichever schedule names it first.
        slots.dedup_by_key(|(at, _)| *at);
        slots
            .into_iter()
            .map(|(at, index)| {
                let options = DeploymentRunOptions::new()
                    .scheduled_time(at)
                    .schedule_index(index)
                    .tags(["auto-scheduled"])
                    .idempotency_key(slot_key(d.id, at));
                client.deployment_run(d, options)
            })
            .collect()
    }

    /// Cancels the missed runs `d`'s catch-up policy does not keep; returns how many.
    async fn catch_up(
        &self,
        client: &OrionClient,
        d: &Deployment,
        now: Timestamp,
    ) -> Result<usize> {
        let missed_before = now
            .checked_sub(
                SignedDuration::try_from(self.catchup_after).unwrap_or(SignedDuration::MAX),
            )
            .unwrap_or(Timestamp::MIN);
        let filter = FlowRunFilter::new()
            .deployment_id(d.id)
            .auto_scheduled(true)
            .state_types([StateType::Scheduled])
            .expected_start_between(None, Some(missed_before))
            .sort(Sort::ExpectedStartAsc);
        let mut missed = client.read_flow_runs(&filter).await?;
        let keep_latest = d.catchup == CatchUp::Latest;
        if keep_latest {
            missed.pop();
        }
        let mut skipped = 0;
        for run in missed {
            let Some(current) = run.state.as_ref() else {
                continue;
            };
            let why = if keep_latest {
                "Skipped: a later slot of this deployment was missed too, and its catch-up policy is 'latest'"
            } else {
                "Skipped: its slot passed while nothing was serving, and the deployment's catch-up policy is 'none'"
            };
            let run_ref =
                RunRef::flow(run.id, Some(current), run.run_count, &RetryPolicy::NONE).fence();
            // Claimed meanwhile: it runs after all.
            if client
                .propose_state(run_ref, State::cancelled(why))
                .await
                .is_ok()
            {
                skipped += 1;
            }
        }
        Ok(skipped)
    }

    /// Creates runs of `d` for every slot of its active schedules in `[start, end]` (at most
    /// [`crate::schedule::MAX_DATES`]), Scheduled at their slot times — due at once when in
    /// the past — with the same idempotency keys the scheduler uses: a backfill never
    /// doubles a slot that has a run. The runs are not `auto_scheduled`, so catch-up
    /// policies and redeploys leave them alone. Returns the runs of the window.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn backfill(
        client: &OrionClient,
        d: &Deployment,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<FlowRun>> {
        let mut slots: Vec<(Timestamp, usize)> = Vec::new();
        for (index, s) in d.schedules.iter().enumerate().filter(|(_, s)| s.active) {
            slots.extend(
                s.schedule
                    .dates_between(start, end)
                    .iter()
                    .map(|z| (z.timestamp(), index)),
            );
        }
        slots.sort();
        slots.dedup_by_key(|(at, _)| *at);
        let runs = slots
            .into_iter()
            .map(|(at, index)| {
                let options = DeploymentRunOptions::new()
                    .scheduled_time(at)
                    .schedule_index(index)
                    .tags(["backfill"])
                    .idempotency_key(slot_key(d.id, at));
                let mut run = client.deployment_run(d, options);
                run.auto_scheduled = false;
                run
            })
            .collect();
        client.create_flow_runs(runs).await
    }
}

/// The idempotency key of deployment `id`'s slot at `at`: stable across redeploys and
/// processes.
fn slot_key(id: Uuid, at: Timestamp) -> String {
    format!("scheduled {id} {at}")
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}
