//! The concurrency contract: the slot ledger, and deployment limits inside claims.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

use super::deployment;
use crate::state::State;
use crate::store::{
    Acquired, Claim, ClaimRun, ConcurrencyLimit, DeploymentLimit, Flow, FlowRun, FlowRunFilter,
    Lease, SlotRequest, Store,
};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_900_000_000 + seconds).unwrap()
}

fn holder(n: u128) -> Uuid {
    Uuid::from_u128(0xA000 + n)
}

/// An ask of `limits` by holder `n` at second `now`, under a 30 s lease of owner 1.
fn ask(limits: &[&str], n: u128, now: i64) -> SlotRequest {
    let lease = Lease::new(
        Uuid::from_u128(1),
        "process 1",
        at(now),
        Duration::from_secs(30),
    );
    let limits = limits.iter().map(|l| (*l).to_owned()).collect();
    SlotRequest::new(limits, holder(n), format!("holder {n}"), lease).wait(true)
}

fn granted(a: &Acquired) -> bool {
    matches!(a, Acquired::Granted { slots, .. } if !slots.is_empty())
}

/// Slots: names without a limit are free; a limit grants at most its size, all or none over
/// several limits; waiters are served in line order and hold nothing; a lapsed lease counts
/// for nothing and is reaped; renewal extends only live rows of the owner; reset and delete
/// empty a limit; a limit smaller than the ask refuses; `create` makes a missing limit.
pub async fn the_ledger_grants_in_line_and_lapses(store: &dyn Store) {
    let free = store.acquire_slots(ask(&["tag:none"], 1, 0)).await.unwrap();
    assert_eq!(
        free,
        Acquired::Granted {
            slots: Vec::new(),
            room: false
        },
        "no limit, no slot"
    );
    assert!(store.read_slots("tag:none").await.unwrap().is_empty());

    let first = store
        .upsert_concurrency_limit(ConcurrencyLimit::new("tag:db", 3, at(0)))
        .await
        .unwrap();
    let resized = store
        .upsert_concurrency_limit(ConcurrencyLimit::new("tag:db", 2, at(1)))
        .await
        .unwrap();
    assert_eq!(
        (resized.id, resized.created),
        (first.id, first.created),
        "an upsert keeps identity"
    );
    assert_eq!(
        store
            .read_concurrency_limit("tag:db")
            .await
            .unwrap()
            .unwrap()
            .limit,
        2
    );

    for (n, room) in [(1, true), (2, false)] {
        let got = store.acquire_slots(ask(&["tag:db"], n, 2)).await.unwrap();
        assert!(granted(&got), "{got:?}");
        assert!(
            matches!(got, Acquired::Granted { room: r, .. } if r == room),
            "a grant says whether a slot is left for the next in line: {got:?}"
        );
    }
    let again = store.acquire_slots(ask(&["tag:db"], 1, 2)).await.unwrap();
    assert!(
        granted(&again),
        "asking again for a slot held is granted, not doubled"
    );
    for (n, ahead) in [(3, 0), (4, 1)] {
        match store.acquire_slots(ask(&["tag:db"], n, 3)).await.unwrap() {
            Acquired::Full {
                held: 2,
                ahead: a,
                size: 2,
                ..
            } if a == ahead => {}
            other => panic!("holder {n} must wait with {ahead} ahead, got {other:?}"),
        }
    }
    let rows = store.read_slots("tag:db").await.unwrap();
    let shape: Vec<(Uuid, bool)> = rows.iter().map(|r| (r.holder, r.waiting)).collect();
    assert_eq!(
        shape,
        [
            (holder(1), false),
            (holder(2), false),
            (holder(3), true),
            (holder(4), true)
        ],
        "holders first, then waiters in line order"
    );

    // A release frees a slot for the head of the line only.
    assert_eq!(store.release_slots(holder(1)).await.unwrap(), ["tag:db"]);
    assert!(
        matches!(
            store.acquire_slots(ask(&["tag:db"], 4, 4)).await.unwrap(),
            Acquired::Full { ahead: 1, .. }
        ),
        "a waiter is never overtaken"
    );
    assert!(granted(
        &store.acquire_slots(ask(&["tag:db"], 3, 4)).await.unwrap()
    ));

    // All or none over two limits: a full one means nothing is held in the other.
    store
        .upsert_concurrency_limit(ConcurrencyLimit::new("tag:api", 1, at(0)))
        .await
        .unwrap();
    assert!(granted(
        &store.acquire_slots(ask(&["tag:api"], 9, 5)).await.unwrap()
    ));
    let both = store
        .acquire_slots(ask(&["tag:api", "tag:web"], 8, 5).wait(false))
        .await
        .unwrap();
    assert!(
        matches!(both, Acquired::Full { ref limit, .. } if limit == "tag:api"),
        "{both:?}"
    );
    assert!(
        store
            .read_slots("tag:api")
            .await
            .unwrap()
            .iter()
            .all(|r| r.holder != holder(8)),
        "a refused ask that does not wait leaves no row"
    );

    // Renewal extends the owner's live rows; holders without a row are reported lost.
    let lost = store
        .renew_slots(
            Uuid::from_u128(1),
            vec![holder(9), holder(77)],
            at(100),
            at(20),
        )
        .await
        .unwrap();
    assert_eq!(lost, [holder(77)]);
    let renewed = store.read_slots("tag:api").await.unwrap();
    assert_eq!(renewed[0].lease.expires, at(100));
    let foreign = store
        .renew_slots(Uuid::from_u128(2), vec![holder(9)], at(200), at(20))
        .await
        .unwrap();
    assert_eq!(foreign, [holder(9)], "another owner cannot renew a row");

    // Holders 2 and 3 stop renewing (their process died): their slots count for nothing once
    // their leases lapsed (at 32 s and 34 s), before any reaper passes — holder 4, next in
    // line, gets one.
    assert!(matches!(
        store.acquire_slots(ask(&["tag:db"], 4, 31)).await.unwrap(),
        Acquired::Full { .. }
    ));
    let late = store.acquire_slots(ask(&["tag:db"], 4, 40)).await.unwrap();
    assert!(granted(&late), "a lapsed slot counts for nothing: {late:?}");
    let revived = store
        .renew_slots(Uuid::from_u128(1), vec![holder(2)], at(200), at(41))
        .await
        .unwrap();
    assert_eq!(revived, [holder(2)], "a lapsed row is lost, never revived");
    let reaped = store.reap_slots(at(50)).await.unwrap();
    assert!(reaped.contains(&"tag:db".to_owned()), "{reaped:?}");
    assert!(
        store
            .read_slots("tag:db")
            .await
            .unwrap()
            .iter()
            .all(|r| r.lease.expires > at(50)),
        "the reaper deletes lapsed rows"
    );

    // Reset and delete.
    assert!(store.reset_slots("tag:api").await.unwrap() >= 1);
    assert!(store.read_slots("tag:api").await.unwrap().is_empty());
    assert!(store.delete_concurrency_limit("tag:api").await.unwrap());
    assert!(!store.delete_concurrency_limit("tag:api").await.unwrap());
    let names: Vec<String> = store
        .read_concurrency_limits()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ["tag:db"]);

    // A limit of 0 refuses instead of queueing; `create` makes a missing named limit.
    store
        .upsert_concurrency_limit(ConcurrencyLimit::new("tag:off", 0, at(0)))
        .await
        .unwrap();
    let off = store.acquire_slots(ask(&["tag:off"], 5, 60)).await.unwrap();
    assert_eq!(
        off,
        Acquired::Refused {
            limit: "tag:off".into(),
            size: 0
        }
    );
    assert!(
        store.read_slots("tag:off").await.unwrap().is_empty(),
        "a refused ask waits nowhere"
    );
    let made = store
        .acquire_slots(ask(&["warehouse"], 6, 60).create(1, None))
        .await
        .unwrap();
    assert!(granted(&made));
    assert_eq!(
        store
            .read_concurrency_limit("warehouse")
            .await
            .unwrap()
            .unwrap()
            .limit,
        1
    );

    // A rate limit: slots lapse `per` after they are taken, and a release does not free them.
    let per = Duration::from_secs(10);
    store
        .upsert_concurrency_limit(ConcurrencyLimit::new("api-rate", 1, at(0)).per(Some(per)))
        .await
        .unwrap();
    assert!(granted(
        &store
            .acquire_slots(ask(&["api-rate"], 7, 70).wait(false))
            .await
            .unwrap()
    ));
    store.release_slots(holder(7)).await.unwrap();
    match store
        .acquire_slots(ask(&["api-rate"], 8, 74).wait(false))
        .await
        .unwrap()
    {
        Acquired::Full {
            frees_in: Some(d), ..
        } => assert_eq!(d, Duration::from_secs(6)),
        other => panic!("a rate-limit slot stays taken until it decays: {other:?}"),
    }
    assert!(granted(
        &store
            .acquire_slots(ask(&["api-rate"], 8, 80).wait(false))
            .await
            .unwrap()
    ));
}

