//! `SqliteStore`: every record in one SQLite file (feature `sqlite`).
//!
//! Records are kept as JSON with the columns queries select on beside them; filters run the
//! same [`FlowRunFilter::matches`](crate::store::FlowRunFilter::matches) code as the memory
//! store, so both backends answer alike. Every state write compares the run's current state id.
//!
//! Reads run on connections of their own (two: a long read, such as a dashboard's chart, does
//! not hold up an agent's); every write goes to one writer thread (`writer`),
//! which commits many at a time. The task-run writes and logs of flow runs executing here are
//! answered before they commit and gathered per run (`live`). `runs` writes run rows and their
//! histories, `queries` is the `Store` implementation, `schema` the versioned migrations and
//! `file` the file's permissions and diagnoses.

mod file;
mod filters;
mod ledger;
mod queries;
mod queues;
mod runs;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{StoreError, StoreFuture};

/// How far a commit goes before a write's future resolves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every commit is fsynced before its writes resolve: it survives a power cut (the
    /// default). Commits made while one fsync runs share the next.
    #[default]
    Full,
    /// Commits reach the operating system: they survive a killed process but not a power cut
    /// (`synchronous = NORMAL` without the fsync).
    Normal,
}

/// A [`Store`](super::Store) in a SQLite file: WAL journal, foreign keys, versioned schema.
///
/// Several stores, in one process or many, may use the same file at once: each has one writer
/// thread, waits its turn for the file's write lock (never a "database is locked" error under
/// ten seconds of contention), and checks every state write against the file, so a run is
/// claimed by one of them only.
///
/// Durability: with [`Durability::Full`] (the default) a write that is awaited resolves only
/// once its commit is fsynced. The task-run writes and log lines of a flow run executing
/// through this store are answered before they commit and written in order, many per commit:
/// the flow run's next awaited write (its final state at the latest) and
/// [`Store::flush`](super::Store::flush) come after all of them. A crash loses only such
/// unconfirmed writes, and never leaves a gap: what survives is everything up to some point.
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
    /// The connections reads use: a read takes a free one.
    readers: [Mutex<Connection>; 2],
    /// The reader a read tries first (turns round, so both are used).
    next_reader: std::sync::atomic::AtomicUsize,
    /// Queue of the writer thread, which owns a second connection (None once dropping).
    writer: Mutex<Option<std::sync::mpsc::Sender<writer::Job>>>,
    /// The writer thread, joined on drop so the file is closed when the store is.
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The runs executing through this store, whose task-run writes are queued; see `live`.
    live: Arc<crate::store::live::Live>,
    path: PathBuf,
}

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

use crate::store::bookkeeping::{decode as parse, encode as json};

