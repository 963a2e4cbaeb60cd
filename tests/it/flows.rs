use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use orion::prelude::*;
use orion::testing::TestHarness;

#[task]
async fn log_message(name: String) {
    get_run_logger().info(format!("Hello {name}!"));
}

#[flow(name = "leonardo_dicapriflow")]
async fn leonardo_dicapriflow(name: String) {
    log_message(name).await;
}

#[tokio::test]
async fn the_tutorial_flow_records_its_runs_states_and_logs() {
    let harness = TestHarness::new();
    let report = harness
        .run(leonardo_dicapriflow("Leo".into()))
        .await
        .unwrap();

    assert_eq!(
        report.state.to_string(),
        "Completed('All states completed.')"
    );
    let run = &report.flow_run;
    assert_eq!(run.flow_name, "leonardo_dicapriflow");
    assert_eq!(run.parameters["name"], "Leo");
    assert_eq!(run.task_runner.as_deref(), Some("ConcurrentTaskRunner"));
    assert_eq!(run.run_count, 1);
    assert!(run.start_time.is_some() && run.end_time.is_some());
    let history: Vec<String> = harness
        .client()
        .read_flow_run_states(run.id)
        .await
        .unwrap()
        .iter()
        .map(|s| s.name().to_owned())
        .collect();
    assert_eq!(history, ["Pending", "Running", "Completed"]);

    assert_eq!(report.task_runs.len(), 1);
    let task = &report.task_runs[0];
    let (prefix, rest) = task.name.split_at("log_message-".len());
    assert_eq!(prefix, "log_message-");
    let (hash, counter) = rest.split_once('-').unwrap();
    assert!(
        hash.len() == 8 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{}",
        task.name
    );
    assert_eq!(counter, "0");
    assert_eq!(task.state.as_ref().unwrap().to_string(), "Completed(None)");

    let messages = report.log_messages();
    assert_eq!(
        messages,
        [
            format!(
                "Created flow run '{}' for flow 'leonardo_dicapriflow'",
                run.name
            ),
            "Using task runner 'ConcurrentTaskRunner'".to_string(),
            format!("Created task run '{}' for task 'log_message'", task.name),
            "Hello Leo!".to_string(),
            "Finished in state Completed(None)".to_string(),
            "Finished in state Completed('All states completed.')".to_string(),
        ]
    );
    let names: Vec<&str> = report.logs.iter().map(|l| &*l.name).collect();
    assert_eq!(
        names,
        [
            "orion.engine",
            "orion.flow_runs",
            "orion.flow_runs",
            "orion.task_runs",
            "orion.task_runs",
            "orion.flow_runs"
        ]
    );
    assert_eq!(report.logs[3].task_run_id, Some(task.id));
    assert!(report.logs.iter().all(|l| l.flow_run_id == Some(run.id)));
}

#[flow]
async fn answer() -> u32 {
    42
}

#[tokio::test]
async fn a_flow_returning_a_value_completes_with_it() {
    let harness = TestHarness::new();
    assert_eq!(harness.scope(answer()).await, 42);
    let report = harness.run(answer()).await.unwrap();
    assert_eq!(report.state.to_string(), "Completed(None)");
    assert_eq!(report.state.data(), Some(&42));
    assert_eq!(report.flow_run.flow_name, "answer");
}

#[flow]
async fn snake_case_name() {}

#[tokio::test]
async fn the_default_flow_name_uses_hyphens_like_prefect() {
    let report = TestHarness::new().run(snake_case_name()).await.unwrap();
    assert_eq!(report.flow_run.flow_name, "snake-case-name");
    assert_eq!(report.state.message(), Some("All states completed."));
}

#[task]
async fn maybe_fail(fail: bool) -> Result<(), String> {
    if fail {
        Err("bad input".into())
    } else {
        Ok(())
    }
}

#[flow]
async fn mixed() {
    let _ = maybe_fail(false).return_state().await;
    let _ = maybe_fail(true).return_state().await;
    let _ = maybe_fail(true).return_state().await;
}

#[tokio::test]
async fn a_unit_flow_fails_when_a_child_failed() {
    let report = TestHarness::new().run(mixed()).await.unwrap();
    assert_eq!(report.state.to_string(), "Failed('2/3 states failed.')");
    let failed: Vec<_> = report
        .task_runs
        .iter()
        .filter(|t| t.state.as_ref().unwrap().is_failed())
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(
        failed[0].state.as_ref().unwrap().message(),
        Some("bad input")
    );
}

#[flow]
async fn err_flow() -> Result<(), String> {
    maybe_fail(true).await
}

#[tokio::test]
async fn a_flow_returning_err_fails_with_its_message_and_gives_the_err() {
    let harness = TestHarness::new();
    assert_eq!(
        harness.scope(err_flow()).await,
        Err("bad input".to_string())
    );
    let report = harness.run(err_flow()).await.unwrap();
    assert_eq!(report.state.to_string(), "Failed('bad input')");
    assert_eq!(report.state.into_data(), Some(Err("bad input".to_string())));
}

#[flow]
async fn panicking_flow() -> u32 {
    panic!("the flow blew up")
}

