//! `RemoteStore`: a store that lives in an orion server, reached over HTTP (feature `remote`).
//!
//! Every method is one `POST /api/store` of a [`StoreCall`]; the server runs it on its own
//! store. Orchestration, the engine and agents run here, as over any local store, so a
//! machine with only the server's URL (and its token) runs flows and agents. The task runs of
//! flow runs executing here are written behind, many per request (see [`behind`]).

mod behind;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use uuid::Uuid;

use self::behind::Behind;
use super::protocol::{PROTOCOL_VERSION, StoreCall, WireError};
use super::{
    Acquired, Claim, ConcurrencyLimit, Deployment, DeploymentFilter, DeploymentVersion, Flow,
    FlowRun, FlowRunFilter, HistoryBucket, HistoryWindow, LogFilter, LogRecord, Renewal, SetState,
    Slot, SlotRequest, Store, StoreError, StoreFuture, TaskRun, TaskRunFilter, WorkQueue,
};
use crate::state::State;

/// How long a call keeps trying to reach a server that refuses connections (restarting).
const UNREACHABLE_FOR: Duration = Duration::from_secs(30);

/// How often agents over a remote store look for work by themselves: the server's long poll
/// wakes them at once for new runs, so this only covers a wake-up lost between two polls.
pub(crate) const DEFAULT_POLL: Duration = Duration::from_secs(2);

/// A store in an orion server: see the module docs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RemoteStore {
    transport: Arc<Transport>,
    /// Task-run writes answered here and sent behind.
    behind: Arc<Behind>,
    /// Woken by the server's long poll (`GET /api/store/wait`) when runs may be due.
    due: Arc<Notify>,
    poll: Duration,
}

/// How calls reach the server.
#[derive(Debug)]
pub(super) struct Transport {
    http: reqwest::Client,
    /// `http://host:port/api`, without a trailing slash.
    base: String,
    token: Option<String>,
}

#[derive(serde::Deserialize)]
struct Version {
    store_protocol: u32,
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    detail: String,
    #[serde(default)]
    error: Option<WireError>,
}

impl RemoteStore {
    /// The store of the server at `url` (`http://127.0.0.1:4200/api`), sending `token` as a
    /// bearer token when given; checks that the server answers and speaks this protocol.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] naming the URL when the server cannot be reached, refuses the
    /// token, or speaks another protocol version.
    pub async fn connect(url: &str, token: Option<String>) -> Result<Self, StoreError> {
        let base = url.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| StoreError::Backend(format!("HTTP client: {e}")))?;
        let transport = Arc::new(Transport { http, base, token });
        let mut request = transport.http.get(format!("{}/version", transport.base));
        if let Some(token) = &transport.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| {
            StoreError::Backend(format!("cannot reach the orion server at {url}: {e}"))
        })?;
        let status = response.status();
        if !status.is_success() {
            let detail = response
                .json::<ErrorBody>()
                .await
                .map_or_else(|_| status.to_string(), |b| b.detail);
            return Err(StoreError::Backend(format!(
                "the orion server at {url} refused: {detail}"
            )));
        }
        let version: Version = response.json().await.map_err(|e| {
            StoreError::Backend(format!("{url} does not answer as an orion server API: {e}"))
        })?;
        if version.store_protocol != PROTOCOL_VERSION {
            return Err(StoreError::Backend(format!(
                "the orion server at {url} speaks store protocol {}, this program {PROTOCOL_VERSION}",
                version.store_protocol
            )));
        }
        let store = RemoteStore {
            behind: Arc::new(Behind::start(transport.clone())),
            transport,
            due: Arc::new(Notify::new()),
            poll: DEFAULT_POLL,
        };
        store.listen();
        Ok(store)
    }

    /// How often agents over this store look for work by themselves (default 2 s); the
    /// server's long poll wakes them sooner.
    #[must_use]
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }

    /// Long-polls the server for runs made due, waking this runtime's agents, for as long as
    /// the store is in use (the loop ends at its next answer once every handle is dropped).
    fn listen(&self) {
        let due = Arc::downgrade(&self.due);
        let http = self.transport.http.clone();
        let url = format!("{}/store/wait", self.transport.base);
        let token = self.transport.token.clone();
        tokio::spawn(async move {
            while due.strong_count() > 0 {
                let mut request = http.get(&url);
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let woken = match request.send().await {
                    Ok(r) if r.status().is_success() => r.json::<bool>().await.ok(),
                    _ => None,
                };
                match (woken, due.upgrade()) {
                    (Some(true), Some(due)) => due.notify_waiters(),
                    (Some(_), _) => {}
                    // The server is away or refuses: try again in a while (agents still poll).
                    (None, _) => tokio::time::sleep(Duration::from_secs(1)).await,
                }
            }
        });
    }

    /// `call` on the server, once the task-run writes queued before it are answered (so it
    /// sees them).
    fn call<T: DeserializeOwned + Send + 'static>(&self, call: StoreCall) -> StoreFuture<'_, T> {
        Box::pin(async move {
            self.behind.settle().await?;
            self.transport.call(&call).await
        })
    }
}

