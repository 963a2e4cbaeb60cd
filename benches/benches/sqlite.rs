//! The engine on the SQLite file store.
//!
//! `cargo bench -p benches --bench sqlite`

#[path = "support/workloads.rs"]
mod workloads;

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use orion::prelude::*;
use orion::store::SqliteStore;
use workloads::{runtime, sequential, submitted};

/// A new database file, deleted with its folder when dropped.
struct TempDb(std::path::PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A runtime on a new file store; drop the runtime before the file.
fn store() -> (TempDb, Orion) {
    let dir = std::env::temp_dir().join(format!(
        "orion-bench-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let store = SqliteStore::open(dir.join("orion.db")).unwrap();
    (TempDb(dir), Orion::with_store(Arc::new(store)))
}

fn sqlite(c: &mut Criterion) {
    orion::logging::set_console_level(None);
    let rt = runtime();
    let mut group = c.benchmark_group("sqlite");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1000));
    group.bench_function("sequential_task_runs_1000", |b| {
        let (_file, orion) = store();
        b.to_async(&rt)
            .iter(|| async { assert_eq!(sequential(1000).on(&orion).await, 499_500) });
    });
    group.bench_function("submitted_task_runs_1000", |b| {
        let (_file, orion) = store();
        b.to_async(&rt)
            .iter(|| async { assert_eq!(submitted(1000).on(&orion).await, 500_500) });
    });
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("submitted_task_runs_10000", |b| {
        let (_file, orion) = store();
        b.to_async(&rt)
            .iter(|| async { assert_eq!(submitted(10_000).on(&orion).await, 50_005_000) });
    });
    group.finish();
}

criterion_group!(benches, sqlite);
criterion_main!(benches);
