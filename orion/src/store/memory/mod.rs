//! The in-memory backend: always available, used by tests and `memory://`.

mod ledger;
mod queues;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use jiff::Timestamp;
use uuid::Uuid;

use self::queues::{QueueRuns, QueueSlot};
use super::bookkeeping::{RunTimes, keep_identity, record_state_times, renew, sort_queues, strip};
use super::{
    Acquired, Claim, ConcurrencyLimit, Deployment, DeploymentFilter, Flow, FlowRun, FlowRunFilter,
    LogFilter, LogRecord, Renewal, SetState, Slot, SlotRequest, Sort, Store, StoreError,
    StoreFuture, TaskRun, TaskRunFilter, WorkQueue,
};
use crate::state::State;

/// A [`Store`] that keeps everything in this process's memory.
///
/// Each run keeps its state history without result data; only Completed states written with a
/// cache key keep their data, in the cache index.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    flows: HashMap<Uuid, Flow>,
    flow_ids_by_name: HashMap<String, Uuid>,
    flow_runs: HashMap<Uuid, Box<Entry<FlowRun>>>,
    task_runs: HashMap<Uuid, Box<Entry<TaskRun>>>,
    task_runs_by_flow_run: HashMap<Option<Uuid>, Vec<Uuid>>,
    cache: HashMap<String, State>,
    logs_by_flow_run: HashMap<Option<Uuid>, Vec<LogRecord>>,
    idempotency: HashMap<(Uuid, String), Uuid>,
    /// Flow runs by deployment: applying a deployment looks up its runs, not all of them.
    runs_by_deployment: HashMap<Uuid, Vec<Uuid>>,
    deployments: HashMap<Uuid, Deployment>,
    deployment_ids: HashMap<(Uuid, String), Uuid>,
    work_queues: HashMap<String, WorkQueue>,
    /// The runs of each work queue that agents look for: the due ones in time order, and how
    /// many are held (so a claim checks a queue's limit without a scan).
    queued: HashMap<String, QueueRuns>,
    /// The Pending, Running and Cancelling runs of each deployment (its concurrency limit).
    held_by_deployment: HashMap<Uuid, std::collections::HashSet<Uuid>>,
    /// Concurrency limits and their slots.
    ledger: ledger::Ledger,
}

/// A run as stored: the record holding its current state, plus the states before it.
/// Boxed in the maps, so a map's spare capacity costs a pointer per slot, not a record.
#[derive(Debug)]
struct Entry<R> {
    run: R,
    earlier: Vec<State>,
}

impl<R: RunTimes + Clone> Entry<R> {
    fn new(mut run: R) -> Box<Self> {
        if let Some(first) = run.state_slot().take().map(strip) {
            record_state_times(&mut run, &first);
            *run.state_slot() = Some(first);
        }
        Box::new(Entry {
            run,
            earlier: Vec::new(),
        })
    }

    fn snapshot(&self) -> R {
        self.run.clone()
    }

    fn history(&mut self) -> Vec<State> {
        let mut all = self.earlier.clone();
        all.extend(self.run.state_slot().clone());
        all
    }

    fn set_state(&mut self, expected: Option<Uuid>, state: State) -> SetState {
        let current = self.run.state_slot();
        if current.as_ref().map(State::id) != expected {
            return SetState::Conflict {
                current: current.clone(),
            };
        }
        let done = state.is_final();
        if let Some(previous) = current.replace(strip(state)) {
            self.earlier.push(previous);
        }
        if done {
            // A finished run rarely changes again: give back the spare capacity.
            self.earlier.shrink_to_fit();
        }
        let state = self.run.state_slot().take();
        if let Some(state) = &state {
            record_state_times(&mut self.run, state);
        }
        *self.run.state_slot() = state;
        SetState::Written
    }
}

impl Inner {
    /// Writes `state` on flow run `id` if it is in `expected`, keeping the queue index.
    fn set_flow_run_state(
        &mut self,
        id: Uuid,
        expected: Option<Uuid>,
        state: State,
    ) -> Result<SetState, StoreError> {
        let Some(entry) = self.flow_runs.get_mut(&id) else {
            return Err(StoreError::NotFound {
                what: "flow run",
                id,
            });
        };
        let before = QueueSlot::of(&entry.run);
        let written = entry.set_state(expected, state);
        if written == SetState::Written {
            let after = QueueSlot::of(&entry.run);
            self.reindex(before, after);
        }
        Ok(written)
    }

