//! Concurrency limits that hold across every process sharing the store: a task tag's limit,
//! a deployment's limit under an agent, a named limit around any code, and a rate limit.
//!
//! ```sh
//! cargo run -p examples --example limits
//! ```

use std::time::{Duration, Instant};

use orion::deployment::Collision;
use orion::prelude::*;

#[task(tags = ["database"])]
async fn query(table: String) -> usize {
    tokio::time::sleep(Duration::from_millis(200)).await;
    table.len()
}

#[flow(name = "report", task_runner = TaskRunner::concurrent())]
async fn report(tables: Vec<String>) -> usize {
    orion::gather(orion::map(tables, query))
        .await
        .into_iter()
        .sum()
}

#[flow(name = "nightly-etl")]
async fn etl() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::main]
async fn main() -> orion::Result<()> {
    let orion = Orion::memory();
    let client = orion.client();

    // At most 2 `database` task runs at once; the others wait as AwaitingConcurrencySlot.
    client.set_concurrency_limit("database", 2).await?;
    let started = Instant::now();
    let tables: Vec<String> = ["users", "orders", "items", "events", "logs", "audit"]
        .map(String::from)
        .to_vec();
    let total = report(tables).on(&orion).await;
    println!(
        "report: {total} after {:?} (6 queries of 200 ms, 2 at a time)",
        started.elapsed()
    );

    // At most one run of the deployment at once: runs due meanwhile wait their turn.
    let nightly = DeploymentSpec::new("nightly")
        .flow(etl)
        .concurrency_limit(1, Collision::Enqueue)
        .apply(client)
        .await?;
    for _ in 0..3 {
        client
            .create_flow_run_from_deployment(&nightly, None)
            .await?;
    }
    let services = orion.serve().agent(Agent::new()).start();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    services.shutdown().await?;
    for run in client
        .read_flow_runs(&orion::store::FlowRunFilter::new().deployment_id(nightly.id))
        .await?
    {
        let states: Vec<String> = client
            .read_flow_run_states(run.id)
            .await?
            .iter()
            .map(|s| s.name().to_owned())
            .collect();
        println!("{}: {}", run.name, states.join(" → "));
    }

    // A named limit around any code, and a rate limit.
    let slot = orion.concurrency("warehouse", 4).await?;
    let status = client.read_concurrency_limit("warehouse").await?;
    println!(
        "warehouse: {} of {} slot(s) held",
        status.active_slots(),
        status.limit.limit
    );
    slot.release().await?;
    let started = Instant::now();
    for _ in 0..4 {
        orion
            .rate_limit("api", 2, Duration::from_millis(500))
            .await?;
    }
    println!("4 calls at 2 per 500 ms took {:?}", started.elapsed());
    Ok(())
}
