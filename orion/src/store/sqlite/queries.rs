//! The `Store` operations of [`SqliteStore`]: reads on the shared connection, writes queued
//! for the writer thread.

use rusqlite::{Connection, params};
use uuid::Uuid;

use super::filters;
use super::runs::{
    enter_state, first_state, history, nanos, read_history, set_state, state_columns, store_cache,
    update_run,
};
use super::{SqliteStore, atomically, backend, by_id, exec, exists, json, many, one, ready};
use crate::state::State;
use crate::store::live::{Route, Taken};
use crate::store::{
    Deployment, DeploymentFilter, Flow, FlowRun, FlowRunFilter, HistoryBucket, HistoryWindow,
    LogFilter, LogRecord, SetState, Store, StoreError, StoreFuture, TaskRun, TaskRunFilter,
};

impl Store for SqliteStore {
    fn upsert_flow(&self, flow: Flow) -> StoreFuture<'_, Flow> {
        self.write(move |tx| {
            // One statement, so two processes creating the same flow cannot collide.
            exec(tx,
                "INSERT INTO flows (id, name, body) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
                params![flow.id.to_string(), flow.name, json(&flow)?],
            )?;
            one(tx, "SELECT body FROM flows WHERE name = ?1", [&flow.name])?
                .ok_or_else(|| StoreError::Backend(format!("flow {:?} vanished while being created", flow.name)))
        })
    }

    fn read_flow(&self, id: Uuid) -> StoreFuture<'_, Option<Flow>> {
        self.with(move |conn| by_id(conn, "flows", id))
    }

    fn read_flow_by_name<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Flow>> {
        self.with(move |conn| one(conn, "SELECT body FROM flows WHERE name = ?1", [name]))
    }

    fn read_flows(&self) -> StoreFuture<'_, Vec<Flow>> {
        self.with(move |conn| many(conn, "SELECT body FROM flows ORDER BY name", []))
    }

    fn create_flow_run(&self, mut run: FlowRun) -> StoreFuture<'_, FlowRun> {
        let created = self.write(move |tx| insert_flow_run(tx, &mut run).map(|()| run));
        Box::pin(async move {
            let run = created.await?;
            self.live
                .flow_run_stored(run.id, run.state.as_ref().is_some_and(State::is_final));
            Ok(run)
        })
    }

    fn create_flow_runs(&self, runs: Vec<FlowRun>) -> StoreFuture<'_, Vec<FlowRun>> {
        // One transaction for the lot: a scheduler's bulk insert, all or none.
        self.write(move |tx| {
            runs.into_iter()
                .map(|mut run| insert_flow_run(tx, &mut run).map(|()| run))
                .collect()
        })
    }

    fn claim_flow_runs<'a>(
        &'a self,
        claim: &'a crate::store::Claim,
    ) -> StoreFuture<'a, Vec<FlowRun>> {
        let owned = claim.clone();
        let claimed = self.write(move |tx| super::queues::claim(tx, &owned));
        Box::pin(async move {
            let claimed = claimed.await?;
            for run in &claimed {
                // Held here now: its task runs' writes may be queued.
                self.live.flow_run_stored(run.id, false);
            }
            Ok(claimed)
        })
    }

    fn renew_leases(
        &self,
        owner: Uuid,
        runs: Vec<Uuid>,
        expires: jiff::Timestamp,
        now: jiff::Timestamp,
    ) -> StoreFuture<'_, Vec<crate::store::Renewal>> {
        self.write(move |tx| super::queues::renew(tx, owner, &runs, expires, now))
    }

    fn upsert_work_queue(
        &self,
        queue: crate::store::WorkQueue,
    ) -> StoreFuture<'_, crate::store::WorkQueue> {
        self.write(move |tx| super::queues::upsert(tx, queue))
    }

    fn read_work_queue<'a>(
        &'a self,
        name: &'a str,
    ) -> StoreFuture<'a, Option<crate::store::WorkQueue>> {
        self.with(move |conn| one(conn, "SELECT body FROM work_queues WHERE name = ?1", [name]))
    }

    fn read_work_queues(&self) -> StoreFuture<'_, Vec<crate::store::WorkQueue>> {
        self.with(move |conn| {
            let mut queues: Vec<crate::store::WorkQueue> =
                many(conn, "SELECT body FROM work_queues", [])?;
            crate::store::bookkeeping::sort_queues(&mut queues);
            Ok(queues)
        })
    }

    fn delete_work_queue<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        let name = name.to_owned();
        self.write(move |tx| Ok(exec(tx, "DELETE FROM work_queues WHERE name = ?1", [name])? > 0))
    }

    fn poll_work_queues(
        &self,
        names: Vec<String>,
        agent: String,
        at: jiff::Timestamp,
    ) -> StoreFuture<'_, ()> {
        self.write(move |tx| super::queues::polled(tx, &names, &agent, at))
    }

    fn delete_flow_runs<'a>(&'a self, filter: &'a FlowRunFilter) -> StoreFuture<'a, usize> {
        let filter = filter.clone();
        self.live.forget_flow_runs();
        self.write(move |tx| {
            let doomed = filters::flow_runs(tx, &filter)?;
            for run in &doomed {
                let id = run.id.to_string();
                exec(tx, "DELETE FROM logs WHERE flow_run_id = ?1", [&id])?;
                exec(tx, "DELETE FROM flow_runs WHERE id = ?1", [&id])?;
            }
            Ok(doomed.len())
        })
    }

    fn read_flow_run(&self, id: Uuid) -> StoreFuture<'_, Option<FlowRun>> {
        self.with(move |conn| by_id(conn, "flow_runs", id))
    }

    fn read_flow_runs<'a>(&'a self, filter: &'a FlowRunFilter) -> StoreFuture<'a, Vec<FlowRun>> {
        self.with(move |conn| filters::flow_runs_page(conn, filter))
    }

    fn count_flow_runs<'a>(&'a self, filter: &'a FlowRunFilter) -> StoreFuture<'a, usize> {
        self.with(move |conn| filters::count_flow_runs(conn, filter))
    }

    fn flow_run_history<'a>(
        &'a self,
        filter: &'a FlowRunFilter,
        window: HistoryWindow,
    ) -> StoreFuture<'a, Vec<HistoryBucket>> {
        self.with(move |conn| filters::flow_run_history(conn, filter, window))
    }

    fn set_flow_run_state(
        &self,
        id: Uuid,
        expected: Option<Uuid>,
        state: State,
    ) -> StoreFuture<'_, SetState> {
        if let Err(e) = self.live.take_failure() {
            return Box::pin(std::future::ready(Err(e)));
        }
        let finished = state.is_final();
        let written = self.write(move |tx| set_state::<FlowRun>(tx, id, expected, state));
        Box::pin(async move {
            let written = written.await;
            self.live.flow_run_written(id, finished, &written);
            written
        })
    }

    fn read_flow_run_states(&self, id: Uuid) -> StoreFuture<'_, Vec<State>> {
        self.with(move |conn| read_history::<FlowRun>(conn, id))
    }

    fn create_task_run(&self, mut run: TaskRun) -> StoreFuture<'_, TaskRun> {
        first_state(&mut run);
        let route = self.live.take_failure().and_then(|()| {
            let first = run.state.as_ref().map(json).transpose()?;
            self.live.create(&run, first)
        });
        match route {
            Err(e) => ready(Err(e)),
            Ok(Route::Queue { .. }) => self.answer_queued(self.queue(run.id).map(|()| run)),
            Ok(Route::Await(first)) => self.write(move |tx| {
                insert_task_run(tx, &mut run, &history(first.as_slice()))?;
                Ok(run)
            }),
        }
    }

    fn read_task_run(&self, id: Uuid) -> StoreFuture<'_, Option<TaskRun>> {
        self.with(move |conn| by_id(conn, "task_runs", id))
    }

    fn read_task_runs<'a>(&'a self, filter: &'a TaskRunFilter) -> StoreFuture<'a, Vec<TaskRun>> {
        self.with(move |conn| Ok(filter.finish(filters::task_runs(conn, filter)?)))
    }

    fn set_task_run_state(
        &self,
        id: Uuid,
        expected: Option<Uuid>,
        state: State,
    ) -> StoreFuture<'_, SetState> {
        let route = self
            .live
            .take_failure()
            .and_then(|()| self.live.set_state(id, expected, state, enter_state));
        match route {
            Err(e) => ready(Err(e)),
            Ok(Route::Queue {
                answer: Err(current),
                ..
            }) => ready(Ok(SetState::Conflict { current })),
            Ok(Route::Queue {
                answer: Ok(()),
                job,
            }) => {
                let queued = if job { self.queue(id) } else { Ok(()) };
                self.answer_queued(queued.map(|()| SetState::Written))
            }
            Ok(Route::Await(state)) => {
                self.write(move |tx| set_state::<TaskRun>(tx, id, expected, state))
            }
        }
    }

    fn read_task_run_states(&self, id: Uuid) -> StoreFuture<'_, Vec<State>> {
        self.with(move |conn| read_history::<TaskRun>(conn, id))
    }

    fn read_cached_state<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<State>> {
        self.with(move |conn| one(conn, "SELECT body FROM cache WHERE key = ?1", [key]))
    }

    /// Queued, not awaited: log lines are appended by nobody else, and a flow run's final
    /// state (or a flush) commits after them. A failure is reported on standard error, as
    /// losing log lines must not fail a run.
    fn write_logs(&self, logs: Vec<LogRecord>) -> StoreFuture<'_, ()> {
        let encode = |log: &LogRecord| {
            let ts = i64::try_from(log.timestamp.as_nanosecond()).unwrap_or(i64::MAX);
            Ok::<_, StoreError>((
                log.flow_run_id.map(|i| i.to_string()),
                log.task_run_id.map(|i| i.to_string()),
                log.level as i64,
                ts,
                json(log)?,
            ))
        };
        let rows = match logs.iter().map(encode).collect::<Result<Vec<_>, _>>() {
            Ok(rows) => rows,
            Err(e) => return ready(Err(e)),
        };
        let count = rows.len();
        let queued = self.queue_unawaited(
            move |tx| {
                atomically(tx, |tx| {
                    for (flow_run, task_run, level, ts, body) in &rows {
                        exec(
                            tx,
                            "INSERT INTO logs (flow_run_id, task_run_id, level, ts, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![flow_run, task_run, level, ts, body],
                        )?;
                    }
                    Ok(true)
                })
            },
            move |done| {
                if let Err(e) = done {
                    eprintln!("orion: could not store {count} run log lines: {e}");
                }
            },
        );
        self.answer_queued(queued)
    }

    fn read_logs<'a>(&'a self, filter: &'a LogFilter) -> StoreFuture<'a, Vec<LogRecord>> {
        self.with(move |conn| {
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
            let logs: Vec<LogRecord> = logs.into_iter().filter(|l| filter.matches(l)).collect();
            Ok(filter.page(logs))
        })
    }

    fn upsert_deployments(&self, deployments: Vec<Deployment>) -> StoreFuture<'_, Vec<Deployment>> {
        self.write(move |tx| {
                        let mut stored = Vec::with_capacity(deployments.len());
            for mut d in deployments {
                if !exists(tx, "SELECT 1 FROM flows WHERE id = ?1", &d.flow_id.to_string())? {
                    return Err(StoreError::NotFound { what: "flow", id: d.flow_id });
                }
                let sql = "SELECT body FROM deployments WHERE flow_id = ?1 AND name = ?2";
                if let Some(existing) = one::<Deployment>(tx, sql, params![d.flow_id.to_string(), d.name])? {
                    d.id = existing.id;
                    d.created = existing.created;
                }
                exec(tx,
                    "INSERT OR REPLACE INTO deployments (id, flow_id, name, body) VALUES (?1, ?2, ?3, ?4)",
                    params![d.id.to_string(), d.flow_id.to_string(), d.name, json(&d)?],
                )?;
                stored.push(d);
            }
            Ok(stored)
        })
    }

    fn read_deployment(&self, id: Uuid) -> StoreFuture<'_, Option<Deployment>> {
        self.with(move |conn| by_id(conn, "deployments", id))
    }

    fn read_deployment_by_name<'a>(
        &'a self,
        flow_name: &'a str,
        name: &'a str,
    ) -> StoreFuture<'a, Option<Deployment>> {
        self.with(move |conn| {
            let sql = "SELECT d.body FROM deployments d JOIN flows f ON f.id = d.flow_id WHERE f.name = ?1 AND d.name = ?2";
            one(conn, sql, params![flow_name, name])
        })
    }

    fn read_deployments<'a>(
        &'a self,
        filter: &'a DeploymentFilter,
    ) -> StoreFuture<'a, Vec<Deployment>> {
        self.with(move |conn| {
            let mut found: Vec<Deployment> =
                many::<Deployment>(conn, "SELECT body FROM deployments", [])?
                    .into_iter()
                    .filter(|d| filter.matches(d))
                    .collect();
            found.sort_by(|a, b| (&a.flow_name, &a.name).cmp(&(&b.flow_name, &b.name)));
            Ok(found)
        })
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        let barrier = self.barrier();
        Box::pin(async move {
            barrier.await?;
            self.live.take_failure()
        })
    }

    fn read_deployment_versions(&self) -> StoreFuture<'_, Vec<crate::store::DeploymentVersion>> {
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, json_extract(body, '$.updated'), json_extract(body, '$.paused') FROM deployments")
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?)))
                .map_err(backend)?;
            let mut versions = Vec::new();
            for row in rows {
                let (id, updated, paused) = row.map_err(backend)?;
                let bad = |what: &str| StoreError::Backend(format!("deployment {id}: unreadable {what}"));
                versions.push(crate::store::DeploymentVersion {
                    id: id.parse().map_err(|_| bad("id"))?,
                    updated: updated.parse().map_err(|_| bad("update time"))?,
                    paused,
                });
            }
            Ok(versions)
        })
    }

    fn delete_deployment(&self, id: Uuid) -> StoreFuture<'_, bool> {
        self.write(move |tx| {
            Ok(exec(
                tx,
                "DELETE FROM deployments WHERE id = ?1",
                [id.to_string()],
            )? > 0)
        })
    }

    fn upsert_concurrency_limit(
        &self,
        limit: crate::store::ConcurrencyLimit,
    ) -> StoreFuture<'_, crate::store::ConcurrencyLimit> {
        self.write(move |tx| super::ledger::upsert(tx, limit))
    }

    fn read_concurrency_limit<'a>(
        &'a self,
        name: &'a str,
    ) -> StoreFuture<'a, Option<crate::store::ConcurrencyLimit>> {
        self.with(move |conn| super::ledger::read(conn, name))
    }

    fn read_concurrency_limits(&self) -> StoreFuture<'_, Vec<crate::store::ConcurrencyLimit>> {
        self.with(move |conn| super::ledger::read_all(conn))
    }

    fn delete_concurrency_limit<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        let name = name.to_owned();
        self.write(move |tx| super::ledger::delete(tx, &name))
    }

    fn read_slots<'a>(&'a self, limit: &'a str) -> StoreFuture<'a, Vec<crate::store::Slot>> {
        self.with(move |conn| super::ledger::rows(conn, limit))
    }

    fn acquire_slots(
        &self,
        request: crate::store::SlotRequest,
    ) -> StoreFuture<'_, crate::store::Acquired> {
        self.write(move |tx| super::ledger::acquire(tx, &request))
    }

    fn release_slots(&self, holder: Uuid) -> StoreFuture<'_, Vec<String>> {
        self.write(move |tx| super::ledger::release(tx, holder))
    }

    fn renew_slots(
        &self,
        owner: Uuid,
        holders: Vec<Uuid>,
        expires: jiff::Timestamp,
        now: jiff::Timestamp,
    ) -> StoreFuture<'_, Vec<Uuid>> {
        self.write(move |tx| super::ledger::renew(tx, owner, &holders, expires, now))
    }

    fn reset_slots<'a>(&'a self, limit: &'a str) -> StoreFuture<'a, usize> {
        let limit = limit.to_owned();
        self.write(move |tx| super::ledger::reset(tx, &limit))
    }

    fn reap_slots(&self, now: jiff::Timestamp) -> StoreFuture<'_, Vec<String>> {
        self.write(move |tx| super::ledger::reap(tx, now))
    }
}