fn ready<'a, T: Send + 'a>(value: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

/// Copies the write-ahead log into the database and empties it, when no other process is
/// using the file at that moment (it never waits for one).
///
/// A program that ends without closing its store (the default runtime lives until exit)
/// leaves its log behind, and SQLite reuses a log from its start only once every frame in it
/// has been copied back: without this, a program run from cron every hour would grow the
/// log by what each run wrote, for ever.
fn truncate_log(conn: &Connection) {
    let _ = conn.busy_timeout(std::time::Duration::ZERO);
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
}

impl SqliteStore {
    /// Opens (creating it, and its directory, if needed) the database at `path` with every
    /// commit fsynced, and brings its schema up to date. A new file is readable by its owner
    /// only. The store runs three threads (writer, fsync, checkpoints), stopped when it is
    /// dropped after every queued write has committed.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`], saying why, for a file that is not a database or is another
    /// program's, one written by a newer orion or whose tables do not match its schema version,
    /// a read-only or unreadable file, and a directory where the file or SQLite's log cannot
    /// be created. The file is never altered then.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, Durability::Full)
    }

    /// [`SqliteStore::open`] with a chosen [`Durability`].
    ///
    /// # Errors
    ///
    /// As [`SqliteStore::open`].
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self, StoreError> {
        // SQLite itself never waits for the disk at commit (NORMAL); with Durability::Full the
        // writer's sync thread fsyncs the log before any write resolves (see `writer`).
        // journal_size_limit: a log that grew (a burst of writes) is cut back to 4 MiB each
        // time it is reset, so a long-running process never keeps a large one.
        let pragmas = "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16384; PRAGMA journal_size_limit = 4194304;";
        let path = path.as_ref().to_path_buf();
        let io = |what: &str, e: std::io::Error| {
            StoreError::Backend(format!("{what} {}: {e}", path.display()))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io("cannot create the directory of", e))?;
        }
        let existed = path.exists();
        // The file system's own reason, when there is one, says more than SQLite's message.
        let plainly = |e: String| StoreError::Backend(file::diagnose(&path).unwrap_or(e));
        let mut conn = Connection::open(&path)
            .map_err(|e| plainly(format!("cannot open {}: {e}", path.display())))?;
        if !existed {
            file::restrict_permissions(&path)
                .map_err(|e| io("cannot restrict the permissions of", e))?;
        }
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(backend)?;
        if !existed {
            // A run row with its history is about a kilobyte: 8 KiB pages split less often.
            conn.pragma_update(None, "page_size", 8192)
                .map_err(backend)?;
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| {
                plainly(format!(
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
        conn.execute_batch(pragmas).map_err(backend)?;
        schema::migrate(&mut conn)?;
        schema::check(&conn)?;
        truncate_log(&conn);
        let connect = || -> Result<Connection, StoreError> {
            let c = Connection::open(&path).map_err(backend)?;
            c.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(backend)?;
            c.execute_batch(pragmas).map_err(backend)?;
            Ok(c)
        };
        let write_conn = connect()?;
        // Checkpoints run on a thread of their own (see `writer`); the writer's own are only a
        // bound on the log's size, should that thread fall behind.
        write_conn
            .pragma_update(None, "wal_autocheckpoint", writer::WAL_PAGES_MAX)
            .map_err(backend)?;
        let checkpoint_conn = connect()?;
        let second_reader = connect()?;
        for c in [&conn, &second_reader, &write_conn] {
            // Statements are prepared once and kept: without the planner-stability flag,
            // SQLite prepares a statement again whenever a new value is bound to a parameter
            // it compared while planning (a third of the writer's time).
            c.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
                .map_err(backend)?;
            c.set_prepared_statement_cache_capacity(64);
        }
        let wal = (durability == Durability::Full).then(|| {
            let mut name = path.clone().into_os_string();
            name.push("-wal");
            PathBuf::from(name)
        });
        let (sender, jobs) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("orion-sqlite-writer".into())
            .spawn(move || writer::run(write_conn, checkpoint_conn, wal, jobs))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            readers: [Mutex::new(conn), Mutex::new(second_reader)],
            next_reader: std::sync::atomic::AtomicUsize::new(0),
            writer: Mutex::new(Some(sender)),
            writer_thread: Mutex::new(Some(thread)),
            live: Arc::default(),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes answered but not yet durable: the queued writes of the task runs and logs of
    /// flow runs executing through this store. Zero whenever a flow call has returned.
    pub fn queued_writes(&self) -> usize {
        self.live.queued_count()
    }

    /// Rebuilds the file to give back the space of deleted records.
    ///
    /// # Errors
    ///
    /// When SQLite cannot.
    pub fn vacuum(&self) -> Result<(), StoreError> {
        self.reader().execute_batch("VACUUM").map_err(backend)
    }

    /// Rows per table and the schema version, for `orion database info`.
    ///
    /// # Errors
    ///
    /// When the file cannot be read.
    pub fn stats(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.reader();
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
        let conn = self.reader();
        let mut stmt = conn.prepare("PRAGMA integrity_check").map_err(backend)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(backend)?;
        let lines: Result<Vec<String>, _> = rows.collect();
        Ok(lines.map_err(backend)?.join("\n"))
    }

    fn sender(&self) -> Option<std::sync::mpsc::Sender<writer::Job>> {
        self.writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs a write on the writer thread and resolves after its commit; see `writer`.
    fn write<'a, T: Send + 'static>(
        &'a self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'a, T> {
        match self.sender() {
            Some(sender) => writer::submit(&sender, move |conn| atomically(conn, work)),
            None => ready(Err(closing())),
        }
    }

    /// Queues a job that writes what live task run `run` gathers until the writer reaches it;
    /// see `live`.
    fn queue(&self, run: Uuid) -> Result<(), StoreError> {
        let (live, heard) = (Arc::clone(&self.live), Arc::clone(&self.live));
        self.queue_unawaited(
            move |tx| match live.take(run) {
                // One statement writes the row, so a failure leaves nothing behind; only with
                // cache entries after it is a savepoint needed to undo it.
                Some(taken) if taken.cache.is_empty() => queries::write_gathered(tx, taken),
                Some(taken) => atomically(tx, |tx| queries::write_gathered(tx, taken)),
                None => Ok(true),
            },
            move |done| match done {
                Ok(true) => {}
                Ok(false) => heard.diverged(run),
                Err(e) => heard.fail(run, &e),
            },
        )
    }

    /// Queues `work` without anyone waiting for it; `heard` gets its outcome once its
    /// transaction has ended (failed if the commit did). `work` makes itself atomic when it
    /// has to (see [`atomically`]).
    fn queue_unawaited(
        &self,
        work: impl FnOnce(&Connection) -> Result<bool, StoreError> + Send + 'static,
        heard: impl FnOnce(Result<bool, StoreError>) + Send + 'static,
    ) -> Result<(), StoreError> {
        let sender = self.sender().ok_or_else(closing)?;
        let live = Arc::clone(&self.live);
        let run = move |conn: Option<&mut Connection>| -> writer::Deliver {
            let done = conn.map(|conn| work(conn));
            Box::new(move |commit: &Result<(), StoreError>| {
                heard(match (commit, done) {
                    (Ok(()), Some(done)) => done,
                    (Err(e), _) => Err(StoreError::Backend(e.to_string())),
                    (Ok(()), None) => Err(StoreError::Backend("the write was not run".into())),
                });
                live.settled();
            })
        };
        let job: writer::Job = Box::new(run);
        self.live.queued();
        sender.send(job).map_err(|_| {
            self.live.settled();
            closing()
        })
    }

    /// Answers a queued write with `answer`, first waiting for the writer to catch up when it
    /// is far behind, so a fast flow cannot pile up writes without bound.
    fn answer_queued<T: Send + 'static>(
        &self,
        answer: Result<T, StoreError>,
    ) -> StoreFuture<'_, T> {
        if !self.live.backlogged() {
            return ready(answer);
        }
        Box::pin(async move {
            self.live.room().await;
            answer
        })
    }

    /// Waits until every write queued so far has committed.
    fn barrier(&self) -> StoreFuture<'_, ()> {
        self.write(|_| Ok(()))
    }

    /// A reading connection: a free one, else the next one once it is free.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        use std::sync::TryLockError;
        let n = self.readers.len();
        let first = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % n;
        for i in 0..n {
            match self.readers[(first + i) % n].try_lock() {
                Ok(conn) => return conn,
                // A read that panicked left nothing half-done on its connection (reads
                // write nothing), so it stays usable.
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.readers[first]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a read on a reading connection, after the queued writes commit when there are
    /// any, so a caller always reads its own writes.
    fn with<'a, T: Send + 'a>(
        &'a self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'a,
    ) -> StoreFuture<'a, T> {
        if !self.live.has_queued() {
            return ready(f(&mut self.reader()));
        }
        let barrier = self.barrier();
        Box::pin(async move {
            barrier.await?;
            f(&mut self.reader())
        })
    }
}

fn closing() -> StoreError {
    StoreError::Backend("the store is closing".into())
}

/// Runs `work` as one unit inside the writer's transaction: all its statements or none.
fn atomically<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    exec(conn, "SAVEPOINT job", [])?;
    let done = work(conn);
    if done.is_err() {
        exec(conn, "ROLLBACK TO job", [])?;
    }
    exec(conn, "RELEASE job", [])?;
    done
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

fn one<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<T>, StoreError> {
    let body: Option<String> = conn
        .prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row(params, |r| r.get(0)))
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

/// Runs one statement, prepared once per connection.
fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute(params))
        .map_err(backend)
}

/// The one integer a query answers (a count, a maximum), prepared once per connection.
fn integer(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<i64, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row(params, |r| r.get(0)))
        .map_err(backend)
}

fn exists(conn: &Connection, sql: &str, id: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row([id], |_| Ok(())))
        .optional()
        .map_err(backend)?
        .is_some())
}
