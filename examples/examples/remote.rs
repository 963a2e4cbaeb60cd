//! The seed's REST story in Rust: a program whose runtime is an orion server (no database of
//! its own) finds the deployment by name, creates a run of it, and follows it to its end —
//! the server's agent runs it. Start `cargo run -p examples --example server` first.
//!
//! ```sh
//! ORION_API_URL=http://127.0.0.1:4200/api cargo run -p examples --example remote
//! ```

use std::time::Duration;

use orion::prelude::*;
use orion::store::LogFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("ORION_API_URL").unwrap_or_else(|_| "http://127.0.0.1:4200/api".into());
    let orion = Orion::open(&url).await?;
    let deployment = orion
        .client()
        .read_deployment_by_name("leonardo_dicapriflow/leo")
        .await?;
    let run = orion
        .client()
        .create_flow_run_from_deployment(&deployment, None)
        .await?;
    println!("Created flow run '{}' ({}) through {url}", run.name, run.id);
    let done = loop {
        let run = orion
            .client()
            .read_flow_run(run.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the run disappeared"))?;
        match run.state {
            Some(state) if state.is_final() => break state,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    for line in orion
        .client()
        .read_logs(&LogFilter::new().flow_run_id(run.id))
        .await?
    {
        println!("{} | {:<7} | {}", line.timestamp, line.level, line.message);
    }
    println!("Flow run '{}' finished: {}", run.name, done.name());
    anyhow::ensure!(done.is_completed(), "the run did not complete");
    Ok(())
}
