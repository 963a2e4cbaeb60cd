//! The concurrency ledger in the file: each operation runs on the writer, inside its
//! transaction, so a grant's checks and writes are one atomic step for every process.

use rusqlite::{Connection, params};
use uuid::Uuid;

use super::{exec, integer, json, many, one};
use crate::store::StoreError;
use crate::store::bookkeeping::keep_limit_identity;
use crate::store::ledger::{Acquired, ConcurrencyLimit, Slot, SlotRequest, decide};

/// A time as the `expires` column keeps it: nanoseconds since the epoch, the far future capped.
fn nanos(t: jiff::Timestamp) -> i64 {
    super::runs::nanos(t).unwrap_or(i64::MAX)
}

pub(super) fn upsert(
    tx: &Connection,
    mut limit: ConcurrencyLimit,
) -> Result<ConcurrencyLimit, StoreError> {
    if let Some(stored) = read(tx, &limit.name)? {
        keep_limit_identity(&mut limit, &stored);
    }
    exec(
        tx,
        "INSERT OR REPLACE INTO concurrency_limits (name, body) VALUES (?1, ?2)",
        params![limit.name, json(&limit)?],
    )?;
    Ok(limit)
}

pub(super) fn read(conn: &Connection, name: &str) -> Result<Option<ConcurrencyLimit>, StoreError> {
    one(
        conn,
        "SELECT body FROM concurrency_limits WHERE name = ?1",
        [name],
    )
}

pub(super) fn read_all(conn: &Connection) -> Result<Vec<ConcurrencyLimit>, StoreError> {
    many(
        conn,
        "SELECT body FROM concurrency_limits ORDER BY name",
        [],
    )
}

pub(super) fn delete(tx: &Connection, name: &str) -> Result<bool, StoreError> {
    reset(tx, name)?;
    Ok(exec(tx, "DELETE FROM concurrency_limits WHERE name = ?1", [name])? > 0)
}

pub(super) fn rows(conn: &Connection, name: &str) -> Result<Vec<Slot>, StoreError> {
    many(
        conn,
        "SELECT body FROM concurrency_slots WHERE limit_name = ?1 ORDER BY waiting, ticket",
        [name],
    )
}

fn insert(tx: &Connection, row: &Slot) -> Result<(), StoreError> {
    exec(
        tx,
        "INSERT INTO concurrency_slots (limit_name, holder, owner, waiting, decays, ticket, expires, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            row.limit,
            row.holder.to_string(),
            row.lease.owner.to_string(),
            row.waiting,
            row.decays,
            i64::try_from(row.ticket).unwrap_or(i64::MAX),
            nanos(row.lease.expires),
            json(row)?,
        ],
    )?;
    Ok(())
}

pub(super) fn acquire(tx: &Connection, request: &SlotRequest) -> Result<Acquired, StoreError> {
    if let (Some((size, per)), [name]) = (request.create, request.limits.as_slice()) {
        if read(tx, name)?.is_none() {
            upsert(
                tx,
                ConcurrencyLimit::new(name.clone(), size, request.lease.renewed).per(per),
            )?;
        }
    }
    let mut limits = Vec::new();
    let mut existing = Vec::new();
    for name in &request.limits {
        if let Some(limit) = read(tx, name)? {
            // Lapsed rows count for nothing in a decision: they are not even read.
            existing.extend(many::<Slot>(
                tx,
                "SELECT body FROM concurrency_slots WHERE limit_name = ?1 AND expires > ?2",
                params![name, nanos(request.lease.renewed)],
            )?);
            limits.push(limit);
        }
    }
    if limits.is_empty() {
        return Ok(Acquired::Granted {
            slots: Vec::new(),
            room: false,
        });
    }
    let last = integer(
        tx,
        "SELECT COALESCE(MAX(ticket), 0) FROM concurrency_slots",
        [],
    )?;
    let next = u64::try_from(last).unwrap_or(0) + 1;
    let (acquired, changes) = decide(request, &limits, &existing, next);
    if changes.delete_holder {
        exec(
            tx,
            "DELETE FROM concurrency_slots WHERE holder = ?1 AND decays = 0",
            [request.holder.to_string()],
        )?;
    }
    for row in &changes.insert {
        insert(tx, row)?;
    }
    Ok(acquired)
}

/// The distinct limits of rows matching `condition` (an SQL predicate on `?1`).
fn limits_where(
    tx: &Connection,
    condition: &str,
    arg: &dyn rusqlite::ToSql,
) -> Result<Vec<String>, StoreError> {
    let sql = format!(
        "SELECT DISTINCT limit_name FROM concurrency_slots WHERE {condition} ORDER BY limit_name"
    );
    let mut stmt = tx.prepare_cached(&sql).map_err(super::backend)?;
    let names = stmt
        .query_map([arg], |r| r.get::<_, String>(0))
        .map_err(super::backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(super::backend)?;
    Ok(names)
}

pub(super) fn release(tx: &Connection, holder: Uuid) -> Result<Vec<String>, StoreError> {
    let id = holder.to_string();
    let freed = limits_where(tx, "holder = ?1 AND decays = 0", &id)?;
    exec(
        tx,
        "DELETE FROM concurrency_slots WHERE holder = ?1 AND decays = 0",
        [&id],
    )?;
    Ok(freed)
}

pub(super) fn renew(
    tx: &Connection,
    owner: Uuid,
    holders: &[Uuid],
    expires: jiff::Timestamp,
    now: jiff::Timestamp,
) -> Result<Vec<Uuid>, StoreError> {
    let mut lost = Vec::new();
    for holder in holders {
        let mine: Vec<(i64, String)> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, body FROM concurrency_slots WHERE holder = ?1 AND owner = ?2 AND decays = 0 AND expires > ?3",
                )
                .map_err(super::backend)?;
            // A lapsed row is not revived: its slot may have gone to another.
            stmt.query_map(
                params![holder.to_string(), owner.to_string(), nanos(now)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(super::backend)?
            .collect::<Result<_, _>>()
            .map_err(super::backend)?
        };
        if mine.is_empty() {
            lost.push(*holder);
        }
        for (id, body) in mine {
            let mut row: Slot = super::parse(&body)?;
            row.lease.expires = expires;
            row.lease.renewed = now;
            exec(
                tx,
                "UPDATE concurrency_slots SET expires = ?2, body = ?3 WHERE id = ?1",
                params![id, nanos(expires), json(&row)?],
            )?;
        }
    }
    Ok(lost)
}

pub(super) fn reset(tx: &Connection, name: &str) -> Result<usize, StoreError> {
    exec(
        tx,
        "DELETE FROM concurrency_slots WHERE limit_name = ?1",
        [name],
    )
}

pub(super) fn reap(tx: &Connection, now: jiff::Timestamp) -> Result<Vec<String>, StoreError> {
    let at = nanos(now);
    let freed = limits_where(tx, "expires <= ?1", &at)?;
    exec(
        tx,
        "DELETE FROM concurrency_slots WHERE expires <= ?1",
        [at],
    )?;
    Ok(freed)
}
