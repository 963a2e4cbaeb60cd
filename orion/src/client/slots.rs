//! Concurrency slots through the client: taking them (waiting in line when full), renewing
//! their leases while held, releasing them, and waking the next waiter of this runtime at
//! once. Managing the limits themselves is in `limits`.
//!
//! The ledger itself is in the store ([`crate::store::Store::acquire_slots`]): every slot
//! is a row with a lease, so a slot of a process that died stops counting when its lease
//! lapses. This file is the process side: one lease owner per runtime, one keeper task that
//! renews the leases of every slot this runtime holds or waits for, and the in-process line
//! of waiters that a release wakes.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

use super::OrionClient;
use crate::store::{Acquired, Lease, SlotRequest};
use crate::{Error, Result};

/// The default lease of a slot: renewed every third of it while held.
const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How often a waiter at the head of the line looks again when nothing in this runtime woke
/// it (a slot freed by another process, or a lease that lapsed).
const POLL: Duration = Duration::from_millis(25);
/// How long the waiter furthest back waits between looks.
const MAX_POLL: Duration = Duration::from_secs(1);

/// The slot bookkeeping of one runtime, shared by its clients.
#[derive(Debug)]
pub(crate) struct SlotSignals {
    /// The lease owner of every slot this runtime takes, and its name in messages.
    owner: Uuid,
    owner_name: String,
    /// The lease length, in milliseconds.
    pub(super) lease_ms: AtomicU64,
    /// Counts the wake-ups given: a waiter whose ask raced a release asks again at once.
    wakes: AtomicU64,
    state: Mutex<SlotState>,
}

#[derive(Debug, Default)]
struct SlotState {
    /// Holders with rows in the ledger (held or waiting): the keeper renews them.
    tracked: HashSet<Uuid>,
    /// The keeper task, while one runs (it ends when nothing is tracked, or with the tokio
    /// runtime it was spawned on: then the next slot taken spawns another).
    keeper: Option<tokio::task::JoinHandle<()>>,
    /// This runtime's waiters, in the order they started waiting.
    waiters: Vec<Waiter>,
}

#[derive(Debug)]
struct Waiter {
    holder: Uuid,
    limits: Vec<String>,
    wake: Arc<Notify>,
    /// Its place in the store's line, once an answer told it.
    ticket: Option<u64>,
    /// Woken and not yet asking again: a second release wakes the next waiter instead (a
    /// notification to this one would only be coalesced with the first, leaving a slot idle).
    woken: bool,
}

impl Default for SlotSignals {
    fn default() -> Self {
        let lease = std::env::var("ORION_SLOT_LEASE_SECONDS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .filter(|d| *d >= Duration::from_millis(30));
        let lease = match (lease, std::env::var("ORION_SLOT_LEASE_SECONDS")) {
            (Some(lease), _) => lease,
            (None, Ok(given)) => {
                eprintln!(
                    "orion: ignoring ORION_SLOT_LEASE_SECONDS={given:?}: expected a number of seconds of at least 0.03; using {} s",
                    DEFAULT_LEASE.as_secs()
                );
                DEFAULT_LEASE
            }
            (None, Err(_)) => DEFAULT_LEASE,
        };
        SlotSignals {
            owner: crate::ids::new_id(),
            owner_name: format!("process {}", std::process::id()),
            lease_ms: AtomicU64::new(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX)),
            wakes: AtomicU64::new(0),
            state: Mutex::default(),
        }
    }
}

