//! Applying 1,000 deployments and creating 10,000 runs from deployments, in memory.
//!
//! `cargo bench -p benches --bench deployments`

#[path = "support/workloads.rs"]
mod workloads;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use orion::deployment::DeploymentSpec;
use orion::prelude::*;
use orion::schedule::CronSchedule;

#[flow(name = "bench-flow")]
async fn bench_flow(n: u64) -> u64 {
    n
}

fn specs(n: usize) -> Vec<DeploymentSpec> {
    (0..n)
        .map(|i| {
            DeploymentSpec::new(format!("deployment-{i}"))
                .flow(bench_flow)
                .tags(["bench"])
                .parameters(serde_json::json!({"n": i}))
                .schedule(CronSchedule::new("*/5 * * * *").unwrap())
        })
        .collect()
}

fn deployments(c: &mut Criterion) {
    orion::logging::set_console_level(None);
    let rt = workloads::runtime();
    let mut group = c.benchmark_group("deployments");
    group.sample_size(20);

    group.throughput(Throughput::Elements(1000));
    group.bench_function("apply_1000", |b| {
        b.to_async(&rt).iter_batched(
            || (Orion::memory(), specs(1000)),
            |(orion, specs)| async move {
                let applied = DeploymentSpec::apply_all(specs, orion.client())
                    .await
                    .unwrap();
                assert_eq!(applied.len(), 1000);
                orion
            },
            BatchSize::PerIteration,
        );
    });

    group.throughput(Throughput::Elements(10_000));
    group.bench_function("create_10000_runs_from_deployments", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut measured = std::time::Duration::ZERO;
            for _ in 0..iters {
                let orion = Orion::memory();
                let applied = DeploymentSpec::apply_all(specs(10), orion.client())
                    .await
                    .unwrap();
                let started = std::time::Instant::now();
                for i in 0..10_000 {
                    let d = &applied[i % applied.len()];
                    orion
                        .client()
                        .create_flow_run_from_deployment(d, None)
                        .await
                        .unwrap();
                }
                measured += started.elapsed();
            }
            measured
        });
    });
    group.finish();
}

criterion_group!(benches, deployments);
criterion_main!(benches);
