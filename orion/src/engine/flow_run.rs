//! Executes one flow run: create it, run its body, wait for its children, decide its final
//! state by the Orion rule, retry.

use std::sync::Arc;
use std::time::Duration;

use super::context::{self, FlowRunContext, FlowRunCtx, RunCtx};
use super::flow_call::FlowCall;
use super::outcome::{
    CatchUnwind, Outcome, Verdict, install_panic_hook, panic_detail, panic_message,
};
use super::task_run::{Failure, propose_end, propose_until_set};
use crate::client::RunRef;
use crate::orchestration::{RetryDelay, RetryPolicy};
use crate::state::State;
use crate::store::{FlowRun, LogLevel, TaskRun};
use crate::{Orion, OrionClient};

/// Runs `call` to its final state.
pub(crate) async fn run<R: Send + 'static, M: 'static>(mut call: FlowCall<R, M>) -> Outcome<R> {
    let parent = context::current();
    let parent_flow = parent.as_ref().and_then(|p| p.flow().cloned());
    let orion = match (&parent, call.orion.take()) {
        (Some(p), _) => p.orion().clone(),
        (None, Some(o)) => o,
        (None, None) => Orion::current(),
    };
    let spec = call.spec;
    let client = orion.client().clone();
    let flow = match orion.flow_record(spec.name).await {
        Ok(flow) => flow,
        Err(e) => {
            return Outcome::without_value(State::crashed(format!(
                "could not create the flow: {e}"
            )));
        }
    };

    let parent_task = match &parent_flow {
        Some(pf) => match create_parent_task_run(&client, pf, spec).await {
            Ok(t) => Some(t),
            Err(e) => return Outcome::without_value(State::crashed(e.to_string())),
        },
        None => None,
    };

    let runner = call.task_runner.unwrap_or(spec.task_runner);
    let name = call
        .run_name
        .take()
        .unwrap_or_else(crate::run_names::random_slug);
    let (parameters, bad_parameters) =
        match std::mem::replace(&mut call.parameters, Ok(Default::default())) {
            Ok(p) => (p, None),
            Err(e) => (Default::default(), Some(e)),
        };
    let retry = RetryPolicy {
        retries: call.retries.unwrap_or(spec.retries),
        delay: RetryDelay::Fixed(spec.retry_delay_seconds),
        jitter_factor: None,
    };
    // Cancellation requests of this runtime (`OrionClient::cancel_flow_run`, or an agent
    // passing on what a lease renewal told it), watched for this run's id.
    let cancellations = parent_flow.is_none().then(|| client.cancellations());
    let adopted = call.adopt.take();
    let is_adopted = adopted.is_some();
    let record = match adopted {
        Some(run) => match claim(&client, run).await {
            Ok(run) => run,
            Err(state) => return Outcome::without_value(state),
        },
        None => {
            let mut record = FlowRun::new(&flow, name);
            record.parameters = parameters;
            record.tags = std::mem::take(&mut call.tags);
            record.parent_task_run_id = parent_task.as_ref().map(|(t, _)| t.id);
            record.task_runner = Some(runner.to_string());
            // Stamped by the client's clock, like the run's states.
            record.created = client.now();
            record.expected_start_time = Some(record.created);
            record.state = Some(State::pending().with_timestamp(record.created));
            record.retry = retry.clone();
            match client.create_flow_run(record).await {
                Ok(r) => r,
                Err(e) => {
                    return Outcome::without_value(State::crashed(format!(
                        "could not create the flow run: {e}"
                    )));
                }
            }
        }
    };
    let verb = if is_adopted { "Executing" } else { "Created" };
    match &parent_flow {
        Some(pf) => pf.log(
            LogLevel::Info,
            format!(
                "Created subflow run '{}' for flow '{}'",
                record.name, spec.name
            ),
        ),
        None => context::emit(
            &orion,
            LogLevel::Info,
            "orion.engine".into(),
            "orion.engine",
            format!("{verb} flow run '{}' for flow '{}'", record.name, spec.name),
            Some(record.id),
            None,
        ),
    }

    let info = FlowRunContext {
        id: record.id,
        name: record.name.clone(),
        flow_name: spec.name,
    };
    let timeout = call.timeout.or_else(|| {
        spec.timeout_seconds
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
    });
    let mut current = record.state.clone().unwrap_or_else(State::pending);
    // An adopted run may have run before (a retry after a crash): its attempts count.
    let mut run_count = record.run_count;
    let mut cancel = CancelWatch {
        id: info.id,
        receiver: cancellations,
    };
    let mut ctx = Arc::new(FlowRunCtx::new(orion.clone(), info.clone(), runner));
    ctx.log(LogLevel::Info, format!("Using task runner '{runner}'"));

    let outcome = loop {
        let proposed = if run_count == 0 {
            State::running()
        } else {
            State::retrying()
        };
        let entered = match propose_until_set(
            &client,
            RunRef::flow(info.id, Some(&current), run_count, &retry).fence(),
            proposed,
        )
        .await
        {
            Ok(s) => s,
            // Moved by someone else (cancelled, reaped): that state stands.
            Err(crate::Error::Conflict {
                current: Some(state),
                ..
            }) => break Outcome::without_value((*state).map_data(|_| None)),
            Err(e) => break Outcome::without_value(State::crashed(e.to_string())),
        };
        if !entered.is_running() {
            break Outcome::without_value(entered);
        }
        run_count += 1;
        current = entered;
        if run_count > 1 {
            // A retry starts with a clean slate of children.
            ctx = Arc::new(FlowRunCtx::new(orion.clone(), info.clone(), runner));
        }

        let result = match &bad_parameters {
            Some(_) => None,
            None => Some(
                execute(
                    &mut call,
                    &ctx,
                    run_count > retry.retries,
                    timeout,
                    &mut cancel,
                )
                .await,
            ),
        };
        if let Some(Err(Failure::Cancelled)) = &result {
            // Cancelled from outside: the run is Cancelling (or was moved on) in the store.
            match client.read_flow_run(info.id).await {
                Ok(Some(FlowRun {
                    state: Some(stored),
                    ..
                })) if stored.state_type() == crate::StateType::Cancelling => current = stored,
                Ok(Some(FlowRun {
                    state: Some(stored),
                    ..
                })) if stored.id() != current.id() => break Outcome::without_value(stored),
                _ => {}
            }
        }
        // What the error log line names: the error with its causes, or the panic and where.
        let mut detail = None;
        let proposed = match (&result, &bad_parameters) {
            (_, Some(e)) => State::failed(format!("Flow run received invalid parameters: {e}")),
            (Some(Ok(value)), None) => match (call.verdict)(value) {
                Verdict::Err { message, chain } => {
                    detail = Some(chain);
                    State::failed(message)
                }
                Verdict::Value => State::completed(),
                Verdict::Unit => match ctx.children.counts() {
                    (0, _) => State::completed().with_message("All states completed."),
                    (failed, total) => State::failed(format!("{failed}/{total} states failed.")),
                },
            },
            (Some(Err(Failure::Panic(payload))), None) => {
                detail = Some(panic_detail(payload, ctx.panic_at.take()));
                State::failed(panic_message(payload))
            }
            (Some(Err(Failure::TimedOut(d))), None) => State::timed_out(format!(
                "Flow run exceeded timeout of {} second(s)",
                d.as_secs_f64()
            )),
            (Some(Err(Failure::Cancelled)), None) => State::cancelled("Flow run was cancelled."),
            (None, None) => State::crashed("flow run produced no result"),
        };
        let mut proposed = proposed;
        proposed.details_mut().flow_run_id = Some(info.id);
        // A child's failure has its own error line; the flow's own error gets one here.
        let failure = detail.or_else(|| {
            (proposed.is_failed() && proposed.name() != "Failed" || bad_parameters.is_some())
                .then(|| proposed.message().unwrap_or_default().to_owned())
        });
        let state = propose_end(
            &client,
            RunRef::flow(info.id, Some(&current), run_count, &retry).fence(),
            proposed,
            "flow run",
        )
        .await;
        if state.is_scheduled() {
            let wait = state.details().scheduled_time.map_or(0.0, |at| {
                client.now().duration_until(at).as_secs_f64().max(0.0)
            });
            ctx.log(
                LogLevel::Info,
                format!(
                    "Flow run failed with error: {} - Retry {}/{} will start {} second(s) from now",
                    failure
                        .or_else(|| state.message().map(str::to_owned))
                        .unwrap_or_default(),
                    run_count,
                    retry.retries,
                    (wait * 100.0).round() / 100.0
                ),
            );
            current = state;
            continue;
        }
        if let (true, Some(detail)) = (state.is_failed(), failure) {
            let exhausted = if retry.retries > 0 {
                " - Retries are exhausted"
            } else {
                ""
            };
            ctx.log(
                LogLevel::Error,
                format!("Flow run failed with error: {detail}{exhausted}"),
            );
        }
        let value = match result {
            Some(Ok(v)) => Ok(v),
            Some(Err(Failure::Panic(p))) => Err(Some(p)),
            _ => Err(None),
        };
        break Outcome { state, value };
    };

    let level = if outcome.state.is_completed() {
        LogLevel::Info
    } else {
        LogLevel::Error
    };
    ctx.log(level, format!("Finished in state {}", outcome.state));
    if let (Some(pf), Some((task, task_state))) = (&parent_flow, parent_task) {
        finish_parent_task_run(&client, &task, task_state, &outcome.state).await;
        pf.children.record(outcome.state.is_completed());
        orion.flush_logs_if_full().await;
    } else {
        orion.flush_logs().await;
    }
    outcome
}

