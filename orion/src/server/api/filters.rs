//! Prefect-shaped filter bodies (`{"flow_runs": {"state": {"type": {"any_": [...]}}}, ...}`)
//! and their translation to store filters. Unknown fields are refused, naming the field, so a
//! typo never silently widens a query.

use jiff::Timestamp;
use serde::Deserialize;
use uuid::Uuid;

use crate::server::error::{ApiError, ApiResult};
use crate::state::StateType;
use crate::store::{FlowRunFilter, LogFilter, LogLevel, Sort, TaskRunFilter};

/// The most rows one list request returns, and the default.
pub(crate) const MAX_LIMIT: usize = 1000;
pub(crate) const DEFAULT_LIMIT: usize = 200;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Any<T> {
    pub(crate) any_: Vec<T>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct All<T> {
    pub(crate) all_: Vec<T>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Between {
    pub(crate) after_: Option<Timestamp>,
    pub(crate) before_: Option<Timestamp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateCriteria {
    #[serde(rename = "type")]
    pub(crate) kind: Option<Any<StateType>>,
    pub(crate) name: Option<Any<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlowRunCriteria {
    pub(crate) id: Option<Any<Uuid>>,
    pub(crate) name: Option<Any<String>>,
    pub(crate) state: Option<StateCriteria>,
    pub(crate) tags: Option<All<String>>,
    pub(crate) deployment_id: Option<Any<Uuid>>,
    pub(crate) work_queue_name: Option<Any<String>>,
    pub(crate) parent_task_run_id: Option<Any<Uuid>>,
    pub(crate) expected_start_time: Option<Between>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NameCriteria {
    pub(crate) name: Option<Any<String>>,
    pub(crate) id: Option<Any<Uuid>>,
}

/// `POST /api/flow_runs/filter`, `/count`, `/history` bodies.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlowRunQuery {
    #[serde(default)]
    pub(crate) flow_runs: FlowRunCriteria,
    #[serde(default)]
    pub(crate) flows: NameCriteria,
    #[serde(default)]
    pub(crate) deployments: NameCriteria,
    #[serde(default)]
    pub(crate) work_queues: NameCriteria,
    pub(crate) sort: Option<String>,
    pub(crate) limit: Option<usize>,
    #[serde(default)]
    pub(crate) offset: usize,
}

/// The one value of an `any_` list the store takes one of.
fn one<T: Clone>(field: &str, any: Option<&Any<T>>) -> ApiResult<Option<T>> {
    match any.map(|a| a.any_.as_slice()) {
        None | Some([]) => Ok(None),
        Some([one]) => Ok(Some(one.clone())),
        Some(_) => Err(ApiError::invalid(format!(
            "{field}.any_ takes one value in this API"
        ))),
    }
}

pub(crate) fn limit(limit: Option<usize>) -> ApiResult<usize> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        n if n > MAX_LIMIT => Err(ApiError::invalid(format!(
            "limit {n} is above the maximum of {MAX_LIMIT}"
        ))),
        n => Ok(n),
    }
}

pub(crate) fn sort(text: Option<&str>) -> ApiResult<Sort> {
    Ok(match text {
        None | Some("CREATED_DESC" | "ID_DESC") => Sort::CreatedDesc,
        Some("CREATED_ASC") => Sort::CreatedAsc,
        Some("EXPECTED_START_TIME_ASC") => Sort::ExpectedStartAsc,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "sort {other:?} is not one of CREATED_DESC, ID_DESC, CREATED_ASC, EXPECTED_START_TIME_ASC"
            )));
        }
    })
}

