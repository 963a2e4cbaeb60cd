use orion::prelude::*;

struct Handle;

#[task]
async fn takes_handle(handle: Handle) {
    let _ = handle;
}

fn main() {}
