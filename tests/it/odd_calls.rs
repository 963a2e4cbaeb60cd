//! Store calls with values no orion program sends, as a token holder could send them by hand
//! to `POST /api/store`: every store answers each one (a value or a typed error) without
//! panicking, and goes on answering afterwards (no poisoned lock, no broken connection).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use orion::Uuid;
use orion::prelude::*;
use orion::store::protocol::{StoreCall, dispatch};
use orion::store::{
    Claim, ClaimRun, ConcurrencyLimit, Flow, FlowRun, FlowRunFilter, Lease, LogFilter, LogRecord,
    MemoryStore, SlotRequest, SqliteStore, Store, TaskRunFilter, WorkQueue,
};

use crate::temp::temp_db;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn lease(expires: Timestamp, renewed: Timestamp) -> Lease {
    let mut l = Lease::new(id(1), "hand-written", renewed, Duration::ZERO);
    l.expires = expires;
    l
}

fn slots(limits: &[&str], occupy: u32, create: Option<(u32, Option<Duration>)>) -> StoreCall {
    let now = Timestamp::now();
    let mut request = SlotRequest::new(
        limits.iter().map(|l| (*l).to_owned()).collect(),
        id(7),
        "hand-written",
        lease(now, now),
    );
    request.occupy = occupy;
    request.create = create;
    request.wait = true;
    StoreCall::AcquireSlots { request }
}

/// The odd calls, in an order where later ones meet what earlier ones stored.
fn odd_calls(flow: &Flow) -> Vec<StoreCall> {
    let now = Timestamp::now();
    let mut far = FlowRun::new(flow, "far-future");
    far.expected_start_time = Some(Timestamp::MAX);
    far.state = Some(State::scheduled(Timestamp::MAX));
    let mut early = FlowRun::new(flow, "dawn-of-time");
    early.expected_start_time = Some(Timestamp::MIN);
    early.state = Some(State::scheduled(Timestamp::MIN));
    let claim = |take: usize, runs: Vec<ClaimRun>, lease: Lease| {
        let mut c = Claim::new(WorkQueue::DEFAULT, runs, lease);
        c.take = take;
        StoreCall::ClaimFlowRuns { claim: c }
    };
    let ghost = ClaimRun::new(id(99), id(98), State::pending());
    let mut zero_rate = ConcurrencyLimit::new("zero-rate", 0, now);
    zero_rate.per = Some(Duration::ZERO);
    let mut huge = ConcurrencyLimit::new("huge", u32::MAX, now);
    huge.per = Some(Duration::MAX);
    let mut busy = WorkQueue::new("odd-queue", now);
    busy.concurrency_limit = Some(0);
    busy.priority = i32::MIN;
    // Records have no constructor outside orion: made as the wire makes them.
    let log = |at: Timestamp, run: Option<Uuid>| -> LogRecord {
        serde_json::from_value(serde_json::json!({
            "name": "odd", "level": "INFO", "message": "x".repeat(10_000),
            "timestamp": at, "flow_run_id": run, "task_run_id": null,
        }))
        .unwrap()
    };
    let mut far_page = FlowRunFilter::new();
    far_page.offset = usize::MAX;
    far_page.limit = Some(usize::MAX);
    let mut none_page = FlowRunFilter::new();
    none_page.limit = Some(0);
    let mut far_logs = LogFilter::new();
    far_logs.offset = usize::MAX;
    far_logs.limit = Some(usize::MAX);
    let mut far_tasks = TaskRunFilter::new();
    far_tasks.offset = usize::MAX;
    vec![
        StoreCall::CreateFlowRun { run: far },
        StoreCall::CreateFlowRun { run: early },
        StoreCall::CreateFlowRuns { runs: Vec::new() },
        StoreCall::ReadFlowRuns { filter: far_page },
        StoreCall::ReadFlowRuns { filter: none_page },
        StoreCall::CountFlowRuns {
            filter: FlowRunFilter::new().expected_start_between(Some(Timestamp::MAX), None),
        },
        StoreCall::ReadTaskRuns { filter: far_tasks },
        StoreCall::ReadLogs { filter: far_logs },
        // Leases that ended before they began, claims of nothing, of runs that do not exist.
        claim(0, Vec::new(), lease(Timestamp::MIN, Timestamp::MAX)),
        claim(
            usize::MAX,
            vec![ghost.clone(), ghost],
            lease(Timestamp::MIN, now),
        ),
        StoreCall::RenewLeases {
            owner: id(1),
            runs: vec![id(99)],
            expires: Timestamp::MIN,
            now: Timestamp::MAX,
        },
        StoreCall::SetFlowRunState {
            id: id(99),
            expected: Some(id(98)),
            state: State::running(),
        },
        // Limits of size 0 and of every slot, rates of no time and of all time.
        StoreCall::UpsertConcurrencyLimit { limit: zero_rate },
        StoreCall::UpsertConcurrencyLimit { limit: huge },
        slots(&["zero-rate"], 1, None),
        slots(&["huge"], u32::MAX, None),
        slots(&["huge"], 0, None),
        slots(&["new-zero"], 0, Some((0, Some(Duration::ZERO)))),
        slots(
            &["new-max"],
            u32::MAX,
            Some((u32::MAX, Some(Duration::MAX))),
        ),
        slots(&[], 1, None),
        StoreCall::RenewSlots {
            owner: id(1),
            holders: vec![id(7)],
            expires: Timestamp::MAX,
            now: Timestamp::MIN,
        },
        StoreCall::ReapSlots {
            now: Timestamp::MAX,
        },
        StoreCall::ReadSlots {
            limit: "no-such-limit".into(),
        },
        StoreCall::ResetSlots {
            limit: "huge".into(),
        },
        StoreCall::UpsertWorkQueue { queue: busy },
        StoreCall::PollWorkQueues {
            names: vec!["odd-queue".into(), "never-made".into()],
            agent: String::new(),
            at: Timestamp::MAX,
        },
        StoreCall::WriteLogs {
            logs: vec![log(Timestamp::MIN, Some(id(99))), log(Timestamp::MAX, None)],
        },
        StoreCall::WriteLogs { logs: Vec::new() },
        StoreCall::DeleteWorkQueue {
            name: WorkQueue::DEFAULT.into(),
        },
        // A batch of a batch, a batch of nothing.
        StoreCall::Batch {
            calls: vec![StoreCall::Batch { calls: Vec::new() }, StoreCall::ReadFlows],
        },
        StoreCall::Batch { calls: Vec::new() },
        // A window that ends before it begins deletes nothing.
        StoreCall::DeleteFlowRuns {
            filter: FlowRunFilter::new()
                .expected_start_between(Some(Timestamp::MAX), Some(Timestamp::MIN)),
        },
    ]
}

