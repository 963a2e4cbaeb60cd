//! Versioned migrations, applied on open.

use rusqlite::Connection;

use crate::store::StoreError;

/// The schema version this build writes.
pub(crate) const VERSION: i64 = 6;

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

/// Version 2: each run row carries its current state's id (so a queued write checks it
/// without reading the run's JSON) and its state history as a JSON array (a task run that
/// went through three states is one row written once, not four).
const V2: &str = "
ALTER TABLE flow_runs ADD COLUMN state_id TEXT;
ALTER TABLE flow_runs ADD COLUMN history TEXT NOT NULL DEFAULT '[]';
UPDATE flow_runs SET
    state_id = json_extract(body, '$.state.id'),
    history = (SELECT json_group_array(json(s.body) ORDER BY s.seq) FROM flow_run_states s WHERE s.run_id = flow_runs.id);
DROP TABLE flow_run_states;
ALTER TABLE task_runs ADD COLUMN state_id TEXT;
ALTER TABLE task_runs ADD COLUMN history TEXT NOT NULL DEFAULT '[]';
UPDATE task_runs SET
    state_id = json_extract(body, '$.state.id'),
    history = (SELECT json_group_array(json(s.body) ORDER BY s.seq) FROM task_run_states s WHERE s.run_id = task_runs.id);
DROP TABLE task_run_states;
";

/// Version 3: a column and an index for every filter the client offers. Times are
/// nanoseconds since the epoch; those taken from older records keep milliseconds, which
/// queries allow for.
const V3: &str = "
ALTER TABLE flow_runs ADD COLUMN state_type TEXT;
ALTER TABLE flow_runs ADD COLUMN state_name TEXT;
ALTER TABLE flow_runs ADD COLUMN created INTEGER;
ALTER TABLE flow_runs ADD COLUMN expected_start INTEGER;
ALTER TABLE flow_runs ADD COLUMN work_queue TEXT;
UPDATE flow_runs SET
    state_type = json_extract(body, '$.state.type'),
    state_name = json_extract(body, '$.state.name'),
    created = CAST(unixepoch(json_extract(body, '$.created'), 'subsec') * 1000000000 AS INTEGER),
    expected_start = CAST(unixepoch(json_extract(body, '$.expected_start_time'), 'subsec') * 1000000000 AS INTEGER),
    work_queue = json_extract(body, '$.work_queue_name');
DROP INDEX flow_runs_flow;
CREATE INDEX flow_runs_flow ON flow_runs(flow_id, created);
CREATE INDEX flow_runs_state ON flow_runs(state_type, expected_start);
CREATE INDEX flow_runs_state_name ON flow_runs(state_name);
CREATE INDEX flow_runs_created ON flow_runs(created);
CREATE INDEX flow_runs_expected_start ON flow_runs(expected_start);
CREATE INDEX flow_runs_work_queue ON flow_runs(work_queue, state_type, expected_start);
CREATE TABLE flow_run_tags (
    tag TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES flow_runs(id) ON DELETE CASCADE,
    PRIMARY KEY (tag, run_id)
) WITHOUT ROWID;
CREATE INDEX flow_run_tags_run ON flow_run_tags(run_id);
INSERT OR IGNORE INTO flow_run_tags (tag, run_id)
    SELECT t.value, r.id FROM flow_runs r, json_each(r.body, '$.tags') t;
ALTER TABLE task_runs ADD COLUMN state_type TEXT;
ALTER TABLE task_runs ADD COLUMN state_name TEXT;
ALTER TABLE task_runs ADD COLUMN name TEXT;
UPDATE task_runs SET
    state_type = json_extract(body, '$.state.type'),
    state_name = json_extract(body, '$.state.name'),
    name = json_extract(body, '$.name');
CREATE INDEX task_runs_state ON task_runs(state_type);
CREATE INDEX task_runs_name ON task_runs(name);
";

