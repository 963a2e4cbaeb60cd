//! Versioned migrations, applied on open inside one transaction under an advisory lock.

use super::db::{Db, Fail, Q, retrying};
use crate::store::StoreError;

/// The schema version this build writes.
pub(super) const VERSION: i32 = 2;

/// The advisory lock every process takes to migrate ("orion" in ASCII).
const MIGRATION_LOCK: i64 = 0x006f_7269_6f6e;

/// Times are nanoseconds since the epoch; ids are uuids; records are JSON text in `body`.
/// Indexes on columns most runs leave empty (a parent, tags) are partial: a state write of a
/// run without them (every state write rewrites the row's index entries) skips them.
/// State histories have no foreign key: their rows are written only with their run's (in the
/// same statement) and deleted with it, and a key check would cost every state write a
/// lookup and a lock on the run.
const V1: &str = "
CREATE TABLE orion_schema (version integer NOT NULL);
INSERT INTO orion_schema (version) VALUES (0);
CREATE TABLE flows (
    id uuid PRIMARY KEY,
    name text NOT NULL UNIQUE,
    body text NOT NULL
);
CREATE TABLE flow_runs (
    id uuid PRIMARY KEY,
    flow_id uuid NOT NULL REFERENCES flows(id),
    deployment_id uuid,
    parent_task_run_id uuid,
    idempotency_key text,
    work_queue text,
    tags text[] NOT NULL DEFAULT '{}',
    state_id uuid,
    state_type text,
    state_name text,
    created bigint NOT NULL,
    expected_start bigint,
    lease_until bigint,
    rev bigint NOT NULL DEFAULT 0,
    body text NOT NULL,
    UNIQUE (flow_id, idempotency_key)
);
CREATE INDEX flow_runs_flow ON flow_runs (flow_id, created);
CREATE INDEX flow_runs_deployment ON flow_runs (deployment_id, state_type);
CREATE INDEX flow_runs_parent ON flow_runs (parent_task_run_id) WHERE parent_task_run_id IS NOT NULL;
CREATE INDEX flow_runs_state ON flow_runs (state_type, expected_start, created, id);
CREATE INDEX flow_runs_state_name ON flow_runs (state_name);
CREATE INDEX flow_runs_created ON flow_runs (created, id);
CREATE INDEX flow_runs_work_queue ON flow_runs (work_queue, state_type, expected_start, created, id);
CREATE INDEX flow_runs_tags ON flow_runs USING gin (tags) WHERE tags <> '{}';
CREATE INDEX flow_runs_lease ON flow_runs (lease_until) WHERE lease_until IS NOT NULL;
CREATE TABLE flow_run_states (
    seq bigserial PRIMARY KEY,
    run_id uuid NOT NULL,
    body text NOT NULL
);
CREATE INDEX flow_run_states_run ON flow_run_states (run_id, seq);
CREATE TABLE task_runs (
    id uuid PRIMARY KEY,
    flow_run_id uuid REFERENCES flow_runs(id) ON DELETE CASCADE,
    name text NOT NULL,
    state_id uuid,
    state_type text,
    rev bigint NOT NULL DEFAULT 0,
    body text NOT NULL
);
CREATE INDEX task_runs_flow_run ON task_runs (flow_run_id);
CREATE INDEX task_runs_state ON task_runs (state_type);
CREATE INDEX task_runs_name ON task_runs (name text_pattern_ops);
CREATE TABLE task_run_states (
    seq bigserial PRIMARY KEY,
    run_id uuid NOT NULL,
    body text NOT NULL
);
CREATE INDEX task_run_states_run ON task_run_states (run_id, seq);
CREATE TABLE cache (
    key text PRIMARY KEY,
    body text NOT NULL
);
CREATE TABLE logs (
    id bigserial PRIMARY KEY,
    flow_run_id uuid,
    task_run_id uuid,
    level integer NOT NULL,
    ts bigint NOT NULL,
    body text NOT NULL
);
CREATE INDEX logs_flow_run ON logs (flow_run_id, ts, id);
CREATE INDEX logs_task_run ON logs (task_run_id, ts, id);
CREATE INDEX logs_ts ON logs (ts, id);
CREATE TABLE deployments (
    id uuid PRIMARY KEY,
    flow_id uuid NOT NULL REFERENCES flows(id),
    name text NOT NULL,
    updated bigint NOT NULL,
    paused boolean NOT NULL,
    limited boolean NOT NULL,
    body text NOT NULL,
    UNIQUE (flow_id, name)
);
CREATE TABLE work_queues (
    name text PRIMARY KEY,
    limited boolean NOT NULL,
    body text NOT NULL
);
CREATE TABLE concurrency_limits (
    name text PRIMARY KEY,
    body text NOT NULL
);
CREATE TABLE concurrency_slots (
    id bigserial PRIMARY KEY,
    limit_name text NOT NULL,
    holder uuid NOT NULL,
    owner uuid NOT NULL,
    waiting boolean NOT NULL,
    decays boolean NOT NULL,
    ticket bigint NOT NULL,
    expires bigint NOT NULL,
    body text NOT NULL
);
CREATE INDEX concurrency_slots_limit ON concurrency_slots (limit_name, expires);
CREATE INDEX concurrency_slots_holder ON concurrency_slots (holder);
CREATE INDEX concurrency_slots_expires ON concurrency_slots (expires);
CREATE SEQUENCE concurrency_tickets;
";

