//! Managing concurrency limits through the client: create, resize, read with holders and
//! waiters, reset, delete. Taking and releasing slots is in `slots`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use super::OrionClient;
use crate::store::{ConcurrencyLimit, Slot, tag_limit_name};
use crate::{Error, Result};

/// A limit with who holds its slots and who waits for one.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ConcurrencyLimitStatus {
    /// The limit.
    pub limit: ConcurrencyLimit,
    /// The slots held now (live leases), earliest taken first.
    pub holders: Vec<Slot>,
    /// The holders waiting for a slot, in line order.
    pub waiters: Vec<Slot>,
}

impl ConcurrencyLimitStatus {
    /// Slots held now.
    pub fn active_slots(&self) -> u32 {
        self.holders.iter().map(|s| s.occupy).sum()
    }
}

impl OrionClient {
    /// Limits the task runs carrying `tag` to `limit` at once, across every process using
    /// this store (Prefect's `concurrency-limit create TAG N`); creates the limit or changes
    /// its size. A task run with a limited tag takes a slot of it before it runs, and waits
    /// in state `AwaitingConcurrencySlot` — holding nothing — while none is free. A limit of
    /// 0 makes such task runs fail at once, saying why, rather than wait for ever.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> orion::Result<()> {
    /// let orion = orion::Orion::memory();
    /// orion.client().set_concurrency_limit("database", 2).await?;
    /// let status = orion.client().read_concurrency_limit("tag:database").await?;
    /// assert_eq!((status.limit.limit, status.active_slots()), (2, 0));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Setting`] for an empty tag; store failures.
    pub async fn set_concurrency_limit(&self, tag: &str, limit: u32) -> Result<ConcurrencyLimit> {
        if tag.trim().is_empty() {
            return Err(Error::Setting {
                name: "concurrency limit tag",
                value: tag.to_owned(),
                reason: "must not be empty".into(),
            });
        }
        let limit = ConcurrencyLimit::new(tag_limit_name(tag), limit, self.now());
        self.upsert_concurrency_limit(limit).await
    }

    /// Creates a concurrency limit, or changes the one of that name (its size, its rate);
    /// waiters of this runtime look again at once. Name it `tag:TAG` to limit a task tag;
    /// any other name is a named limit, for [`crate::concurrency`] and [`crate::rate_limit`].
    ///
    /// # Errors
    ///
    /// [`Error::Setting`] for an empty name or a zero rate period; store failures.
    pub async fn upsert_concurrency_limit(
        &self,
        mut limit: ConcurrencyLimit,
    ) -> Result<ConcurrencyLimit> {
        check_limit_name(&limit.name)?;
        if limit.per.is_some_and(|p| p.is_zero()) {
            return Err(Error::Setting {
                name: "concurrency limit period",
                value: "0s".into(),
                reason: "a rate limit's period must be longer than zero".into(),
            });
        }
        limit.updated = self.now();
        let stored = self.store.upsert_concurrency_limit(limit).await?;
        self.signals.slots.wake_all(&stored.name);
        Ok(stored)
    }

    /// A limit with its holders and waiters (live leases only: a slot of a process that
    /// died is not shown once its lease lapsed).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub async fn read_concurrency_limit(&self, name: &str) -> Result<ConcurrencyLimitStatus> {
        let limit = self
            .store
            .read_concurrency_limit(name)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "concurrency limit",
                name: name.to_owned(),
            })?;
        let now = self.now();
        let (waiters, holders) = self
            .store
            .read_slots(name)
            .await?
            .into_iter()
            .filter(|s| s.live(now))
            .partition(|s| s.waiting);
        Ok(ConcurrencyLimitStatus {
            limit,
            holders,
            waiters,
        })
    }

    /// Every concurrency limit, by name.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn read_concurrency_limits(&self) -> Result<Vec<ConcurrencyLimit>> {
        Ok(self.store.read_concurrency_limits().await?)
    }

    /// Frees every slot of a limit and empties its line (Prefect's `concurrency-limit
    /// reset`): for slots a bug or an operator knows to be stale. Their holders go on
    /// running; waiters ask again. Returns how many ledger rows were dropped.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; store failures.
    pub async fn reset_concurrency_limit(&self, name: &str) -> Result<usize> {
        self.read_concurrency_limit(name).await?;
        let dropped = self.store.reset_slots(name).await?;
        self.signals.slots.wake_all(name);
        Ok(dropped)
    }

    /// Deletes a limit with its slots: what it limited is no longer limited. Returns
    /// whether it existed.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn delete_concurrency_limit(&self, name: &str) -> Result<bool> {
        let existed = self.store.delete_concurrency_limit(name).await?;
        self.signals.slots.wake_all(name);
        Ok(existed)
    }

    /// How long the slots this runtime takes are leased for (default 30 s, or
    /// `ORION_SLOT_LEASE_SECONDS`): renewed every third of it while held, so a slot of a
    /// process that died is free again at most this long after it stopped.
    pub fn set_slot_lease(&self, lease: Duration) {
        let ms =
            u64::try_from(lease.max(Duration::from_millis(30)).as_millis()).unwrap_or(u64::MAX);
        self.signals.slots.lease_ms.store(ms, Ordering::Relaxed);
    }

    /// Deletes the ledger rows whose leases lapsed (their processes died) and wakes the
    /// waiters of this runtime in line for those limits; returns the limits that had any.
    /// The reaper does this on every pass; lapsed rows count for nothing even before.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn reap_slots(&self) -> Result<Vec<String>> {
        let freed = self.store.reap_slots(self.now()).await?;
        self.signals.slots.wake_first(&freed);
        Ok(freed)
    }
}

fn check_limit_name(name: &str) -> Result<()> {
    let bare = name.strip_prefix("tag:").unwrap_or(name);
    if bare.trim().is_empty() {
        return Err(Error::Setting {
            name: "concurrency limit name",
            value: name.to_owned(),
            reason: "must not be empty".into(),
        });
    }
    Ok(())
}
