//! [`Orion`]: the embedded runtime handle.

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::sync::{Arc, Mutex, OnceLock};

use crate::engine::context;
use crate::logging::LogBuffer;
use crate::store::{Flow, MemoryStore, Store};
use crate::{Clock, OrionClient, Result};

tokio::task_local! {
    static AMBIENT: Orion;
}

/// The embedded runtime: a store, the client over it, and the run-log buffer.
///
/// Flow calls run on the *ambient* runtime: the one of the enclosing [`Orion::scope`], else
/// the process-wide default ([`Orion::default_runtime`], the SQLite file `~/.orion/orion.db`
/// unless `ORION_DATABASE_URL` says otherwise). A `FlowCall` can also be
/// pointed at one explicitly with `.on(&orion)`. Cheap to clone.
///
/// ```
/// use orion::prelude::*;
///
/// #[flow]
/// async fn hello() {}
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> orion::Result<()> {
/// # orion::logging::set_console_level(None);
/// let orion = Orion::memory();
/// let state = orion.scope(hello().return_state()).await;
/// assert!(state.is_completed());
/// assert_eq!(orion.client().read_flow_runs(&Default::default()).await?.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Orion {
    inner: Arc<Inner>,
}

struct Inner {
    client: OrionClient,
    logs: LogBuffer,
    flows: Mutex<HashMap<&'static str, Flow>>,
}

impl std::fmt::Debug for Orion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orion").finish_non_exhaustive()
    }
}

impl Orion {
    /// A runtime over a new in-memory store.
    pub fn memory() -> Self {
        Self::with_store(Arc::new(MemoryStore::new()))
    }

    /// A runtime over any store.
    pub fn with_store(store: Arc<dyn Store>) -> Self {
        Self::with_store_and_clock(store, Clock::System)
    }

