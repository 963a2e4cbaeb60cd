//! `database info | reset | vacuum | upgrade` on the SQLite file or the PostgreSQL database.

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

/// The SQLite file a URL names.
fn sqlite_path(url: &str) -> Result<std::path::PathBuf, String> {
    match url.split_once("://") {
        Some(("sqlite", path)) if !path.is_empty() => Ok(path.into()),
        _ => Err(format!(
            "the database is {url:?}, not a file: nothing to show or reset"
        )),
    }
}

/// Asks before deleting everything in `what`: whether the answer was yes.
fn confirmed(what: &str, out: &mut dyn Write, input: &mut dyn BufRead) -> Result<bool, String> {
    write!(
        out,
        "Delete every run, deployment and log in {what}? [y/N] "
    )
    .map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    let mut answer = String::new();
    input.read_line(&mut answer).map_err(|e| e.to_string())?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        return Ok(true);
    }
    writeln!(out, "Not reset.").map_err(|e| e.to_string())?;
    Ok(false)
}

pub(super) async fn run(
    args: DatabaseArgs,
    out: &mut dyn Write,
    input: &mut dyn BufRead,
) -> Result<(), String> {
    let url = args.url.unwrap_or_else(Orion::database_url_from_env);
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return postgres(&url, args.command, out, input).await;
    }
    let path = sqlite_path(&url)?;
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
            if !yes && !confirmed(&path.display().to_string(), out, input)? {
                return Ok(());
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

/// The same commands on a PostgreSQL database (which orion does not create or drop: reset
/// empties its tables).
#[cfg(feature = "postgres")]
async fn postgres(
    url: &str,
    command: DatabaseCommand,
    out: &mut dyn Write,
    input: &mut dyn BufRead,
) -> Result<(), String> {
    use crate::store::PostgresStore;
    let shown = crate::store::redact_url(url);
    let store = PostgresStore::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let line =
        |out: &mut dyn Write, text: String| writeln!(out, "{text}").map_err(|e| e.to_string());
    match command {
        DatabaseCommand::Info => {
            line(out, format!("{:<16} {shown}", "database"))?;
            for (name, value) in store.stats().await.map_err(|e| e.to_string())? {
                line(out, format!("{name:<16} {value}"))?;
            }
            Ok(())
        }
        DatabaseCommand::Upgrade => {
            let version = store.schema_version().await.map_err(|e| e.to_string())?;
            line(out, format!("{shown} is at schema version {version}"))
        }
        DatabaseCommand::Vacuum => {
            store.vacuum().await.map_err(|e| e.to_string())?;
            line(
                out,
                format!("Vacuumed and analyzed orion's tables in {shown}"),
            )
        }
        DatabaseCommand::Reset { yes } => {
            if !yes && !confirmed(&shown, out, input)? {
                return Ok(());
            }
            store.reset().await.map_err(|e| e.to_string())?;
            line(out, format!("Reset {shown}."))
        }
    }
}
