use orion::store::{MemoryStore, SqliteStore, Store};

use crate::temp::temp_db;

#[tokio::test]
async fn the_memory_store_passes_the_conformance_suite() {
    orion::store::testing::run_all(|| async { MemoryStore::new() }).await;
}

#[tokio::test]
async fn the_sqlite_store_passes_the_conformance_suite() {
    orion::store::testing::run_all(|| async { SqliteStore::open(temp_db("conformance")).unwrap() })
        .await;
}

#[tokio::test]
async fn a_sqlite_file_keeps_everything_across_reopening() {
    use orion::prelude::*;
    let path = temp_db("reopen");
    let orion = Orion::with_store(std::sync::Arc::new(SqliteStore::open(&path).unwrap()));
    let report = orion::registry::require("registry-sum")
        .unwrap()
        .run(
            &orion,
            serde_json::json!({"nums": [1, 2], "origin": {"x": 0, "y": 0}}),
        )
        .await
        .unwrap();
    assert!(report.is_completed());
    drop(orion);
    let store = SqliteStore::open(&path).unwrap();
    let runs = store.read_flow_runs(&Default::default()).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].state.as_ref().unwrap().is_completed());
    let states = store.read_flow_run_states(runs[0].id).await.unwrap();
    assert_eq!(states.len(), 3);
    let logs = store
        .read_logs(&orion::store::LogFilter::new().flow_run_id(runs[0].id))
        .await
        .unwrap();
    assert!(
        logs.iter()
            .any(|l| l.message.starts_with("Finished in state Completed"))
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a new database is readable by its owner only");
    }
}