    /// A runtime over any store, reading time from `clock`.
    pub fn with_store_and_clock(store: Arc<dyn Store>, clock: Clock) -> Self {
        Orion {
            inner: Arc::new(Inner {
                client: OrionClient::with_clock(store, clock),
                logs: LogBuffer::default(),
                flows: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A runtime over the store a URL names: `memory://`, `sqlite://PATH` (feature
    /// `sqlite`; the file and its directory are created when missing), optionally
    /// `sqlite://PATH?synchronous=normal` (see [`crate::store::Durability`]),
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (feature `postgres`: one database shared
    /// by every process on every machine), or `http://HOST:PORT/api` (feature `remote`: the
    /// store of an orion server, with the token `ORION_API_TOKEN` names; flows, agents and
    /// the client work as over a local store).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Setting`] for an unknown scheme, store errors for a file that cannot
    /// be used.
    pub async fn open(url: &str) -> Result<Self> {
        Ok(Self::with_store(crate::store::connect(url).await?))
    }

    /// [`Orion::open`] for code outside async: opening a file store does blocking I/O.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Setting`] for an unknown scheme, store errors for a file that cannot
    /// be used.
    pub fn open_blocking(url: &str) -> Result<Self> {
        Ok(Self::with_store(crate::store::connect_blocking(url)?))
    }

    /// The process-wide default runtime, created on first use from the environment (see
    /// [`Orion::from_env`]): by default the SQLite file `~/.orion/orion.db`, as Prefect's
    /// default is its local database.
    ///
    /// When that store cannot be opened, the error is printed and the default runtime keeps
    /// its records in memory instead: calling a flow never fails for it.
    pub fn default_runtime() -> &'static Orion {
        static DEFAULT: OnceLock<Orion> = OnceLock::new();
        DEFAULT.get_or_init(|| {
            Orion::from_env_blocking().unwrap_or_else(|e| {
                eprintln!("orion: {e}; keeping this program's runs in memory instead");
                Orion::memory()
            })
        })
    }

    /// The database URL the environment names: `ORION_DATABASE_URL` (`memory://` or
    /// `sqlite://PATH`), else `sqlite://$ORION_HOME/orion.db` with `ORION_HOME` defaulting to
    /// `~/.orion`.
    pub fn database_url_from_env() -> String {
        if let Ok(url) = std::env::var("ORION_DATABASE_URL") {
            if !url.trim().is_empty() {
                return url.trim().to_owned();
            }
        }
        let home = std::env::var_os("ORION_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".orion"))
            })
            .unwrap_or_else(|| std::path::PathBuf::from(".orion"));
        format!("sqlite://{}", home.join("orion.db").display())
    }

    /// The URL of the store a runtime opened from the environment uses: `ORION_API_URL` (an
    /// orion server, `http://HOST:4200/api`, feature `remote`) when set, else
    /// [`Orion::database_url_from_env`].
    pub fn url_from_env() -> String {
        match std::env::var("ORION_API_URL") {
            Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
            _ => Self::database_url_from_env(),
        }
    }

    /// A runtime over the store the environment names ([`Orion::url_from_env`]): an orion
    /// server when `ORION_API_URL` is set, else by default the SQLite file
    /// `~/.orion/orion.db`.
    ///
    /// # Errors
    ///
    /// As [`Orion::open`].
    pub async fn from_env() -> Result<Self> {
        Self::open(&Self::url_from_env()).await
    }

    /// [`Orion::from_env`] for code outside async.
    ///
    /// # Errors
    ///
    /// As [`Orion::open_blocking`].
    pub fn from_env_blocking() -> Result<Self> {
        Self::open_blocking(&Self::url_from_env())
    }

    /// The runtime code runs under now: the current run's, else the enclosing
    /// [`Orion::scope`]'s, else [`Orion::default_runtime`].
    pub fn current() -> Orion {
        if let Some(ctx) = context::current() {
            return ctx.orion().clone();
        }
        AMBIENT
            .try_with(Orion::clone)
            .unwrap_or_else(|_| Self::default_runtime().clone())
    }

    /// Runs `fut` with this runtime as the ambient one: every flow and task called inside it
    /// (that is not already part of a run) is recorded here.
    pub fn scope<F: IntoFuture>(&self, fut: F) -> impl Future<Output = F::Output> {
        AMBIENT.scope(self.clone(), fut.into_future())
    }

    /// The client over this runtime's store.
    pub fn client(&self) -> &OrionClient {
        &self.inner.client
    }

    /// Writes buffered run logs to the store now and waits until everything written so far
    /// is durable. Every top-level flow run does this when it ends.
    ///
    /// A store failure is reported on standard error: losing log lines must not fail a run.
    pub async fn flush_logs(&self) {
        self.write_logs().await;
        if let Err(e) = self.inner.client.flush().await {
            eprintln!("orion: {e}");
        }
    }

    /// Hands buffered run logs to the store (which may queue them).
    async fn write_logs(&self) {
        let logs = self.inner.logs.take();
        if logs.is_empty() {
            return;
        }
        if let Err(e) = self.inner.client.write_logs(logs).await {
            eprintln!("orion: could not store run logs: {e}");
        }
    }

    /// Writes the buffered log lines after [`crate::logging::FLUSH_EVERY`], on the current
    /// tokio runtime (outside one, they wait for the engine's next drain).
    pub(crate) fn write_logs_soon(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.inner.logs.unschedule();
            return;
        };
        let orion = self.clone();
        handle.spawn(async move {
            tokio::time::sleep(crate::logging::FLUSH_EVERY).await;
            orion.inner.logs.unschedule();
            orion.write_logs().await;
        });
    }

    pub(crate) async fn flush_logs_if_full(&self) {
        if self.inner.logs.len() >= crate::logging::FLUSH_AT {
            self.write_logs().await;
        }
    }

    pub(crate) fn logs(&self) -> &LogBuffer {
        &self.inner.logs
    }

    /// Runs a deployment's flow now, in this process, with its parameters — Prefect's
    /// `prefect deployment execute` — and returns the final state. The run is created from the
    /// deployment first, so it carries the deployment's id, tags and work queue.
    ///
    /// # Errors
    ///
    /// [`crate::Error::NotFound`] for an unknown deployment, [`crate::Error::UnknownFlow`]
    /// when its flow is not compiled into this program, [`crate::Error::InvalidParameters`].
    pub async fn execute_deployment(&self, full_name: &str) -> Result<crate::State> {
        let deployment = self.client().read_deployment_by_name(full_name).await?;
        let flow = crate::registry::require(&deployment.flow_name)?;
        let run = self
            .client()
            .create_flow_run_from_deployment(&deployment, None)
            .await?;
        flow.run_existing(self, run).await
    }

    /// The stored flow record for `name`, created on first use and remembered.
    pub(crate) async fn flow_record(&self, name: &'static str) -> Result<Flow> {
        if let Some(flow) = self
            .inner
            .flows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(flow.clone());
        }
        let flow = self.inner.client.create_flow(name).await?;
        self.inner
            .flows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, flow.clone());
        Ok(flow)
    }
}
