//! The `orion` command-line program (feature `cli`): thin commands over the library.
//!
//! ```text
//! orion schedule preview '{cron: "0 9 * * MON-FRI", timezone: Europe/Berlin}' --start 2026-03-27T00:00:00+01:00 -n 3
//! ```

#[cfg(feature = "sqlite")]
mod database;
mod schedule;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "orion",
    version,
    about = "Workflow orchestration for Rust programs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with schedules.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// Inspect or reset the database (`ORION_DATABASE_URL`, default `~/.orion/orion.db`).
    #[cfg(feature = "sqlite")]
    Database(database::DatabaseArgs),
}

/// Runs the program on the process's arguments; the exit code is 0 on success, 2 for bad
/// input.
pub fn main() -> ExitCode {
    let mut input = std::io::stdin().lock();
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    ExitCode::from(run_with_input(
        std::env::args_os(),
        &mut out,
        &mut err,
        &mut input,
    ))
}

/// Runs the program on `args` (the first is the program's name), writing to `out` and `err`;
/// returns the exit status.
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    run_with_input(args, out, err, &mut std::io::empty())
}

/// [`run`], reading confirmations from `input`.
pub fn run_with_input<I, T>(
    args: I,
    out: &mut dyn Write,
    err: &mut dyn Write,
    input: &mut dyn std::io::BufRead,
) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = if e.use_stderr() {
                write!(err, "{e}")
            } else {
                write!(out, "{e}")
            };
            return code;
        }
    };
    #[cfg(not(feature = "sqlite"))]
    let _ = input;
    let result = match cli.command {
        Command::Schedule(cmd) => schedule::run(cmd, out),
        #[cfg(feature = "sqlite")]
        Command::Database(cmd) => database::run(cmd, out, input),
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            let _ = writeln!(err, "error: {message}");
            2
        }
    }
}
