use orion::prelude::*;

#[flow]
fn not_async() {}

#[task]
async fn generic<T: Clone>(x: T) -> T {
    x
}

#[task]
async fn borrowed(name: &str) {}

#[task]
async fn pattern((a, b): (u8, u8)) {}

fn main() {}
