//! A long-running program that serves deployments: the scheduler, the late-runs marker, the
//! reaper and an agent on the `default` queue, until Ctrl-C. Run several copies (on one
//! machine they share `~/.orion/orion.db`): each run is executed by exactly one of them, and
//! a copy that is killed has its runs crashed by the others' reaper and retried elsewhere.
//!
//! ```sh
//! cargo run -p examples --example agent
//! ```

use std::time::Duration;

use orion::prelude::*;

#[task]
async fn add_numbers(nums: Vec<i64>) -> i64 {
    nums.iter().sum()
}

#[flow(name = "Addition Machine", retries = 1)]
async fn calculator(nums: Vec<i64>) -> i64 {
    add_numbers(nums).await
}

#[tokio::main]
async fn main() -> orion::Result<()> {
    let orion = Orion::from_env().await?;
    DeploymentSpec::new("every-15-minutes")
        .flow(calculator)
        .parameters(json!({"nums": [1, 2, 3, 4]}))
        .schedule(CronSchedule::new("*/15 * * * *")?)
        .work_queue_name("default")
        .apply(orion.client())
        .await?;
    println!(
        "Serving 'Addition Machine/every-15-minutes'; Ctrl-C stops (runs in progress get 30 s)."
    );
    orion
        .serve()
        .agent(
            Agent::new()
                .work_queue("default")
                .grace_period(Duration::from_secs(30)),
        )
        .run_until(tokio::signal::ctrl_c())
        .await
}
