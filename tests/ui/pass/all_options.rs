use orion::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct Config {
    retries: u32,
}

#[task(
    name = "fetch",
    description = "fetches a page",
    tags = ["io"],
    retries = 3,
    retry_delay_seconds = exponential_backoff(2),
    retry_jitter_factor = 0.5,
    timeout_seconds = 30,
    cache_key_fn = orion::task_input_hash,
    cache_expiration = 3600,
    task_run_name = "fetch-{url}"
)]
async fn fetch(url: String, mut attempt: u32) -> Result<String, String> {
    attempt += 1;
    Ok(format!("{url} {attempt}"))
}

#[task(retry_delay_seconds = [1, 2.5, 10])]
fn blocking(x: u64) -> u64 {
    x
}

#[task]
async fn no_args() {}

#[flow(
    name = "All Options",
    version = "2.0",
    description = "every option",
    task_runner = TaskRunner::concurrent().limit(8),
    retries = 1,
    retry_delay_seconds = 5,
    timeout_seconds = 60.5,
    flow_run_name = "run-{config_name}"
)]
pub async fn all_options(config_name: String, config: Config) -> anyhow::Result<u64> {
    let _ = fetch(config_name, config.retries).await;
    no_args().await;
    Ok(blocking(1).await)
}

fn main() {}
