//! Versioned migrations, applied on open.

use rusqlite::Connection;

use crate::store::StoreError;

/// The schema version this build writes.
pub(crate) const VERSION: i64 = 1;

const V1: &str = "
CREATE TABLE flows (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL
);
CREATE TABLE flow_runs (
    id TEXT PRIMARY KEY,
    flow_id TEXT NOT NULL REFERENCES flows(id),
    deployment_id TEXT,
    parent_task_run_id TEXT,
    idempotency_key TEXT,
    body TEXT NOT NULL,
    UNIQUE (flow_id, idempotency_key)
);
CREATE INDEX flow_runs_flow ON flow_runs(flow_id);
CREATE INDEX flow_runs_deployment ON flow_runs(deployment_id);
CREATE INDEX flow_runs_parent ON flow_runs(parent_task_run_id);
CREATE TABLE flow_run_states (
    run_id TEXT NOT NULL REFERENCES flow_runs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE task_runs (
    id TEXT PRIMARY KEY,
    flow_run_id TEXT REFERENCES flow_runs(id) ON DELETE CASCADE,
    body TEXT NOT NULL
);
CREATE INDEX task_runs_flow_run ON task_runs(flow_run_id);
CREATE TABLE task_run_states (
    run_id TEXT NOT NULL REFERENCES task_runs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE cache (
    key TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE logs (
    id INTEGER PRIMARY KEY,
    flow_run_id TEXT,
    task_run_id TEXT,
    level INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX logs_flow_run ON logs(flow_run_id, ts);
CREATE INDEX logs_task_run ON logs(task_run_id, ts);
CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    flow_id TEXT NOT NULL REFERENCES flows(id),
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (flow_id, name)
);
";

/// Brings the database to [`VERSION`]; refuses one written by a newer orion.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| StoreError::Backend(format!("not an orion database: {e}")))?;
    if version > VERSION {
        return Err(StoreError::Backend(format!(
            "the database has schema version {version}, written by a newer orion; this build reads up to {VERSION} and will not alter it"
        )));
    }
    if version < 1 {
        // IMMEDIATE: two processes opening a new file at once migrate it once.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(super::backend)?;
        let now: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(super::backend)?;
        if now >= 1 {
            return Ok(());
        }
        tx.execute_batch(V1).map_err(super::backend)?;
        tx.pragma_update(None, "user_version", VERSION)
            .map_err(super::backend)?;
        tx.commit().map_err(super::backend)?;
    }
    Ok(())
}
