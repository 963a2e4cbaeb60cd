//! The store conformance suite: the contract every [`Store`] backend keeps.
//!
//! A backend's tests call [`run_all`] with a fresh store; each check panics with a message
//! naming the broken rule.

use super::{
    Deployment, DeploymentFilter, Flow, FlowRun, FlowRunFilter, LogFilter, LogLevel, LogRecord,
    SetState, Sort, Store, StoreError, TaskRun, TaskRunFilter,
};
use crate::ids::new_id;
use crate::state::{State, StateType};

mod limits;

pub use limits::{
    claims_keep_deployment_limits, claims_take_spares_in_order,
    the_ledger_grants_in_line_and_lapses,
};

/// Runs every check against stores made by `make`, one fresh store per check (`make` is
/// async, as opening a networked store is).
pub async fn run_all<S: Store, F: Fn() -> Fut, Fut: std::future::Future<Output = S>>(make: F) {
    flows_are_unique_by_name(&make().await).await;
    runs_keep_state_history(&make().await).await;
    compare_and_set_refuses_stale_writes(&make().await).await;
    filters_and_sorting(&make().await).await;
    task_runs_and_cache(&make().await).await;
    logs_by_run(&make().await).await;
    missing_records_are_errors(&make().await).await;
    idempotency_keys_return_the_first_run(&make().await).await;
    taken_ids_are_refused(&make().await).await;
    deletes_take_task_runs_states_and_logs_along(&make().await).await;
    deployments_are_upserted_all_or_none(&make().await).await;
    the_ledger_grants_in_line_and_lapses(&make().await).await;
    claims_keep_deployment_limits(&make().await).await;
    claims_take_spares_in_order(&make().await).await;
}

/// Creating a flow twice returns the first record.
pub async fn flows_are_unique_by_name(store: &dyn Store) {
    let first = store.upsert_flow(Flow::new("etl")).await.unwrap();
    let second = store.upsert_flow(Flow::new("etl")).await.unwrap();
    assert_eq!(
        first.id, second.id,
        "upsert_flow must return the existing flow"
    );
    assert_eq!(store.read_flows().await.unwrap().len(), 1);
    assert_eq!(
        store.read_flow_by_name("etl").await.unwrap().map(|f| f.id),
        Some(first.id)
    );
    assert_eq!(
        store.read_flow(first.id).await.unwrap().map(|f| f.name),
        Some("etl".into())
    );
}

/// A run's states are kept in order; its current state is the last; times follow states.
pub async fn runs_keep_state_history(store: &dyn Store) {
    let flow = store.upsert_flow(Flow::new("f")).await.unwrap();
    let mut run = FlowRun::new(&flow, "rare-frog");
    let pending = State::pending();
    run.state = Some(pending.clone());
    let run = store.create_flow_run(run).await.unwrap();
    assert_eq!(run.state.as_ref().map(State::id), Some(pending.id()));
    let running = State::running();
    assert_eq!(
        store
            .set_flow_run_state(run.id, Some(pending.id()), running.clone())
            .await
            .unwrap(),
        SetState::Written
    );
    let done = State::completed().with_message("All states completed.");
    assert_eq!(
        store
            .set_flow_run_state(run.id, Some(running.id()), done.clone())
            .await
            .unwrap(),
        SetState::Written
    );
    let read = store.read_flow_run(run.id).await.unwrap().unwrap();
    assert_eq!(
        read.state.as_ref().map(State::id),
        Some(done.id()),
        "current state is the last written"
    );
    assert_eq!(read.run_count, 1, "entering Running counts a run");
    assert!(read.start_time.is_some() && read.end_time.is_some());
    let types: Vec<StateType> = store
        .read_flow_run_states(run.id)
        .await
        .unwrap()
        .iter()
        .map(State::state_type)
        .collect();
    assert_eq!(
        types,
        [StateType::Pending, StateType::Running, StateType::Completed]
    );
}

