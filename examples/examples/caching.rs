//! A task whose results are cached by its inputs: the second call with the same input is a
//! Cached state and does not run the body.
//!
//! ```sh
//! cargo run -p examples --example caching
//! ```

use std::sync::atomic::{AtomicU32, Ordering};

use orion::prelude::*;

static BODY_RUNS: AtomicU32 = AtomicU32::new(0);

#[task(cache_key_fn = orion::task_input_hash, cache_expiration = 3600)]
async fn expensive_lookup(user_id: u64) -> String {
    BODY_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("profile of user {user_id}")
}

#[flow]
async fn profiles() {
    let first = expensive_lookup(7).await;
    let second = expensive_lookup(7).return_state().await; // same input: from the cache
    let other = expensive_lookup(8).await;
    get_run_logger().info(format!("{first} / {second} / {other}"));
}

#[tokio::main]
async fn main() {
    profiles().await;
    println!(
        "the task body ran {} times for 3 calls",
        BODY_RUNS.load(Ordering::SeqCst)
    );
}
