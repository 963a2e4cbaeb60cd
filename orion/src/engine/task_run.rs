//! Executes one task run: create it, take it through its states, retry, cache, time out.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::context::{self, Children, FlowRunCtx, RunCtx, TaskRunContext, TaskRunCtx};
use super::outcome::{
    CatchUnwind, Outcome, Payload, Verdict, install_panic_hook, panic_detail, panic_message,
};
use super::tag_limits;
use super::task_call::{Body, TaskCall, TaskOptions};
use crate::client::{RunRef, SlotHold, Transition};
use crate::orchestration::RetryPolicy;
use crate::state::{State, StateDetails};
use crate::store::{LogLevel, TaskRun};
use crate::{Error, Orion};

/// Why an attempt produced no value.
pub(crate) enum Failure {
    Panic(Payload),
    TimedOut(Duration),
    Cancelled,
}

/// Runs `call` to its final state. `parent` is the run it was called from; `dynamic_key` is
/// given when the caller already numbered the call (submissions number at submit time).
pub(crate) async fn run<R: Send + 'static>(
    mut call: TaskCall<R>,
    parent: Option<RunCtx>,
    dynamic_key: Option<u32>,
) -> Outcome<R> {
    let flow = parent.as_ref().and_then(|p| p.flow().cloned());
    let orion = match (&parent, call.orion.take()) {
        (Some(p), _) => p.orion().clone(),
        (None, Some(o)) => o,
        (None, None) => Orion::current(),
    };
    let spec = call.spec;
    let (hash, task_key, spec_tags) = spec.identity();
    let dynamic_key = dynamic_key.unwrap_or_else(|| dynamic_key_for(flow.as_deref(), call.spec));
    let options = call
        .options
        .take()
        .map_or_else(TaskOptions::default, |b| *b);
    let name = options
        .name
        .or(call.run_name.take())
        .unwrap_or_else(|| format!("{}-{hash:08x}-{dynamic_key}", spec.name));
    let retry = RetryPolicy {
        retries: options.retries.unwrap_or(spec.retries),
        delay: options
            .retry_delay
            .unwrap_or_else(|| spec.retry_delay.clone()),
        jitter_factor: options.retry_jitter_factor.or(spec.retry_jitter_factor),
    };
    let timeout = options.timeout.or_else(|| {
        spec.timeout_seconds
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
    });
    let cache_expiration = options.cache_expiration.or_else(|| {
        spec.cache_expiration_seconds
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
    });

    let mut record = TaskRun::new(name, task_key.clone(), dynamic_key);
    record.flow_run_id = flow.as_ref().map(|f| f.info.id);
    record.created = orion.client().now();
    record.tags = match options.tags {
        Some(tags) => tags.into(),
        None => spec_tags.clone(),
    };
    record.state = Some(State::pending());
    let client = orion.client();
    let record = match client.create_task_run(record).await {
        Ok(r) => r,
        Err(e) => {
            return Outcome::without_value(State::crashed(format!(
                "could not create the task run: {e}"
            )));
        }
    };
    let created = format!(
        "Created task run '{}' for task '{}'",
        record.name, spec.name
    );
    match &flow {
        Some(f) => f.log(LogLevel::Info, created),
        None => context::emit(
            &orion,
            LogLevel::Info,
            "orion.engine".into(),
            "orion.engine",
            created,
            None,
            Some(record.id),
        ),
    }

    let mut info = TaskRunContext {
        id: record.id,
        name: record.name,
        task_name: spec.name,
        task_key: task_key.clone(),
        flow_run_id: record.flow_run_id,
        run_count: 0,
    };
    let cache_key = match (spec.cache_key_fn, &call.inputs) {
        (Some(key_fn), Some(inputs)) => key_fn(
            &TaskRunContext {
                run_count: 1,
                ..info.clone()
            },
            inputs,
        ),
        _ => None,
    };
    let source = format!("Task run '{}'", info.name);
    let tags = record.tags;
    let mut current = record.state.unwrap_or_else(State::pending);

    loop {
        // The slots of its tags' concurrency limits, held for this attempt only.
        let mut slots = if tags.is_empty() {
            None
        } else {
            // Only a run that waits logs: its context is built then.
            let log = |level, message| {
                RunCtx::Task(task_ctx(&orion, flow.as_ref(), &info, &source))
                    .log(level, None, message);
            };
            let asker = tag_limits::Asker {
                client,
                info: &info,
                retry: &retry,
                cancel: flow.as_ref().map(|f| &*f.children),
                log: &log,
            };
            match tag_limits::take(asker, &tags, &mut current).await {
                Ok(slots) => slots,
                Err(ended) => {
                    let outcome = Outcome::without_value(ended);
                    return finish(&orion, flow.as_deref(), outcome, &source, info.id).await;
                }
            }
        };
        let mut proposed = if info.run_count == 0 {
            State::running()
        } else {
            State::retrying()
        };
        if let Some(key) = &cache_key {
            let details = proposed.details_mut();
            details.cache_key = Some(key.clone());
            details.refresh_cache = options.refresh_cache;
        }
        let entered = match propose_until_set(
            client,
            RunRef::task(info.id, Some(&current), info.run_count, &retry),
            proposed,
        )
        .await
        {
            Ok(state) => state,
            Err(e) => {
                release(slots.take()).await;
                RunCtx::Task(task_ctx(&orion, flow.as_ref(), &info, &source)).log(
                    LogLevel::Error,
                    None,
                    format!("Could not enter Running: {e}"),
                );
                return finish(
                    &orion,
                    flow.as_deref(),
                    Outcome::without_value(State::crashed(e.to_string())),
                    &source,
                    info.id,
                )
                .await;
            }
        };
        if !entered.is_running() {
            release(slots.take()).await;
        }
        if entered.is_completed() {
            // A valid cached result: no attempt is made.
            let value = match (&call.codec, entered.data()) {
                (Some(codec), Some(data)) => (codec.decode)(data.clone()).map_err(|_| None),
                _ => Err(None),
            };
            let outcome = Outcome {
                state: entered.map_data(|_| None),
                value,
            };
            return finish(&orion, flow.as_deref(), outcome, &source, info.id).await;
        }
        if !entered.is_running() {
            return finish(
                &orion,
                flow.as_deref(),
                Outcome::without_value(entered),
                &source,
                info.id,
            )
            .await;
        }
        info.run_count += 1;
        current = entered;

        let ctx = task_ctx(&orion, flow.as_ref(), &info, &source);
        let last = info.run_count > retry.retries;
        let cancel = flow.as_ref().map(|f| &*f.children);
        let result = execute(
            &mut call.body,
            RunCtx::Task(Arc::clone(&ctx)),
            last,
            timeout,
            cancel,
        )
        .await;
        // However the attempt ended (value, error, panic, timeout, cancellation), its slots
        // are free before its state is written; a dropped attempt frees them in `SlotHold`'s
        // drop.
        release(slots.take()).await;

        // What the error log line names: the error with its causes, or the panic and where.
        let mut detail = None;
        let proposed = match &result {
            Ok(value) => match (call.verdict)(value) {
                Verdict::Err { message, chain } => {
                    detail = Some(chain);
                    State::failed(message)
                }
                Verdict::Unit | Verdict::Value => completed(
                    value,
                    &call,
                    cache_key.as_deref(),
                    cache_expiration.map(|e| (client.now(), e)),
                ),
            },
            Err(Failure::Panic(payload)) => {
                detail = Some(panic_detail(payload, ctx.panic_at.take()));
                State::failed(panic_message(payload))
            }
            Err(Failure::TimedOut(d)) => State::timed_out(format!(
                "Task run exceeded timeout of {} second(s)",
                d.as_secs_f64()
            )),
            Err(Failure::Cancelled) => {
                State::cancelled("The parent flow run was cancelled or timed out.")
            }
        };
        let detail = detail.or_else(|| {
            proposed
                .is_failed()
                .then(|| proposed.message().unwrap_or_default().to_owned())
        });
        let state = propose_end(
            client,
            RunRef::task(info.id, Some(&current), info.run_count, &retry),
            proposed,
            "task run",
        )
        .await;
        if state.is_scheduled() {
            // AwaitingRetry: orchestration sent the failed attempt around again.
            let wait = state
                .details()
                .scheduled_time
                .map_or(SignedDuration::ZERO, |at| client.now().duration_until(at));
            RunCtx::Task(ctx).log(
                LogLevel::Info,
                None,
                format!(
                    "Task run failed with error: {} - Retry {}/{} will start {} second(s) from now",
                    detail.unwrap_or_default(),
                    info.run_count,
                    retry.retries,
                    (wait.as_secs_f64().max(0.0) * 100.0).round() / 100.0
                ),
            );
            current = state;
            continue;
        }
        if let (true, Some(detail)) = (state.is_failed(), detail) {
            let exhausted = if retry.retries > 0 {
                " - Retries are exhausted"
            } else {
                ""
            };
            RunCtx::Task(ctx).log(
                LogLevel::Error,
                None,
                format!("Task run failed with error: {detail}{exhausted}"),
            );
        }
        let value = match result {
            Ok(v) => Ok(v),
            Err(Failure::Panic(p)) => Err(Some(p)),
            Err(_) => Err(None),
        };
        return finish(
            &orion,
            flow.as_deref(),
            Outcome { state, value },
            &source,
            info.id,
        )
        .await;
    }
}

