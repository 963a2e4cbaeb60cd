//! `database info | reset | vacuum | upgrade` on the SQLite file.

use std::io::{BufRead, Write};

use clap::{Args, Subcommand};

use crate::Orion;
use crate::store::SqliteStore;

/// `database …`
#[derive(Args, Debug)]
#[non_exhaustive]
pub struct DatabaseArgs {
    /// The database (default: ORION_DATABASE_URL, else sqlite://$ORION_HOME/orion.db).
    #[arg(long, global = true)]
    url: Option<String>,
    #[command(subcommand)]
    command: DatabaseCommand,
}

/// What to do with the database.
#[derive(Subcommand, Debug)]
#[non_exhaustive]
pub enum DatabaseCommand {
    /// Shows where the database is, its schema version, sizes and health.
    Info,
    /// Deletes every record: the file is removed and created anew.
    Reset {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Rebuilds the file to give back the space of deleted records.
    Vacuum,
    /// Brings the file's schema to this build's version (opening it does the same).
    Upgrade,
}

/// The schema version of an existing file, read without changing it; None when absent.
fn schema_version(path: &std::path::Path) -> Option<i64> {
    if !path.exists() {
        return None;
    }
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.query_row("PRAGMA user_version", [], |r| r.get(0)).ok()
}

/// The SQLite file the arguments or the environment name.
fn sqlite_path(url: Option<String>) -> Result<std::path::PathBuf, String> {
    let url = url.unwrap_or_else(Orion::database_url_from_env);
    match url.split_once("://") {
        Some(("sqlite", path)) if !path.is_empty() => Ok(path.into()),
        _ => Err(format!(
            "the database is {url:?}, not a file: nothing to show or reset"
        )),
    }
}

pub(super) fn run(
    args: DatabaseArgs,
    out: &mut dyn Write,
    input: &mut dyn BufRead,
) -> Result<(), String> {
    let path = sqlite_path(args.url)?;
    match args.command {
        DatabaseCommand::Vacuum => {
            let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            let before = size(&path);
            let store = SqliteStore::open(&path).map_err(|e| e.to_string())?;
            store.vacuum().map_err(|e| e.to_string())?;
            drop(store);
            writeln!(
                out,
                "Vacuumed {}: {before} bytes before, {} after",
                path.display(),
                size(&path)
            )
            .map_err(|e| e.to_string())
        }
        DatabaseCommand::Upgrade => {
            let before = schema_version(&path);
            let store = SqliteStore::open(&path).map_err(|e| e.to_string())?;
            let after = store
                .stats()
                .map_err(|e| e.to_string())?
                .first()
                .map_or(0, |(_, v)| *v);
            let line = match before {
                Some(v) if v == after => {
                    format!(
                        "{} is at schema version {after}: nothing to do",
                        path.display()
                    )
                }
                Some(v) => format!(
                    "Upgraded {} from schema version {v} to {after}",
                    path.display()
                ),
                None => format!("Created {} at schema version {after}", path.display()),
            };
            writeln!(out, "{line}").map_err(|e| e.to_string())
        }
        DatabaseCommand::Info => {
            let store = SqliteStore::open(&path).map_err(|e| e.to_string())?;
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let w = |out: &mut dyn Write, k: &str, v: String| {
                writeln!(out, "{k:<16} {v}").map_err(|e| e.to_string())
            };
            w(out, "database", path.display().to_string())?;
            w(out, "size", format!("{size} bytes"))?;
            for (name, value) in store.stats().map_err(|e| e.to_string())? {
                w(out, &name, value.to_string())?;
            }
            w(
                out,
                "integrity",
                store.integrity_check().map_err(|e| e.to_string())?,
            )?;
            Ok(())
        }
        DatabaseCommand::Reset { yes } => {
            if !yes {
                write!(
                    out,
                    "Delete every run, deployment and log in {}? [y/N] ",
                    path.display()
                )
                .map_err(|e| e.to_string())?;
                out.flush().map_err(|e| e.to_string())?;
                let mut answer = String::new();
                input.read_line(&mut answer).map_err(|e| e.to_string())?;
                if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                    writeln!(out, "Not reset.").map_err(|e| e.to_string())?;
                    return Ok(());
                }
            }
            for suffix in ["", "-wal", "-shm"] {
                let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
                match std::fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("cannot remove {}: {e}", file.display())),
                }
            }
            SqliteStore::open(&path).map_err(|e| e.to_string())?;
            writeln!(out, "Reset {}.", path.display()).map_err(|e| e.to_string())
        }
    }
}
