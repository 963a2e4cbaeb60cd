//! The SQLite and PostgreSQL stores' queued writes: a live flow run's task-run writes (and
//! SQLite's log lines) are answered before they commit, and must still be read back, ordered,
//! checked against the stored row, reported when they fail, and stored when the flow call
//! returns.

use std::sync::Arc;

use orion::prelude::*;
use orion::store::{
    FlowRun, FlowRunFilter, LogFilter, PostgresStore, SetState, SqliteStore, Store, TaskRun,
    TaskRunFilter,
};

use crate::temp::temp_db;

/// A flow run in Running, created through `store` (which then treats it as live).
async fn running_flow_run(store: &dyn Store) -> FlowRun {
    let flow = store
        .upsert_flow(orion::store::Flow::new("queued"))
        .await
        .unwrap();
    let mut run = FlowRun::new(&flow, "queued-run");
    run.state = Some(State::running());
    store.create_flow_run(run).await.unwrap()
}

fn task_run_of(flow_run: &FlowRun, name: &str) -> TaskRun {
    let mut run = TaskRun::new(name, Arc::from("queued-task"), 0);
    run.flow_run_id = Some(flow_run.id);
    run.state = Some(State::pending());
    run
}

#[task]
async fn double(x: u64) -> u64 {
    x * 2
}

