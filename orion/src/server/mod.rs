//! The orion server (feature `server`): the REST API under `/api` and the web dashboard, over
//! a runtime. Run it beside agents with [`Serve::api`](crate::services::Serve::api), standalone
//! with `orion server start`, or mount [`Api::router`] in your own axum application.
//!
//! Bound to 127.0.0.1 by default; any other address needs a token (`ORION_API_TOKEN`), sent
//! as `Authorization: Bearer …` (the dashboard takes it once in its sign-in form, or from a
//! `/login?token=…` link, and keeps it in a same-site cookie). Request bodies are
//! size-limited; no CORS headers are sent, and actions need a JSON body (the sign-in form
//! excepted), so another site's page cannot act through a visitor's browser.

mod api;
mod auth;
mod error;
pub mod openapi;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;

use crate::services::Shutdown;
use crate::{Error, Orion, Result};

/// The address `orion server start` and [`Api::default`] bind: Prefect's port, this machine
/// only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:4200";

/// The largest request body accepted by default (1 MiB; a remote runtime's log batches fit).
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Whether the server is stopping: long-polling requests answer at once when it does.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stopping(Arc<(std::sync::atomic::AtomicBool, tokio::sync::Notify)>);

impl Stopping {
    fn fire(&self) {
        self.0.0.store(true, std::sync::atomic::Ordering::Release);
        self.0.1.notify_waiters();
    }

    /// Resolves once the server is stopping.
    pub(crate) async fn wait(&self) {
        let notified = self.0.1.notified();
        if self.0.0.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}

/// The API and dashboard server's settings.
#[derive(Debug, Clone)]
#[must_use]
pub struct Api {
    addr: SocketAddr,
    token: Option<Arc<str>>,
    body_limit: usize,
}

impl Default for Api {
    fn default() -> Self {
        Api::new(DEFAULT_ADDR.parse().unwrap_or_else(|_| unreachable!()))
    }
}

impl Api {
    /// Serve on `addr`, with the token `ORION_API_TOKEN` names, if any.
    pub fn new(addr: SocketAddr) -> Self {
        let token = std::env::var("ORION_API_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .map(|t| Arc::from(t.trim()));
        Api {
            addr,
            token,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
    /// Requires this bearer token on every request but `/api/health` (None: no token).
    pub fn token(mut self, token: Option<&str>) -> Self {
        self.token = token.filter(|t| !t.is_empty()).map(Arc::from);
        self
    }
    /// The largest request body accepted, in bytes (default 1 MiB). Remote runtimes send
    /// their task runs' writes in requests of up to 256 KiB (more only for one write that is
    /// larger by itself, such as a large task result): keep the limit above that.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
    /// The address it binds.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API and dashboard as an axum router over `orion`, with the token check and body
    /// limit: to serve it yourself or mount it in a larger application.
    pub fn router(&self, orion: &Orion) -> Router {
        self.app(orion, Stopping::default())
    }

    fn app(&self, orion: &Orion, stopping: Stopping) -> Router {
        let app = Router::new()
            .nest("/api", api::routes())
            .merge(ui::routes())
            .with_state(orion.clone())
            .layer(axum::Extension(stopping));
        auth::layer(app, self.token.clone()).layer(DefaultBodyLimit::max(self.body_limit))
    }

    /// Binds the address and serves until `shutdown` is requested; returns the bound address
    /// (the port chosen, when it was 0) once listening.
    ///
    /// # Errors
    ///
    /// [`Error::Setting`] when the address is not a loopback one and there is no token, or it
    /// cannot be bound.
    pub async fn bind(
        self,
        orion: &Orion,
        mut shutdown: Shutdown,
    ) -> Result<(
        SocketAddr,
        impl std::future::Future<Output = Result<()>> + Send + use<>,
    )> {
        let bad = |reason: String| Error::Setting {
            name: "API address",
            value: self.addr.to_string(),
            reason,
        };
        if !self.addr.ip().is_loopback() && self.token.is_none() {
            return Err(bad(
                "serving beyond this machine needs a token: set ORION_API_TOKEN".into(),
            ));
        }
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .map_err(|e| bad(format!("cannot bind: {e}")))?;
        let addr = listener.local_addr().map_err(|e| bad(e.to_string()))?;
        let stopping = Stopping::default();
        let app = self.app(orion, stopping.clone());
        // Small JSON answers go out at once rather than waiting to be coalesced (Nagle).
        let listener =
            axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
                let _ = tcp.set_nodelay(true);
            });
        let serving = async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    shutdown.requested().await;
                    // Long polls answer now, so the server stops without waiting for them.
                    stopping.fire();
                })
                .await
                .map_err(|e| Error::Aborted {
                    reason: format!("the API server stopped: {e}"),
                })
        };
        Ok((addr, serving))
    }

    /// Serves until `shutdown` is requested (the service [`Serve::api`](crate::services::Serve::api) runs).
    pub(crate) async fn run(self, orion: Orion, shutdown: Shutdown) -> Result<()> {
        match self.bind(&orion, shutdown).await {
            Ok((addr, serving)) => {
                crate::services::log(
                    crate::store::LogLevel::Info,
                    "orion.server",
                    &format!(
                        "API and dashboard on http://{addr} (API docs: http://{addr}/api/openapi.json)"
                    ),
                );
                serving.await
            }
            Err(e) => {
                crate::services::log(
                    crate::store::LogLevel::Error,
                    "orion.server",
                    &e.to_string(),
                );
                Err(e)
            }
        }
    }
}
