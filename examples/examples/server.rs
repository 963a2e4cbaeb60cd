//! The seed's deployment served with its dashboard: the scheduler, an agent and the REST API
//! with the web dashboard on http://127.0.0.1:4200 (`ORION_API_ADDR` to change), until
//! Ctrl-C. Open the dashboard, press **Quick Run** on `leonardo_dicapriflow/leo`, and watch the
//! run greet Leo; or run `cargo run -p examples --example remote` for the same through the API.
//!
//! ```sh
//! cargo run -p examples --example server
//! ```

use std::time::Duration;

use orion::prelude::*;

#[task]
async fn log_message(name: String) {
    get_run_logger().info(format!("Hello {name}!"));
}

#[flow(name = "leonardo_dicapriflow")]
async fn leonardo_dicapriflow(name: String) {
    log_message(name).await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::var("ORION_API_ADDR").unwrap_or_else(|_| "127.0.0.1:4200".into());
    let orion = Orion::from_env().await?;
    DeploymentSpec::new("leo")
        .flow(leonardo_dicapriflow)
        .parameters(json!({"name": "Leo"}))
        .schedule(IntervalSchedule::new(Duration::from_secs(3600))?)
        .apply(orion.client())
        .await?;
    println!("Dashboard: http://{addr}/ · API: http://{addr}/api · Ctrl-C stops.");
    orion
        .serve()
        .agent(Agent::new())
        .api(addr.parse()?)
        .run_until(tokio::signal::ctrl_c())
        .await?;
    Ok(())
}
