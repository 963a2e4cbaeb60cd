//! The engine on the SQLite file store.
//!
//! `cargo bench -p benches --bench sqlite`

#[path = "support/tempdb.rs"]
mod tempdb;
#[path = "support/workloads.rs"]
mod workloads;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tempdb::sqlite_runtime;
use workloads::{runtime, sequential, submitted};

fn sqlite(c: &mut Criterion) {
    orion::logging::set_console_level(None);
    let rt = runtime();
    let mut group = c.benchmark_group("sqlite");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1000));
    group.bench_function("sequential_task_runs_1000", |b| {
        let (_file, orion) = sqlite_runtime();
        b.to_async(&rt)
            .iter(|| async { assert_eq!(sequential(1000).on(&orion).await, 499_500) });
    });
    group.bench_function("submitted_task_runs_1000", |b| {
        let (_file, orion) = sqlite_runtime();
        b.to_async(&rt)
            .iter(|| async { assert_eq!(submitted(1000).on(&orion).await, 500_500) });
    });
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("submitted_task_runs_10000", |b| {
        let (_file, orion) = sqlite_runtime();
        b.to_async(&rt)
            .iter(|| async { assert_eq!(submitted(10_000).on(&orion).await, 50_005_000) });
    });
    group.finish();
}

criterion_group!(benches, sqlite);
criterion_main!(benches);
