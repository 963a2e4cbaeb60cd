//! Work queues and concurrency limits.

use std::fmt::Write as _;

use axum::extract::State as Ctx;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{error_page, esc, layout, time};
use crate::Orion;

pub(crate) async fn queues(Ctx(orion): Ctx<Orion>) -> Response {
    let client = orion.client();
    let queues = match client.read_work_queues().await {
        Ok(q) => q,
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let mut rows = String::new();
    for q in &queues {
        let status = match client.work_queue_status(&q.name).await {
            Ok(s) => s,
            Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        };
        let url = format!("/api/work_queues/name/{}", super::url_value(&q.name));
        let toggle = format!(
            "<button data-patch=\"{url}\" data-body='{{\"is_paused\":{}}}' data-then=reload>{}</button>",
            !q.paused,
            if q.paused { "Resume" } else { "Pause" }
        );
        let limit = q.concurrency_limit.map_or(String::new(), |l| l.to_string());
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td>\
             <td><form class=inline data-patch=\"{url}\" data-field=concurrency_limit>\
             <input type=number min=0 name=concurrency_limit value=\"{limit}\" placeholder=none aria-label=\"concurrency limit\">\
             <button>Set</button></form></td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&q.name),
            if q.paused {
                "<span class=\"badge paused\">Paused</span>"
            } else {
                "ready"
            },
            q.priority,
            status.late_runs,
            status.active_runs,
            status.scheduled_runs,
            esc(q.last_polled_by.as_deref().unwrap_or("—")),
            time(q.last_polled),
        );
        let _ = write!(rows, "<tr class=sub><td colspan=9>{toggle}</td></tr>");
    }
    let body = if queues.is_empty() {
        "<h1>Work queues</h1><p class=empty>No work queues yet: agents create <code>default</code> when they start.</p>".to_owned()
    } else {
        format!(
            "<h1>Work queues</h1><div class=scroll><table><thead><tr><th>Queue</th><th>Status</th>\
             <th>Priority</th><th>Limit</th><th>Late</th><th>Active</th><th>Scheduled</th>\
             <th>Last polled by</th><th>Last polled</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    };
    layout("Work queues", "/work-queues", &body).into_response()
}

pub(crate) async fn limits(Ctx(orion): Ctx<Orion>) -> Response {
    let client = orion.client();
    let limits = match client.read_concurrency_limits().await {
        Ok(l) => l,
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let mut rows = String::new();
    for l in &limits {
        let status = match client.read_concurrency_limit(&l.name).await {
            Ok(s) => s,
            Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        };
        let holders: Vec<String> = status.holders.iter().map(|s| esc(&s.holder_name)).collect();
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td><button data-post=\"/api/concurrency_limits/tag/{}/reset\" data-confirm=\"Free every slot?\" data-then=reload>Reset</button></td></tr>",
            esc(&l.name),
            l.limit,
            status.holders.len(),
            status.waiters.len(),
            if holders.is_empty() {
                "—".to_owned()
            } else {
                holders.join(", ")
            },
            super::url_value(&l.name),
        );
    }
    let body = if limits.is_empty() {
        "<h1>Concurrency limits</h1><p class=empty>No concurrency limits.</p>".to_owned()
    } else {
        format!(
            "<h1>Concurrency limits</h1><div class=scroll><table><thead><tr><th>Limit</th><th>Size</th>\
             <th>Held</th><th>Waiting</th><th>Holders</th><th></th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    };
    layout("Concurrency limits", "/concurrency-limits", &body).into_response()
}
