//! Work queues and concurrency limits.

use axum::Json;
use axum::extract::{Path, State as Ctx};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::filters::limit;
use super::view::{Shown, all_shown};
use crate::Orion;
use crate::client::{ConcurrencyLimitStatus, WorkQueueStatus};
use crate::server::error::{ApiError, ApiResult, Body, Params};
use crate::store::{ConcurrencyLimit, FlowRun, WorkQueue};

pub(crate) async fn list(Ctx(orion): Ctx<Orion>) -> ApiResult<Json<Vec<WorkQueue>>> {
    Ok(Json(orion.client().read_work_queues().await?))
}

pub(crate) async fn read(
    Ctx(orion): Ctx<Orion>,
    Path(name): Path<String>,
) -> ApiResult<Json<WorkQueue>> {
    Ok(Json(orion.client().read_work_queue(&name).await?))
}

/// A queue to create (`POST /api/work_queues/`) or the fields to change (`PATCH`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueBody {
    name: Option<String>,
    description: Option<String>,
    is_paused: Option<bool>,
    concurrency_limit: Option<Option<u32>>,
    priority: Option<i32>,
    tags: Option<Vec<String>>,
}

impl QueueBody {
    fn apply(self, queue: &mut WorkQueue) {
        if let Some(d) = self.description {
            queue.description = Some(d);
        }
        if let Some(p) = self.is_paused {
            queue.paused = p;
        }
        if let Some(l) = self.concurrency_limit {
            queue.concurrency_limit = l;
        }
        if let Some(p) = self.priority {
            queue.priority = p;
        }
        if let Some(t) = self.tags {
            queue.tags = t;
        }
    }
}

pub(crate) async fn create(
    Ctx(orion): Ctx<Orion>,
    Body(mut body): Body<QueueBody>,
) -> ApiResult<(StatusCode, Json<WorkQueue>)> {
    let name = body
        .name
        .take()
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("name is required"))?;
    if orion
        .client()
        .store()
        .read_work_queue(&name)
        .await?
        .is_some()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("work queue {name:?} already exists"),
        ));
    }
    let mut queue = WorkQueue::new(name, orion.client().now());
    body.apply(&mut queue);
    Ok((
        StatusCode::CREATED,
        Json(orion.client().upsert_work_queue(queue).await?),
    ))
}

pub(crate) async fn update(
    Ctx(orion): Ctx<Orion>,
    Path(name): Path<String>,
    Body(body): Body<QueueBody>,
) -> ApiResult<Json<WorkQueue>> {
    if body.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::invalid("name cannot be changed"));
    }
    let mut queue = orion.client().read_work_queue(&name).await?;
    body.apply(&mut queue);
    Ok(Json(orion.client().upsert_work_queue(queue).await?))
}

pub(crate) async fn delete(
    Ctx(orion): Ctx<Orion>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if orion.client().delete_work_queue(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "work queue {name:?} not found"
        )))
    }
}

pub(crate) async fn status(
    Ctx(orion): Ctx<Orion>,
    Path(name): Path<String>,
) -> ApiResult<Json<WorkQueueStatus>> {
    Ok(Json(orion.client().work_queue_status(&name).await?))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Preview {
    limit: Option<usize>,
}

pub(crate) async fn preview(
    Ctx(orion): Ctx<Orion>,
    Path(name): Path<String>,
    Params(q): Params<Preview>,
) -> ApiResult<Json<Vec<Shown<FlowRun>>>> {
    let n = limit(q.limit.or(Some(10)))?;
    Ok(Json(all_shown(
        orion.client().preview_work_queue(&name, n).await?,
    )))
}

pub(crate) async fn limits(Ctx(orion): Ctx<Orion>) -> ApiResult<Json<Vec<ConcurrencyLimit>>> {
    Ok(Json(orion.client().read_concurrency_limits().await?))
}

pub(crate) async fn limit_status(
    Ctx(orion): Ctx<Orion>,
    Path(name): Path<String>,
) -> ApiResult<Json<ConcurrencyLimitStatus>> {
    Ok(Json(orion.client().read_concurrency_limit(&name).await?))
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitBody {
    tag: String,
    concurrency_limit: u32,
}

/// Prefect's tag limit: `{"tag": "db", "concurrency_limit": 5}`.
pub(crate) async fn set_limit(
    Ctx(orion): Ctx<Orion>,
    Body(body): Body<LimitBody>,
) -> ApiResult<Json<ConcurrencyLimit>> {
    if body.tag.trim().is_empty() {
        return Err(ApiError::invalid("tag must not be empty"));
    }
    Ok(Json(
        orion
            .client()
            .set_concurrency_limit(&body.tag, body.concurrency_limit)
            .await?,
    ))
}

pub(crate) async fn reset_limit(
    Ctx(orion): Ctx<Orion>,
    Path(name): Path<String>,
) -> ApiResult<Json<usize>> {
    Ok(Json(orion.client().reset_concurrency_limit(&name).await?))
}

pub(crate) async fn delete_limit(
    Ctx(orion): Ctx<Orion>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if orion.client().delete_concurrency_limit(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "concurrency limit {name:?} not found"
        )))
    }
}