impl Transport {
    /// Posts a store call (JSON) to the server, trying again while the server refuses
    /// connections (restarting), for up to [`UNREACHABLE_FOR`].
    async fn send(&self, body: Vec<u8>) -> Result<reqwest::Response, StoreError> {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(50);
        let mut request = self
            .http
            .post(format!("{}/store", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        loop {
            // A body held in memory is shared by the attempts, not copied.
            let Some(attempt) = request.try_clone() else {
                return Err(StoreError::Backend(format!(
                    "orion server {}: a store call could not be prepared",
                    self.base
                )));
            };
            match attempt.send().await {
                Ok(response) => return Ok(response),
                // Not connected: the request was never sent, so sending it again is safe.
                Err(e) if e.is_connect() && started.elapsed() < UNREACHABLE_FOR => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    return Err(StoreError::Backend(format!(
                        "orion server {}: {e}",
                        self.base
                    )));
                }
            }
        }
    }

    /// Runs `call` on the server and reads its answer.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        call: &StoreCall,
    ) -> Result<T, StoreError> {
        let body = serde_json::to_vec(call)
            .map_err(|e| StoreError::Backend(format!("encoding a store call: {e}")))?;
        self.call_encoded(body).await
    }

    /// Runs the call encoded in `body` on the server and reads its answer.
    pub(super) async fn call_encoded<T: DeserializeOwned>(
        &self,
        body: Vec<u8>,
    ) -> Result<T, StoreError> {
        let response = self.send(body).await?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| StoreError::Backend(format!("orion server {}: {e}", self.base)))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                StoreError::Backend(format!(
                    "orion server {}: unreadable answer: {e}",
                    self.base
                ))
            });
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(ErrorBody {
                error: Some(error), ..
            }) => Err(error.into()),
            Ok(ErrorBody { detail, .. }) => Err(StoreError::Backend(format!(
                "orion server {} ({status}): {detail}",
                self.base
            ))),
            Err(_) => Err(StoreError::Backend(format!(
                "orion server {} ({status})",
                self.base
            ))),
        }
    }
}

