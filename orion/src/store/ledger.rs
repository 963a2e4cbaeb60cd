//! The concurrency ledger: limits, and the slots held or awaited under them.
//!
//! Every slot of a task-tag limit or a named limit is a row with a lease: taken by one guarded
//! write, renewed by its holder's process while held, deleted when released, and counted only
//! while its lease is live — so a slot whose process died stops counting when its lease lapses,
//! before any reaper has passed. Waiters are rows too, ordered by ticket: the store grants in
//! ticket order, so a waiter is never overtaken, and a dead waiter's row lapses like a holder's.
//! (Queue and deployment slots are the leases of the claimed flow runs themselves.)
//!
//! The decision is this module's [`decide`], the same for every backend: a backend loads the
//! rows of the limits asked for, calls it, and writes what it says, in one transaction.

use std::borrow::Borrow;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Lease;

/// The stored name of the limit on task tag `tag` (Prefect 3's spelling).
pub fn tag_limit_name(tag: &str) -> String {
    format!("tag:{tag}")
}

/// A limit on how many holders may occupy its slots at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConcurrencyLimit {
    /// Its id.
    pub id: Uuid,
    /// Its unique name: `tag:TAG` for a task-tag limit, anything else for a named limit.
    pub name: String,
    /// How many slots it has.
    pub limit: u32,
    /// For a rate limit: how long each slot taken stays taken (it is never released, it
    /// lapses), so that at most `limit` acquisitions happen in any window of this length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<Duration>,
    /// When it was created.
    pub created: Timestamp,
    /// When it was last changed.
    pub updated: Timestamp,
}

impl ConcurrencyLimit {
    /// A limit of `limit` slots named `name`, created at `now`.
    pub fn new(name: impl Into<String>, limit: u32, now: Timestamp) -> Self {
        ConcurrencyLimit {
            id: crate::ids::new_id(),
            name: name.into(),
            limit,
            per: None,
            created: now,
            updated: now,
        }
    }
    /// As a rate limit: each slot lapses `per` after it is taken.
    #[must_use]
    pub fn per(mut self, per: Option<Duration>) -> Self {
        self.per = per;
        self
    }
    /// The task tag it limits, for a `tag:` limit.
    pub fn tag(&self) -> Option<&str> {
        self.name.strip_prefix("tag:")
    }
}

/// One row of the ledger: a slot held, or a place in the line for one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Slot {
    /// The limit.
    pub limit: String,
    /// Who holds or awaits it: a task run's id, or the id of one `orion::concurrency` call.
    pub holder: Uuid,
    /// What the holder is, for people (`task run 'query-3f2a-0'`).
    pub holder_name: String,
    /// How many of the limit's slots it takes.
    pub occupy: u32,
    /// Whether it is still waiting (a place in the line, holding nothing).
    pub waiting: bool,
    /// Its place in the line: waiters are granted in ticket order.
    pub ticket: u64,
    /// The process holding it, and until when.
    pub lease: Lease,
    /// When it was taken (or, for a waiter, when it started waiting).
    pub since: Timestamp,
    /// A rate-limit slot: never renewed nor released, it lapses with its lease.
    #[serde(default)]
    pub decays: bool,
}

impl Slot {
    /// Whether its lease is still live at `now`: a lapsed row counts for nothing.
    pub fn live(&self, now: Timestamp) -> bool {
        self.lease.expires > now
    }
}

/// An ask for one slot of each of several limits, all or none: see
/// [`Store::acquire_slots`](super::Store::acquire_slots).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SlotRequest {
    /// The limits; names without a stored limit are not limited.
    pub limits: Vec<String>,
    /// The holder.
    pub holder: Uuid,
    /// What the holder is, for people.
    pub holder_name: String,
    /// Slots of each limit it takes (at least 1).
    pub occupy: u32,
    /// The lease each row gets (its `renewed` is the request's now).
    pub lease: Lease,
    /// When not granted: take (or keep) a place in the line, rather than nothing.
    pub wait: bool,
    /// Create a missing limit of this name first (`orion::concurrency`): its size and rate.
    pub create: Option<(u32, Option<Duration>)>,
}

impl SlotRequest {
    /// An ask by `holder` for one slot of each of `limits`, under `lease`.
    pub fn new(
        limits: Vec<String>,
        holder: Uuid,
        holder_name: impl Into<String>,
        lease: Lease,
    ) -> Self {
        SlotRequest {
            limits,
            holder,
            holder_name: holder_name.into(),
            occupy: 1,
            lease,
            wait: false,
            create: None,
        }
    }
    /// Takes `n` slots of each limit.
    #[must_use]
    pub fn occupy(mut self, n: u32) -> Self {
        self.occupy = n.max(1);
        self
    }
    /// Waits in line when not granted.
    #[must_use]
    pub fn wait(mut self, wait: bool) -> Self {
        self.wait = wait;
        self
    }
    /// Creates the (single) limit asked for when it does not exist.
    #[must_use]
    pub fn create(mut self, limit: u32, per: Option<Duration>) -> Self {
        self.create = Some((limit, per));
        self
    }
    fn now(&self) -> Timestamp {
        self.lease.renewed
    }
}

