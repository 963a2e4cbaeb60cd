//! Work queues, claims and leases in the database. A claim is one transaction: it locks the
//! queue's row when the queue has a concurrency limit and the rows of limited deployments
//! (always in id order, so claims never deadlock), then the runs it wants with
//! `FOR UPDATE SKIP LOCKED` — a run another agent is claiming right now is passed over, never
//! waited for.

use std::collections::HashMap;

use uuid::Uuid;

use super::db::{Fail, Q};
use super::runs::{Read, Wake, enter_state, update};
use super::{json, nanos, parse};
use crate::state::State;
use crate::store::bookkeeping::{claimable, holds_a_slot, keep_identity, renew as renew_lease};
use crate::store::{Claim, ClaimRun, FlowRun, Renewal, WorkQueue};

/// The state types of runs that hold a slot of their queue or deployment.
const HOLDING: &str = "'{PENDING,RUNNING,CANCELLING}'";

/// Claims what `claim` names that is still claimable; see
/// [`crate::store::Store::claim_flow_runs`]. `retried`: an earlier attempt may have committed,
/// so a run found already in the state this claim writes, under its lease, is claimed.
/// Each run written comes with its new revision.
pub(super) async fn claim(
    tx: &deadpool_postgres::Transaction<'_>,
    claim: &Claim,
    retried: bool,
) -> Result<Vec<(FlowRun, i64)>, Fail> {
    let queue: Option<WorkQueue> = tx
        .body(
            "SELECT body FROM work_queues WHERE name = $1",
            &[&claim.work_queue],
        )
        .await?;
    if queue.as_ref().is_some_and(|q| q.paused) {
        return Ok(Vec::new());
    }
    let limit = queue.and_then(|q| q.concurrency_limit).map(|l| l as usize);
    let mut held = 0;
    if limit.is_some() {
        // Claims of a limited queue count its held runs one at a time.
        let queue: Option<WorkQueue> = tx
            .body(
                "SELECT body FROM work_queues WHERE name = $1 FOR UPDATE",
                &[&claim.work_queue],
            )
            .await?;
        if queue.as_ref().is_some_and(|q| q.paused) {
            return Ok(Vec::new());
        }
        held = count(
            tx,
            &format!("SELECT count(*) FROM flow_runs WHERE work_queue = $1 AND state_type = ANY({HOLDING})"),
            &claim.work_queue,
        )
        .await?;
    }
    let mut deployments: Vec<Uuid> = claim
        .runs
        .iter()
        .filter_map(|r| r.deployment_limit.as_ref().map(|d| d.deployment_id))
        .collect();
    deployments.sort_unstable();
    deployments.dedup();
    if !deployments.is_empty() {
        tx.exec(
            "SELECT 1 FROM deployments WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            &[&deployments],
        )
        .await?;
    }
    let ids: Vec<Uuid> = claim.runs.iter().map(|r| r.id).collect();
    let mut locked: HashMap<Uuid, Read<FlowRun>> = HashMap::new();
    for row in tx
        .rows(
            "SELECT body, rev FROM flow_runs WHERE id = ANY($1) FOR UPDATE SKIP LOCKED",
            &[&ids],
        )
        .await?
    {
        let run: FlowRun = parse(row.try_get::<_, &str>(0)?)?;
        locked.insert(
            run.id,
            Read {
                run,
                rev: row.try_get(1)?,
            },
        );
    }
    let mut claimed = Vec::new();
    let mut taken = 0;
    let mut by_deployment: HashMap<Uuid, usize> = HashMap::new();
    for want in &claim.runs {
        if limit.is_some_and(|l| held >= l) || taken >= claim.take {
            break;
        }
        let Some(Read { mut run, rev }) = locked.remove(&want.id) else {
            continue;
        };
        if retried
            && run.state.as_ref().map(State::id) == Some(want.state.id())
            && run.lease.as_ref().map(|l| l.owner) == Some(claim.lease.owner)
        {
            held += 1;
            taken += 1;
            claimed.push((run, rev));
            continue;
        }
        if !claimable(&run, want, &claim.lease) {
            continue;
        }
        if let Some(d) = &want.deployment_limit {
            let n = match by_deployment.get(&d.deployment_id) {
                Some(n) => *n,
                None => {
                    count(
                        tx,
                        &format!("SELECT count(*) FROM flow_runs WHERE deployment_id = $1 AND state_type = ANY({HOLDING})"),
                        &d.deployment_id,
                    )
                    .await?
                }
            };
            by_deployment.insert(d.deployment_id, n);
            if n >= d.limit as usize {
                // The deployment is full: the run waits (or is cancelled) instead.
                if let Some(state) = d.when_full.clone() {
                    if write_claimed(tx, &mut run, rev, want, state).await? {
                        claimed.push((run, rev + 1));
                    }
                }
                continue;
            }
            by_deployment.insert(d.deployment_id, n + 1);
        }
        run.lease = Some(claim.lease.clone());
        if write_claimed(tx, &mut run, rev, want, want.state.clone()).await? {
            if holds_a_slot(run.state.as_ref()) {
                held += 1;
            }
            taken += 1;
            claimed.push((run, rev + 1));
        }
    }
    Ok(claimed)
}

