use std::time::Duration;

use orion::deployment::{DeploymentRunOptions, DeploymentSpec};
use orion::prelude::*;
use orion::schedule::{CronSchedule, IntervalSchedule};
use orion::store::{DeploymentFilter, DeploymentSchedule, FlowRunFilter};
use orion::testing::TestHarness;
use serde_json::json;

#[flow(name = "Deployed Sum")]
async fn deployed_sum(nums: Vec<i64>, scale: Option<i64>) -> i64 {
    nums.iter().sum::<i64>() * scale.unwrap_or(1)
}

fn spec() -> DeploymentSpec {
    DeploymentSpec::new("nightly")
        .flow(deployed_sum)
        .tags(["tutorial", "test"])
        .parameters(json!({"nums": [1, 2, 3]}))
        .schedule(IntervalSchedule::new(Duration::from_secs(900)).unwrap())
}

#[tokio::test]
async fn a_spec_applies_reads_back_and_executes() {
    let harness = TestHarness::new();
    let client = harness.client();
    let d = spec()
        .description("sums")
        .version("1.0")
        .apply(client)
        .await
        .unwrap();
    assert_eq!(d.full_name(), "Deployed Sum/nightly");
    assert_eq!(d.work_queue_name, "default");
    assert_eq!(d.schedules.len(), 1);
    let by_name = client
        .read_deployment_by_name("Deployed Sum/nightly")
        .await
        .unwrap();
    assert_eq!(by_name, d);
    assert_eq!(client.read_deployment(d.id).await.unwrap(), Some(d.clone()));

    let state = harness
        .orion()
        .execute_deployment("Deployed Sum/nightly")
        .await
        .unwrap();
    assert_eq!(state.data(), Some(&json!(6)));
    let runs = client
        .read_flow_runs(&FlowRunFilter::new().deployment_id(d.id))
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.tags, ["tutorial", "test"]);
    assert_eq!(run.work_queue_name.as_deref(), Some("default"));
    assert!(!run.auto_scheduled);
    let names: Vec<String> = client
        .read_flow_run_states(run.id)
        .await
        .unwrap()
        .iter()
        .map(|s| s.name().to_owned())
        .collect();
    assert_eq!(names, ["Scheduled", "Pending", "Running", "Completed"]);
}

/// A run of `d`'s first schedule at `at`, as a scheduler would create it.
async fn scheduled_run(
    client: &orion::OrionClient,
    d: &orion::store::Deployment,
    at: jiff::Timestamp,
) -> orion::store::FlowRun {
    let options = DeploymentRunOptions::new()
        .schedule_index(0)
        .scheduled_time(at);
    client
        .create_flow_run_from_deployment(d, Some(options))
        .await
        .unwrap()
}

