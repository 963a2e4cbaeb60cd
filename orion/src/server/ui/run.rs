//! A flow run's page: its state history, task runs on a timeline, parameters and result, its
//! log (followed live while the run is not final), and cancel / retry.

use std::fmt::Write as _;

use axum::extract::{Path, State as Ctx};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{badge, clock, duration, error_page, esc, layout, state_class, time};
use crate::Orion;
use crate::store::{LogFilter, TaskRun};

/// The most log lines a run's page shows.
const LOG_LINES: usize = 10_000;

pub(crate) async fn page(Ctx(orion): Ctx<Orion>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<uuid::Uuid>() else {
        return error_page(StatusCode::NOT_FOUND, &format!("{id:?} is not a run id"));
    };
    let client = orion.client();
    let run = match client.read_flow_run(id).await {
        Ok(Some(run)) => run,
        Ok(None) => return error_page(StatusCode::NOT_FOUND, &format!("flow run {id} not found")),
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let mut log_filter = LogFilter::new().flow_run_id(id);
    // The page shows a run's first 10,000 lines, as the live view and the API's default do.
    log_filter.limit = Some(LOG_LINES);
    let (states, tasks, logs) = tokio::join!(
        client.read_flow_run_states(id),
        client.read_task_runs_of(id),
        client.read_logs(&log_filter),
    );
    let (states, tasks, logs) = match (states, tasks, logs) {
        (Ok(s), Ok(t), Ok(l)) => (s, t, l),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
            return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
        }
    };
    let state = run.state.as_ref();
    let finished = state.is_none_or(|s| s.is_final());
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>{} <span id=run-state>{}</span></h1>\
         <p class=meta>Flow <b>{}</b> · run <code>{}</code>",
        esc(&run.name),
        badge(state),
        esc(&run.flow_name),
        run.id
    );
    if let Some(d) = run.deployment_id {
        let _ = write!(b, " · <a href=/deployments/{d}>deployment</a>");
    }
    if let Some(q) = &run.work_queue_name {
        let _ = write!(b, " · queue {}", esc(q));
    }
    let _ = write!(
        b,
        " · started {} · duration {}</p><p class=actions>",
        time(run.start_time),
        duration(run.start_time, run.end_time)
    );
    if !finished {
        let _ = write!(
            b,
            "<button data-post=/api/flow_runs/{}/cancel data-confirm=\"Cancel this run?\" \
             data-then=reload>Cancel</button>",
            run.id
        );
    } else if run.deployment_id.is_some() && !state.is_some_and(|s| s.is_completed()) {
        let _ = write!(
            b,
            "<button data-post=/api/flow_runs/{}/retry data-then=reload>Retry</button>",
            run.id
        );
    }
    b.push_str("</p>");
    if let Some(s) = state {
        if let Some(message) = s.message() {
            let class = state_class(s.state_type());
            let _ = write!(b, "<p class=\"message {class}\">{}</p>", esc(message));
        }
    }
    b.push_str("<section class=grid><div><h2>Parameters</h2>");
    let _ = write!(
        b,
        "<pre>{}</pre>",
        esc(&serde_json::to_string_pretty(&run.parameters).unwrap_or_default())
    );
    if let Some(data) = state.and_then(|s| s.data()) {
        let _ = write!(
            b,
            "<h2>Result</h2><pre>{}</pre>",
            esc(&serde_json::to_string_pretty(data).unwrap_or_default())
        );
    }
    b.push_str("</div><div><h2>State history</h2><ol class=states>");
    for s in &states {
        let _ = write!(b, "<li>{} {}", badge(Some(s)), time(Some(s.timestamp())));
        if let Some(m) = s.message() {
            let _ = write!(b, " <span class=muted>{}</span>", esc(m));
        }
        b.push_str("</li>");
    }
    b.push_str("</ol></div></section>");
    let _ = write!(b, "<h2>Task runs <small>{}</small></h2>", tasks.len());
    b.push_str(&timeline(&tasks));
    let _ = write!(
        b,
        "<h2>Logs</h2><div class=logs id=logs data-run={} data-live={}>",
        run.id, !finished
    );
    for l in &logs {
        let _ = write!(
            b,
            "<div class=\"log {}\">{} <b>{}</b> <span class=muted>{}</span> {}</div>",
            l.level.as_str().to_lowercase(),
            clock(l.timestamp),
            l.level,
            esc(&l.name),
            esc(&l.message)
        );
    }
    if logs.is_empty() {
        b.push_str("<p class=empty>No log lines yet.</p>");
    }
    b.push_str("</div>");
    layout(&run.name, "/runs", &b).into_response()
}

/// Task runs as bars on the flow run's time axis, with their states and durations.
fn timeline(tasks: &[TaskRun]) -> String {
    if tasks.is_empty() {
        return "<p class=empty>No task runs.</p>".to_owned();
    }
    let start = tasks
        .iter()
        .filter_map(|t| t.start_time.or(Some(t.created)))
        .min();
    let end = tasks
        .iter()
        .filter_map(|t| t.end_time.or(t.start_time).or(Some(t.created)))
        .max();
    let (Some(start), Some(end)) = (start, end) else {
        return String::new();
    };
    let span = end.duration_since(start).as_secs_f64().max(1e-3);
    let mut rows = String::new();
    for t in tasks {
        let from = t.start_time.unwrap_or(t.created);
        let to = t.end_time.unwrap_or(end);
        let left = 100.0 * from.duration_since(start).as_secs_f64() / span;
        let width = (100.0 * to.duration_since(from).as_secs_f64() / span).max(0.5);
        let class = t.state.as_ref().map_or("", |s| state_class(s.state_type()));
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=track><span class=\"bar {class}\" \
             style=\"left:{left:.2}%;width:{:.2}%\"></span></td></tr>",
            esc(&t.name),
            badge(t.state.as_ref()),
            duration(t.start_time, t.end_time),
            width.min(100.0 - left).max(0.5),
        );
    }
    format!(
        "<div class=scroll><table class=timeline><thead><tr><th>Task run</th><th>State</th>\
         <th>Duration</th><th>Timeline</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
}
