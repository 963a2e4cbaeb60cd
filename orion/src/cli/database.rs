use std::io::{BufRead, Write};

use clap::{Args, Subcommand};

use crate::Orion;
use crate::store::SqliteStore;

#[derive(Args)]
pub(super) struct DatabaseArgs {
    /// The database (default: ORION_DATABASE_URL, else sqlite://$ORION_HOME/orion.db).
    #[arg(long, global = true)]
    url: Option<String>,
    #[command(subcommand)]
    command: DatabaseCommand,
}

#[derive(Subcommand)]
enum DatabaseCommand {
    /// Shows where the database is, its schema version, sizes and health.
    Info,
    /// Deletes every record: the file is removed and created anew.
    Reset {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
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
