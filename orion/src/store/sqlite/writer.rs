//! The writer: one thread and one connection that run every write, many per transaction.
//!
//! Writes queue up while a transaction commits; the next transaction takes all of them (each
//! in its own savepoint, so one failing write does not undo the others) and commits them
//! together. A write's future resolves only after the commit that holds it, so "done" still
//! means "on disk", while concurrent writers share the cost of a commit.

use std::sync::mpsc::{Receiver, Sender, TryRecvError};

use rusqlite::Connection;

use crate::store::{StoreError, StoreFuture};

/// What a job hands back: a function that delivers its result once the commit outcome is known.
type Deliver = Box<dyn FnOnce(&Result<(), StoreError>) + Send>;
/// One write, run inside the writer's transaction.
pub(super) type Job = Box<dyn FnOnce(&mut Connection) -> Deliver + Send>;

/// Most writes in one transaction.
const BATCH: usize = 512;

/// The write-ahead log's size, in pages, at which the writer checkpoints by itself.
pub(super) const WAL_PAGES_MAX: i64 = 16_384;

/// Least time between two checkpoints by the checkpoint thread, so each copies many commits.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(5);

/// Queues `work` for the writer; resolves with its result after its transaction commits.
pub(super) fn submit<'a, T: Send + 'static>(
    writer: &Sender<Job>,
    work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
) -> StoreFuture<'a, T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move |conn: &mut Connection| {
        let result = work(conn);
        Box::new(move |commit: &Result<(), StoreError>| {
            let _ = tx.send(match commit {
                Ok(()) => result,
                Err(e) => Err(StoreError::Backend(format!(
                    "the write was not committed: {e}"
                ))),
            });
        })
    });
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

/// The writer thread's loop: runs until every sender is gone. Copying the log into the
/// database (a checkpoint) is left to a second thread on `checkpoints`, started here, which a
/// commit wakes; it only reads the log, so the writer goes on meanwhile.
pub(super) fn run(mut conn: Connection, checkpoints: Connection, jobs: Receiver<Job>) {
    let (kick, kicked) = std::sync::mpsc::sync_channel::<()>(1);
    let checkpointer = std::thread::Builder::new()
        .name("orion-sqlite-checkpoint".into())
        .spawn(move || {
            while kicked.recv().is_ok() {
                // PASSIVE never waits for the writer; a busy or failed one is retried next time.
                let _ = checkpoints.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                std::thread::sleep(CHECKPOINT_EVERY);
            }
        });
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let begun = conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(super::backend);
        let mut deliveries = Vec::with_capacity(batch.len());
        if begun.is_ok() {
            for job in batch {
                deliveries.push(job(&mut conn));
            }
        }
        let outcome = begun.and_then(|()| conn.execute_batch("COMMIT").map_err(super::backend));
        if outcome.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for deliver in deliveries {
            deliver(&outcome);
        }
        let _ = kick.try_send(());
    }
    drop(kick);
    if let Ok(thread) = checkpointer {
        let _ = thread.join();
    }
}
