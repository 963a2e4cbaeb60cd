//! The REST API under `/api`: Prefect-shaped routes over the runtime's client (so state
//! changes go through orchestration), and `POST /api/store`, the remote runtime's protocol.

mod deployments;
mod filters;
mod queues;
mod runs;
mod view;

pub(crate) use deployments::flow_parameters;

use axum::Json;
use axum::extract::{OriginalUri, State as Ctx};
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, Body, Params};
use crate::Orion;
use crate::store::protocol::{PROTOCOL_VERSION, StoreCall, dispatch};

/// The `/api` routes: exactly those [`super::openapi::ROUTES`] lists (the document and the
/// router come from that one list; a listed route without a handler fails every test).
pub(crate) fn routes() -> axum::Router<Orion> {
    let mut router = axum::Router::new();
    for &(method, path, ..) in super::openapi::ROUTES {
        router = router.route(path, handler(method, path));
    }
    router.fallback(no_route)
}

/// The handler of one documented route.
fn handler(method: &str, path: &str) -> MethodRouter<Orion> {
    use deployments as d;
    use queues as q;
    match (method, path) {
        ("get", "/health") => get(health),
        ("get", "/version") => get(version),
        ("get", "/openapi.json") => get(openapi),
        ("post", "/store") => post(store),
        ("get", "/store/wait") => get(store_wait),
        ("post", "/flows/filter") => post(d::flows),
        ("get", "/flows/{id}") => get(d::flow),
        ("get", "/flows/name/{name}") => get(d::flow_by_name),
        ("post", "/deployments/filter") => post(d::filter),
        ("get", "/deployments/{id}") => get(d::read),
        ("delete", "/deployments/{id}") => delete(d::delete),
        ("get", "/deployments/name/{flow}/{name}") => get(d::by_name),
        ("post", "/deployments/{id}/create_flow_run") => post(d::create_flow_run),
        ("post", "/deployments/{id}/pause_deployment") => post(d::pause),
        ("post", "/deployments/{id}/resume_deployment") => post(d::resume),
        ("get", "/deployments/{id}/schedules") => get(d::schedules),
        ("get", "/deployments/{id}/upcoming") => get(d::upcoming),
        ("post", "/flow_runs/filter") => post(runs::filter),
        ("post", "/flow_runs/count") => post(runs::count),
        ("post", "/flow_runs/history") => post(runs::history),
        ("get", "/flow_runs/{id}") => get(runs::read),
        ("get", "/flow_runs/{id}/states") => get(runs::states),
        ("post", "/flow_runs/{id}/set_state") => post(runs::set_state),
        ("post", "/flow_runs/{id}/cancel") => post(runs::cancel),
        ("post", "/flow_runs/{id}/retry") => post(runs::retry),
        ("post", "/task_runs/filter") => post(runs::task_runs),
        ("get", "/task_runs/{id}") => get(runs::task_run),
        ("post", "/logs/filter") => post(runs::logs),
        ("post", "/work_queues/") => post(q::create),
        ("post", "/work_queues/filter") => post(q::list),
        ("get", "/work_queues/name/{name}") => get(q::read),
        ("patch", "/work_queues/name/{name}") => patch(q::update),
        ("delete", "/work_queues/name/{name}") => delete(q::delete),
        ("get", "/work_queues/name/{name}/status") => get(q::status),
        ("get", "/work_queues/name/{name}/preview") => get(q::preview),
        ("post", "/concurrency_limits/") => post(q::set_limit),
        ("post", "/concurrency_limits/filter") => post(q::limits),
        ("get", "/concurrency_limits/tag/{name}") => get(q::limit_status),
        ("delete", "/concurrency_limits/tag/{name}") => delete(q::delete_limit),
        ("post", "/concurrency_limits/tag/{name}/reset") => post(q::reset_limit),
        _ => panic!("the API lists {method} {path} but has no handler for it"),
    }
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

/// How long a remote runtime's long poll waits for runs to become due before answering.
const LONG_POLL: std::time::Duration = std::time::Duration::from_secs(25);

#[derive(serde::Deserialize)]
struct Wait {
    /// At most this many seconds (default and maximum: [`LONG_POLL`]).
    seconds: Option<f64>,
}

/// A remote runtime's long poll: `true` as soon as this runtime's agents would wake for runs
/// made due (created, rescheduled, a slot freed: by this process, by remote runtimes, or by
/// other processes on a PostgreSQL store), `false` after [`LONG_POLL`] (or `?seconds=`) or
/// when the server stops.
async fn store_wait(
    Ctx(orion): Ctx<Orion>,
    axum::Extension(stopping): axum::Extension<super::Stopping>,
    Params(wait): Params<Wait>,
) -> ApiResult<Json<bool>> {
    let limit = match wait.seconds {
        None => LONG_POLL,
        Some(s) if s.is_finite() && (0.0..=LONG_POLL.as_secs_f64()).contains(&s) => {
            std::time::Duration::from_secs_f64(s)
        }
        Some(s) => {
            return Err(ApiError::invalid(format!(
                "seconds={s} is not between 0 and {}",
                LONG_POLL.as_secs()
            )));
        }
    };
    let due = orion.client().signals().runs_due.clone();
    let woken = due.notified();
    Ok(Json(tokio::select! {
        () = woken => true,
        () = tokio::time::sleep(limit) => false,
        () = stopping.wait() => false,
    }))
}

/// The answer for an unknown API path: names it, so a client sees its mistake.
pub(crate) async fn no_route(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(format!("no API route {method} {}", uri.path()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_listed_route_has_a_handler_and_paths_are_listed_once_per_method() {
        let _ = super::routes();
        let mut seen = std::collections::HashSet::new();
        for &(method, path, ..) in super::super::openapi::ROUTES {
            assert!(seen.insert((method, path)), "{method} {path} listed twice");
        }
    }
}