impl FlowRunQuery {
    /// The store filter; paged unless `paged` is false (counts, history).
    pub(crate) fn filter(&self) -> ApiResult<FlowRunFilter> {
        let c = &self.flow_runs;
        let mut f = FlowRunFilter::new()
            .sort(sort(self.sort.as_deref())?)
            .offset(self.offset)
            .limit(limit(self.limit)?);
        if let Some(ids) = &c.id {
            f = f.ids(ids.any_.iter().copied());
        }
        if let Some(name) = one("flow_runs.name", c.name.as_ref())? {
            f = f.name(name);
        }
        if let Some(state) = &c.state {
            if let Some(types) = &state.kind {
                f = f.state_types(types.any_.iter().copied());
            }
            if let Some(names) = &state.name {
                f = f.state_names(names.any_.iter().cloned());
            }
        }
        if let Some(tags) = &c.tags {
            f = f.tags(tags.all_.iter().cloned());
        }
        let deployment = one("flow_runs.deployment_id", c.deployment_id.as_ref())?
            .or(one("deployments.id", self.deployments.id.as_ref())?);
        if let Some(id) = deployment {
            f = f.deployment_id(id);
        }
        let queue = one("flow_runs.work_queue_name", c.work_queue_name.as_ref())?
            .or(one("work_queues.name", self.work_queues.name.as_ref())?);
        if let Some(queue) = queue {
            f = f.work_queue_name(queue);
        }
        if let Some(parent) = one(
            "flow_runs.parent_task_run_id",
            c.parent_task_run_id.as_ref(),
        )? {
            f = f.parent_task_run_id(parent);
        }
        if let Some(between) = &c.expected_start_time {
            f = f.expected_start_between(between.after_, between.before_);
        }
        if let Some(flow) = one("flows.name", self.flows.name.as_ref())? {
            f = f.flow_name(flow);
        }
        if let Some(flow) = one("flows.id", self.flows.id.as_ref())? {
            f = f.flow_id(flow);
        }
        if self.deployments.name.is_some() {
            return Err(ApiError::invalid(
                "deployments.name is not supported: filter by deployments.id",
            ));
        }
        Ok(f)
    }
}

/// `POST /api/task_runs/filter` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskRunQuery {
    #[serde(default)]
    pub(crate) flow_runs: NameCriteria,
    #[serde(default)]
    pub(crate) task_runs: TaskRunCriteria,
    pub(crate) sort: Option<String>,
    pub(crate) limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskRunCriteria {
    pub(crate) flow_run_id: Option<Any<Uuid>>,
    pub(crate) state: Option<StateCriteria>,
}

impl TaskRunQuery {
    pub(crate) fn filter(&self) -> ApiResult<TaskRunFilter> {
        let mut f = TaskRunFilter::new()
            .sort(match sort(self.sort.as_deref())? {
                Sort::CreatedDesc => Sort::CreatedDesc,
                _ => Sort::CreatedAsc,
            })
            .limit(limit(self.limit)?);
        let run = one("task_runs.flow_run_id", self.task_runs.flow_run_id.as_ref())?
            .or(one("flow_runs.id", self.flow_runs.id.as_ref())?);
        if let Some(run) = run {
            f = f.flow_run_id(run);
        }
        if let Some(types) = self.task_runs.state.as_ref().and_then(|s| s.kind.as_ref()) {
            f = f.state_types(types.any_.iter().copied());
        }
        Ok(f)
    }
}

/// `POST /api/logs/filter` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogQuery {
    #[serde(default)]
    pub(crate) logs: LogCriteria,
    pub(crate) limit: Option<usize>,
    #[serde(default)]
    pub(crate) offset: usize,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogCriteria {
    pub(crate) flow_run_id: Option<Any<Uuid>>,
    pub(crate) task_run_id: Option<Any<Uuid>>,
    pub(crate) level: Option<LevelCriteria>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LevelCriteria {
    pub(crate) ge_: Option<u8>,
}

impl LogQuery {
    pub(crate) fn filter(&self) -> ApiResult<LogFilter> {
        let mut f = LogFilter::new().offset(self.offset);
        if let Some(run) = one("logs.flow_run_id", self.logs.flow_run_id.as_ref())? {
            f = f.flow_run_id(run);
        }
        if let Some(task) = one("logs.task_run_id", self.logs.task_run_id.as_ref())? {
            f.task_run_id = Some(task);
        }
        if let Some(ge) = self.logs.level.as_ref().and_then(|l| l.ge_) {
            f.min_level = Some(LogLevel::at_least(ge));
        }
        // Logs default to more lines than run lists: a run's whole log is one request.
        f.limit = Some(match self.limit {
            Some(n) if n > 10 * MAX_LIMIT => {
                return Err(ApiError::invalid(format!(
                    "limit {n} is above the maximum of {} for logs",
                    10 * MAX_LIMIT
                )));
            }
            Some(n) => n,
            None => 10 * MAX_LIMIT,
        });
        Ok(f)
    }
}
