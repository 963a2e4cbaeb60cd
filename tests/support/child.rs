//! What the test binaries that run child copies of themselves share: whether this process is
//! a child, the runtime each side uses, and opening the shared SQLite file.

use orion::Orion;

/// Whether this process is a child copy started by a test (`ORION_CHILD` set).
pub(crate) fn is_child() -> bool {
    std::env::var_os("ORION_CHILD").is_some()
}

/// A two-worker runtime, as on this project's machines.
pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A runtime over the SQLite file at `path`.
#[allow(dead_code)] // the PostgreSQL process tests open URLs instead
pub(crate) async fn open(path: &str) -> Orion {
    Orion::open(&format!("sqlite://{path}")).await.unwrap()
}
