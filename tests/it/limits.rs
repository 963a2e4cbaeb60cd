//! Concurrency limits through the public API, in tokio's paused time: task-tag limits,
//! deployment limits under an agent, named and rate limits — and, for each, that the slot
//! is free again however its holder ended.

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use orion::prelude::*;
use orion::services::Reaper;
use orion::store::{Collision, FlowRun, FlowRunFilter, Lease, SlotRequest, Sort};
use orion::testing::TestHarness;
use orion::{Error, OrionClient};
use tokio::time::{Instant, sleep};

use crate::concurrency::Gauge;

#[task(tags = ["lim-db"])]
async fn lim_query(i: u32, gauge: Arc<Gauge>) -> u32 {
    gauge.enter(i);
    sleep(Duration::from_secs(10)).await;
    gauge.leave();
    i
}

#[flow(name = "lim-six-queries", task_runner = TaskRunner::concurrent())]
async fn lim_six_queries() -> (Vec<u32>, usize) {
    let gauge = Arc::new(Gauge::default());
    let values = orion::gather(orion::map(0..6, |i| lim_query(i, gauge.clone()))).await;
    (values, gauge.max())
}

/// Runs `fut` on the harness's runtime in a task of its own.
fn spawn_on<F>(h: &TestHarness, fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let orion = h.orion().clone();
    tokio::spawn(async move { orion.scope(fut).await })
}

async fn task_history(client: &OrionClient, id: orion::Uuid) -> Vec<String> {
    let states = client.read_task_run_states(id).await.unwrap();
    states.iter().map(|s| s.name().to_owned()).collect()
}

async fn slots_in_use(client: &OrionClient, limit: &str) -> (usize, usize) {
    let status = client.read_concurrency_limit(limit).await.unwrap();
    (status.holders.len(), status.waiters.len())
}

#[tokio::test(start_paused = true)]
async fn a_tag_limit_caps_task_runs_and_its_waiters_hold_nothing() {
    let h = TestHarness::new();
    h.client().set_concurrency_limit("lim-db", 2).await.unwrap();
    let started = Instant::now();
    let run = spawn_on(&h, lim_six_queries().into_future());

    sleep(Duration::from_secs(5)).await;
    let status = h
        .client()
        .read_concurrency_limit("tag:lim-db")
        .await
        .unwrap();
    assert_eq!((status.holders.len(), status.waiters.len()), (2, 4));
    assert_eq!(status.active_slots(), 2);
    assert!(
        status
            .holders
            .iter()
            .all(|s| s.holder_name.starts_with("task run 'lim_query-"))
    );
    assert!(
        status.waiters.iter().all(|s| s.waiting),
        "waiters hold nothing"
    );

    let (values, max) = run.await.unwrap();
    assert_eq!(values, [0, 1, 2, 3, 4, 5]);
    assert_eq!(max, 2, "never more than the limit at once");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(31),
        "6 runs through 2 slots of 10 s each take 30 s, no idle slot: {took:?}"
    );
    assert_eq!(slots_in_use(h.client(), "tag:lim-db").await, (0, 0));

    let runs = h
        .client()
        .read_task_runs(&orion::store::TaskRunFilter::new().name_prefix("lim_query-"))
        .await
        .unwrap();
    let mut waited = 0;
    for run in &runs {
        let history = task_history(h.client(), run.id).await;
        if history.contains(&"AwaitingConcurrencySlot".to_owned()) {
            assert_eq!(
                history,
                ["Pending", "AwaitingConcurrencySlot", "Running", "Completed"]
            );
            waited += 1;
        } else {
            assert_eq!(history, ["Pending", "Running", "Completed"]);
        }
    }
    assert_eq!(waited, 4, "four of six waited for a slot");
}

#[task(tags = ["lim-off"])]
async fn lim_never() -> u32 {
    7
}

#[flow(name = "lim-zero")]
async fn lim_zero() -> State<u32> {
    lim_never().return_state().await
}

