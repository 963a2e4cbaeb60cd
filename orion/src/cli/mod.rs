//! orion's command line (feature `cli`): the standalone `orion` program, and the same commands
//! embedded in any program that contains flows, in one line.
//!
//! The commands that run flows (`deployment execute`, `flow run`, `agent start`, `serve`) must
//! live in the program the flows are compiled into, so the whole CLI is a library value:
//!
//! ```no_run
//! use orion::prelude::*;
//!
//! #[flow(name = "Addition Machine")]
//! async fn calculator(nums: Vec<i64>) -> i64 { nums.iter().sum() }
//!
//! fn main() -> std::process::ExitCode {
//!     orion::cli::Cli::new()
//!         .deployment(DeploymentSpec::new("my-first-deployment").flow(calculator)
//!             .parameters(json!({"nums": [1, 2, 3, 4]})))
//!         .main()
//! }
//! ```
//!
//! ```text
//! $ my-app deployment create
//! $ my-app deployment run 'Addition Machine/my-first-deployment' --param 'nums=[5, 6]'
//! $ my-app agent start --work-queue default
//! $ my-app flow-run ls --state Completed --output json
//! $ my-app concurrency-limit create database 2
//! ```
//!
//! A program with a clap CLI of its own mounts the commands as one subcommand with
//! [`Command`] and runs them with [`Cli::execute`]; tests call [`Cli::run`] with arguments and
//! buffers. Every command works against `ORION_DATABASE_URL` (default: the SQLite file
//! `~/.orion/orion.db`). Exit status: 0 success, 1 runtime failure (for `execute` and `flow run`,
//! also a run that did not complete), 2 bad input.

mod agent;
#[cfg(feature = "sqlite")]
mod database;
mod deployment;
mod flow;
mod flow_run;
mod limit;
mod output;
mod params;
mod schedule;
mod server;
mod work_queue;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::Orion;
use crate::deployment::DeploymentSpec;
use output::{CliResult, Failure, Out};

/// The commands, for a host program that mounts them under a subcommand of its own clap CLI
/// (`#[command(subcommand)] orion: orion::cli::Command`) and runs them with [`Cli::execute`].
#[derive(Subcommand, Debug)]
#[non_exhaustive]
pub enum Command {
    /// Create, list, run and manage deployments.
    #[command(subcommand)]
    Deployment(deployment::DeploymentCommand),
    /// The flows compiled into this program.
    #[command(subcommand)]
    Flow(flow::FlowCommand),
    /// List, inspect, follow, cancel and delete flow runs.
    #[command(subcommand, name = "flow-run")]
    FlowRun(flow_run::FlowRunCommand),
    /// Create and manage work queues.
    #[command(subcommand, name = "work-queue")]
    WorkQueue(work_queue::WorkQueueCommand),
    /// Create and manage concurrency limits: task tags, named limits, rate limits.
    #[command(subcommand, name = "concurrency-limit")]
    ConcurrencyLimit(limit::LimitCommand),
    /// Run an agent that executes the runs of work queues.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Serve everything in this process: scheduler, late runs, agent and reaper.
    Serve(agent::ServeArgs),
    /// Work with schedules.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// The REST API and the web dashboard.
    #[command(subcommand)]
    Server(server::ServerCommand),
    /// Inspect, reset, vacuum or upgrade the database (`ORION_DATABASE_URL`, default
    /// `~/.orion/orion.db`).
    #[cfg(feature = "sqlite")]
    Database(database::DatabaseArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: Shell,
    },
}

/// Shells with completion scripts.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Shell {
    /// Bash.
    Bash,
    /// Zsh.
    Zsh,
    /// Fish.
    Fish,
}

/// Listing and inspect output: a table for people, JSON for programs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns.
    #[default]
    Table,
    /// Pretty-printed JSON with stable field names (Prefect's where Prefect has them).
    Json,
}

