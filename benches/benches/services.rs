//! The services: agent throughput of trivial flow runs (1, 4 and 16 at once, memory and
//! SQLite), and scheduler passes over 10,000 deployments with hourly cron schedules.
//!
//! `cargo bench -p benches --bench services`

#[path = "support/tempdb.rs"]
mod tempdb;
#[path = "support/workloads.rs"]
mod workloads;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use orion::prelude::*;
use orion::services::Scheduler;
use orion::store::Deployment;
use tempdb::sqlite_runtime;
use workloads::runtime;

static DONE: AtomicUsize = AtomicUsize::new(0);
static ALL_DONE: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[flow(name = "bench-trivial")]
async fn trivial(n: u64) -> u64 {
    DONE.fetch_add(1, Ordering::SeqCst);
    ALL_DONE.notify_waiters();
    n + 1
}

async fn deployment(orion: &Orion) -> Deployment {
    DeploymentSpec::new("throughput")
        .flow(trivial)
        .parameters(json!({"n": 1}))
        .apply(orion.client())
        .await
        .unwrap()
}

/// Creates `n` due runs, then times an agent running `limit` at once until all are done.
async fn agent_batch(orion: &Orion, d: &Deployment, n: usize, limit: usize) -> Duration {
    let client = orion.client();
    for _ in 0..n {
        client
            .create_flow_run_from_deployment(d, None)
            .await
            .unwrap();
    }
    DONE.store(0, Ordering::SeqCst);
    let start = Instant::now();
    let handle = orion
        .serve()
        .scheduler(None)
        .late_runs(None)
        .reaper(None)
        .agent(Agent::new().limit(limit))
        .start();
    loop {
        let notified = ALL_DONE.notified();
        if DONE.load(Ordering::SeqCst) >= n {
            break;
        }
        notified.await;
    }
    // Shutdown waits for the last runs' final states.
    handle.shutdown().await.unwrap();
    start.elapsed()
}

fn agents(c: &mut Criterion) {
    orion::logging::set_console_level(None);
    let rt = runtime();
    let mut group = c.benchmark_group("agent");
    group.sample_size(10);
    for limit in [1, 4, 16] {
        let n = 2000;
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("memory_runs_2000", limit), |b| {
            let orion = Orion::memory();
            let d = rt.block_on(deployment(&orion));
            b.to_async(&rt).iter_custom(|iters| {
                let (orion, d) = (orion.clone(), d.clone());
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += agent_batch(&orion, &d, n, limit).await;
                    }
                    total
                }
            });
        });
        let n = 500;
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("sqlite_runs_500", limit), |b| {
            let (_file, orion) = sqlite_runtime();
            let d = rt.block_on(deployment(&orion));
            b.to_async(&rt).iter_custom(|iters| {
                let (orion, d) = (orion.clone(), d.clone());
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += agent_batch(&orion, &d, n, limit).await;
                    }
                    total
                }
            });
        });
    }
    group.finish();
}

/// 10,000 deployments of one flow, each with an hourly cron schedule at its own minute.
async fn ten_thousand(orion: &Orion) {
    let specs: Vec<DeploymentSpec> = (0..10_000)
        .map(|i| {
            DeploymentSpec::new(format!("hourly-{i}"))
                .flow(trivial)
                .parameters(json!({"n": i}))
                .schedule(CronSchedule::new(&format!("{} * * * *", i % 60)).unwrap())
        })
        .collect();
    DeploymentSpec::apply_all(specs, orion.client())
        .await
        .unwrap();
}

fn scheduler(c: &mut Criterion) {
    orion::logging::set_console_level(None);
    let rt = runtime();
    let mut group = c.benchmark_group("scheduler");
    group.sample_size(10);
    group.throughput(Throughput::Elements(10_000));
    for backend in ["memory", "sqlite"] {
        // A first pass that creates every deployment's runs ahead (on fresh deployments:
        // applying them again deletes the runs, so each iteration starts from none).
        group.bench_function(
            BenchmarkId::new("pass_creating_10000_deployments", backend),
            |b| {
                b.to_async(&rt).iter_custom(|iters| async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (_file, orion) = match backend {
                            "memory" => (None, Orion::memory()),
                            _ => {
                                let (f, o) = sqlite_runtime();
                                (Some(f), o)
                            }
                        };
                        ten_thousand(&orion).await;
                        let start = Instant::now();
                        let pass = Scheduler::new().run_once(&orion).await.unwrap();
                        total += start.elapsed();
                        assert_eq!(pass.created, 30_000);
                    }
                    total
                });
            },
        );
        // A pass with (almost) nothing to create: the same scheduler after its first pass.
        // Each minute boundary crossed makes a sixtieth of the hourly schedules due a run.
        group.bench_function(
            BenchmarkId::new("pass_idle_10000_deployments", backend),
            |b| {
                let (_file, orion) = match backend {
                    "memory" => (None, Orion::memory()),
                    _ => {
                        let (f, o) = sqlite_runtime();
                        (Some(f), o)
                    }
                };
                let scheduler = Scheduler::new();
                rt.block_on(async {
                    ten_thousand(&orion).await;
                    scheduler.run_once(&orion).await.unwrap();
                });
                b.to_async(&rt).iter(|| async {
                    assert!(scheduler.run_once(&orion).await.unwrap().created <= 200);
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, agents, scheduler);
criterion_main!(benches);