#[tokio::test(start_paused = true)]
async fn a_limit_of_zero_fails_the_task_run_at_once_saying_why() {
    let h = TestHarness::new();
    h.client()
        .set_concurrency_limit("lim-off", 0)
        .await
        .unwrap();
    let started = Instant::now();
    let report = h.run(lim_zero()).await.unwrap();
    let state = report.state.into_data().unwrap();
    assert!(state.is_failed(), "{state}");
    let message = state.message().unwrap();
    assert!(
        message.contains("'lim-off' tag is 0") && message.contains("never start"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused, not waited"
    );
    assert_eq!(slots_in_use(h.client(), "tag:lim-off").await, (0, 0));
    assert_eq!(report.task_runs[0].run_count, 0, "it never ran");
}

// One task per exit path, all under the same one-slot tag limit.
#[task(tags = ["lim-exit"])]
async fn lim_returns_err() -> Result<(), String> {
    Err("the query failed".into())
}

#[task(tags = ["lim-exit"])]
async fn lim_panics() {
    panic!("the query panicked");
}

#[task(tags = ["lim-exit"], timeout_seconds = 1)]
async fn lim_times_out() {
    sleep(Duration::from_secs(3600)).await;
}

#[task(tags = ["lim-exit"])]
async fn lim_hangs() {
    sleep(Duration::from_secs(3600)).await;
}

static RETRY_CALLS: AtomicUsize = AtomicUsize::new(0);

#[task(tags = ["lim-exit"], retries = 1, retry_delay_seconds = 20)]
async fn lim_fails_once() -> Result<(), String> {
    if RETRY_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err("first attempt fails".into());
    }
    Ok(())
}

#[flow(name = "lim-exit-err")]
async fn lim_exit_err() -> State<()> {
    lim_returns_err().return_state().await.map_data(|_| None)
}

#[flow(name = "lim-exit-panic")]
async fn lim_exit_panic() -> State<()> {
    lim_panics().return_state().await
}

#[flow(name = "lim-exit-timeout")]
async fn lim_exit_timeout() -> State<()> {
    lim_times_out().return_state().await
}

/// The flow times out: its submitted task run, running, is cancelled.
#[flow(name = "lim-exit-cancel", timeout_seconds = 2)]
async fn lim_exit_cancel() {
    lim_hangs().submit().await;
}

/// The flow times out while one submitted task run holds the slot and two wait for it.
#[flow(name = "lim-exit-cancel-waiters", timeout_seconds = 5)]
async fn lim_exit_cancel_waiters() {
    orion::gather(orion::map(0..3, |_| lim_hangs())).await;
}

#[flow(name = "lim-exit-retry")]
async fn lim_exit_retry() -> State<()> {
    lim_fails_once().return_state().await.map_data(|_| None)
}

