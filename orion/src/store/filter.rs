use jiff::Timestamp;
use uuid::Uuid;

use super::records::{FlowRun, LogLevel, LogRecord, TaskRun};
use crate::state::StateType;

/// Sort order for run queries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Sort {
    /// Oldest created first (the default).
    #[default]
    CreatedAsc,
    /// Newest created first.
    CreatedDesc,
    /// Earliest expected start first (runs without one last).
    ExpectedStartAsc,
}

/// Which flow runs a query returns. Empty fields match everything.
///
/// ```
/// use orion::store::FlowRunFilter;
/// use orion::StateType;
///
/// let failed_runs = FlowRunFilter::new().flow_name("etl").state_types([StateType::Failed]).limit(10);
/// # let _ = failed_runs;
/// ```
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct FlowRunFilter {
    /// Only runs with one of these ids (empty: any id).
    pub ids: Vec<Uuid>,
    /// Only runs with this name.
    pub name: Option<String>,
    /// Only runs of this flow id.
    pub flow_id: Option<Uuid>,
    /// Only runs of the flow with this name.
    pub flow_name: Option<String>,
    /// Only runs in one of these state types.
    pub state_types: Vec<StateType>,
    /// Only runs with one of these state names (`"Late"`).
    pub state_names: Vec<String>,
    /// Only runs having every one of these tags.
    pub tags: Vec<String>,
    /// Only subflow runs of this parent task run.
    pub parent_task_run_id: Option<Uuid>,
    /// Only runs of this deployment.
    pub deployment_id: Option<Uuid>,
    /// No runs of these deployments (runs of no deployment pass).
    pub exclude_deployments: Vec<Uuid>,
    /// Only runs that were (true) or were not (false) created by a scheduler.
    pub auto_scheduled: Option<bool>,
    /// Only runs in this work queue.
    pub work_queue_name: Option<String>,
    /// Only runs created at or after this time.
    pub created_after: Option<Timestamp>,
    /// Only runs created before this time.
    pub created_before: Option<Timestamp>,
    /// Only runs whose expected start is at or after this time.
    pub expected_start_after: Option<Timestamp>,
    /// Only runs whose expected start is at or before this time.
    pub expected_start_before: Option<Timestamp>,
    /// Only runs with a lease that expires before this time (the reaper's question).
    pub lease_expires_before: Option<Timestamp>,
    /// Order.
    pub sort: Sort,
    /// Skip this many.
    pub offset: usize,
    /// At most this many (None: all).
    pub limit: Option<usize>,
}

