//! Submitting task runs to the flow's task runner: `.submit()` and `orion::map`, with a
//! concurrency limit, and a CPU-bound synchronous task on the parallel runner.
//!
//! ```sh
//! cargo run -p examples --example concurrency
//! ```

use std::time::Duration;

use orion::prelude::*;

#[task]
async fn download(page: u32) -> usize {
    tokio::time::sleep(Duration::from_millis(50)).await;
    page as usize * 100
}

/// A plain `fn` task runs on the blocking pool.
#[task]
fn checksum(n: u64) -> u64 {
    (0..n).fold(0u64, |acc, x| acc.wrapping_mul(31).wrapping_add(x))
}

#[flow(task_runner = TaskRunner::concurrent().limit(4))]
async fn crawl(pages: u32) -> usize {
    let first = download(0).submit();
    let rest = orion::map(1..pages, download);
    first.await + orion::gather(rest).await.into_iter().sum::<usize>()
}

#[flow(task_runner = TaskRunner::parallel())]
async fn checksums() -> Vec<u64> {
    orion::gather(orion::map([1_000_000, 2_000_000, 3_000_000], checksum)).await
}

#[tokio::main]
async fn main() {
    let started = std::time::Instant::now();
    let bytes = crawl(12).await;
    println!(
        "crawled {bytes} bytes in {:?} (12 downloads of 50 ms, 4 at a time)",
        started.elapsed()
    );
    println!("checksums: {:?}", checksums().await);
}