/// A write naming a state that is no longer current changes nothing and reports the real one.
pub async fn compare_and_set_refuses_stale_writes(store: &dyn Store) {
    let flow = store.upsert_flow(Flow::new("f")).await.unwrap();
    let mut run = FlowRun::new(&flow, "a");
    let pending = State::pending();
    run.state = Some(pending.clone());
    let run = store.create_flow_run(run).await.unwrap();
    let claim = State::running();
    assert_eq!(
        store
            .set_flow_run_state(run.id, Some(pending.id()), claim.clone())
            .await
            .unwrap(),
        SetState::Written
    );
    let stale = store
        .set_flow_run_state(run.id, Some(pending.id()), State::running())
        .await
        .unwrap();
    assert_eq!(
        stale,
        SetState::Conflict {
            current: Some(claim.clone())
        },
        "a stale compare-and-set must fail"
    );
    let none = store
        .set_flow_run_state(run.id, None, State::running())
        .await
        .unwrap();
    assert!(
        matches!(none, SetState::Conflict { .. }),
        "expecting no state on a run that has one must fail"
    );
    assert_eq!(store.read_flow_run_states(run.id).await.unwrap().len(), 2);
}

/// Flow run filters: by flow, state, tags, time; sorting and paging.
pub async fn filters_and_sorting(store: &dyn Store) {
    let a = store.upsert_flow(Flow::new("a")).await.unwrap();
    let b = store.upsert_flow(Flow::new("b")).await.unwrap();
    let base: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    for i in 0..6i64 {
        let flow = if i % 2 == 0 { &a } else { &b };
        let mut run = FlowRun::new(flow, format!("run-{i}"));
        run.created = base + jiff::SignedDuration::from_secs(i * 60);
        run.tags = if i < 3 { vec!["early".into()] } else { vec![] };
        run.state = Some(if i == 5 {
            State::failed("x")
        } else {
            State::completed()
        });
        store.create_flow_run(run).await.unwrap();
    }
    let names = |runs: Vec<FlowRun>| runs.into_iter().map(|r| r.name).collect::<Vec<_>>();
    let of_a = store
        .read_flow_runs(&FlowRunFilter::new().flow_name("a"))
        .await
        .unwrap();
    assert_eq!(names(of_a), ["run-0", "run-2", "run-4"]);
    let failed = store
        .read_flow_runs(&FlowRunFilter::new().state_types([StateType::Failed]))
        .await
        .unwrap();
    assert_eq!(names(failed), ["run-5"]);
    let early = store
        .read_flow_runs(&FlowRunFilter::new().tags(["early"]))
        .await
        .unwrap();
    assert_eq!(names(early), ["run-0", "run-1", "run-2"]);
    let window = FlowRunFilter::new().created_between(
        Some(base + jiff::SignedDuration::from_secs(60)),
        Some(base + jiff::SignedDuration::from_secs(180)),
    );
    assert_eq!(
        names(store.read_flow_runs(&window).await.unwrap()),
        ["run-1", "run-2"]
    );
    let newest = FlowRunFilter::new()
        .sort(Sort::CreatedDesc)
        .offset(1)
        .limit(2);
    assert_eq!(
        names(store.read_flow_runs(&newest).await.unwrap()),
        ["run-4", "run-3"]
    );
    let all = store.read_flow_runs(&FlowRunFilter::new()).await.unwrap();
    let by_ids = FlowRunFilter::new().ids([all[4].id, all[1].id, new_id()]);
    assert_eq!(
        names(store.read_flow_runs(&by_ids).await.unwrap()),
        ["run-1", "run-4"]
    );
    let by_name = FlowRunFilter::new().name("run-3");
    assert_eq!(
        names(store.read_flow_runs(&by_name).await.unwrap()),
        ["run-3"]
    );
    let both = FlowRunFilter::new().ids([all[1].id]).flow_name("a");
    assert!(store.read_flow_runs(&both).await.unwrap().is_empty());
}

