//! The remote store protocol: every [`Store`] method as one JSON message, so a runtime in
//! another process or machine uses a server's store exactly as a local one (the client,
//! orchestration and engine unchanged above it). `POST /api/store` carries a [`StoreCall`]
//! and answers with the method's result as JSON, or a [`WireError`]. A `batch` call carries
//! several calls, run in order, and answers each with an [`Outcome`] (a remote runtime sends
//! its task runs' writes this way, behind).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{
    Claim, ConcurrencyLimit, Deployment, DeploymentFilter, Flow, FlowRun, FlowRunFilter,
    HistoryWindow, LogFilter, LogRecord, SlotRequest, Store, StoreError, TaskRun, TaskRunFilter,
    WorkQueue,
};
use crate::state::State;

/// The protocol's version: a runtime refuses a server speaking another one.
pub const PROTOCOL_VERSION: u32 = 2;

/// One store method call.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum StoreCall {
    UpsertFlow {
        flow: Flow,
    },
    ReadFlow {
        id: Uuid,
    },
    ReadFlowByName {
        name: String,
    },
    ReadFlows,
    CreateFlowRun {
        run: FlowRun,
    },
    CreateFlowRuns {
        runs: Vec<FlowRun>,
    },
    DeleteFlowRuns {
        filter: FlowRunFilter,
    },
    UpsertDeployments {
        deployments: Vec<Deployment>,
    },
    ReadDeployment {
        id: Uuid,
    },
    ReadDeploymentByName {
        flow_name: String,
        name: String,
    },
    ReadDeployments {
        filter: DeploymentFilter,
    },
    ReadDeploymentVersions,
    DeleteDeployment {
        id: Uuid,
    },
    ReadFlowRun {
        id: Uuid,
    },
    ReadFlowRuns {
        filter: FlowRunFilter,
    },
    CountFlowRuns {
        filter: FlowRunFilter,
    },
    FlowRunHistory {
        filter: FlowRunFilter,
        window: HistoryWindow,
    },
    SetFlowRunState {
        id: Uuid,
        expected: Option<Uuid>,
        state: State,
    },
    ReadFlowRunStates {
        id: Uuid,
    },
    CreateTaskRun {
        run: TaskRun,
    },
    ReadTaskRun {
        id: Uuid,
    },
    ReadTaskRuns {
        filter: TaskRunFilter,
    },
    SetTaskRunState {
        id: Uuid,
        expected: Option<Uuid>,
        state: State,
    },
    ReadTaskRunStates {
        id: Uuid,
    },
    ReadCachedState {
        key: String,
    },
    ClaimFlowRuns {
        claim: Claim,
    },
    RenewLeases {
        owner: Uuid,
        runs: Vec<Uuid>,
        expires: Timestamp,
        now: Timestamp,
    },
    UpsertWorkQueue {
        queue: WorkQueue,
    },
    ReadWorkQueue {
        name: String,
    },
    ReadWorkQueues,
    DeleteWorkQueue {
        name: String,
    },
    PollWorkQueues {
        names: Vec<String>,
        agent: String,
        at: Timestamp,
    },
    UpsertConcurrencyLimit {
        limit: ConcurrencyLimit,
    },
    ReadConcurrencyLimit {
        name: String,
    },
    ReadConcurrencyLimits,
    DeleteConcurrencyLimit {
        name: String,
    },
    ReadSlots {
        limit: String,
    },
    AcquireSlots {
        request: SlotRequest,
    },
    ReleaseSlots {
        holder: Uuid,
    },
    RenewSlots {
        owner: Uuid,
        holders: Vec<Uuid>,
        expires: Timestamp,
        now: Timestamp,
    },
    ResetSlots {
        limit: String,
    },
    ReapSlots {
        now: Timestamp,
    },
    WriteLogs {
        logs: Vec<LogRecord>,
    },
    ReadLogs {
        filter: LogFilter,
    },
    Flush,
    /// Several calls, run in order; one [`Outcome`] each. A batch holds no batch.
    Batch {
        calls: Vec<StoreCall>,
    },
}

/// What one call of a batch answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Outcome {
    Ok(Value),
    Err(WireError),
}

/// A store error as it travels: its kind and fields, so the runtime gets the same
/// [`StoreError`] variant the server's store returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum WireError {
    NotFound { what: String, id: Uuid },
    AlreadyExists { what: String, key: String },
    Backend { message: String },
}

impl From<&StoreError> for WireError {
    fn from(e: &StoreError) -> Self {
        match e {
            StoreError::NotFound { what, id } => WireError::NotFound {
                what: (*what).to_owned(),
                id: *id,
            },
            StoreError::AlreadyExists { what, key } => WireError::AlreadyExists {
                what: (*what).to_owned(),
                key: key.clone(),
            },
            StoreError::Backend(message) => WireError::Backend {
                message: message.clone(),
            },
        }
    }
}

impl From<WireError> for StoreError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::NotFound { what, id } => StoreError::NotFound {
                what: record_kind(&what),
                id,
            },
            WireError::AlreadyExists { what, key } => StoreError::AlreadyExists {
                what: record_kind(&what),
                key,
            },
            WireError::Backend { message } => StoreError::Backend(message),
        }
    }
}

