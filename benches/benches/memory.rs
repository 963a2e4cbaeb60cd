//! Bytes the in-memory store keeps per completed task run (record, state history, log lines),
//! and proof that task results are not kept once consumed.
//!
//! `cargo bench -p benches --bench memory` (prints a table; not a criterion bench: it counts
//! bytes, not time).

#[path = "support/workloads.rs"]
mod workloads;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use orion::prelude::*;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: defers to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same pointer and layout, passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same pointer and layout, passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[task]
async fn trivial(x: u64) -> u64 {
    x + 1
}

#[task]
async fn big_result(x: u64) -> Vec<u8> {
    vec![x as u8; 64 * 1024]
}

#[flow]
async fn many_trivial(n: u64) -> u64 {
    let mut total = 0;
    for i in 0..n {
        total = trivial(i).await;
    }
    total
}

#[flow]
async fn many_big(n: u64) -> usize {
    let mut seen = 0;
    for i in 0..n {
        seen += big_result(i).await.len();
    }
    seen
}

fn measure<F: std::future::IntoFuture>(
    rt: &tokio::runtime::Runtime,
    orion: &Orion,
    fut: F,
) -> isize {
    let before = LIVE.load(Ordering::SeqCst);
    rt.block_on(orion.scope(fut));
    LIVE.load(Ordering::SeqCst) - before
}

fn main() {
    orion::logging::set_console_level(None);
    let rt = workloads::runtime();
    let n: u64 = std::env::var("ORION_MEMORY_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    println!("| workload | task runs | retained bytes | bytes per task run |");
    println!("|---|---|---|---|");
    for (name, big) in [
        ("trivial task, u64 result", false),
        ("task returning 64 KiB", true),
    ] {
        let orion = Orion::memory();
        // Warm the flow record, name tables and thread-locals first.
        measure(&rt, &orion, many_trivial(1));
        let bytes = if big {
            measure(&rt, &orion, many_big(n))
        } else {
            measure(&rt, &orion, many_trivial(n))
        };
        println!(
            "| {name} | {n} | {bytes} | {:.0} |",
            bytes as f64 / n as f64
        );
    }
}
