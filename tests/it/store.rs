use std::path::PathBuf;

use orion::store::{MemoryStore, SqliteStore, Store};

#[tokio::test]
async fn the_memory_store_passes_the_conformance_suite() {
    orion::store::testing::run_all(MemoryStore::new).await;
}

/// A fresh path in the system's temporary directory.
fn temp_db(tag: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!(
            "orion-it-{}-{tag}-{}",
            std::process::id(),
            fastrand::u64(..)
        ))
        .join("orion.db")
}

#[tokio::test]
async fn the_sqlite_store_passes_the_conformance_suite() {
    orion::store::testing::run_all(|| SqliteStore::open(temp_db("conformance")).unwrap()).await;
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