/// After `exit` ended its task run, the one slot is free: no holder, no waiter, and a new
/// holder gets it at once.
async fn slot_is_free_after(h: &TestHarness, what: &str) {
    assert_eq!(
        slots_in_use(h.client(), "tag:lim-exit").await,
        (0, 0),
        "after {what}"
    );
    let before = Instant::now();
    let slot = h.orion().concurrency("tag:lim-exit", 1).await.unwrap();
    assert_eq!(
        before.elapsed(),
        Duration::ZERO,
        "after {what}, taken at once"
    );
    slot.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_tag_slot_is_free_again_however_its_task_run_ends() {
    let h = TestHarness::new();
    h.client()
        .set_concurrency_limit("lim-exit", 1)
        .await
        .unwrap();

    let err = h
        .run(lim_exit_err())
        .await
        .unwrap()
        .state
        .into_data()
        .unwrap();
    assert!(err.is_failed(), "{err}");
    slot_is_free_after(&h, "an Err").await;

    let panicked = h
        .run(lim_exit_panic())
        .await
        .unwrap()
        .state
        .into_data()
        .unwrap();
    assert_eq!(panicked.message(), Some("the query panicked"));
    slot_is_free_after(&h, "a panic").await;

    let timed_out = h
        .run(lim_exit_timeout())
        .await
        .unwrap()
        .state
        .into_data()
        .unwrap();
    assert_eq!(timed_out.name(), "TimedOut");
    slot_is_free_after(&h, "a timeout").await;

    let cancelled = h.run(lim_exit_cancel()).await.unwrap();
    assert!(cancelled.state.is_failed(), "{}", cancelled.state);
    let task = &cancelled.task_runs[0];
    assert!(
        task.state.as_ref().unwrap().is_cancelled(),
        "{:?}",
        task.state
    );
    slot_is_free_after(&h, "a cancellation").await;

    // Cancelled while waiting for the slot: the waiters stop waiting, and end Cancelled too.
    let started = Instant::now();
    let cancelled = h.run(lim_exit_cancel_waiters()).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the flow did not hang"
    );
    let names: Vec<&str> = cancelled
        .task_runs
        .iter()
        .map(|t| t.state.as_ref().unwrap().name())
        .collect();
    assert_eq!(names, ["Cancelled", "Cancelled", "Cancelled"]);
    slot_is_free_after(&h, "a cancellation while waiting").await;

    // A future dropped mid-attempt (no flow left to cancel it): the slot's guard frees it.
    let dropped = tokio::time::timeout(Duration::from_secs(1), h.orion().scope(lim_hangs())).await;
    assert!(dropped.is_err());
    tokio::task::yield_now().await;
    slot_is_free_after(&h, "a dropped attempt").await;

    // A retry holds no slot during its delay: another holder can take it meanwhile.
    let run = spawn_on(&h, lim_exit_retry().into_future());
    sleep(Duration::from_secs(5)).await;
    assert_eq!(RETRY_CALLS.load(Ordering::SeqCst), 1, "in the retry delay");
    slot_is_free_after(&h, "a failed attempt awaiting its retry").await;
    let retried = run.await.unwrap();
    assert!(retried.is_completed(), "{retried}");
    assert_eq!(RETRY_CALLS.load(Ordering::SeqCst), 2);
    slot_is_free_after(&h, "a completed retry").await;
}

