//! A property test of the concurrency ledger: random interleavings of asks (waiting or not,
//! over one or two limits), releases, renewals, process crashes, reaper passes and time
//! passing, on the memory and SQLite stores. After every step the ledger never counts more
//! live holders than a limit; a grant never overtakes the waiters ahead of it; and once the
//! dust settles every waiter left is served in line order.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use orion::Uuid;
use orion::store::{
    Acquired, ConcurrencyLimit, Lease, MemoryStore, SlotRequest, SqliteStore, Store,
};

const LEASE: Duration = Duration::from_secs(30);
const LIMITS: [&str; 2] = ["tag:a", "named-b"];

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(1_900_000_000_000 + ms).unwrap()
}

struct World {
    rng: fastrand::Rng,
    now: i64,
    sizes: HashMap<&'static str, u32>,
    /// Holder → (owner, limits it last asked for).
    holders: HashMap<Uuid, (u128, Vec<String>)>,
    /// Owners (processes) alive; a dead one never renews again.
    alive: [bool; 3],
}

impl World {
    fn owner_lease(&self, owner: u128) -> Lease {
        Lease::new(
            Uuid::from_u128(owner),
            format!("process {owner}"),
            at(self.now),
            LEASE,
        )
    }

    async fn step(&mut self, store: &dyn Store) {
        match self.rng.u8(0..100) {
            0..=44 => {
                let h = Uuid::from_u128(1 + u128::from(self.rng.u8(0..12)));
                let owner = self
                    .holders
                    .get(&h)
                    .map_or_else(|| u128::from(self.rng.u8(0..3)), |(o, _)| *o);
                if !self.alive[owner as usize] {
                    return;
                }
                let limits: Vec<String> = match self.rng.u8(0..3) {
                    0 => vec![LIMITS[0].into()],
                    1 => vec![LIMITS[1].into()],
                    _ => LIMITS.iter().map(|l| (*l).to_owned()).collect(),
                };
                let wait = self.rng.bool();
                let request =
                    SlotRequest::new(limits.clone(), h, "h", self.owner_lease(owner)).wait(wait);
                self.holders.insert(h, (owner, limits.clone()));
                // What it held already: asking again for a slot held is no new grant.
                let mut held_before = Vec::new();
                for limit in &limits {
                    let rows = store.read_slots(limit).await.unwrap();
                    let now = at(self.now);
                    if rows
                        .iter()
                        .any(|r| r.holder == h && !r.waiting && r.live(now))
                    {
                        held_before.push(limit.clone());
                    }
                }
                let got = store.acquire_slots(request).await.unwrap();
                if let Acquired::Granted { slots, .. } = &got {
                    for slot in slots.iter().filter(|s| !held_before.contains(&s.limit)) {
                        self.check_not_overtaken(store, &slot.limit, slot.ticket, h)
                            .await;
                    }
                }
            }
            45..=59 => {
                let h = Uuid::from_u128(1 + u128::from(self.rng.u8(0..12)));
                if self
                    .holders
                    .get(&h)
                    .is_some_and(|(o, _)| self.alive[*o as usize])
                {
                    store.release_slots(h).await.unwrap();
                }
            }
            60..=74 => {
                // Every live process renews what it holds, as its keeper does.
                for owner in 0..3u128 {
                    if !self.alive[owner as usize] {
                        continue;
                    }
                    let mine: Vec<Uuid> = self
                        .holders
                        .iter()
                        .filter(|(_, (o, _))| *o == owner)
                        .map(|(h, _)| *h)
                        .collect();
                    let until = self.owner_lease(owner).expires;
                    store
                        .renew_slots(Uuid::from_u128(owner), mine, until, at(self.now))
                        .await
                        .unwrap();
                }
            }
            75..=79 => {
                let owner = self.rng.usize(0..3);
                self.alive[owner] = false;
            }
            80..=84 => {
                store.reap_slots(at(self.now)).await.unwrap();
            }
            _ => self.now += i64::from(self.rng.u16(0..12_000)),
        }
    }

