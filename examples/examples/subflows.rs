//! A flow calling other flows: each call is a subflow run, linked to a task run of the
//! parent. A failing subflow fails the parent ('1/3 states failed.').
//!
//! ```sh
//! cargo run -p examples --example subflows
//! ```

use orion::prelude::*;

#[task]
async fn extract(source: String) -> Vec<u32> {
    source.bytes().map(u32::from).collect()
}

#[flow]
async fn etl(source: String) -> Result<u32, String> {
    let rows = extract(source.clone()).await;
    if rows.is_empty() {
        return Err(format!("source {source:?} is empty"));
    }
    Ok(rows.iter().sum())
}

#[flow(name = "nightly")]
async fn nightly() {
    for source in ["users", "orders", ""] {
        let state = etl(source.to_string()).return_state().await;
        get_run_logger().info(format!("etl({source:?}) ended {state}"));
    }
}

#[tokio::main]
async fn main() {
    let state = nightly().return_state().await;
    println!("nightly ended in {state}");
}
