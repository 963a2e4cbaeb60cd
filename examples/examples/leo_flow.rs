//! The seed tutorial: one flow, one task that logs a greeting.
//!
//! ```sh
//! cargo run -p examples --example leo_flow
//! ```

use orion::prelude::*;

#[task]
async fn log_message(name: String) {
    let logger = get_run_logger();
    logger.info(format!("Hello {name}!"));
}

#[flow(name = "leonardo_dicapriflow")]
async fn leonardo_dicapriflow(name: String) {
    log_message(name).await;
}

#[tokio::main]
async fn main() {
    leonardo_dicapriflow("Leo".to_string()).await;
}
