//! `SqliteStore`: every record in one SQLite file (feature `sqlite`).
//!
//! Records are kept as JSON with the columns queries select on beside them; filters run the
//! same [`FlowRunFilter::matches`] code as the memory store, so both backends answer alike.
//! Every state write is a transaction that compares the stored current state's id first.

mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::memory::{RunTimes, record_state_times, strip};
use super::{
    Deployment, DeploymentFilter, Flow, FlowRun, FlowRunFilter, LogFilter, LogRecord, SetState,
    Store, StoreError, StoreFuture, TaskRun, TaskRunFilter,
};
use crate::state::State;

/// How far a commit goes before a write's future resolves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every commit is fsynced: it survives a power cut (`synchronous = FULL`, the default).
    #[default]
    Full,
    /// Commits reach the operating system: they survive a killed process but not a power cut,
    /// about three times faster (`synchronous = NORMAL`).
    Normal,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// A [`Store`] in a SQLite file: WAL journal, foreign keys, versioned schema.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::env::temp_dir().join(format!("orion-doc-{}.db", std::process::id()));
/// let store = orion::store::SqliteStore::open(&path)?;
/// # drop(store); std::fs::remove_file(&path).ok();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SqliteStore {
    /// The connection reads use.
    conn: Mutex<Connection>,
    /// Queue of the writer thread, which owns a second connection (None once dropping).
    writer: Mutex<Option<std::sync::mpsc::Sender<writer::Job>>>,
    /// The writer thread, joined on drop so the file is closed when the store is.
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    path: PathBuf,
}

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Backend(format!("cannot encode a record: {e}")))
}

fn parse<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Backend(format!("corrupt record in the database: {e}")))
}

