//! Concurrency limits: what a slot costs, and whether a limit keeps its slots busy.
//!
//! `cargo bench -p benches --bench limits`

#[path = "support/tempdb.rs"]
mod tempdb;
#[path = "support/workloads.rs"]
mod workloads;

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use orion::prelude::*;
use workloads::{runtime, sequential};

#[task(tags = ["bench-db"])]
async fn tagged_add(x: u64, y: u64) -> u64 {
    x + y
}

/// `n` calls of a task carrying a limited tag, one after the other.
#[flow]
async fn tagged_sequential(n: u64) -> u64 {
    let mut total = 0;
    for i in 0..n {
        total = tagged_add(total, i).await;
    }
    total
}

#[task(tags = ["bench-db"])]
async fn tagged_sleep(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// `n` submitted task runs of `ms` each, all under the tag's limit.
#[flow]
async fn through_the_limit(n: u64, ms: u64) {
    orion::gather(orion::map(0..n, |_| tagged_sleep(ms))).await;
}

/// A runtime over the memory store with the `bench-db` tag limited to `slots`.
async fn limited(slots: u32) -> Orion {
    let orion = Orion::memory();
    orion
        .client()
        .set_concurrency_limit("bench-db", slots)
        .await
        .unwrap();
    orion
}

fn limits(c: &mut Criterion) {
    orion::logging::set_console_level(None);
    let rt = runtime();
    let mut group = c.benchmark_group("limits");

    // A trivial task run with and without a slot to take, same sitting: the ratio is the
    // cost of the limit.
    group.throughput(Throughput::Elements(1000));
    group.bench_function("unlimited_task_runs_1000", |b| {
        b.iter_batched(
            || rt.block_on(limited(10)),
            |orion| {
                rt.block_on(async {
                    assert_eq!(sequential(1000).on(&orion).await, 499_500);
                });
                orion
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("tag_limited_task_runs_1000", |b| {
        b.iter_batched(
            || rt.block_on(limited(10)),
            |orion| {
                rt.block_on(async {
                    assert_eq!(tagged_sequential(1000).on(&orion).await, 499_500);
                });
                orion
            },
            BatchSize::PerIteration,
        );
    });

    // Taking and releasing a named slot.
    group.throughput(Throughput::Elements(1));
    let memory = Orion::memory();
    group.bench_function("named_slot_take_release_memory", |b| {
        b.to_async(&rt).iter(|| async {
            let slot = memory.concurrency("bench-named", 10).await.unwrap();
            slot.release().await.unwrap();
        });
    });
    let (_db, file) = tempdb::sqlite_runtime();
    group.bench_function("named_slot_take_release_sqlite", |b| {
        b.to_async(&rt).iter(|| async {
            let slot = file.concurrency("bench-named", 10).await.unwrap();
            slot.release().await.unwrap();
        });
    });

    // 1,000 task runs of 5 ms through 10 slots: ideally 1,000 / 10 × 5 ms = 500 ms.
    group.sample_size(10);
    group.throughput(Throughput::Elements(1000));
    group.bench_function("1000_task_runs_of_5ms_through_10_slots", |b| {
        b.iter_batched(
            || rt.block_on(limited(10)),
            |orion| {
                rt.block_on(through_the_limit(1000, 5).on(&orion).into_future());
                orion
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, limits);
criterion_main!(benches);
