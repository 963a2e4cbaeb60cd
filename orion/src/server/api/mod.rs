//! The REST API under `/api`: Prefect-shaped routes over the runtime's client (so state
//! changes go through orchestration), and `POST /api/store`, the remote runtime's protocol.

mod deployments;
mod filters;
mod queues;
mod runs;

use axum::Json;
use axum::extract::{OriginalUri, State as Ctx};
use axum::http::Method;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, Body};
use crate::Orion;
use crate::store::protocol::{PROTOCOL_VERSION, StoreCall, dispatch};

/// The `/api` routes (every one listed in [`super::openapi::ROUTES`]).
pub(crate) fn routes() -> axum::Router<Orion> {
    use deployments as d;
    use queues as q;
    axum::Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/openapi.json", get(openapi))
        .route("/store", post(store))
        .route("/flows/filter", post(d::flows))
        .route("/flows/{id}", get(d::flow))
        .route("/flows/name/{name}", get(d::flow_by_name))
        .route("/deployments/filter", post(d::filter))
        .route("/deployments/{id}", get(d::read).delete(d::delete))
        .route("/deployments/name/{flow}/{name}", get(d::by_name))
        .route(
            "/deployments/{id}/create_flow_run",
            post(d::create_flow_run),
        )
        .route("/deployments/{id}/pause_deployment", post(d::pause))
        .route("/deployments/{id}/resume_deployment", post(d::resume))
        .route("/deployments/{id}/schedules", get(d::schedules))
        .route("/deployments/{id}/upcoming", get(d::upcoming))
        .route("/flow_runs/filter", post(runs::filter))
        .route("/flow_runs/count", post(runs::count))
        .route("/flow_runs/history", post(runs::history))
        .route("/flow_runs/{id}", get(runs::read))
        .route("/flow_runs/{id}/states", get(runs::states))
        .route("/flow_runs/{id}/set_state", post(runs::set_state))
        .route("/flow_runs/{id}/cancel", post(runs::cancel))
        .route("/flow_runs/{id}/retry", post(runs::retry))
        .route("/task_runs/filter", post(runs::task_runs))
        .route("/task_runs/{id}", get(runs::task_run))
        .route("/logs/filter", post(runs::logs))
        .route("/work_queues/", post(q::create))
        .route("/work_queues/filter", post(q::list))
        .route(
            "/work_queues/name/{name}",
            get(q::read).patch(q::update).delete(q::delete),
        )
        .route("/work_queues/name/{name}/status", get(q::status))
        .route("/work_queues/name/{name}/preview", get(q::preview))
        .route("/concurrency_limits/", post(q::set_limit))
        .route("/concurrency_limits/filter", post(q::limits))
        .route(
            "/concurrency_limits/tag/{name}",
            get(q::limit_status).delete(q::delete_limit),
        )
        .route("/concurrency_limits/tag/{name}/reset", post(q::reset_limit))
        .fallback(no_route)
}

async fn health() -> Json<bool> {
    Json(true)
}

async fn version() -> Json<Value> {
    Json(json!({
        "orion": env!("CARGO_PKG_VERSION"),
        "store_protocol": PROTOCOL_VERSION,
    }))
}

async fn openapi() -> Json<Value> {
    Json(super::openapi::document())
}

/// The remote runtime's store call, run on the server's store.
async fn store(Ctx(orion): Ctx<Orion>, Body(call): Body<StoreCall>) -> ApiResult<Json<Value>> {
    // A run created or made due by a remote runtime: this runtime's agents look at once, as
    // for their own process's runs.
    let wakes = matches!(
        &call,
        StoreCall::CreateFlowRun { .. }
            | StoreCall::CreateFlowRuns { .. }
            | StoreCall::SetFlowRunState { .. }
            | StoreCall::UpsertWorkQueue { .. }
    );
    let answer = dispatch(orion.client().store().as_ref(), call).await?;
    if wakes {
        orion.client().signals().runs_due.notify_waiters();
    }
    Ok(Json(answer))
}

/// The answer for an unknown API path: names it, so a client sees its mistake.
pub(crate) async fn no_route(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(format!("no API route {method} {}", uri.path()))
}