/// What [`Store::acquire_slots`](super::Store::acquire_slots) did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Acquired {
    /// The slots are taken (none when no name asked for is a stored limit).
    Granted {
        /// The rows written, one per limit; each carries its lease.
        slots: Vec<Slot>,
        /// Whether every limit asked for still has a free slot after this grant: the next
        /// waiter in line may be granted too, and should be told.
        room: bool,
    },
    /// A limit is full: nothing is held; with [`SlotRequest::wait`] the holder has a place in
    /// the line.
    Full {
        /// The first full limit.
        limit: String,
        /// Its size.
        size: u32,
        /// Slots of it held now.
        held: u32,
        /// Waiters ahead of this one.
        ahead: usize,
        /// How long until its earliest held slot lapses by itself (a rate limit), if ever.
        frees_in: Option<Duration>,
        /// The asker's place in line (its waiting rows carry it, when it waits).
        ticket: u64,
    },
    /// A limit can never grant this: it has fewer slots than asked for (a limit of 0).
    Refused {
        /// The limit.
        limit: String,
        /// Its size.
        size: u32,
    },
}

/// The rows written and deleted by one decision.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Delete the holder's rows first (its places in line, slots it held), except rate-limit
    /// slots, which stay until they lapse.
    pub(crate) delete_holder: bool,
    /// Rows to write.
    pub(crate) insert: Vec<Slot>,
}

