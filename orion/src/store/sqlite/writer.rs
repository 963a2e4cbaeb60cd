//! The writer: one thread and one connection that run every write, many per transaction.
//!
//! Writes queue up while a transaction commits; the next transaction takes all of them and
//! commits them together. Each write is atomic on its own (a savepoint, or a single
//! statement), so one failing write does not undo the others. An awaited write resolves only
//! after the commit that holds it is on disk, so "done" means "durable", while concurrent
//! writers share the cost of a commit.
//!
//! Two helper threads keep slow work off the writer. The sync thread makes commits durable:
//! SQLite commits into its write-ahead log without waiting for the disk, then that thread
//! fsyncs the log once for every commit made meanwhile and only then resolves their writes
//! (SQLite's own `synchronous = FULL` would hold the writer for each fsync). The checkpoint
//! thread copies the log into the database file.

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};

use rusqlite::Connection;

use crate::store::{StoreError, StoreFuture};

/// What a job hands back: a function that delivers its result once the commit outcome is known.
pub(super) type Deliver = Box<dyn FnOnce(&Result<(), StoreError>) + Send>;

/// One write for the writer's transaction: runs it on the connection, or, given none (no
/// transaction could begin), only prepares to deliver that failure.
pub(super) type Job = Box<dyn FnOnce(Option<&mut Connection>) -> Deliver + Send>;

/// Most writes in one transaction.
const BATCH: usize = 1024;

/// The write-ahead log's size, in pages, at which the writer checkpoints by itself.
pub(super) const WAL_PAGES_MAX: i64 = 16_384;

/// Least time between two checkpoints by the checkpoint thread, so each copies many commits.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// Queues `work` for the writer; resolves with its result after its transaction commits.
pub(super) fn submit<'a, T: Send + 'static>(
    writer: &Sender<Job>,
    work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
) -> StoreFuture<'a, T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let run = move |conn: Option<&mut Connection>| -> Deliver {
        let result = conn.map(work);
        Box::new(move |commit: &Result<(), StoreError>| {
            let _ = tx.send(match (commit, result) {
                (Ok(()), Some(result)) => result,
                (Err(e), _) => Err(StoreError::Backend(format!(
                    "the write was not committed: {e}"
                ))),
                (Ok(()), None) => Err(StoreError::Backend("the write was not run".into())),
            });
        })
    };
    let job: Job = Box::new(run);
    if writer.send(job).is_err() {
        return Box::pin(std::future::ready(Err(StoreError::Backend(
            "the store's writer has stopped".into(),
        ))));
    }
    Box::pin(async move {
        rx.await.unwrap_or_else(|_| {
            Err(StoreError::Backend(
                "the store's writer stopped before committing".into(),
            ))
        })
    })
}

/// A transaction's outcome, with the writes waiting to hear it.
struct Committed {
    outcome: Result<(), StoreError>,
    deliveries: Vec<Deliver>,
}

/// The writer thread's loop: runs until every sender is gone. `wal`, when given, is the log
/// file the sync thread fsyncs before a commit's writes resolve; without it they resolve at
/// once (the commit reached the operating system).
pub(super) fn run(
    mut conn: Connection,
    checkpoints: Connection,
    wal: Option<PathBuf>,
    jobs: Receiver<Job>,
) {
    let (kick, kicked) = std::sync::mpsc::sync_channel::<()>(1);
    let checkpointer = std::thread::Builder::new()
        .name("orion-sqlite-checkpoint".into())
        .spawn(move || checkpoint_loop(&checkpoints, &kicked));
    let (to_sync, syncing) = std::sync::mpsc::channel::<Committed>();
    let syncer = wal.map(|wal| {
        std::thread::Builder::new()
            .name("orion-sqlite-sync".into())
            .spawn(move || sync_loop(&wal, &syncing))
    });
    while let Ok(first) = jobs.recv() {
        let begun = conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(super::backend);
        let (outcome, deliveries) = match begun {
            Ok(()) => {
                let deliveries = transaction(&mut conn, first, &jobs);
                let committed = conn.execute_batch("COMMIT").map_err(super::backend);
                if committed.is_err() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                (committed, deliveries)
            }
            Err(e) => {
                // Every job queued now hears the failure; none is left waiting.
                let deliveries = std::iter::once(first)
                    .chain(jobs.try_iter())
                    .map(|job| job(None))
                    .collect();
                (Err(e), deliveries)
            }
        };
        let committed = Committed {
            outcome,
            deliveries,
        };
        match &syncer {
            Some(Ok(_)) => {
                if let Err(std::sync::mpsc::SendError(unsent)) = to_sync.send(committed) {
                    deliver(unsent, Err("the sync thread stopped".into()));
                }
            }
            Some(Err(e)) => deliver(committed, Err(format!("no sync thread: {e}"))),
            None => deliver(committed, Ok(())),
        }
        let _ = kick.try_send(());
    }
    drop((kick, to_sync));
    if let Some(Ok(thread)) = syncer {
        let _ = thread.join();
    }
    if let Ok(thread) = checkpointer {
        let _ = thread.join();
    }
}

/// Runs `first` and the jobs queued behind it, up to [`BATCH`], in the open transaction.
fn transaction(conn: &mut Connection, first: Job, jobs: &Receiver<Job>) -> Vec<Deliver> {
    std::iter::once(first)
        .chain(jobs.try_iter().take(BATCH - 1))
        .map(|job| job(Some(&mut *conn)))
        .collect()
}

/// The checkpoint thread's loop: after a commit, copies the log into the database, at most
/// once per [`CHECKPOINT_EVERY`]; ends at once when the writer does.
fn checkpoint_loop(conn: &Connection, kicked: &Receiver<()>) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut kicked_meanwhile = false;
    loop {
        if !kicked_meanwhile && kicked.recv().is_err() {
            return;
        }
        // PASSIVE never waits for the writer; a busy or failed one is retried next time.
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        kicked_meanwhile = false;
        let until = std::time::Instant::now() + CHECKPOINT_EVERY;
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            match kicked.recv_timeout(left) {
                Ok(()) => kicked_meanwhile = true,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

/// The sync thread's loop: one fsync of the log for every commit that arrived meanwhile.
fn sync_loop(wal: &std::path::Path, committed: &Receiver<Committed>) {
    let mut file: Option<File> = None;
    while let Ok(first) = committed.recv() {
        let mut group = vec![first];
        group.extend(committed.try_iter());
        let synced = if group.iter().any(|c| c.outcome.is_ok()) {
            sync(&mut file, wal)
        } else {
            Ok(())
        };
        for c in group {
            deliver(c, synced.clone());
        }
    }
}

/// Fsyncs the log (its data: its size only grows while the store is open).
fn sync(file: &mut Option<File>, wal: &std::path::Path) -> Result<(), String> {
    if file.is_none() {
        *file = Some(File::open(wal).map_err(|e| format!("cannot open {}: {e}", wal.display()))?);
    }
    file.as_ref()
        .map_or(Ok(()), File::sync_data)
        .map_err(|e| format!("cannot fsync {}: {e}", wal.display()))
}

/// Resolves a transaction's writes: with its outcome, failed if it could not be made durable.
fn deliver(committed: Committed, durable: Result<(), String>) {
    let outcome = match (committed.outcome, durable) {
        (Ok(()), Err(why)) => Err(StoreError::Backend(format!(
            "the commit may not be on disk: {why}"
        ))),
        (outcome, _) => outcome,
    };
    for deliver in committed.deliveries {
        deliver(&outcome);
    }
}
