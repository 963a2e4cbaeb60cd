//! Write-behind for the task runs of flow runs executing through this store (see
//! [`crate::store::live`]): their writes are answered at once and written by one task, many
//! runs per transaction, their statements pipelined on one connection of the fast pool. A
//! flow run's next awaited write (its final state at the latest), a flush and every read wait
//! for what was queued before them, so a caller always reads its own writes and a flow run
//! never finishes before its task runs are stored.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::db::{Db, Fail, Q, retrying};
use crate::store::StoreError;
use crate::store::bookkeeping::type_code;
use crate::store::live::{Live, Taken};

/// What the writer is asked to do, in order.
pub(super) enum Job {
    /// Write what this live task run gathered.
    Run(Uuid),
    /// Answer once everything queued before has committed.
    Barrier(oneshot::Sender<()>),
}

/// Live runs at most written in one transaction.
const BATCH: usize = 256;

/// The writer: takes the jobs queued so far, writes them, answers the barriers among them.
pub(super) async fn run(db: Arc<Db>, live: Arc<Live>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut taken = Vec::new();
        let mut runs = 0;
        let mut barriers = Vec::new();
        for job in batch {
            match job {
                Job::Run(id) => {
                    runs += 1;
                    taken.extend(live.take(id));
                }
                Job::Barrier(done) => barriers.push(done),
            }
        }
        if !taken.is_empty() {
            write(&db, &live, &taken).await;
        }
        for _ in 0..runs {
            live.settled();
        }
        for done in barriers {
            let _ = done.send(());
        }
    }
}

/// Writes gathered runs in one transaction; when it fails for one of them, each on its own,
/// so only the failing run's writes are reported lost.
async fn write(db: &Db, live: &Live, taken: &[Taken]) {
    let together: Result<Vec<bool>, StoreError> = retrying!(db => get_fast, |c, _attempt| {
        let tx = c.transaction().await?;
        let written =
            futures_util::future::try_join_all(taken.iter().map(|t| write_one(&tx, t))).await?;
        tx.commit().await?;
        Ok(written)
    });
    let outcomes: Vec<Result<bool, StoreError>> = match together {
        Ok(written) => written.into_iter().map(Ok).collect(),
        Err(_) if taken.len() > 1 => {
            let mut each = Vec::with_capacity(taken.len());
            for t in taken {
                each.push(retrying!(db => get_fast, |c, _attempt| {
                    let tx = c.transaction().await?;
                    let written = write_one(&tx, t).await?;
                    tx.commit().await?;
                    Ok(written)
                }));
            }
            each
        }
        Err(e) => vec![Err(e)],
    };
    for (t, outcome) in taken.iter().zip(outcomes) {
        match outcome {
            Ok(true) => {}
            // Another process moved it: its next write is awaited and meets the real state.
            Ok(false) => live.diverged(t.record.id),
            Err(e) => live.fail(t.record.id, &e),
        }
    }
}

/// One run's gathered writes: its row (inserted, or updated if its state is still the one
/// last written) with the states to append, and cache entries. `false`: another writer
/// moved the run; nothing was written.
async fn write_one(tx: &deadpool_postgres::Transaction<'_>, t: &Taken) -> Result<bool, Fail> {
    let run = &t.record;
    let body = super::json(run)?;
    let state = run.state.as_ref();
    let state_id = state.map(crate::state::State::id);
    let kind = state.map(|s| type_code(s.state_type()));
    let written: i64 = match t.update_from {
        None => {
            let inserted = tx
                .one(
                    "WITH r AS (INSERT INTO task_runs (id, flow_run_id, name, state_id, state_type, body) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING id), s AS (INSERT INTO task_run_states (run_id, body) SELECT r.id, x.b FROM r, unnest($7::text[]) WITH ORDINALITY AS x(b, n) ORDER BY x.n) SELECT count(*) FROM r",
                    &[&run.id, &run.flow_run_id, &run.name, &state_id, &kind, &body, &t.states],
                )
                .await
                .map_err(|e| e.missing("flow run", run.flow_run_id.unwrap_or_default()))?;
            // An id already stored is this run, written by an attempt whose answer was lost
            // (ids of other runs are refused before they are queued).
            inserted.try_get::<_, i64>(0)?.max(1)
        }
        Some(expected) => tx
            .one(
                "WITH u AS (UPDATE task_runs SET body = $3, state_id = $4, state_type = $5, rev = rev + 1 WHERE id = $1 AND state_id IS NOT DISTINCT FROM $2 RETURNING id), s AS (INSERT INTO task_run_states (run_id, body) SELECT u.id, x.b FROM u, unnest($6::text[]) WITH ORDINALITY AS x(b, n) ORDER BY x.n) SELECT count(*) FROM u",
                &[&run.id, &expected, &body, &state_id, &kind, &t.states],
            )
            .await?
            .try_get(0)?,
    };
    if written == 0 {
        return Ok(false);
    }
    for entry in &t.cache {
        super::runs::store_cache(tx, Some(entry)).await?;
    }
    Ok(true)
}
