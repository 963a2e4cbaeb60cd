//! Deployments: schedules in words, upcoming runs, pause/resume, Quick Run and Custom Run.

use std::fmt::Write as _;

use axum::extract::{Path, State as Ctx};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{error_page, esc, layout, time};
use crate::Orion;
use crate::state::StateType;
use crate::store::{Deployment, DeploymentFilter, FlowRunFilter, Sort};

fn actions(d: &Deployment) -> String {
    let toggle = if d.paused {
        format!(
            "<button data-post=/api/deployments/{}/resume_deployment data-then=reload>Resume</button>",
            d.id
        )
    } else {
        format!(
            "<button data-post=/api/deployments/{}/pause_deployment data-then=reload>Pause</button>",
            d.id
        )
    };
    format!(
        "<button class=primary data-post=/api/deployments/{0}/create_flow_run data-body={{}} \
         data-then=run>Quick Run</button> <a class=button href=/deployments/{0}#custom-run>Custom Run</a> {toggle}",
        d.id
    )
}

fn schedules(d: &Deployment) -> String {
    if d.schedules.is_empty() {
        return "none".to_owned();
    }
    let words: Vec<String> = d
        .schedules
        .iter()
        .map(|s| {
            let w = esc(&s.schedule.describe());
            if s.active { w } else { format!("<s>{w}</s>") }
        })
        .collect();
    words.join("; ")
}

pub(crate) async fn list(Ctx(orion): Ctx<Orion>) -> Response {
    let all = match orion
        .client()
        .read_deployments(&DeploymentFilter::new())
        .await
    {
        Ok(all) => all,
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let mut rows = String::new();
    for d in &all {
        let _ = write!(
            rows,
            "<tr><td><a href=/deployments/{}>{}</a></td><td>{}</td><td>{}</td><td>{}</td><td class=actions>{}</td></tr>",
            d.id,
            esc(&d.full_name()),
            schedules(d),
            esc(&d.work_queue_name),
            if d.paused {
                "<span class=\"badge paused\">Paused</span>"
            } else {
                "active"
            },
            actions(d)
        );
    }
    let body = if all.is_empty() {
        "<h1>Deployments</h1><p class=empty>No deployments: apply one with <code>DeploymentSpec</code> or <code>orion deployment apply</code>.</p>".to_owned()
    } else {
        format!(
            "<h1>Deployments</h1><div class=scroll><table><thead><tr><th>Deployment</th><th>Schedules</th>\
             <th>Queue</th><th>Status</th><th></th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    };
    layout("Deployments", "/deployments", &body).into_response()
}

pub(crate) async fn page(Ctx(orion): Ctx<Orion>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<uuid::Uuid>() else {
        return error_page(
            StatusCode::NOT_FOUND,
            &format!("{id:?} is not a deployment id"),
        );
    };
    let client = orion.client();
    let d = match client.read_deployment(id).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return error_page(StatusCode::NOT_FOUND, &format!("deployment {id} not found"));
        }
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let upcoming = FlowRunFilter::new()
        .deployment_id(d.id)
        .state_types([StateType::Scheduled])
        .sort(Sort::ExpectedStartAsc)
        .limit(10);
    let recent = FlowRunFilter::new()
        .deployment_id(d.id)
        .sort(Sort::CreatedDesc)
        .limit(10);
    let (upcoming, recent) = tokio::join!(
        client.read_flow_runs(&upcoming),
        client.read_flow_runs(&recent)
    );
    let (upcoming, recent) = match (upcoming, recent) {
        (Ok(u), Ok(r)) => (u, r),
        (Err(e), _) | (_, Err(e)) => {
            return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
        }
    };
    let mut b = format!(
        "<h1>{}</h1><p class=meta>{}Queue <b>{}</b> · schedules: {} {}</p><p class=actions>{}</p>",
        esc(&d.full_name()),
        d.description
            .as_deref()
            .map_or(String::new(), |t| format!("{} · ", esc(t))),
        esc(&d.work_queue_name),
        schedules(&d),
        if d.paused {
            "<span class=\"badge paused\">Paused</span>"
        } else {
            ""
        },
        actions(&d),
    );
    b.push_str("<section class=grid><div><h2>Upcoming runs</h2>");
    if upcoming.is_empty() {
        b.push_str("<p class=empty>None scheduled.</p>");
    } else {
        b.push_str("<ul class=upcoming>");
        for r in &upcoming {
            let _ = write!(
                b,
                "<li><a href=/runs/{}>{}</a> {}</li>",
                r.id,
                esc(&r.name),
                time(r.expected_start_time)
            );
        }
        b.push_str("</ul>");
    }
    b.push_str("</div><div>");
    b.push_str(&custom_run(&d));
    b.push_str("</div></section>");
    let _ = write!(
        b,
        "<h2>Recent runs <small><a href=\"/runs?deployment={}\">all</a></small></h2>{}",
        d.id,
        super::runs::table(&recent)
    );
    layout(&d.full_name(), "/deployments", &b).into_response()
}

/// The Custom Run form: one field per parameter of the flow (its Rust type shown), prefilled
/// with the deployment's values. Text parameters are typed as text; the rest as JSON.
fn custom_run(d: &Deployment) -> String {
    let known = crate::server::api::flow_parameters(d);
    let params: Vec<(String, Option<&str>, bool)> = if known.is_empty() {
        // Nothing known of the flow: the deployment's own parameters, as JSON.
        d.parameters
            .keys()
            .map(|k| (k.clone(), None, false))
            .collect()
    } else {
        known
            .iter()
            .map(|p| (p.name.clone(), Some(p.rust_type.as_str()), p.is_text()))
            .collect()
    };
    let mut fields = String::new();
    for (name, kind, text) in &params {
        let text = *text;
        let value = d.parameters.get(name).map_or(String::new(), |v| match v {
            serde_json::Value::String(s) if text => s.clone(),
            v => v.to_string(),
        });
        let _ = write!(
            fields,
            "<label>{0} <small class=muted>{1}</small><input name=\"{0}\" data-kind={2} value=\"{3}\">\
             <span class=field-error data-for=\"{0}\"></span></label>",
            esc(name),
            esc(kind.unwrap_or("JSON")),
            if text { "text" } else { "json" },
            esc(&value),
        );
    }
    if params.is_empty() {
        fields.push_str("<p class=muted>This flow takes no parameters.</p>");
    }
    format!(
        "<h2 id=custom-run>Custom Run</h2><form class=custom-run data-deployment={}>{fields}\
         <p class=form-error></p><button class=primary>Run</button></form>",
        d.id
    )
}