/// A claim keeps a deployment's limit atomically with the claim: a run finding it full enters
/// the `when_full` state (returned, without a lease) or is left alone; a freed slot lets the
/// next run through; a filter can pass a deployment's runs over.
pub async fn claims_keep_deployment_limits(store: &dyn Store) {
    let flow = store.upsert_flow(Flow::new("limited")).await.unwrap();
    let d = store
        .upsert_deployments(vec![deployment(&flow, "one-at-a-time")])
        .await
        .unwrap()
        .remove(0);
    let now = Timestamp::now();
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut run = FlowRun::new(&flow, format!("due-{i}"));
        run.deployment_id = Some(d.id);
        run.work_queue_name = Some("default".into());
        let due = now - SignedDuration::from_secs(10 - i);
        run.expected_start_time = Some(due);
        run.state = Some(State::scheduled(due));
        ids.push(store.create_flow_run(run).await.unwrap());
    }
    let lease = Lease::new(Uuid::from_u128(1), "agent", now, Duration::from_secs(30));
    let claim_of = |runs: &[FlowRun], when_full: Option<State>| {
        let runs = runs
            .iter()
            .map(|r| {
                ClaimRun::new(r.id, r.state.as_ref().unwrap().id(), State::pending())
                    .deployment_limit(DeploymentLimit::new(d.id, 1, when_full.clone()))
            })
            .collect();
        Claim::new("default", runs, lease.clone())
    };
    let waiting = State::awaiting_concurrency_slot();
    let written = store
        .claim_flow_runs(&claim_of(&ids, Some(waiting.clone())))
        .await
        .unwrap();
    let shape: Vec<(Uuid, String, bool)> = written
        .iter()
        .map(|r| {
            (
                r.id,
                r.state.as_ref().unwrap().name().to_owned(),
                r.lease.is_some(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (ids[0].id, "Pending".to_owned(), true),
            (ids[1].id, "AwaitingConcurrencySlot".to_owned(), false),
            (ids[2].id, "AwaitingConcurrencySlot".to_owned(), false),
        ],
        "one run of the deployment claimed, the others wait holding nothing"
    );
    let rest: Vec<FlowRun> = written[1..].to_vec();
    let none = store.claim_flow_runs(&claim_of(&rest, None)).await.unwrap();
    assert!(none.is_empty(), "still full, nothing to write: {none:?}");

    let excluded = store
        .read_flow_runs(&FlowRunFilter::new().exclude_deployments([d.id]))
        .await
        .unwrap();
    assert!(excluded.is_empty(), "{excluded:?}");

    let pending = written[0].state.clone().unwrap();
    store
        .set_flow_run_state(ids[0].id, Some(pending.id()), State::completed())
        .await
        .unwrap();
    let next = store.claim_flow_runs(&claim_of(&rest, None)).await.unwrap();
    assert_eq!(
        next.len(),
        1,
        "the freed slot lets exactly one more through"
    );
    assert_eq!(next[0].id, ids[1].id, "earliest first");
    assert!(next[0].state.as_ref().unwrap().is_pending());
}

/// A claim takes at most [`Claim::take`] runs, in order, using the runs after the first as
/// spares when earlier ones were taken by another agent (under a live lease of its own).
pub async fn claims_take_spares_in_order(store: &dyn Store) {
    let flow = store.upsert_flow(Flow::new("spares")).await.unwrap();
    let now = Timestamp::now();
    let mut runs = Vec::new();
    for i in 0..4 {
        let mut run = FlowRun::new(&flow, format!("due-{i}"));
        run.work_queue_name = Some("default".into());
        let due = now - SignedDuration::from_secs(10 - i);
        run.expected_start_time = Some(due);
        run.state = Some(State::scheduled(due));
        runs.push(store.create_flow_run(run).await.unwrap());
    }
    let claim_by = |owner: u128, of: &[FlowRun], take: usize| {
        let lease = Lease::new(
            Uuid::from_u128(owner),
            "agent",
            now,
            Duration::from_secs(30),
        );
        let wanted = of
            .iter()
            .map(|r| ClaimRun::new(r.id, r.state.as_ref().unwrap().id(), State::pending()))
            .collect();
        Claim::new("default", wanted, lease).take(take)
    };
    // Another agent took the first run.
    let first = store
        .claim_flow_runs(&claim_by(1, &runs[..1], 1))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let ids = |written: Vec<FlowRun>| written.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let mine = store.claim_flow_runs(&claim_by(2, &runs, 2)).await.unwrap();
    assert_eq!(
        ids(mine),
        [runs[1].id, runs[2].id],
        "two runs taken, the first being another's: the next two, in order"
    );
    let left = store.read_flow_run(runs[3].id).await.unwrap().unwrap();
    assert!(
        left.state.as_ref().unwrap().is_scheduled() && left.lease.is_none(),
        "a spare beyond the take is left alone: {left:?}"
    );
}