    /// The flow runs passing `filter`, found through the deployment index when it names one.
    fn matching_runs<'a>(
        &'a self,
        filter: &'a FlowRunFilter,
    ) -> Box<dyn Iterator<Item = &'a FlowRun> + 'a> {
        if let Some(waiting) = self.waiting_in_queue(filter) {
            return waiting;
        }
        let runs: Box<dyn Iterator<Item = &'a FlowRun> + 'a> = match filter.deployment_id {
            _ if !filter.ids.is_empty() => Box::new(
                filter
                    .ids
                    .iter()
                    .filter_map(|id| self.flow_runs.get(id))
                    .map(|e| &e.run),
            ),
            Some(d) => Box::new(
                self.runs_by_deployment
                    .get(&d)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| self.flow_runs.get(id))
                    .map(|e| &e.run),
            ),
            None => Box::new(self.flow_runs.values().map(|e| &e.run)),
        };
        Box::new(runs.filter(move |r| filter.matches(r)))
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written record (every write is a
        // single push or insert), so a poisoned lock is safe to keep using.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn ready<'a, T: Send + 'a>(value: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl Store for MemoryStore {
    fn upsert_flow(&self, flow: Flow) -> StoreFuture<'_, Flow> {
        let mut inner = self.lock();
        if let Some(id) = inner.flow_ids_by_name.get(&flow.name) {
            let existing = inner.flows[id].clone();
            return ready(Ok(existing));
        }
        inner.flow_ids_by_name.insert(flow.name.clone(), flow.id);
        inner.flows.insert(flow.id, flow.clone());
        ready(Ok(flow))
    }

    fn read_flow(&self, id: Uuid) -> StoreFuture<'_, Option<Flow>> {
        ready(Ok(self.lock().flows.get(&id).cloned()))
    }

    fn read_flow_by_name<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Flow>> {
        let inner = self.lock();
        ready(Ok(inner
            .flow_ids_by_name
            .get(name)
            .map(|id| inner.flows[id].clone())))
    }

    fn read_flows(&self) -> StoreFuture<'_, Vec<Flow>> {
        let mut flows: Vec<Flow> = self.lock().flows.values().cloned().collect();
        flows.sort_by(|a, b| a.name.cmp(&b.name));
        ready(Ok(flows))
    }

    fn create_flow_run(&self, run: FlowRun) -> StoreFuture<'_, FlowRun> {
        let mut inner = self.lock();
        if !inner.flows.contains_key(&run.flow_id) {
            return ready(Err(StoreError::NotFound {
                what: "flow",
                id: run.flow_id,
            }));
        }
        if inner.flow_runs.contains_key(&run.id) {
            return ready(Err(StoreError::AlreadyExists {
                what: "flow run",
                key: run.id.to_string(),
            }));
        }
        if let Some(key) = &run.idempotency_key {
            if let Some(existing) = inner.idempotency.get(&(run.flow_id, key.clone())) {
                let existing = inner.flow_runs[existing].snapshot();
                return ready(Ok(existing));
            }
        }
        let entry = Entry::new(run);
        let snapshot = entry.snapshot();
        if let Some(key) = &snapshot.idempotency_key {
            inner
                .idempotency
                .insert((snapshot.flow_id, key.clone()), snapshot.id);
        }
        if let Some(deployment) = snapshot.deployment_id {
            inner
                .runs_by_deployment
                .entry(deployment)
                .or_default()
                .push(snapshot.id);
        }
        inner.reindex(None, QueueSlot::of(&snapshot));
        inner.flow_runs.insert(snapshot.id, entry);
        ready(Ok(snapshot))
    }

    fn delete_flow_runs<'a>(&'a self, filter: &'a FlowRunFilter) -> StoreFuture<'a, usize> {
        let mut inner = self.lock();
        let doomed: Vec<Uuid> = inner.matching_runs(filter).map(|r| r.id).collect();
        for id in &doomed {
            if let Some(entry) = inner.flow_runs.remove(id) {
                inner.reindex(QueueSlot::of(&entry.run), None);
                if let Some(key) = entry.run.idempotency_key {
                    inner.idempotency.remove(&(entry.run.flow_id, key));
                }
                if let Some(d) = entry.run.deployment_id {
                    if let Some(ids) = inner.runs_by_deployment.get_mut(&d) {
                        ids.retain(|r| r != id);
                    }
                }
            }
            for task in inner
                .task_runs_by_flow_run
                .remove(&Some(*id))
                .unwrap_or_default()
            {
                inner.task_runs.remove(&task);
            }
            inner.logs_by_flow_run.remove(&Some(*id));
        }
        ready(Ok(doomed.len()))
    }

    fn upsert_deployments(&self, deployments: Vec<Deployment>) -> StoreFuture<'_, Vec<Deployment>> {
        let mut inner = self.lock();
        if let Some(d) = deployments
            .iter()
            .find(|d| !inner.flows.contains_key(&d.flow_id))
        {
            return ready(Err(StoreError::NotFound {
                what: "flow",
                id: d.flow_id,
            }));
        }
        let mut stored = Vec::with_capacity(deployments.len());
        for mut d in deployments {
            let key = (d.flow_id, d.name.clone());
            if let Some(existing) = inner
                .deployment_ids
                .get(&key)
                .and_then(|id| inner.deployments.get(id))
            {
                d.id = existing.id;
                d.created = existing.created;
            }
            inner.deployment_ids.insert(key, d.id);
            inner.deployments.insert(d.id, d.clone());
            stored.push(d);
        }
        ready(Ok(stored))
    }

    fn read_deployment(&self, id: Uuid) -> StoreFuture<'_, Option<Deployment>> {
        ready(Ok(self.lock().deployments.get(&id).cloned()))
    }

    fn read_deployment_by_name<'a>(
        &'a self,
        flow_name: &'a str,
        name: &'a str,
    ) -> StoreFuture<'a, Option<Deployment>> {
        let inner = self.lock();
        let found = inner.flow_ids_by_name.get(flow_name).and_then(|flow_id| {
            let id = inner.deployment_ids.get(&(*flow_id, name.to_owned()))?;
            inner.deployments.get(id).cloned()
        });
        ready(Ok(found))
    }

    fn read_deployments<'a>(
        &'a self,
        filter: &'a DeploymentFilter,
    ) -> StoreFuture<'a, Vec<Deployment>> {
        let mut found: Vec<Deployment> = self
            .lock()
            .deployments
            .values()
            .filter(|d| filter.matches(d))
            .cloned()
            .collect();
        found.sort_by(|a, b| (&a.flow_name, &a.name).cmp(&(&b.flow_name, &b.name)));
        ready(Ok(found))
    }

    fn read_deployment_versions(&self) -> StoreFuture<'_, Vec<super::DeploymentVersion>> {
        let inner = self.lock();
        ready(Ok(inner
            .deployments
            .values()
            .map(|d| super::DeploymentVersion {
                id: d.id,
                updated: d.updated,
                paused: d.paused,
            })
            .collect()))
    }

    fn delete_deployment(&self, id: Uuid) -> StoreFuture<'_, bool> {
        let mut inner = self.lock();
        let removed = inner.deployments.remove(&id);
        if let Some(d) = &removed {
            inner.deployment_ids.remove(&(d.flow_id, d.name.clone()));
        }
        ready(Ok(removed.is_some()))
    }

    fn read_flow_run(&self, id: Uuid) -> StoreFuture<'_, Option<FlowRun>> {
        ready(Ok(self.lock().flow_runs.get(&id).map(|e| e.snapshot())))
    }

    fn read_flow_runs<'a>(&'a self, filter: &'a FlowRunFilter) -> StoreFuture<'a, Vec<FlowRun>> {
        let inner = self.lock();
        if filter.sort == Sort::ExpectedStartAsc {
            if let Some(waiting) = inner.waiting_in_queue(filter) {
                // Already in order: page without collecting the whole queue.
                let page = waiting
                    .skip(filter.offset)
                    .take(filter.limit.unwrap_or(usize::MAX))
                    .cloned()
                    .collect();
                return ready(Ok(page));
            }
        }
        let runs = inner.matching_runs(filter).cloned().collect();
        ready(Ok(filter.finish(runs)))
    }

    fn set_flow_run_state(
        &self,
        id: Uuid,
        expected: Option<Uuid>,
        state: State,
    ) -> StoreFuture<'_, SetState> {
        ready(self.lock().set_flow_run_state(id, expected, state))
    }

    fn read_flow_run_states(&self, id: Uuid) -> StoreFuture<'_, Vec<State>> {
        ready(match self.lock().flow_runs.get_mut(&id) {
            Some(entry) => Ok(entry.history()),
            None => Err(StoreError::NotFound {
                what: "flow run",
                id,
            }),
        })
    }

    fn create_task_run(&self, run: TaskRun) -> StoreFuture<'_, TaskRun> {
        let mut inner = self.lock();
        if let Some(flow_run_id) = run.flow_run_id {
            if !inner.flow_runs.contains_key(&flow_run_id) {
                return ready(Err(StoreError::NotFound {
                    what: "flow run",
                    id: flow_run_id,
                }));
            }
        }
        if inner.task_runs.contains_key(&run.id) {
            return ready(Err(StoreError::AlreadyExists {
                what: "task run",
                key: run.id.to_string(),
            }));
        }
        let entry = Entry::new(run);
        let snapshot = entry.snapshot();
        inner
            .task_runs_by_flow_run
            .entry(snapshot.flow_run_id)
            .or_default()
            .push(snapshot.id);
        inner.task_runs.insert(snapshot.id, entry);
        ready(Ok(snapshot))
    }

    fn read_task_run(&self, id: Uuid) -> StoreFuture<'_, Option<TaskRun>> {
        ready(Ok(self.lock().task_runs.get(&id).map(|e| e.snapshot())))
    }

    fn read_task_runs<'a>(&'a self, filter: &'a TaskRunFilter) -> StoreFuture<'a, Vec<TaskRun>> {
        let inner = self.lock();
        let runs: Vec<TaskRun> = match filter.flow_run_id {
            Some(id) => inner
                .task_runs_by_flow_run
                .get(&Some(id))
                .into_iter()
                .flatten()
                .map(|tid| inner.task_runs[tid].snapshot())
                .filter(|r| filter.matches(r))
                .collect(),
            None => inner
                .task_runs
                .values()
                .map(|e| e.snapshot())
                .filter(|r| filter.matches(r))
                .collect(),
        };
        ready(Ok(filter.finish(runs)))
    }

    fn set_task_run_state(
        &self,
        id: Uuid,
        expected: Option<Uuid>,
        state: State,
    ) -> StoreFuture<'_, SetState> {
        let mut inner = self.lock();
        let cache_entry = (state.is_completed() && state.data().is_some())
            .then(|| state.details().cache_key.clone())
            .flatten()
            .map(|key| (key, state.clone()));
        let result = match inner.task_runs.get_mut(&id) {
            Some(entry) => {
                if let Some(key) = &state.details().cache_key {
                    entry.run.cache_key = Some(key.clone());
                }
                entry.set_state(expected, state)
            }
            None => {
                return ready(Err(StoreError::NotFound {
                    what: "task run",
                    id,
                }));
            }
        };
        if result == SetState::Written {
            if let Some((key, state)) = cache_entry {
                inner.cache.insert(key, state);
            }
        }
        ready(Ok(result))
    }

    fn read_task_run_states(&self, id: Uuid) -> StoreFuture<'_, Vec<State>> {
        ready(match self.lock().task_runs.get_mut(&id) {
            Some(entry) => Ok(entry.history()),
            None => Err(StoreError::NotFound {
                what: "task run",
                id,
            }),
        })
    }

    fn read_cached_state<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<State>> {
        ready(Ok(self.lock().cache.get(key).cloned()))
    }

    fn write_logs(&self, logs: Vec<LogRecord>) -> StoreFuture<'_, ()> {
        let mut inner = self.lock();
        for log in logs {
            inner
                .logs_by_flow_run
                .entry(log.flow_run_id)
                .or_default()
                .push(log);
        }
        ready(Ok(()))
    }

    fn read_logs<'a>(&'a self, filter: &'a LogFilter) -> StoreFuture<'a, Vec<LogRecord>> {
        let inner = self.lock();
        let mut logs: Vec<LogRecord> = match filter.flow_run_id {
            Some(id) => inner
                .logs_by_flow_run
                .get(&Some(id))
                .into_iter()
                .flatten()
                .filter(|l| filter.matches(l))
                .cloned()
                .collect(),
            None => inner
                .logs_by_flow_run
                .values()
                .flatten()
                .filter(|l| filter.matches(l))
                .cloned()
                .collect(),
        };
        logs.sort_by_key(|l| l.timestamp);
        ready(Ok(filter.page(logs)))
    }

    fn claim_flow_runs<'a>(&'a self, claim: &'a Claim) -> StoreFuture<'a, Vec<FlowRun>> {
        ready(Ok(self.lock().claim(claim)))
    }

    fn renew_leases(
        &self,
        owner: Uuid,
        runs: Vec<Uuid>,
        expires: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'_, Vec<Renewal>> {
        let mut inner = self.lock();
        let renewals = runs
            .into_iter()
            .map(|id| match inner.flow_runs.get_mut(&id) {
                Some(entry) => renew(&mut entry.run, owner, expires, now),
                None => Renewal {
                    id,
                    held: false,
                    state: None,
                },
            })
            .collect();
        ready(Ok(renewals))
    }

    fn upsert_work_queue(&self, mut queue: WorkQueue) -> StoreFuture<'_, WorkQueue> {
        let mut inner = self.lock();
        if let Some(stored) = inner.work_queues.get(&queue.name) {
            keep_identity(&mut queue, stored);
        }
        inner.work_queues.insert(queue.name.clone(), queue.clone());
        ready(Ok(queue))
    }

    fn read_work_queue<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<WorkQueue>> {
        ready(Ok(self.lock().work_queues.get(name).cloned()))
    }

    fn read_work_queues(&self) -> StoreFuture<'_, Vec<WorkQueue>> {
        let mut queues: Vec<WorkQueue> = self.lock().work_queues.values().cloned().collect();
        sort_queues(&mut queues);
        ready(Ok(queues))
    }

    fn delete_work_queue<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        ready(Ok(self.lock().work_queues.remove(name).is_some()))
    }

    fn poll_work_queues(
        &self,
        names: Vec<String>,
        agent: String,
        at: Timestamp,
    ) -> StoreFuture<'_, ()> {
        let mut inner = self.lock();
        for name in names {
            if let Some(q) = inner.work_queues.get_mut(&name) {
                q.last_polled = Some(at);
                q.last_polled_by = Some(agent.clone());
            }
        }
        ready(Ok(()))
    }

    fn upsert_concurrency_limit(
        &self,
        limit: ConcurrencyLimit,
    ) -> StoreFuture<'_, ConcurrencyLimit> {
        ready(Ok(self.lock().ledger.upsert(limit)))
    }

    fn read_concurrency_limit<'a>(
        &'a self,
        name: &'a str,
    ) -> StoreFuture<'a, Option<ConcurrencyLimit>> {
        ready(Ok(self.lock().ledger.limit(name)))
    }

    fn read_concurrency_limits(&self) -> StoreFuture<'_, Vec<ConcurrencyLimit>> {
        ready(Ok(self.lock().ledger.limits()))
    }

    fn delete_concurrency_limit<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        ready(Ok(self.lock().ledger.delete(name)))
    }

    fn read_slots<'a>(&'a self, limit: &'a str) -> StoreFuture<'a, Vec<Slot>> {
        ready(Ok(self.lock().ledger.rows(limit)))
    }

    fn acquire_slots(&self, request: SlotRequest) -> StoreFuture<'_, Acquired> {
        ready(Ok(self.lock().ledger.acquire(&request)))
    }

    fn release_slots(&self, holder: Uuid) -> StoreFuture<'_, Vec<String>> {
        ready(Ok(self.lock().ledger.release(holder)))
    }

    fn renew_slots(
        &self,
        owner: Uuid,
        holders: Vec<Uuid>,
        expires: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'_, Vec<Uuid>> {
        ready(Ok(self.lock().ledger.renew(owner, &holders, expires, now)))
    }

    fn reset_slots<'a>(&'a self, limit: &'a str) -> StoreFuture<'a, usize> {
        ready(Ok(self.lock().ledger.reset(limit)))
    }

    fn reap_slots(&self, now: Timestamp) -> StoreFuture<'_, Vec<String>> {
        ready(Ok(self.lock().ledger.reap(now)))
    }
}