pub use agent::{AgentArgs, AgentCommand, ServeArgs};
#[cfg(feature = "sqlite")]
pub use database::{DatabaseArgs, DatabaseCommand};
pub use deployment::{DeploymentCommand, ScheduleCommand as DeploymentScheduleCommand};
pub use flow::FlowCommand;
pub use flow_run::FlowRunCommand;
pub use limit::LimitCommand;
pub use schedule::ScheduleCommand;
pub use work_queue::WorkQueueCommand;

#[derive(Parser)]
#[command(version, about = "Workflow orchestration for Rust programs")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

/// The command line of a program: its declared deployments and the flows compiled into it.
#[derive(Default)]
pub struct Cli {
    name: Option<String>,
    deployments: Vec<DeploymentSpec>,
    /// Writing to the process's own standard output ([`Cli::main`]): tables may be coloured
    /// and sized to the terminal. Output to buffers never is.
    on_stdout: bool,
}

impl Cli {
    /// The CLI of this program, with the flows compiled into it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a deployment: `deployment create` with no file applies the declared ones.
    #[must_use]
    pub fn deployment(mut self, spec: DeploymentSpec) -> Self {
        self.deployments.push(spec);
        self
    }

    /// Declares several deployments.
    #[must_use]
    pub fn deployments(mut self, specs: impl IntoIterator<Item = DeploymentSpec>) -> Self {
        self.deployments.extend(specs);
        self
    }

    /// Names the program in messages and help (default: the name it was started as).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Runs the command line on the process's arguments and returns the exit status. Builds
    /// its own tokio runtime: call it from a plain `fn main`, not inside a runtime (there,
    /// await [`Cli::run_async`]).
    pub fn main(mut self) -> ExitCode {
        self.on_stdout = true;
        let mut input = std::io::stdin().lock();
        let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
        ExitCode::from(self.run_with_input(std::env::args_os(), &mut out, &mut err, &mut input))
    }

    /// Runs the command line on `args` (the first is the program's name), writing to `out`
    /// and `err`; returns the exit status. Builds its own tokio runtime.
    pub fn run<I, T>(&self, args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        self.run_with_input(args, out, err, &mut std::io::empty())
    }

