//! Flows and deployments.

use axum::Json;
use axum::extract::{Path, State as Ctx};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::filters::limit;
use super::view::{Shown, all_shown, shown};
use crate::Orion;
use crate::deployment::{DeploymentRunOptions, ParameterType};
use crate::server::error::{ApiError, ApiResult, OptionalBody, Params, id};
use crate::state::StateType;
use crate::store::{Deployment, DeploymentFilter, Flow, FlowRun, FlowRunFilter, Sort};

pub(crate) async fn flows(Ctx(orion): Ctx<Orion>) -> ApiResult<Json<Vec<Flow>>> {
    Ok(Json(orion.client().read_flows().await?))
}

pub(crate) async fn flow(
    Ctx(orion): Ctx<Orion>,
    Path(flow): Path<String>,
) -> ApiResult<Json<Flow>> {
    let flow = id(&flow, "flow")?;
    orion
        .client()
        .read_flow(flow)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("flow {flow} not found")))
}

pub(crate) async fn flow_by_name(
    Ctx(orion): Ctx<Orion>,
    Path(name): Path<String>,
) -> ApiResult<Json<Flow>> {
    orion
        .client()
        .read_flow_by_name(&name)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("flow {name:?} not found")))
}

/// A deployment as the API shows it: the record, its schedules in words, and the flow's
/// parameters when the server's program has the flow compiled in.
#[derive(Debug, Serialize)]
pub(crate) struct DeploymentView {
    #[serde(flatten)]
    deployment: Deployment,
    schedules_in_words: Vec<String>,
    /// `[{"name": "nums", "type": "Vec<i64>"}]`: from the flow when this program has it, else
    /// as the deployment keeps them (empty when unknown).
    flow_parameters: Vec<ParameterType>,
}

/// A deployment's flow parameters: from the flow when this program has it, else as the
/// deployment keeps them.
pub(crate) fn flow_parameters(deployment: &Deployment) -> Vec<ParameterType> {
    let of_flow = crate::deployment::parameter_types_of(&deployment.flow_name);
    if of_flow.is_empty() {
        deployment.parameter_types.clone()
    } else {
        of_flow
    }
}

pub(crate) fn view(deployment: Deployment) -> DeploymentView {
    let flow_parameters = flow_parameters(&deployment);
    DeploymentView {
        schedules_in_words: deployment
            .schedules
            .iter()
            .map(|s| {
                let words = s.schedule.describe();
                if s.active {
                    words
                } else {
                    format!("{words} (inactive)")
                }
            })
            .collect(),
        flow_parameters,
        deployment,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeploymentQuery {
    flow_name: Option<String>,
    name: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    paused: Option<bool>,
}

pub(crate) async fn filter(
    Ctx(orion): Ctx<Orion>,
    OptionalBody(query): OptionalBody<DeploymentQuery>,
) -> ApiResult<Json<Vec<DeploymentView>>> {
    let mut filter = DeploymentFilter::new();
    filter.flow_name = query.flow_name;
    filter.name = query.name;
    filter.tags = query.tags;
    filter.paused = query.paused;
    let all = orion.client().read_deployments(&filter).await?;
    Ok(Json(all.into_iter().map(view).collect()))
}

async fn deployment(orion: &Orion, text: &str) -> ApiResult<Deployment> {
    let id = id(text, "deployment")?;
    orion
        .client()
        .read_deployment(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("deployment {id} not found")))
}

pub(crate) async fn read(
    Ctx(orion): Ctx<Orion>,
    Path(d): Path<String>,
) -> ApiResult<Json<DeploymentView>> {
    Ok(Json(view(deployment(&orion, &d).await?)))
}

pub(crate) async fn by_name(
    Ctx(orion): Ctx<Orion>,
    Path((flow, name)): Path<(String, String)>,
) -> ApiResult<Json<DeploymentView>> {
    let d = orion
        .client()
        .read_deployment_by_name(&format!("{flow}/{name}"))
        .await?;
    Ok(Json(view(d)))
}

pub(crate) async fn delete(Ctx(orion): Ctx<Orion>, Path(d): Path<String>) -> ApiResult<StatusCode> {
    let d = deployment(&orion, &d).await?;
    orion.client().delete_deployment(d.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn pause(
    Ctx(orion): Ctx<Orion>,
    Path(d): Path<String>,
) -> ApiResult<Json<DeploymentView>> {
    let d = deployment(&orion, &d).await?;
    Ok(Json(view(orion.client().pause_deployment(d.id).await?)))
}

pub(crate) async fn resume(
    Ctx(orion): Ctx<Orion>,
    Path(d): Path<String>,
) -> ApiResult<Json<DeploymentView>> {
    let d = deployment(&orion, &d).await?;
    Ok(Json(view(orion.client().resume_deployment(d.id).await?)))
}

pub(crate) async fn schedules(
    Ctx(orion): Ctx<Orion>,
    Path(d): Path<String>,
) -> ApiResult<Json<Vec<crate::store::DeploymentSchedule>>> {
    Ok(Json(deployment(&orion, &d).await?.schedules))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Upcoming {
    limit: Option<usize>,
}

/// The deployment's Scheduled runs, soonest first.
pub(crate) async fn upcoming(
    Ctx(orion): Ctx<Orion>,
    Path(d): Path<String>,
    Params(q): Params<Upcoming>,
) -> ApiResult<Json<Vec<Shown<FlowRun>>>> {
    let d = deployment(&orion, &d).await?;
    let filter = FlowRunFilter::new()
        .deployment_id(d.id)
        .state_types([StateType::Scheduled])
        .sort(Sort::ExpectedStartAsc)
        .limit(limit(q.limit.or(Some(10)))?);
    Ok(Json(all_shown(
        orion.client().read_flow_runs(&filter).await?,
    )))
}

/// `POST /api/deployments/{id}/create_flow_run` body: Prefect's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRun {
    #[serde(default)]
    parameters: Map<String, Value>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    state: Option<ScheduledAt>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ScheduledAt {
    #[serde(default)]
    state_details: Option<StateDetailsAt>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct StateDetailsAt {
    scheduled_time: Option<jiff::Timestamp>,
}

/// Creates a run of the deployment, Scheduled for now (or the body's
/// `state.state_details.scheduled_time`), with its parameters merged over the deployment's;
/// parameters that do not fit a flow compiled into the server's program are refused (422).
pub(crate) async fn create_flow_run(
    Ctx(orion): Ctx<Orion>,
    Path(d): Path<String>,
    OptionalBody(body): OptionalBody<CreateRun>,
) -> ApiResult<(StatusCode, Json<Shown<FlowRun>>)> {
    let d = deployment(&orion, &d).await?;
    let mut options = DeploymentRunOptions::new();
    options.parameters = body.parameters;
    options.tags = body.tags;
    options.idempotency_key = body.idempotency_key;
    options.scheduled_time = body
        .state
        .and_then(|s| s.state_details)
        .and_then(|d| d.scheduled_time);
    let run = orion
        .client()
        .create_flow_run_from_deployment(&d, Some(options))
        .await?;
    Ok((StatusCode::CREATED, Json(shown(run))))
}
