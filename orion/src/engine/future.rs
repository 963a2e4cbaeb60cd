//! `TaskFuture`: a submitted task run.

use std::future::IntoFuture;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::context;
use super::outcome::{BoxFuture, Outcome};
use super::task_call::TaskCall;
use crate::Error;
use crate::state::State;

/// A task run handed to a task runner with [`TaskCall::submit`].
///
/// `.await` gives the task's value (re-raising its panic, like awaiting the call directly);
/// [`TaskFuture::state`] its final state; [`TaskFuture::wait`] waits without consuming.
/// Dropping it does not stop the task run.
#[must_use = "dropping a TaskFuture does not stop the task run, but its value is lost"]
pub struct TaskFuture<R> {
    inner: Inner<R>,
    from_error: Option<fn(Error) -> R>,
}

enum Inner<R> {
    Running(JoinHandle<Outcome<R>>),
    Done(Outcome<R>),
}

impl<R: Send + 'static> TaskFuture<R> {
    /// Waits for the task run to finish and returns its final state (without the value).
    pub async fn wait(&mut self) -> &State {
        if let Inner::Running(handle) = &mut self.inner {
            let outcome = join(handle).await;
            self.inner = Inner::Done(outcome);
        }
        match &self.inner {
            Inner::Done(outcome) => &outcome.state,
            Inner::Running(_) => unreachable!("the task future was just resolved"),
        }
    }

    /// The final state, with the task's value when it returned one.
    pub async fn state(mut self) -> State<R> {
        self.wait().await;
        match self.inner {
            Inner::Done(outcome) => outcome.into_state(),
            Inner::Running(_) => unreachable!("the task future was just resolved"),
        }
    }
}

async fn join<R>(handle: &mut JoinHandle<Outcome<R>>) -> Outcome<R> {
    match handle.await {
        Ok(outcome) => outcome,
        Err(e) => Outcome::without_value(State::crashed(format!(
            "the task run's worker stopped: {e}"
        ))),
    }
}

impl<R: Send + 'static> IntoFuture for TaskFuture<R> {
    type Output = R;
    type IntoFuture = BoxFuture<R>;
    fn into_future(mut self) -> Self::IntoFuture {
        Box::pin(async move {
            self.wait().await;
            match self.inner {
                Inner::Done(outcome) => outcome.into_value(self.from_error, "task run"),
                Inner::Running(_) => unreachable!("the task future was just resolved"),
            }
        })
    }
}

/// Hands a task call to the current flow run's task runner.
pub(crate) fn submit<R: Send + 'static>(call: TaskCall<R>) -> TaskFuture<R> {
    let parent = context::current();
    let flow = parent.as_ref().and_then(|p| p.flow().cloned());
    let mut call = call;
    if parent.is_none() && call.orion.is_none() {
        // The spawned task does not inherit the ambient runtime's scope: carry it along.
        call.orion = Some(crate::Orion::current());
    }
    let from_error = call.from_error;
    let dynamic_key = super::task_run::dynamic_key_for(flow.as_deref(), call.spec);
    let guard = flow.as_ref().map(|f| f.children.start());
    let (limit, parallel, previous, done) = match &flow {
        Some(f) if f.runner.kind == super::TaskRunner::sequential() => {
            // Strictly in submission order: each waits for the one submitted before it.
            let (tx, rx) = oneshot::channel::<()>();
            let previous = f
                .runner
                .tail
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .replace(rx);
            (None, false, previous, Some(tx))
        }
        Some(f) => (
            f.runner.limit.clone(),
            f.runner.kind.is_parallel(),
            None,
            None,
        ),
        None => (None, false, None, None),
    };
    let fut = async move {
        let _guard = guard;
        if let Some(previous) = previous {
            let _ = previous.await;
        }
        let _permit = match limit {
            Some(semaphore) => semaphore.acquire_owned().await.ok(),
            None => None,
        };
        // The run's state machine is some 4 KB: boxed here, it is built on the worker that
        // polls it, and the spawned task stays small, so neither the submitting thread's
        // spawn nor the reading of the output copies it (3.8 µs to 2.5 µs per submitted run).
        let outcome = Box::pin(super::task_run::run(call, parent, Some(dynamic_key))).await;
        drop(done);
        outcome
    };
    let handle = if parallel {
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || runtime.block_on(fut))
    } else {
        tokio::spawn(fut)
    };
    TaskFuture {
        inner: Inner::Running(handle),
        from_error,
    }
}

/// Submits one task run per item: Prefect's `task.map`.
///
/// ```
/// use orion::prelude::*;
///
/// #[task]
/// async fn square(x: u64) -> u64 { x * x }
///
/// #[flow]
/// async fn squares() -> u64 {
///     let futures = orion::map(1..=3, square);
///     orion::gather(futures).await.into_iter().sum()
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # orion::logging::set_console_level(None);
/// assert_eq!(Orion::memory().scope(squares()).await, 14);
/// # }
/// ```
pub fn map<I, R>(items: I, mut task: impl FnMut(I::Item) -> TaskCall<R>) -> Vec<TaskFuture<R>>
where
    I: IntoIterator,
    R: Send + 'static,
{
    items.into_iter().map(|item| task(item).submit()).collect()
}

/// Waits for every future and returns their values in order.
///
/// # Panics
///
/// Re-raises the panic of a task run that panicked, as awaiting it alone would.
pub async fn gather<R: Send + 'static>(futures: impl IntoIterator<Item = TaskFuture<R>>) -> Vec<R> {
    let mut values = Vec::new();
    for future in futures {
        values.push(future.await);
    }
    values
}

/// The sequential runner's last submission, which the next one waits for.
pub(crate) type Tail = Arc<Mutex<Option<oneshot::Receiver<()>>>>;
