//! The services on the memory store, in tokio's paused time: the scheduler, late runs,
//! catch-up, agents with queues and leases, the reaper, cancellation, shutdown.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use orion::prelude::*;
use orion::services::{LateRuns, Reaper, Scheduler, Shutdown};
use orion::store::{CatchUp, FlowRun, FlowRunFilter, Sort, StoreError, WorkQueue};
use orion::testing::TestHarness;
use orion::{ClaimRequest, Error, RunRef};

#[task]
async fn add_numbers(nums: Vec<i64>) -> i64 {
    nums.iter().sum()
}

#[flow(name = "svc-calculator", retries = 1)]
async fn svc_calculator(nums: Vec<i64>) -> i64 {
    add_numbers(nums).await
}

static SLOW_RUNNING: AtomicU32 = AtomicU32::new(0);
static SLOW_MAX: AtomicU32 = AtomicU32::new(0);

#[flow(name = "svc-slow")]
async fn svc_slow(seconds: u64) {
    let now = SLOW_RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    SLOW_MAX.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    SLOW_RUNNING.fetch_sub(1, Ordering::SeqCst);
}

#[flow(name = "svc-panics")]
async fn svc_panics() {
    panic!("the flow blew up under an agent");
}

#[flow(name = "svc-sleeper")]
async fn svc_sleeper(seconds: u64) -> u64 {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    seconds
}

fn new_id() -> orion::Uuid {
    orion::Uuid::from_u128(fastrand::u128(..))
}

async fn state_of(h: &TestHarness, id: orion::Uuid) -> State {
    h.client()
        .read_flow_run(id)
        .await
        .unwrap()
        .unwrap()
        .state
        .unwrap()
}

fn hourly() -> IntervalSchedule {
    IntervalSchedule::new(Duration::from_secs(3600)).unwrap()
}

async fn runs_of(h: &TestHarness, d: &orion::store::Deployment) -> Vec<FlowRun> {
    h.client()
        .read_flow_runs(
            &FlowRunFilter::new()
                .deployment_id(d.id)
                .sort(Sort::ExpectedStartAsc),
        )
        .await
        .unwrap()
}

async fn history(h: &TestHarness, id: orion::Uuid) -> Vec<String> {
    h.client()
        .read_flow_run_states(id)
        .await
        .unwrap()
        .iter()
        .map(|s| s.name().to_owned())
        .collect()
}

/// A due run of `d`, created by hand.
async fn due_run(h: &TestHarness, d: &orion::store::Deployment) -> FlowRun {
    h.client()
        .create_flow_run_from_deployment(d, None)
        .await
        .unwrap()
}

/// Claims one run of the default queue for an agent named `agent` (a 30 s lease) that is
/// never heard from again: its lease is never renewed.
async fn claim_as_dead_agent(h: &TestHarness, agent: &str) -> FlowRun {
    let request = ClaimRequest::new(
        new_id(),
        agent,
        vec!["default".into()],
        1,
        Duration::from_secs(30),
    );
    h.client()
        .claim_flow_runs(&request)
        .await
        .unwrap()
        .remove(0)
}

