//! Fresh paths for test databases, under one folder per test process that the next run of any
//! test binary deletes once that process has ended, so runs do not pile files up.

use std::path::PathBuf;

/// The folder holding this process's test files: `<tmp>/orion-tests/<pid>`.
fn root() -> PathBuf {
    std::env::temp_dir().join("orion-tests")
}

/// A path `<root>/<pid>/<tag>-<random>/orion.db` whose folder does not exist yet.
#[allow(dead_code)] // not every test binary opens databases
pub(crate) fn temp_db(tag: &str) -> PathBuf {
    temp_dir(tag).join("orion.db")
}

/// A folder path `<root>/<pid>/<tag>-<random>` that does not exist yet.
pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(sweep);
    root()
        .join(std::process::id().to_string())
        .join(format!("{tag}-{}", fastrand::u64(..)))
}

/// Deletes the folders of test processes that are no longer running (Linux: no /proc entry).
fn sweep() {
    let Ok(entries) = std::fs::read_dir(root()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let proc = std::path::Path::new("/proc");
        if proc.exists() && !proc.join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