    /// [`Cli::run`], reading confirmations from `input`.
    pub fn run_with_input<I, T>(
        &self,
        args: I,
        out: &mut dyn Write,
        err: &mut dyn Write,
        input: &mut dyn std::io::BufRead,
    ) -> u8
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let (command, program) = match self.parse(args, out, err) {
            Ok(parsed) => parsed,
            Err(code) => return code,
        };
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = writeln!(err, "error: cannot start the async runtime: {e}");
                return 1;
            }
        };
        runtime.block_on(self.execute_with_input(command, program, out, err, input))
    }

    /// [`Cli::run`] inside a tokio runtime the caller already has.
    pub async fn run_async<I, T>(&self, args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        match self.parse(args, out, err) {
            Ok((command, program)) => {
                self.execute_with_input(command, program, out, err, &mut std::io::empty())
                    .await
            }
            Err(code) => code,
        }
    }

    /// Runs one parsed command (a host program's mounted subcommand); returns the exit
    /// status.
    pub async fn execute(&self, command: Command, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
        let program = self.program_name(std::env::args_os().next().as_ref());
        self.execute_with_input(command, program, out, err, &mut std::io::empty())
            .await
    }

    /// The command and the name the program goes by: [`Cli::name`], else the first argument.
    fn parse<I, T>(
        &self,
        args: I,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<(Command, String), u8>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let name = self.program_name(args.first());
        if args.is_empty() {
            args.push(name.clone().into());
        }
        let parsed = Args::command()
            .name(name.clone())
            .bin_name(name.clone())
            .try_get_matches_from(args)
            .and_then(|m| <Args as clap::FromArgMatches>::from_arg_matches(&m));
        match parsed {
            Ok(a) => Ok((a.command, name)),
            Err(e) => {
                let _ = if e.use_stderr() {
                    write!(err, "{}", e.render())
                } else {
                    write!(out, "{}", e.render())
                };
                Err(if e.use_stderr() { 2 } else { 0 })
            }
        }
    }

    fn program_name(&self, first: Option<&std::ffi::OsString>) -> String {
        self.name.clone().unwrap_or_else(|| {
            first
                .map(std::path::Path::new)
                .and_then(|p| p.file_name())
                .map_or_else(|| "orion".into(), |n| n.to_string_lossy().into_owned())
        })
    }

    async fn execute_with_input(
        &self,
        command: Command,
        program: String,
        out: &mut dyn Write,
        err: &mut dyn Write,
        input: &mut dyn std::io::BufRead,
    ) -> u8 {
        let mut o = Out {
            out,
            err,
            program,
            colour: self.on_stdout && output::colour_allowed(),
            width: if self.on_stdout {
                output::terminal_width()
            } else {
                None
            },
        };
        let result = self.dispatch(command, &mut o, input).await;
        let _ = o.out.flush();
        match result {
            Ok(()) => 0,
            Err(failure) => {
                let _ = writeln!(o.err, "error: {}", failure.message());
                failure.code()
            }
        }
    }

    async fn dispatch(
        &self,
        command: Command,
        o: &mut Out<'_>,
        #[allow(unused_variables)] input: &mut dyn std::io::BufRead,
    ) -> CliResult {
        match command {
            Command::Schedule(cmd) => schedule::run(cmd, o.out).map_err(Failure::Input),
            #[cfg(feature = "sqlite")]
            Command::Database(cmd) => database::run(cmd, o.out, input)
                .await
                .map_err(Failure::Input),
            Command::Completions { shell } => {
                let mut cmd = Args::command();
                let shell = match shell {
                    Shell::Bash => clap_complete::Shell::Bash,
                    Shell::Zsh => clap_complete::Shell::Zsh,
                    Shell::Fish => clap_complete::Shell::Fish,
                };
                clap_complete::generate(shell, &mut cmd, o.program.clone(), o.out);
                Ok(())
            }
            Command::Flow(cmd) => flow::run(cmd, o).await,
            Command::Deployment(cmd) => deployment::run(self, cmd, o).await,
            Command::FlowRun(cmd) => flow_run::run(cmd, o).await,
            Command::WorkQueue(cmd) => work_queue::run(cmd, o).await,
            Command::ConcurrencyLimit(cmd) => limit::run(cmd, o).await,
            Command::Agent(cmd) => agent::run_agent(cmd, o).await,
            Command::Serve(args) => agent::serve(args, o).await,
            Command::Server(cmd) => server::run(cmd, o).await,
        }
    }
}

/// Fails with the two lines that embed the CLI when this program has no flows.
fn needs_flows(o: &Out<'_>, what: &str) -> CliResult {
    if !crate::registry::flows().is_empty() {
        return Ok(());
    }
    let name = &o.program;
    Err(Failure::Input(format!(
        "{what} needs the flows, and '{name}' contains none. Flows are compiled into your \
             own program: embed this command line there, in its main function:\n\n    \
             fn main() -> std::process::ExitCode {{\n        \
             orion::cli::Cli::new().main()\n    }}\n\n\
             then run `cargo run -- <command>` in that program."
    )))
}

/// The runtime every command works against: `ORION_DATABASE_URL`, default `~/.orion/orion.db`.
async fn open() -> CliResult<Orion> {
    Orion::from_env().await.map_err(|e| {
        Failure::Runtime(format!(
            "cannot open the database {}: {e}",
            crate::store::redact_url(&Orion::url_from_env())
        ))
    })
}

/// The standalone `orion` program (it contains no flows): runs on the process's arguments.
pub fn main() -> ExitCode {
    Cli::new().name("orion").main()
}

/// Runs the standalone `orion` on `args` (the first is the program's name), writing to `out`
/// and `err`; returns the exit status.
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::new().run(args, out, err)
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
    Cli::new().run_with_input(args, out, err, input)
}