impl FlowRunFilter {
    /// Matches every flow run.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only the runs with these ids.
    #[must_use]
    pub fn ids(mut self, ids: impl IntoIterator<Item = Uuid>) -> Self {
        self.ids = ids.into_iter().collect();
        self
    }
    /// Only runs named `name` (run names are random slugs: rarely more than one).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Only runs of this flow.
    #[must_use]
    pub fn flow_name(mut self, name: impl Into<String>) -> Self {
        self.flow_name = Some(name.into());
        self
    }
    /// Only runs of this flow id.
    #[must_use]
    pub fn flow_id(mut self, id: Uuid) -> Self {
        self.flow_id = Some(id);
        self
    }
    /// Only runs in these state types.
    #[must_use]
    pub fn state_types(mut self, types: impl IntoIterator<Item = StateType>) -> Self {
        self.state_types = types.into_iter().collect();
        self
    }
    /// Only runs in these state names.
    #[must_use]
    pub fn state_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.state_names = names.into_iter().map(Into::into).collect();
        self
    }
    /// Only runs having all of these tags.
    #[must_use]
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }
    /// Only subflow runs of this parent task run.
    #[must_use]
    pub fn parent_task_run_id(mut self, id: Uuid) -> Self {
        self.parent_task_run_id = Some(id);
        self
    }
    /// Only runs of this deployment.
    #[must_use]
    pub fn deployment_id(mut self, id: Uuid) -> Self {
        self.deployment_id = Some(id);
        self
    }
    /// No runs of these deployments.
    #[must_use]
    pub fn exclude_deployments(mut self, ids: impl IntoIterator<Item = Uuid>) -> Self {
        self.exclude_deployments = ids.into_iter().collect();
        self
    }
    /// Only runs a scheduler created (`true`) or not (`false`).
    #[must_use]
    pub fn auto_scheduled(mut self, auto: bool) -> Self {
        self.auto_scheduled = Some(auto);
        self
    }
    /// Only runs in this work queue.
    #[must_use]
    pub fn work_queue_name(mut self, name: impl Into<String>) -> Self {
        self.work_queue_name = Some(name.into());
        self
    }
    /// Only runs created in `[after, before)`; either bound may be None.
    #[must_use]
    pub fn created_between(mut self, after: Option<Timestamp>, before: Option<Timestamp>) -> Self {
        self.created_after = after;
        self.created_before = before;
        self
    }
    /// Only runs expected to start in `[after, before]`; either bound may be None.
    #[must_use]
    pub fn expected_start_between(
        mut self,
        after: Option<Timestamp>,
        before: Option<Timestamp>,
    ) -> Self {
        self.expected_start_after = after;
        self.expected_start_before = before;
        self
    }
    /// Only runs with a lease expiring before `at`.
    #[must_use]
    pub fn lease_expires_before(mut self, at: Timestamp) -> Self {
        self.lease_expires_before = Some(at);
        self
    }
    /// Order of the results.
    #[must_use]
    pub fn sort(mut self, sort: Sort) -> Self {
        self.sort = sort;
        self
    }
    /// Skip this many results.
    #[must_use]
    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }
    /// At most this many results.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The same filter without its paging.
    pub fn unpaged(&self) -> Self {
        FlowRunFilter {
            offset: 0,
            limit: None,
            ..self.clone()
        }
    }

    /// Whether SQL can answer the filter exactly from indexed columns: it has no condition
    /// that only [`FlowRunFilter::matches`] checks (run name, auto-scheduled). `timed`: whether
    /// time conditions count as exact too.
    pub(crate) fn sql_exact(&self, timed: bool) -> bool {
        self.name.is_none()
            && self.auto_scheduled.is_none()
            && (timed
                || (self.created_after.is_none()
                    && self.created_before.is_none()
                    && self.expected_start_after.is_none()
                    && self.expected_start_before.is_none()
                    && self.lease_expires_before.is_none()))
    }

    /// Whether `run` passes every condition except paging.
    pub fn matches(&self, run: &FlowRun) -> bool {
        let state = run.state.as_ref();
        (self.ids.is_empty() || self.ids.contains(&run.id))
            && self.name.as_deref().is_none_or(|n| run.name == n)
            && self.flow_id.is_none_or(|id| run.flow_id == id)
            && self.flow_name.as_deref().is_none_or(|n| run.flow_name == n)
            && (self.state_types.is_empty()
                || state.is_some_and(|s| self.state_types.contains(&s.state_type())))
            && (self.state_names.is_empty()
                || state.is_some_and(|s| self.state_names.iter().any(|n| n == s.name())))
            && self.tags.iter().all(|t| run.tags.contains(t))
            && self
                .parent_task_run_id
                .is_none_or(|p| run.parent_task_run_id == Some(p))
            && self
                .deployment_id
                .is_none_or(|d| run.deployment_id == Some(d))
            && run
                .deployment_id
                .is_none_or(|d| !self.exclude_deployments.contains(&d))
            && self.auto_scheduled.is_none_or(|a| run.auto_scheduled == a)
            && self
                .work_queue_name
                .as_deref()
                .is_none_or(|q| run.work_queue_name.as_deref() == Some(q))
            && self.created_after.is_none_or(|t| run.created >= t)
            && self.created_before.is_none_or(|t| run.created < t)
            && self
                .expected_start_after
                .is_none_or(|t| run.expected_start_time.is_some_and(|e| e >= t))
            && self
                .expected_start_before
                .is_none_or(|t| run.expected_start_time.is_some_and(|e| e <= t))
            && self
                .lease_expires_before
                .is_none_or(|t| run.lease.as_ref().is_some_and(|l| l.expires < t))
    }

    /// Sorts and pages `runs` that already passed [`FlowRunFilter::matches`].
    pub fn finish(&self, mut runs: Vec<FlowRun>) -> Vec<FlowRun> {
        match self.sort {
            Sort::CreatedAsc => runs.sort_by_key(|r| (r.created, r.id)),
            Sort::CreatedDesc => runs.sort_by_key(|r| std::cmp::Reverse((r.created, r.id))),
            Sort::ExpectedStartAsc => runs.sort_by_key(|r| {
                (
                    r.expected_start_time.is_none(),
                    r.expected_start_time,
                    r.created,
                    r.id,
                )
            }),
        }
        page(runs, self.offset, self.limit)
    }
}

/// Which task runs a query returns. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct TaskRunFilter {
    /// Only task runs of this flow run.
    pub flow_run_id: Option<Uuid>,
    /// Only task runs in one of these state types.
    pub state_types: Vec<StateType>,
    /// Only task runs whose name starts with this (a task's name).
    pub name_prefix: Option<String>,
    /// Order (by creation).
    pub sort: Sort,
    /// Skip this many.
    pub offset: usize,
    /// At most this many.
    pub limit: Option<usize>,
}

