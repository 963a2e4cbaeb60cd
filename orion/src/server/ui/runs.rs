//! The runs page: filters kept in the URL, the run-history chart, one page of runs.

use std::fmt::Write as _;

use axum::extract::{Query, State as Ctx};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use super::{badge, duration, error_page, esc, layout, state_class, time, url_value};
use crate::Orion;
use crate::state::StateType;
use crate::store::{FlowRun, FlowRunFilter, HistoryBucket, HistoryWindow, Sort};

/// Runs on one page.
const PAGE: usize = 50;
/// Buckets in the chart.
const BARS: u32 = 50;

/// The runs page's filters, as the URL's query carries them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunsQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    flow: String,
    #[serde(default)]
    deployment: String,
    #[serde(default)]
    queue: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    page: usize,
}

impl RunsQuery {
    fn filter(&self) -> Result<FlowRunFilter, String> {
        let mut f = FlowRunFilter::new().sort(Sort::CreatedDesc);
        if !self.state.is_empty() {
            let kind: StateType = serde_json::from_value(self.state.clone().into())
                .map_err(|_| format!("unknown state type {:?}", self.state))?;
            f = f.state_types([kind]);
        }
        if !self.flow.is_empty() {
            f = f.flow_name(self.flow.clone());
        }
        if !self.deployment.is_empty() {
            let id = self
                .deployment
                .parse()
                .map_err(|_| format!("deployment {:?} is not an id", self.deployment))?;
            f = f.deployment_id(id);
        }
        if !self.queue.is_empty() {
            f = f.work_queue_name(self.queue.clone());
        }
        if !self.tag.is_empty() {
            f = f.tags([self.tag.clone()]);
        }
        Ok(f)
    }

    /// This query's URL with `page` replaced.
    fn url(&self, page: usize) -> String {
        let mut url = format!("/runs?page={page}");
        for (k, v) in [
            ("state", &self.state),
            ("flow", &self.flow),
            ("deployment", &self.deployment),
            ("queue", &self.queue),
            ("tag", &self.tag),
        ] {
            if !v.is_empty() {
                let _ = write!(url, "&{k}={}", url_value(v));
            }
        }
        url
    }
}

pub(crate) async fn page(Ctx(orion): Ctx<Orion>, Query(q): Query<RunsQuery>) -> Response {
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return error_page(StatusCode::UNPROCESSABLE_ENTITY, &e),
    };
    let client = orion.client();
    let store = client.store();
    let now = client.now();
    let window = HistoryWindow::new(
        now - SignedDuration::from_hours(24),
        now + SignedDuration::from_hours(1),
        BARS,
    );
    let paged = filter.clone().offset(q.page * PAGE).limit(PAGE);
    let (total, runs, history, flows) = tokio::join!(
        store.count_flow_runs(&filter),
        store.read_flow_runs(&paged),
        async {
            match window {
                Some(w) => store.flow_run_history(&filter, w).await,
                None => Ok(Vec::new()),
            }
        },
        store.read_flows(),
    );
    let (total, runs, history, flows) = match (total, runs, history, flows) {
        (Ok(t), Ok(r), Ok(h), Ok(f)) => (t, r, h, f),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => {
            return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
        }
    };
    let mut body = String::new();
    let _ = write!(body, "<h1>Flow runs <small>{total}</small></h1>");
    body.push_str(&filters(&q, &flows));
    body.push_str(&chart(&history, now));
    body.push_str(&table(&runs));
    let last = total.saturating_sub(1) / PAGE;
    body.push_str("<p class=pager>");
    if q.page > 0 {
        let _ = write!(body, "<a href=\"{}\">← Newer</a> ", esc(&q.url(q.page - 1)));
    }
    let _ = write!(body, "page {} of {}", q.page + 1, last + 1);
    if q.page < last {
        let _ = write!(body, " <a href=\"{}\">Older →</a>", esc(&q.url(q.page + 1)));
    }
    body.push_str("</p>");
    // The list refreshes itself while the tab is visible.
    let body = format!("<div data-refresh=5000>{body}</div>");
    layout("Flow runs", "/runs", &body).into_response()
}

