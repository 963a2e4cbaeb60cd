//! "Addition Machine": a flow that sums a list with one task run per addition, and returns
//! the total. It is registered by name, so it can also be run from JSON parameters.
//!
//! ```sh
//! cargo run -p examples --example calculator
//! ```

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
    get_run_logger().info(format!("The sum is {total}"));
    total
}

#[tokio::main]
async fn main() -> orion::Result<()> {
    let total = addition_machine(vec![1, 2, 3, 4]).await;
    assert_eq!(total, 10);

    // The same flow, by name, from JSON — the way an agent runs a deployment.
    let flow = orion::registry::require("Addition Machine")?;
    let state = flow
        .run(&Orion::current(), serde_json::json!({"nums": [5, 6]}))
        .await?;
    println!(
        "Addition Machine with [5, 6] ended {state} with result {}",
        state.data().unwrap_or(&serde_json::Value::Null)
    );
    Ok(())
}
