//! The API's OpenAPI 3.1 document, served at `/api/openapi.json`. Built from [`ROUTES`], the
//! one list of routes, which a test checks against the router.

use serde_json::{Map, Value, json};

/// Every API route: method, path (under `/api`), tag, summary, and whether it takes a JSON
/// body.
pub const ROUTES: &[(&str, &str, &str, &str, bool)] = &[
    (
        "get",
        "/health",
        "meta",
        "Whether the server is up (`true`)",
        false,
    ),
    (
        "get",
        "/version",
        "meta",
        "The server's version and store protocol",
        false,
    ),
    ("get", "/openapi.json", "meta", "This document", false),
    (
        "post",
        "/store",
        "meta",
        "One store call of a remote runtime (orion's protocol)",
        true,
    ),
    (
        "get",
        "/store/wait",
        "meta",
        "A remote runtime's long poll: `true` when runs may have become due (at most 25 s)",
        false,
    ),
    ("post", "/flows/filter", "flows", "All flows", false),
    ("get", "/flows/{id}", "flows", "A flow", false),
    (
        "get",
        "/flows/name/{name}",
        "flows",
        "A flow by name",
        false,
    ),
    (
        "post",
        "/deployments/filter",
        "deployments",
        "Deployments, with schedules in words",
        true,
    ),
    (
        "get",
        "/deployments/{id}",
        "deployments",
        "A deployment",
        false,
    ),
    (
        "delete",
        "/deployments/{id}",
        "deployments",
        "Delete a deployment",
        false,
    ),
    (
        "get",
        "/deployments/name/{flow}/{name}",
        "deployments",
        "A deployment by `flow/deployment` name",
        false,
    ),
    (
        "post",
        "/deployments/{id}/create_flow_run",
        "deployments",
        "Create a run of the deployment (parameters merged over its own, validated)",
        true,
    ),
    (
        "post",
        "/deployments/{id}/pause_deployment",
        "deployments",
        "Pause the deployment's schedules",
        false,
    ),
    (
        "post",
        "/deployments/{id}/resume_deployment",
        "deployments",
        "Resume the deployment's schedules",
        false,
    ),
    (
        "get",
        "/deployments/{id}/schedules",
        "deployments",
        "The deployment's schedules",
        false,
    ),
    (
        "get",
        "/deployments/{id}/upcoming",
        "deployments",
        "Its Scheduled runs, soonest first (`?limit=`)",
        false,
    ),
    (
        "post",
        "/flow_runs/filter",
        "flow runs",
        "Flow runs: filter, sort, page (newest first by default, limit 200)",
        true,
    ),
    (
        "post",
        "/flow_runs/count",
        "flow runs",
        "How many flow runs match",
        true,
    ),
    (
        "post",
        "/flow_runs/history",
        "flow runs",
        "Runs per time bucket and state type",
        true,
    ),
    ("get", "/flow_runs/{id}", "flow runs", "A flow run", false),
    (
        "get",
        "/flow_runs/{id}/states",
        "flow runs",
        "A flow run's state history, oldest first",
        false,
    ),
    (
        "post",
        "/flow_runs/{id}/set_state",
        "flow runs",
        "Propose a state through orchestration",
        true,
    ),
    (
        "post",
        "/flow_runs/{id}/cancel",
        "flow runs",
        "Cancel a flow run",
        false,
    ),
    (
        "post",
        "/flow_runs/{id}/retry",
        "flow runs",
        "Run a finished run of a deployment again (AwaitingRetry, for an agent)",
        false,
    ),
    (
        "post",
        "/task_runs/filter",
        "task runs",
        "Task runs (of a flow run)",
        true,
    ),
    ("get", "/task_runs/{id}", "task runs", "A task run", false),
    (
        "post",
        "/logs/filter",
        "logs",
        "Run log lines, oldest first",
        true,
    ),
    (
        "post",
        "/work_queues/",
        "work queues",
        "Create a work queue",
        true,
    ),
    (
        "post",
        "/work_queues/filter",
        "work queues",
        "All work queues",
        false,
    ),
    (
        "get",
        "/work_queues/name/{name}",
        "work queues",
        "A work queue",
        false,
    ),
    (
        "patch",
        "/work_queues/name/{name}",
        "work queues",
        "Change a work queue (pause, limit, priority, …)",
        true,
    ),
    (
        "delete",
        "/work_queues/name/{name}",
        "work queues",
        "Delete a work queue",
        false,
    ),
    (
        "get",
        "/work_queues/name/{name}/status",
        "work queues",
        "Late, active and scheduled runs, last poll",
        false,
    ),
    (
        "get",
        "/work_queues/name/{name}/preview",
        "work queues",
        "The runs an agent would take next (`?limit=`)",
        false,
    ),
    (
        "post",
        "/concurrency_limits/",
        "concurrency limits",
        "Create or resize a tag limit",
        true,
    ),
    (
        "post",
        "/concurrency_limits/filter",
        "concurrency limits",
        "All concurrency limits",
        false,
    ),
    (
        "get",
        "/concurrency_limits/tag/{name}",
        "concurrency limits",
        "A limit with its holders and waiters",
        false,
    ),
    (
        "delete",
        "/concurrency_limits/tag/{name}",
        "concurrency limits",
        "Delete a limit",
        false,
    ),
    (
        "post",
        "/concurrency_limits/tag/{name}/reset",
        "concurrency limits",
        "Free every slot of a limit",
        false,
    ),
];

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for &(method, path, tag, summary, body) in ROUTES {
        let mut operation = json!({
            "tags": [tag],
            "summary": summary,
            "responses": {
                "200": {"description": "Success (201 for creations, 204 for deletions)", "content": {"application/json": {}}},
                "4XX": {"description": "Bad input or missing record", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            operation["parameters"] = Value::Array(params);
        }
        if body {
            operation["requestBody"] = json!({"required": false, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let entry = paths
            .entry(format!("/api{path}"))
            .or_insert_with(|| json!({}));
        entry[method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "orion",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The orion server's REST API: Prefect-shaped routes over an orion runtime. Send `Authorization: Bearer <ORION_API_TOKEN>` when the server has a token."
        },
        "components": {
            "schemas": {"Error": {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        },
        "security": [{"bearer": []}, {}],
        "paths": paths,
    })
}