/// Task runs belong to flow runs; Completed states with a cache key and data are cached.
pub async fn task_runs_and_cache(store: &dyn Store) {
    let flow = store.upsert_flow(Flow::new("f")).await.unwrap();
    let parent = store
        .create_flow_run(FlowRun::new(&flow, "p"))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut t = TaskRun::new(format!("t-0000000{i}-{i}"), "t-00000000".into(), i);
        t.flow_run_id = Some(parent.id);
        let pending = State::pending();
        t.state = Some(pending.clone());
        let t = store.create_task_run(t).await.unwrap();
        ids.push((t.id, pending));
    }
    store
        .create_task_run(TaskRun::new("standalone", "s".into(), 0))
        .await
        .unwrap();
    let of_parent = store
        .read_task_runs(&TaskRunFilter::new().flow_run_id(parent.id))
        .await
        .unwrap();
    assert_eq!(of_parent.len(), 3);
    assert_eq!(
        of_parent.iter().map(|t| t.dynamic_key).collect::<Vec<_>>(),
        [0, 1, 2]
    );

    let (id, pending) = &ids[0];
    let mut cached = State::completed().with_data(serde_json::json!({"answer": 42}));
    cached.details_mut().cache_key = Some("key-1".into());
    assert_eq!(
        store
            .set_task_run_state(*id, Some(pending.id()), cached.clone())
            .await
            .unwrap(),
        SetState::Written
    );
    let hit = store
        .read_cached_state("key-1")
        .await
        .unwrap()
        .expect("a cached state");
    assert_eq!(hit.data(), Some(&serde_json::json!({"answer": 42})));
    assert!(store.read_cached_state("other").await.unwrap().is_none());
    let history = store.read_task_run_states(*id).await.unwrap();
    assert_eq!(history.len(), 2);
    let done = store
        .read_task_runs(&TaskRunFilter::new().state_types([StateType::Completed]))
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].cache_key.as_deref(), Some("key-1"));
}

/// Logs are read back per flow run and per task run, oldest first, by level.
pub async fn logs_by_run(store: &dyn Store) {
    let flow = store.upsert_flow(Flow::new("f")).await.unwrap();
    let run = store
        .create_flow_run(FlowRun::new(&flow, "p"))
        .await
        .unwrap();
    let task = crate::ids::new_id();
    let at: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let log = |i: i64, level, task_run_id| LogRecord {
        name: "orion.flow_runs".into(),
        level,
        message: format!("line {i}"),
        timestamp: at + jiff::SignedDuration::from_secs(i),
        flow_run_id: Some(run.id),
        task_run_id,
    };
    store
        .write_logs(vec![
            log(2, LogLevel::Error, Some(task)),
            log(1, LogLevel::Info, None),
        ])
        .await
        .unwrap();
    store
        .write_logs(vec![log(3, LogLevel::Debug, None)])
        .await
        .unwrap();
    let all = store
        .read_logs(&LogFilter::new().flow_run_id(run.id))
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(),
        ["line 1", "line 2", "line 3"]
    );
    let of_task = store
        .read_logs(&LogFilter::new().task_run_id(task))
        .await
        .unwrap();
    assert_eq!(of_task.len(), 1);
    let loud = store
        .read_logs(
            &LogFilter::new()
                .flow_run_id(run.id)
                .min_level(LogLevel::Info),
        )
        .await
        .unwrap();
    assert_eq!(loud.len(), 2);
    // A reader following the log asks for the lines after those it has.
    let after = |offset, limit| {
        let filter = LogFilter::new()
            .flow_run_id(run.id)
            .offset(offset)
            .limit(limit);
        async move {
            let logs = store.read_logs(&filter).await.unwrap();
            logs.into_iter().map(|l| l.message).collect::<Vec<_>>()
        }
    };
    assert_eq!(after(1, 10).await, ["line 2", "line 3"]);
    assert_eq!(after(1, 1).await, ["line 2"]);
    assert!(after(3, 10).await.is_empty());
}

