use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use orion::prelude::*;
use orion::store::TaskRunFilter;
use orion::testing::TestHarness;
use orion::{RetryDelay, TaskOptions};

#[task]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[flow]
async fn sum_three() -> i64 {
    let a = add(1, 2).await;
    let b = add(a, 3).await;
    add(b, 4).await
}

#[tokio::test]
async fn task_runs_are_numbered_per_flow_run_with_a_stable_hash() {
    let harness = TestHarness::new();
    let first = harness.run(sum_three()).await.unwrap();
    assert_eq!(first.state.data(), Some(&10));
    let names: Vec<&str> = first.task_runs.iter().map(|t| t.name.as_str()).collect();
    let hash = &names[0]["add-".len().."add-".len() + 8];
    assert_eq!(
        names,
        [
            format!("add-{hash}-0"),
            format!("add-{hash}-1"),
            format!("add-{hash}-2")
        ]
    );
    assert_eq!(&*first.task_runs[0].task_key, format!("add-{hash}"));
    // A second flow run counts from 0 again, with the same hash.
    let second = harness.run(sum_three()).await.unwrap();
    assert_eq!(second.task_runs[0].name, format!("add-{hash}-0"));
}

#[tokio::test]
async fn a_task_called_outside_a_flow_is_a_standalone_task_run() {
    let harness = TestHarness::new();
    assert_eq!(harness.scope(add(2, 3)).await, 5);
    let runs = harness
        .client()
        .read_task_runs(&TaskRunFilter::new())
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].flow_run_id, None);
    assert!(runs[0].state.as_ref().unwrap().is_completed());
    let state = add(1, 1).on(harness.orion()).return_state().await;
    assert_eq!(state.data(), Some(&2));
}

#[derive(Debug)]
struct QuotaError(u32);

impl std::fmt::Display for QuotaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "quota exceeded by {} requests", self.0)
    }
}

#[task]
async fn call_api() -> Result<u32, QuotaError> {
    Err(QuotaError(7))
}

#[tokio::test]
async fn an_err_is_a_failed_state_with_its_display_text() {
    let harness = TestHarness::new();
    let state = harness.scope(call_api().return_state()).await;
    assert_eq!(state.to_string(), "Failed('quota exceeded by 7 requests')");
    assert!(matches!(state.into_data(), Some(Err(QuotaError(7)))));
    let value = harness.scope(call_api()).await;
    assert_eq!(value.unwrap_err().0, 7);
}

static PANICS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 1)]
async fn panics_always() -> u32 {
    PANICS.fetch_add(1, Ordering::SeqCst);
    panic!("index out of bounds: the len is 0")
}

#[flow]
async fn survives_a_panicking_task() -> String {
    let state = panics_always().return_state().await;
    state.to_string()
}

#[tokio::test]
async fn a_panicking_task_fails_is_retried_and_does_not_abort_the_flow() {
    let harness = TestHarness::new();
    let report = harness.run(survives_a_panicking_task()).await.unwrap();
    assert_eq!(
        report.state.data().unwrap(),
        "Failed('index out of bounds: the len is 0')"
    );
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        2,
        "the retry ran the body again"
    );
    assert_eq!(report.task_runs[0].run_count, 2);
}

#[flow]
async fn awaits_a_panicking_task() -> u32 {
    panics_always().await
}

#[tokio::test]
async fn awaiting_a_panicking_task_re_raises_the_panic_in_the_flow() {
    let harness = TestHarness::new();
    let report = harness.run(awaits_a_panicking_task()).await.unwrap();
    assert_eq!(
        report.state.to_string(),
        "Failed('index out of bounds: the len is 0')"
    );
    assert!(report.task_runs[0].state.as_ref().unwrap().is_failed());
}

#[task]
fn blocking_sum(n: u64) -> u64 {
    get_run_logger().info(format!("summing to {n}"));
    tracing::info!(n, "blocking event");
    (1..=n).sum()
}

#[task]
fn blocking_panic() -> u64 {
    panic!("sync body panicked")
}

#[flow]
async fn with_blocking_tasks() -> u64 {
    let thread = std::thread::current().id();
    let a = blocking_sum(10).await;
    assert_eq!(
        std::thread::current().id(),
        thread,
        "the flow stays on its own task"
    );
    let b = blocking_panic().return_state().await;
    a + b.data().copied().unwrap_or(1000)
}

