use orion::prelude::*;

#[derive(Clone)]
struct Report;

#[task(cache_key_fn = orion::task_input_hash)]
async fn build_report(day: u32) -> Report {
    let _ = day;
    Report
}

fn main() {}