/// The scope of one attempt of a task run.
fn task_ctx(
    orion: &Orion,
    flow: Option<&Arc<FlowRunCtx>>,
    info: &TaskRunContext,
    source: &str,
) -> Arc<TaskRunCtx> {
    Arc::new(TaskRunCtx {
        orion: orion.clone(),
        flow: flow.cloned(),
        info: info.clone(),
        source: source.to_owned(),
        panic_at: Default::default(),
    })
}

/// Gives back the slots of an attempt (a failure to do so leaves them to lapse with their
/// lease).
async fn release(slots: Option<SlotHold>) {
    if let Some(slots) = slots {
        let _ = slots.release().await;
    }
}

/// The Completed state for a returned value, carrying the encoded value when it is cached.
fn completed<R>(
    value: &R,
    call: &TaskCall<R>,
    cache_key: Option<&str>,
    expiration: Option<(Timestamp, Duration)>,
) -> State {
    let (Some(key), Some(codec)) = (cache_key, &call.codec) else {
        return State::completed();
    };
    let Ok(data) = (codec.encode)(value) else {
        return State::completed();
    };
    let details = StateDetails {
        cache_key: Some(key.to_owned()),
        cache_expiration: expiration
            .and_then(|(now, e)| now.checked_add(SignedDuration::try_from(e).ok()?).ok()),
        ..StateDetails::default()
    };
    State::<serde_json::Value>::completed()
        .with_details(details)
        .with_data(data)
}