    /// Holders of `limit` now, plus the waiters ahead of ticket `ticket`, fit in the limit.
    async fn check_not_overtaken(&self, store: &dyn Store, limit: &str, ticket: u64, h: Uuid) {
        let now = at(self.now);
        let rows = store.read_slots(limit).await.unwrap();
        let held = held_at(&rows, now);
        let ahead: u32 = rows
            .iter()
            .filter(|r| r.live(now) && r.waiting && r.ticket < ticket && r.holder != h)
            .map(|r| r.occupy)
            .sum();
        assert!(
            held + ahead <= self.sizes[limit],
            "{h} overtook waiters of {limit}: {rows:#?}"
        );
    }

    async fn check_limits(&self, store: &dyn Store) {
        let now = at(self.now);
        for limit in LIMITS {
            let rows = store.read_slots(limit).await.unwrap();
            let held = held_at(&rows, now);
            assert!(
                held <= self.sizes[limit],
                "{limit} over its size at {now}: {rows:#?}"
            );
        }
    }
}

/// Slots held at `now` (live leases, not waiting).
fn held_at(rows: &[orion::store::Slot], now: Timestamp) -> u32 {
    rows.iter()
        .filter(|r| r.live(now) && !r.waiting)
        .map(|r| r.occupy)
        .sum()
}

async fn interleavings(store: &dyn Store, seed: u64, steps: usize) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let sizes: HashMap<&'static str, u32> = LIMITS.iter().map(|l| (*l, rng.u32(1..4))).collect();
    for (name, size) in &sizes {
        store
            .upsert_concurrency_limit(ConcurrencyLimit::new(*name, *size, at(0)))
            .await
            .unwrap();
    }
    let mut world = World {
        rng,
        now: 0,
        sizes,
        holders: HashMap::new(),
        alive: [true; 3],
    };
    for _ in 0..steps {
        world.step(store).await;
        world.check_limits(store).await;
    }
    // Settle: every process lets go (the dead ones by their leases lapsing); then each
    // waiter, asked again in line order by a fresh process, is served.
    world.now += 40_000;
    store.reap_slots(at(world.now)).await.unwrap();
    let waiters: Vec<Uuid> = world.holders.keys().copied().collect();
    for h in &waiters {
        store.release_slots(*h).await.unwrap();
    }
    for limit in LIMITS {
        assert!(
            store.read_slots(limit).await.unwrap().is_empty(),
            "seed {seed}: {limit} not empty after everyone left"
        );
    }
    let fresh = Lease::new(Uuid::from_u128(7), "process 7", at(world.now), LEASE);
    for limit in LIMITS {
        for n in 0..world.sizes[limit] {
            let request = SlotRequest::new(
                vec![limit.into()],
                Uuid::from_u128(100 + u128::from(n)),
                "fresh",
                fresh.clone(),
            );
            let got = store.acquire_slots(request).await.unwrap();
            assert!(
                matches!(got, Acquired::Granted { .. }),
                "seed {seed}: an empty {limit} must grant all its slots: {got:?}"
            );
        }
    }
}

#[tokio::test]
async fn random_interleavings_never_exceed_a_limit_nor_overtake_on_the_memory_store() {
    for seed in 0..150 {
        interleavings(&MemoryStore::new(), seed, 300).await;
    }
}

#[tokio::test]
async fn random_interleavings_never_exceed_a_limit_nor_overtake_on_the_sqlite_store() {
    for seed in 0..25 {
        let store = SqliteStore::open(crate::temp::temp_db("ledger-property")).unwrap();
        interleavings(&store, 1_000 + seed, 200).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_interleavings_never_exceed_a_limit_nor_overtake_on_the_postgres_store() {
    let Some(server) = crate::pg::server() else {
        return;
    };
    for seed in 0..10 {
        let url = crate::pg::fresh_url(&server, "ledger").await;
        let store = orion::store::PostgresStore::connect(&url).await.unwrap();
        interleavings(&store, 2_000 + seed, 200).await;
    }
}
