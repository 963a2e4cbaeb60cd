use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use orion::prelude::*;
use orion::testing::TestHarness;

/// Counts task bodies running at once and remembers the most seen, and the order they
/// entered in.
#[derive(Default)]
pub(crate) struct Gauge {
    now: AtomicUsize,
    pub(crate) max: AtomicUsize,
    pub(crate) order: Mutex<Vec<u32>>,
}

impl Gauge {
    pub(crate) fn enter(&self, id: u32) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        self.order.lock().unwrap().push(id);
    }
    pub(crate) fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
    /// The most bodies seen running at once.
    pub(crate) fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

#[task]
async fn sleep_then_double(id: u32, gauge: Arc<Gauge>) -> u32 {
    gauge.enter(id);
    tokio::time::sleep(Duration::from_secs(10)).await;
    gauge.leave();
    id * 2
}

#[flow(task_runner = TaskRunner::concurrent())]
async fn concurrent_ten() -> (Vec<u32>, usize) {
    let gauge = Arc::new(Gauge::default());
    let values = orion::gather(orion::map(0..10, |i| sleep_then_double(i, gauge.clone()))).await;
    (values, gauge.max.load(Ordering::SeqCst))
}

#[flow(task_runner = TaskRunner::concurrent().limit(2))]
async fn limited_ten() -> (Vec<u32>, usize) {
    let gauge = Arc::new(Gauge::default());
    let values = orion::gather(orion::map(0..10, |i| sleep_then_double(i, gauge.clone()))).await;
    (values, gauge.max.load(Ordering::SeqCst))
}

#[flow(task_runner = TaskRunner::sequential())]
async fn sequential_five() -> (Vec<u32>, usize, Vec<u32>) {
    let gauge = Arc::new(Gauge::default());
    let futures: Vec<_> = (0..5)
        .map(|i| sleep_then_double(i, gauge.clone()).submit())
        .collect();
    let values = orion::gather(futures).await;
    let order = gauge.order.lock().unwrap().clone();
    (values, gauge.max.load(Ordering::SeqCst), order)
}

