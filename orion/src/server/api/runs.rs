//! Flow runs, task runs and logs.

use axum::Json;
use axum::extract::{Path, State as Ctx};
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::filters::{FlowRunQuery, LogQuery, TaskRunQuery};
use super::view::{Shown, all_shown, shown};
use crate::Orion;
use crate::client::{RunRef, Transition};
use crate::server::error::{ApiError, ApiResult, Body, OptionalBody, id};
use crate::state::{State, StateType};
use crate::store::{FlowRun, HistoryBucket, HistoryWindow, LogRecord, TaskRun};

pub(crate) async fn filter(
    Ctx(orion): Ctx<Orion>,
    OptionalBody(query): OptionalBody<FlowRunQuery>,
) -> ApiResult<Json<Vec<Shown<FlowRun>>>> {
    Ok(Json(all_shown(
        orion.client().read_flow_runs(&query.filter()?).await?,
    )))
}

pub(crate) async fn count(
    Ctx(orion): Ctx<Orion>,
    OptionalBody(query): OptionalBody<FlowRunQuery>,
) -> ApiResult<Json<usize>> {
    let filter = query.filter()?.unpaged();
    Ok(Json(orion.client().store().count_flow_runs(&filter).await?))
}

/// `POST /api/flow_runs/history` body: Prefect's, with the bucket width in seconds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    history_start: Timestamp,
    history_end: Timestamp,
    history_interval_seconds: f64,
    #[serde(flatten)]
    runs: FlowRunQuery,
}

pub(crate) async fn history(
    Ctx(orion): Ctx<Orion>,
    Body(query): Body<HistoryQuery>,
) -> ApiResult<Json<Vec<HistoryBucket>>> {
    let span = query
        .history_end
        .duration_since(query.history_start)
        .as_secs_f64();
    if !(query.history_interval_seconds.is_finite() && query.history_interval_seconds > 0.0) {
        return Err(ApiError::invalid(
            "history_interval_seconds must be above 0",
        ));
    }
    let buckets = (span / query.history_interval_seconds).ceil();
    let window = (buckets >= 1.0 && buckets <= f64::from(crate::store::MAX_BUCKETS))
        .then(|| HistoryWindow::new(query.history_start, query.history_end, buckets as u32))
        .flatten()
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "history_end must be after history_start, with at most {} intervals",
                crate::store::MAX_BUCKETS
            ))
        })?;
    let filter = query.runs.filter()?.unpaged();
    Ok(Json(
        orion
            .client()
            .store()
            .flow_run_history(&filter, window)
            .await?,
    ))
}

pub(crate) async fn read(
    Ctx(orion): Ctx<Orion>,
    Path(run): Path<String>,
) -> ApiResult<Json<Shown<FlowRun>>> {
    let run = id(&run, "flow run")?;
    orion
        .client()
        .read_flow_run(run)
        .await?
        .map(|r| Json(shown(r)))
        .ok_or_else(|| ApiError::not_found(format!("flow run {run} not found")))
}

pub(crate) async fn states(
    Ctx(orion): Ctx<Orion>,
    Path(run): Path<String>,
) -> ApiResult<Json<Vec<State>>> {
    let run = id(&run, "flow run")?;
    Ok(Json(orion.client().read_flow_run_states(run).await?))
}

pub(crate) async fn cancel(
    Ctx(orion): Ctx<Orion>,
    Path(run): Path<String>,
) -> ApiResult<Json<State>> {
    let run = id(&run, "flow run")?;
    Ok(Json(orion.client().cancel_flow_run(run).await?))
}

pub(crate) async fn retry(
    Ctx(orion): Ctx<Orion>,
    Path(run): Path<String>,
) -> ApiResult<Json<State>> {
    let run = id(&run, "flow run")?;
    Ok(Json(orion.client().retry_flow_run(run).await?))
}

/// `POST /api/flow_runs/{id}/set_state` body: Prefect's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetStateBody {
    state: StateBody,
    #[serde(default)]
    force: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateBody {
    #[serde(rename = "type")]
    kind: StateType,
    name: Option<String>,
    message: Option<String>,
    /// For Scheduled states: when.
    scheduled_time: Option<Timestamp>,
}

/// Proposes a state through orchestration, as Prefect's route does; the answer says whether
/// it was accepted (`ACCEPT`), replaced (`REJECT`, with the state chosen instead), to be
/// proposed again later (`WAIT`) or refused (`ABORT`).
pub(crate) async fn set_state(
    Ctx(orion): Ctx<Orion>,
    Path(run): Path<String>,
    Body(body): Body<SetStateBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let run_id = id(&run, "flow run")?;
    if body.force {
        return Err(ApiError::invalid(
            "force is not supported: every state goes through orchestration",
        ));
    }
    let client = orion.client();
    let run = client
        .read_flow_run(run_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flow run {run_id} not found")))?;
    let StateBody {
        kind,
        name,
        message,
        scheduled_time,
    } = body.state;
    let mut proposed = match name {
        Some(name) => State::new(kind, name),
        None => State::of_type(kind),
    };
    if let Some(message) = message {
        proposed = proposed.with_message(message);
    }
    if kind == StateType::Scheduled {
        proposed = proposed.with_scheduled_time(scheduled_time.unwrap_or_else(|| client.now()));
    }
    let proposed_id = proposed.id();
    let reference = RunRef::flow(run.id, run.state.as_ref(), run.run_count, &run.retry);
    match client.propose_state(reference, proposed).await {
        Ok(Transition::Set(state)) => {
            let status = if state.id() == proposed_id || state.state_type() == kind {
                "ACCEPT"
            } else {
                "REJECT"
            };
            if kind.is_terminal() || kind == StateType::Scheduled {
                client.flush().await?;
            }
            Ok((
                StatusCode::CREATED,
                Json(json!({ "status": status, "state": state })),
            ))
        }
        Ok(Transition::Wait(delay)) => Ok((
            StatusCode::OK,
            Json(json!({"status": "WAIT", "details": {"delay_seconds": delay.as_secs_f64()}})),
        )),
        Err(crate::Error::Aborted { reason }) => Ok((
            StatusCode::OK,
            Json(json!({"status": "ABORT", "details": {"reason": reason}})),
        )),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn task_runs(
    Ctx(orion): Ctx<Orion>,
    OptionalBody(query): OptionalBody<TaskRunQuery>,
) -> ApiResult<Json<Vec<Shown<TaskRun>>>> {
    Ok(Json(all_shown(
        orion.client().read_task_runs(&query.filter()?).await?,
    )))
}

pub(crate) async fn task_run(
    Ctx(orion): Ctx<Orion>,
    Path(run): Path<String>,
) -> ApiResult<Json<Shown<TaskRun>>> {
    let run = id(&run, "task run")?;
    orion
        .client()
        .read_task_run(run)
        .await?
        .map(|r| Json(shown(r)))
        .ok_or_else(|| ApiError::not_found(format!("task run {run} not found")))
}

pub(crate) async fn logs(
    Ctx(orion): Ctx<Orion>,
    OptionalBody(query): OptionalBody<LogQuery>,
) -> ApiResult<Json<Vec<LogRecord>>> {
    Ok(Json(orion.client().read_logs(&query.filter()?).await?))
}