/// The steps from each version to the next: `STEPS[n]` takes version `n` to `n + 1`.
/// Version 2: runs by expected start with their state and creation, so run history (the
/// dashboard's chart) reads an index instead of every row.
const V2: &str = "
CREATE INDEX flow_runs_history ON flow_runs (expected_start, state_type, created);
";

const STEPS: [&str; VERSION as usize] = [V1, V2];

/// The version a database is at: None when it has no orion schema; an error when it holds
/// tables of orion's names without one (another program's).
async fn read_version(q: &impl Q) -> Result<Option<i32>, Fail> {
    let found = q
        .one(
            "SELECT to_regclass('orion_schema') IS NOT NULL, to_regclass('flow_runs') IS NOT NULL",
            &[],
        )
        .await?;
    let (ours, tables): (bool, bool) = (found.try_get(0)?, found.try_get(1)?);
    if ours {
        let row = q.one("SELECT version FROM orion_schema", &[]).await?;
        return Ok(Some(row.try_get(0)?));
    }
    if tables {
        return Err(StoreError::Backend(
            "the database has tables of orion's names but no orion schema version: it is another program's; it was left untouched".into(),
        )
        .into());
    }
    Ok(None)
}

/// Refuses a database written by a newer orion.
fn refuse_newer(version: i32) -> Result<(), Fail> {
    if version > VERSION {
        return Err(StoreError::Backend(format!(
            "the database has schema version {version}, written by a newer orion; this build reads up to {VERSION} and will not alter it"
        ))
        .into());
    }
    Ok(())
}

/// Brings the database to [`VERSION`]: in one transaction, holding an advisory lock, so two
/// processes opening a new database at once migrate it once and a failed step leaves nothing.
pub(super) async fn migrate(db: &Db) -> Result<(), StoreError> {
    retrying!(db, |conn, _attempt| {
        // Most opens find the schema current: no lock, no transaction.
        if let Some(version) = read_version(&*conn).await? {
            refuse_newer(version)?;
            if version == VERSION {
                return Ok(());
            }
        }
        let tx = conn.transaction().await?;
        tx.exec("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let now = read_version(&tx).await?;
        if let Some(version) = now {
            refuse_newer(version)?;
        }
        let from = usize::try_from(now.unwrap_or(0)).unwrap_or(0);
        for step in STEPS.iter().skip(from) {
            tx.batch_execute(step).await?;
        }
        tx.exec("UPDATE orion_schema SET version = $1", &[&VERSION])
            .await?;
        tx.commit().await?;
        Ok(())
    })
}

/// The schema version of the database (0: none).
pub(super) async fn version(db: &Db) -> Result<i32, StoreError> {
    retrying!(db, |conn, _attempt| Ok(read_version(&*conn)
        .await?
        .unwrap_or(0)))
}