/// Inserts a flow run's row with its tags (or, for a taken idempotency key, leaves `run` as
/// the stored run with that key).
fn insert_flow_run(tx: &Connection, run: &mut FlowRun) -> Result<(), StoreError> {
    if !exists(
        tx,
        "SELECT 1 FROM flows WHERE id = ?1",
        &run.flow_id.to_string(),
    )? {
        return Err(StoreError::NotFound {
            what: "flow",
            id: run.flow_id,
        });
    }
    if exists(
        tx,
        "SELECT 1 FROM flow_runs WHERE id = ?1",
        &run.id.to_string(),
    )? {
        return Err(StoreError::AlreadyExists {
            what: "flow run",
            key: run.id.to_string(),
        });
    }
    if let Some(key) = &run.idempotency_key {
        let sql = "SELECT body FROM flow_runs WHERE flow_id = ?1 AND idempotency_key = ?2";
        if let Some(existing) = one(tx, sql, params![run.flow_id.to_string(), key])? {
            *run = existing;
            return Ok(());
        }
    }
    let first = first_state(run);
    let state = state_columns(run);
    exec(
        tx,
        "INSERT INTO flow_runs (id, flow_id, deployment_id, parent_task_run_id, idempotency_key, body, state_id, state_type, state_name, created, expected_start, work_queue, history, lease_until) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            run.id.to_string(),
            run.flow_id.to_string(),
            run.deployment_id.map(|d| d.to_string()),
            run.parent_task_run_id.map(|d| d.to_string()),
            run.idempotency_key,
            json(&*run)?,
            state.id,
            state.kind,
            state.name,
            nanos(run.created),
            run.expected_start_time.and_then(nanos),
            run.work_queue_name,
            history(first.as_ref().map(json).transpose()?.as_slice()),
            run.lease.as_ref().and_then(|l| nanos(l.expires)),
        ],
    )?;
    for tag in &run.tags {
        exec(
            tx,
            "INSERT OR IGNORE INTO flow_run_tags (tag, run_id) VALUES (?1, ?2)",
            params![tag, run.id.to_string()],
        )?;
    }
    Ok(())
}

