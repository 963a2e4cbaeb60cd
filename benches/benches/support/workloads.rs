//! What several benches run: the trivial task, the flows of sequential and submitted calls
//! of it, and the two-worker tokio runtime every bench uses (this machine has 2 cores).

use orion::prelude::*;

#[task]
pub(crate) async fn add(x: u64, y: u64) -> u64 {
    x + y
}

/// `n` calls of `add`, one after the other: the sum of `0..n`.
#[flow]
pub(crate) async fn sequential(n: u64) -> u64 {
    let mut total = 0;
    for i in 0..n {
        total = add(total, i).await;
    }
    total
}

/// `n` calls of `add` submitted at once: the sum of `1..=n`.
#[flow]
pub(crate) async fn submitted(n: u64) -> u64 {
    orion::gather(orion::map(0..n, |i| add(i, 1)))
        .await
        .into_iter()
        .sum()
}

/// A multi-threaded runtime with two workers.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