/// Decides a request against the stored limits among those asked for (`limits`) and the
/// ledger rows of each (`rows`, every row of those limits, live or not), with the next unused
/// ticket. The same code for every backend.
pub(crate) fn decide<R: Borrow<Slot>>(
    request: &SlotRequest,
    limits: &[ConcurrencyLimit],
    rows: &[R],
    next_ticket: u64,
) -> (Acquired, Changes) {
    let now = request.now();
    let rows = || rows.iter().map(Borrow::borrow);
    let mine: Vec<&Slot> = rows()
        .filter(|r| r.holder == request.holder && r.live(now) && !r.decays)
        .collect();
    // Already holding every slot asked for (a repeated ask): nothing to do.
    if !mine.is_empty()
        && limits
            .iter()
            .all(|l| mine.iter().any(|r| r.limit == l.name && !r.waiting))
    {
        let slots = mine.into_iter().filter(|r| !r.waiting).cloned().collect();
        let granted = Acquired::Granted { slots, room: false };
        return (granted, Changes::default());
    }
    let ticket = mine
        .iter()
        .filter(|r| r.waiting)
        .map(|r| r.ticket)
        .min()
        .unwrap_or(next_ticket);
    let mut full = None;
    let mut room = true;
    for limit in limits {
        if request.occupy > limit.limit {
            let refused = Acquired::Refused {
                limit: limit.name.clone(),
                size: limit.limit,
            };
            let changes = Changes {
                delete_holder: true,
                insert: Vec::new(),
            };
            return (refused, changes);
        }
        let live = || {
            rows()
                .filter(|r| r.limit == limit.name && r.live(now))
                // The holder's own rows are replaced, but rate-limit slots it took stay taken.
                .filter(|r| r.holder != request.holder || r.decays)
        };
        let held: u32 = live().filter(|r| !r.waiting).map(|r| r.occupy).sum();
        let ahead: Vec<&Slot> = live().filter(|r| r.waiting && r.ticket < ticket).collect();
        let queued: u32 = ahead.iter().map(|r| r.occupy).sum();
        room &= held.saturating_add(request.occupy) < limit.limit;
        if full.is_none()
            && held.saturating_add(queued).saturating_add(request.occupy) > limit.limit
        {
            let frees_in = limit.per.and_then(|_| {
                live()
                    .filter(|r| !r.waiting)
                    .map(|r| r.lease.expires)
                    .min()
                    .and_then(|t| Duration::try_from(now.duration_until(t)).ok())
            });
            full = Some(Acquired::Full {
                limit: limit.name.clone(),
                size: limit.limit,
                held,
                ahead: ahead.len(),
                frees_in,
                ticket,
            });
        }
    }
    let row = |limit: &ConcurrencyLimit, waiting: bool| {
        let mut lease = request.lease.clone();
        if let (false, Some(per)) = (waiting, limit.per) {
            // A rate-limit slot is never renewed: it lapses `per` after it is taken.
            lease = Lease::new(lease.owner, lease.owner_name, now, per);
        }
        let since = mine
            .iter()
            .find(|r| r.limit == limit.name && waiting)
            .map_or(now, |r| r.since);
        Slot {
            limit: limit.name.clone(),
            holder: request.holder,
            holder_name: request.holder_name.clone(),
            occupy: request.occupy,
            waiting,
            ticket,
            decays: !waiting && limit.per.is_some(),
            lease,
            since,
        }
    };
    match full {
        None => {
            let slots: Vec<Slot> = limits.iter().map(|l| row(l, false)).collect();
            let changes = Changes {
                delete_holder: true,
                insert: slots.clone(),
            };
            (Acquired::Granted { slots, room }, changes)
        }
        Some(full) => {
            let insert = if request.wait {
                limits.iter().map(|l| row(l, true)).collect()
            } else {
                Vec::new()
            };
            let changes = Changes {
                delete_holder: true,
                insert,
            };
            (full, changes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn ask(holder: u128, now: i64) -> SlotRequest {
        let lease = Lease::new(Uuid::from_u128(9), "p", at(now), Duration::from_secs(30));
        SlotRequest::new(vec!["tag:db".into()], Uuid::from_u128(holder), "h", lease).wait(true)
    }

    /// Applies a decision to `rows` as a backend would.
    fn apply(rows: &mut Vec<Slot>, request: &SlotRequest, changes: Changes) {
        if changes.delete_holder {
            rows.retain(|r| r.holder != request.holder);
        }
        rows.extend(changes.insert);
    }

    #[test]
    fn waiters_are_granted_in_ticket_order_and_lapsed_rows_count_for_nothing() {
        let limits = [ConcurrencyLimit::new("tag:db", 1, at(0))];
        let mut rows = Vec::new();
        let mut next = 1;
        for holder in [1, 2, 3] {
            let req = ask(holder, 0);
            let (got, changes) = decide(&req, &limits, &rows, next);
            next += 1;
            apply(&mut rows, &req, changes);
            if holder == 1 {
                assert!(matches!(got, Acquired::Granted { .. }), "{got:?}");
            } else {
                assert!(
                    matches!(got, Acquired::Full { ahead, .. } if ahead == holder as usize - 2),
                    "{got:?}"
                );
            }
        }
        // Holder 1 releases; 3 asks again first but 2 is ahead of it.
        rows.retain(|r| r.holder != Uuid::from_u128(1));
        let (got, _) = decide(&ask(3, 1), &limits, &rows, next);
        assert!(matches!(got, Acquired::Full { ahead: 1, .. }), "{got:?}");
        let req = ask(2, 1);
        let (got, changes) = decide(&req, &limits, &rows, next);
        assert!(matches!(got, Acquired::Granted { .. }), "{got:?}");
        apply(&mut rows, &req, changes);
        // Holder 2's process dies: after its lease, 3 gets the slot without any release.
        let (got, _) = decide(&ask(3, 20), &limits, &rows, next);
        assert!(matches!(got, Acquired::Full { .. }), "{got:?}");
        let (got, _) = decide(&ask(3, 40), &limits, &rows, next);
        assert!(matches!(got, Acquired::Granted { .. }), "{got:?}");
    }

    #[test]
    fn a_limit_smaller_than_the_ask_refuses_rather_than_waits() {
        let limits = [ConcurrencyLimit::new("tag:db", 0, at(0))];
        let (got, changes) = decide::<Slot>(&ask(1, 0), &limits, &[], 1);
        assert_eq!(
            got,
            Acquired::Refused {
                limit: "tag:db".into(),
                size: 0
            }
        );
        assert!(changes.insert.is_empty());
    }

    #[test]
    fn rate_limit_slots_lapse_after_their_period_and_say_when() {
        let limits = [ConcurrencyLimit::new("tag:db", 2, at(0)).per(Some(Duration::from_secs(10)))];
        let mut rows = Vec::new();
        for (holder, now) in [(1, 0), (2, 4)] {
            let req = ask(holder, now).wait(false);
            let (got, changes) = decide(&req, &limits, &rows, 1);
            assert!(matches!(got, Acquired::Granted { .. }));
            apply(&mut rows, &req, changes);
        }
        let (got, _) = decide(&ask(3, 6).wait(false), &limits, &rows, 1);
        assert_eq!(
            got,
            Acquired::Full {
                limit: "tag:db".into(),
                size: 2,
                held: 2,
                ahead: 0,
                frees_in: Some(Duration::from_secs(4)),
                ticket: 1,
            }
        );
        let (got, _) = decide(&ask(3, 10).wait(false), &limits, &rows, 1);
        assert!(matches!(got, Acquired::Granted { .. }), "{got:?}");
    }
}