fn filters(q: &RunsQuery, flows: &[crate::store::Flow]) -> String {
    let mut states = String::from("<option value=\"\">any state</option>");
    for t in StateType::ALL {
        let code = serde_json::to_value(t)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let selected = if code == q.state { " selected" } else { "" };
        let _ = write!(
            states,
            "<option value={code}{selected}>{}</option>",
            t.name()
        );
    }
    let mut flow_options = String::from("<option value=\"\">any flow</option>");
    for f in flows {
        let selected = if f.name == q.flow { " selected" } else { "" };
        let _ = write!(
            flow_options,
            "<option value=\"{0}\"{selected}>{0}</option>",
            esc(&f.name)
        );
    }
    format!(
        "<form class=filters method=get action=/runs>\
         <select name=state aria-label=State>{states}</select>\
         <select name=flow aria-label=Flow>{flow_options}</select>\
         <input name=queue placeholder=\"work queue\" value=\"{}\">\
         <input name=tag placeholder=tag value=\"{}\">\
         <input type=hidden name=deployment value=\"{}\">\
         <button>Filter</button> <a href=/runs>clear</a></form>",
        esc(&q.queue),
        esc(&q.tag),
        esc(&q.deployment),
    )
}

/// The run-history chart: a stacked bar per bucket, by state type, as SVG.
fn chart(history: &[HistoryBucket], now: Timestamp) -> String {
    let max = history.iter().map(HistoryBucket::total).max().unwrap_or(0);
    if history.is_empty() {
        return String::new();
    }
    let width = 100.0 / history.len() as f64;
    let mut bars = String::new();
    for (i, bucket) in history.iter().enumerate() {
        let mut y = 100.0;
        for s in &bucket.states {
            let h = if max == 0 {
                0.0
            } else {
                90.0 * s.count_runs as f64 / max as f64
            };
            y -= h;
            let _ = write!(
                bars,
                "<rect class={} x={:.3} y={y:.3} width={:.3} height={h:.3}><title data-at=\"{}\">{} UTC {}: {}</title></rect>",
                state_class(s.state_type),
                i as f64 * width + width * 0.1,
                width * 0.8,
                bucket.interval_start,
                bucket.interval_start.strftime("%H:%M"),
                s.state_type.name(),
                s.count_runs
            );
        }
    }
    let now_x = history
        .iter()
        .position(|b| b.interval_start <= now && now < b.interval_end)
        .map_or(String::new(), |i| {
            format!(
                "<line class=now x1={0:.3} x2={0:.3} y1=0 y2=100><title>now</title></line>",
                i as f64 * width
            )
        });
    format!(
        "<figure class=chart><svg viewBox=\"0 0 100 100\" preserveAspectRatio=none role=img \
         aria-label=\"Flow runs per {} minutes, last 24 hours\">{bars}{now_x}</svg>\
         <figcaption>{} · runs per {} min, by state (max {max}) · {}</figcaption></figure>",
        (history[0]
            .interval_end
            .duration_since(history[0].interval_start)
            .as_secs()
            / 60),
        time(Some(history[0].interval_start)),
        (history[0]
            .interval_end
            .duration_since(history[0].interval_start)
            .as_secs()
            / 60),
        time(history.last().map(|b| b.interval_end)),
    )
}

/// The runs as a table.
pub(crate) fn table(runs: &[FlowRun]) -> String {
    if runs.is_empty() {
        return "<p class=empty>No flow runs.</p>".to_owned();
    }
    let mut rows = String::new();
    for r in runs {
        let deployment = r.deployment_id.map_or_else(
            || "—".to_owned(),
            |d| format!("<a href=/deployments/{d}>deployment</a>"),
        );
        let _ = write!(
            rows,
            "<tr><td><a href=/runs/{}>{}</a></td><td>{}</td><td>{}</td><td>{deployment}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            r.id,
            esc(&r.name),
            badge(r.state.as_ref()),
            esc(&r.flow_name),
            time(r.start_time.or(r.expected_start_time)),
            duration(r.start_time, r.end_time),
            esc(r.work_queue_name.as_deref().unwrap_or("—")),
        );
    }
    format!(
        "<div class=scroll><table class=runs><thead><tr><th>Run</th><th>State</th><th>Flow</th>\
         <th>Deployment</th><th>Start</th><th>Duration</th><th>Queue</th></tr></thead>\
         <tbody>{rows}</tbody></table></div>"
    )
}
