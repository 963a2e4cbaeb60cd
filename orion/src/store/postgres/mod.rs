//! `PostgresStore`: every record in one PostgreSQL database, shared by every process on every
//! machine (feature `postgres`).
//!
//! Records are kept as JSON text with the columns queries select on beside them, as in the
//! SQLite store; a run's state history is a table of its own. Every run state write is a
//! compare-and-set on the run's current state id, and every other read-modify-write of a row
//! checks the row's revision (`rev`) or holds its lock, so any number of processes may write at
//! once. `db` is the connection layer (pool, retries, errors), `schema` the migrations, `runs`
//! the run rows, `queries` the `Store` implementation, `inserts` new records, `queues` claims and leases, `ledger`
//! the concurrency ledger, `filters` the SQL of filters, `listen` the wake-up channel and
//! `behind` the write-behind of the task runs of flow runs executing here.

mod behind;
mod db;
mod filters;
mod inserts;
mod ledger;
mod listen;
mod queries;
mod queues;
mod runs;
mod schema;

use std::sync::Arc;

use super::StoreError;

pub(crate) use db::parse_url;

/// A [`Store`](super::Store) in a PostgreSQL database: versioned schema, a connection pool,
/// and a listening connection that wakes this process's agents when another process makes
/// runs due.
///
/// Open one per process with [`PostgresStore::connect`] (or `Orion::open("postgres://…")`);
/// every process and machine pointing at the same database shares every flow, run, state,
/// log, deployment, work queue and lease. Claims lock the runs they take with
/// `FOR UPDATE SKIP LOCKED`, so agents never wait for each other and never both get a run.
///
/// A connection lost mid-operation (the server restarting, a killed backend, the network gone
/// for a while) is retried with backoff for up to [`PostgresStore::RETRY_FOR`]; writes are
/// written so that a retry of one that had in fact committed finds it done and answers as the
/// first attempt would have.
pub struct PostgresStore {
    db: Arc<db::Db>,
    /// The task runs of flow runs executing here, whose writes are queued (see `behind`).
    live: Arc<crate::store::live::Live>,
    /// The write-behind task's queue.
    jobs: tokio::sync::mpsc::UnboundedSender<behind::Job>,
    /// The runs this store wrote last (see [`runs::Known`]).
    known: runs::Known,
    /// Woken by the listener on every notification that runs may be claimable.
    due: Arc<tokio::sync::Notify>,
    /// The listening connection's task; stopped with the store.
    listener: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.db.describe())
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PostgresStore {
    /// How long an operation that lost its connection is retried before it fails.
    pub const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(60);

    /// Connects to the database a `postgres://` (or `postgresql://`) URL names, brings its
    /// schema up to date (under an advisory lock: processes opening a new database at once
    /// migrate it once) and starts listening for wake-ups.
    ///
    /// The URL takes libpq's options (`host`, `port`, `user`, `password`, `dbname`,
    /// `connect_timeout`, `options=-c search_path=…`, …) and orion's own `pool_size` (the most
    /// connections this store opens for its durable writes and reads, 16 by default; it opens
    /// up to as many again for task-run writes and log lines, and one listening connection).
    /// Only `sslmode=disable` or `prefer`
    /// (which then connects without TLS) are accepted: this build has no TLS.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] saying what was wrong: a malformed URL, a server that cannot
    /// be reached, a refused password, a missing database, a database written by a newer
    /// orion (left untouched) or holding another program's tables of the same names.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let db = Arc::new(db::Db::open(url).await?);
        schema::migrate(&db).await?;
        let due = Arc::new(tokio::sync::Notify::new());
        let listener = tokio::spawn(listen::run(db.config().clone(), Arc::clone(&due)));
        let live = Arc::default();
        let (jobs, queue) = tokio::sync::mpsc::unbounded_channel();
        // Not stopped with the store: it writes what is queued, then ends with the queue.
        tokio::spawn(behind::run(Arc::clone(&db), Arc::clone(&live), queue));
        Ok(PostgresStore {
            db,
            live,
            jobs,
            known: runs::Known::default(),
            due,
            listener,
        })
    }

    /// Writes answered but not yet committed: the queued task-run writes of flow runs
    /// executing through this store. Zero whenever a flow call has returned.
    pub fn queued_writes(&self) -> usize {
        self.live.queued_count()
    }

    /// Queues the write of what live task run `id` gathers until the writer takes it.
    fn queue(&self, id: uuid::Uuid) -> Result<(), StoreError> {
        self.live.queued();
        self.jobs.send(behind::Job::Run(id)).map_err(|_| {
            self.live.settled();
            closing()
        })
    }

    /// `answer`, once the writer is not far behind (a fast flow cannot pile writes up).
    async fn answer_queued<T>(&self, answer: Result<T, StoreError>) -> Result<T, StoreError> {
        if self.live.backlogged() {
            self.live.room().await;
        }
        answer
    }

    /// Waits until every write queued so far has committed (at once when none is queued).
    async fn settle(&self) -> Result<(), StoreError> {
        if !self.live.has_queued() {
            return Ok(());
        }
        let (done, committed) = tokio::sync::oneshot::channel();
        self.jobs
            .send(behind::Job::Barrier(done))
            .map_err(|_| closing())?;
        committed.await.map_err(|_| closing())
    }

    /// The schema version and the rows of the main tables, for `orion database info`.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn stats(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.settle().await?;
        let mut out = vec![(
            "schema version".to_owned(),
            i64::from(self.schema_version().await?),
        )];
        for table in ["flows", "flow_runs", "task_runs", "deployments", "logs"] {
            let sql = format!("SELECT count(*) FROM {table}");
            let n: i64 = db::retrying!(&self.db, |c, _attempt| {
                use db::Q;
                Ok(c.one(&sql, &[]).await?.try_get(0)?)
            })?;
            out.push((table.replace('_', " "), n));
        }
        Ok(out)
    }

    /// Deletes every record (the tables stay, at this schema version), for
    /// `orion database reset`.
    ///
    /// # Errors
    ///
    /// When the database refuses.
    pub async fn reset(&self) -> Result<(), StoreError> {
        self.settle().await?;
        self.live.forget_flow_runs();
        db::retrying!(&self.db, |c, _attempt| {
            c.batch_execute(
                "TRUNCATE flows, flow_runs, flow_run_states, task_runs, task_run_states, cache, logs, deployments, work_queues, concurrency_limits, concurrency_slots RESTART IDENTITY",
            )
            .await?;
            Ok(())
        })
    }

    /// Gives back the space of deleted records and refreshes the planner's statistics
    /// (`VACUUM ANALYZE` of orion's tables), for `orion database vacuum`.
    ///
    /// # Errors
    ///
    /// When the database refuses.
    pub async fn vacuum(&self) -> Result<(), StoreError> {
        db::retrying!(&self.db, |c, _attempt| {
            c.batch_execute(
                "VACUUM ANALYZE flows, flow_runs, flow_run_states, task_runs, task_run_states, cache, logs, deployments, work_queues, concurrency_limits, concurrency_slots",
            )
            .await?;
            Ok(())
        })
    }

    /// The schema version of the database.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub async fn schema_version(&self) -> Result<i32, StoreError> {
        schema::version(&self.db).await
    }
}

fn closing() -> StoreError {
    StoreError::Backend("the store's writer has stopped".into())
}

/// The channel every store notifies when flow runs may have become claimable.
const RUNS_DUE: &str = "orion_runs_due";

use crate::store::bookkeeping::{decode as parse, encode as json};

/// A time as its column keeps it: nanoseconds since the epoch (the far future capped).
fn nanos(t: jiff::Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX)
}
