//! The orion server on SQLite with 100,000 stored runs (`SERVER_RUNS` to change): listing the
//! newest 200 runs and creating a run from a deployment through the REST API — latency
//! percentiles of sequential calls on one keep-alive connection, and requests per second with
//! 8 concurrent clients — plus the dashboard's runs page, counts and history on those runs,
//! and the per-task-run overhead of a runtime whose store is the server.
//!
//! `cargo bench -p benches --bench server` (plain harness: percentiles, not criterion).
//! Prefect's figures for the same calls: `benches/prefect/bench_api.py`.

#[path = "support/tempdb.rs"]
mod tempdb;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use orion::prelude::*;
use orion::server::Api;
use orion::services::Shutdown;
use orion::store::{FlowRun, RemoteStore, SqliteStore};
use serde_json::{Value, json};
use tempdb::TempDb;

const SEQUENTIAL: usize = 500;
/// Flows of 200 tasks measured for the per-task-run figures.
const FLOWS: u32 = 20;
const CONCURRENT_FOR: Duration = Duration::from_secs(5);

#[task]
async fn bench_step(i: u64) -> u64 {
    i + 1
}

#[flow(name = "server-bench")]
async fn bench_flow(n: u64) -> u64 {
    let mut total = 0;
    for i in 0..n {
        total += bench_step(i).await;
    }
    total
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort_unstable();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    println!(
        "{what:<52} n={:<4} p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
        times.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// Sequential latencies, then requests per second with 8 clients.
async fn measure<F, Fut>(what: &str, call: F)
where
    F: Fn(reqwest::Client) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let client = reqwest::Client::new();
    for _ in 0..20 {
        call(client.clone()).await;
    }
    let mut times = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let t = Instant::now();
        call(client.clone()).await;
        times.push(t.elapsed());
    }
    report(what, times);
    let stop = Instant::now() + CONCURRENT_FOR;
    let started = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut done = 0u64;
                while Instant::now() < stop {
                    call(client.clone()).await;
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut done = 0;
    for w in workers {
        done += w.await.unwrap();
    }
    println!(
        "{what:<52} 8 clients: {:>8.0} requests/s",
        done as f64 / started.elapsed().as_secs_f64()
    );
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Value {
    let response = client.post(url).json(body).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// The id of a run of `deployment`.
async fn deployment_run(orion: &Orion, deployment: &orion::store::Deployment) -> orion::Uuid {
    orion
        .client()
        .create_flow_run_from_deployment(deployment, None)
        .await
        .unwrap()
        .id
}

fn main() {
    orion::logging::set_console_level(None);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let runs: usize = std::env::var("SERVER_RUNS").map_or(100_000, |v| v.parse().unwrap());
    let db = TempDb::new("server-bench");
    let orion = Orion::with_store(Arc::new(SqliteStore::open(db.file()).unwrap()));
    let deployment = DeploymentSpec::new("bench")
        .flow(bench_flow)
        .parameters(json!({"n": 1}))
        .apply(orion.client())
        .await
        .unwrap();
    let seeding = Instant::now();
    let now = Timestamp::now();
    let store = orion.client().store().clone();
    let flow = orion
        .client()
        .read_flow_by_name("server-bench")
        .await
        .unwrap()
        .unwrap();
    for chunk in (0..runs).collect::<Vec<_>>().chunks(5_000) {
        let batch: Vec<FlowRun> = chunk
            .iter()
            .map(|&i| {
                let mut run = FlowRun::new(&flow, format!("seed-{i}"));
                run.deployment_id = Some(deployment.id);
                run.work_queue_name = Some(deployment.work_queue_name.clone());
                run.parameters = deployment.parameters.clone();
                let at = now - SignedDuration::from_secs((runs - i) as i64);
                run.created = at;
                run.expected_start_time = Some(at);
                run.state = Some(match i % 10 {
                    0 => State::failed("boom").with_timestamp(at),
                    _ => State::completed().with_timestamp(at),
                });
                run
            })
            .collect();
        store.create_flow_runs(batch).await.unwrap();
    }
    println!(
        "stored {runs} runs in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let (switch, shutdown) = Shutdown::new();
    let (addr, serving) = Api::new("127.0.0.1:0".parse().unwrap())
        .bind(&orion, shutdown)
        .await
        .unwrap();
    tokio::spawn(serving);
    let base = format!("http://{addr}");

    let url = format!("{base}/api/flow_runs/filter");
    measure(
        "list the newest 200 runs (POST /flow_runs/filter)",
        move |c| {
            let url = url.clone();
            async move {
                let page = post(&c, &url, &json!({"limit": 200})).await;
                assert_eq!(page.as_array().unwrap().len(), 200);
            }
        },
    )
    .await;
    let url = format!("{base}/api/deployments/{}/create_flow_run", deployment.id);
    measure("create a run from a deployment", move |c| {
        let url = url.clone();
        async move {
            post(&c, &url, &json!({})).await;
        }
    })
    .await;
    let url = format!("{base}/api/flow_runs/count");
    let failed = (runs / 10) as u64;
    measure("count the failed runs (POST /flow_runs/count)", move |c| {
        let url = url.clone();
        async move {
            let body = json!({"flow_runs": {"state": {"type": {"any_": ["FAILED"]}}}});
            assert_eq!(post(&c, &url, &body).await.as_u64().unwrap(), failed);
        }
    })
    .await;
    let url = format!("{base}/api/flow_runs/history");
    let start = now - SignedDuration::from_hours(24);
    measure("run history, 24 h in 50 buckets", move |c| {
        let url = url.clone();
        async move {
            let body = json!({"history_start": start, "history_end": start + SignedDuration::from_hours(25), "history_interval_seconds": 1800});
            assert_eq!(post(&c, &url, &body).await.as_array().unwrap().len(), 50);
        }
    })
    .await;
    let url = format!("{base}/runs");
    measure("dashboard runs page (count, page, chart)", move |c| {
        let url = url.clone();
        async move {
            let r = c.get(&url).send().await.unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
        }
    })
    .await;

    // A quick read while the dashboard's heaviest page loads without pause in another tab:
    // what an agent's reads wait for while someone watches the dashboard.
    let loading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let tabs: Vec<_> = (0..1)
        .map(|_| {
            let loading = loading.clone();
            let url = format!("{base}/runs");
            tokio::spawn(async move {
                let c = reqwest::Client::new();
                while loading.load(std::sync::atomic::Ordering::Relaxed) {
                    c.get(&url).send().await.unwrap().bytes().await.unwrap();
                }
            })
        })
        .collect();
    let one = format!(
        "{base}/api/flow_runs/{}",
        deployment_run(&orion, &deployment).await
    );
    let c = reqwest::Client::new();
    let mut times = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let t = Instant::now();
        let r = c.get(&one).send().await.unwrap();
        assert!(r.status().is_success());
        r.bytes().await.unwrap();
        times.push(t.elapsed());
    }
    report("read a run while a tab loads the runs page", times);
    loading.store(false, std::sync::atomic::Ordering::Relaxed);
    for tab in tabs {
        tab.await.unwrap();
    }

    // A runtime whose store is the server: per task run, against the same flow run locally.
    let remote = Orion::with_store(Arc::new(
        RemoteStore::connect(&format!("{base}/api"), None)
            .await
            .unwrap(),
    ));
    for (what, on) in [
        ("local SQLite store", &orion),
        ("remote, through the server", &remote),
    ] {
        let n = 200u64;
        on.scope(bench_flow(10)).await;
        let t = Instant::now();
        for _ in 0..FLOWS {
            on.scope(bench_flow(n)).await;
        }
        let per = t.elapsed() / (FLOWS * n as u32);
        println!(
            "per task run, {what:<38} {:>8.1} µs",
            per.as_secs_f64() * 1e6
        );
    }
    switch.fire();
}
