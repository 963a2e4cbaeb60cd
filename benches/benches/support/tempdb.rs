//! A new SQLite database in a folder of its own, deleted with the folder when dropped.

use std::path::PathBuf;
use std::sync::Arc;

use orion::Orion;
use orion::store::SqliteStore;

pub(crate) struct TempDb(PathBuf);

impl TempDb {
    /// A fresh folder under the temp dir, named for `what`, this process and a random number.
    pub(crate) fn new(what: &str) -> Self {
        TempDb(std::env::temp_dir().join(format!(
            "orion-{what}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        )))
    }

    /// The database file's path (the file exists once a store opens it).
    pub(crate) fn file(&self) -> PathBuf {
        self.0.join("orion.db")
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A runtime on a new file store; drop the runtime before the file.
#[allow(dead_code)] // not every bench opens a runtime on it
pub(crate) fn sqlite_runtime() -> (TempDb, Orion) {
    let db = TempDb::new("bench");
    let store = SqliteStore::open(db.file()).unwrap();
    (db, Orion::with_store(Arc::new(store)))
}
