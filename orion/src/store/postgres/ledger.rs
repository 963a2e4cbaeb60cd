//! The concurrency ledger in the database. An ask locks the rows of the limits it names (in
//! name order, so asks never deadlock), reads their live slots, and writes what the shared
//! [`decide`] answers, all in one transaction: asks on one limit take turns, asks on others
//! run side by side.

use uuid::Uuid;

use super::db::{Fail, Q};
use super::{json, nanos, parse};
use crate::store::bookkeeping::keep_limit_identity;
use crate::store::ledger::{Acquired, ConcurrencyLimit, Slot, SlotRequest, decide};

type Tx<'a> = deadpool_postgres::Transaction<'a>;

pub(super) async fn upsert(
    tx: &Tx<'_>,
    mut limit: ConcurrencyLimit,
) -> Result<ConcurrencyLimit, Fail> {
    let inserted = tx
        .exec(
            "INSERT INTO concurrency_limits (name, body) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&limit.name, &json(&limit)?],
        )
        .await?;
    if inserted == 0 {
        let stored: Option<ConcurrencyLimit> = tx
            .body(
                "SELECT body FROM concurrency_limits WHERE name = $1 FOR UPDATE",
                &[&limit.name],
            )
            .await?;
        if let Some(stored) = stored {
            keep_limit_identity(&mut limit, &stored);
        }
        tx.exec(
            "UPDATE concurrency_limits SET body = $2 WHERE name = $1",
            &[&limit.name, &json(&limit)?],
        )
        .await?;
    }
    Ok(limit)
}

pub(super) async fn delete(tx: &Tx<'_>, name: &str) -> Result<bool, Fail> {
    reset(tx, name).await?;
    Ok(tx
        .exec("DELETE FROM concurrency_limits WHERE name = $1", &[&name])
        .await?
        > 0)
}

pub(super) async fn rows(q: &impl Q, name: &str) -> Result<Vec<Slot>, Fail> {
    q.bodies(
        "SELECT body FROM concurrency_slots WHERE limit_name = $1 ORDER BY waiting, ticket",
        &[&name],
    )
    .await
}

async fn insert(tx: &Tx<'_>, row: &Slot) -> Result<(), Fail> {
    tx.exec(
        "INSERT INTO concurrency_slots (limit_name, holder, owner, waiting, decays, ticket, expires, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &row.limit,
            &row.holder,
            &row.lease.owner,
            &row.waiting,
            &row.decays,
            &i64::try_from(row.ticket).unwrap_or(i64::MAX),
            &nanos(row.lease.expires),
            &json(row)?,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn acquire(tx: &Tx<'_>, request: &SlotRequest) -> Result<Acquired, Fail> {
    if let (Some((size, per)), [name]) = (request.create, request.limits.as_slice()) {
        let limit = ConcurrencyLimit::new(name.clone(), size, request.lease.renewed).per(per);
        tx.exec(
            "INSERT INTO concurrency_limits (name, body) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[name, &json(&limit)?],
        )
        .await?;
    }
    let limits: Vec<ConcurrencyLimit> = tx
        .bodies(
            "SELECT body FROM concurrency_limits WHERE name = ANY($1) ORDER BY name FOR UPDATE",
            &[&request.limits],
        )
        .await?;
    if limits.is_empty() {
        return Ok(Acquired::Granted {
            slots: Vec::new(),
            room: false,
        });
    }
    let names: Vec<&str> = limits.iter().map(|l| l.name.as_str()).collect();
    // Lapsed rows count for nothing in a decision: they are not even read.
    let existing: Vec<Slot> = tx
        .bodies(
            "SELECT body FROM concurrency_slots WHERE limit_name = ANY($1) AND expires > $2",
            &[&names, &nanos(request.lease.renewed)],
        )
        .await?;
    let next: i64 = tx
        .one("SELECT nextval('concurrency_tickets')", &[])
        .await?
        .try_get(0)?;
    let (acquired, changes) = decide(
        request,
        &limits,
        &existing,
        u64::try_from(next).unwrap_or(1),
    );
    if changes.delete_holder {
        tx.exec(
            "DELETE FROM concurrency_slots WHERE holder = $1 AND NOT decays",
            &[&request.holder],
        )
        .await?;
    }
    for row in &changes.insert {
        insert(tx, row).await?;
    }
    Ok(acquired)
}

/// The distinct limit names of deleted rows, in order.
fn distinct(rows: &[tokio_postgres::Row]) -> Result<Vec<String>, Fail> {
    let mut names = rows
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<Vec<_>, _>>()?;
    names.sort();
    names.dedup();
    Ok(names)
}

pub(super) async fn release(q: &impl Q, holder: Uuid) -> Result<Vec<String>, Fail> {
    let rows = q
        .rows(
            "DELETE FROM concurrency_slots WHERE holder = $1 AND NOT decays RETURNING limit_name",
            &[&holder],
        )
        .await?;
    distinct(&rows)
}

pub(super) async fn renew(
    tx: &Tx<'_>,
    owner: Uuid,
    holders: &[Uuid],
    expires: jiff::Timestamp,
    now: jiff::Timestamp,
) -> Result<Vec<Uuid>, Fail> {
    // A lapsed row is not revived: its slot may have gone to another.
    let rows = tx
        .rows(
            "SELECT id, holder, body FROM concurrency_slots WHERE holder = ANY($1) AND owner = $2 AND NOT decays AND expires > $3 ORDER BY id FOR UPDATE",
            &[&holders, &owner, &nanos(now)],
        )
        .await?;
    let mut kept = std::collections::HashSet::new();
    for row in &rows {
        let id: i64 = row.try_get(0)?;
        kept.insert(row.try_get::<_, Uuid>(1)?);
        let mut slot: Slot = parse(row.try_get::<_, &str>(2)?)?;
        slot.lease.expires = expires;
        slot.lease.renewed = now;
        tx.exec(
            "UPDATE concurrency_slots SET expires = $2, body = $3 WHERE id = $1",
            &[&id, &nanos(expires), &json(&slot)?],
        )
        .await?;
    }
    Ok(holders
        .iter()
        .filter(|h| !kept.contains(h))
        .copied()
        .collect())
}

pub(super) async fn reset(q: &impl Q, name: &str) -> Result<usize, Fail> {
    let n = q
        .exec(
            "DELETE FROM concurrency_slots WHERE limit_name = $1",
            &[&name],
        )
        .await?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

pub(super) async fn reap(q: &impl Q, now: jiff::Timestamp) -> Result<Vec<String>, Fail> {
    let rows = q
        .rows(
            "DELETE FROM concurrency_slots WHERE expires <= $1 RETURNING limit_name",
            &[&nanos(now)],
        )
        .await?;
    distinct(&rows)
}