/// Moves a claimed (Pending) run to Running, as its agent would; returns the Running state.
async fn start_claimed(h: &TestHarness, claimed: &FlowRun) -> State {
    let pending = claimed.state.clone().unwrap();
    match h
        .client()
        .propose_state(
            RunRef::flow(claimed.id, Some(&pending), 0, &claimed.retry).fence(),
            State::running(),
        )
        .await
        .unwrap()
    {
        orion::Transition::Set(s) => s,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_scheduler_keeps_runs_ahead_once_per_slot_with_the_schedules_parameters() {
    let h = TestHarness::new();
    let schedule = orion::store::DeploymentSchedule::new(
        IntervalSchedule::new(Duration::from_secs(600)).unwrap(),
    )
    .parameters(serde_json::from_value(json!({"nums": [10]})).unwrap());
    let d = DeploymentSpec::new("ten-minutes")
        .flow(svc_calculator)
        .parameters(json!({"nums": [1, 2]}))
        .schedules([schedule])
        .apply(h.client())
        .await
        .unwrap();
    let scheduler = Scheduler::new();
    let pass = scheduler.run_once(h.orion()).await.unwrap();
    // Every ten minutes for at least an hour: 6 or 7 slots (3 runs would not cover the hour).
    let runs = runs_of(&h, &d).await;
    assert_eq!(pass.created, runs.len());
    assert!((6..=7).contains(&runs.len()), "{}", runs.len());
    let now = h.client().now();
    for r in &runs {
        assert!(r.auto_scheduled);
        assert!(r.tags.contains(&"auto-scheduled".to_owned()));
        assert_eq!(
            r.parameters["nums"],
            json!([10]),
            "the schedule's parameters win"
        );
        assert_eq!(r.work_queue_name.as_deref(), Some("default"));
        assert_eq!(
            r.retry.retries, 1,
            "the flow's retry policy travels with the run"
        );
        let at = r.expected_start_time.unwrap();
        assert!(at >= now && at <= now + jiff::SignedDuration::from_mins(70));
        assert!(
            r.idempotency_key
                .as_ref()
                .unwrap()
                .starts_with("scheduled ")
        );
        assert_eq!(r.state.as_ref().unwrap().name(), "Scheduled");
    }
    // Another scheduler (another process) and a redeploy never double a slot.
    assert_eq!(
        Scheduler::new().run_once(h.orion()).await.unwrap().created,
        0
    );
    assert_eq!(scheduler.run_once(h.orion()).await.unwrap().created, 0);
    DeploymentSpec::new("ten-minutes")
        .flow(svc_calculator)
        .parameters(json!({"nums": [1, 2]}))
        .schedule(IntervalSchedule::new(Duration::from_secs(600)).unwrap())
        .apply(h.client())
        .await
        .unwrap();
    Scheduler::new().run_once(h.orion()).await.unwrap();
    let again = runs_of(&h, &d).await;
    let mut slots: Vec<_> = again.iter().map(|r| r.expected_start_time).collect();
    slots.dedup();
    assert_eq!(
        slots.len(),
        again.len(),
        "one run per slot after a redeploy"
    );
    assert_eq!(
        again[0].parameters["nums"],
        json!([1, 2]),
        "the new schedule's runs"
    );

    // As time passes, the scheduler tops the window up.
    tokio::time::advance(Duration::from_secs(1800)).await;
    let topped = scheduler.run_once(h.orion()).await.unwrap();
    assert!(topped.created >= 3, "{topped:?}");

    // Pausing removes the future runs; manual runs stay.
    let manual = due_run(&h, &d).await;
    h.client().pause_deployment(d.id).await.unwrap();
    let left = runs_of(&h, &d).await;
    assert_eq!(left.iter().map(|r| r.id).collect::<Vec<_>>(), [manual.id]);
    assert_eq!(
        Scheduler::new().run_once(h.orion()).await.unwrap().created,
        0,
        "paused"
    );
}

#[tokio::test(start_paused = true)]
async fn backfill_creates_the_past_slots_once() {
    let h = TestHarness::new();
    let d = DeploymentSpec::new("backfilled")
        .flow(svc_calculator)
        .parameters(json!({"nums": [1]}))
        .schedule(hourly())
        .apply(h.client())
        .await
        .unwrap();
    let now = h.client().now();
    let start = now - jiff::SignedDuration::from_hours(5);
    let runs = Scheduler::backfill(h.client(), &d, start, now)
        .await
        .unwrap();
    assert!((5..=6).contains(&runs.len()), "{}", runs.len());
    assert!(
        runs.iter()
            .all(|r| !r.auto_scheduled && r.tags.contains(&"backfill".to_owned()))
    );
    let again = Scheduler::backfill(h.client(), &d, start, now)
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|r| r.id).collect::<Vec<_>>(),
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        "the same runs: a slot is never doubled"
    );
}

#[tokio::test(start_paused = true)]
async fn late_runs_are_marked_late_after_fifteen_seconds() {
    let h = TestHarness::new();
    let d = DeploymentSpec::new("late")
        .flow(svc_calculator)
        .parameters(json!({"nums": [1]}))
        .apply(h.client())
        .await
        .unwrap();
    let run = due_run(&h, &d).await;
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(LateRuns::new().run_once(h.orion()).await.unwrap(), 0);
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(LateRuns::new().run_once(h.orion()).await.unwrap(), 1);
    let stored = h.client().read_flow_run(run.id).await.unwrap().unwrap();
    let state = stored.state.unwrap();
    assert_eq!(
        (state.name(), state.state_type()),
        ("Late", StateType::Scheduled)
    );
    assert_eq!(state.details().scheduled_time, run.expected_start_time);
    assert_eq!(
        LateRuns::new().run_once(h.orion()).await.unwrap(),
        0,
        "once"
    );

    // An agent still takes a Late run.
    let handle = h.orion().serve().agent(Agent::new()).start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    handle.shutdown().await.unwrap();
    assert_eq!(
        history(&h, run.id).await,
        ["Scheduled", "Late", "Pending", "Running", "Completed"]
    );
}

