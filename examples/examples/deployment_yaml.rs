//! A deployment from a YAML spec file (`examples/my_flow_deployment.yaml`): loaded, applied
//! and executed.
//!
//! ```sh
//! cargo run -p examples --example deployment_yaml
//! ```

use orion::deployment::DeploymentSpec;
use orion::prelude::*;

#[task]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[flow(name = "Addition Machine")]
async fn addition_machine(nums: Vec<i64>) -> i64 {
    let mut total = 0;
    for n in nums {
        total = add(total, n).await;
    }
    total
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/my_flow_deployment.yaml"
    );
    let specs = DeploymentSpec::from_path(path)?;
    let orion = Orion::memory();
    for d in DeploymentSpec::apply_all(specs, orion.client()).await? {
        println!(
            "applied {} with schedule {}",
            d.full_name(),
            serde_json::to_string(&d.schedules[0].schedule)?
        );
    }
    let state = orion
        .execute_deployment("Addition Machine/my-first-deployment")
        .await?;
    println!(
        "executed: {state}, result {}",
        state.data().map(ToString::to_string).unwrap_or_default()
    );
    // Keep the flow referenced so it is linked in even when only run by name.
    let _ = addition_machine;
    Ok(())
}
