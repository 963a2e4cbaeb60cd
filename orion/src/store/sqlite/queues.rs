//! Work queues, claims and leases in the file: each operation runs on the writer, inside its
//! transaction, so a claim's checks and writes are one atomic step for every process.

use std::collections::HashMap;

use rusqlite::{Connection, params};
use uuid::Uuid;

use super::runs::{enter_state, nanos, update_run};
use super::{by_id, exec, integer, json, one};
use crate::store::bookkeeping::{claimable, holds_a_slot, keep_identity, renew as renew_lease};
use crate::store::{Claim, ClaimRun, FlowRun, Renewal, StoreError, WorkQueue};

/// Claims what `claim` names that is still claimable; see [`crate::store::Store::claim_flow_runs`].
pub(super) fn claim(tx: &Connection, claim: &Claim) -> Result<Vec<FlowRun>, StoreError> {
    let queue: Option<WorkQueue> = one(
        tx,
        "SELECT body FROM work_queues WHERE name = ?1",
        [&claim.work_queue],
    )?;
    if queue.as_ref().is_some_and(|q| q.paused) {
        return Ok(Vec::new());
    }
    let limit = queue.and_then(|q| q.concurrency_limit).map(|l| l as usize);
    let mut held = match limit {
        Some(_) => held_runs(tx, HELD_IN_QUEUE, &claim.work_queue)?,
        None => 0,
    };
    let mut claimed = Vec::new();
    let mut taken = 0;
    // Runs of each limited deployment holding a slot, counted once per claim.
    let mut by_deployment: HashMap<Uuid, usize> = HashMap::new();
    for want in &claim.runs {
        if limit.is_some_and(|l| held >= l) || taken >= claim.take {
            break;
        }
        let Some(mut run): Option<FlowRun> = by_id(tx, "flow_runs", want.id)? else {
            continue;
        };
        if !claimable(&run, want, &claim.lease) {
            continue;
        }
        if let Some(d) = &want.deployment_limit {
            let count = match by_deployment.get(&d.deployment_id) {
                Some(n) => *n,
                None => held_runs(tx, HELD_OF_DEPLOYMENT, &d.deployment_id.to_string())?,
            };
            by_deployment.insert(d.deployment_id, count);
            if count >= d.limit as usize {
                // The deployment is full: the run waits (or is cancelled) instead.
                if let Some(state) = d.when_full.clone() {
                    if write_claimed(tx, &mut run, want, state)? {
                        claimed.push(run);
                    }
                }
                continue;
            }
            by_deployment.insert(d.deployment_id, count + 1);
        }
        run.lease = Some(claim.lease.clone());
        if write_claimed(tx, &mut run, want, want.state.clone())? {
            if holds_a_slot(run.state.as_ref()) {
                held += 1;
            }
            taken += 1;
            claimed.push(run);
        }
    }
    Ok(claimed)
}

/// Writes `state` on a run of a claim, if it is still in the state the claim expects.
fn write_claimed(
    tx: &Connection,
    run: &mut FlowRun,
    want: &ClaimRun,
    state: crate::state::State,
) -> Result<bool, StoreError> {
    let entered = enter_state(run, state)?;
    update_run(
        tx,
        run,
        &want.id.to_string(),
        Some(want.expected),
        &entered.state,
    )
}

/// Runs of a queue, or of a deployment, that hold a slot: Pending, Running or Cancelling.
const HELD_IN_QUEUE: &str = "SELECT COUNT(*) FROM flow_runs WHERE work_queue = ?1 AND state_type IN ('PENDING', 'RUNNING', 'CANCELLING')";
const HELD_OF_DEPLOYMENT: &str = "SELECT COUNT(*) FROM flow_runs WHERE deployment_id = ?1 AND state_type IN ('PENDING', 'RUNNING', 'CANCELLING')";

/// How many runs `sql` (one of the two above) counts for `key`.
fn held_runs(tx: &Connection, sql: &str, key: &str) -> Result<usize, StoreError> {
    Ok(usize::try_from(integer(tx, sql, [key])?).unwrap_or(0))
}

/// Extends `owner`'s leases; see [`crate::store::Store::renew_leases`].
pub(super) fn renew(
    tx: &Connection,
    owner: Uuid,
    runs: &[Uuid],
    expires: jiff::Timestamp,
    now: jiff::Timestamp,
) -> Result<Vec<Renewal>, StoreError> {
    let mut renewals = Vec::with_capacity(runs.len());
    for &id in runs {
        let Some(mut run): Option<FlowRun> = by_id(tx, "flow_runs", id)? else {
            renewals.push(Renewal {
                id,
                held: false,
                state: None,
            });
            continue;
        };
        let renewal = renew_lease(&mut run, owner, expires, now);
        if renewal.held {
            exec(
                tx,
                "UPDATE flow_runs SET body = ?2, lease_until = ?3 WHERE id = ?1",
                params![id.to_string(), json(&run)?, nanos(expires)],
            )?;
        }
        renewals.push(renewal);
    }
    Ok(renewals)
}

/// Creates or updates a work queue by name.
pub(super) fn upsert(tx: &Connection, mut queue: WorkQueue) -> Result<WorkQueue, StoreError> {
    let existing: Option<WorkQueue> = one(
        tx,
        "SELECT body FROM work_queues WHERE name = ?1",
        [&queue.name],
    )?;
    if let Some(stored) = existing {
        keep_identity(&mut queue, &stored);
    }
    exec(
        tx,
        "INSERT OR REPLACE INTO work_queues (name, body) VALUES (?1, ?2)",
        params![queue.name, json(&queue)?],
    )?;
    Ok(queue)
}

/// Records a poll of the queues `names` by `agent`.
pub(super) fn polled(
    tx: &Connection,
    names: &[String],
    agent: &str,
    at: jiff::Timestamp,
) -> Result<(), StoreError> {
    for name in names {
        let queue: Option<WorkQueue> =
            one(tx, "SELECT body FROM work_queues WHERE name = ?1", [name])?;
        if let Some(mut queue) = queue {
            queue.last_polled = Some(at);
            queue.last_polled_by = Some(agent.to_owned());
            exec(
                tx,
                "UPDATE work_queues SET body = ?2 WHERE name = ?1",
                params![name, json(&queue)?],
            )?;
        }
    }
    Ok(())
}