/// Runs ahead are created; then nothing serves for four hours; then serving resumes.
async fn after_downtime(catchup: CatchUp) -> (TestHarness, Vec<FlowRun>) {
    let h = TestHarness::new();
    let d = DeploymentSpec::new("downtime")
        .flow(svc_calculator)
        .parameters(json!({"nums": [2]}))
        .schedule(hourly())
        .catchup(catchup)
        .apply(h.client())
        .await
        .unwrap();
    Scheduler::new().run_once(h.orion()).await.unwrap();
    let ahead = runs_of(&h, &d).await.len();
    assert!(ahead >= 3);
    tokio::time::advance(Duration::from_secs(4 * 3600 + 60)).await;
    let handle = h
        .orion()
        .serve()
        .scheduler(Scheduler::new())
        .agent(Agent::new())
        .start();
    tokio::time::sleep(Duration::from_secs(2)).await;
    handle.shutdown().await.unwrap();
    let runs = runs_of(&h, &d).await;
    (h, runs)
}

fn missed(runs: &[FlowRun], now: jiff::Timestamp) -> Vec<&FlowRun> {
    runs.iter()
        .filter(|r| r.expected_start_time.unwrap() < now - jiff::SignedDuration::from_mins(30))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn catch_up_all_runs_every_missed_slot() {
    let (h, runs) = after_downtime(CatchUp::All).await;
    let missed = missed(&runs, h.client().now());
    assert!(missed.len() >= 3, "{}", missed.len());
    assert!(
        missed
            .iter()
            .all(|r| r.state.as_ref().unwrap().is_completed())
    );
}

#[tokio::test(start_paused = true)]
async fn catch_up_latest_runs_the_most_recent_missed_slot_and_cancels_the_others() {
    let (h, runs) = after_downtime(CatchUp::Latest).await;
    let missed = missed(&runs, h.client().now());
    let (latest, older) = missed.split_last().unwrap();
    assert!(latest.state.as_ref().unwrap().is_completed());
    assert!(!older.is_empty());
    for r in older {
        let state = r.state.as_ref().unwrap();
        assert!(state.is_cancelled(), "{state}");
        assert!(
            state
                .message()
                .unwrap()
                .contains("catch-up policy is 'latest'")
        );
    }
}

#[tokio::test(start_paused = true)]
async fn catch_up_none_cancels_every_missed_slot_and_keeps_the_future() {
    let (h, runs) = after_downtime(CatchUp::None).await;
    let now = h.client().now();
    let missed = missed(&runs, now);
    assert!(missed.len() >= 3);
    for r in &missed {
        let state = r.state.as_ref().unwrap();
        assert!(state.is_cancelled(), "{state}");
        assert!(state.message().unwrap().contains("'none'"));
    }
    let future = runs
        .iter()
        .filter(|r| r.expected_start_time.unwrap() > now)
        .count();
    assert!(future >= 3, "the scheduler keeps creating runs ahead");
}

#[tokio::test(start_paused = true)]
async fn an_agent_runs_due_deployment_runs_with_their_parameters_and_full_history() {
    let h = TestHarness::new();
    let d = DeploymentSpec::new("every-minute")
        .flow(svc_calculator)
        .parameters(json!({"nums": [1, 2, 3, 4]}))
        .schedule(IntervalSchedule::new(Duration::from_secs(60)).unwrap())
        .apply(h.client())
        .await
        .unwrap();
    let handle = h
        .orion()
        .serve()
        .agent(Agent::new().work_queue("default"))
        .start();
    tokio::time::sleep(Duration::from_secs(185)).await;
    handle.shutdown().await.unwrap();
    let done: Vec<FlowRun> = runs_of(&h, &d)
        .await
        .into_iter()
        .filter(|r| r.state.as_ref().unwrap().is_final())
        .collect();
    assert!((3..=4).contains(&done.len()), "{}", done.len());
    for r in &done {
        assert_eq!(
            history(&h, r.id).await,
            ["Scheduled", "Pending", "Running", "Completed"]
        );
        let started = r.start_time.unwrap();
        let lag = started.duration_since(r.expected_start_time.unwrap());
        assert!(
            lag < jiff::SignedDuration::from_millis(50),
            "started {lag:?} late"
        );
        assert!(r.lease.is_none(), "a finished run holds no lease");
        let tasks = h.client().read_task_runs_of(r.id).await.unwrap();
        assert_eq!(tasks.len(), 1);
    }
    let queue = h.client().work_queue_status("default").await.unwrap();
    assert!(
        queue
            .queue
            .last_polled_by
            .as_deref()
            .unwrap()
            .starts_with("agent-")
    );
    assert_eq!(queue.active_runs, 0);
}

#[tokio::test(start_paused = true)]
async fn queues_are_served_in_priority_order_within_their_limits_and_pauses() {
    let h = TestHarness::new();
    let client = h.client();
    let now = client.now();
    client
        .upsert_work_queue(WorkQueue::new("urgent", now).priority(-1))
        .await
        .unwrap();
    client
        .upsert_work_queue(WorkQueue::new("limited", now).concurrency_limit(Some(1)))
        .await
        .unwrap();
    client
        .upsert_work_queue(WorkQueue::new("held", now).paused(true))
        .await
        .unwrap();
    let mut deployments = Vec::new();
    for queue in ["urgent", "limited", "held"] {
        deployments.push(
            DeploymentSpec::new(format!("slow-{queue}"))
                .flow(svc_slow)
                .parameters(json!({"seconds": 10}))
                .work_queue_name(queue)
                .apply(client)
                .await
                .unwrap(),
        );
    }
    let (urgent, limited, held) = (&deployments[0], &deployments[1], &deployments[2]);
    for _ in 0..3 {
        for d in [limited, held, urgent] {
            due_run(&h, d).await;
        }
    }
    // Preview: what each queue would hand out next, in order.
    assert_eq!(
        client
            .preview_work_queue("limited", 10)
            .await
            .unwrap()
            .len(),
        3
    );

    // One claim of 4 from all three: the urgent queue first (3), then one from the limited.
    let request = ClaimRequest::new(
        new_id(),
        "tester",
        vec!["limited".into(), "held".into(), "urgent".into()],
        4,
        Duration::from_secs(30),
    );
    let claimed = client.claim_flow_runs(&request).await.unwrap();
    let queues: Vec<&str> = claimed
        .iter()
        .map(|r| r.work_queue_name.as_deref().unwrap())
        .collect();
    assert_eq!(queues, ["urgent", "urgent", "urgent", "limited"]);
    // The limited queue has its one slot taken: a second claim gets nothing more from it,
    // and the paused queue never hands out anything.
    let more = client.claim_flow_runs(&request).await.unwrap();
    assert!(more.is_empty(), "{more:?}");
    for r in &claimed {
        let lease = r.lease.as_ref().unwrap();
        assert_eq!(lease.owner_name, "tester");
        assert_eq!(r.state.as_ref().unwrap().name(), "Pending");
    }

    // Under an agent, the limited queue never runs two at once, and the held one waits.
    SLOW_MAX.store(0, Ordering::SeqCst);
    let h2 = TestHarness::new();
    let c2 = h2.client();
    c2.upsert_work_queue(WorkQueue::new("limited", c2.now()).concurrency_limit(Some(1)))
        .await
        .unwrap();
    c2.upsert_work_queue(WorkQueue::new("held", c2.now()).paused(true))
        .await
        .unwrap();
    let lim = DeploymentSpec::new("slow")
        .flow(svc_slow)
        .parameters(json!({"seconds": 10}))
        .work_queue_name("limited")
        .apply(c2)
        .await
        .unwrap();
    let paused = DeploymentSpec::new("slow-held")
        .flow(svc_slow)
        .parameters(json!({"seconds": 10}))
        .work_queue_name("held")
        .apply(c2)
        .await
        .unwrap();
    for _ in 0..3 {
        due_run(&h2, &lim).await;
    }
    let held_run = due_run(&h2, &paused).await;
    let handle = h2
        .orion()
        .serve()
        .agent(
            Agent::new()
                .work_queue("limited")
                .work_queue("held")
                .limit(8),
        )
        .start();
    tokio::time::sleep(Duration::from_secs(25)).await;
    let status = c2.work_queue_status("limited").await.unwrap();
    assert_eq!(status.active_runs, 1, "one at a time");
    tokio::time::sleep(Duration::from_secs(10)).await;
    handle.shutdown().await.unwrap();
    assert_eq!(SLOW_MAX.load(Ordering::SeqCst), 1);
    let finished = runs_of(&h2, &lim).await;
    assert!(
        finished
            .iter()
            .all(|r| r.state.as_ref().unwrap().is_completed())
    );
    let held_now = c2.read_flow_run(held_run.id).await.unwrap().unwrap();
    assert!(
        held_now.state.unwrap().is_scheduled(),
        "a paused queue hands out nothing"
    );
    // Not started because paused: it shows in the preview, still waiting.
    assert_eq!(
        c2.preview_work_queue("held", 5).await.unwrap()[0].id,
        held_run.id
    );
    assert!(
        c2.delete_work_queue("default").await.is_err(),
        "default always exists"
    );
}

#[tokio::test(start_paused = true)]
async fn an_agent_claims_only_flows_compiled_into_its_program_and_survives_a_panic() {
    let h = TestHarness::new();
    let foreign = DeploymentSpec::new("elsewhere")
        .flow_name("a flow this program does not have")
        .apply(h.client())
        .await
        .unwrap();
    let panics = DeploymentSpec::new("panics")
        .flow(svc_panics)
        .apply(h.client())
        .await
        .unwrap();
    let fine = DeploymentSpec::new("fine")
        .flow(svc_calculator)
        .parameters(json!({"nums": [5]}))
        .apply(h.client())
        .await
        .unwrap();
    let foreign_run = due_run(&h, &foreign).await;
    let panic_run = due_run(&h, &panics).await;
    let handle = h.orion().serve().agent(Agent::new()).start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // After the panic, the agent still takes new work.
    let fine_run = due_run(&h, &fine).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    handle.shutdown().await.unwrap();
    assert!(
        state_of(&h, foreign_run.id).await.is_scheduled(),
        "left for an agent that has the flow"
    );
    let failed = state_of(&h, panic_run.id).await;
    assert_eq!(
        failed.to_string(),
        "Failed('the flow blew up under an agent')"
    );
    let done = state_of(&h, fine_run.id).await;
    assert!(done.is_completed());
    let data = h.client().read_flow_run_states(fine_run.id).await.unwrap();
    assert_eq!(data.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_run_whose_agent_died_is_crashed_by_the_reaper_and_retried_by_another_agent() {
    let h = TestHarness::new();
    let client = h.client();
    let d = DeploymentSpec::new("retried")
        .flow(svc_calculator)
        .parameters(json!({"nums": [20, 22]}))
        .apply(client)
        .await
        .unwrap();
    let run = due_run(&h, &d).await;
    // A "dead" agent: claims the run, starts it, then is never heard from again.
    let claimed = claim_as_dead_agent(&h, "dead-agent").await;
    let running = start_claimed(&h, &claimed).await;
    // A healthy agent's lease is renewed; this one is not. Before it lapses: nothing.
    tokio::time::advance(Duration::from_secs(20)).await;
    assert!(Reaper::new().run_once(h.orion()).await.unwrap().is_empty());
    tokio::time::advance(Duration::from_secs(15)).await;
    let reaped = Reaper::new().run_once(h.orion()).await.unwrap();
    assert_eq!(reaped.len(), 1);
    let (_, state) = &reaped[0];
    assert_eq!(state.name(), "AwaitingRetry", "the flow has a retry left");
    let message = state.message().unwrap();
    assert!(
        message.contains("agent 'dead-agent' was last heard from at"),
        "{message}"
    );
    assert!(message.starts_with("Crashed: "), "{message}");

    // The stale agent wakes up: its write is fenced off.
    let stale = client
        .propose_state(
            RunRef::flow(run.id, Some(&running), 1, &claimed.retry).fence(),
            State::completed(),
        )
        .await;
    assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");

    // Another agent runs the retry.
    let handle = h.orion().serve().agent(Agent::new()).start();
    tokio::time::sleep(Duration::from_secs(5)).await;
    handle.shutdown().await.unwrap();
    let done = client.read_flow_run(run.id).await.unwrap().unwrap();
    assert!(done.state.as_ref().unwrap().is_completed());
    assert_eq!(done.run_count, 2);
    assert_eq!(
        history(&h, run.id).await,
        [
            "Scheduled",
            "Pending",
            "Running",
            "AwaitingRetry",
            "Pending",
            "Retrying",
            "Completed"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_long_healthy_run_is_never_reaped() {
    let h = TestHarness::new();
    let d = DeploymentSpec::new("long")
        .flow(svc_sleeper)
        .parameters(json!({"seconds": 600}))
        .apply(h.client())
        .await
        .unwrap();
    let run = due_run(&h, &d).await;
    let handle = h
        .orion()
        .serve()
        .reaper(Reaper::new().loop_interval(Duration::from_secs(1)))
        .agent(Agent::new().lease_duration(Duration::from_secs(9)))
        .start();
    tokio::time::sleep(Duration::from_secs(620)).await;
    handle.shutdown().await.unwrap();
    assert_eq!(
        history(&h, run.id).await,
        ["Scheduled", "Pending", "Running", "Completed"],
        "ten minutes under a 9 s lease, renewed: never reaped"
    );
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_run_that_has_not_started_cancels_it_at_once() {
    let h = TestHarness::new();
    let d = DeploymentSpec::new("to-cancel")
        .flow(svc_calculator)
        .parameters(json!({"nums": [1]}))
        .apply(h.client())
        .await
        .unwrap();
    let run = h
        .client()
        .create_flow_run_from_deployment(
            &d,
            Some(
                orion::deployment::DeploymentRunOptions::new()
                    .scheduled_time(h.client().now() + jiff::SignedDuration::from_hours(1)),
            ),
        )
        .await
        .unwrap();
    let state = h.client().cancel_flow_run(run.id).await.unwrap();
    assert!(state.is_cancelled());
    assert_eq!(state.message(), Some("Cancelled before it started."));
    // Cancelling again, or a run that ended, changes nothing.
    assert_eq!(
        h.client().cancel_flow_run(run.id).await.unwrap().id(),
        state.id()
    );
    let missing = h.client().cancel_flow_run(new_id()).await;
    assert!(matches!(missing, Err(Error::NotFound { .. })));
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_running_run_stops_its_body_and_ends_it_cancelled() {
    let h = TestHarness::new();
    let d = DeploymentSpec::new("cancel-me")
        .flow(svc_sleeper)
        .parameters(json!({"seconds": 3600}))
        .work_queue_name("cancels")
        .apply(h.client())
        .await
        .unwrap();
    let run = due_run(&h, &d).await;
    let handle = h
        .orion()
        .serve()
        .agent(Agent::new().work_queue("cancels"))
        .start();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let state = h.client().cancel_flow_run(run.id).await.unwrap();
    assert_eq!(state.state_type(), StateType::Cancelling);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = h.client().work_queue_status("cancels").await.unwrap();
    assert_eq!(status.active_runs, 0, "cancelling never leaves a slot held");
    handle.shutdown().await.unwrap();
    assert_eq!(
        history(&h, run.id).await,
        ["Scheduled", "Pending", "Running", "Cancelling", "Cancelled"]
    );
    let done = h.client().read_flow_run(run.id).await.unwrap().unwrap();
    assert!(
        done.end_time.unwrap()
            < run.expected_start_time.unwrap() + jiff::SignedDuration::from_secs(60)
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelling_run_with_no_live_holder_is_cancelled_by_the_reaper() {
    let h = TestHarness::new();
    let client = h.client();
    let d = DeploymentSpec::new("orphan")
        .flow(svc_calculator)
        .parameters(json!({"nums": [1]}))
        .apply(client)
        .await
        .unwrap();
    let run = due_run(&h, &d).await;
    let claimed = claim_as_dead_agent(&h, "gone").await;
    assert_eq!(claimed.id, run.id);
    start_claimed(&h, &claimed).await;
    assert_eq!(
        client.cancel_flow_run(run.id).await.unwrap().state_type(),
        StateType::Cancelling
    );
    tokio::time::advance(Duration::from_secs(31)).await;
    let reaped = Reaper::new().run_once(h.orion()).await.unwrap();
    assert!(reaped[0].1.is_cancelled(), "{}", reaped[0].1);
    assert!(
        reaped[0]
            .1
            .message()
            .unwrap()
            .contains("no one was left to stop it")
    );
}

#[tokio::test(start_paused = true)]
async fn a_pending_run_whose_agent_died_goes_back_to_its_queue() {
    let h = TestHarness::new();
    let client = h.client();
    let d = DeploymentSpec::new("pending-orphan")
        .flow(svc_calculator)
        .parameters(json!({"nums": [3]}))
        .apply(client)
        .await
        .unwrap();
    let run = due_run(&h, &d).await;
    assert_eq!(claim_as_dead_agent(&h, "gone").await.id, run.id);
    tokio::time::advance(Duration::from_secs(31)).await;
    let reaped = Reaper::new().run_once(h.orion()).await.unwrap();
    assert!(reaped[0].1.is_scheduled());
    let handle = h.orion().serve().agent(Agent::new()).start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    handle.shutdown().await.unwrap();
    assert_eq!(
        history(&h, run.id).await,
        [
            "Scheduled",
            "Pending",
            "Scheduled",
            "Pending",
            "Running",
            "Completed"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_runs_finish_within_the_grace_period_and_hands_back_the_rest() {
    let h = TestHarness::new();
    let d = DeploymentSpec::new("graceful")
        .flow(svc_sleeper)
        .parameters(json!({"seconds": 5}))
        .apply(h.client())
        .await
        .unwrap();
    let long = DeploymentSpec::new("too-long")
        .flow(svc_sleeper)
        .parameters(json!({"seconds": 3600}))
        .apply(h.client())
        .await
        .unwrap();
    let short_run = due_run(&h, &d).await;
    let long_run = due_run(&h, &long).await;
    let (switch, signal) = Shutdown::new();
    let agent = tokio::spawn(
        Agent::new()
            .grace_period(Duration::from_secs(10))
            .run(h.orion().clone(), signal),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    switch.fire();
    agent.await.unwrap().unwrap();
    assert!(
        state_of(&h, short_run.id).await.is_completed(),
        "finished in the grace period"
    );
    let handed_back = state_of(&h, long_run.id).await;
    assert!(handed_back.is_crashed(), "{handed_back}");
    assert!(
        handed_back
            .message()
            .unwrap()
            .contains("shut down before the run finished")
    );
    // Nothing is left Pending or Running.
    let stuck = h
        .client()
        .read_flow_runs(&FlowRunFilter::new().state_types([StateType::Pending, StateType::Running]))
        .await
        .unwrap();
    assert!(stuck.is_empty());
}

#[tokio::test]
async fn the_claim_respects_the_expected_state_and_live_leases_of_others() {
    use orion::store::{Claim, ClaimRun, Lease, MemoryStore, Store};
    let store = MemoryStore::new();
    let flow = store
        .upsert_flow(orion::store::Flow::new("f"))
        .await
        .unwrap();
    let mut run = FlowRun::new(&flow, "r");
    run.work_queue_name = Some("q".into());
    run.state = Some(State::scheduled(jiff::Timestamp::now()));
    let run = store.create_flow_run(run).await.unwrap();
    let now = jiff::Timestamp::now();
    let expected = run.state.as_ref().unwrap().id();
    let lease = |owner| Lease::new(owner, "a", now, Duration::from_secs(30));
    let claim = |owner, expected| {
        Claim::new(
            "q",
            vec![ClaimRun::new(run.id, expected, State::pending())],
            lease(owner),
        )
    };
    let (a, b) = (new_id(), new_id());
    assert!(
        store
            .claim_flow_runs(&claim(a, new_id()))
            .await
            .unwrap()
            .is_empty(),
        "wrong state id"
    );
    assert_eq!(
        store
            .claim_flow_runs(&claim(a, expected))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .claim_flow_runs(&claim(b, expected))
            .await
            .unwrap()
            .is_empty(),
        "taken"
    );
    let renewed = store.renew_leases(b, vec![run.id], now, now).await.unwrap();
    assert!(!renewed[0].held, "only the holder renews");
    let missing = store
        .renew_leases(a, vec![new_id()], now, now)
        .await
        .unwrap();
    assert_eq!(missing[0].state, None);
    let _: Option<StoreError> = None;
}
