//! The `Store` operations of [`PostgresStore`]: each one statement or one transaction on a
//! pooled connection, retried while the database is out of reach; the task-run writes of
//! flow runs executing here queued for the write-behind task (`behind`).

use std::sync::Arc;

use uuid::Uuid;

use super::db::{Fail, Q, retrying};
use super::inserts::{insert_flow_run, insert_task_run, upsert_deployment};
use super::runs::{enter_state, first_state_of, history, set_state};
use super::{PostgresStore, RUNS_DUE, filters, json, ledger, nanos, queues};
use crate::state::State;
use crate::store::bookkeeping::sort_queues;
use crate::store::live::Route;
use crate::store::{
    Acquired, Claim, ConcurrencyLimit, Deployment, DeploymentFilter, DeploymentVersion, Flow,
    FlowRun, FlowRunFilter, HistoryBucket, HistoryWindow, LogFilter, LogRecord, Renewal, SetState,
    Slot, SlotRequest, Store, StoreError, StoreFuture, TaskRun, TaskRunFilter, WorkQueue,
};

/// Tells every listening process that flow runs may be claimable (delivered at commit).
async fn notify_due(q: &impl Q) -> Result<(), Fail> {
    q.exec("SELECT pg_notify($1, '')", &[&RUNS_DUE]).await?;
    Ok(())
}

impl PostgresStore {
    /// The record (JSON) `sql` answers for one key, after the queued writes.
    async fn body_of<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        key: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<Option<T>, StoreError> {
        self.settle().await?;
        retrying!(&self.db, |c, _attempt| c.body(sql, &[key]).await)
    }
}