/// Watches a runtime's cancellation requests for one flow run.
struct CancelWatch {
    id: uuid::Uuid,
    receiver: Option<tokio::sync::broadcast::Receiver<uuid::Uuid>>,
}

impl CancelWatch {
    /// Resolves when this run is asked to cancel (never, for a subflow: its parent's
    /// cancellation reaches it as a child).
    async fn requested(&mut self) {
        let Some(receiver) = &mut self.receiver else {
            return std::future::pending().await;
        };
        loop {
            match receiver.recv().await {
                Ok(id) if id == self.id => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    return std::future::pending().await;
                }
            }
        }
    }
}

/// One attempt of the flow body, then a wait for every child it submitted. A cancellation
/// request stops the body and its children.
async fn execute<R: Send + 'static, M: 'static>(
    call: &mut FlowCall<R, M>,
    ctx: &Arc<FlowRunCtx>,
    last: bool,
    timeout: Option<Duration>,
    cancel: &mut CancelWatch,
) -> Result<R, Failure> {
    install_panic_hook();
    let fut = (call.body)(last);
    let attempt = context::scope(RunCtx::Flow(Arc::clone(ctx)), CatchUnwind(fut));
    let timed = async {
        match timeout {
            Some(limit) => match tokio::time::timeout(limit, attempt).await {
                Ok(r) => r.map_err(Failure::Panic),
                Err(_) => {
                    ctx.children.cancel();
                    Err(Failure::TimedOut(limit))
                }
            },
            None => attempt.await.map_err(Failure::Panic),
        }
    };
    let result = tokio::select! {
        biased;
        result = timed => result,
        () = cancel.requested() => {
            ctx.children.cancel();
            Err(Failure::Cancelled)
        }
    };
    ctx.children.wait_idle().await;
    result
}