#[tokio::test]
async fn plain_fn_tasks_run_on_the_blocking_pool_with_their_context() {
    let report = TestHarness::new().run(with_blocking_tasks()).await.unwrap();
    assert_eq!(report.state.data(), Some(&1055));
    assert_eq!(report.state.message(), None);
    let sum_run = &report.task_runs_of("blocking_sum")[0];
    let logs: Vec<_> = report
        .logs
        .iter()
        .filter(|l| l.task_run_id == Some(sum_run.id))
        .map(|l| l.message.as_str())
        .collect();
    assert_eq!(
        logs,
        [
            "summing to 10",
            "blocking event n=10",
            "Finished in state Completed(None)"
        ]
    );
    let panic_run = &report.task_runs_of("blocking_panic")[0];
    assert_eq!(
        panic_run.state.as_ref().unwrap().to_string(),
        "Failed('sync body panicked')"
    );
}

static FLAKY: AtomicU32 = AtomicU32::new(0);

#[task(retries = 2, retry_delay_seconds = 100)]
async fn flaky() -> Result<&'static str, String> {
    match FLAKY.fetch_add(1, Ordering::SeqCst) {
        0 | 1 => Err("HTTP 503".into()),
        _ => Ok("ok"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_task_is_retried_after_its_delay_until_it_succeeds() {
    let harness = TestHarness::new();
    let started = tokio::time::Instant::now();
    let state = harness.scope(flaky().return_state()).await;
    assert!(
        started.elapsed() >= Duration::from_secs(200),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(state.data(), Some(&Ok("ok")));
    let run = &harness
        .client()
        .read_task_runs(&TaskRunFilter::new())
        .await
        .unwrap()[0];
    assert_eq!(run.run_count, 3);
    let history = harness.client().read_task_run_states(run.id).await.unwrap();
    let names: Vec<&str> = history.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "Pending",
            "Running",
            "AwaitingRetry",
            "Retrying",
            "AwaitingRetry",
            "Retrying",
            "Completed"
        ]
    );
    assert_eq!(history[2].message(), Some("HTTP 503"));
    let delay = history[2]
        .details()
        .scheduled_time
        .unwrap()
        .duration_since(history[2].timestamp());
    assert!((delay.as_secs_f64() - 100.0).abs() < 1.0, "{delay:?}");
    let logs = harness
        .client()
        .read_logs(&orion::store::LogFilter::new().task_run_id(run.id))
        .await
        .unwrap();
    let retry_line = logs
        .iter()
        .find(|l| l.message.starts_with("Task run failed"))
        .unwrap();
    assert_eq!(
        retry_line.message,
        "Task run failed with error: HTTP 503 - Retry 1/2 will start 100 second(s) from now"
    );
    assert_eq!(
        retry_line.level,
        orion::store::LogLevel::Info,
        "Prefect's level"
    );
}

#[task(retries = 3, retry_delay_seconds = [1, 10, 100])]
async fn always_fails() -> Result<(), String> {
    Err("nope".into())
}

#[tokio::test(start_paused = true)]
async fn retry_delay_lists_and_per_call_overrides() {
    let harness = TestHarness::new();
    let started = tokio::time::Instant::now();
    let state = harness.scope(always_fails().return_state()).await;
    assert_eq!(state.to_string(), "Failed('nope')");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(111) && waited < Duration::from_secs(112),
        "{waited:?}"
    );

    let started = tokio::time::Instant::now();
    let call = always_fails().with_options(
        TaskOptions::new()
            .retries(1)
            .retry_delay(RetryDelay::Fixed(5.0))
            .name("once"),
    );
    let state = harness.scope(call.return_state()).await;
    assert!(state.is_failed());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    let runs = harness
        .client()
        .read_task_runs(&TaskRunFilter::new().name_prefix("once"))
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].run_count, 2);
}

#[task(timeout_seconds = 2)]
async fn sleepy(finished: Arc<AtomicBool>) -> u32 {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    finished.store(true, Ordering::SeqCst);
    7
}

#[task(timeout_seconds = 2)]
async fn sleepy_fallible() -> anyhow::Result<u32> {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(7)
}

