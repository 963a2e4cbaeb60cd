//! Choosing a backend by URL: `memory://`, `sqlite://PATH`, `postgres://…`.

use std::future::Future;
use std::sync::Arc;

use super::{MemoryStore, Store};
use crate::{Error, Result};

/// The URL schemes this build's backends take.
pub const URL_SCHEMES: &[&str] = &[
    "memory",
    #[cfg(feature = "sqlite")]
    "sqlite",
    #[cfg(feature = "postgres")]
    "postgres",
    #[cfg(feature = "postgres")]
    "postgresql",
    #[cfg(feature = "remote")]
    "http",
];

/// The store a URL names: `memory://` (a new in-memory store), `sqlite://PATH` (feature
/// `sqlite`; the file and its directory are created when missing), optionally
/// `sqlite://PATH?synchronous=normal` (see [`super::Durability`]), or
/// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (feature `postgres`; see
/// `PostgresStore::connect`). Opening a file does blocking I/O: from async code, use
/// [`connect`].
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
        Some(("postgres" | "postgresql", _)) => on_own_runtime(url, postgres(url)),
        Some(("http" | "https", _)) => on_own_runtime(url, remote(url)),
        _ => Err(bad(&format!(
            "expected one of {}: memory://, sqlite://PATH, postgres://USER@HOST/DATABASE or http://HOST:PORT/api",
            URL_SCHEMES.join(", ")
        ))),
    }
}

/// A store opened from code outside async: on a runtime of its own thread, as a PostgreSQL
/// store's connections and listener, or a remote store's connections, need one. (The store's
/// tasks then run on that runtime, which lives as long as the process.)
fn on_own_runtime(
    url: &str,
    open: impl Future<Output = Result<Arc<dyn Store>>> + Send,
) -> Result<Arc<dyn Store>> {
    use std::sync::OnceLock;
    static RUNTIME: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();
    let runtime = RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("orion-store")
                .enable_all()
                .build()
        })
        .as_ref()
        .map_err(|e| Error::Setting {
            name: "database URL",
            value: redact_url(url),
            reason: format!("cannot start a runtime for the store: {e}"),
        })?;
    std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(open))
            .join()
            .unwrap_or_else(|_| Err(setting(url, "opening the store panicked".into())))
    })
}

#[cfg(not(feature = "postgres"))]
async fn postgres(url: &str) -> Result<Arc<dyn Store>> {
    Err(setting(
        url,
        "this build has no PostgreSQL store: enable orion's `postgres` feature".into(),
    ))
}

/// The store of an orion server (`http://HOST:PORT/api`), sending `ORION_API_TOKEN` when set.
#[cfg(feature = "remote")]
async fn remote(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("https://") {
        return Err(setting(
            url,
            "this build speaks plain HTTP only: reach the server over http:// (behind a TLS proxy or on a private network)".into(),
        ));
    }
    let token = std::env::var("ORION_API_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty());
    Ok(Arc::new(super::RemoteStore::connect(url, token).await?))
}

#[cfg(not(feature = "remote"))]
async fn remote(url: &str) -> Result<Arc<dyn Store>> {
    Err(setting(
        url,
        "this build cannot use an orion server as its store: enable orion's `remote` feature"
            .into(),
    ))
}

/// A PostgreSQL store: a malformed URL is a setting error naming it (password hidden), a
/// database that cannot be used a store error.
#[cfg(feature = "postgres")]
async fn postgres(url: &str) -> Result<Arc<dyn Store>> {
    super::postgres::parse_url(url).map_err(|reason| setting(url, reason))?;
    Ok(Arc::new(super::PostgresStore::connect(url).await?))
}

fn setting(url: &str, reason: String) -> Error {
    Error::Setting {
        name: "database URL",
        value: redact_url(url),
        reason,
    }
}

/// A URL with its password, if any (`user:PASSWORD@host`, `?password=…`), replaced by `***`:
/// how messages show a database URL.
///
/// ```
/// use orion::store::redact_url;
/// assert_eq!(redact_url("postgres://orion:s3cret@db/orion"), "postgres://orion:***@db/orion");
/// assert_eq!(redact_url("postgres://db/orion?user=o&password=s3cret"), "postgres://db/orion?user=o&password=***");
/// assert_eq!(redact_url("sqlite:///tmp/orion.db"), "sqlite:///tmp/orion.db");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (rest, query) = rest
        .split_once('?')
        .map_or((rest, None), |(r, q)| (r, Some(q)));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let query = query.map(|q| {
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some(("password", _)) => "password=***".to_owned(),
                _ => pair.to_owned(),
            })
            .collect();
        format!("?{}", pairs.join("&"))
    });
    format!("{scheme}://{authority}{path}{}", query.unwrap_or_default())
}

/// [`connect_blocking`] on tokio's blocking pool.
///
/// # Errors
///
/// As [`connect_blocking`].
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return postgres(url).await;
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return remote(url).await;
    }
    let owned = url.to_owned();
    tokio::task::spawn_blocking(move || connect_blocking(&owned))
        .await
        .map_err(|e| Error::Setting {
            name: "database URL",
            value: url.to_owned(),
            reason: format!("opening the store stopped: {e}"),
        })?
}