#[tokio::test]
async fn applying_again_updates_and_drops_only_future_auto_scheduled_runs() {
    let harness = TestHarness::new();
    let client = harness.client();
    let d = spec().apply(client).await.unwrap();
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let auto = scheduled_run(client, &d, later).await;
    assert!(auto.auto_scheduled);
    let manual = client
        .create_flow_run_from_deployment(&d, None)
        .await
        .unwrap();
    let again = spec().tags(["changed"]).apply(client).await.unwrap();
    assert_eq!(again.id, d.id, "upsert keeps the id");
    assert_eq!(again.created, d.created);
    assert_eq!(again.tags, ["changed"]);
    assert!(
        client.read_flow_run(auto.id).await.unwrap().is_none(),
        "future auto-scheduled run deleted"
    );
    assert!(
        client.read_flow_run(manual.id).await.unwrap().is_some(),
        "manual run kept"
    );
    assert_eq!(
        client
            .read_deployments(&DeploymentFilter::new())
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn run_parameters_merge_deployment_schedule_and_call_overrides() {
    let harness = TestHarness::new();
    let client = harness.client();
    let d = DeploymentSpec::new("merged")
        .flow(deployed_sum)
        .parameters(json!({"nums": [1], "scale": 2}))
        .schedules([
            DeploymentSchedule::new(CronSchedule::new("0 * * * *").unwrap()),
            DeploymentSchedule::new(CronSchedule::new("30 * * * *").unwrap())
                .active(false)
                .parameters(json!({"scale": 10}).as_object().unwrap().clone()),
        ])
        .apply(client)
        .await
        .unwrap();
    assert!(!d.schedules[1].active);
    let run = client
        .create_flow_run_from_deployment(
            &d,
            Some(
                DeploymentRunOptions::new()
                    .schedule_index(1)
                    .parameters(json!({"nums": [5]}))
                    .tags(["extra"]),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        run.parameters,
        *json!({"nums": [5], "scale": 10}).as_object().unwrap()
    );
    assert_eq!(run.tags, ["extra"]);
    let bad = client
        .create_flow_run_from_deployment(
            &d,
            Some(DeploymentRunOptions::new().parameters(json!({"nums": "x"}))),
        )
        .await;
    assert!(bad.unwrap_err().to_string().contains("parameter 'nums'"));
}

#[tokio::test]
async fn idempotency_keys_return_the_first_run() {
    let harness = TestHarness::new();
    let d = spec().apply(harness.client()).await.unwrap();
    let opts = || Some(DeploymentRunOptions::new().idempotency_key("scheduled 2026-01-01"));
    let first = harness
        .client()
        .create_flow_run_from_deployment(&d, opts())
        .await
        .unwrap();
    let second = harness
        .client()
        .create_flow_run_from_deployment(&d, opts())
        .await
        .unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(
        harness
            .client()
            .read_flow_runs(&FlowRunFilter::new())
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn pause_resume_and_delete() {
    let harness = TestHarness::new();
    let client = harness.client();
    let d = spec().apply(client).await.unwrap();
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2);
    let auto = scheduled_run(client, &d, later).await;
    assert!(client.pause_deployment(d.id).await.unwrap().paused);
    assert!(client.read_flow_run(auto.id).await.unwrap().is_none());
    assert!(!client.resume_deployment(d.id).await.unwrap().paused);
    let scheduled = client
        .create_flow_run_from_deployment(&d, None)
        .await
        .unwrap();
    assert!(client.delete_deployment(d.id).await.unwrap());
    assert!(
        client.read_flow_run(scheduled.id).await.unwrap().is_none(),
        "its scheduled runs go with it"
    );
    assert!(!client.delete_deployment(d.id).await.unwrap());
    let err = client
        .read_deployment_by_name("Deployed Sum/nightly")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "deployment \"Deployed Sum/nightly\" not found"
    );
}

#[tokio::test]
async fn filters_by_flow_tags_and_name() {
    let harness = TestHarness::new();
    let client = harness.client();
    spec().apply(client).await.unwrap();
    DeploymentSpec::new("other")
        .flow_name("Somewhere Else")
        .tags(["prod"])
        .apply(client)
        .await
        .unwrap();
    let by_flow = client
        .read_deployments(&DeploymentFilter::new().flow_name("Deployed Sum"))
        .await
        .unwrap();
    assert_eq!(by_flow.len(), 1);
    let by_tag = client
        .read_deployments(&DeploymentFilter::new().tags(["prod"]))
        .await
        .unwrap();
    assert_eq!(by_tag[0].name, "other");
    let by_name = client
        .read_deployments(&DeploymentFilter::new().name("nightly"))
        .await
        .unwrap();
    assert_eq!(by_name[0].flow_name, "Deployed Sum");
}

#[tokio::test]
async fn invalid_specs_are_refused_naming_deployment_and_field() {
    let harness = TestHarness::new();
    let client = harness.client();
    let cases = [
        (
            DeploymentSpec::new("").flow(deployed_sum),
            "deployment \"\": name: must not be empty",
        ),
        (
            DeploymentSpec::new("a/b").flow(deployed_sum),
            "name: \"a/b\" contains '/'",
        ),
        (DeploymentSpec::new("no-flow"), "flow_name: no flow"),
        (
            DeploymentSpec::new("wrong")
                .flow(deployed_sum)
                .parameters(json!({"nums": "many"})),
            "parameters: parameter 'nums'",
        ),
        (
            DeploymentSpec::new("unknown")
                .flow(deployed_sum)
                .parameters(json!({"nums": [1], "colour": 1})),
            "unknown parameter 'colour'",
        ),
        (
            DeploymentSpec::new("missing").flow(deployed_sum),
            "missing parameter 'nums'",
        ),
        (
            DeploymentSpec::new("list")
                .flow(deployed_sum)
                .parameters(json!([1, 2])),
            "parameters: must be an object",
        ),
        (
            DeploymentSpec::new("sched")
                .flow(deployed_sum)
                .parameters(json!({"nums": [1]}))
                .schedules([
                    DeploymentSchedule::new(CronSchedule::new("* * * * *").unwrap())
                        .parameters(json!({"scale": "x"}).as_object().unwrap().clone()),
                ]),
            "schedules[0].parameters: parameter 'scale'",
        ),
    ];
    for (spec, needle) in cases {
        let err = spec.apply(client).await.unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
    assert!(
        client
            .read_deployments(&DeploymentFilter::new())
            .await
            .unwrap()
            .is_empty()
    );
}

const FILE: &str = "\
name: first
flow_name: Deployed Sum
parameters:
  nums: [1, 2, 3, 4]
schedule:
  interval: 900
---
name: second
flow_name: Deployed Sum
tags: [a]
work_queue_name: gpu
schedules:
  - cron: '0 9 * * MON-FRI'
    timezone: Europe/Berlin
    parameters: {scale: 3}
  - rrule: 'FREQ=WEEKLY;BYDAY=SA'
    active: false
parameters:
  nums: [2]
";

#[tokio::test]
async fn spec_files_load_apply_and_export() {
    let specs = DeploymentSpec::from_yaml(FILE).unwrap();
    assert_eq!(specs.len(), 2);
    let list = format!(
        "- {}",
        "name: x\n  flow_name: Deployed Sum\n  parameters: {nums: [1]}\n- name: y\n  flow_name: Deployed Sum\n  parameters: {nums: [2]}\n"
    );
    assert_eq!(DeploymentSpec::from_yaml(&list).unwrap().len(), 2);
    let json = r#"{"name": "j", "flow_name": "Deployed Sum", "parameters": {"nums": [7]}}"#;
    assert_eq!(DeploymentSpec::from_yaml(json).unwrap()[0].name(), "j");

    let harness = TestHarness::new();
    let applied = DeploymentSpec::apply_all(specs, harness.client())
        .await
        .unwrap();
    assert_eq!(applied[1].work_queue_name, "gpu");
    assert!(!applied[1].schedules[1].active);
    let state = harness
        .orion()
        .execute_deployment("Deployed Sum/first")
        .await
        .unwrap();
    assert_eq!(state.data(), Some(&json!(10)));

    let exported = DeploymentSpec::of(&applied[1]).to_yaml().unwrap();
    let back = DeploymentSpec::from_yaml(&exported).unwrap();
    assert_eq!(back[0], DeploymentSpec::of(&applied[1]), "{exported}");
}

#[tokio::test]
async fn bad_files_are_errors_with_locations_and_nothing_is_stored() {
    let cases = [
        ("name: a\nflow_name: f\ncolour: blue\n", "colour"),
        ("name: a\nflow_name: f\nparameters: [1\n", "line"),
        ("flow_name: f\n", "name: missing"),
        ("name: a\n", "flow_name: missing"),
        (
            "name: a\nflow_location: ./flows.py\nflow_name: f\n",
            "compiled into the program",
        ),
        (
            "name: a\nflow_name: f\nschedule: {cron: '61 * * * *'}\n",
            "schedule: invalid cron expression",
        ),
        (
            "name: a\nflow_name: f\nschedules: [{interval: 60, colour: red}]\n",
            "schedules[0]",
        ),
        ("", "no deployment"),
    ];
    for (text, needle) in cases {
        let err = DeploymentSpec::from_yaml(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{text:?}: {err}");
    }
    // A file whose second deployment is invalid stores neither.
    let harness = TestHarness::new();
    let mixed = "name: good\nflow_name: Deployed Sum\nparameters: {nums: [1]}\n---\nname: bad\nflow_name: Deployed Sum\nparameters: {nums: oops}\n";
    let specs = DeploymentSpec::from_yaml(mixed).unwrap();
    let err = DeploymentSpec::apply_all(specs, harness.client())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("deployment \"bad\": parameters"),
        "{err}"
    );
    assert!(
        harness
            .client()
            .read_deployments(&DeploymentFilter::new())
            .await
            .unwrap()
            .is_empty()
    );
    let dup = "name: same\nflow_name: Deployed Sum\nparameters: {nums: [1]}\n---\nname: same\nflow_name: Deployed Sum\nparameters: {nums: [1]}\n";
    let err = DeploymentSpec::apply_all(DeploymentSpec::from_yaml(dup).unwrap(), harness.client())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("given twice"), "{err}");
    let missing = DeploymentSpec::from_path("/no/such/file.yaml").unwrap_err();
    assert!(
        missing.to_string().contains("/no/such/file.yaml"),
        "{missing}"
    );
}

#[tokio::test]
async fn a_deployment_concurrency_limit_is_read_from_yaml_in_both_of_prefects_forms() {
    use orion::store::{Collision, DeploymentConcurrency};
    let text = "
- name: short
  flow_name: etl
  concurrency_limit: 2
- name: long
  flow_name: etl
  concurrency_limit: {limit: 1, collision_strategy: CANCEL_NEW}
";
    let h = orion::testing::TestHarness::new();
    let specs = DeploymentSpec::from_yaml(text).unwrap();
    let applied = DeploymentSpec::apply_all(specs, h.client()).await.unwrap();
    assert_eq!(
        applied[0].concurrency,
        Some(DeploymentConcurrency::new(2, Collision::Enqueue)),
        "a bare number enqueues, as in Prefect"
    );
    assert_eq!(
        applied[1].concurrency,
        Some(DeploymentConcurrency::new(1, Collision::CancelNew))
    );
    // Written back out and read again, it is the same.
    let exported = DeploymentSpec::of(&applied[1]).to_yaml().unwrap();
    assert!(
        exported.contains("collision_strategy: CANCEL_NEW"),
        "{exported}"
    );
    let back = DeploymentSpec::from_yaml(&exported).unwrap().remove(0);
    assert_eq!(back, DeploymentSpec::of(&applied[1]));

    let zero = "name: z\nflow_name: etl\nconcurrency_limit: 0\n";
    let err = DeploymentSpec::apply_all(DeploymentSpec::from_yaml(zero).unwrap(), h.client())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("concurrency_limit") && err.contains("at least 1"),
        "{err}"
    );
    let bad = "name: b\nflow_name: etl\nconcurrency_limit: {limit: 1, collision_strategy: QUEUE}\n";
    let err = DeploymentSpec::from_yaml(bad).unwrap_err().to_string();
    assert!(err.contains("QUEUE") && err.contains("CANCEL_NEW"), "{err}");
    let negative = "name: n\nflow_name: etl\nconcurrency_limit: -1\n";
    let err = DeploymentSpec::from_yaml(negative).unwrap_err().to_string();
    assert!(err.contains("concurrency_limit"), "{err}");
}