/// The task run that stands for a subflow run in its parent flow run, already Running.
async fn create_parent_task_run(
    client: &OrionClient,
    parent: &FlowRunCtx,
    spec: &'static super::flow_call::FlowSpec,
) -> crate::Result<(TaskRun, State)> {
    let hash = super::task_call::stable_hash(spec.path);
    let dynamic_key = parent.next_dynamic_key(std::ptr::from_ref(spec) as usize);
    let key: Arc<str> = format!("{}-{hash:08x}", spec.name).into();
    let mut task = TaskRun::new(format!("{key}-{dynamic_key}"), key, dynamic_key);
    task.flow_run_id = Some(parent.info.id);
    task.state = Some(State::pending());
    let task = client.create_task_run(task).await?;
    let pending = task.state.clone().unwrap_or_else(State::pending);
    let policy = RetryPolicy::default();
    let run = RunRef::task(task.id, Some(&pending), 0, &policy);
    let running = propose_until_set(client, run, State::running()).await?;
    Ok((task, running))
}

/// Mirrors the subflow run's final state onto its parent task run.
async fn finish_parent_task_run(
    client: &OrionClient,
    task: &TaskRun,
    current: State,
    final_state: &State,
) {
    let policy = RetryPolicy::default();
    let run = RunRef::task(task.id, Some(&current), 1, &policy);
    let mirror = final_state.without_data::<serde_json::Value>().renewed();
    // The subflow's own state is recorded already; a failure here only loses the mirror.
    let _ = propose_until_set(client, run, mirror).await;
}

/// Claims an existing flow run: Pending from whatever it waits in (Scheduled), through
/// orchestration, so a run already claimed elsewhere is not run twice. A run an agent
/// claimed (Pending with its lease) is the agent's to run: it goes on as it is.
async fn claim(client: &OrionClient, run: FlowRun) -> Result<FlowRun, State> {
    if run.state.as_ref().is_some_and(State::is_pending) && run.lease.is_some() {
        return Ok(run);
    }
    let policy = RetryPolicy::default();
    let run_ref = RunRef::flow(run.id, run.state.as_ref(), run.run_count, &policy);
    match client.propose_state(run_ref, State::pending()).await {
        Ok(crate::Transition::Set(state)) if state.is_pending() => Ok(FlowRun {
            state: Some(state),
            ..run
        }),
        Ok(crate::Transition::Set(state)) => Err(state),
        Ok(crate::Transition::Wait(_)) => Err(State::crashed("the run cannot be claimed yet")),
        Err(e) => Err(State::crashed(format!("could not claim the flow run: {e}"))),
    }
}