#[tokio::test(start_paused = true)]
async fn a_task_past_its_timeout_is_cancelled_and_timed_out() {
    let harness = TestHarness::new();
    let finished = Arc::new(AtomicBool::new(false));
    let started = tokio::time::Instant::now();
    let state = harness.scope(sleepy(finished.clone()).return_state()).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(state.name(), "TimedOut");
    assert_eq!(
        state.to_string(),
        "TimedOut('Task run exceeded timeout of 2 second(s)')"
    );
    tokio::time::sleep(Duration::from_secs(7200)).await;
    assert!(
        !finished.load(Ordering::SeqCst),
        "the body must have been dropped at the deadline"
    );

    let err = harness.scope(sleepy_fallible()).await.unwrap_err();
    assert!(err.to_string().contains("TimedOut"), "{err}");
    let overridden = sleepy(finished.clone())
        .timeout(Duration::from_secs(1))
        .retries(1);
    let state = harness.scope(overridden.return_state()).await;
    assert_eq!(
        state.to_string(),
        "TimedOut('Task run exceeded timeout of 1 second(s)')"
    );
}

static LOOKUPS: AtomicU32 = AtomicU32::new(0);

#[task(cache_key_fn = orion::task_input_hash, cache_expiration = 60)]
async fn lookup(user: u64) -> String {
    LOOKUPS.fetch_add(1, Ordering::SeqCst);
    format!("user-{user}")
}

#[tokio::test(start_paused = true)]
async fn cached_results_are_reused_until_they_expire() {
    let harness = TestHarness::new();
    let before = LOOKUPS.load(Ordering::SeqCst);
    assert_eq!(harness.scope(lookup(1)).await, "user-1");
    let hit = harness.scope(lookup(1).return_state()).await;
    assert_eq!(hit.to_string(), "Cached(None)");
    assert!(hit.is_completed());
    assert_eq!(hit.data().map(String::as_str), Some("user-1"));
    assert_eq!(harness.scope(lookup(2)).await, "user-2");
    assert_eq!(
        LOOKUPS.load(Ordering::SeqCst) - before,
        2,
        "the cached call did not run the body"
    );

    // A refresh runs the body and stores the new result.
    let refreshed = lookup(1).with_options(TaskOptions::new().refresh_cache(true));
    assert_eq!(
        harness.scope(refreshed.return_state()).await.name(),
        "Completed"
    );
    assert_eq!(LOOKUPS.load(Ordering::SeqCst) - before, 3);

    tokio::time::sleep(Duration::from_secs(61)).await;
    let expired = harness.scope(lookup(1).return_state()).await;
    assert_eq!(
        expired.name(),
        "Completed",
        "an expired cache entry is not used"
    );
    assert_eq!(LOOKUPS.load(Ordering::SeqCst) - before, 4);
}

fn never_cache(
    _: &orion::TaskRunContext,
    _: &serde_json::Map<String, serde_json::Value>,
) -> Option<String> {
    None
}

static UNCACHED: AtomicU32 = AtomicU32::new(0);

#[task(cache_key_fn = never_cache)]
async fn uncached(x: u8) -> u8 {
    UNCACHED.fetch_add(1, Ordering::SeqCst);
    x
}

#[tokio::test]
async fn a_cache_key_fn_returning_none_disables_the_cache() {
    let harness = TestHarness::new();
    harness.scope(uncached(1)).await;
    harness.scope(uncached(1)).await;
    assert_eq!(UNCACHED.load(Ordering::SeqCst), 2);
}

#[task(name = "fetch-user", tags = ["io", "users"], task_run_name = "fetch-{id}")]
async fn fetch(id: u32) -> u32 {
    id
}

#[tokio::test]
async fn task_names_tags_and_run_name_templates() {
    let harness = TestHarness::new();
    harness.scope(fetch(7)).await;
    harness
        .scope(fetch(8).name("explicit").tags(["override"]))
        .await;
    let runs = harness
        .client()
        .read_task_runs(&TaskRunFilter::new())
        .await
        .unwrap();
    assert_eq!(runs[0].name, "fetch-7");
    assert_eq!(&*runs[0].tags, ["io", "users"]);
    assert!(runs[0].task_key.starts_with("fetch-user-"));
    assert_eq!(runs[1].name, "explicit");
    assert_eq!(&*runs[1].tags, ["override"]);
}

#[task]
async fn context_task() -> (String, u32) {
    let ctx = orion::task_run_context().unwrap();
    (ctx.task_name().to_string(), ctx.run_count())
}

#[tokio::test]
async fn the_run_context_names_the_task_run() {
    let harness = TestHarness::new();
    assert_eq!(
        harness.scope(context_task()).await,
        ("context_task".to_string(), 1)
    );
    assert!(orion::task_run_context().is_none());
}

#[task]
async fn share(payload: Arc<Vec<u8>>) -> Arc<Vec<u8>> {
    payload
}