impl SlotSignals {
    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms.load(Ordering::Relaxed))
    }
    /// Wakes, for each of `limits`, the waiter of this runtime first in the store's line
    /// that is not woken already. (A waiter whose place is not known yet is still asking:
    /// it sees the wake-up count move and asks again.)
    pub(super) fn wake_first(&self, limits: &[String]) {
        let mut state = self.state();
        self.wakes.fetch_add(1, Ordering::SeqCst);
        for limit in limits {
            let next = state
                .waiters
                .iter_mut()
                .filter(|w| !w.woken && w.ticket.is_some() && w.limits.contains(limit))
                .min_by_key(|w| w.ticket);
            if let Some(w) = next {
                w.woken = true;
                w.wake.notify_one();
            }
        }
    }
    /// After an ask by `asker` found free slots it did not take (granted with room left, or
    /// full only for the waiters ahead of it, at `below`): wakes the waiter of this runtime
    /// first in line for those limits — so no free slot waits for a poll while a waiter of
    /// this process could have it.
    fn pass_on(&self, limits: &[String], asker: Uuid, below: Option<u64>) {
        // No wake-up count: nothing was freed, so asks in flight need not be repeated.
        let mut state = self.state();
        let next = state
            .waiters
            .iter_mut()
            .filter(|w| w.holder != asker && !w.woken)
            .filter(|w| w.ticket.is_some_and(|t| below.is_none_or(|b| t < b)))
            .filter(|w| w.limits.iter().any(|l| limits.contains(l)))
            .min_by_key(|w| w.ticket);
        if let Some(w) = next {
            w.woken = true;
            w.wake.notify_one();
        }
    }
    /// Wakes every waiter of this runtime in line for `limit` (its size changed, it was
    /// reset or deleted).
    pub(super) fn wake_all(&self, limit: &str) {
        let mut state = self.state();
        self.wakes.fetch_add(1, Ordering::SeqCst);
        for w in state
            .waiters
            .iter_mut()
            .filter(|w| w.limits.iter().any(|l| l == limit))
        {
            w.woken = true;
            w.wake.notify_one();
        }
    }
}

/// What a holder asks for: one slot (or `occupy`) of each limit named, all or none.
#[derive(Debug, Clone)]
pub(crate) struct SlotAsk {
    pub(crate) limits: Vec<String>,
    pub(crate) holder: Uuid,
    pub(crate) holder_name: String,
    pub(crate) occupy: u32,
    /// Create the (single) limit with this size and rate when missing.
    pub(crate) create: Option<(u32, Option<Duration>)>,
}

/// Slots taken by one holder; released by [`SlotHold::release`], or on drop (in the
/// background, when a tokio runtime is there to do it; else their leases lapse).
#[derive(Debug)]
pub(crate) struct SlotHold {
    client: OrionClient,
    holder: Uuid,
    active: bool,
}

impl SlotHold {
    /// Releases the slots now; the next waiter of this runtime is woken at once.
    pub(crate) async fn release(mut self) -> Result<()> {
        self.active = false;
        self.client.release_slots(self.holder).await
    }
}

impl SlotHold {
    /// Lets the slots lapse by themselves (rate-limit slots): nothing to release or renew.
    pub(crate) fn forget(&mut self) {
        self.active = false;
        self.client.untrack(self.holder);
    }
}

impl Drop for SlotHold {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            let holder = self.holder;
            handle.spawn(async move {
                let _ = client.release_slots(holder).await;
            });
        }
    }
}

/// A place in this runtime's line, left when dropped. A waiter dropped before it was
/// granted (its future was cancelled, a timeout around it fired) also gives up its place in
/// the store's line, so an abandoned wait never holds up the waiters behind it.
#[derive(Debug)]
pub(crate) struct SlotWaiter {
    client: OrionClient,
    holder: Uuid,
    wake: Arc<Notify>,
    settled: bool,
}

impl Drop for SlotWaiter {
    fn drop(&mut self) {
        let slots = &self.client.signals.slots;
        slots.state().waiters.retain(|w| w.holder != self.holder);
        if self.settled {
            return;
        }
        self.client.untrack(self.holder);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            let holder = self.holder;
            handle.spawn(async move {
                let _ = client.release_slots(holder).await;
            });
        }
    }
}

/// A holder's wait for slots. Its place in this runtime's line is taken only once an ask
/// finds a limit full, so an ask granted at once costs no bookkeeping here.
pub(crate) struct SlotLine<'a> {
    client: &'a OrionClient,
    ask: &'a SlotAsk,
    waiter: Option<SlotWaiter>,
}

impl<'a> SlotLine<'a> {
    pub(crate) fn new(client: &'a OrionClient, ask: &'a SlotAsk) -> Self {
        SlotLine {
            client,
            ask,
            waiter: None,
        }
    }

    /// Called before each ask; returns the wake-up count, for [`SlotLine::turn`].
    pub(crate) fn asking(&self) -> u64 {
        match &self.waiter {
            Some(w) => w.asking(),
            None => self.client.signals.slots.wakes.load(Ordering::SeqCst),
        }
    }

    /// Takes a place in this runtime's line, right after an ask found a limit full (and
    /// before anything else is awaited: from here on, dropping the line gives the place in
    /// the store's line back).
    pub(crate) fn join(&mut self) {
        if self.waiter.is_none() {
            self.waiter = Some(self.client.line_up(self.ask));
        }
    }

