//! `agent start` and `serve`: long-running services, stopped cleanly by Ctrl-C (SIGINT) or
//! SIGTERM — runs in progress finish or are handed back within the agent's grace period.

use clap::{Args, Subcommand};

use super::output::{CliResult, Failure, Out};
use super::{needs_flows, open};
use crate::services::{Agent, LateRuns, Reaper, Scheduler};

/// `agent …`
#[derive(Subcommand, Debug)]
#[non_exhaustive]
pub enum AgentCommand {
    /// Executes the due runs of work queues until stopped (Ctrl-C or SIGTERM).
    Start(AgentArgs),
}

/// What an agent serves.
#[derive(Args, Debug)]
#[non_exhaustive]
pub struct AgentArgs {
    /// A work queue to take runs from; repeatable (default: `default`).
    #[arg(long = "work-queue", short = 'q')]
    pub work_queues: Vec<String>,
    /// At most this many runs at once.
    #[arg(long)]
    pub limit: Option<usize>,
    /// The agent's name, as queues record their last poll (default: generated).
    #[arg(long)]
    pub name: Option<String>,
}

/// `serve`: the scheduler, late-run marking, the reaper and an agent in this process.
#[derive(Args, Debug)]
#[non_exhaustive]
pub struct ServeArgs {
    /// The agent.
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Do not run an agent (scheduler, late runs and reaper only).
    #[arg(long)]
    pub no_agent: bool,
    /// Also serve the REST API and the dashboard on this address (`127.0.0.1:4200`).
    #[arg(long, value_name = "ADDR")]
    pub api: Option<std::net::SocketAddr>,
}

impl AgentArgs {
    fn agent(&self) -> Agent {
        let mut agent = Agent::new();
        for q in &self.work_queues {
            agent = agent.work_queue(q.clone());
        }
        if let Some(limit) = self.limit {
            agent = agent.limit(limit);
        }
        if let Some(name) = &self.name {
            agent = agent.name(name.clone());
        }
        agent
    }

    fn queues(&self) -> String {
        if self.work_queues.is_empty() {
            "default".into()
        } else {
            self.work_queues.join(", ")
        }
    }
}

pub(super) async fn run_agent(cmd: AgentCommand, o: &mut Out<'_>) -> CliResult {
    let AgentCommand::Start(args) = cmd;
    needs_flows(o, "agent start")?;
    let orion = open().await?;
    let stop = stop_signal();
    o.line(format!(
        "Starting agent on work queue(s) {} of {}; stop it with Ctrl-C",
        args.queues(),
        crate::store::redact_url(&crate::Orion::url_from_env())
    ))?;
    o.out.flush()?;
    orion
        .serve()
        .scheduler(None)
        .late_runs(None)
        .reaper(None)
        .agent(args.agent())
        .run_until(stop)
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    o.line("Agent stopped.")
}

pub(super) async fn serve(args: ServeArgs, o: &mut Out<'_>) -> CliResult {
    if !args.no_agent {
        needs_flows(o, "serve")?;
    }
    let orion = open().await?;
    let mut serve = orion
        .serve()
        .scheduler(Scheduler::new())
        .late_runs(LateRuns::new())
        .reaper(Reaper::new());
    if !args.no_agent {
        serve = serve.agent(args.agent.agent());
    }
    if let Some(addr) = args.api {
        serve = serve.api(addr);
    }
    let stop = stop_signal();
    o.line(format!(
        "Serving {}: scheduler, late runs, reaper{}; stop with Ctrl-C",
        crate::store::redact_url(&crate::Orion::url_from_env()),
        if args.no_agent {
            String::new()
        } else {
            format!(" and an agent on work queue(s) {}", args.agent.queues())
        }
    ))?;
    if let Some(addr) = args.api {
        o.line(format!("Dashboard and API on http://{addr}"))?;
    }
    o.out.flush()?;
    serve
        .run_until(stop)
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    o.line("Stopped.")
}

/// A future that resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM. The handlers are
/// installed when this is called, so a signal that comes before the future is first polled
/// (while the command is still printing that it started) is not lost.
pub(super) fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt()).ok();
        let mut term = signal(SignalKind::terminate()).ok();
        async move {
            tokio::select! {
                () = received(int.as_mut()) => {}
                () = received(term.as_mut()) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Resolves when `signal` arrives; never when it could not be installed.
#[cfg(unix)]
async fn received(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
