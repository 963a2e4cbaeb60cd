use orion::prelude::*;

#[task(retires = 3)]
async fn typo() {}

#[flow(name = "x", cache_key_fn = orion::task_input_hash)]
async fn task_option_on_flow() {}

fn main() {}
