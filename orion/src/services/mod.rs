//! The services that make deployments run by themselves: the [`Scheduler`] creates their
//! runs ahead, [`LateRuns`] marks overdue ones, [`Agent`]s claim due runs from work queues
//! and execute them, and the [`Reaper`] finds runs whose agent died.
//!
//! [`Orion::serve`] runs any subset of them in the host's tokio runtime under one supervisor,
//! until a shutdown signal; each is also usable alone (`Agent::run`, `Scheduler::run_once`,
//! …). Services talk to the store only through [`crate::OrionClient`], and run flows only
//! through the [`crate::registry`].
//!
//! ```no_run
//! use orion::prelude::*;
//!
//! #[flow(name = "Addition Machine")]
//! async fn calculator(nums: Vec<i64>) -> i64 { nums.iter().sum() }
//!
//! # #[tokio::main] async fn main() -> orion::Result<()> {
//! let orion = Orion::from_env().await?;
//! DeploymentSpec::new("every-15-minutes")
//!     .flow(calculator)
//!     .parameters(json!({"nums": [1, 2, 3, 4]}))
//!     .schedule(CronSchedule::new("*/15 * * * *")?)
//!     .apply(orion.client())
//!     .await?;
//! orion
//!     .serve()
//!     .agent(Agent::new().work_queue("default"))
//!     .run_until(tokio::signal::ctrl_c())
//!     .await
//! # }
//! ```

mod agent;
mod late_runs;
mod reaper;
mod scheduler;

use std::future::{Future, IntoFuture};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

pub use agent::Agent;
pub use late_runs::LateRuns;
pub use reaper::Reaper;
pub use scheduler::{Scheduler, SchedulerPass};

use crate::store::LogLevel;
use crate::{Orion, Result};

/// Tells running services to stop; cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A signal and the switch that fires it.
    pub fn new() -> (ShutdownSwitch, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownSwitch(tx), Shutdown(rx))
    }

    /// Whether shutdown was asked for.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is asked for (or the switch is gone).
    pub async fn requested(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `d`, or less if shutdown is asked for meanwhile; `true` when it was.
    pub(crate) async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => self.is_requested(),
            () = self.requested() => true,
        }
    }
}

/// Fires a [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownSwitch(watch::Sender<bool>);

impl ShutdownSwitch {
    /// Asks every service holding the signal to stop.
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

/// Prints a service's log line in the run-log console format (`orion.agent - …`).
pub(crate) fn log(level: LogLevel, source: &str, message: &str) {
    if crate::logging::should_print(level) {
        crate::logging::print(jiff::Timestamp::now(), level, source, message);
    }
}

/// The services to run, built by [`Orion::serve`].
///
/// By default it runs the scheduler, the late-runs marker and the reaper; add one agent or
/// more with [`Serve::agent`]. Each service's settings come from its own builder.
#[must_use = "call .run_until(signal) or .start() to run the services"]
#[derive(Debug)]
pub struct Serve {
    orion: Orion,
    scheduler: Option<Scheduler>,
    late_runs: Option<LateRuns>,
    reaper: Option<Reaper>,
    agents: Vec<Agent>,
    #[cfg(feature = "server")]
    api: Option<crate::server::Api>,
}

impl Orion {
    /// The services that run deployments, on this runtime: see [`Serve`].
    pub fn serve(&self) -> Serve {
        Serve {
            orion: self.clone(),
            scheduler: Some(Scheduler::new()),
            late_runs: Some(LateRuns::new()),
            reaper: Some(Reaper::new()),
            agents: Vec::new(),
            #[cfg(feature = "server")]
            api: None,
        }
    }
}

impl Serve {
    /// Adds an agent.
    pub fn agent(mut self, agent: Agent) -> Self {
        self.agents.push(agent);
        self
    }
    /// Runs the scheduler with these settings (`None`: not at all).
    pub fn scheduler(mut self, scheduler: impl Into<Option<Scheduler>>) -> Self {
        self.scheduler = scheduler.into();
        self
    }
    /// Runs the late-runs marker with these settings (`None`: not at all).
    pub fn late_runs(mut self, late_runs: impl Into<Option<LateRuns>>) -> Self {
        self.late_runs = late_runs.into();
        self
    }
    /// Runs the reaper with these settings (`None`: not at all).
    pub fn reaper(mut self, reaper: impl Into<Option<Reaper>>) -> Self {
        self.reaper = reaper.into();
        self
    }

