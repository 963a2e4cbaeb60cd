//! A test harness for your own flows: an isolated in-memory runtime per test.
//!
//! ```
//! use orion::prelude::*;
//! use orion::testing::TestHarness;
//!
//! #[task(retries = 1)]
//! async fn divide(a: i64, b: i64) -> Result<i64, String> {
//!     if b == 0 { Err("division by zero".into()) } else { Ok(a / b) }
//! }
//!
//! #[flow]
//! async fn ratios(b: i64) -> Result<i64, String> {
//!     divide(10, b).await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> orion::Result<()> {
//! // In a real test: #[tokio::test] async fn fails_on_zero() { ... }
//! let harness = TestHarness::new();
//! let report = harness.run(ratios(0)).await?;
//! assert!(report.state.is_failed());
//! assert_eq!(report.state.message(), Some("division by zero"));
//! assert_eq!(report.task_runs.len(), 1);
//! assert_eq!(report.task_runs[0].run_count, 2); // the retry ran
//! assert!(report.log_messages().iter().any(|m| m.contains("Retry 1/1")));
//! # Ok(()) }
//! ```

use std::future::{Future, IntoFuture};

use crate::store::{FlowRun, FlowRunFilter, LogFilter, LogRecord, Sort, TaskRun};
use crate::{Error, FlowCall, Orion, OrionClient, Result, State};

/// An isolated in-memory runtime for one test.
///
/// Flows run through [`TestHarness::run`] or inside [`TestHarness::scope`] are recorded in
/// this harness's own store only, so tests running in parallel do not see each other's runs.
#[derive(Debug, Clone)]
pub struct TestHarness {
    orion: Orion,
}

impl Default for TestHarness {
    fn default() -> Self {
        Self::new()
    }
}

/// A finished flow run with everything it recorded.
#[derive(Debug)]
#[non_exhaustive]
pub struct FlowRunReport<R> {
    /// The final state, with the flow's value when it returned one.
    pub state: State<R>,
    /// The flow run record.
    pub flow_run: FlowRun,
    /// Its task runs (including those standing for subflows), in creation order.
    pub task_runs: Vec<TaskRun>,
    /// Its subflow runs.
    pub subflow_runs: Vec<FlowRun>,
    /// Its log lines and its task runs', oldest first.
    pub logs: Vec<LogRecord>,
}

impl<R> FlowRunReport<R> {
    /// The log messages, oldest first.
    pub fn log_messages(&self) -> Vec<&str> {
        self.logs.iter().map(|l| l.message.as_str()).collect()
    }

    /// The task runs whose name starts with `task_name`.
    pub fn task_runs_of(&self, task_name: &str) -> Vec<&TaskRun> {
        let prefix = format!("{task_name}-");
        self.task_runs
            .iter()
            .filter(|t| t.name.starts_with(&prefix))
            .collect()
    }
}

impl TestHarness {
    /// A harness with a fresh in-memory store, on tokio's clock ([`crate::Clock::tokio`]):
    /// under `#[tokio::test(start_paused = true)]`, retry delays, timeouts and cache
    /// expirations pass in virtual time.
    pub fn new() -> Self {
        let store = std::sync::Arc::new(crate::store::MemoryStore::new());
        TestHarness {
            orion: Orion::with_store_and_clock(store, crate::Clock::tokio()),
        }
    }

    /// The runtime.
    pub fn orion(&self) -> &Orion {
        &self.orion
    }

    /// The client over the harness's store.
    pub fn client(&self) -> &OrionClient {
        self.orion.client()
    }

    /// Runs `fut` with the harness as the ambient runtime.
    pub fn scope<F: IntoFuture>(&self, fut: F) -> impl Future<Output = F::Output> {
        self.orion.scope(fut)
    }

    /// Runs a flow call on the harness and collects what it recorded.
    ///
    /// # Errors
    ///
    /// When the store cannot be read, or the flow run cannot be found afterwards (for
    /// example, it could not be created).
    pub async fn run<R: Send + 'static, M: 'static>(
        &self,
        call: FlowCall<R, M>,
    ) -> Result<FlowRunReport<R>> {
        let flow_name = call.flow_name();
        let state = call.on(&self.orion).return_state().await;
        let client = self.client();
        let flow_run = match state.details().flow_run_id {
            Some(id) => client.read_flow_run(id).await?,
            None => client
                .read_flow_runs(
                    &FlowRunFilter::new()
                        .flow_name(flow_name)
                        .sort(Sort::CreatedDesc)
                        .limit(1),
                )
                .await?
                .pop(),
        };
        let flow_run = flow_run.ok_or_else(|| Error::Run {
            state: state.without_data(),
        })?;
        let task_runs = client.read_task_runs_of(flow_run.id).await?;
        let mut subflow_runs = Vec::new();
        for task in &task_runs {
            let filter = FlowRunFilter::new().parent_task_run_id(task.id);
            subflow_runs.extend(client.read_flow_runs(&filter).await?);
        }
        let logs = client
            .read_logs(&LogFilter::new().flow_run_id(flow_run.id))
            .await?;
        Ok(FlowRunReport {
            state,
            flow_run,
            task_runs,
            subflow_runs,
            logs,
        })
    }
}
