//! A deployment built in Rust: the tutorial flow with a name, tags, parameters and a schedule;
//! applied, read back, run once from the deployment, and executed in-process.
//!
//! ```sh
//! cargo run -p examples --example deployment_spec
//! ```

use std::time::Duration;

use orion::deployment::DeploymentSpec;
use orion::prelude::*;
use orion::schedule::IntervalSchedule;
use serde_json::json;

#[task]
async fn log_message(name: String) {
    get_run_logger().info(format!("Hello {name}!"));
}

#[flow(name = "leonardo_dicapriflow")]
async fn leonardo_dicapriflow(name: String) {
    log_message(name).await;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let orion = Orion::memory();
    let client = orion.client();

    let deployment = DeploymentSpec::new("leonardo__deployment")
        .flow(leonardo_dicapriflow)
        .tags(["tutorial", "test"])
        .parameters(json!({"name": "Leo"}))
        .schedule(IntervalSchedule::new(Duration::from_secs(15 * 60))?)
        .apply(client)
        .await?;
    println!("applied {} (id {})", deployment.full_name(), deployment.id);

    let d = client
        .read_deployment_by_name("leonardo_dicapriflow/leonardo__deployment")
        .await?;
    let run = client.create_flow_run_from_deployment(&d, None).await?;
    println!(
        "created flow run '{}', {}",
        run.name,
        run.state
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default()
    );

    let state = orion
        .execute_deployment("leonardo_dicapriflow/leonardo__deployment")
        .await?;
    println!("executed: {state}");

    println!("\nas a spec file:\n{}", DeploymentSpec::of(&d).to_yaml()?);
    Ok(())
}
