use orion::prelude::*;
use orion::store::FlowRunFilter;
use orion::testing::TestHarness;

#[task]
async fn double(x: i32) -> i32 {
    x * 2
}

#[flow]
async fn child(x: i32) -> Result<i32, String> {
    if x < 0 {
        return Err(format!("negative input {x}"));
    }
    Ok(double(x).await)
}

#[flow(name = "parent")]
async fn parent() -> i32 {
    let a = child(1).await.unwrap_or_default();
    let b = child(2).await.unwrap_or_default();
    a + b
}

#[flow(name = "parent-with-failure")]
async fn parent_with_failure() {
    let _ = child(1).await;
    let _ = child(-1).await;
}

#[tokio::test]
async fn a_flow_called_in_a_flow_is_a_subflow_run_linked_to_a_parent_task_run() {
    let harness = TestHarness::new();
    let report = harness.run(parent()).await.unwrap();
    assert_eq!(report.state.data(), Some(&6));
    assert_eq!(report.subflow_runs.len(), 2);
    assert_eq!(
        report.task_runs.len(),
        2,
        "one task run stands for each subflow run"
    );
    for (task, sub) in report.task_runs.iter().zip(&report.subflow_runs) {
        assert_eq!(sub.parent_task_run_id, Some(task.id));
        assert_eq!(sub.flow_name, "child");
        assert!(task.name.starts_with("child-"), "{}", task.name);
        assert_eq!(
            task.state.as_ref().unwrap().state_type(),
            sub.state.as_ref().unwrap().state_type()
        );
    }
    assert!(
        report
            .log_messages()
            .iter()
            .any(|m| m.starts_with("Created subflow run '") && m.ends_with("' for flow 'child'"))
    );

    // The subflows' own task runs belong to them, not to the parent.
    let sub = &report.subflow_runs[0];
    let tasks = harness.client().read_task_runs_of(sub.id).await.unwrap();
    assert_eq!(tasks.len(), 1);
    assert!(tasks[0].name.starts_with("double-"));
    let all = harness
        .client()
        .read_flow_runs(&FlowRunFilter::new())
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
}

#[tokio::test]
async fn a_failed_subflow_fails_its_parent_by_the_orion_rule() {
    let report = TestHarness::new().run(parent_with_failure()).await.unwrap();
    assert_eq!(report.state.to_string(), "Failed('1/2 states failed.')");
    let failed = report
        .subflow_runs
        .iter()
        .find(|r| r.state.as_ref().unwrap().is_failed())
        .unwrap();
    assert_eq!(
        failed.state.as_ref().unwrap().message(),
        Some("negative input -1")
    );
    let mirror = report
        .task_runs
        .iter()
        .find(|t| Some(t.id) == failed.parent_task_run_id)
        .unwrap();
    assert_eq!(
        mirror.state.as_ref().unwrap().to_string(),
        "Failed('negative input -1')"
    );
}
