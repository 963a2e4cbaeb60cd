//! Named concurrency and rate limits around any code, inside or outside flows (Prefect 3's
//! global concurrency limits): slots of the same ledger as task-tag limits, so they hold
//! across every process using the store and are never leaked by a crash.

use std::time::Duration;

use crate::client::{SlotAsk, SlotHold};
use crate::store::ConcurrencyLimit;
use crate::{Error, Orion, OrionClient, Result};

/// A slot of a named concurrency limit, held until dropped or [released](Self::release).
///
/// Dropping it releases the slot in the background (the next waiter in this process is
/// woken at once); `release().await` does it before returning. If the process dies, the
/// slot's lease lapses and it is free again (by default within 30 s).
#[derive(Debug)]
#[must_use = "the slot is released as soon as it is dropped"]
pub struct ConcurrencySlot {
    name: String,
    hold: Option<SlotHold>,
}

impl ConcurrencySlot {
    /// The limit's name.
    pub fn limit(&self) -> &str {
        &self.name
    }

    /// Releases the slot now.
    ///
    /// # Errors
    ///
    /// Store failures (the slot then lapses with its lease).
    pub async fn release(mut self) -> Result<()> {
        match self.hold.take() {
            Some(hold) => hold.release().await,
            None => Ok(()),
        }
    }
}

/// Waits for a slot of the named limit `name` and holds it until the returned guard is
/// dropped: at most `limit` holders at once across every process using the runtime's store.
/// The limit is created with `limit` slots when it does not exist; once stored, its stored
/// size rules (change it with [`OrionClient::upsert_concurrency_limit`] or the CLI's
/// `concurrency-limit create`). Waiters are served first come, first served, and hold
/// nothing while they wait. Runs on the ambient runtime ([`Orion::current`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> orion::Result<()> {
/// # orion::Orion::memory().scope(guarded()).await }
/// # async fn guarded() -> orion::Result<()> {
/// let slot = orion::concurrency("warehouse", 4).await?;
/// // … at most 4 of these at once, in every process using the store …
/// drop(slot);
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// [`Error::ConcurrencyLimit`] when the stored limit has 0 slots; store failures.
pub async fn concurrency(name: &str, limit: u32) -> Result<ConcurrencySlot> {
    Orion::current().client().concurrency(name, limit).await
}

/// Waits until the rate limit `name` lets one more call through: at most `limit` calls in
/// any window of `per`, across every process using the runtime's store. The limit is
/// created when it does not exist; a stored limit that is not a rate limit is refused.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> orion::Result<()> {
/// # orion::Orion::memory().scope(calls()).await }
/// # async fn calls() -> orion::Result<()> {
/// use std::time::Duration;
/// for _ in 0..3 {
///     orion::rate_limit("api", 2, Duration::from_secs(1)).await?; // the third call waits 1 s
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// [`Error::Setting`] for a zero period or a stored limit without a rate;
/// [`Error::ConcurrencyLimit`] for a limit of 0; store failures.
pub async fn rate_limit(name: &str, limit: u32, per: Duration) -> Result<()> {
    Orion::current().client().rate_limit(name, limit, per).await
}

impl OrionClient {
    /// [`crate::concurrency`] on this client's store.
    ///
    /// # Errors
    ///
    /// As [`crate::concurrency`].
    pub async fn concurrency(&self, name: &str, limit: u32) -> Result<ConcurrencySlot> {
        let ask = named_ask(name, limit, None)?;
        let hold = self.take_slots(&ask).await?;
        Ok(ConcurrencySlot {
            name: name.to_owned(),
            hold,
        })
    }

    /// [`crate::rate_limit`] on this client's store.
    ///
    /// # Errors
    ///
    /// As [`crate::rate_limit`].
    pub async fn rate_limit(&self, name: &str, limit: u32, per: Duration) -> Result<()> {
        if per.is_zero() {
            return Err(Error::Setting {
                name: "rate limit period",
                value: "0s".into(),
                reason: "must be longer than zero".into(),
            });
        }
        if let Some(stored) = self.store().read_concurrency_limit(name).await? {
            if stored.per.is_none() {
                return Err(not_a_rate_limit(&stored));
            }
        }
        let ask = named_ask(name, limit, Some(per))?;
        // Rate-limit slots are never released: they lapse `per` after they were taken.
        if let Some(mut hold) = self.take_slots(&ask).await? {
            hold.forget();
        }
        Ok(())
    }
}

impl Orion {
    /// [`crate::concurrency`] on this runtime.
    ///
    /// # Errors
    ///
    /// As [`crate::concurrency`].
    pub async fn concurrency(&self, name: &str, limit: u32) -> Result<ConcurrencySlot> {
        self.client().concurrency(name, limit).await
    }

    /// [`crate::rate_limit`] on this runtime.
    ///
    /// # Errors
    ///
    /// As [`crate::rate_limit`].
    pub async fn rate_limit(&self, name: &str, limit: u32, per: Duration) -> Result<()> {
        self.client().rate_limit(name, limit, per).await
    }
}

fn named_ask(name: &str, limit: u32, per: Option<Duration>) -> Result<SlotAsk> {
    if name.trim().is_empty() {
        return Err(Error::Setting {
            name: "concurrency limit name",
            value: name.to_owned(),
            reason: "must not be empty".into(),
        });
    }
    Ok(SlotAsk {
        limits: vec![name.to_owned()],
        holder: crate::ids::new_id(),
        holder_name: holder_name(),
        occupy: 1,
        create: Some((limit, per)),
    })
}

/// Who holds a named slot, for people: the run it is taken in, else the process.
fn holder_name() -> String {
    if let Some(task) = crate::task_run_context() {
        return format!("task run '{}'", task.name);
    }
    if let Some(flow) = crate::flow_run_context() {
        return format!("flow run '{}'", flow.name);
    }
    format!("process {}", std::process::id())
}

fn not_a_rate_limit(limit: &ConcurrencyLimit) -> Error {
    Error::Setting {
        name: "rate limit",
        value: limit.name.clone(),
        reason: "the stored limit has no rate (no period): use orion::concurrency for it, or give it a period".into(),
    }
}
