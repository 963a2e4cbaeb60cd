use orion::prelude::*;

struct Connection;

#[derive(Clone)]
struct NotSerde;

#[flow]
async fn uses_connection(conn: NotSerde) {
    let _ = conn;
    let _ = Connection;
}

fn main() {}
