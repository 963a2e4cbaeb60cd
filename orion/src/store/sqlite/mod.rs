//! `SqliteStore`: every record in one SQLite file (feature `sqlite`).
//!
//! Records are kept as JSON with the columns queries select on beside them; filters run the
//! same [`FlowRunFilter::matches`] code as the memory store, so both backends answer alike.
//! Every state write is a transaction that compares the stored current state's id first.

mod queries;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::memory::{RunTimes, record_state_times, strip};
use super::{FlowRun, FlowRunFilter, SetState, StoreError, StoreFuture};
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

/// A [`Store`](super::Store) in a SQLite file: WAL journal, foreign keys, versioned schema.
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

/// The record of `table` with id `id`.
fn by_id<T: DeserializeOwned>(
    conn: &Connection,
    table: &str,
    id: Uuid,
) -> Result<Option<T>, StoreError> {
    one(
        conn,
        &format!("SELECT body FROM {table} WHERE id = ?1"),
        [id.to_string()],
    )
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
    let mut run: R = by_id(&tx, table, id)?.ok_or(StoreError::NotFound { what, id })?;
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