#[tokio::test(start_paused = true)]
async fn a_slot_of_a_process_that_died_is_free_once_its_lease_lapses() {
    let h = TestHarness::new();
    h.client().set_concurrency_limit("lim-db", 1).await.unwrap();
    // Another process took the slot with a 30 s lease, then died: nobody renews it.
    let dead = Lease::new(
        orion::Uuid::from_u128(99),
        "process 4242",
        h.client().now(),
        Duration::from_secs(30),
    );
    let ask = SlotRequest::new(
        vec!["tag:lim-db".into()],
        orion::Uuid::from_u128(98),
        "task run 'ghost'",
        dead,
    );
    h.client().store().acquire_slots(ask).await.unwrap();
    assert_eq!(slots_in_use(h.client(), "tag:lim-db").await, (1, 0));

    let gauge = Arc::new(Gauge::default());
    let started = Instant::now();
    let value = h.orion().scope(lim_query(41, gauge.clone())).await;
    assert_eq!(value, 41);
    let waited = started.elapsed() - Duration::from_secs(10);
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(32),
        "the waiter starts when the dead holder's lease lapses: {waited:?}"
    );
    // The reaper then deletes the lapsed row.
    let before = h
        .client()
        .store()
        .read_slots("tag:lim-db")
        .await
        .unwrap()
        .len();
    assert_eq!(before, 1, "the lapsed row is still stored");
    Reaper::new().run_once(h.orion()).await.unwrap();
    assert!(
        h.client()
            .store()
            .read_slots("tag:lim-db")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn a_named_limit_guards_any_code_first_come_first_served() {
    let h = TestHarness::new();
    let gauge = Arc::new(Gauge::default());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..5u32 {
        let (orion, gauge) = (h.orion().clone(), gauge.clone());
        tasks.push(tokio::spawn(async move {
            let slot = orion.concurrency("warehouse", 2).await.unwrap();
            assert_eq!(slot.limit(), "warehouse");
            gauge.enter(i);
            sleep(Duration::from_secs(10)).await;
            gauge.leave();
            drop(slot);
        }));
        tokio::task::yield_now().await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(gauge.max(), 2);
    assert_eq!(
        *gauge.order.lock().unwrap(),
        [0, 1, 2, 3, 4],
        "served in arrival order"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(31),
        "{took:?}"
    );
    assert_eq!(slots_in_use(h.client(), "warehouse").await, (0, 0));
    assert_eq!(
        h.client()
            .read_concurrency_limit("warehouse")
            .await
            .unwrap()
            .limit
            .limit,
        2
    );

    // Inside a scope, the free function uses the ambient runtime, and the stored size rules.
    h.client()
        .upsert_concurrency_limit(orion::store::ConcurrencyLimit::new(
            "warehouse",
            1,
            h.client().now(),
        ))
        .await
        .unwrap();
    h.scope(async {
        let first = orion::concurrency("warehouse", 5).await.unwrap();
        let second =
            tokio::time::timeout(Duration::from_secs(60), orion::concurrency("warehouse", 5)).await;
        assert!(
            second.is_err(),
            "the stored size (1) rules, not the 5 asked for"
        );
        first.release().await.unwrap();
        let third =
            tokio::time::timeout(Duration::from_secs(1), orion::concurrency("warehouse", 5)).await;
        assert!(third.is_ok(), "a release lets the next one in");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_named_slot_is_released_when_its_holder_panics_and_zero_is_refused() {
    let h = TestHarness::new();
    let orion = h.orion().clone();
    let holder = tokio::spawn(async move {
        let _slot = orion.concurrency("one-at-a-time", 1).await.unwrap();
        panic!("the guarded code panicked");
    });
    assert!(holder.await.unwrap_err().is_panic());
    tokio::task::yield_now().await;
    let next = tokio::time::timeout(
        Duration::from_millis(1),
        h.orion().concurrency("one-at-a-time", 1),
    )
    .await;
    assert!(
        next.is_ok(),
        "unwinding dropped the guard, which released the slot"
    );

    h.client()
        .upsert_concurrency_limit(orion::store::ConcurrencyLimit::new(
            "closed",
            0,
            h.client().now(),
        ))
        .await
        .unwrap();
    match h.orion().concurrency("closed", 3).await {
        Err(Error::ConcurrencyLimit {
            limit,
            size: 0,
            asked: 1,
            ..
        }) => assert_eq!(limit, "closed"),
        other => panic!("a limit of 0 must be refused, not waited for: {other:?}"),
    }
    assert_eq!(slots_in_use(h.client(), "closed").await, (0, 0));
    assert!(matches!(
        h.orion().concurrency(" ", 1).await,
        Err(Error::Setting { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_lets_n_calls_through_per_period() {
    let h = TestHarness::new();
    let started = Instant::now();
    let mut at = Vec::new();
    for _ in 0..5 {
        h.orion()
            .rate_limit("api", 2, Duration::from_secs(10))
            .await
            .unwrap();
        at.push(started.elapsed().as_secs());
    }
    assert_eq!(at, [0, 0, 10, 10, 20]);
    h.client()
        .upsert_concurrency_limit(orion::store::ConcurrencyLimit::new(
            "plain",
            2,
            h.client().now(),
        ))
        .await
        .unwrap();
    assert!(matches!(
        h.orion()
            .rate_limit("plain", 2, Duration::from_secs(1))
            .await,
        Err(Error::Setting { .. })
    ));
    assert!(matches!(
        h.orion().rate_limit("api", 2, Duration::ZERO).await,
        Err(Error::Setting { .. })
    ));
}

static DEPLOY_GAUGE: std::sync::LazyLock<Gauge> = std::sync::LazyLock::new(Gauge::default);

#[flow(name = "lim-deployed")]
async fn lim_deployed(i: u32) {
    DEPLOY_GAUGE.enter(i);
    sleep(Duration::from_secs(10)).await;
    DEPLOY_GAUGE.leave();
}

#[flow(name = "lim-unlimited")]
async fn lim_unlimited(seconds: u64) {
    sleep(Duration::from_secs(seconds)).await;
}

#[flow(name = "lim-cancel-new")]
async fn lim_cancel_new(seconds: u64) {
    sleep(Duration::from_secs(seconds)).await;
}

async fn state_names(client: &OrionClient, id: orion::Uuid) -> Vec<String> {
    let states = client.read_flow_run_states(id).await.unwrap();
    states.iter().map(|s| s.name().to_owned()).collect()
}

/// `n` runs of `d` created by hand, due now, a millisecond apart (so their order is known).
async fn due_runs(h: &TestHarness, d: &orion::store::Deployment, n: usize) {
    for _ in 0..n {
        h.client()
            .create_flow_run_from_deployment(d, None)
            .await
            .unwrap();
        sleep(Duration::from_millis(1)).await;
    }
}

async fn runs_by_start(client: &OrionClient, d: &orion::store::Deployment) -> Vec<FlowRun> {
    let filter = FlowRunFilter::new()
        .deployment_id(d.id)
        .sort(Sort::ExpectedStartAsc);
    client.read_flow_runs(&filter).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_deployment_limit_enqueues_runs_without_blocking_other_deployments() {
    let h = TestHarness::new();
    let limited = DeploymentSpec::new("one-at-a-time")
        .flow(lim_deployed)
        .parameters(json!({"i": 0}))
        .concurrency_limit(1, Collision::Enqueue)
        .apply(h.client())
        .await
        .unwrap();
    let free = DeploymentSpec::new("free")
        .flow(lim_unlimited)
        .parameters(json!({"seconds": 1}))
        .apply(h.client())
        .await
        .unwrap();
    due_runs(&h, &limited, 3).await;
    for _ in 0..2 {
        h.client()
            .create_flow_run_from_deployment(&free, None)
            .await
            .unwrap();
    }
    let handle = h.orion().serve().agent(Agent::new()).start();
    sleep(Duration::from_secs(5)).await;
    let status = h.client().work_queue_status("default").await.unwrap();
    assert_eq!(
        status.active_runs, 1,
        "one limited run holds a slot; the waiters hold nothing"
    );
    for run in runs_by_start(h.client(), &free).await {
        let state = run.state.unwrap();
        assert!(
            state.is_completed(),
            "the other deployment's runs are not held up: {state}"
        );
    }
    sleep(Duration::from_secs(30)).await;
    handle.shutdown().await.unwrap();

    assert_eq!(DEPLOY_GAUGE.max(), 1);
    let runs = runs_by_start(h.client(), &limited).await;
    let starts: Vec<i64> = runs
        .iter()
        .map(|r| {
            r.start_time
                .unwrap()
                .duration_since(runs[0].start_time.unwrap())
                .as_secs()
        })
        .collect();
    assert_eq!(
        starts,
        [0, 10, 20],
        "each waiting run starts as the slot frees, earliest first"
    );
    assert_eq!(
        state_names(h.client(), runs[0].id).await,
        ["Scheduled", "Pending", "Running", "Completed"]
    );
    for run in &runs[1..] {
        assert_eq!(
            state_names(h.client(), run.id).await,
            [
                "Scheduled",
                "AwaitingConcurrencySlot",
                "Pending",
                "Running",
                "Completed"
            ]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_deployment_limit_with_cancel_new_cancels_the_runs_that_find_it_full() {
    let h = TestHarness::new();
    let d = DeploymentSpec::new("no-overlap")
        .flow(lim_cancel_new)
        .parameters(json!({"seconds": 10}))
        .concurrency_limit(1, Collision::CancelNew)
        .apply(h.client())
        .await
        .unwrap();
    due_runs(&h, &d, 3).await;
    let handle = h.orion().serve().agent(Agent::new()).start();
    sleep(Duration::from_secs(15)).await;
    handle.shutdown().await.unwrap();
    let runs = runs_by_start(h.client(), &d).await;
    let states: Vec<State> = runs.into_iter().map(|r| r.state.unwrap()).collect();
    assert!(states[0].is_completed(), "{}", states[0]);
    for state in &states[1..] {
        assert!(state.is_cancelled(), "{state}");
        assert!(state.message().unwrap().contains("CANCEL_NEW"), "{state}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_deployment_slot_held_by_a_dead_agent_frees_when_the_reaper_crashes_its_run() {
    let h = TestHarness::new();
    let d = DeploymentSpec::new("one-at-a-time")
        .flow(lim_cancel_new)
        .parameters(json!({"seconds": 1}))
        .concurrency_limit(1, Collision::Enqueue)
        .apply(h.client())
        .await
        .unwrap();
    let first = h
        .client()
        .create_flow_run_from_deployment(&d, None)
        .await
        .unwrap();
    // An agent claims the first run with a 30 s lease, then dies.
    let request = orion::ClaimRequest::new(
        orion::Uuid::from_u128(5),
        "dead-agent",
        vec!["default".into()],
        1,
        Duration::from_secs(30),
    );
    let claimed = h.client().claim_flow_runs(&request).await.unwrap();
    assert_eq!(claimed[0].id, first.id);
    let pending = claimed[0].state.clone().unwrap();
    let started = orion::RunRef::flow(first.id, Some(&pending), 0, &claimed[0].retry).fence();
    h.client()
        .propose_state(started, State::running())
        .await
        .unwrap();
    sleep(Duration::from_millis(1)).await;
    let second = h
        .client()
        .create_flow_run_from_deployment(&d, None)
        .await
        .unwrap();
    let handle = h
        .orion()
        .serve()
        .reaper(Reaper::new().loop_interval(Duration::from_secs(5)))
        .agent(Agent::new())
        .start();
    sleep(Duration::from_secs(20)).await;
    assert_eq!(
        h.client()
            .read_flow_run(second.id)
            .await
            .unwrap()
            .unwrap()
            .state
            .unwrap()
            .name(),
        "AwaitingConcurrencySlot",
        "the dead agent's run still holds the deployment's slot"
    );
    sleep(Duration::from_secs(20)).await;
    handle.shutdown().await.unwrap();
    let first = h.client().read_flow_run(first.id).await.unwrap().unwrap();
    assert!(first.state.unwrap().is_crashed());
    let second = h.client().read_flow_run(second.id).await.unwrap().unwrap();
    assert!(
        second.state.unwrap().is_completed(),
        "its slot freed, the waiting run ran"
    );
}

#[tokio::test(start_paused = true)]
async fn limits_are_managed_through_the_client() {
    let h = TestHarness::new();
    let c = h.client();
    c.set_concurrency_limit("database", 2).await.unwrap();
    c.set_concurrency_limit("database", 3).await.unwrap();
    c.upsert_concurrency_limit(orion::store::ConcurrencyLimit::new("warehouse", 4, c.now()))
        .await
        .unwrap();
    let names: Vec<(String, u32)> = c
        .read_concurrency_limits()
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.name, l.limit))
        .collect();
    assert_eq!(
        names,
        [("tag:database".to_owned(), 3), ("warehouse".to_owned(), 4)]
    );
    let held = h.orion().concurrency("warehouse", 4).await.unwrap();
    assert_eq!(slots_in_use(c, "warehouse").await, (1, 0));
    assert_eq!(c.reset_concurrency_limit("warehouse").await.unwrap(), 1);
    assert_eq!(slots_in_use(c, "warehouse").await, (0, 0));
    held.release().await.unwrap();
    assert!(c.delete_concurrency_limit("warehouse").await.unwrap());
    assert!(!c.delete_concurrency_limit("warehouse").await.unwrap());
    assert!(matches!(
        c.read_concurrency_limit("warehouse").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        c.reset_concurrency_limit("warehouse").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        c.set_concurrency_limit("", 1).await,
        Err(Error::Setting { .. })
    ));
    let zero_rate = orion::store::ConcurrencyLimit::new("r", 1, c.now()).per(Some(Duration::ZERO));
    assert!(matches!(
        c.upsert_concurrency_limit(zero_rate).await,
        Err(Error::Setting { .. })
    ));
    let spec = DeploymentSpec::new("x")
        .flow_name("y")
        .concurrency_limit(0, Collision::Enqueue);
    let err = spec.validate().unwrap_err().to_string();
    assert!(err.contains("concurrency_limit"), "{err}");
}

/// One runtime handle used from two tokio runtimes in turn (as a program's default runtime
/// is by several `#[tokio::test]`s): the lease keeper spawned in the first dies with it, and
/// the second spawns its own, so its slots are still renewed. Real time: a 300 ms lease.
#[test]
fn slots_stay_renewed_when_the_tokio_runtime_that_started_renewing_is_gone() {
    let orion = Orion::memory();
    orion.client().set_slot_lease(Duration::from_millis(300));
    let first = tokio::runtime::Runtime::new().unwrap();
    first.block_on(async {
        let slot = orion.concurrency("lim-keeper", 1).await.unwrap();
        slot.release().await.unwrap();
    });
    drop(first);
    let second = tokio::runtime::Runtime::new().unwrap();
    second.block_on(async {
        let _slot = orion.concurrency("lim-keeper", 1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let status = orion
            .client()
            .read_concurrency_limit("lim-keeper")
            .await
            .unwrap();
        assert_eq!(
            status.holders.len(),
            1,
            "renewed past three leases: {status:?}"
        );
        let other = tokio::time::timeout(
            Duration::from_millis(400),
            orion.concurrency("lim-keeper", 1),
        )
        .await;
        assert!(other.is_err(), "still held");
    });
}

static DEPLOYED_CALLS: AtomicUsize = AtomicUsize::new(0);

/// The first run panics, the second fails, the third hangs until cancelled, the fourth
/// completes: under a limit of 1, each one's end frees the slot for the next.
#[flow(name = "lim-deployed-exits")]
async fn lim_deployed_exits() -> Result<(), String> {
    match DEPLOYED_CALLS.fetch_add(1, Ordering::SeqCst) {
        0 => panic!("the first run panics"),
        1 => Err("the second run fails".into()),
        2 => {
            sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
        _ => Ok(()),
    }
}

#[tokio::test(start_paused = true)]
async fn a_deployment_slot_is_free_again_however_its_run_ends() {
    let h = TestHarness::new();
    let d = DeploymentSpec::new("exits")
        .flow(lim_deployed_exits)
        .concurrency_limit(1, Collision::Enqueue)
        .apply(h.client())
        .await
        .unwrap();
    due_runs(&h, &d, 4).await;
    let handle = h.orion().serve().agent(Agent::new()).start();
    sleep(Duration::from_secs(5)).await;
    let runs = runs_by_start(h.client(), &d).await;
    let names: Vec<String> = runs
        .iter()
        .map(|r| r.state.as_ref().unwrap().name().to_owned())
        .collect();
    assert_eq!(
        names,
        ["Failed", "Failed", "Running", "AwaitingConcurrencySlot"],
        "a panic and an error each freed the slot; the hanging run holds it"
    );
    h.client().cancel_flow_run(runs[2].id).await.unwrap();
    sleep(Duration::from_secs(5)).await;
    handle.shutdown().await.unwrap();
    let runs = runs_by_start(h.client(), &d).await;
    assert!(runs[2].state.as_ref().unwrap().is_cancelled());
    assert!(
        runs[3].state.as_ref().unwrap().is_completed(),
        "the cancelled run freed the slot: {:?}",
        runs[3].state
    );
    assert_eq!(
        h.client()
            .work_queue_status("default")
            .await
            .unwrap()
            .active_runs,
        0
    );
}