fn ready<'a, T: Send + 'a>(value: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl SqliteStore {
    /// Opens (creating it, and its directory, if needed) the database at `path` with every
    /// commit fsynced, and brings its schema up to date. A new file is readable by its owner
    /// only.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] for a file that is not a database, one written by a newer
    /// orion, or one that cannot be opened or created.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, Durability::Full)
    }

    /// [`SqliteStore::open`] with a chosen [`Durability`].
    ///
    /// # Errors
    ///
    /// As [`SqliteStore::open`].
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self, StoreError> {
        let pragmas = format!(
            "PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;",
            durability.pragma()
        );
        let path = path.as_ref().to_path_buf();
        let io = |what: &str, e: std::io::Error| {
            StoreError::Backend(format!("{what} {}: {e}", path.display()))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io("cannot create the directory of", e))?;
        }
        let existed = path.exists();
        let mut conn = Connection::open(&path)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        if !existed {
            restrict_permissions(&path).map_err(|e| io("cannot restrict the permissions of", e))?;
        }
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(backend)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| {
                StoreError::Backend(format!(
                    "{} is not a usable SQLite database: {e}",
                    path.display()
                ))
            })?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "{} cannot use a write-ahead log (journal mode {mode})",
                path.display()
            )));
        }
        conn.execute_batch(&pragmas).map_err(backend)?;
        schema::migrate(&mut conn)?;
        let write_conn = Connection::open(&path).map_err(backend)?;
        write_conn
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(backend)?;
        write_conn.execute_batch(&pragmas).map_err(backend)?;
        let (sender, jobs) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("orion-sqlite-writer".into())
            .spawn(move || writer::run(write_conn, jobs))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            writer: Mutex::new(Some(sender)),
            writer_thread: Mutex::new(Some(thread)),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rebuilds the file to give back the space of deleted records.
    ///
    /// # Errors
    ///
    /// When SQLite cannot.
    pub fn vacuum(&self) -> Result<(), StoreError> {
        self.lock().execute_batch("VACUUM").map_err(backend)
    }

    /// Rows per table and the schema version, for `orion database info`.
    ///
    /// # Errors
    ///
    /// When the file cannot be read.
    pub fn stats(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.lock();
        let mut out = vec![(
            "schema version".to_owned(),
            conn.query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(backend)?,
        )];
        for table in ["flows", "flow_runs", "task_runs", "deployments", "logs"] {
            let n: i64 = conn
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                .map_err(backend)?;
            out.push((table.replace('_', " "), n));
        }
        Ok(out)
    }

    /// SQLite's own consistency check of the whole file: `"ok"` when it is sound.
    ///
    /// # Errors
    ///
    /// When the check cannot run.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("PRAGMA integrity_check").map_err(backend)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(backend)?;
        let lines: Result<Vec<String>, _> = rows.collect();
        Ok(lines.map_err(backend)?.join("\n"))
    }

    /// Runs a write on the writer thread; see `writer`.
    fn write<'a, T: Send + 'static>(
        &'a self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'a, T> {
        let sender = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match sender {
            Some(sender) => writer::submit(&sender, work),
            None => ready(Err(StoreError::Backend("the store is closing".into()))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with<'a, T: Send + 'a>(
        &'a self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> StoreFuture<'a, T> {
        let mut conn = self.lock();
        ready(f(&mut conn))
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue ends the writer once its last transaction has committed.
        self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = self
            .writer_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = thread.join();
        }
    }
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_permissions(_: &Path) -> std::io::Result<()> {
    Ok(())
}

fn one<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<T>, StoreError> {
    let body: Option<String> = conn
        .query_row(sql, params, |r| r.get(0))
        .optional()
        .map_err(backend)?;
    body.map(|b| parse(&b)).transpose()
}

fn many<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let rows = stmt
        .query_map(params, |r| r.get::<_, String>(0))
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(parse(&row.map_err(backend)?)?);
    }
    Ok(out)
}

fn exists(conn: &Connection, sql: &str, id: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(sql, [id], |_| Ok(()))
        .optional()
        .map_err(backend)?
        .is_some())
}

/// The first state of a new run: stored without data, with the run's times set from it.
fn first_state<R: RunTimes>(run: &mut R) -> Option<State> {
    let first = run.state_slot().take().map(strip)?;
    record_state_times(run, &first);
    *run.state_slot() = Some(first.clone());
    Some(first)
}

/// A compare-and-set state write on one run table.
fn set_state<R: RunTimes + Serialize + DeserializeOwned>(
    conn: &mut Connection,
    (table, states): (&str, &str),
    what: &'static str,
    id: Uuid,
    expected: Option<Uuid>,
    state: State,
    on_written: impl FnOnce(&Connection, &mut R, &State) -> Result<(), StoreError>,
) -> Result<SetState, StoreError> {
    let tx = conn.savepoint().map_err(backend)?;
    let key = id.to_string();
    let mut run: R = one(
        &tx,
        &format!("SELECT body FROM {table} WHERE id = ?1"),
        [&key],
    )?
    .ok_or(StoreError::NotFound { what, id })?;
    let current = run.state_slot().clone();
    if current.as_ref().map(State::id) != expected {
        return Ok(SetState::Conflict { current });
    }
    on_written(&tx, &mut run, &state)?;
    let stored = strip(state);
    record_state_times(&mut run, &stored);
    *run.state_slot() = Some(stored.clone());
    tx.execute(
        &format!("UPDATE {table} SET body = ?2 WHERE id = ?1"),
        params![key, json(&run)?],
    )
    .map_err(backend)?;
    tx.execute(
        &format!("INSERT INTO {states} (run_id, seq, body) VALUES (?1, (SELECT COALESCE(MAX(seq), -1) + 1 FROM {states} WHERE run_id = ?1), ?2)"),
        params![key, json(&stored)?],
    )
    .map_err(backend)?;
    tx.commit().map_err(backend)?;
    Ok(SetState::Written)
}

fn flow_runs_matching(
    conn: &Connection,
    filter: &FlowRunFilter,
) -> Result<Vec<FlowRun>, StoreError> {
    let runs: Vec<FlowRun> = if let Some(id) = filter.flow_id {
        many(
            conn,
            "SELECT body FROM flow_runs WHERE flow_id = ?1",
            [id.to_string()],
        )?
    } else if let Some(id) = filter.deployment_id {
        many(
            conn,
            "SELECT body FROM flow_runs WHERE deployment_id = ?1",
            [id.to_string()],
        )?
    } else if let Some(id) = filter.parent_task_run_id {
        many(
            conn,
            "SELECT body FROM flow_runs WHERE parent_task_run_id = ?1",
            [id.to_string()],
        )?
    } else {
        many(conn, "SELECT body FROM flow_runs", [])?
    };
    Ok(runs.into_iter().filter(|r| filter.matches(r)).collect())
}

impl Store for SqliteStore {
    fn upsert_flow(&self, flow: Flow) -> StoreFuture<'_, Flow> {
        self.write(move |conn| {
            // One statement, so two processes creating the same flow cannot collide.
            conn.execute(
                "INSERT INTO flows (id, name, body) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
                params![flow.id.to_string(), flow.name, json(&flow)?],
            )
            .map_err(backend)?;
            one(conn, "SELECT body FROM flows WHERE name = ?1", [&flow.name])?
                .ok_or_else(|| StoreError::Backend(format!("flow {:?} vanished while being created", flow.name)))
        })
    }

    fn read_flow(&self, id: Uuid) -> StoreFuture<'_, Option<Flow>> {
        self.with(|conn| {
            one(
                conn,
                "SELECT body FROM flows WHERE id = ?1",
                [id.to_string()],
            )
        })
    }

    fn read_flow_by_name<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Flow>> {
        self.with(|conn| one(conn, "SELECT body FROM flows WHERE name = ?1", [name]))
    }

    fn read_flows(&self) -> StoreFuture<'_, Vec<Flow>> {
        self.with(|conn| many(conn, "SELECT body FROM flows ORDER BY name", []))
    }

    fn create_flow_run(&self, mut run: FlowRun) -> StoreFuture<'_, FlowRun> {
        self.write(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            if !exists(&tx, "SELECT 1 FROM flows WHERE id = ?1", &run.flow_id.to_string())? {
                return Err(StoreError::NotFound { what: "flow", id: run.flow_id });
            }
            if exists(&tx, "SELECT 1 FROM flow_runs WHERE id = ?1", &run.id.to_string())? {
                return Err(StoreError::AlreadyExists { what: "flow run", key: run.id.to_string() });
            }
            if let Some(key) = &run.idempotency_key {
                let sql = "SELECT body FROM flow_runs WHERE flow_id = ?1 AND idempotency_key = ?2";
                if let Some(existing) = one(&tx, sql, params![run.flow_id.to_string(), key])? {
                    return Ok(existing);
                }
            }
            let first = first_state(&mut run);
            tx.execute(
                "INSERT INTO flow_runs (id, flow_id, deployment_id, parent_task_run_id, idempotency_key, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    run.id.to_string(),
                    run.flow_id.to_string(),
                    run.deployment_id.map(|d| d.to_string()),
                    run.parent_task_run_id.map(|d| d.to_string()),
                    run.idempotency_key,
                    json(&run)?
                ],
            )
            .map_err(backend)?;
            if let Some(first) = first {
                tx.execute("INSERT INTO flow_run_states (run_id, seq, body) VALUES (?1, 0, ?2)", params![run.id.to_string(), json(&first)?])
                    .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(run)
        })
    }

    fn delete_flow_runs<'a>(&'a self, filter: &'a FlowRunFilter) -> StoreFuture<'a, usize> {
        let filter = filter.clone();
        self.write(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            let doomed = flow_runs_matching(&tx, &filter)?;
            for run in &doomed {
                let id = run.id.to_string();
                tx.execute("DELETE FROM logs WHERE flow_run_id = ?1", [&id])
                    .map_err(backend)?;
                tx.execute("DELETE FROM flow_runs WHERE id = ?1", [&id])
                    .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(doomed.len())
        })
    }

    fn read_flow_run(&self, id: Uuid) -> StoreFuture<'_, Option<FlowRun>> {
        self.with(|conn| {
            one(
                conn,
                "SELECT body FROM flow_runs WHERE id = ?1",
                [id.to_string()],
            )
        })
    }

    fn read_flow_runs<'a>(&'a self, filter: &'a FlowRunFilter) -> StoreFuture<'a, Vec<FlowRun>> {
        self.with(|conn| Ok(filter.finish(flow_runs_matching(conn, filter)?)))
    }

    fn set_flow_run_state(
        &self,
        id: Uuid,
        expected: Option<Uuid>,
        state: State,
    ) -> StoreFuture<'_, SetState> {
        self.write(move |conn| {
            set_state::<FlowRun>(
                conn,
                ("flow_runs", "flow_run_states"),
                "flow run",
                id,
                expected,
                state,
                |_, _, _| Ok(()),
            )
        })
    }

    fn read_flow_run_states(&self, id: Uuid) -> StoreFuture<'_, Vec<State>> {
        self.with(move |conn| {
            let key = id.to_string();
            if !exists(conn, "SELECT 1 FROM flow_runs WHERE id = ?1", &key)? {
                return Err(StoreError::NotFound {
                    what: "flow run",
                    id,
                });
            }
            many(
                conn,
                "SELECT body FROM flow_run_states WHERE run_id = ?1 ORDER BY seq",
                [key],
            )
        })
    }

    fn create_task_run(&self, mut run: TaskRun) -> StoreFuture<'_, TaskRun> {
        self.write(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            if let Some(parent) = run.flow_run_id {
                if !exists(
                    &tx,
                    "SELECT 1 FROM flow_runs WHERE id = ?1",
                    &parent.to_string(),
                )? {
                    return Err(StoreError::NotFound {
                        what: "flow run",
                        id: parent,
                    });
                }
            }
            if exists(
                &tx,
                "SELECT 1 FROM task_runs WHERE id = ?1",
                &run.id.to_string(),
            )? {
                return Err(StoreError::AlreadyExists {
                    what: "task run",
                    key: run.id.to_string(),
                });
            }
            let first = first_state(&mut run);
            tx.execute(
                "INSERT INTO task_runs (id, flow_run_id, body) VALUES (?1, ?2, ?3)",
                params![
                    run.id.to_string(),
                    run.flow_run_id.map(|f| f.to_string()),
                    json(&run)?
                ],
            )
            .map_err(backend)?;
            if let Some(first) = first {
                tx.execute(
                    "INSERT INTO task_run_states (run_id, seq, body) VALUES (?1, 0, ?2)",
                    params![run.id.to_string(), json(&first)?],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(run)
        })
    }

    fn read_task_run(&self, id: Uuid) -> StoreFuture<'_, Option<TaskRun>> {
        self.with(|conn| {
            one(
                conn,
                "SELECT body FROM task_runs WHERE id = ?1",
                [id.to_string()],
            )
        })
    }

    fn read_task_runs<'a>(&'a self, filter: &'a TaskRunFilter) -> StoreFuture<'a, Vec<TaskRun>> {
        self.with(|conn| {
            let runs: Vec<TaskRun> = match filter.flow_run_id {
                Some(id) => many(
                    conn,
                    "SELECT body FROM task_runs WHERE flow_run_id = ?1",
                    [id.to_string()],
                )?,
                None => many(conn, "SELECT body FROM task_runs", [])?,
            };
            Ok(filter.finish(runs.into_iter().filter(|r| filter.matches(r)).collect()))
        })
    }

    fn set_task_run_state(
        &self,
        id: Uuid,
        expected: Option<Uuid>,
        state: State,
    ) -> StoreFuture<'_, SetState> {
        self.write(move |conn| {
            set_state::<TaskRun>(
                conn,
                ("task_runs", "task_run_states"),
                "task run",
                id,
                expected,
                state,
                |tx, run, state| {
                    if let Some(key) = &state.details().cache_key {
                        run.cache_key = Some(key.clone());
                        if state.is_completed() && state.data().is_some() {
                            tx.execute(
                                "INSERT OR REPLACE INTO cache (key, body) VALUES (?1, ?2)",
                                params![key, json(state)?],
                            )
                            .map_err(backend)?;
                        }
                    }
                    Ok(())
                },
            )
        })
    }

    fn read_task_run_states(&self, id: Uuid) -> StoreFuture<'_, Vec<State>> {
        self.with(move |conn| {
            let key = id.to_string();
            if !exists(conn, "SELECT 1 FROM task_runs WHERE id = ?1", &key)? {
                return Err(StoreError::NotFound {
                    what: "task run",
                    id,
                });
            }
            many(
                conn,
                "SELECT body FROM task_run_states WHERE run_id = ?1 ORDER BY seq",
                [key],
            )
        })
    }

    fn read_cached_state<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<State>> {
        self.with(|conn| one(conn, "SELECT body FROM cache WHERE key = ?1", [key]))
    }

    fn write_logs(&self, logs: Vec<LogRecord>) -> StoreFuture<'_, ()> {
        self.write(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            {
                let mut stmt = tx
                    .prepare_cached("INSERT INTO logs (flow_run_id, task_run_id, level, ts, body) VALUES (?1, ?2, ?3, ?4, ?5)")
                    .map_err(backend)?;
                for log in &logs {
                    let ts = i64::try_from(log.timestamp.as_nanosecond()).unwrap_or(i64::MAX);
                    stmt.execute(params![
                        log.flow_run_id.map(|i| i.to_string()),
                        log.task_run_id.map(|i| i.to_string()),
                        log.level as i64,
                        ts,
                        json(log)?
                    ])
                    .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
    }

    fn read_logs<'a>(&'a self, filter: &'a LogFilter) -> StoreFuture<'a, Vec<LogRecord>> {
        self.with(|conn| {
            let logs: Vec<LogRecord> = match (filter.flow_run_id, filter.task_run_id) {
                (Some(id), _) => many(
                    conn,
                    "SELECT body FROM logs WHERE flow_run_id = ?1 ORDER BY ts, id",
                    [id.to_string()],
                )?,
                (None, Some(id)) => many(
                    conn,
                    "SELECT body FROM logs WHERE task_run_id = ?1 ORDER BY ts, id",
                    [id.to_string()],
                )?,
                (None, None) => many(conn, "SELECT body FROM logs ORDER BY ts, id", [])?,
            };
            let mut logs: Vec<LogRecord> = logs.into_iter().filter(|l| filter.matches(l)).collect();
            logs.truncate(filter.limit.unwrap_or(usize::MAX));
            Ok(logs)
        })
    }

    fn upsert_deployments(&self, deployments: Vec<Deployment>) -> StoreFuture<'_, Vec<Deployment>> {
        self.write(move |conn| {
            let tx = conn.savepoint().map_err(backend)?;
            let mut stored = Vec::with_capacity(deployments.len());
            for mut d in deployments {
                if !exists(&tx, "SELECT 1 FROM flows WHERE id = ?1", &d.flow_id.to_string())? {
                    return Err(StoreError::NotFound { what: "flow", id: d.flow_id });
                }
                let sql = "SELECT body FROM deployments WHERE flow_id = ?1 AND name = ?2";
                if let Some(existing) = one::<Deployment>(&tx, sql, params![d.flow_id.to_string(), d.name])? {
                    d.id = existing.id;
                    d.created = existing.created;
                }
                tx.execute(
                    "INSERT OR REPLACE INTO deployments (id, flow_id, name, body) VALUES (?1, ?2, ?3, ?4)",
                    params![d.id.to_string(), d.flow_id.to_string(), d.name, json(&d)?],
                )
                .map_err(backend)?;
                stored.push(d);
            }
            tx.commit().map_err(backend)?;
            Ok(stored)
        })
    }

    fn read_deployment(&self, id: Uuid) -> StoreFuture<'_, Option<Deployment>> {
        self.with(|conn| {
            one(
                conn,
                "SELECT body FROM deployments WHERE id = ?1",
                [id.to_string()],
            )
        })
    }

    fn read_deployment_by_name<'a>(
        &'a self,
        flow_name: &'a str,
        name: &'a str,
    ) -> StoreFuture<'a, Option<Deployment>> {
        self.with(|conn| {
            let sql = "SELECT d.body FROM deployments d JOIN flows f ON f.id = d.flow_id WHERE f.name = ?1 AND d.name = ?2";
            one(conn, sql, params![flow_name, name])
        })
    }

    fn read_deployments<'a>(
        &'a self,
        filter: &'a DeploymentFilter,
    ) -> StoreFuture<'a, Vec<Deployment>> {
        self.with(|conn| {
            let mut found: Vec<Deployment> =
                many::<Deployment>(conn, "SELECT body FROM deployments", [])?
                    .into_iter()
                    .filter(|d| filter.matches(d))
                    .collect();
            found.sort_by(|a, b| (&a.flow_name, &a.name).cmp(&(&b.flow_name, &b.name)));
            Ok(found)
        })
    }

    fn delete_deployment(&self, id: Uuid) -> StoreFuture<'_, bool> {
        self.write(move |conn| {
            Ok(conn
                .execute("DELETE FROM deployments WHERE id = ?1", [id.to_string()])
                .map_err(backend)?
                > 0)
        })
    }
}
