//! A task that fails twice before it succeeds, retried with a delay; and a task whose
//! retries run out, which fails its flow.
//!
//! ```sh
//! cargo run -p examples --example retries
//! ```

use std::sync::atomic::{AtomicU32, Ordering};

use orion::prelude::*;

static CALLS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 2, retry_delay_seconds = 0.2)]
async fn flaky_api() -> Result<String, String> {
    let call = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if call < 3 {
        Err(format!("HTTP 503 on attempt {call}"))
    } else {
        Ok("payload".to_string())
    }
}

#[task(retries = 1, retry_delay_seconds = exponential_backoff(0.1))]
async fn always_down() -> Result<(), String> {
    Err("connection refused".to_string())
}

#[flow]
async fn resilient() -> Result<String, String> {
    flaky_api().await
}

#[flow]
async fn doomed() -> Result<(), String> {
    always_down().await
}

#[tokio::main]
async fn main() {
    let payload = resilient().await;
    println!("resilient returned {payload:?}");

    let state = doomed().return_state().await;
    println!("doomed ended in {state}");
}