/// The static name of a record kind a server named.
fn record_kind(what: &str) -> &'static str {
    const KINDS: [&str; 8] = [
        "flow",
        "flow run",
        "task run",
        "deployment",
        "work queue",
        "concurrency limit",
        "log",
        "slot",
    ];
    KINDS.into_iter().find(|k| *k == what).unwrap_or("record")
}

fn json<T: Serialize>(value: T) -> Result<Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Backend(format!("encoding a result: {e}")))
}

/// Runs `call` on `store` and encodes its result: the server's half of the protocol.
pub async fn dispatch(store: &dyn Store, call: StoreCall) -> Result<Value, StoreError> {
    use StoreCall as C;
    match call {
        C::UpsertFlow { flow } => json(store.upsert_flow(flow).await?),
        C::ReadFlow { id } => json(store.read_flow(id).await?),
        C::ReadFlowByName { name } => json(store.read_flow_by_name(&name).await?),
        C::ReadFlows => json(store.read_flows().await?),
        C::CreateFlowRun { run } => json(store.create_flow_run(run).await?),
        C::CreateFlowRuns { runs } => json(store.create_flow_runs(runs).await?),
        C::DeleteFlowRuns { filter } => json(store.delete_flow_runs(&filter).await?),
        C::UpsertDeployments { deployments } => json(store.upsert_deployments(deployments).await?),
        C::ReadDeployment { id } => json(store.read_deployment(id).await?),
        C::ReadDeploymentByName { flow_name, name } => {
            json(store.read_deployment_by_name(&flow_name, &name).await?)
        }
        C::ReadDeployments { filter } => json(store.read_deployments(&filter).await?),
        C::ReadDeploymentVersions => json(store.read_deployment_versions().await?),
        C::DeleteDeployment { id } => json(store.delete_deployment(id).await?),
        C::ReadFlowRun { id } => json(store.read_flow_run(id).await?),
        C::ReadFlowRuns { filter } => json(store.read_flow_runs(&filter).await?),
        C::CountFlowRuns { filter } => json(store.count_flow_runs(&filter).await?),
        C::FlowRunHistory { filter, window } => {
            json(store.flow_run_history(&filter, window).await?)
        }
        C::SetFlowRunState {
            id,
            expected,
            state,
        } => json(store.set_flow_run_state(id, expected, state).await?),
        C::ReadFlowRunStates { id } => json(store.read_flow_run_states(id).await?),
        C::CreateTaskRun { run } => json(store.create_task_run(run).await?),
        C::ReadTaskRun { id } => json(store.read_task_run(id).await?),
        C::ReadTaskRuns { filter } => json(store.read_task_runs(&filter).await?),
        C::SetTaskRunState {
            id,
            expected,
            state,
        } => json(store.set_task_run_state(id, expected, state).await?),
        C::ReadTaskRunStates { id } => json(store.read_task_run_states(id).await?),
        C::ReadCachedState { key } => json(store.read_cached_state(&key).await?),
        C::ClaimFlowRuns { claim } => json(store.claim_flow_runs(&claim).await?),
        C::RenewLeases {
            owner,
            runs,
            expires,
            now,
        } => json(store.renew_leases(owner, runs, expires, now).await?),
        C::UpsertWorkQueue { queue } => json(store.upsert_work_queue(queue).await?),
        C::ReadWorkQueue { name } => json(store.read_work_queue(&name).await?),
        C::ReadWorkQueues => json(store.read_work_queues().await?),
        C::DeleteWorkQueue { name } => json(store.delete_work_queue(&name).await?),
        C::PollWorkQueues { names, agent, at } => {
            json(store.poll_work_queues(names, agent, at).await?)
        }
        C::UpsertConcurrencyLimit { limit } => json(store.upsert_concurrency_limit(limit).await?),
        C::ReadConcurrencyLimit { name } => json(store.read_concurrency_limit(&name).await?),
        C::ReadConcurrencyLimits => json(store.read_concurrency_limits().await?),
        C::DeleteConcurrencyLimit { name } => json(store.delete_concurrency_limit(&name).await?),
        C::ReadSlots { limit } => json(store.read_slots(&limit).await?),
        C::AcquireSlots { request } => json(store.acquire_slots(request).await?),
        C::ReleaseSlots { holder } => json(store.release_slots(holder).await?),
        C::RenewSlots {
            owner,
            holders,
            expires,
            now,
        } => json(store.renew_slots(owner, holders, expires, now).await?),
        C::ResetSlots { limit } => json(store.reset_slots(&limit).await?),
        C::ReapSlots { now } => json(store.reap_slots(now).await?),
        C::WriteLogs { logs } => json(store.write_logs(logs).await?),
        C::ReadLogs { filter } => json(store.read_logs(&filter).await?),
        C::Flush => json(store.flush().await?),
        C::Batch { calls } => {
            let mut outcomes = Vec::with_capacity(calls.len());
            for call in calls {
                let outcome = match call {
                    C::Batch { .. } => Err(StoreError::Backend(
                        "a batch cannot hold a batch".to_owned(),
                    )),
                    call => Box::pin(dispatch(store, call)).await,
                };
                outcomes.push(match outcome {
                    Ok(value) => Outcome::Ok(value),
                    Err(e) => Outcome::Err(WireError::from(&e)),
                });
            }
            json(outcomes)
        }
    }
}