/// Version 4: leases (the reaper looks for runs whose lease lapsed) and work queues.
const V4: &str = "
ALTER TABLE flow_runs ADD COLUMN lease_until INTEGER;
CREATE INDEX flow_runs_lease ON flow_runs(lease_until) WHERE lease_until IS NOT NULL;
CREATE TABLE work_queues (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
";

/// Version 5: the concurrency ledger (limits, and the slots held or awaited under them), and
/// an index counting a deployment's runs by state (its concurrency limit).
const V5: &str = "
CREATE TABLE concurrency_limits (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE concurrency_slots (
    id INTEGER PRIMARY KEY,
    limit_name TEXT NOT NULL,
    holder TEXT NOT NULL,
    owner TEXT NOT NULL,
    waiting INTEGER NOT NULL,
    decays INTEGER NOT NULL,
    ticket INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX concurrency_slots_limit ON concurrency_slots(limit_name);
CREATE INDEX concurrency_slots_holder ON concurrency_slots(holder);
CREATE INDEX concurrency_slots_ticket ON concurrency_slots(ticket);
CREATE INDEX concurrency_slots_expires ON concurrency_slots(expires);
CREATE INDEX flow_runs_deployment_state ON flow_runs(deployment_id, state_type);
";

/// Version 6: runs by expected start with their state and creation, so run history (the
/// dashboard's chart) reads an index instead of every row; it replaces the index on expected
/// start alone.
const V6: &str = "
CREATE INDEX flow_runs_history ON flow_runs(expected_start, state_type, created);
DROP INDEX flow_runs_expected_start;
";

/// The steps from each version to the next: `STEPS[n]` takes version `n` to `n + 1`.
const STEPS: [&str; VERSION as usize] = [V1, V2, V3, V4, V5, V6];

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
    if version < VERSION {
        // IMMEDIATE: two processes opening the file at once migrate it once.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(super::backend)?;
        let now: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(super::backend)?;
        if now == 0
            && tx
                .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(super::backend)?
                > 0
        {
            return Err(StoreError::Backend(
                "the file is a SQLite database of another program (it has tables but no orion schema version); it was left untouched".into(),
            ));
        }
        for (from, step) in STEPS
            .iter()
            .enumerate()
            .skip(usize::try_from(now).unwrap_or(0))
        {
            tx.execute_batch(step).map_err(|e| {
                StoreError::Backend(format!(
                    "cannot bring the database from schema version {from} to {}: {e}",
                    from + 1
                ))
            })?;
        }
        tx.pragma_update(None, "user_version", VERSION)
            .map_err(super::backend)?;
        tx.commit().map_err(super::backend)?;
    }
    Ok(())
}

/// The columns this build reads and writes, per table.
const COLUMNS: [(&str, &str); 9] = [
    ("flows", "id, name, body"),
    (
        "flow_runs",
        "id, flow_id, deployment_id, parent_task_run_id, idempotency_key, body, state_id, state_type, state_name, created, expected_start, work_queue, history, lease_until",
    ),
    ("flow_run_tags", "tag, run_id"),
    (
        "task_runs",
        "id, flow_run_id, body, state_id, state_type, state_name, name, history",
    ),
    ("logs", "id, flow_run_id, task_run_id, level, ts, body"),
    ("deployments", "id, flow_id, name, body"),
    ("work_queues", "name, body"),
    ("concurrency_limits", "name, body"),
    (
        "concurrency_slots",
        "id, limit_name, holder, owner, waiting, decays, ticket, expires, body",
    ),
];

/// Checks that the file has every table and column of [`VERSION`], so that a file whose
/// schema does not match its version number (altered by hand, or by a development build) is
/// refused on open rather than failing in the middle of a run.
pub(crate) fn check(conn: &Connection) -> Result<(), StoreError> {
    for (table, columns) in COLUMNS {
        conn.prepare(&format!("SELECT {columns} FROM {table} LIMIT 0"))
            .map_err(|e| {
                StoreError::Backend(format!(
                    "the database says schema version {VERSION} but does not have its tables and columns ({e}); it was left untouched"
                ))
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::{V1, VERSION, migrate};

    #[test]
    fn a_version_1_file_gains_state_ids_histories_and_filter_columns_from_its_records() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(V1).unwrap();
        conn.execute_batch(
            r#"PRAGMA user_version = 1;
            INSERT INTO flows VALUES ('f', 'etl', '{}');
            INSERT INTO flow_runs (id, flow_id, body) VALUES ('r', 'f', '{"state": {"id": "s1", "type": "RUNNING", "name": "Running"}, "tags": ["a", "b"], "created": "2026-11-27T15:32:57.206905041Z", "work_queue_name": "q"}');
            INSERT INTO task_runs (id, flow_run_id, body) VALUES ('t', 'r', '{"state": null}');
            INSERT INTO flow_run_states VALUES ('r', 1, '{"id": "s1"}'), ('r', 0, '{"id": "s0"}');"#,
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, VERSION);
        let ids: (Option<String>, Option<String>) = conn
            .query_row(
                "SELECT (SELECT state_id FROM flow_runs), (SELECT state_id FROM task_runs)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(ids, (Some("s1".into()), None));
        let histories: (String, String) = conn
            .query_row(
                "SELECT (SELECT history FROM flow_runs), (SELECT history FROM task_runs)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(histories.0, r#"[{"id":"s0"},{"id":"s1"}]"#);
        assert_eq!(histories.1, "[]");
        let columns: (String, String, i64, Option<i64>, String, i64) = conn
            .query_row(
                "SELECT state_type, state_name, created, expected_start, work_queue, (SELECT COUNT(*) FROM flow_run_tags WHERE run_id = 'r') FROM flow_runs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .unwrap();
        let exact = 1_795_793_577_206_905_041_i64; // the record's creation time
        assert!(
            (columns.2 - exact).abs() < 1_000_000,
            "{} vs {exact}",
            columns.2
        );
        assert_eq!(
            (columns.0, columns.1, columns.3, columns.4, columns.5),
            ("RUNNING".into(), "Running".into(), None, "q".into(), 2)
        );
        // Opening again changes nothing.
        migrate(&mut conn).unwrap();
        super::check(&conn).unwrap();
    }

    #[test]
    fn another_programs_database_is_refused_untouched() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep');")
            .unwrap();
        let err = migrate(&mut conn).unwrap_err().to_string();
        assert!(err.contains("another program"), "{err}");
        let tables: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 1);
    }
}

#[cfg(test)]
mod mismatch {
    use rusqlite::Connection;

    use super::{VERSION, check, migrate};

    #[test]
    fn a_file_whose_tables_do_not_match_its_version_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn.execute_batch("DROP INDEX task_runs_name; ALTER TABLE task_runs DROP COLUMN name;")
            .unwrap();
        let err = check(&conn).unwrap_err().to_string();
        assert!(err.contains(&format!("schema version {VERSION}")), "{err}");
        assert!(err.contains("name"), "{err}");
    }
}