impl Store for PostgresStore {
    fn upsert_flow(&self, flow: Flow) -> StoreFuture<'_, Flow> {
        Box::pin(async move {
            let body = json(&flow)?;
            retrying!(&self.db, |c, _attempt| {
                // One statement, so two processes creating the same flow cannot collide.
                c.exec(
                    "INSERT INTO flows (id, name, body) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                    &[&flow.id, &flow.name, &body],
                )
                .await?;
                let stored: Option<Flow> = c
                    .body("SELECT body FROM flows WHERE name = $1", &[&flow.name])
                    .await?;
                stored.ok_or_else(|| {
                    Fail::Store(StoreError::Backend(format!(
                        "flow {:?} vanished while being created",
                        flow.name
                    )))
                })
            })
        })
    }

    fn read_flow(&self, id: Uuid) -> StoreFuture<'_, Option<Flow>> {
        Box::pin(async move {
            self.body_of("SELECT body FROM flows WHERE id = $1", &id)
                .await
        })
    }

    fn read_flow_by_name<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Flow>> {
        Box::pin(async move {
            self.body_of("SELECT body FROM flows WHERE name = $1", &name)
                .await
        })
    }

    fn read_flows(&self) -> StoreFuture<'_, Vec<Flow>> {
        Box::pin(async move {
            retrying!(&self.db, |c, _attempt| c
                .bodies("SELECT body FROM flows ORDER BY name", &[])
                .await)
        })
    }

    fn create_flow_run(&self, run: FlowRun) -> StoreFuture<'_, FlowRun> {
        Box::pin(async move {
            let run = retrying!(&self.db, |c, attempt| {
                insert_flow_run(&*c, run.clone(), attempt > 0).await
            })?;
            self.live
                .flow_run_stored(run.id, run.state.as_ref().is_some_and(State::is_final));
            Ok(run)
        })
    }

    fn create_flow_runs(&self, runs: Vec<FlowRun>) -> StoreFuture<'_, Vec<FlowRun>> {
        // One transaction for the lot: a scheduler's bulk insert, all or none.
        Box::pin(async move {
            retrying!(&self.db, |c, attempt| {
                let tx = c.transaction().await?;
                let mut stored = Vec::with_capacity(runs.len());
                for run in &runs {
                    stored.push(insert_flow_run(&tx, run.clone(), attempt > 0).await?);
                }
                tx.commit().await?;
                Ok(stored)
            })
        })
    }

    fn delete_flow_runs<'a>(&'a self, filter: &'a FlowRunFilter) -> StoreFuture<'a, usize> {
        Box::pin(async move {
            self.live.forget_flow_runs();
            self.settle().await?;
            retrying!(&self.db, |c, _attempt| {
                let tx = c.transaction().await?;
                let deleted = filters::delete_flow_runs(&tx, filter).await?;
                tx.commit().await?;
                Ok(deleted)
            })
        })
    }

    fn upsert_deployments(&self, deployments: Vec<Deployment>) -> StoreFuture<'_, Vec<Deployment>> {
        Box::pin(async move {
            retrying!(&self.db, |c, _attempt| {
                let tx = c.transaction().await?;
                let mut stored = Vec::with_capacity(deployments.len());
                for d in &deployments {
                    stored.push(upsert_deployment(&tx, d.clone()).await?);
                }
                tx.commit().await?;
                Ok(stored)
            })
        })
    }

    fn read_deployment(&self, id: Uuid) -> StoreFuture<'_, Option<Deployment>> {
        Box::pin(async move {
            self.body_of("SELECT body FROM deployments WHERE id = $1", &id)
                .await
        })
    }

    fn read_deployment_by_name<'a>(
        &'a self,
        flow_name: &'a str,
        name: &'a str,
    ) -> StoreFuture<'a, Option<Deployment>> {
        Box::pin(async move {
            retrying!(&self.db, |c, _attempt| {
                c
                .body(
                    "SELECT d.body FROM deployments d JOIN flows f ON f.id = d.flow_id WHERE f.name = $1 AND d.name = $2",
                    &[&flow_name, &name],
                )
                .await
            })
        })
    }

    fn read_deployments<'a>(
        &'a self,
        filter: &'a DeploymentFilter,
    ) -> StoreFuture<'a, Vec<Deployment>> {
        Box::pin(async move {
            let all: Vec<Deployment> = retrying!(&self.db, |c, _attempt| c
                .bodies("SELECT body FROM deployments", &[])
                .await)?;
            let mut found: Vec<Deployment> =
                all.into_iter().filter(|d| filter.matches(d)).collect();
            found.sort_by(|a, b| (&a.flow_name, &a.name).cmp(&(&b.flow_name, &b.name)));
            Ok(found)
        })
    }

    fn read_deployment_versions(&self) -> StoreFuture<'_, Vec<DeploymentVersion>> {
        Box::pin(async move {
            retrying!(&self.db, |c, _attempt| {
                let rows = c
                    .rows("SELECT id, updated, paused FROM deployments", &[])
                    .await?;
                rows.iter()
                    .map(|r| {
                        let updated: i64 = r.try_get(1)?;
                        Ok(DeploymentVersion {
                            id: r.try_get(0)?,
                            updated: jiff::Timestamp::from_nanosecond(i128::from(updated))
                                .map_err(|e| {
                                    StoreError::Backend(format!("unreadable update time: {e}"))
                                })?,
                            paused: r.try_get(2)?,
                        })
                    })
                    .collect()
            })
        })
    }

    fn delete_deployment(&self, id: Uuid) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            retrying!(&self.db, |c, _attempt| Ok(c
                .exec("DELETE FROM deployments WHERE id = $1", &[&id])
                .await?
                > 0))
        })
    }

    fn read_flow_run(&self, id: Uuid) -> StoreFuture<'_, Option<FlowRun>> {
        Box::pin(async move {
            self.body_of("SELECT body FROM flow_runs WHERE id = $1", &id)
                .await
        })
    }

    fn read_flow_runs<'a>(&'a self, filter: &'a FlowRunFilter) -> StoreFuture<'a, Vec<FlowRun>> {
        Box::pin(async move {
            self.settle().await?;
            retrying!(&self.db, |c, _attempt| filters::flow_runs(&*c, filter)
                .await)
        })
    }

    fn count_flow_runs<'a>(&'a self, filter: &'a FlowRunFilter) -> StoreFuture<'a, usize> {
        Box::pin(async move {
            self.settle().await?;
            retrying!(&self.db, |c, _attempt| filters::count_flow_runs(
                &*c, filter
            )
            .await)
        })
    }

    fn flow_run_history<'a>(
        &'a self,
        filter: &'a FlowRunFilter,
        window: HistoryWindow,
    ) -> StoreFuture<'a, Vec<HistoryBucket>> {
        Box::pin(async move {
            self.settle().await?;
            retrying!(&self.db, |c, _attempt| filters::flow_run_history(
                &*c, filter, window
            )
            .await)
        })
    }

    fn set_flow_run_state(
        &self,
        id: Uuid,
        expected: Option<Uuid>,
        state: State,
    ) -> StoreFuture<'_, SetState> {
        Box::pin(async move {
            // The task runs' queued writes commit first: a flow run never ends before them.
            self.live.take_failure()?;
            self.settle().await?;
            self.live.take_failure()?;
            let finished = state.is_final();
            let written = retrying!(&self.db, |c, attempt| set_state::<FlowRun>(
                &*c,
                &self.known,
                id,
                expected,
                &state,
                attempt > 0
            )
            .await);
            self.live.flow_run_written(id, finished, &written);
            written
        })
    }

    fn read_flow_run_states(&self, id: Uuid) -> StoreFuture<'_, Vec<State>> {
        Box::pin(async move {
            self.settle().await?;
            retrying!(&self.db, |c, _attempt| history::<FlowRun>(&*c, id).await)
        })
    }

    fn create_task_run(&self, mut run: TaskRun) -> StoreFuture<'_, TaskRun> {
        Box::pin(async move {
            self.live.take_failure()?;
            let first = first_state_of(&mut run)?;
            match self.live.create(&run, first)? {
                Route::Queue { .. } => {
                    let queued = self.queue(run.id).map(|()| run);
                    self.answer_queued(queued).await
                }
                Route::Await(first) => {
                    self.settle().await?;
                    retrying!(&self.db => get_fast, |c, attempt| insert_task_run(
                        &*c,
                        &run,
                        first.as_ref(),
                        attempt > 0
                    )
                    .await)?;
                    self.known.put(&run, run.id, 0);
                    Ok(run)
                }
            }
        })
    }

    fn read_task_run(&self, id: Uuid) -> StoreFuture<'_, Option<TaskRun>> {
        Box::pin(async move {
            self.body_of("SELECT body FROM task_runs WHERE id = $1", &id)
                .await
        })
    }

    fn read_task_runs<'a>(&'a self, filter: &'a TaskRunFilter) -> StoreFuture<'a, Vec<TaskRun>> {
        Box::pin(async move {
            self.settle().await?;
            retrying!(&self.db, |c, _attempt| filters::task_runs(&*c, filter)
                .await)
        })
    }

    fn set_task_run_state(
        &self,
        id: Uuid,
        expected: Option<Uuid>,
        state: State,
    ) -> StoreFuture<'_, SetState> {
        Box::pin(async move {
            self.live.take_failure()?;
            match self.live.set_state(id, expected, state, enter_state)? {
                Route::Queue {
                    answer: Err(current),
                    ..
                } => Ok(SetState::Conflict { current }),
                Route::Queue {
                    answer: Ok(()),
                    job,
                } => {
                    let queued = if job { self.queue(id) } else { Ok(()) };
                    self.answer_queued(queued.map(|()| SetState::Written)).await
                }
                Route::Await(state) => {
                    self.settle().await?;
                    retrying!(&self.db => get_fast, |c, attempt| set_state::<TaskRun>(
                        &*c,
                        &self.known,
                        id,
                        expected,
                        &state,
                        attempt > 0
                    )
                    .await)
                }
            }
        })
    }

    fn read_task_run_states(&self, id: Uuid) -> StoreFuture<'_, Vec<State>> {
        Box::pin(async move {
            self.settle().await?;
            retrying!(&self.db, |c, _attempt| history::<TaskRun>(&*c, id).await)
        })
    }

    fn read_cached_state<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<State>> {
        Box::pin(async move {
            self.body_of("SELECT body FROM cache WHERE key = $1", &key)
                .await
        })
    }

    fn claim_flow_runs<'a>(&'a self, claim: &'a Claim) -> StoreFuture<'a, Vec<FlowRun>> {
        Box::pin(async move {
            let claimed = retrying!(&self.db, |c, attempt| {
                let tx = c.transaction().await?;
                let claimed = queues::claim(&tx, claim, attempt > 0).await?;
                tx.commit().await?;
                Ok(claimed)
            })?;
            Ok(claimed
                .into_iter()
                .map(|(run, rev)| {
                    // Held here now: its task runs' writes may be queued, and its next state
                    // write (Running) needs no read.
                    self.live.flow_run_stored(run.id, false);
                    if run.state.as_ref().is_some_and(State::is_pending) {
                        self.known.put(&run, run.id, rev);
                    }
                    run
                })
                .collect())
        })
    }

    fn renew_leases(
        &self,
        owner: Uuid,
        runs: Vec<Uuid>,
        expires: jiff::Timestamp,
        now: jiff::Timestamp,
    ) -> StoreFuture<'_, Vec<Renewal>> {
        Box::pin(async move {
            retrying!(&self.db, |c, _attempt| {
                let tx = c.transaction().await?;
                let renewed = queues::renew(&tx, owner, &runs, expires, now).await?;
                tx.commit().await?;
                Ok(renewed)
            })
        })
    }

    fn upsert_work_queue(&self, queue: WorkQueue) -> StoreFuture<'_, WorkQueue> {
        Box::pin(async move {
            retrying!(&self.db, |c, _attempt| {
                let tx = c.transaction().await?;
                let stored = queues::upsert(&tx, queue.clone()).await?;
                // Resumed, or given room: its runs may be claimable now.
                notify_due(&tx).await?;
                tx.commit().await?;
                Ok(stored)
            })
        })
    }

    fn read_work_queue<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<WorkQueue>> {
        Box::pin(async move {
            self.body_of("SELECT body FROM work_queues WHERE name = $1", &name)
                .await
        })
    }

    fn read_work_queues(&self) -> StoreFuture<'_, Vec<WorkQueue>> {
        Box::pin(async move {
            let mut queues: Vec<WorkQueue> = retrying!(&self.db, |c, _attempt| c
                .bodies("SELECT body FROM work_queues", &[])
                .await)?;
            sort_queues(&mut queues);
            Ok(queues)
        })
    }

    fn delete_work_queue<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            retrying!(&self.db, |c, _attempt| Ok(c
                .exec("DELETE FROM work_queues WHERE name = $1", &[&name])
                .await?
                > 0))
        })
    }

    fn poll_work_queues(
        &self,
        names: Vec<String>,
        agent: String,
        at: jiff::Timestamp,
    ) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            retrying!(&self.db, |c, _attempt| {
                let tx = c.transaction().await?;
                queues::polled(&tx, &names, &agent, at).await?;
                tx.commit().await?;
                Ok(())
            })
        })
    }

    fn upsert_concurrency_limit(
        &self,
        limit: ConcurrencyLimit,
    ) -> StoreFuture<'_, ConcurrencyLimit> {
        Box::pin(async move {
            retrying!(&self.db, |c, _attempt| {
                let tx = c.transaction().await?;
                let stored = ledger::upsert(&tx, limit.clone()).await?;
                tx.commit().await?;
                Ok(stored)
            })
        })
    }

    fn read_concurrency_limit<'a>(
        &'a self,
        name: &'a str,
    ) -> StoreFuture<'a, Option<ConcurrencyLimit>> {
        Box::pin(async move {
            self.body_of("SELECT body FROM concurrency_limits WHERE name = $1", &name)
                .await
        })
    }

    fn read_concurrency_limits(&self) -> StoreFuture<'_, Vec<ConcurrencyLimit>> {
        Box::pin(async move {
            retrying!(&self.db, |c, _attempt| c
                .bodies("SELECT body FROM concurrency_limits ORDER BY name", &[])
                .await)
        })
    }

    fn delete_concurrency_limit<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            retrying!(&self.db, |c, _attempt| {
                let tx = c.transaction().await?;
                let existed = ledger::delete(&tx, name).await?;
                tx.commit().await?;
                Ok(existed)
            })
        })
    }

    fn read_slots<'a>(&'a self, limit: &'a str) -> StoreFuture<'a, Vec<Slot>> {
        Box::pin(async move { retrying!(&self.db, |c, _attempt| ledger::rows(&*c, limit).await) })
    }

    fn acquire_slots(&self, request: SlotRequest) -> StoreFuture<'_, Acquired> {
        Box::pin(async move {
            retrying!(&self.db, |c, _attempt| {
                let tx = c.transaction().await?;
                let acquired = ledger::acquire(&tx, &request).await?;
                tx.commit().await?;
                Ok(acquired)
            })
        })
    }

    fn release_slots(&self, holder: Uuid) -> StoreFuture<'_, Vec<String>> {
        Box::pin(
            async move { retrying!(&self.db, |c, _attempt| ledger::release(&*c, holder).await) },
        )
    }

    fn renew_slots(
        &self,
        owner: Uuid,
        holders: Vec<Uuid>,
        expires: jiff::Timestamp,
        now: jiff::Timestamp,
    ) -> StoreFuture<'_, Vec<Uuid>> {
        Box::pin(async move {
            retrying!(&self.db, |c, _attempt| {
                let tx = c.transaction().await?;
                let lost = ledger::renew(&tx, owner, &holders, expires, now).await?;
                tx.commit().await?;
                Ok(lost)
            })
        })
    }

    fn reset_slots<'a>(&'a self, limit: &'a str) -> StoreFuture<'a, usize> {
        Box::pin(async move { retrying!(&self.db, |c, _attempt| ledger::reset(&*c, limit).await) })
    }

    fn reap_slots(&self, now: jiff::Timestamp) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move { retrying!(&self.db, |c, _attempt| ledger::reap(&*c, now).await) })
    }

    fn write_logs(&self, logs: Vec<LogRecord>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if logs.is_empty() {
                return Ok(());
            }
            let flow_runs: Vec<Option<Uuid>> = logs.iter().map(|l| l.flow_run_id).collect();
            let task_runs: Vec<Option<Uuid>> = logs.iter().map(|l| l.task_run_id).collect();
            let levels: Vec<i32> = logs.iter().map(|l| l.level as i32).collect();
            let times: Vec<i64> = logs.iter().map(|l| nanos(l.timestamp)).collect();
            let bodies = logs.iter().map(json).collect::<Result<Vec<String>, _>>()?;
            // One statement for the lot, in order (`id` follows the arrays' order).
            retrying!(&self.db => get_fast, |c, _attempt| {
                c.exec(
                    "INSERT INTO logs (flow_run_id, task_run_id, level, ts, body) SELECT f, t, v, ts, b FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::bigint[], $5::text[]) WITH ORDINALITY AS l(f, t, v, ts, b, n) ORDER BY n",
                    &[&flow_runs, &task_runs, &levels, &times, &bodies],
                )
                .await?;
                Ok(())
            })
        })
    }

    fn read_logs<'a>(&'a self, filter: &'a LogFilter) -> StoreFuture<'a, Vec<LogRecord>> {
        Box::pin(async move {
            self.settle().await?;
            let min = filter.min_level.map_or(0, |l| l as i32);
            let limit = filter
                .limit
                .map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
            let offset = i64::try_from(filter.offset).unwrap_or(i64::MAX);
            let logs: Vec<LogRecord> = retrying!(&self.db, |c, _attempt| {
                match (filter.flow_run_id, filter.task_run_id) {
                (Some(id), _) => c.bodies("SELECT body FROM logs WHERE flow_run_id = $1 AND level >= $2 ORDER BY ts, id LIMIT $3 OFFSET $4", &[&id, &min, &limit, &offset]).await,
                (None, Some(id)) => c.bodies("SELECT body FROM logs WHERE task_run_id = $1 AND level >= $2 ORDER BY ts, id LIMIT $3 OFFSET $4", &[&id, &min, &limit, &offset]).await,
                (None, None) => c.bodies("SELECT body FROM logs WHERE level >= $1 ORDER BY ts, id LIMIT $2 OFFSET $3", &[&min, &limit, &offset]).await,
            }
            })?;
            Ok(logs.into_iter().filter(|l| filter.matches(l)).collect())
        })
    }

    /// A durable commit: the server's log is flushed through it, so every commit answered
    /// before it (the fast pool's task-run writes and logs) is durable once it is. It takes a
    /// transaction id and writes nothing else, so flushes never wait for each other's locks
    /// (a row updated for the purpose made 64 concurrent flow runs queue on it: 803 → 888
    /// runs/s when removed).
    fn flush(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.settle().await?;
            self.live.take_failure()?;
            retrying!(&self.db, |c, _attempt| {
                c.exec("SELECT pg_current_xact_id()", &[]).await?;
                Ok(())
            })
        })
    }

    fn runs_due_hint(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(Arc::clone(&self.due))
    }
}
