//! Engine overhead on the in-memory store, console logging off.
//!
//! `cargo bench -p benches --bench engine`

#[path = "support/workloads.rs"]
mod workloads;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use orion::prelude::*;
use workloads::{add, runtime, sequential, submitted};

#[task(cache_key_fn = orion::task_input_hash)]
async fn cached_add(x: u64, y: u64) -> u64 {
    x + y
}

#[flow]
async fn one_task() -> u64 {
    add(1, 2).await
}

#[flow]
async fn empty_flow() {}

#[flow]
async fn cache_hits(n: u64) -> u64 {
    let mut total = 0;
    for _ in 0..n {
        total += cached_add(1, 2).await;
    }
    total
}

#[flow]
async fn ten_tasks() -> u64 {
    let mut total = 0;
    for i in 0..10 {
        total = add(total, i).await;
    }
    total
}

#[flow]
async fn nested() -> u64 {
    let mut total = 0;
    for _ in 0..10 {
        total += ten_tasks().await;
    }
    total
}

fn engine(c: &mut Criterion) {
    orion::logging::set_console_level(None);
    let rt = runtime();
    let mut group = c.benchmark_group("engine");

    group.bench_function("flow_run_with_one_task", |b| {
        b.to_async(&rt).iter_batched(
            Orion::memory,
            |orion| async move {
                assert_eq!(one_task().on(&orion).await, 3);
                orion
            },
            BatchSize::SmallInput,
        );
    });

    group.bench_function("empty_flow_run", |b| {
        b.to_async(&rt).iter_batched(
            Orion::memory,
            |orion| async move {
                empty_flow().on(&orion).await;
                orion
            },
            BatchSize::SmallInput,
        );
    });

    group.throughput(Throughput::Elements(1000));
    group.bench_function("sequential_task_runs_1000", |b| {
        b.to_async(&rt).iter_batched(
            Orion::memory,
            |orion| async move {
                assert_eq!(sequential(1000).on(&orion).await, 499_500);
                orion
            },
            BatchSize::PerIteration,
        );
    });

    group.throughput(Throughput::Elements(1000));
    group.bench_function("cache_hits_1000", |b| {
        b.to_async(&rt).iter_batched(
            Orion::memory,
            |orion| async move {
                assert_eq!(cache_hits(1000).on(&orion).await, 3000);
                orion
            },
            BatchSize::PerIteration,
        );
    });

    group.throughput(Throughput::Elements(100));
    group.bench_function("subflows_10x10", |b| {
        b.to_async(&rt).iter_batched(
            Orion::memory,
            |orion| async move {
                assert_eq!(nested().on(&orion).await, 450);
                orion
            },
            BatchSize::PerIteration,
        );
    });

    group.sample_size(20);
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("submitted_task_runs_10000", |b| {
        b.to_async(&rt).iter_batched(
            Orion::memory,
            |orion| async move {
                assert_eq!(submitted(10_000).on(&orion).await, 50_005_000);
                orion
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