    /// Serves the REST API and the dashboard on `addr` beside the services (feature
    /// `server`), with the token `ORION_API_TOKEN` names: see [`crate::server`]. For other
    /// settings, [`Serve::api_with`].
    #[cfg(feature = "server")]
    pub fn api(self, addr: std::net::SocketAddr) -> Self {
        self.api_with(crate::server::Api::new(addr))
    }
    /// Serves the REST API and the dashboard with these settings (feature `server`).
    #[cfg(feature = "server")]
    pub fn api_with(mut self, api: crate::server::Api) -> Self {
        self.api = Some(api);
        self
    }

    /// Starts the services in the current tokio runtime; the handle stops them.
    pub fn start(self) -> ServeHandle {
        let (switch, signal) = Shutdown::new();
        let mut tasks = JoinSet::new();
        let orion = self.orion;
        if let Some(s) = self.scheduler {
            tasks.spawn(s.run(orion.clone(), signal.clone()));
        }
        if let Some(l) = self.late_runs {
            tasks.spawn(l.run(orion.clone(), signal.clone()));
        }
        if let Some(r) = self.reaper {
            tasks.spawn(r.run(orion.clone(), signal.clone()));
        }
        for a in self.agents {
            tasks.spawn(a.run(orion.clone(), signal.clone()));
        }
        #[cfg(feature = "server")]
        if let Some(api) = self.api {
            tasks.spawn(api.run(orion.clone(), signal.clone()));
        }
        ServeHandle { switch, tasks }
    }

    /// Runs the services until `signal` resolves (for example `tokio::signal::ctrl_c()`),
    /// then shuts them down gracefully: agents stop claiming and let their runs finish
    /// within their grace period.
    ///
    /// # Errors
    ///
    /// The first error a service stopped with.
    pub async fn run_until<F: IntoFuture>(self, signal: F) -> Result<()> {
        let handle = self.start();
        let _ = signal.into_future().await;
        handle.shutdown().await
    }
}

/// Running services; [`ServeHandle::shutdown`] stops them.
#[derive(Debug)]
pub struct ServeHandle {
    switch: ShutdownSwitch,
    tasks: JoinSet<Result<()>>,
}

impl ServeHandle {
    /// Stops every service and waits for them (agents let their runs finish within their
    /// grace period first).
    ///
    /// # Errors
    ///
    /// The first error a service stopped with.
    pub async fn shutdown(mut self) -> Result<()> {
        self.switch.fire();
        let mut first = Ok(());
        while let Some(done) = self.tasks.join_next().await {
            let result = done.unwrap_or_else(|e| {
                Err(crate::Error::Aborted {
                    reason: format!("a service stopped: {e}"),
                })
            });
            if first.is_ok() {
                first = result;
            }
        }
        first
    }

    /// Resolves when every service has stopped by itself (they do only on shutdown or error).
    ///
    /// # Errors
    ///
    /// The first error a service stopped with.
    pub async fn wait(self) -> Result<()> {
        let ServeHandle { switch, mut tasks } = self;
        let mut first = Ok(());
        while let Some(done) = tasks.join_next().await {
            if let (Ok(Err(e)), true) = (done, first.is_ok()) {
                first = Err(e);
            }
        }
        drop(switch);
        first
    }
}

/// Runs `pass` every `every` until shutdown; a failed pass is logged and tried again next
/// time (a service never stops for a store error).
pub(crate) async fn every<F, Fut>(
    source: &'static str,
    every: Duration,
    mut shutdown: Shutdown,
    mut pass: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    loop {
        if shutdown.is_requested() {
            return Ok(());
        }
        if let Err(e) = pass().await {
            log(LogLevel::Error, source, &format!("pass failed: {e}"));
        }
        if shutdown.sleep(every).await {
            return Ok(());
        }
    }
}