    /// See [`SlotWaiter::turn`]; joins the line first if need be.
    pub(crate) async fn turn(&mut self, full: &Acquired, asked: u64) {
        self.join();
        if let Some(w) = &self.waiter {
            w.turn(full, asked).await;
        }
    }

    /// The wait is over (granted, or its rows released by the caller).
    pub(crate) fn settle(self) {
        if let Some(w) = self.waiter {
            w.settle();
        }
    }
}

impl SlotWaiter {
    /// Leaves this runtime's line, the wait being over (granted, or its rows released).
    pub(crate) fn settle(mut self) {
        self.settled = true;
    }

    /// Called before each ask: from here on a release may wake this waiter again. Returns
    /// the wake-up count, for [`SlotWaiter::turn`].
    pub(crate) fn asking(&self) -> u64 {
        let slots = &self.client.signals.slots;
        let mut state = slots.state();
        if let Some(w) = state.waiters.iter_mut().find(|w| w.holder == self.holder) {
            w.woken = false;
        }
        slots.wakes.load(Ordering::SeqCst)
    }

    /// Waits until this runtime frees a slot of a limit it waits for, or it is time to look
    /// again by itself: sooner at the head of the line, at a rate-limit slot's decay. Returns
    /// at once when a wake-up was given since `asked` (what [`SlotWaiter::asking`] returned),
    /// which this waiter's ask may have missed.
    pub(crate) async fn turn(&self, full: &Acquired, asked: u64) {
        let slots = &self.client.signals.slots;
        {
            let mut state = slots.state();
            if let (Some(w), Acquired::Full { ticket, .. }) = (
                state.waiters.iter_mut().find(|w| w.holder == self.holder),
                full,
            ) {
                w.ticket = Some(*ticket);
            }
            if slots.wakes.load(Ordering::SeqCst) != asked {
                return;
            }
        }
        let mut wait = POLL;
        if let Acquired::Full {
            size,
            ahead,
            frees_in,
            ..
        } = full
        {
            let behind = u32::try_from(*ahead).unwrap_or(u32::MAX) / (*size).max(1);
            wait = POLL.saturating_mul(behind.saturating_add(1)).min(MAX_POLL);
            if let Some(frees_in) = frees_in {
                wait = wait.min(*frees_in + Duration::from_millis(1));
            }
        }
        tokio::select! {
            () = self.wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

impl OrionClient {
    /// Asks the ledger once for `ask`. Names without a stored limit are not limited (and
    /// cost only a read when none of them is). A holder that is granted or waits is kept
    /// renewed until it releases.
    pub(crate) async fn try_take_slots(&self, ask: &SlotAsk) -> Result<Acquired> {
        if ask.create.is_none() {
            let mut any = false;
            for name in &ask.limits {
                if self.store.read_concurrency_limit(name).await?.is_some() {
                    any = true;
                    break;
                }
            }
            if !any {
                return Ok(Acquired::Granted {
                    slots: Vec::new(),
                    room: false,
                });
            }
        }
        let signals = &self.signals.slots;
        let lease = Lease::new(
            signals.owner,
            &signals.owner_name,
            self.now(),
            signals.lease(),
        );
        let mut request = SlotRequest::new(ask.limits.clone(), ask.holder, &ask.holder_name, lease)
            .occupy(ask.occupy)
            .wait(true);
        if let Some((size, per)) = ask.create {
            request = request.create(size, per);
        }
        // Tracked before the write, so the keeper never misses a row just written.
        self.track(ask.holder);
        let acquired = match self.store.acquire_slots(request).await {
            Ok(acquired) => acquired,
            Err(e) => {
                self.untrack(ask.holder);
                return Err(e.into());
            }
        };
        // What this holder keeps renewed, and who else should look now at slots it saw free.
        let keep = match &acquired {
            Acquired::Granted { slots, room } => {
                if *room {
                    signals.pass_on(&ask.limits, ask.holder, None);
                }
                slots.iter().any(|s| !s.decays)
            }
            Acquired::Full {
                held, size, ticket, ..
            } => {
                if held < size {
                    signals.pass_on(&ask.limits, ask.holder, Some(*ticket));
                }
                true
            }
            Acquired::Refused { .. } => false,
        };
        if !keep {
            self.untrack(ask.holder);
        }
        Ok(acquired)
    }

    /// Takes the slots `ask` names, waiting in line while a limit is full. Returns None when
    /// nothing limits the ask.
    ///
    /// # Errors
    ///
    /// [`Error::ConcurrencyLimit`] when a limit can never grant the ask; store failures.
    pub(crate) async fn take_slots(&self, ask: &SlotAsk) -> Result<Option<SlotHold>> {
        let mut line = SlotLine::new(self, ask);
        loop {
            let asked = line.asking();
            let acquired = match self.try_take_slots(ask).await {
                Ok(a) => a,
                Err(e) => {
                    line.settle();
                    self.release_slots(ask.holder).await.ok();
                    return Err(e);
                }
            };
            match acquired {
                Acquired::Granted { slots, .. } => {
                    line.settle();
                    if slots.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(self.hold(ask.holder)));
                }
                Acquired::Refused { limit, size } => {
                    line.settle();
                    self.release_slots(ask.holder).await.ok();
                    return Err(Error::ConcurrencyLimit {
                        limit,
                        size,
                        asked: ask.occupy,
                        hint: "raise the limit (or delete it) rather than wait for ever",
                    });
                }
                full => {
                    line.join();
                    line.turn(&full, asked).await;
                }
            }
        }
    }

    /// A place in this runtime's line for `ask`.
    pub(crate) fn line_up(&self, ask: &SlotAsk) -> SlotWaiter {
        let wake = Arc::new(Notify::new());
        self.signals.slots.state().waiters.push(Waiter {
            holder: ask.holder,
            limits: ask.limits.clone(),
            wake: Arc::clone(&wake),
            ticket: None,
            woken: false,
        });
        SlotWaiter {
            client: self.clone(),
            holder: ask.holder,
            wake,
            settled: false,
        }
    }

    /// The handle on slots granted to `holder`.
    pub(crate) fn hold(&self, holder: Uuid) -> SlotHold {
        SlotHold {
            client: self.clone(),
            holder,
            active: true,
        }
    }

    /// Releases every slot and place in line of `holder`; wakes the next waiter of this
    /// runtime for each limit freed.
    pub(crate) async fn release_slots(&self, holder: Uuid) -> Result<()> {
        self.untrack(holder);
        let freed = self.store.release_slots(holder).await?;
        self.signals.slots.wake_first(&freed);
        Ok(())
    }

    fn track(&self, holder: Uuid) {
        let mut state = self.signals.slots.state();
        state.tracked.insert(holder);
        if state
            .keeper
            .as_ref()
            .is_none_or(tokio::task::JoinHandle::is_finished)
        {
            state.keeper = self.spawn_keeper();
        }
    }

    fn untrack(&self, holder: Uuid) {
        self.signals.slots.state().tracked.remove(&holder);
    }

    /// Renews the leases of every slot this runtime holds or waits for, every third of the
    /// lease, until it holds none. It keeps the store only weakly: a dropped runtime's
    /// keeper ends. None outside a tokio runtime (the leases then lapse).
    fn spawn_keeper(&self) -> Option<tokio::task::JoinHandle<()>> {
        let store = Arc::downgrade(&self.store);
        let signals = Arc::clone(&self.signals);
        let clock = self.clock;
        let handle = tokio::runtime::Handle::try_current().ok()?;
        Some(handle.spawn(async move {
            loop {
                let slots = &signals.slots;
                let lease = slots.lease();
                tokio::time::sleep(lease / 3).await;
                let holders: Vec<Uuid> = {
                    let mut state = slots.state();
                    if state.tracked.is_empty() {
                        // Under the lock: the next holder tracked spawns a new keeper.
                        state.keeper = None;
                        return;
                    }
                    state.tracked.iter().copied().collect()
                };
                let Some(store) = store.upgrade() else {
                    return;
                };
                let now = clock.now();
                let until = Lease::new(slots.owner, "", now, lease).expires;
                match store.renew_slots(slots.owner, holders, until, now).await {
                    Ok(lost) if !lost.is_empty() => {
                        let mut state = slots.state();
                        for holder in &lost {
                            state.tracked.remove(holder);
                        }
                        drop(state);
                        crate::services::log(
                            crate::store::LogLevel::Warning,
                            "orion.concurrency",
                            &format!(
                                "{} concurrency slot holder(s) lost their slots (reset, deleted, or leases lapsed while this process was not heard from); they go on without them",
                                lost.len()
                            ),
                        );
                    }
                    Ok(_) => {}
                    Err(e) => crate::services::log(
                        crate::store::LogLevel::Error,
                        "orion.concurrency",
                        &format!("could not renew concurrency slot leases: {e}"),
                    ),
                }
            }
        }))
    }
}
