//! The database file on disk: its permissions, and plain words for why it cannot be used.

use std::io::ErrorKind;
use std::path::Path;

/// Makes a new database file readable and writable by its owner only.
#[cfg(unix)]
pub(super) fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
pub(super) fn restrict_permissions(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Why the file system keeps orion from using `path`, when that is the reason SQLite failed.
/// Only opens (never creates or changes) the file; may create and remove a probe file in the
/// directory to learn whether it is writable.
pub(super) fn diagnose(path: &Path) -> Option<String> {
    let shown = path.display();
    let denied = |r: std::io::Result<std::fs::File>| matches!(r, Err(e) if e.kind() == ErrorKind::PermissionDenied);
    if path.exists() {
        if denied(std::fs::File::open(path)) {
            return Some(format!(
                "{shown} cannot be read: permission denied (its owner or mode keeps this user out)"
            ));
        }
        if denied(std::fs::OpenOptions::new().write(true).open(path)) {
            return Some(format!(
                "{shown} is read-only: orion writes to its database (state changes, logs) and cannot use a file it may not write"
            ));
        }
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let probe = dir.join(format!(".orion-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Some(format!(
            "cannot use {shown}: its directory {} is not writable, and SQLite keeps its write-ahead log and lock files beside the database",
            dir.display()
        )),
        Err(_) => None,
    }
}
