use orion::prelude::*;

#[task(retries = "3", timeout_seconds = -1, tags = "io", retry_delay_seconds = linear(2), name = 5)]
async fn all_wrong() {}

#[flow(retries = 1, retries = 2)]
async fn twice() {}

fn main() {}
