//! The memory store's concurrency ledger: the rows of each limit, and which limits each
//! holder has rows in (so a release finds them without a scan).

use std::collections::HashMap;

use jiff::Timestamp;
use uuid::Uuid;

use crate::store::bookkeeping::keep_limit_identity;
use crate::store::ledger::{Acquired, ConcurrencyLimit, Slot, SlotRequest, decide};

#[derive(Debug, Default)]
pub(super) struct Ledger {
    limits: HashMap<String, ConcurrencyLimit>,
    rows: HashMap<String, Vec<Slot>>,
    by_holder: HashMap<Uuid, Vec<String>>,
    next_ticket: u64,
}

impl Ledger {
    pub(super) fn upsert(&mut self, mut limit: ConcurrencyLimit) -> ConcurrencyLimit {
        if let Some(stored) = self.limits.get(&limit.name) {
            keep_limit_identity(&mut limit, stored);
        }
        self.limits.insert(limit.name.clone(), limit.clone());
        limit
    }

    pub(super) fn limit(&self, name: &str) -> Option<ConcurrencyLimit> {
        self.limits.get(name).cloned()
    }

    pub(super) fn limits(&self) -> Vec<ConcurrencyLimit> {
        let mut all: Vec<ConcurrencyLimit> = self.limits.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub(super) fn delete(&mut self, name: &str) -> bool {
        self.reset(name);
        self.limits.remove(name).is_some()
    }

    pub(super) fn rows(&self, name: &str) -> Vec<Slot> {
        let mut rows = self.rows.get(name).cloned().unwrap_or_default();
        rows.sort_by_key(|r| (r.waiting, r.ticket));
        rows
    }

    pub(super) fn acquire(&mut self, request: &SlotRequest) -> Acquired {
        if let (Some((size, per)), [name]) = (request.create, request.limits.as_slice()) {
            if !self.limits.contains_key(name) {
                let limit =
                    ConcurrencyLimit::new(name.clone(), size, request.lease.renewed).per(per);
                self.limits.insert(name.clone(), limit);
            }
        }
        let limits: Vec<ConcurrencyLimit> = request
            .limits
            .iter()
            .filter_map(|n| self.limits.get(n).cloned())
            .collect();
        if limits.is_empty() {
            return Acquired::Granted {
                slots: Vec::new(),
                room: false,
            };
        }
        let rows: Vec<&Slot> = limits
            .iter()
            .flat_map(|l| self.rows.get(&l.name).into_iter().flatten())
            .collect();
        self.next_ticket += 1;
        let (acquired, changes) = decide(request, &limits, &rows, self.next_ticket);
        if changes.delete_holder {
            self.remove_holder(request.holder, |r| !r.decays);
        }
        for row in changes.insert {
            self.by_holder
                .entry(row.holder)
                .or_default()
                .push(row.limit.clone());
            self.rows.entry(row.limit.clone()).or_default().push(row);
        }
        acquired
    }

    /// Deletes the rows of `holder` that `which` picks; returns the limits they were in.
    fn remove_holder(&mut self, holder: Uuid, which: impl Fn(&Slot) -> bool) -> Vec<String> {
        let Some(names) = self.by_holder.remove(&holder) else {
            return Vec::new();
        };
        let mut freed = Vec::new();
        let mut kept = Vec::new();
        for name in names {
            if let Some(rows) = self.rows.get_mut(&name) {
                let before = rows.len();
                rows.retain(|r| r.holder != holder || !which(r));
                if rows.len() < before {
                    freed.push(name.clone());
                }
                if rows.iter().any(|r| r.holder == holder) {
                    kept.push(name);
                }
            }
        }
        if !kept.is_empty() {
            self.by_holder.insert(holder, kept);
        }
        freed.dedup();
        freed
    }

    /// Deletes the holder's rows, except rate-limit slots; returns the limits freed.
    pub(super) fn release(&mut self, holder: Uuid) -> Vec<String> {
        self.remove_holder(holder, |r| !r.decays)
    }

    pub(super) fn renew(
        &mut self,
        owner: Uuid,
        holders: &[Uuid],
        expires: Timestamp,
        now: Timestamp,
    ) -> Vec<Uuid> {
        let mut lost = Vec::new();
        for holder in holders {
            let mut found = false;
            for name in self.by_holder.get(holder).into_iter().flatten() {
                for row in self.rows.get_mut(name).into_iter().flatten() {
                    // A lapsed row is not revived: its slot may have gone to another.
                    if row.holder == *holder
                        && row.lease.owner == owner
                        && !row.decays
                        && row.live(now)
                    {
                        row.lease.expires = expires;
                        row.lease.renewed = now;
                        found = true;
                    }
                }
            }
            if !found {
                lost.push(*holder);
            }
        }
        lost
    }

    pub(super) fn reset(&mut self, name: &str) -> usize {
        let rows = self.rows.remove(name).unwrap_or_default();
        for row in &rows {
            if let Some(names) = self.by_holder.get_mut(&row.holder) {
                names.retain(|n| n != name);
                if names.is_empty() {
                    self.by_holder.remove(&row.holder);
                }
            }
        }
        rows.len()
    }

    pub(super) fn reap(&mut self, now: Timestamp) -> Vec<String> {
        let mut freed = Vec::new();
        let mut gone = Vec::new();
        for (name, rows) in &mut self.rows {
            let before = rows.len();
            rows.retain(|r| {
                let live = r.live(now);
                if !live {
                    gone.push((r.holder, name.clone()));
                }
                live
            });
            if rows.len() < before {
                freed.push(name.clone());
            }
        }
        for (holder, name) in gone {
            let still = self
                .rows
                .get(&name)
                .is_some_and(|rows| rows.iter().any(|r| r.holder == holder));
            if let (false, Some(names)) = (still, self.by_holder.get_mut(&holder)) {
                names.retain(|n| *n != name);
                if names.is_empty() {
                    self.by_holder.remove(&holder);
                }
            }
        }
        freed.sort();
        freed
    }
}
