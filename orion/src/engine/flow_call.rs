//! `FlowCall`: what calling a `#[flow]` function returns.

use std::future::IntoFuture;
use std::marker::PhantomData;
use std::time::Duration;

use serde_json::{Map, Value};

use super::outcome::{BoxFuture, Verdict};
use super::runner::TaskRunner;
use crate::state::State;
use crate::{Error, Orion};

/// A flow's definition, built by `#[flow]` as a `static`.
#[doc(hidden)]
#[derive(Debug)]
pub struct FlowSpec {
    pub name: &'static str,
    pub path: &'static str,
    pub version: Option<&'static str>,
    pub description: Option<&'static str>,
    pub task_runner: TaskRunner,
    pub retries: u32,
    pub retry_delay_seconds: f64,
    pub timeout_seconds: Option<f64>,
    pub parameters: &'static [&'static str],
}

/// A call of a `#[flow]` function, not started yet.
///
/// `.await` runs it as a flow run (a subflow run when called inside another flow) and gives
/// the function's return value; [`FlowCall::return_state`] gives its final [`State`].
/// `M` is a marker type that names the flow, so a flow function can be passed around as a
/// typed reference to its flow.
#[must_use = "a flow call does nothing until it is awaited"]
pub struct FlowCall<R, M = ()> {
    pub(crate) spec: &'static FlowSpec,
    pub(crate) parameters: Result<Map<String, Value>, String>,
    pub(crate) run_name: Option<String>,
    pub(crate) body: Box<dyn FnMut(bool) -> BoxFuture<R> + Send>,
    pub(crate) verdict: fn(&R) -> Verdict,
    pub(crate) from_error: Option<fn(Error) -> R>,
    pub(crate) orion: Option<Orion>,
    pub(crate) retries: Option<u32>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) task_runner: Option<TaskRunner>,
    pub(crate) tags: Vec<String>,
    /// An existing flow run (from a deployment) to run as, instead of creating one.
    pub(crate) adopt: Option<crate::store::FlowRun>,
    marker: PhantomData<fn() -> M>,
}

impl<R: Send + 'static, M: 'static> FlowCall<R, M> {
    #[doc(hidden)]
    pub fn __new(
        spec: &'static FlowSpec,
        parameters: Result<Map<String, Value>, String>,
        run_name: Option<String>,
        body: Box<dyn FnMut(bool) -> BoxFuture<R> + Send>,
        verdict: fn(&R) -> Verdict,
        from_error: Option<fn(Error) -> R>,
    ) -> Self {
        FlowCall {
            spec,
            parameters,
            run_name,
            body,
            verdict,
            from_error,
            orion: None,
            retries: None,
            timeout: None,
            task_runner: None,
            tags: Vec::new(),
            adopt: None,
            marker: PhantomData,
        }
    }

    /// The flow's name.
    pub fn flow_name(&self) -> &'static str {
        self.spec.name
    }

    /// Runs against `orion` instead of the ambient runtime (ignored for a subflow, which
    /// belongs to its parent's runtime).
    pub fn on(mut self, orion: &Orion) -> Self {
        self.orion = Some(orion.clone());
        self
    }
    /// Sets the number of retries for this run.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = Some(n);
        self
    }
    /// Sets a time limit per attempt for this run.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Names this flow run.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.run_name = Some(name.into());
        self
    }
    /// Uses another task runner for this run.
    pub fn task_runner(mut self, runner: TaskRunner) -> Self {
        self.task_runner = Some(runner);
        self
    }
    /// Tags this run.
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Runs the flow and returns its final state instead of its value; never panics on the
    /// flow's account.
    pub async fn return_state(self) -> State<R> {
        super::flow_run::run(self).await.into_state()
    }
}

impl<R: Send + 'static, M: 'static> IntoFuture for FlowCall<R, M> {
    type Output = R;
    type IntoFuture = BoxFuture<R>;

    /// Runs the flow and gives its value.
    ///
    /// A flow body that panicked panics here again, after the run was recorded Failed. A run
    /// that ended without a value (timed out, crashed) gives `Err` when the flow returns a
    /// `Result` whose error converts from [`crate::Error`], and panics otherwise: use
    /// [`FlowCall::return_state`] to handle every ending without a panic.
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let from_error = self.from_error;
            super::flow_run::run(self)
                .await
                .into_value(from_error, "flow run")
        })
    }
}
