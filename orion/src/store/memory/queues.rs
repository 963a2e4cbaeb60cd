//! The memory store's work-queue index and claims: each queue's waiting runs in time order and
//! its held runs, kept on every state write, so an agent's poll and a claim's limit check
//! never scan the store.

use std::collections::{BTreeSet, HashSet};

use jiff::Timestamp;
use uuid::Uuid;

use super::Inner;
use crate::state::{State, StateType};
use crate::store::bookkeeping::{claimable, holds_a_slot};
use crate::store::{Claim, FlowRun, FlowRunFilter};

/// One queue's runs that agents look for.
#[derive(Debug, Default)]
pub(super) struct QueueRuns {
    /// Scheduled runs by expected start.
    waiting: BTreeSet<(Timestamp, Uuid)>,
    /// Pending, Running and Cancelling runs.
    held: HashSet<Uuid>,
}

/// Where a run of a work queue sits in the queue's index.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct QueueSlot {
    queue: String,
    at: Timestamp,
    id: Uuid,
    waiting: bool,
    held: bool,
    deployment: Option<Uuid>,
}

impl QueueSlot {
    /// None for a run in no queue.
    pub(super) fn of(run: &FlowRun) -> Option<Self> {
        Some(QueueSlot {
            queue: run.work_queue_name.clone()?,
            at: run.expected_start_time.unwrap_or(Timestamp::MIN),
            id: run.id,
            waiting: run.state.as_ref().is_some_and(State::is_scheduled),
            held: holds_a_slot(run.state.as_ref()),
            deployment: run.deployment_id,
        })
    }
}

impl Inner {
    /// Moves a run's place in its queue's index from `before` to `after`.
    pub(super) fn reindex(&mut self, before: Option<QueueSlot>, after: Option<QueueSlot>) {
        if before == after {
            return;
        }
        if let Some(b) = before {
            if let Some(q) = self.queued.get_mut(&b.queue) {
                q.waiting.remove(&(b.at, b.id));
                q.held.remove(&b.id);
            }
            if let (true, Some(d)) = (b.held, b.deployment) {
                if let Some(held) = self.held_by_deployment.get_mut(&d) {
                    held.remove(&b.id);
                    if held.is_empty() {
                        self.held_by_deployment.remove(&d);
                    }
                }
            }
        }
        if let Some(a) = after {
            if let (true, Some(d)) = (a.held, a.deployment) {
                self.held_by_deployment.entry(d).or_default().insert(a.id);
            }
            let q = self.queued.entry(a.queue).or_default();
            if a.waiting {
                q.waiting.insert((a.at, a.id));
            } else if a.held {
                q.held.insert(a.id);
            }
        }
    }

    /// The due runs of a queue, earliest first, when `filter` asks exactly for those.
    pub(super) fn waiting_in_queue<'a>(
        &'a self,
        filter: &'a FlowRunFilter,
    ) -> Option<Box<dyn Iterator<Item = &'a FlowRun> + 'a>> {
        let queue = filter.work_queue_name.as_ref()?;
        if filter.state_types != [StateType::Scheduled] || filter.deployment_id.is_some() {
            return None;
        }
        let waiting = self.queued.get(queue).map(|q| &q.waiting);
        Some(Box::new(
            waiting
                .into_iter()
                .flatten()
                .take_while(move |(at, _)| filter.expected_start_before.is_none_or(|b| *at <= b))
                .filter_map(|(_, id)| self.flow_runs.get(id))
                .map(|e| &e.run)
                .filter(move |r| filter.matches(r)),
        ))
    }

    /// Claims what `claim` names that is still claimable, while its queue has room.
    pub(super) fn claim(&mut self, claim: &Claim) -> Vec<FlowRun> {
        let queue = self.work_queues.get(&claim.work_queue);
        if queue.is_some_and(|q| q.paused) {
            return Vec::new();
        }
        let limit = queue.and_then(|q| q.concurrency_limit).map(|l| l as usize);
        let mut claimed = Vec::new();
        let mut taken = 0;
        for want in &claim.runs {
            if taken >= claim.take {
                break;
            }
            let held = self
                .queued
                .get(&claim.work_queue)
                .map_or(0, |q| q.held.len());
            if limit.is_some_and(|l| held >= l) {
                break;
            }
            let full = want.deployment_limit.as_ref().filter(|d| {
                let held = self.held_by_deployment.get(&d.deployment_id);
                held.map_or(0, HashSet::len) >= d.limit as usize
            });
            let Some(entry) = self.flow_runs.get_mut(&want.id) else {
                continue;
            };
            if !claimable(&entry.run, want, &claim.lease) {
                continue;
            }
            let before = QueueSlot::of(&entry.run);
            if let Some(full) = full {
                // The deployment is full: the run waits (or is cancelled) instead, holding
                // nothing.
                let Some(state) = full.when_full.clone() else {
                    continue;
                };
                entry.set_state(Some(want.expected), state);
                let after = entry.run.clone();
                self.reindex(before, QueueSlot::of(&after));
                claimed.push(after);
                continue;
            }
            entry.set_state(Some(want.expected), want.state.clone());
            entry.run.lease = Some(claim.lease.clone());
            let after = entry.run.clone();
            self.reindex(before, QueueSlot::of(&after));
            claimed.push(after);
            taken += 1;
        }
        claimed
    }
}
