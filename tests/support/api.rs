//! An orion server over a runtime, on a free local port, for the length of the test process.

use std::net::SocketAddr;

use orion::Orion;
use orion::server::Api;
use orion::services::Shutdown;

/// Serves the API and dashboard of `orion` (with `token`, if any) on 127.0.0.1; its address.
pub(crate) async fn serve(orion: &Orion, token: Option<&str>) -> SocketAddr {
    let (switch, shutdown) = Shutdown::new();
    let api = Api::new("127.0.0.1:0".parse().unwrap()).token(token);
    let (addr, serving) = api
        .bind(orion, shutdown)
        .await
        .expect("bind the test server");
    tokio::spawn(serving);
    // The server lives as long as the test's runtime.
    std::mem::forget(switch);
    addr
}
