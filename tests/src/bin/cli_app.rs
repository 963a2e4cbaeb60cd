//! A user's program with orion's command line embedded: what the CLI tests drive as a real
//! process.

use std::time::Duration;

use orion::prelude::*;

#[task]
async fn add_numbers(nums: Vec<i64>) -> i64 {
    nums.iter().sum()
}

#[flow(name = "Addition Machine")]
async fn calculator(nums: Vec<i64>) -> i64 {
    get_run_logger().warning(format!("adding {} numbers", nums.len()));
    add_numbers(nums).await
}

#[flow(name = "fallible")]
async fn fallible(fail: bool) -> Result<u32, String> {
    if fail {
        Err("asked to fail".into())
    } else {
        Ok(7)
    }
}

#[flow(name = "slow")]
async fn slow(seconds: u64) -> u64 {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    seconds
}

fn main() -> std::process::ExitCode {
    orion::cli::Cli::new()
        .deployment(
            DeploymentSpec::new("my-first-deployment")
                .flow(calculator)
                .parameters(json!({"nums": [1, 2, 3, 4]})),
        )
        .deployment(
            DeploymentSpec::new("sometimes-fails")
                .flow(fallible)
                .parameters(json!({"fail": false})),
        )
        .deployment(
            DeploymentSpec::new("nap")
                .flow(slow)
                .parameters(json!({"seconds": 1})),
        )
        .main()
}