/// Proposes the state an attempt ended in. When the store fails instead, the run is recorded
/// as Crashed with the reason, if the store takes that (a failure reported by a file store may
/// be an earlier queued write's, reported once), and that Crashed state is returned either way.
pub(crate) async fn propose_end(
    client: &crate::OrionClient,
    run: RunRef<'_>,
    proposed: State,
    what: &str,
) -> State {
    match propose_until_set(client, run, proposed).await {
        Ok(state) => state,
        Err(e) => {
            let crashed = State::crashed(format!("could not record the {what}'s state: {e}"));
            propose_until_set(client, run, crashed.clone())
                .await
                .unwrap_or(crashed)
        }
    }
}

/// Proposes a state, waiting as long as orchestration asks, until one is set.
pub(crate) async fn propose_until_set(
    client: &crate::OrionClient,
    run: RunRef<'_>,
    proposed: State,
) -> Result<State, Error> {
    loop {
        match client.propose_state(run, proposed.clone()).await? {
            Transition::Set(state) => return Ok(state),
            Transition::Wait(delay) => tokio::time::sleep(delay).await,
        }
    }
}

/// One attempt of the body, under the run context, a timeout and the flow's cancellation.
async fn execute<R: Send + 'static>(
    body: &mut Body<R>,
    ctx: RunCtx,
    last: bool,
    timeout: Option<Duration>,
    cancel: Option<&Children>,
) -> Result<R, Failure> {
    install_panic_hook();
    let attempt = async {
        match body {
            Body::Async(make) => {
                let fut = make(last);
                context::scope(ctx, CatchUnwind(fut))
                    .await
                    .map_err(Failure::Panic)
            }
            Body::Blocking(make) => {
                let thunk = make(last);
                let outer = crate::logging::outer_default();
                match tokio::task::spawn_blocking(move || context::sync_scope(ctx, outer, thunk))
                    .await
                {
                    Ok(v) => Ok(v),
                    Err(e) if e.is_panic() => Err(Failure::Panic(e.into_panic())),
                    Err(_) => Err(Failure::Cancelled),
                }
            }
        }
    };
    let timed = async {
        match timeout {
            Some(limit) => tokio::time::timeout(limit, attempt)
                .await
                .unwrap_or(Err(Failure::TimedOut(limit))),
            None => attempt.await,
        }
    };
    match cancel {
        Some(children) => tokio::select! {
            biased;
            result = timed => result,
            () = children.cancelled() => Err(Failure::Cancelled),
        },
        None => timed.await,
    }
}

/// Logs the final state, counts the run in its flow run, writes logs out when due.
async fn finish<R>(
    orion: &Orion,
    flow: Option<&FlowRunCtx>,
    mut outcome: Outcome<R>,
    source: &str,
    id: uuid::Uuid,
) -> Outcome<R> {
    // The caller's state names its run (the stored one need not: it belongs to the run).
    let details = outcome.state.details_mut();
    details.task_run_id = Some(id);
    details.flow_run_id = flow.map(|f| f.info.id);
    let level = if outcome.state.is_completed() {
        LogLevel::Info
    } else {
        LogLevel::Error
    };
    let flow_run_id = flow.map(|f| f.info.id);
    context::emit(
        orion,
        level,
        "orion.task_runs".into(),
        source,
        format!("Finished in state {}", outcome.state),
        flow_run_id,
        Some(id),
    );
    match flow {
        Some(f) => {
            f.children.record(outcome.state.is_completed());
            orion.flush_logs_if_full().await;
        }
        None => orion.flush_logs().await,
    }
    outcome
}

pub(crate) fn dynamic_key_for(
    flow: Option<&FlowRunCtx>,
    spec: &'static super::task_call::TaskSpec,
) -> u32 {
    match flow {
        Some(f) => f.next_dynamic_key(std::ptr::from_ref(spec) as usize),
        None => spec
            .standalone_calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    }
}
