//! How new records are inserted: flow runs and task runs with their first state (answering
//! a retry that finds its own earlier commit as success), and deployments by flow and name.

use super::db::{Fail, Q};
use super::runs::first_state_of;
use super::{json, nanos};
use crate::state::State;
use crate::store::bookkeeping::type_code;
use crate::store::{Deployment, FlowRun, StoreError, TaskRun};

/// Inserts a flow run with its first state (or, for a taken idempotency key, answers the
/// stored run with that key). `retried`: finding this very run stored is success.
pub(super) async fn insert_flow_run(
    q: &impl Q,
    mut run: FlowRun,
    retried: bool,
) -> Result<FlowRun, Fail> {
    let first = first_state_of(&mut run)?;
    let state = run.state.as_ref();
    let inserted = q
        .one(
            "WITH r AS (INSERT INTO flow_runs (id, flow_id, deployment_id, parent_task_run_id, idempotency_key, work_queue, tags, state_id, state_type, state_name, created, expected_start, lease_until, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING RETURNING id), s AS (INSERT INTO flow_run_states (run_id, body) SELECT id, $15 FROM r WHERE $15::text IS NOT NULL), n AS (SELECT pg_notify('orion_runs_due', '') FROM r WHERE $16) SELECT (SELECT count(*) FROM r) + 0 * (SELECT count(*) FROM n)",
            &[
                &run.id,
                &run.flow_id,
                &run.deployment_id,
                &run.parent_task_run_id,
                &run.idempotency_key,
                &run.work_queue_name,
                &run.tags,
                &state.map(State::id),
                &state.map(|s| type_code(s.state_type())),
                &state.map(|s| s.name().to_owned()),
                &nanos(run.created),
                &run.expected_start_time.map(nanos),
                &run.lease.as_ref().map(|l| nanos(l.expires)),
                &json(&run)?,
                &first,
                // A new run waiting to be claimed wakes the agents of every process.
                &state.is_some_and(State::is_scheduled),
            ],
        )
        .await
        .map_err(|e| e.missing("flow", run.flow_id))?;
    if inserted.try_get::<_, i64>(0)? > 0 {
        return Ok(run);
    }
    // A conflict: this id taken, or the idempotency key.
    let by_id: Option<FlowRun> = q
        .body("SELECT body FROM flow_runs WHERE id = $1", &[&run.id])
        .await?;
    if let Some(existing) = by_id {
        if retried {
            return Ok(existing);
        }
        return Err(StoreError::AlreadyExists {
            what: "flow run",
            key: run.id.to_string(),
        }
        .into());
    }
    let by_key: Option<FlowRun> = q
        .body(
            "SELECT body FROM flow_runs WHERE flow_id = $1 AND idempotency_key = $2",
            &[&run.flow_id, &run.idempotency_key],
        )
        .await?;
    by_key.ok_or_else(|| {
        Fail::Store(StoreError::Backend(format!(
            "flow run {} was refused by the database without a reason",
            run.id
        )))
    })
}

/// Inserts a task run with its first state. `retried`: finding this very run stored is
/// success.
pub(super) async fn insert_task_run(
    q: &impl Q,
    run: &TaskRun,
    first: Option<&String>,
    retried: bool,
) -> Result<(), Fail> {
    let state = run.state.as_ref();
    let inserted = q
        .one(
            "WITH r AS (INSERT INTO task_runs (id, flow_run_id, name, state_id, state_type, body) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING id), s AS (INSERT INTO task_run_states (run_id, body) SELECT id, $7 FROM r WHERE $7::text IS NOT NULL) SELECT count(*) FROM r",
            &[
                &run.id,
                &run.flow_run_id,
                &run.name,
                &state.map(State::id),
                &state.map(|s| type_code(s.state_type())),
                &json(run)?,
                &first,
            ],
        )
        .await
        .map_err(|e| e.missing("flow run", run.flow_run_id.unwrap_or_default()))?;
    if inserted.try_get::<_, i64>(0)? == 0 && !retried {
        return Err(StoreError::AlreadyExists {
            what: "task run",
            key: run.id.to_string(),
        }
        .into());
    }
    Ok(())
}

/// Creates or updates one deployment by flow and name, keeping a stored one's id and creation
/// time.
pub(super) async fn upsert_deployment(
    tx: &deadpool_postgres::Transaction<'_>,
    mut d: Deployment,
) -> Result<Deployment, Fail> {
    let flow = tx
        .opt("SELECT 1 FROM flows WHERE id = $1", &[&d.flow_id])
        .await?;
    if flow.is_none() {
        return Err(StoreError::NotFound {
            what: "flow",
            id: d.flow_id,
        }
        .into());
    }
    loop {
        let existing: Option<Deployment> = tx
            .body(
                "SELECT body FROM deployments WHERE flow_id = $1 AND name = $2 FOR UPDATE",
                &[&d.flow_id, &d.name],
            )
            .await?;
        let body = |d: &Deployment| json(d);
        if let Some(existing) = existing {
            d.id = existing.id;
            d.created = existing.created;
            tx.exec(
                "UPDATE deployments SET updated = $2, paused = $3, limited = $4, body = $5 WHERE id = $1",
                &[&d.id, &nanos(d.updated), &d.paused, &d.concurrency.is_some(), &body(&d)?],
            )
            .await?;
            return Ok(d);
        }
        let inserted = tx
            .exec(
                "INSERT INTO deployments (id, flow_id, name, updated, paused, limited, body) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (flow_id, name) DO NOTHING",
                &[&d.id, &d.flow_id, &d.name, &nanos(d.updated), &d.paused, &d.concurrency.is_some(), &body(&d)?],
            )
            .await?;
        if inserted > 0 {
            return Ok(d);
        }
        // Another process created it meanwhile: update that one.
    }
}
