//! Choosing a backend by URL: `memory://`, `sqlite://PATH`.

use std::sync::Arc;

use super::{MemoryStore, Store};
use crate::{Error, Result};

/// The URL schemes this build's backends take.
pub const URL_SCHEMES: &[&str] = &[
    "memory",
    #[cfg(feature = "sqlite")]
    "sqlite",
];

/// The store a URL names: `memory://` (a new in-memory store), or `sqlite://PATH` (feature
/// `sqlite`; the file and its directory are created when missing), optionally
/// `sqlite://PATH?synchronous=normal` (see [`super::Durability`]). Opening a file does
/// blocking I/O: from async code, use [`connect`].
///
/// ```
/// let store = orion::store::connect_blocking("memory://")?;
/// let orion = orion::Orion::with_store(store);
/// # let _ = orion;
/// assert!(orion::store::connect_blocking("mysql://db").is_err());
/// # Ok::<(), orion::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Setting`] naming the URL for an unknown scheme or option; store errors for a file
/// that cannot be used.
pub fn connect_blocking(url: &str) -> Result<Arc<dyn Store>> {
    let bad = |reason: &str| Error::Setting {
        name: "database URL",
        value: url.to_owned(),
        reason: reason.to_owned(),
    };
    match url.split_once("://") {
        Some(("memory", "")) => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "sqlite")]
        Some(("sqlite", rest)) if !rest.is_empty() => {
            use super::{Durability, SqliteStore};
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let durability = match query {
                "" | "synchronous=full" => Durability::Full,
                "synchronous=normal" => Durability::Normal,
                _ => {
                    return Err(bad(
                        "the only option is ?synchronous=full or ?synchronous=normal",
                    ));
                }
            };
            Ok(Arc::new(SqliteStore::open_with(path, durability)?))
        }
        #[cfg(not(feature = "sqlite"))]
        Some(("sqlite", _)) => Err(bad(
            "this build has no SQLite store: enable orion's `sqlite` feature",
        )),
        _ => Err(bad(&format!(
            "expected one of {}: memory:// or sqlite://PATH",
            URL_SCHEMES.join(", ")
        ))),
    }
}

/// [`connect_blocking`] on tokio's blocking pool.
///
/// # Errors
///
/// As [`connect_blocking`].
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    let owned = url.to_owned();
    tokio::task::spawn_blocking(move || connect_blocking(&owned))
        .await
        .map_err(|e| Error::Setting {
            name: "database URL",
            value: url.to_owned(),
            reason: format!("opening the store stopped: {e}"),
        })?
}