/// Writes `state` on a locked run of a claim.
async fn write_claimed(
    tx: &deadpool_postgres::Transaction<'_>,
    run: &mut FlowRun,
    rev: i64,
    want: &ClaimRun,
    state: State,
) -> Result<bool, Fail> {
    let entered = enter_state(run, state)?;
    update(tx, want.id, rev, run, &entered, Wake::Never).await
}

/// The count `sql` answers for one key.
async fn count<K: tokio_postgres::types::ToSql + Sync>(
    q: &impl Q,
    sql: &str,
    key: &K,
) -> Result<usize, Fail> {
    let n: i64 = q.one(sql, &[key]).await?.try_get(0)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Extends `owner`'s leases; see [`crate::store::Store::renew_leases`].
pub(super) async fn renew(
    tx: &deadpool_postgres::Transaction<'_>,
    owner: Uuid,
    runs: &[Uuid],
    expires: jiff::Timestamp,
    now: jiff::Timestamp,
) -> Result<Vec<Renewal>, Fail> {
    let mut found: HashMap<Uuid, FlowRun> = HashMap::new();
    for row in tx
        .rows(
            "SELECT body FROM flow_runs WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            &[&runs],
        )
        .await?
    {
        let run: FlowRun = parse(row.try_get::<_, &str>(0)?)?;
        found.insert(run.id, run);
    }
    let mut renewals = Vec::with_capacity(runs.len());
    for &id in runs {
        let Some(run) = found.get_mut(&id) else {
            renewals.push(Renewal {
                id,
                held: false,
                state: None,
            });
            continue;
        };
        let renewal = renew_lease(run, owner, expires, now);
        if renewal.held {
            tx.exec(
                "UPDATE flow_runs SET body = $2, lease_until = $3, rev = rev + 1 WHERE id = $1",
                &[&id, &json(&*run)?, &nanos(expires)],
            )
            .await?;
        }
        renewals.push(renewal);
    }
    Ok(renewals)
}

/// Creates or updates a work queue by name.
pub(super) async fn upsert(
    tx: &deadpool_postgres::Transaction<'_>,
    mut queue: WorkQueue,
) -> Result<WorkQueue, Fail> {
    let inserted = tx
        .exec(
            "INSERT INTO work_queues (name, limited, body) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
            &[&queue.name, &queue.concurrency_limit.is_some(), &json(&queue)?],
        )
        .await?;
    if inserted == 0 {
        let stored: Option<WorkQueue> = tx
            .body(
                "SELECT body FROM work_queues WHERE name = $1 FOR UPDATE",
                &[&queue.name],
            )
            .await?;
        if let Some(stored) = stored {
            keep_identity(&mut queue, &stored);
        }
        tx.exec(
            "UPDATE work_queues SET limited = $2, body = $3 WHERE name = $1",
            &[
                &queue.name,
                &queue.concurrency_limit.is_some(),
                &json(&queue)?,
            ],
        )
        .await?;
    }
    Ok(queue)
}

/// Records a poll of the queues `names` by `agent`.
pub(super) async fn polled(
    tx: &deadpool_postgres::Transaction<'_>,
    names: &[String],
    agent: &str,
    at: jiff::Timestamp,
) -> Result<(), Fail> {
    let queues: Vec<WorkQueue> = tx
        .bodies(
            "SELECT body FROM work_queues WHERE name = ANY($1) ORDER BY name FOR UPDATE",
            &[&names],
        )
        .await?;
    for mut queue in queues {
        queue.last_polled = Some(at);
        queue.last_polled_by = Some(agent.to_owned());
        tx.exec(
            "UPDATE work_queues SET body = $2 WHERE name = $1",
            &[&queue.name, &json(&queue)?],
        )
        .await?;
    }
    Ok(())
}