/// Inserts a task run's row with its history. The constraints say when its flow run is
/// missing or its id taken (cheaper than looking first: this runs once per task run).
fn insert_task_run(tx: &Connection, run: &mut TaskRun, history: &str) -> Result<(), StoreError> {
    let id = run.id.to_string();
    let inserted = tx
        .prepare_cached(
            "INSERT INTO task_runs (id, flow_run_id, body, state_id, state_type, state_name, name, history) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .and_then(|mut stmt| {
            let body = json(run).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
            let state = state_columns(run);
            stmt.execute(params![
                id,
                run.flow_run_id.map(|f| f.to_string()),
                body,
                state.id,
                state.kind,
                state.name,
                run.name,
                history
            ])
        });
    match inserted {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            Err(StoreError::NotFound {
                what: "flow run",
                id: run.flow_run_id.unwrap_or_default(),
            })
        }
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            Err(StoreError::AlreadyExists {
                what: "task run",
                key: id,
            })
        }
        Err(e) => Err(backend(e)),
    }
}

/// Writes what a live task run gathered since its last job; `false` when another writer had
/// moved it (nothing written).
pub(super) fn write_gathered(tx: &Connection, mut taken: Taken) -> Result<bool, StoreError> {
    match taken.update_from {
        None => insert_task_run(tx, &mut taken.record, &history(&taken.states))?,
        Some(expected) => {
            let id = taken.record.id.to_string();
            let states = taken.states.join(",");
            if !update_run(tx, &mut taken.record, &id, expected, &states)? {
                return Ok(false);
            }
        }
    }
    store_cache(tx, &taken.cache)?;
    Ok(true)
}