impl TaskRunFilter {
    /// Matches every task run.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only task runs of this flow run.
    #[must_use]
    pub fn flow_run_id(mut self, id: Uuid) -> Self {
        self.flow_run_id = Some(id);
        self
    }
    /// Only task runs in these state types.
    #[must_use]
    pub fn state_types(mut self, types: impl IntoIterator<Item = StateType>) -> Self {
        self.state_types = types.into_iter().collect();
        self
    }
    /// Only task runs whose name starts with `prefix`.
    #[must_use]
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = Some(prefix.into());
        self
    }
    /// Order of the results.
    #[must_use]
    pub fn sort(mut self, sort: Sort) -> Self {
        self.sort = sort;
        self
    }
    /// At most this many results.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Whether `run` passes every condition except paging.
    pub fn matches(&self, run: &TaskRun) -> bool {
        self.flow_run_id
            .is_none_or(|id| run.flow_run_id == Some(id))
            && (self.state_types.is_empty()
                || run
                    .state
                    .as_ref()
                    .is_some_and(|s| self.state_types.contains(&s.state_type())))
            && self
                .name_prefix
                .as_deref()
                .is_none_or(|p| run.name.starts_with(p))
    }

    /// Sorts and pages `runs` that already passed [`TaskRunFilter::matches`].
    pub fn finish(&self, mut runs: Vec<TaskRun>) -> Vec<TaskRun> {
        match self.sort {
            Sort::CreatedDesc => {
                runs.sort_by_key(|r| std::cmp::Reverse((r.created, r.dynamic_key)))
            }
            _ => runs.sort_by_key(|r| (r.created, r.dynamic_key)),
        }
        page(runs, self.offset, self.limit)
    }
}

/// Which log records a query returns.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct LogFilter {
    /// Only logs of this flow run (including its task runs' logs).
    pub flow_run_id: Option<Uuid>,
    /// Only logs of this task run.
    pub task_run_id: Option<Uuid>,
    /// Only logs at this level or above.
    pub min_level: Option<LogLevel>,
    /// Skip this many (the oldest): a reader following a run's log asks for what follows the
    /// lines it has.
    pub offset: usize,
    /// At most this many (the oldest, after `offset`).
    pub limit: Option<usize>,
}

impl LogFilter {
    /// Matches every log record.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only logs of this flow run and its task runs.
    #[must_use]
    pub fn flow_run_id(mut self, id: Uuid) -> Self {
        self.flow_run_id = Some(id);
        self
    }
    /// Only logs of this task run.
    #[must_use]
    pub fn task_run_id(mut self, id: Uuid) -> Self {
        self.task_run_id = Some(id);
        self
    }
    /// Only logs at `level` or above.
    #[must_use]
    pub fn min_level(mut self, level: LogLevel) -> Self {
        self.min_level = Some(level);
        self
    }
    /// Skips the oldest `n`.
    #[must_use]
    pub fn offset(mut self, n: usize) -> Self {
        self.offset = n;
        self
    }
    /// At most `n`.
    #[must_use]
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// The page of `logs` (matching, oldest first) this filter asks for.
    pub(crate) fn page(&self, logs: Vec<LogRecord>) -> Vec<LogRecord> {
        page(logs, self.offset, self.limit)
    }

    /// Whether `log` passes.
    pub fn matches(&self, log: &LogRecord) -> bool {
        self.flow_run_id
            .is_none_or(|id| log.flow_run_id == Some(id))
            && self
                .task_run_id
                .is_none_or(|id| log.task_run_id == Some(id))
            && self.min_level.is_none_or(|l| log.level >= l)
    }
}

fn page<T>(items: Vec<T>, offset: usize, limit: Option<usize>) -> Vec<T> {
    items
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect()
}

/// Which deployments a query returns. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct DeploymentFilter {
    /// Only deployments of this flow.
    pub flow_name: Option<String>,
    /// Only deployments with this name.
    pub name: Option<String>,
    /// Only deployments having every one of these tags.
    pub tags: Vec<String>,
    /// Only paused (true) or active (false) deployments.
    pub paused: Option<bool>,
}

impl DeploymentFilter {
    /// Matches every deployment.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only deployments of this flow.
    #[must_use]
    pub fn flow_name(mut self, name: impl Into<String>) -> Self {
        self.flow_name = Some(name.into());
        self
    }
    /// Only deployments with this name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Only deployments having all of these tags.
    #[must_use]
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }
    /// Only paused (`true`) or active (`false`) deployments.
    #[must_use]
    pub fn paused(mut self, paused: bool) -> Self {
        self.paused = Some(paused);
        self
    }
    /// Whether `d` passes.
    pub fn matches(&self, d: &super::records::Deployment) -> bool {
        self.paused.is_none_or(|p| d.paused == p)
            && self.flow_name.as_deref().is_none_or(|f| d.flow_name == f)
            && self.name.as_deref().is_none_or(|n| d.name == n)
            && self.tags.iter().all(|t| d.tags.contains(t))
    }
}