/// Writing to runs that do not exist is an error, not a silent no-op.
pub async fn missing_records_are_errors(store: &dyn Store) {
    let ghost = crate::ids::new_id();
    assert!(matches!(
        store
            .set_flow_run_state(ghost, None, State::running())
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .set_task_run_state(ghost, None, State::running())
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.read_flow_run_states(ghost).await,
        Err(StoreError::NotFound { .. })
    ));
    let flow = Flow::new("never-stored");
    assert!(matches!(
        store.create_flow_run(FlowRun::new(&flow, "x")).await,
        Err(StoreError::NotFound { .. })
    ));
    let mut orphan = TaskRun::new("t", "t".into(), 0);
    orphan.flow_run_id = Some(ghost);
    assert!(matches!(
        store.create_task_run(orphan).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.read_flow_run(ghost).await.unwrap().is_none());
}

/// A second run of the same flow with the same idempotency key is the first run.
pub async fn idempotency_keys_return_the_first_run(store: &dyn Store) {
    let etl = store.upsert_flow(Flow::new("etl")).await.unwrap();
    let other = store.upsert_flow(Flow::new("other")).await.unwrap();
    let mut first = FlowRun::new(&etl, "first");
    first.idempotency_key = Some("slot 1".into());
    first.state = Some(State::scheduled(jiff::Timestamp::UNIX_EPOCH));
    let first = store.create_flow_run(first).await.unwrap();
    let mut again = FlowRun::new(&etl, "again");
    again.idempotency_key = Some("slot 1".into());
    let again = store.create_flow_run(again).await.unwrap();
    assert_eq!(again.id, first.id, "the same key must give the first run");
    assert_eq!(again.name, "first");
    let mut elsewhere = FlowRun::new(&other, "elsewhere");
    elsewhere.idempotency_key = Some("slot 1".into());
    let elsewhere = store.create_flow_run(elsewhere).await.unwrap();
    assert_ne!(elsewhere.id, first.id, "keys are per flow");
    let mut unkeyed = FlowRun::new(&etl, "unkeyed");
    unkeyed.idempotency_key = None;
    store.create_flow_run(unkeyed).await.unwrap();
    assert_eq!(
        store
            .read_flow_runs(&FlowRunFilter::new())
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(store.read_flow_run_states(first.id).await.unwrap().len(), 1);
}

/// A record whose id is taken is refused, and the stored one is left as it was.
pub async fn taken_ids_are_refused(store: &dyn Store) {
    let flow = store.upsert_flow(Flow::new("f")).await.unwrap();
    let run = store
        .create_flow_run(FlowRun::new(&flow, "original"))
        .await
        .unwrap();
    let mut twin = FlowRun::new(&flow, "twin");
    twin.id = run.id;
    assert!(matches!(
        store.create_flow_run(twin).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let mut task = TaskRun::new("task", "task".into(), 0);
    task.flow_run_id = Some(run.id);
    task.state = Some(State::pending());
    let task = store.create_task_run(task).await.unwrap();
    let mut copy = TaskRun::new("copy", "task".into(), 1);
    copy.id = task.id;
    copy.flow_run_id = Some(run.id);
    assert!(matches!(
        store.create_task_run(copy).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    // Also once it has finished.
    let done = store
        .set_task_run_state(
            task.id,
            task.state.as_ref().map(State::id),
            State::completed(),
        )
        .await
        .unwrap();
    assert_eq!(done, SetState::Written);
    store.flush().await.unwrap();
    let mut late = TaskRun::new("late copy", "task".into(), 2);
    late.id = task.id;
    late.flow_run_id = Some(run.id);
    assert!(matches!(
        store.create_task_run(late).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let stored = store.read_task_run(task.id).await.unwrap().unwrap();
    assert_eq!(stored.name, "task");
    assert_eq!(store.read_task_run_states(task.id).await.unwrap().len(), 2);
    assert_eq!(
        store.read_flow_run(run.id).await.unwrap().map(|r| r.name),
        Some("original".into())
    );
}

/// Deleting flow runs deletes their task runs, state histories and logs, and nothing else.
pub async fn deletes_take_task_runs_states_and_logs_along(store: &dyn Store) {
    let flow = store.upsert_flow(Flow::new("f")).await.unwrap();
    let mut runs = Vec::new();
    for name in ["doomed", "kept"] {
        let mut run = FlowRun::new(&flow, name);
        run.tags = vec![name.to_owned()];
        run.state = Some(State::running());
        let run = store.create_flow_run(run).await.unwrap();
        let mut task = TaskRun::new(format!("{name}-task"), "t".into(), 0);
        task.flow_run_id = Some(run.id);
        task.state = Some(State::pending());
        let task = store.create_task_run(task).await.unwrap();
        let log = |message: &str, task_run_id| LogRecord {
            name: "test".into(),
            level: LogLevel::Info,
            message: message.into(),
            timestamp: jiff::Timestamp::now(),
            flow_run_id: Some(run.id),
            task_run_id,
        };
        store
            .write_logs(vec![
                log("flow line", None),
                log("task line", Some(task.id)),
            ])
            .await
            .unwrap();
        runs.push((run, task));
    }
    let deleted = store
        .delete_flow_runs(&FlowRunFilter::new().tags(["doomed"]))
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let (doomed, doomed_task) = &runs[0];
    assert!(store.read_flow_run(doomed.id).await.unwrap().is_none());
    assert!(matches!(
        store.read_flow_run_states(doomed.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.read_task_run(doomed_task.id).await.unwrap().is_none());
    assert!(matches!(
        store.read_task_run_states(doomed_task.id).await,
        Err(StoreError::NotFound { .. })
    ));
    let doomed_logs = store
        .read_logs(&LogFilter::new().flow_run_id(doomed.id))
        .await
        .unwrap();
    assert!(doomed_logs.is_empty(), "{doomed_logs:?}");
    let (kept, kept_task) = &runs[1];
    assert!(store.read_flow_run(kept.id).await.unwrap().is_some());
    assert!(store.read_task_run(kept_task.id).await.unwrap().is_some());
    assert_eq!(
        store
            .read_logs(&LogFilter::new().flow_run_id(kept.id))
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store
            .read_task_runs(&TaskRunFilter::new())
            .await
            .unwrap()
            .len(),
        1
    );
}

pub(crate) fn deployment(flow: &Flow, name: &str) -> Deployment {
    let now = jiff::Timestamp::now();
    Deployment {
        id: crate::ids::new_id(),
        name: name.into(),
        flow_id: flow.id,
        flow_name: flow.name.clone(),
        description: None,
        version: None,
        tags: vec!["nightly".into()],
        parameters: Default::default(),
        schedules: Vec::new(),
        work_queue_name: "default".into(),
        paused: false,
        catchup: Default::default(),
        concurrency: None,
        retry: Default::default(),
        parameter_types: Vec::new(),
        created: now,
        updated: now,
    }
}

/// Deployments: unique per flow and name (an upsert keeps id and creation time), read by id,
/// name and filter, stored all or none, deleted without their runs.
pub async fn deployments_are_upserted_all_or_none(store: &dyn Store) {
    let etl = store.upsert_flow(Flow::new("etl")).await.unwrap();
    let first = store
        .upsert_deployments(vec![
            deployment(&etl, "nightly"),
            deployment(&etl, "hourly"),
        ])
        .await
        .unwrap();
    let mut changed = deployment(&etl, "nightly");
    changed.description = Some("changed".into());
    let updated = store.upsert_deployments(vec![changed]).await.unwrap();
    assert_eq!(updated[0].id, first[0].id, "an upsert keeps the id");
    assert_eq!(
        updated[0].created, first[0].created,
        "and the creation time"
    );
    let read = store.read_deployment(first[0].id).await.unwrap().unwrap();
    assert_eq!(read.description.as_deref(), Some("changed"));
    let by_name = store
        .read_deployment_by_name("etl", "hourly")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_name.id, first[1].id);
    let all = store
        .read_deployments(&DeploymentFilter::new().flow_name("etl"))
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        ["hourly", "nightly"]
    );

    // One deployment of a flow that does not exist: none of the batch is stored.
    let ghost = Flow::new("ghost");
    let batch = vec![deployment(&etl, "weekly"), deployment(&ghost, "never")];
    assert!(matches!(
        store.upsert_deployments(batch).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(
        store
            .read_deployment_by_name("etl", "weekly")
            .await
            .unwrap()
            .is_none()
    );

    let mut run = FlowRun::new(&etl, "from-deployment");
    run.deployment_id = Some(first[1].id);
    let run = store.create_flow_run(run).await.unwrap();
    assert!(store.delete_deployment(first[1].id).await.unwrap());
    assert!(!store.delete_deployment(first[1].id).await.unwrap());
    assert!(store.read_deployment(first[1].id).await.unwrap().is_none());
    assert!(
        store.read_flow_run(run.id).await.unwrap().is_some(),
        "runs stay"
    );
}
