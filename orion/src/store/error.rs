use uuid::Uuid;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A record that the operation needs does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// `"flow run"`, `"task run"`, `"flow"`.
        what: &'static str,
        /// Its id.
        id: Uuid,
    },
    /// A record with the same unique key exists already.
    #[error("{what} already exists: {key}")]
    AlreadyExists {
        /// What kind of record.
        what: &'static str,
        /// The duplicated key.
        key: String,
    },
    /// The backend failed (I/O, a lock, a corrupt file), with its own message.
    #[error("store backend error: {0}")]
    Backend(String),
}
