//! `server start`: the REST API and the dashboard over the database, with the scheduler,
//! late-run marking and the reaper, until Ctrl-C or SIGTERM.

use std::net::{IpAddr, SocketAddr};

use clap::{Args, Subcommand};

use super::agent::stop_signal;
use super::output::{CliResult, Failure, Out};
use crate::Orion;
use crate::server::Api;
use crate::services::Shutdown;

/// `server …`
#[derive(Subcommand, Debug)]
#[non_exhaustive]
pub enum ServerCommand {
    /// Serves the REST API and the dashboard over the database until stopped (Ctrl-C or
    /// SIGTERM). Binding an address other than 127.0.0.1 needs ORION_API_TOKEN.
    Start(ServerArgs),
}

/// Where and what `server start` serves.
#[derive(Args, Debug)]
#[non_exhaustive]
pub struct ServerArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The port.
    #[arg(long, default_value_t = 4200)]
    pub port: u16,
    /// Serve the API and dashboard only: no scheduler, late-run marking or reaper.
    #[arg(long)]
    pub no_services: bool,
}

pub(super) async fn run(cmd: ServerCommand, o: &mut Out<'_>) -> CliResult {
    let ServerCommand::Start(args) = cmd;
    // The server serves its database: it never uses another server (ORION_API_URL) as store.
    let url = Orion::database_url_from_env();
    let shown = crate::store::redact_url(&url);
    let orion = Orion::open(&url)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot open the database {shown}: {e}")))?;
    let (switch, shutdown) = Shutdown::new();
    let (addr, serving) = Api::new(SocketAddr::new(args.host, args.port))
        .bind(&orion, shutdown)
        .await
        .map_err(|e| Failure::Input(e.to_string()))?;
    let mut services = orion.serve();
    if args.no_services {
        services = services.scheduler(None).late_runs(None).reaper(None);
    }
    let services = services.start();
    let stop = stop_signal();
    o.line(format!(
        "Orion server on http://{addr} over {shown}: dashboard http://{addr}/, API http://{addr}/api \
         (docs: /api/openapi.json){}; stop with Ctrl-C",
        if args.no_services { "" } else { "; scheduler, late runs and reaper running" }
    ))?;
    o.out.flush()?;
    let mut serving = tokio::spawn(serving);
    let ended = tokio::select! {
        () = stop => {
            switch.fire();
            (&mut serving).await
        }
        ended = &mut serving => ended,
    };
    let stopped = services.shutdown().await;
    match ended {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(Failure::Runtime(e.to_string())),
        Err(e) => return Err(Failure::Runtime(format!("the server stopped: {e}"))),
    }
    stopped.map_err(|e| Failure::Runtime(e.to_string()))?;
    o.line("Stopped.")
}