#[test]
fn bad_files_are_clear_errors_and_are_not_altered() {
    let path = temp_db("garbage");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let garbage = b"this is not a database, just some text that someone saved here".repeat(100);
    std::fs::write(&path, &garbage).unwrap();
    let err = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(err.contains("not") && err.contains("database"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        garbage,
        "the file was not changed"
    );

    // A database from a newer orion is refused, never migrated.
    let newer = temp_db("newer");
    drop(SqliteStore::open(&newer).unwrap());
    {
        let conn = rusqlite_free_bump(&newer);
        assert!(conn);
    }
    let err = SqliteStore::open(&newer).unwrap_err().to_string();
    assert!(err.contains("newer orion"), "{err}");
}

/// Sets the schema version past this build's, through SQLite's own tool-less route: the
/// user_version lives at byte offset 60 of the header (big-endian).
fn rusqlite_free_bump(path: &std::path::Path) -> bool {
    // Make sure the WAL is checkpointed into the main file first: open and close cleanly.
    let mut bytes = std::fs::read(path).unwrap();
    bytes[60..64].copy_from_slice(&999u32.to_be_bytes());
    std::fs::write(path, bytes).is_ok()
}

#[tokio::test]
async fn runtimes_open_from_urls() {
    let path = temp_db("url");
    let orion = orion::Orion::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(orion.client().read_flows().await.unwrap().is_empty());
    assert!(path.exists());
    assert!(orion::Orion::open("memory://").await.is_ok());
    let normal = temp_db("normal");
    assert!(
        orion::Orion::open(&format!("sqlite://{}?synchronous=normal", normal.display()))
            .await
            .is_ok()
    );
    assert!(normal.exists());
    for bad in [
        "postgres://x",
        "sqlite://",
        "nonsense",
        "sqlite:///tmp/x.db?fast=yes",
    ] {
        let err = orion::Orion::open(bad).await.unwrap_err().to_string();
        assert!(err.contains("database URL"), "{bad}: {err}");
    }
}

#[tokio::test]
async fn a_truncated_file_gives_errors_not_panics() {
    let path = temp_db("truncated");
    {
        let orion = orion::Orion::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        for i in 0..50 {
            orion
                .client()
                .create_flow(&format!("flow-{i}"))
                .await
                .unwrap();
        }
    }
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    // Opening may succeed (the header is intact); reading must then fail cleanly.
    if let Ok(store) = SqliteStore::open(&path) {
        let read = store.read_flows().await;
        let check = store.integrity_check();
        assert!(
            read.is_err() || check.map(|c| c != "ok").unwrap_or(true),
            "a cut file cannot look whole"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn old_finished_runs_are_deleted_by_the_retention_helper() {
    use orion::prelude::*;
    #[flow(name = "retention-flow")]
    async fn retention_flow() {}
    let harness = orion::testing::TestHarness::new();
    harness.run(retention_flow()).await.unwrap();
    tokio::time::advance(std::time::Duration::from_secs(7200)).await;
    harness.run(retention_flow()).await.unwrap();
    // A run still waiting is kept whatever its age.
    let flow = harness
        .client()
        .read_flow_by_name("retention-flow")
        .await
        .unwrap()
        .unwrap();
    let mut waiting = orion::store::FlowRun::new(&flow, "waiting");
    waiting.state = Some(State::scheduled(jiff::Timestamp::now()));
    waiting.created = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(10);
    harness.client().create_flow_run(waiting).await.unwrap();
    let deleted = harness
        .client()
        .delete_runs_older_than(std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let left = harness
        .client()
        .read_flow_runs(&Default::default())
        .await
        .unwrap();
    assert_eq!(left.len(), 2);
    assert!(left.iter().any(|r| r.name == "waiting"));
}

/// The same records in every store, and filters of every kind: the file and database stores,
/// which narrow rows through their indexes (PostgreSQL also sorts and pages), must answer
/// exactly as the memory store does. PostgreSQL joins in when a test server is configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_answers_every_filter_alike() {
    use orion::store::{Flow, FlowRun, FlowRunFilter, Sort, TaskRun, TaskRunFilter};
    use orion::{State, StateType};
    use std::sync::Arc;

    let memory = MemoryStore::new();
    let mut others: Vec<(&str, Box<dyn Store>)> = vec![(
        "sqlite",
        Box::new(SqliteStore::open(temp_db("alike")).unwrap()),
    )];
    if let Some(server) = crate::pg::server() {
        let url = crate::pg::fresh_url(&server, "alike").await;
        let store = orion::store::PostgresStore::connect(&url).await.unwrap();
        others.push(("postgres", Box::new(store)));
    }
    let stores: Vec<&dyn Store> = std::iter::once(&memory as &dyn Store)
        .chain(others.iter().map(|(_, s)| &**s))
        .collect();
    let base: jiff::Timestamp = "2026-03-29T00:30:00Z".parse().unwrap();
    let at = |minutes: i64| base + jiff::SignedDuration::from_secs(minutes * 60);
    let flows = [Flow::new("etl"), Flow::new("report"), Flow::new("sync")];
    let deployment = uuid::Uuid::from_u128(7);
    let parent = uuid::Uuid::from_u128(9);
    let mut runs = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..48i64 {
        let flow = &flows[(i % 3) as usize];
        let mut run = FlowRun::new(flow, format!("run-{i:02}"));
        run.created = at(i) + jiff::SignedDuration::from_nanos(i * 1_000 + 1);
        run.tags = match i % 4 {
            0 => vec!["nightly".into()],
            1 => vec!["nightly".into(), "eu".into()],
            2 => vec!["eu".into()],
            _ => vec![],
        };
        run.deployment_id = (i % 5 == 0).then_some(deployment);
        run.auto_scheduled = i % 5 == 0 && i % 2 == 0;
        run.parent_task_run_id = (i % 7 == 0).then_some(parent);
        run.work_queue_name = Some(["default", "gpu"][(i % 2) as usize].into());
        run.expected_start_time = (i % 3 != 2).then(|| at(30 + i));
        run.state = Some(match i % 6 {
            0 => State::scheduled(at(30 + i)),
            1 => State::late(at(i)),
            2 => State::running(),
            3 => State::completed(),
            4 => State::failed("boom"),
            _ => State::pending(),
        });
        runs.push(run);
    }
    for &store in &stores {
        for flow in &flows {
            store.upsert_flow(flow.clone()).await.unwrap();
        }
        for run in &runs {
            store.create_flow_run(run.clone()).await.unwrap();
        }
    }
    for (i, run) in runs.iter().enumerate().take(12) {
        for j in 0..3u32 {
            let mut task = TaskRun::new(
                format!("{}-{i}-{j}", ["add", "fetch", "addition"][j as usize]),
                Arc::from("t"),
                j,
            );
            task.flow_run_id = Some(run.id);
            task.created = run.created;
            task.state = Some(
                [State::pending(), State::running(), State::completed()][(i + j as usize) % 3]
                    .clone(),
            );
            tasks.push(task);
        }
    }
    for &store in &stores {
        for task in &tasks {
            store.create_task_run(task.clone()).await.unwrap();
        }
        store.flush().await.unwrap();
    }

    let names = |runs: Vec<FlowRun>| runs.into_iter().map(|r| r.name).collect::<Vec<_>>();
    let flow_filters = [
        FlowRunFilter::new(),
        FlowRunFilter::new().flow_name("report"),
        FlowRunFilter::new().flow_id(flows[2].id),
        FlowRunFilter::new().flow_name("nope"),
        FlowRunFilter::new().state_types([StateType::Scheduled]),
        FlowRunFilter::new().state_types([StateType::Completed, StateType::Failed]),
        FlowRunFilter::new().state_names(["Late"]),
        FlowRunFilter::new().tags(["nightly"]),
        FlowRunFilter::new().tags(["nightly", "eu"]),
        FlowRunFilter::new().tags(["absent"]),
        FlowRunFilter::new().parent_task_run_id(parent),
        FlowRunFilter::new().deployment_id(deployment),
        FlowRunFilter::new()
            .deployment_id(deployment)
            .auto_scheduled(true),
        FlowRunFilter::new().auto_scheduled(false),
        FlowRunFilter::new().exclude_deployments([deployment]),
        FlowRunFilter::new()
            .work_queue_name("default")
            .state_types([StateType::Scheduled])
            .exclude_deployments([deployment, orion::Uuid::from_u128(7)])
            .sort(Sort::ExpectedStartAsc),
        FlowRunFilter::new().work_queue_name("gpu"),
        FlowRunFilter::new().created_between(Some(at(10)), Some(at(20))),
        FlowRunFilter::new().created_between(Some(runs[10].created), None),
        FlowRunFilter::new().created_between(None, Some(runs[10].created)),
        FlowRunFilter::new().expected_start_between(Some(at(40)), Some(at(60))),
        FlowRunFilter::new().expected_start_between(None, Some(at(45))),
        FlowRunFilter::new()
            .work_queue_name("default")
            .state_types([StateType::Scheduled])
            .expected_start_between(None, Some(at(70)))
            .sort(Sort::ExpectedStartAsc),
        FlowRunFilter::new()
            .tags(["eu"])
            .sort(Sort::CreatedDesc)
            .offset(2)
            .limit(5),
        FlowRunFilter::new()
            .flow_name("etl")
            .state_types([StateType::Running])
            .limit(1),
    ];
    let mut answered = 0;
    let window = orion::store::HistoryWindow::new(at(0), at(120), 12).unwrap();
    for filter in flow_filters {
        let mem: Vec<_> = names(memory.read_flow_runs(&filter).await.unwrap());
        let count = memory.count_flow_runs(&filter).await.unwrap();
        assert_eq!(
            count,
            memory
                .read_flow_runs(&filter.unpaged())
                .await
                .unwrap()
                .len()
        );
        let history = memory.flow_run_history(&filter, window).await.unwrap();
        for (name, store) in &others {
            let theirs: Vec<_> = names(store.read_flow_runs(&filter).await.unwrap());
            assert_eq!(theirs, mem, "{name}: {filter:?}");
            let n = store.count_flow_runs(&filter).await.unwrap();
            assert_eq!(n, count, "{name} count: {filter:?}");
            let h = store.flow_run_history(&filter, window).await.unwrap();
            assert_eq!(h, history, "{name} history: {filter:?}");
        }
        answered += usize::from(!mem.is_empty());
    }
    // History by hand: every run starts (expected, else created) within the 2-hour window:
    // runs i % 3 == 2 (no expected start) and the Late ones (scheduled at minute i) at minute
    // i, the others at minute 30 + i; buckets are 10 minutes.
    let all = memory
        .flow_run_history(&FlowRunFilter::new(), window)
        .await
        .unwrap();
    let mut expected = [0u64; 12];
    for i in 0..48i64 {
        let minute = if i % 3 == 2 || i % 6 == 1 { i } else { 30 + i };
        expected[(minute / 10) as usize] += 1;
    }
    let totals: Vec<u64> = all.iter().map(|b| b.total()).collect();
    assert_eq!(totals, expected);
    let failed = all
        .iter()
        .flat_map(|b| &b.states)
        .filter(|s| s.state_type == StateType::Failed);
    assert_eq!(failed.map(|s| s.count_runs).sum::<u64>(), 8);
    assert!(answered >= 20, "only {answered} filters matched anything");
    let task_filters = [
        TaskRunFilter::new(),
        TaskRunFilter::new().flow_run_id(runs[3].id),
        TaskRunFilter::new().state_types([StateType::Running]),
        TaskRunFilter::new().name_prefix("add"),
        TaskRunFilter::new().name_prefix("add-"),
        TaskRunFilter::new().name_prefix("fetch-1"),
        TaskRunFilter::new().name_prefix("zzz"),
        TaskRunFilter::new()
            .state_types([StateType::Completed])
            .sort(Sort::CreatedDesc)
            .limit(4),
    ];
    let task_names = |runs: Vec<TaskRun>| runs.into_iter().map(|r| r.name).collect::<Vec<_>>();
    for filter in task_filters {
        let mem = task_names(memory.read_task_runs(&filter).await.unwrap());
        for (name, store) in &others {
            let theirs = task_names(store.read_task_runs(&filter).await.unwrap());
            assert_eq!(theirs, mem, "{name}: {filter:?}");
        }
    }
}