async fn check(name: &str, store: Arc<dyn Store>) {
    let flow = store.upsert_flow(Flow::new("odd-calls")).await.unwrap();
    let calls = odd_calls(&flow);
    for call in calls {
        let described = format!("{call:?}");
        let described = &described[..described.len().min(300)];
        let s = store.clone();
        let outcome = tokio::spawn(async move { dispatch(&*s, call).await }).await;
        assert!(
            outcome.is_ok(),
            "{name}: panicked on {described}: {outcome:?}"
        );
        // Still answering, and still holding what was stored.
        let flows = store.read_flows().await;
        assert!(
            flows.is_ok_and(|f| f.iter().any(|f| f.id == flow.id)),
            "{name}: no longer answers after {described}"
        );
    }
    // The runs stored at the ends of time read back as stored.
    let runs = store
        .read_flow_runs(&FlowRunFilter::new().flow_id(flow.id))
        .await
        .unwrap();
    let starts: Vec<_> = runs.iter().map(|r| r.expected_start_time).collect();
    assert!(starts.contains(&Some(Timestamp::MAX)), "{name}: {starts:?}");
    assert!(starts.contains(&Some(Timestamp::MIN)), "{name}: {starts:?}");
}

#[tokio::test]
async fn a_batch_answers_each_call_and_holds_no_batch() {
    use orion::store::protocol::Outcome;
    let store = MemoryStore::new();
    let answer = dispatch(
        &store,
        StoreCall::Batch {
            calls: vec![
                StoreCall::Batch { calls: Vec::new() },
                StoreCall::UpsertFlow {
                    flow: Flow::new("batched"),
                },
                StoreCall::ReadFlow { id: id(5) },
                StoreCall::ReadFlows,
            ],
        },
    )
    .await
    .unwrap();
    let outcomes: Vec<Outcome> = serde_json::from_value(answer).unwrap();
    assert_eq!(outcomes.len(), 4);
    assert!(
        matches!(&outcomes[0], Outcome::Err(e) if format!("{e:?}").contains("cannot hold a batch")),
        "{outcomes:?}"
    );
    // Later calls see earlier ones: in order.
    assert_eq!(outcomes[2], Outcome::Ok(serde_json::Value::Null));
    let Outcome::Ok(flows) = &outcomes[3] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(flows[0]["name"], "batched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_store_calls_get_answers_not_panics() {
    check("memory", Arc::new(MemoryStore::new())).await;
    check(
        "sqlite",
        Arc::new(SqliteStore::open(temp_db("odd-calls")).unwrap()),
    )
    .await;
    if let Some(server) = crate::pg::server() {
        let url = crate::pg::fresh_url(&server, "odd_calls").await;
        check(
            "postgres",
            Arc::new(orion::store::PostgresStore::connect(&url).await.unwrap()),
        )
        .await;
    }
}