#[tokio::test(start_paused = true)]
async fn the_concurrent_runner_runs_submitted_tasks_together() {
    let started = tokio::time::Instant::now();
    let report = TestHarness::new().run(concurrent_ten()).await.unwrap();
    let (values, max) = report.state.into_data().unwrap();
    assert_eq!(
        values,
        (0..10).map(|i| i * 2).collect::<Vec<_>>(),
        "gather keeps submission order"
    );
    assert_eq!(max, 10);
    assert!(
        started.elapsed() < Duration::from_secs(11),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.task_runs.len(), 10);
    let mut names: Vec<String> = report
        .task_runs
        .iter()
        .map(|t| t.name.rsplit('-').next().unwrap().to_owned())
        .collect();
    names.sort_by_key(|n| n.parse::<u32>().unwrap());
    assert_eq!(names, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_concurrency_limit_caps_running_tasks() {
    let started = tokio::time::Instant::now();
    let report = TestHarness::new().run(limited_ten()).await.unwrap();
    let (values, max) = report.state.into_data().unwrap();
    assert_eq!(values.len(), 10);
    assert_eq!(max, 2);
    assert!(
        started.elapsed() >= Duration::from_secs(50),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn the_sequential_runner_runs_one_at_a_time_in_submission_order() {
    let report = TestHarness::new().run(sequential_five()).await.unwrap();
    let (values, max, order) = report.state.into_data().unwrap();
    assert_eq!(values, [0, 2, 4, 6, 8]);
    assert_eq!(max, 1);
    assert_eq!(order, [0, 1, 2, 3, 4]);
    assert_eq!(
        report.flow_run.task_runner.as_deref(),
        Some("SequentialTaskRunner")
    );
}

/// Blocks until `want` bodies are inside at once (or 10 s pass); returns how many were.
#[task]
fn rendezvous(meeting: Arc<(Mutex<usize>, Condvar)>, want: usize) -> usize {
    let (lock, cvar) = &*meeting;
    let mut inside = lock.lock().unwrap();
    *inside += 1;
    cvar.notify_all();
    let (inside, _) = cvar
        .wait_timeout_while(inside, Duration::from_secs(10), |n| *n < want)
        .unwrap();
    *inside
}

#[flow(task_runner = TaskRunner::parallel().limit(2))]
async fn parallel_pair() -> Vec<usize> {
    let meeting = Arc::new((Mutex::new(0), Condvar::new()));
    orion::gather(orion::map(0..2, |_| rendezvous(meeting.clone(), 2))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parallel_runner_gives_each_task_a_thread() {
    let report = TestHarness::new().run(parallel_pair()).await.unwrap();
    assert_eq!(
        report.state.into_data().unwrap(),
        [2, 2],
        "both bodies were inside at once"
    );
}

#[task]
async fn fails_when(flag: bool) -> Result<u8, String> {
    if flag {
        Err("submitted failure".into())
    } else {
        Ok(1)
    }
}

#[flow]
async fn fire_and_forget() {
    // Submitted and never awaited: the flow still waits for them and counts them.
    let _ = fails_when(false).submit();
    let _ = fails_when(true).submit();
    let _ = fails_when(false).submit();
}

#[tokio::test]
async fn a_flow_waits_for_submitted_tasks_and_counts_their_failures() {
    let report = TestHarness::new().run(fire_and_forget()).await.unwrap();
    assert_eq!(report.state.to_string(), "Failed('1/3 states failed.')");
    assert!(
        report
            .task_runs
            .iter()
            .all(|t| t.state.as_ref().unwrap().is_final())
    );
}

#[task]
async fn panics_in_submission() -> u8 {
    panic!("submitted panic")
}

#[flow]
async fn inspects_futures() -> (String, String, String) {
    let mut ok = fails_when(false).submit();
    let waited = ok.wait().await.to_string();
    let failed = fails_when(true).submit().state().await;
    let panicked = panics_in_submission().submit().state().await;
    (waited, failed.to_string(), panicked.to_string())
}

#[tokio::test]
async fn task_futures_give_states_without_panicking() {
    let report = TestHarness::new().run(inspects_futures()).await.unwrap();
    assert_eq!(report.state.to_string(), "Completed(None)");
    let (waited, failed, panicked) = report.state.into_data().unwrap();
    assert_eq!(waited, "Completed(None)");
    assert_eq!(failed, "Failed('submitted failure')");
    assert_eq!(panicked, "Failed('submitted panic')");
}

#[flow]
async fn awaits_submitted_panic() -> u8 {
    panics_in_submission().submit().await
}

#[tokio::test]
async fn awaiting_a_submitted_panicking_task_re_raises_it() {
    let report = TestHarness::new()
        .run(awaits_submitted_panic())
        .await
        .unwrap();
    assert_eq!(report.state.to_string(), "Failed('submitted panic')");
}

#[tokio::test]
async fn tasks_submitted_outside_a_flow_run_as_tokio_tasks() {
    let harness = TestHarness::new();
    let values = harness
        .scope(async { orion::gather(orion::map(1..=3u8, |x| fails_when(x == 0))).await })
        .await;
    assert_eq!(values, [Ok(1), Ok(1), Ok(1)]);
    // They are recorded in the scope's runtime, not the process-wide default.
    let runs = harness
        .client()
        .read_task_runs(&orion::store::TaskRunFilter::new())
        .await
        .unwrap();
    assert_eq!(runs.len(), 3);
}

#[flow(timeout_seconds = 5)]
async fn times_out_with_children() {
    let futures = orion::map(0..3, sleep_forever);
    drop(futures);
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[task]
async fn sleep_forever(i: u32) -> u32 {
    tokio::time::sleep(Duration::from_secs(86_400)).await;
    i
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_flow_cancels_its_running_children() {
    let started = tokio::time::Instant::now();
    let report = TestHarness::new()
        .run(times_out_with_children())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.state.name(), "TimedOut");
    assert_eq!(report.task_runs.len(), 3);
    for t in &report.task_runs {
        assert!(
            t.state.as_ref().unwrap().is_cancelled(),
            "{}",
            t.state.as_ref().unwrap()
        );
    }
}