#[flow]
async fn consume_many() -> (usize, usize) {
    let payload = Arc::new(vec![7u8; 1024]);
    let mut total = 0;
    for _ in 0..100 {
        total += share(payload.clone()).await.len();
    }
    (total, Arc::strong_count(&payload))
}

#[tokio::test]
async fn results_are_not_kept_once_consumed() {
    let report = TestHarness::new().run(consume_many()).await.unwrap();
    assert_eq!(
        report.state.data(),
        Some(&(102_400, 1)),
        "no task run kept its argument or result alive"
    );
    assert_eq!(report.task_runs.len(), 100);
}

mod users {
    use orion::prelude::*;

    #[task(cache_key_fn = orion::task_input_hash)]
    pub(crate) async fn lookup_name(id: u32) -> String {
        format!("user {id}")
    }
}

mod orders {
    use orion::prelude::*;

    // Same task name as `users::lookup_name`, another function and another return type.
    #[task(name = "lookup_name", cache_key_fn = orion::task_input_hash)]
    pub(crate) async fn lookup_name(id: u32) -> u64 {
        u64::from(id) * 100
    }
}

#[tokio::test]
async fn tasks_with_the_same_name_never_share_cached_results() {
    let harness = TestHarness::new();
    assert_eq!(harness.scope(users::lookup_name(1)).await, "user 1");
    let other = harness.scope(orders::lookup_name(1).return_state()).await;
    assert_eq!(
        other.name(),
        "Completed",
        "another task's cache entry was used"
    );
    assert_eq!(other.data(), Some(&100));
    // Each task still hits its own entry.
    let again = harness.scope(users::lookup_name(1).return_state()).await;
    assert_eq!(again.name(), "Cached");
    assert_eq!(again.data().map(String::as_str), Some("user 1"));
    let again = harness.scope(orders::lookup_name(1).return_state()).await;
    assert_eq!(again.name(), "Cached");
    assert_eq!(again.data(), Some(&100));
}

#[task]
async fn key_of_context() -> String {
    orion::task_run_context().unwrap().task_key().to_owned()
}

#[tokio::test]
async fn the_run_context_gives_the_task_key_that_names_its_runs() {
    let harness = TestHarness::new();
    let key = harness.scope(key_of_context()).await;
    let runs = harness
        .client()
        .read_task_runs(&TaskRunFilter::new())
        .await
        .unwrap();
    assert_eq!(&*runs[0].task_key, key);
    assert!(runs[0].name.starts_with(&key));
    assert!(key.starts_with("key_of_context-"));
}

static PARSES: AtomicU32 = AtomicU32::new(0);

/// Not `Serialize` as a whole (anyhow's error is not), yet cacheable: only successes are kept.
#[task(cache_key_fn = orion::task_input_hash)]
async fn parse_number(text: String) -> anyhow::Result<u64> {
    PARSES.fetch_add(1, Ordering::SeqCst);
    Ok(text.trim().parse()?)
}

#[tokio::test]
async fn a_task_returning_anyhow_result_caches_its_successes_only() {
    let harness = TestHarness::new();
    assert_eq!(harness.scope(parse_number("42".into())).await.unwrap(), 42);
    let hit = harness
        .scope(parse_number("42".into()).return_state())
        .await;
    assert_eq!(hit.name(), "Cached");
    assert_eq!(hit.into_data().map(|r| r.unwrap()), Some(42));
    assert_eq!(PARSES.load(Ordering::SeqCst), 1);
    // A failure is not cached: the next call runs the body again.
    assert!(harness.scope(parse_number("x".into())).await.is_err());
    assert!(harness.scope(parse_number("x".into())).await.is_err());
    assert_eq!(PARSES.load(Ordering::SeqCst), 3);
}

// `label` is used only by the run-name template: no "unused variable" warning (CI denies
// warnings, so this fails the build if the macro lets one through).
#[task(task_run_name = "label-{label}")]
async fn labelled(label: String) -> u8 {
    1
}

#[tokio::test]
async fn a_parameter_used_only_in_the_run_name_names_the_run() {
    let harness = TestHarness::new();
    let state = harness.scope(labelled("blue".into()).return_state()).await;
    let id = state.details().task_run_id.unwrap();
    let run = harness.client().read_task_run(id).await.unwrap().unwrap();
    assert_eq!(run.name, "label-blue");
    let text = id.to_string();
    assert_eq!(
        text.parse::<orion::Uuid>().unwrap(),
        run.id,
        "Uuid is re-exported"
    );
}
