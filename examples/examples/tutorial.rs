//! The main story: deployments that run by themselves. Two deployments of the seed tutorial
//! (the Addition Machine with its parameters, the Leo flow with tags) on short interval
//! schedules; the scheduler creates their runs ahead, an agent takes each one when it is
//! due and runs it here, and after about 20 seconds the program shows what ran and stops.
//!
//! ```sh
//! cargo run -p examples --example tutorial
//! ```
//!
//! Runs are kept in the default store, `~/.orion/orion.db` (`ORION_DATABASE_URL` and
//! `ORION_HOME` change it). Running it again updates the deployments in place.

use std::time::Duration;

use orion::prelude::*;
use orion::services::{LateRuns, Reaper, Scheduler};
use orion::store::FlowRunFilter;

#[task]
async fn add_numbers(nums: Vec<i64>) -> i64 {
    nums.iter().sum()
}

#[flow(name = "Addition Machine", retries = 1)]
async fn calculator(nums: Vec<i64>) -> i64 {
    add_numbers(nums).await
}

#[task]
async fn log_message(name: String) {
    get_run_logger().info(format!("Hello {name}!"));
}

#[flow(name = "leonardo_dicapriflow")]
async fn leonardo_dicapriflow(name: String) {
    log_message(name).await;
}

#[tokio::main]
async fn main() -> orion::Result<()> {
    let orion = Orion::from_env().await?;
    let client = orion.client();
    let started = client.now();

    let deployments = [
        DeploymentSpec::new("my-first-deployment")
            .flow(calculator)
            .parameters(json!({"nums": [1, 2, 3, 4]}))
            .schedule(IntervalSchedule::new(Duration::from_secs(5))?),
        DeploymentSpec::new("leonardo-deployment")
            .flow(leonardo_dicapriflow)
            .tags(["tutorial", "test"])
            .parameters(json!({"name": "Leo"}))
            .schedule(IntervalSchedule::new(Duration::from_secs(8))?),
    ];
    let applied = DeploymentSpec::apply_all(deployments.to_vec(), client).await?;
    for d in &applied {
        println!(
            "Deployment '{}' applied; serving it for 20 seconds",
            d.full_name()
        );
    }

    orion
        .serve()
        .scheduler(Scheduler::new().loop_interval(Duration::from_secs(1)))
        .late_runs(LateRuns::new())
        .reaper(Reaper::new())
        .agent(Agent::new().work_queue("default"))
        .run_until(tokio::time::sleep(Duration::from_secs(20)))
        .await?;

    println!("\nWhat ran:");
    for d in &applied {
        let filter = FlowRunFilter::new()
            .deployment_id(d.id)
            .expected_start_between(Some(started), Some(client.now()))
            .sort(orion::store::Sort::ExpectedStartAsc);
        for run in client.read_flow_runs(&filter).await? {
            let history: Vec<String> = client
                .read_flow_run_states(run.id)
                .await?
                .iter()
                .map(|s| s.name().to_owned())
                .collect();
            println!(
                "  {:<40} {:<22} {}",
                d.full_name(),
                run.name,
                history.join(" → ")
            );
        }
        // Stop its schedule: the runs created ahead are deleted, nothing waits in the store.
        client.pause_deployment(d.id).await?;
    }
    Ok(())
}
