//! The orion server's REST API: routes, errors, filters, counts, history, state changes,
//! queues and limits; and the helpers the dashboard and remote-runtime tests share.

use std::time::Duration;

use orion::prelude::*;
use orion::server::openapi::ROUTES;
use orion::store::SqliteStore;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::serve;
use crate::temp::temp_db;

#[task]
async fn srv_greet(name: String) -> String {
    get_run_logger().info(format!("Hello {name}!"));
    name
}

#[flow(name = "srv-hello")]
pub(crate) async fn srv_hello(name: String, times: u32) -> u32 {
    for _ in 0..times {
        srv_greet(name.clone()).await;
    }
    times
}

#[flow(name = "srv <b>odd</b> name")]
pub(crate) async fn srv_odd() {}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn post(base: &str, path: &str, body: Value) -> (StatusCode, Value) {
    json_of(
        http()
            .post(format!("{base}{path}"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn get(base: &str, path: &str) -> (StatusCode, Value) {
    json_of(http().get(format!("{base}{path}")).send().await.unwrap()).await
}

/// A runtime over a fresh SQLite file, served; the runtime and `http://addr`.
pub(crate) async fn served() -> (Orion, String) {
    let orion = Orion::with_store(std::sync::Arc::new(
        SqliteStore::open(temp_db("server")).unwrap(),
    ));
    let addr = serve(&orion, None).await;
    (orion, format!("http://{addr}"))
}

pub(crate) async fn hello_deployment(orion: &Orion) -> orion::store::Deployment {
    DeploymentSpec::new("greetings")
        .flow(srv_hello)
        .parameters(json!({"name": "Leo", "times": 2}))
        .schedule(IntervalSchedule::new(Duration::from_secs(3600)).unwrap())
        .apply(orion.client())
        .await
        .unwrap()
}

pub(crate) async fn wait_final(orion: &Orion, id: orion::Uuid) -> orion::store::FlowRun {
    for _ in 0..200 {
        let run = orion.client().read_flow_run(id).await.unwrap().unwrap();
        if run.state.as_ref().is_some_and(|s| s.is_final()) {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_is_served_and_unknown_ones_are_named() {
    let (_orion, base) = served().await;
    let (status, doc) = get(&base, "/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, ROUTES.len());
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", &orion::Uuid::from_u128(1).to_string())
                .replace("{name}", "nope")
                .replace("{flow}", "nope")
                .replace("/store/wait", "/store/wait?seconds=0");
            let request = match method.as_str() {
                "get" => http().get(format!("{base}{concrete}")),
                "post" => http().post(format!("{base}{concrete}")).json(&json!({})),
                "patch" => http().patch(format!("{base}{concrete}")).json(&json!({})),
                "delete" => http().delete(format!("{base}{concrete}")),
                other => panic!("undocumented method {other}"),
            };
            let (status, body) = json_of(request.send().await.unwrap()).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            let detail = body["detail"].as_str().unwrap_or_default();
            assert!(
                !detail.starts_with("no API route"),
                "{method} {path}: {detail}"
            );
            assert!(
                status != StatusCode::INTERNAL_SERVER_ERROR,
                "{method} {path}: {body}"
            );
        }
    }
    let (status, body) = get(&base, "/api/flow_runz/filter").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"], "no API route GET /api/flow_runz/filter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_naming_what_was_wrong() {
    let (orion, base) = served().await;
    let d = hello_deployment(&orion).await;
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            http().post(format!("{base}/api/flow_runs/filter")).json(&json!({"limit": "ten"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit",
        ),
        (
            http().post(format!("{base}/api/flow_runs/filter")).json(&json!({"flow_run": {}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "flow_run",
        ),
        (
            http().post(format!("{base}/api/flow_runs/filter")).json(&json!({"limit": 5000})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "maximum of 1000",
        ),
        (
            http().post(format!("{base}/api/flow_runs/filter")).json(&json!({"sort": "NAME_ASC"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "NAME_ASC",
        ),
        (
            http()
                .post(format!("{base}/api/flow_runs/filter"))
                .json(&json!({"flow_runs": {"state": {"type": {"any_": ["DONE"]}}}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "DONE",
        ),
        (
            http()
                .post(format!("{base}/api/flow_runs/filter"))
                .header("content-type", "application/json")
                .body("{\"limit\": "),
            StatusCode::UNPROCESSABLE_ENTITY,
            "JSON",
        ),
        (
            http()
                .post(format!("{base}/api/deployments/{}/create_flow_run", d.id))
                .body("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/json",
        ),
        (
            http().get(format!("{base}/api/deployments/{}/upcoming?limit=many", d.id)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit",
        ),
        (
            http().get(format!("{base}/api/store/wait?seconds=99")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "seconds=99",
        ),
        (
            http().get(format!("{base}/api/flow_runs/not-a-uuid")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a UUID",
        ),
        (
            http().get(format!("{base}/api/flow_runs/{}", orion::Uuid::from_u128(5))),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        (
            http().get(format!("{base}/api/deployments/name/srv-hello/nope")),
            StatusCode::NOT_FOUND,
            "nope",
        ),
        (
            http()
                .post(format!("{base}/api/deployments/{}/create_flow_run", d.id))
                .json(&json!({"parameters": {"times": "twice"}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "parameter 'times'",
        ),
        (
            http()
                .post(format!("{base}/api/deployments/{}/create_flow_run", d.id))
                .json(&json!({"parameters": {"colour": "red"}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
        ),
        (
            http()
                .post(format!("{base}/api/flow_runs/history"))
                .json(&json!({"history_start": "2026-01-02T00:00:00Z", "history_end": "2026-01-01T00:00:00Z", "history_interval_seconds": 60})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "history_end",
        ),
        (
            http()
                .post(format!("{base}/api/store"))
                .json(&json!({"op": "drop_everything"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "drop_everything",
        ),
        (
            http()
                .post(format!("{base}/api/logs/filter"))
                .json(&json!({"logs": {"level": {"ge_": "loud"}}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ge_",
        ),
    ];
    for (request, status, needle) in cases {
        let (got, body) = json_of(request.send().await.unwrap()).await;
        let detail = body["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("no detail: {body}"));
        assert_eq!(got, status, "{detail}");
        assert!(detail.contains(needle), "{needle:?} not in {detail:?}");
    }
    // Another site's form can post, but never JSON: a POST without it is refused.
    let form = http()
        .post(format!("{base}/api/deployments/{}/create_flow_run", d.id))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a=b")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let bare = http()
        .post(format!("{base}/api/deployments/{}/pause_deployment", d.id))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        !orion
            .client()
            .read_deployment(d.id)
            .await
            .unwrap()
            .unwrap()
            .paused
    );
    // Without a token, the server answers for this machine's names only (DNS rebinding).
    let rebound = http()
        .get(format!("{base}/api/health"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    // A body above the limit is refused before it is read whole.
    let big = "x".repeat(orion::server::DEFAULT_BODY_LIMIT + 10);
    let (status, _) = post(&base, "/api/flow_runs/filter", json!({"big": big})).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Nothing was created by the refused requests; no CORS headers are sent.
    assert!(
        orion
            .client()
            .read_flow_runs(&Default::default())
            .await
            .unwrap()
            .is_empty()
    );
    let response = http()
        .post(format!("{base}/api/flow_runs/filter"))
        .header("origin", "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_counted_and_bucketed_by_the_store_through_the_api() {
    let (orion, base) = served().await;
    let d = hello_deployment(&orion).await;
    let mut created = Vec::new();
    for i in 0..30 {
        let mut options = orion::deployment::DeploymentRunOptions::new();
        options.scheduled_time = Some(jiff::Timestamp::now() + jiff::SignedDuration::from_mins(i));
        let run = orion
            .client()
            .create_flow_run_from_deployment(&d, Some(options))
            .await
            .unwrap();
        created.push(run);
    }
    // A finished run too, of another flow, not of the deployment.
    orion.scope(srv_odd()).await;
    let (status, page) = post(
        &base,
        "/api/flow_runs/filter",
        json!({"limit": 10, "offset": 5}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    let newest_first: Vec<String> = {
        let all = orion
            .client()
            .read_flow_runs(
                &orion::store::FlowRunFilter::new().sort(orion::store::Sort::CreatedDesc),
            )
            .await
            .unwrap();
        all.into_iter().skip(5).take(10).map(|r| r.name).collect()
    };
    assert_eq!(names, newest_first);
    let of_deployment = json!({"deployments": {"id": {"any_": [d.id]}}, "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}});
    let (_, count) = post(&base, "/api/flow_runs/count", of_deployment.clone()).await;
    assert_eq!(count, json!(30));
    let (_, count) = post(&base, "/api/flow_runs/count", json!({})).await;
    assert_eq!(count, json!(31));
    let (_, soonest) = post(
        &base,
        "/api/flow_runs/filter",
        json!({"deployments": {"id": {"any_": [d.id]}}, "sort": "EXPECTED_START_TIME_ASC", "limit": 1}),
    )
    .await;
    assert_eq!(soonest[0]["id"], json!(created[0].id));
    let start = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(1);
    let (status, history) = post(
        &base,
        "/api/flow_runs/history",
        json!({
            "history_start": start,
            "history_end": start + jiff::SignedDuration::from_mins(60),
            "history_interval_seconds": 600,
            "deployments": {"id": {"any_": [d.id]}},
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let buckets = history.as_array().unwrap();
    assert_eq!(buckets.len(), 6);
    let total: u64 = buckets
        .iter()
        .flat_map(|b| b["states"].as_array().unwrap())
        .map(|s| s["count_runs"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 30);
    assert_eq!(buckets[0]["states"][0]["state_type"], "SCHEDULED");
    // Upcoming runs, the deployment in words, pause and resume.
    let (_, upcoming) = get(
        &base,
        &format!("/api/deployments/{}/upcoming?limit=3", d.id),
    )
    .await;
    assert_eq!(upcoming.as_array().unwrap().len(), 3);
    let (_, view) = get(&base, "/api/deployments/name/srv-hello/greetings").await;
    assert_eq!(view["schedules_in_words"], json!(["every 1 hour"]));
    assert_eq!(
        view["flow_parameters"][1],
        json!({"name": "times", "type": "u32"})
    );
    let (_, paused) = post(
        &base,
        &format!("/api/deployments/{}/pause_deployment", d.id),
        json!({}),
    )
    .await;
    assert_eq!(paused["paused"], true);
    assert!(
        orion
            .client()
            .read_deployment(d.id)
            .await
            .unwrap()
            .unwrap()
            .paused
    );
    let (_, resumed) = post(
        &base,
        &format!("/api/deployments/{}/resume_deployment", d.id),
        json!({}),
    )
    .await;
    assert_eq!(resumed["paused"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_go_through_orchestration_and_queues_change_through_the_api() {
    let (orion, base) = served().await;
    let d = hello_deployment(&orion).await;
    let (status, run) = post(
        &base,
        &format!("/api/deployments/{}/create_flow_run", d.id),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = run["id"].as_str().unwrap().to_owned();
    assert_eq!(run["state"]["type"], "SCHEDULED");
    // A run not finished cannot be retried.
    let (status, body) = post(&base, &format!("/api/flow_runs/{id}/retry"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, cancelled) = post(&base, &format!("/api/flow_runs/{id}/cancel"), json!({})).await;
    assert_eq!(cancelled["type"], "CANCELLED", "{cancelled}");
    // Orchestration decides proposals: a final state stays (REJECT, with the current state).
    let (_, refused) = post(
        &base,
        &format!("/api/flow_runs/{id}/set_state"),
        json!({"state": {"type": "RUNNING"}}),
    )
    .await;
    assert_eq!(refused["status"], "REJECT", "{refused}");
    assert_eq!(refused["state"]["type"], "CANCELLED", "{refused}");
    let (status, forced) = post(
        &base,
        &format!("/api/flow_runs/{id}/set_state"),
        json!({"state": {"type": "RUNNING"}, "force": true}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{forced}");
    // Retry: back to Scheduled, for an agent to take.
    let (status, retried) = post(&base, &format!("/api/flow_runs/{id}/retry"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["name"], "AwaitingRetry", "{retried}");
    let (_, states) = get(&base, &format!("/api/flow_runs/{id}/states")).await;
    let names: Vec<&str> = states
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Scheduled", "Cancelled", "AwaitingRetry"]);
    // A run's state also at the top level, where Prefect's API puts it, in reads and lists.
    let (_, read) = get(&base, &format!("/api/flow_runs/{id}")).await;
    assert_eq!(read["state_type"], "SCHEDULED", "{read}");
    assert_eq!(read["state_name"], "AwaitingRetry", "{read}");
    assert_eq!(read["state_id"], read["state"]["id"], "{read}");
    assert_eq!(read["id"], id.as_str());
    let (_, listed) = post(&base, "/api/flow_runs/filter", json!({})).await;
    assert_eq!(listed[0]["state_name"], "AwaitingRetry", "{listed}");
    assert_eq!(run["state_name"], "Scheduled", "{run}");
    orion.scope(srv_hello("Ann".into(), 1)).await;
    let (_, tasks) = post(&base, "/api/task_runs/filter", json!({})).await;
    assert_eq!(tasks[0]["state_type"], "COMPLETED", "{tasks}");
    let task = tasks[0]["id"].as_str().unwrap();
    let (_, task) = get(&base, &format!("/api/task_runs/{task}")).await;
    assert_eq!(task["state_name"], "Completed", "{task}");
    // Work queues: create, patch, status, preview, delete.
    let (status, _) = post(
        &base,
        "/api/work_queues/",
        json!({"name": "gpu", "priority": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = post(&base, "/api/work_queues/", json!({"name": "gpu"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let patched = http()
        .patch(format!("{base}/api/work_queues/name/gpu"))
        .json(&json!({"is_paused": true, "concurrency_limit": 3}))
        .send()
        .await
        .unwrap();
    let (_, queue) = json_of(patched).await;
    assert_eq!(
        (queue["paused"].clone(), queue["concurrency_limit"].clone()),
        (json!(true), json!(3))
    );
    let (_, status) = get(&base, "/api/work_queues/name/default/status").await;
    assert_eq!(status["scheduled_runs"], 1);
    let (_, preview) = get(&base, "/api/work_queues/name/default/preview").await;
    assert_eq!(preview[0]["id"], json!(id));
    let gone = http()
        .delete(format!("{base}/api/work_queues/name/gpu"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    // Concurrency limits.
    let (_, limit) = post(
        &base,
        "/api/concurrency_limits/",
        json!({"tag": "db", "concurrency_limit": 2}),
    )
    .await;
    assert_eq!(limit["limit"], 2);
    let (_, status) = get(&base, "/api/concurrency_limits/tag/tag:db").await;
    assert_eq!(status["holders"], json!([]));
}