#[tokio::test]
async fn a_panicking_flow_fails_and_the_panic_reaches_only_awaiting_callers() {
    let harness = TestHarness::new();
    let report = harness.run(panicking_flow()).await.unwrap();
    assert_eq!(report.state.to_string(), "Failed('the flow blew up')");
    assert!(report.state.data().is_none());

    let orion = harness.orion().clone();
    let joined = tokio::spawn(async move { panicking_flow().on(&orion).await }).await;
    let panic = joined.unwrap_err().into_panic();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"the flow blew up"));
    // Both runs are recorded as Failed; the process went on.
    let runs = harness
        .client()
        .read_flow_runs(&Default::default())
        .await
        .unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.state.as_ref().unwrap().is_failed()));
}

static FLAKY_FLOW: AtomicU32 = AtomicU32::new(0);

#[flow(retries = 2, retry_delay_seconds = 30)]
async fn flaky_flow() -> Result<u32, String> {
    let n = FLAKY_FLOW.fetch_add(1, Ordering::SeqCst);
    if n == 0 {
        Err("first attempt fails".into())
    } else {
        Ok(n)
    }
}

#[tokio::test(start_paused = true)]
async fn a_flow_is_retried_after_its_delay() {
    let harness = TestHarness::new();
    let started = tokio::time::Instant::now();
    let report = harness.run(flaky_flow()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(30),
        "the retry waited {:?}",
        started.elapsed()
    );
    assert!(report.state.is_completed());
    assert_eq!(report.state.data(), Some(&Ok(1)));
    assert_eq!(report.flow_run.run_count, 2);
    let names: Vec<String> = harness
        .client()
        .read_flow_run_states(report.flow_run.id)
        .await
        .unwrap()
        .iter()
        .map(|s| s.name().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "Pending",
            "Running",
            "AwaitingRetry",
            "Retrying",
            "Completed"
        ]
    );
}

#[flow(timeout_seconds = 1)]
async fn slow_flow() -> u32 {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    1
}

#[flow(timeout_seconds = 1.5)]
async fn slow_fallible_flow() -> anyhow::Result<u32> {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn a_flow_past_its_timeout_is_timed_out() {
    let harness = TestHarness::new();
    let report = harness.run(slow_flow()).await.unwrap();
    assert_eq!(
        report.state.to_string(),
        "TimedOut('Flow run exceeded timeout of 1 second(s)')"
    );
    assert!(report.state.is_failed());

    // A Result whose error converts from orion::Error gets it as an Err.
    let err = harness.scope(slow_fallible_flow()).await.unwrap_err();
    assert!(err.to_string().contains("TimedOut"), "{err}");

    // Any other return type panics in the awaiting caller.
    let orion = harness.orion().clone();
    let joined = tokio::spawn(async move { slow_flow().on(&orion).await }).await;
    let panic = joined.unwrap_err().into_panic();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("ended in state TimedOut"), "{message}");
}

#[flow(flow_run_name = "report-for-{day}")]
async fn daily_report(day: String) -> usize {
    day.len()
}

#[tokio::test]
async fn flow_run_names_come_from_the_template_or_are_random() {
    let harness = TestHarness::new();
    let report = harness.run(daily_report("monday".into())).await.unwrap();
    assert_eq!(report.flow_run.name, "report-for-monday");
    let named = harness.run(answer().name("custom")).await.unwrap();
    assert_eq!(named.flow_run.name, "custom");

    let mut names = std::collections::HashSet::new();
    for _ in 0..20 {
        let run = harness.run(answer()).await.unwrap().flow_run;
        let (adjective, animal) = run.name.split_once('-').expect("adjective-animal");
        assert!(!adjective.is_empty() && !animal.is_empty());
        assert!(
            run.name.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
            "{}",
            run.name
        );
        names.insert(run.name);
    }
    assert!(names.len() > 15, "names repeat too often: {names:?}");
}

#[tokio::test]
async fn per_call_flow_options_apply() {
    let harness = TestHarness::new();
    let report = harness
        .run(
            daily_report("x".into())
                .tags(["nightly"])
                .task_runner(TaskRunner::sequential()),
        )
        .await
        .unwrap();
    assert_eq!(report.flow_run.tags, ["nightly"]);
    assert_eq!(
        report.flow_run.task_runner.as_deref(),
        Some("SequentialTaskRunner")
    );
    assert_eq!(
        report.log_messages()[1],
        "Using task runner 'SequentialTaskRunner'"
    );
}

#[tokio::test]
async fn flows_called_in_a_scope_are_recorded_there_only() {
    let a = TestHarness::new();
    let b = TestHarness::new();
    a.scope(answer()).await;
    a.scope(answer()).await;
    b.scope(answer()).await;
    assert_eq!(
        a.client()
            .read_flow_runs(&Default::default())
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        b.client()
            .read_flow_runs(&Default::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

#[flow]
async fn context_flow() -> (String, String) {
    let ctx = orion::flow_run_context().unwrap();
    (ctx.flow_name().to_string(), ctx.name().to_string())
}

#[tokio::test]
async fn the_run_context_names_the_flow_run() {
    assert!(orion::flow_run_context().is_none());
    let harness = TestHarness::new();
    let report = harness.run(context_flow()).await.unwrap();
    let (flow, run) = report.state.into_data().unwrap();
    assert_eq!(flow, "context-flow");
    assert_eq!(run, report.flow_run.name);
}