impl Store for RemoteStore {
    fn upsert_flow(&self, flow: Flow) -> StoreFuture<'_, Flow> {
        self.call(StoreCall::UpsertFlow { flow })
    }
    fn read_flow(&self, id: Uuid) -> StoreFuture<'_, Option<Flow>> {
        self.call(StoreCall::ReadFlow { id })
    }
    fn read_flow_by_name<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Flow>> {
        self.call(StoreCall::ReadFlowByName { name: name.into() })
    }
    fn read_flows(&self) -> StoreFuture<'_, Vec<Flow>> {
        self.call(StoreCall::ReadFlows)
    }
    fn create_flow_run(&self, run: FlowRun) -> StoreFuture<'_, FlowRun> {
        self.call(StoreCall::CreateFlowRun { run })
    }
    fn create_flow_runs(&self, runs: Vec<FlowRun>) -> StoreFuture<'_, Vec<FlowRun>> {
        self.call(StoreCall::CreateFlowRuns { runs })
    }
    fn delete_flow_runs<'a>(&'a self, filter: &'a FlowRunFilter) -> StoreFuture<'a, usize> {
        self.call(StoreCall::DeleteFlowRuns {
            filter: filter.clone(),
        })
    }
    fn upsert_deployments(&self, deployments: Vec<Deployment>) -> StoreFuture<'_, Vec<Deployment>> {
        self.call(StoreCall::UpsertDeployments { deployments })
    }
    fn read_deployment(&self, id: Uuid) -> StoreFuture<'_, Option<Deployment>> {
        self.call(StoreCall::ReadDeployment { id })
    }
    fn read_deployment_by_name<'a>(
        &'a self,
        flow_name: &'a str,
        name: &'a str,
    ) -> StoreFuture<'a, Option<Deployment>> {
        self.call(StoreCall::ReadDeploymentByName {
            flow_name: flow_name.into(),
            name: name.into(),
        })
    }
    fn read_deployments<'a>(
        &'a self,
        filter: &'a DeploymentFilter,
    ) -> StoreFuture<'a, Vec<Deployment>> {
        self.call(StoreCall::ReadDeployments {
            filter: filter.clone(),
        })
    }
    fn read_deployment_versions(&self) -> StoreFuture<'_, Vec<DeploymentVersion>> {
        self.call(StoreCall::ReadDeploymentVersions)
    }
    fn delete_deployment(&self, id: Uuid) -> StoreFuture<'_, bool> {
        self.call(StoreCall::DeleteDeployment { id })
    }
    fn read_flow_run(&self, id: Uuid) -> StoreFuture<'_, Option<FlowRun>> {
        self.call(StoreCall::ReadFlowRun { id })
    }
    fn read_flow_runs<'a>(&'a self, filter: &'a FlowRunFilter) -> StoreFuture<'a, Vec<FlowRun>> {
        self.call(StoreCall::ReadFlowRuns {
            filter: filter.clone(),
        })
    }
    fn count_flow_runs<'a>(&'a self, filter: &'a FlowRunFilter) -> StoreFuture<'a, usize> {
        self.call(StoreCall::CountFlowRuns {
            filter: filter.clone(),
        })
    }
    fn flow_run_history<'a>(
        &'a self,
        filter: &'a FlowRunFilter,
        window: HistoryWindow,
    ) -> StoreFuture<'a, Vec<HistoryBucket>> {
        self.call(StoreCall::FlowRunHistory {
            filter: filter.clone(),
            window,
        })
    }
    fn set_flow_run_state(
        &self,
        id: Uuid,
        expected: Option<Uuid>,
        state: State,
    ) -> StoreFuture<'_, SetState> {
        Box::pin(async move {
            // Its task runs' queued writes are stored first: a flow run never ends before
            // them, and one that failed is reported here.
            self.behind.take_failure()?;
            self.behind.settle().await?;
            self.behind.take_failure()?;
            // Task runs are written while their flow run is Running (a run that waits, paused
            // or for a retry, is held again when it runs again).
            let running_here = state.is_running();
            let written = self
                .transport
                .call(&StoreCall::SetFlowRunState {
                    id,
                    expected,
                    state,
                })
                .await;
            self.behind
                .flow_run_written(id, running_here && matches!(written, Ok(SetState::Written)));
            written
        })
    }
    fn read_flow_run_states(&self, id: Uuid) -> StoreFuture<'_, Vec<State>> {
        self.call(StoreCall::ReadFlowRunStates { id })
    }
    fn create_task_run(&self, run: TaskRun) -> StoreFuture<'_, TaskRun> {
        Box::pin(async move {
            self.behind.take_failure()?;
            if let Some(stored) = self.behind.create(&run)? {
                self.behind.room().await;
                return Ok(stored);
            }
            self.call(StoreCall::CreateTaskRun { run }).await
        })
    }
    fn read_task_run(&self, id: Uuid) -> StoreFuture<'_, Option<TaskRun>> {
        self.call(StoreCall::ReadTaskRun { id })
    }
    fn read_task_runs<'a>(&'a self, filter: &'a TaskRunFilter) -> StoreFuture<'a, Vec<TaskRun>> {
        self.call(StoreCall::ReadTaskRuns {
            filter: filter.clone(),
        })
    }
    fn set_task_run_state(
        &self,
        id: Uuid,
        expected: Option<Uuid>,
        state: State,
    ) -> StoreFuture<'_, SetState> {
        Box::pin(async move {
            self.behind.take_failure()?;
            let state = match self.behind.set_state(id, expected, state)? {
                None => {
                    self.behind.room().await;
                    return Ok(SetState::Written);
                }
                Some(state) => state,
            };
            self.call(StoreCall::SetTaskRunState {
                id,
                expected,
                state,
            })
            .await
        })
    }
    fn read_task_run_states(&self, id: Uuid) -> StoreFuture<'_, Vec<State>> {
        self.call(StoreCall::ReadTaskRunStates { id })
    }
    fn read_cached_state<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<State>> {
        self.call(StoreCall::ReadCachedState { key: key.into() })
    }
    fn claim_flow_runs<'a>(&'a self, claim: &'a Claim) -> StoreFuture<'a, Vec<FlowRun>> {
        self.call(StoreCall::ClaimFlowRuns {
            claim: claim.clone(),
        })
    }
    fn renew_leases(
        &self,
        owner: Uuid,
        runs: Vec<Uuid>,
        expires: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'_, Vec<Renewal>> {
        self.call(StoreCall::RenewLeases {
            owner,
            runs,
            expires,
            now,
        })
    }
    fn upsert_work_queue(&self, queue: WorkQueue) -> StoreFuture<'_, WorkQueue> {
        self.call(StoreCall::UpsertWorkQueue { queue })
    }
    fn read_work_queue<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<WorkQueue>> {
        self.call(StoreCall::ReadWorkQueue { name: name.into() })
    }
    fn read_work_queues(&self) -> StoreFuture<'_, Vec<WorkQueue>> {
        self.call(StoreCall::ReadWorkQueues)
    }
    fn delete_work_queue<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        self.call(StoreCall::DeleteWorkQueue { name: name.into() })
    }
    fn poll_work_queues(
        &self,
        names: Vec<String>,
        agent: String,
        at: Timestamp,
    ) -> StoreFuture<'_, ()> {
        self.call(StoreCall::PollWorkQueues { names, agent, at })
    }
    fn upsert_concurrency_limit(
        &self,
        limit: ConcurrencyLimit,
    ) -> StoreFuture<'_, ConcurrencyLimit> {
        self.call(StoreCall::UpsertConcurrencyLimit { limit })
    }
    fn read_concurrency_limit<'a>(
        &'a self,
        name: &'a str,
    ) -> StoreFuture<'a, Option<ConcurrencyLimit>> {
        self.call(StoreCall::ReadConcurrencyLimit { name: name.into() })
    }
    fn read_concurrency_limits(&self) -> StoreFuture<'_, Vec<ConcurrencyLimit>> {
        self.call(StoreCall::ReadConcurrencyLimits)
    }
    fn delete_concurrency_limit<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        self.call(StoreCall::DeleteConcurrencyLimit { name: name.into() })
    }
    fn read_slots<'a>(&'a self, limit: &'a str) -> StoreFuture<'a, Vec<Slot>> {
        self.call(StoreCall::ReadSlots {
            limit: limit.into(),
        })
    }
    fn acquire_slots(&self, request: SlotRequest) -> StoreFuture<'_, Acquired> {
        self.call(StoreCall::AcquireSlots { request })
    }
    fn release_slots(&self, holder: Uuid) -> StoreFuture<'_, Vec<String>> {
        self.call(StoreCall::ReleaseSlots { holder })
    }
    fn renew_slots(
        &self,
        owner: Uuid,
        holders: Vec<Uuid>,
        expires: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'_, Vec<Uuid>> {
        self.call(StoreCall::RenewSlots {
            owner,
            holders,
            expires,
            now,
        })
    }
    fn reset_slots<'a>(&'a self, limit: &'a str) -> StoreFuture<'a, usize> {
        self.call(StoreCall::ResetSlots {
            limit: limit.into(),
        })
    }
    fn reap_slots(&self, now: Timestamp) -> StoreFuture<'_, Vec<String>> {
        self.call(StoreCall::ReapSlots { now })
    }
    fn write_logs(&self, logs: Vec<LogRecord>) -> StoreFuture<'_, ()> {
        self.call(StoreCall::WriteLogs { logs })
    }
    fn read_logs<'a>(&'a self, filter: &'a LogFilter) -> StoreFuture<'a, Vec<LogRecord>> {
        self.call(StoreCall::ReadLogs {
            filter: filter.clone(),
        })
    }
    fn flush(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.behind.settle().await?;
            self.behind.take_failure()?;
            self.call(StoreCall::Flush).await
        })
    }
    fn runs_due_hint(&self) -> Option<Arc<Notify>> {
        Some(self.due.clone())
    }
    fn poll_interval(&self) -> Option<Duration> {
        Some(self.poll)
    }
}