#[flow(name = "queue-mix")]
async fn queue_mix(n: u64) -> u64 {
    let mut total = 0;
    for i in 0..n {
        total += double(i).await;
    }
    total
        + orion::gather(orion::map(0..n, double))
            .await
            .iter()
            .sum::<u64>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_call_returns_with_every_state_and_log_visible_to_another_connection() {
    let path = temp_db("visible");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let orion = Orion::with_store(store.clone());
    assert_eq!(queue_mix(60).on(&orion).await, 2 * 2 * (0..60).sum::<u64>());
    assert_eq!(
        store.queued_writes(),
        0,
        "the flow call returned before its writes"
    );

    // A second store: its own connections, so it sees only what was committed.
    let other = SqliteStore::open(&path).unwrap();
    let runs = other.read_task_runs(&TaskRunFilter::new()).await.unwrap();
    assert_eq!(runs.len(), 120);
    for run in &runs {
        assert!(run.state.as_ref().unwrap().is_completed(), "{run:?}");
        let kinds: Vec<_> = other
            .read_task_run_states(run.id)
            .await
            .unwrap()
            .iter()
            .map(State::state_type)
            .collect();
        assert_eq!(
            kinds,
            [StateType::Pending, StateType::Running, StateType::Completed]
        );
        assert_eq!(run.run_count, 1);
        assert!(run.start_time.is_some() && run.end_time.is_some());
    }
    let flow_run = &other.read_flow_runs(&FlowRunFilter::new()).await.unwrap()[0];
    let logs = other
        .read_logs(&LogFilter::new().flow_run_id(flow_run.id))
        .await
        .unwrap();
    // Two lines per task run, the flow run's last line included.
    assert!(logs.len() >= 240, "{} log lines", logs.len());
    assert!(
        logs.last()
            .unwrap()
            .message
            .starts_with("Finished in state Completed")
    );
}

/// Two stores on one new SQLite file, or (when a test server is configured) on one new
/// PostgreSQL schema: the backends whose task-run writes are queued.
async fn pairs(tag: &str) -> Vec<(Box<dyn Store>, Box<dyn Store>)> {
    let path = temp_db(tag);
    let mut pairs: Vec<(Box<dyn Store>, Box<dyn Store>)> = vec![(
        Box::new(SqliteStore::open(&path).unwrap()),
        Box::new(SqliteStore::open(&path).unwrap()),
    )];
    if let Some(server) = crate::pg::server() {
        let url = crate::pg::fresh_url(&server, tag).await;
        pairs.push((
            Box::new(PostgresStore::connect(&url).await.unwrap()),
            Box::new(PostgresStore::connect(&url).await.unwrap()),
        ));
    }
    pairs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_write_is_read_back_at_once() {
    for (store, _) in pairs("read-back").await {
        a_queued_write_is_read_back_at_once_in(&*store).await;
    }
}

async fn a_queued_write_is_read_back_at_once_in(store: &dyn Store) {
    let flow_run = running_flow_run(store).await;
    let created = store
        .create_task_run(task_run_of(&flow_run, "read-back"))
        .await
        .unwrap();
    let pending = created.state.clone().unwrap();
    let running = State::running();
    let written = store
        .set_task_run_state(created.id, Some(pending.id()), running.clone())
        .await
        .unwrap();
    assert_eq!(written, SetState::Written);
    // The reader waits for the queue; the record and its history are there.
    let read = store.read_task_run(created.id).await.unwrap().unwrap();
    assert_eq!(read.state.as_ref().map(State::id), Some(running.id()));
    assert_eq!(read.run_count, 1);
    let history = store.read_task_run_states(created.id).await.unwrap();
    assert_eq!(
        history.iter().map(State::id).collect::<Vec<_>>(),
        [pending.id(), running.id()]
    );
    // A stale guess is refused by the live record, before anything is queued.
    let stale = store
        .set_task_run_state(created.id, Some(pending.id()), State::completed())
        .await
        .unwrap();
    assert_eq!(
        stale,
        SetState::Conflict {
            current: Some(read.state.clone().unwrap())
        }
    );
    // A duplicate id is refused while the first is still queued.
    let mut again = task_run_of(&flow_run, "again");
    again.id = created.id;
    let err = store.create_task_run(again).await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_run_moved_by_another_connection_is_not_overwritten() {
    for (ours, theirs) in pairs("moved").await {
        moved_by_another(&*ours, &*theirs).await;
    }
}

async fn moved_by_another(ours: &dyn Store, theirs: &dyn Store) {
    let flow_run = running_flow_run(ours).await;
    let created = ours
        .create_task_run(task_run_of(&flow_run, "moved"))
        .await
        .unwrap();
    let pending = created.state.clone().unwrap();
    ours.flush().await.unwrap();

    // Another process cancels it.
    let cancelled = State::cancelled("stopped from elsewhere");
    let theirs_written = theirs
        .set_task_run_state(created.id, Some(pending.id()), cancelled.clone())
        .await
        .unwrap();
    assert_eq!(theirs_written, SetState::Written);

    // Our live record did not see that: the write is answered, then refused by the file.
    let ours_written = ours
        .set_task_run_state(created.id, Some(pending.id()), State::running())
        .await
        .unwrap();
    assert_eq!(ours_written, SetState::Written);
    ours.flush().await.unwrap();
    let kinds: Vec<_> = ours
        .read_task_run_states(created.id)
        .await
        .unwrap()
        .iter()
        .map(State::state_type)
        .collect();
    assert_eq!(kinds, [StateType::Pending, StateType::Cancelled]);

    // The run is no longer live here: the next write meets the real state.
    let next = ours
        .set_task_run_state(created.id, Some(pending.id()), State::completed())
        .await
        .unwrap();
    assert_eq!(
        next,
        SetState::Conflict {
            current: Some(cancelled)
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_write_that_fails_is_reported_once_by_the_next_flush() {
    for (ours, theirs) in pairs("fails").await {
        a_failed_write_is_reported(&*ours, &*theirs).await;
    }
}

async fn a_failed_write_is_reported(ours: &dyn Store, theirs: &dyn Store) {
    let flow_run = running_flow_run(ours).await;
    // Another process deletes the flow run our store believes live.
    assert_eq!(
        theirs
            .delete_flow_runs(&FlowRunFilter::new())
            .await
            .unwrap(),
        1
    );
    let orphan = task_run_of(&flow_run, "orphan");
    let orphan_id = orphan.id;
    ours.create_task_run(orphan).await.unwrap();
    let err = ours.flush().await.unwrap_err().to_string();
    assert!(err.contains(&orphan_id.to_string()), "{err}");
    assert!(err.contains("not found"), "{err}");
    ours.flush().await.unwrap();
    assert!(ours.read_task_run(orphan_id).await.unwrap().is_none());
    // Nothing half-written either.
    assert!(
        ours.read_task_runs(&TaskRunFilter::new())
            .await
            .unwrap()
            .is_empty()
    );
}

#[task]
async fn delete_own_flow_run(path: String) {
    // Another process removes the flow run while it runs.
    let flow_run = orion::task_run_context().unwrap().flow_run_id().unwrap();
    let other = SqliteStore::open(&path).unwrap();
    let all = other.read_flow_runs(&FlowRunFilter::new()).await.unwrap();
    assert!(all.iter().any(|r| r.id == flow_run));
    assert_eq!(
        other.delete_flow_runs(&FlowRunFilter::new()).await.unwrap(),
        1
    );
}

#[flow(name = "loses-its-record")]
async fn loses_its_record(path: String) -> u64 {
    delete_own_flow_run(path).await;
    double(1).await + double(2).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_whose_record_vanishes_mid_run_ends_crashed_with_the_reason() {
    let path = temp_db("vanishes");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let orion = Orion::with_store(store.clone());
    let state = loses_its_record(path.display().to_string())
        .on(&orion)
        .return_state()
        .await;
    assert!(!state.is_completed(), "{state}");
    let message = state.message().unwrap_or_default().to_owned();
    assert!(
        message.contains("not found") || message.contains("not stored"),
        "{message}"
    );
    // Nothing is left half-written or queued, and the store still works.
    assert_eq!(store.queued_writes(), 0);
    store.flush().await.unwrap();
    assert!(
        store
            .read_task_runs(&TaskRunFilter::new())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(queue_mix(3).on(&orion).await, 2 * 2 * 3);
}
