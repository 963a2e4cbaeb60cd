//! The scheduler: keeps each active deployment's runs created ahead, and applies its
//! catch-up policy to the slots missed while nothing was serving.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

use super::{Shutdown, log};
use crate::deployment::DeploymentRunOptions;
use crate::state::{RetryPolicy, State, StateType};
use crate::store::{CatchUp, Deployment, DeploymentFilter, FlowRun, FlowRunFilter, LogLevel, Sort};
use crate::{Orion, OrionClient, Result, RunRef};

const SOURCE: &str = "orion.scheduler";

/// Runs inserted in one write, at most.
const INSERT_BATCH: usize = 5_000;

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
    /// Per deployment, what an earlier pass created, so a pass over deployments that have
    /// enough runs ahead evaluates no schedule and reads nothing more.
    ahead: Mutex<HashMap<Uuid, Ahead>>,
}

/// The runs a pass created ahead for one deployment, as it was then.
#[derive(Debug, Clone)]
struct Ahead {
    /// The deployment's `updated` then: a change makes the entry stale.
    updated: Timestamp,
    /// The deployment as it was then.
    deployment: Arc<Deployment>,
    /// Per schedule (by index), its slots with runs and the next date after them.
    schedules: Vec<SlotsAhead>,
}

#[derive(Debug, Clone, Default)]
struct SlotsAhead {
    /// Slots that have runs, in order.
    slots: Vec<Timestamp>,
    /// The schedule's first date after the last slot (None: it ends).
    next: Option<Timestamp>,
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
        let deployments = self.active_deployments(client).await?;
        let mut pass = SchedulerPass {
            deployments: deployments.len(),
            ..SchedulerPass::default()
        };
        // Runs of many deployments go into one write: a pass over 10,000 deployments is a
        // few transactions, not 10,000 (each of which waits for the disk on the file store).
        let mut batch: Vec<FlowRun> = Vec::new();
        let mut remembered: Vec<(Uuid, Ahead)> = Vec::new();
        for shared in &deployments {
            let d = shared.as_ref();
            if d.catchup != CatchUp::All {
                pass.skipped += self.catch_up(client, d, now).await?;
            }
            if self.has_enough(d, now) {
                continue;
            }
            let (mut runs, ahead) = self.runs_ahead(client, shared, now);
            if let Some(before) = self.cached(d) {
                // Slots up to what an earlier pass created have their runs already.
                let through = before
                    .schedules
                    .iter()
                    .filter_map(|s| s.slots.last().copied())
                    .max();
                if let Some(through) = through {
                    runs.retain(|r| r.expected_start_time.is_some_and(|at| at > through));
                }
            }
            batch.extend(runs);
            remembered.push((d.id, ahead));
            if batch.len() >= INSERT_BATCH {
                pass.created += self.insert(client, &mut batch, &mut remembered).await?;
            }
        }
        pass.created += self.insert(client, &mut batch, &mut remembered).await?;
        Ok(pass)
    }

    /// The active deployments: the ones unchanged since the last pass from memory, the rest
    /// read from the store (a pass over unchanged deployments reads only their versions).
    async fn active_deployments(&self, client: &OrionClient) -> Result<Vec<Arc<Deployment>>> {
        let versions = client.read_deployment_versions().await?;
        let mut known: HashMap<Uuid, Arc<Deployment>> = {
            let mut cache = self.lock();
            let live: std::collections::HashSet<Uuid> = versions.iter().map(|v| v.id).collect();
            cache.retain(|id, _| live.contains(id));
            versions
                .iter()
                .filter_map(|v| {
                    let a = cache.get(&v.id).filter(|a| a.updated == v.updated)?;
                    Some((v.id, Arc::clone(&a.deployment)))
                })
                .collect()
        };
        let stale: Vec<Uuid> = versions
            .iter()
            .filter(|v| !v.paused && !known.contains_key(&v.id))
            .map(|v| v.id)
            .collect();
        if stale.len() > 64 {
            for d in client
                .read_deployments(&DeploymentFilter::new().paused(false))
                .await?
            {
                known.insert(d.id, Arc::new(d));
            }
        } else {
            for id in stale {
                if let Some(d) = client.read_deployment(id).await? {
                    known.insert(id, Arc::new(d));
                }
            }
        }
        Ok(versions
            .iter()
            .filter(|v| !v.paused)
            .filter_map(|v| known.remove(&v.id))
            .filter(|d| !d.paused)
            .collect())
    }

    /// Inserts the runs gathered so far; once stored, remembers what their deployments have.
    async fn insert(
        &self,
        client: &OrionClient,
        batch: &mut Vec<FlowRun>,
        remembered: &mut Vec<(Uuid, Ahead)>,
    ) -> Result<usize> {
        let runs = std::mem::take(batch);
        let mut created = 0;
        if !runs.is_empty() {
            let ours: std::collections::HashSet<Uuid> = runs.iter().map(|r| r.id).collect();
            let stored = client.create_flow_runs(runs).await?;
            // A taken idempotency key gives back the run that holds the slot already.
            created = stored.iter().filter(|r| ours.contains(&r.id)).count();
        }
        self.lock().extend(remembered.drain(..));
        Ok(created)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Ahead>> {
        self.ahead.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What an earlier pass created for `d` as it is now (None: new or changed since).
    fn cached(&self, d: &Deployment) -> Option<Ahead> {
        self.lock()
            .get(&d.id)
            .filter(|a| a.updated == d.updated)
            .cloned()
    }

    /// Whether the runs an earlier pass created are all the rule asks for now, decided from
    /// what that pass remembered, without evaluating a schedule: at least `min_runs` are still
    /// ahead (or the schedule ends), and the next date would fall outside the minimum window
    /// or beyond `max_runs`.
    fn has_enough(&self, d: &Deployment, now: Timestamp) -> bool {
        let guard = self.lock();
        let Some(ahead) = guard.get(&d.id).filter(|a| a.updated == d.updated) else {
            return false;
        };
        let min_end = add(now, self.min_time);
        let max_end = add(now, self.max_time);
        d.schedules
            .iter()
            .enumerate()
            .filter(|(_, s)| s.active)
            .all(|(i, _)| {
                let Some(slots) = ahead.schedules.get(i) else {
                    return false;
                };
                let Some(next) = slots.next else {
                    return true; // the schedule ends: nothing more to create
                };
                let left = slots.slots.len() - slots.slots.partition_point(|t| *t < now);
                next > max_end || left >= self.max_runs || (left >= self.min_runs && next > min_end)
            })
    }

    /// The runs that should exist ahead for `d`'s active schedules, and what to remember
    /// of them.
    fn runs_ahead(
        &self,
        client: &OrionClient,
        shared: &Arc<Deployment>,
        now: Timestamp,
    ) -> (Vec<FlowRun>, Ahead) {
        let d = shared.as_ref();
        let min_end = add(now, self.min_time);
        let max_end = add(now, self.max_time);
        let mut slots: Vec<(Timestamp, usize)> = Vec::new();
        let mut remembered = vec![SlotsAhead::default(); d.schedules.len()];
        for (index, s) in d.schedules.iter().enumerate().filter(|(_, s)| s.active) {
            let mine = &mut remembered[index];
            for (count, date) in s.schedule.iter_from(now).enumerate() {
                let at = date.timestamp();
                let full = count >= self.max_runs || at > max_end;
                if full || (count >= self.min_runs && at > min_end) {
                    mine.next = Some(at);
                    break;
                }
                mine.slots.push(at);
                slots.push((at, index));
            }
        }
        let runs = slot_runs(client, d, slots, "auto-scheduled");
        let ahead = Ahead {
            updated: d.updated,
            deployment: Arc::clone(shared),
            schedules: remembered,
        };
        (runs, ahead)
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
        let mut runs = slot_runs(client, d, slots, "backfill");
        for run in &mut runs {
            run.auto_scheduled = false;
        }
        client.create_flow_runs(runs).await
    }
}

/// One Scheduled run of `d` per distinct slot time in `slots` (`(time, schedule index)`),
/// whichever schedule names the time first, tagged `tag` and keyed by [`slot_key`].
fn slot_runs(
    client: &OrionClient,
    d: &Deployment,
    mut slots: Vec<(Timestamp, usize)>,
    tag: &str,
) -> Vec<FlowRun> {
    slots.sort();
    slots.dedup_by_key(|(at, _)| *at);
    slots
        .into_iter()
        .map(|(at, index)| {
            let options = DeploymentRunOptions::new()
                .scheduled_time(at)
                .schedule_index(index)
                .tags([tag])
                .idempotency_key(slot_key(d.id, at));
            client.deployment_run(d, options)
        })
        .collect()
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
