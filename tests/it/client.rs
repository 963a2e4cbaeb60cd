use std::sync::Arc;

use orion::prelude::*;
use orion::store::{
    Flow, FlowRun, FlowRunFilter, LogFilter, LogLevel, MemoryStore, Sort, TaskRunFilter,
};
use orion::testing::TestHarness;
use orion::{OrionClient, RetryPolicy, RunKind, RunRef, Transition};

#[task]
async fn step(fail: bool) -> Result<(), String> {
    if fail {
        Err("step failed".into())
    } else {
        Ok(())
    }
}

#[flow(name = "client-a")]
async fn flow_a(fail: bool) {
    let _ = step(fail).return_state().await;
}

#[flow(name = "client-b")]
async fn flow_b() {}

#[tokio::test]
async fn runs_are_filtered_by_flow_state_and_time() {
    let harness = TestHarness::new();
    let before = jiff::Timestamp::now();
    harness.run(flow_a(false)).await.unwrap();
    harness.run(flow_a(true)).await.unwrap();
    harness.run(flow_b()).await.unwrap();
    let client = harness.client();

    let of_a = client
        .read_flow_runs(&FlowRunFilter::new().flow_name("client-a"))
        .await
        .unwrap();
    assert_eq!(of_a.len(), 2);
    let failed = client
        .read_flow_runs(&FlowRunFilter::new().state_types([StateType::Failed]))
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].parameters["fail"], true);
    let flow = client.read_flow_by_name("client-b").await.unwrap().unwrap();
    let of_b = client
        .read_flow_runs(&FlowRunFilter::new().flow_id(flow.id))
        .await
        .unwrap();
    assert_eq!(of_b.len(), 1);
    let newest = client
        .read_flow_runs(&FlowRunFilter::new().sort(Sort::CreatedDesc).limit(1))
        .await
        .unwrap();
    assert_eq!(newest[0].flow_name, "client-b");
    let later = client
        .read_flow_runs(&FlowRunFilter::new().created_between(Some(jiff::Timestamp::now()), None))
        .await
        .unwrap();
    assert!(later.is_empty());
    let since = client
        .read_flow_runs(&FlowRunFilter::new().created_between(Some(before), None))
        .await
        .unwrap();
    assert_eq!(since.len(), 3);

    let tasks = client
        .read_task_runs(&TaskRunFilter::new().state_types([StateType::Failed]))
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].flow_run_id, Some(failed[0].id));
    let errors = client
        .read_logs(
            &LogFilter::new()
                .flow_run_id(failed[0].id)
                .min_level(LogLevel::Error),
        )
        .await
        .unwrap();
    let messages: Vec<&str> = errors.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "Task run failed with error: step failed",
            "Finished in state Failed('step failed')",
            "Finished in state Failed('1/1 states failed.')"
        ]
    );
    assert_eq!(client.read_flows().await.unwrap().len(), 2);
}

#[tokio::test]
async fn concurrent_claims_of_one_run_succeed_exactly_once() {
    let store = Arc::new(MemoryStore::new());
    let client = OrionClient::new(store);
    let flow = client.create_flow("claimed").await.unwrap();
    let mut run = FlowRun::new(&flow, "contested");
    let scheduled = State::scheduled(jiff::Timestamp::now());
    run.state = Some(scheduled.clone());
    let run = client.create_flow_run(run).await.unwrap();

    let policy = RetryPolicy::default();
    let mut handles = Vec::new();
    for _ in 0..16 {
        let client = client.clone();
        let scheduled = scheduled.clone();
        let policy = policy.clone();
        handles.push(tokio::spawn(async move {
            let run_ref = RunRef {
                kind: RunKind::Flow,
                id: run.id,
                current: Some(&scheduled),
                run_count: 0,
                retry: &policy,
                fenced: false,
            };
            client.propose_state(run_ref, State::pending()).await
        }));
    }
    let mut claimed = 0;
    let mut refused = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(Transition::Set(state)) if state.is_pending() => claimed += 1,
            Err(orion::Error::Aborted { reason }) => {
                assert!(reason.contains("already Pending"), "{reason}");
                refused += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((claimed, refused), (1, 15));
    let history = client.read_flow_run_states(run.id).await.unwrap();
    assert_eq!(history.len(), 2);
}

#[tokio::test]
async fn a_final_state_is_kept_against_later_proposals() {
    let client = OrionClient::new(Arc::new(MemoryStore::new()));
    let flow = client.create_flow("final").await.unwrap();
    assert_eq!(client.create_flow("final").await.unwrap().id, flow.id);
    let mut run = FlowRun::new(&flow, "done");
    let done = State::completed();
    run.state = Some(done.clone());
    let run = client.create_flow_run(run).await.unwrap();
    let policy = RetryPolicy::default();
    let run_ref = RunRef {
        kind: RunKind::Flow,
        id: run.id,
        current: None,
        run_count: 1,
        retry: &policy,
        fenced: false,
    };
    // A stale guess (None) is corrected by the store; the rules then keep Completed.
    let outcome = client
        .propose_state(run_ref, State::running())
        .await
        .unwrap();
    assert_eq!(outcome, Transition::Set(done));
    assert_eq!(client.read_flow_run_states(run.id).await.unwrap().len(), 1);
    let _ = Flow::new("unused");
}

#[tokio::test]
async fn reads_of_missing_runs_are_none_and_writes_are_errors() {
    let client = OrionClient::new(Arc::new(MemoryStore::new()));
    let ghost = uuid_like();
    assert!(client.read_flow_run(ghost).await.unwrap().is_none());
    assert!(client.read_task_run(ghost).await.unwrap().is_none());
    let policy = RetryPolicy::default();
    let run_ref = RunRef {
        kind: RunKind::Task,
        id: ghost,
        current: None,
        run_count: 0,
        retry: &policy,
        fenced: false,
    };
    let err = client
        .propose_state(run_ref, State::running())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

fn uuid_like() -> uuid::Uuid {
    uuid::Uuid::from_u128(0x1234)
}
