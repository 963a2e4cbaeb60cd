//! The connection layer: the URL, the pool, prepared statements, and operations retried while
//! the database is out of reach.

use std::future::Future;
use std::time::{Duration, Instant};

use deadpool_postgres::{ClientWrapper, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, GenericClient, NoTls, Row};

use super::PostgresStore;
use crate::store::StoreError;

/// The parameters of a statement.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Why one attempt of an operation failed.
#[derive(Debug)]
pub(super) enum Fail {
    /// The database answered with an error, or the connection broke.
    Pg(tokio_postgres::Error),
    /// No connection could be had from the pool.
    Pool(deadpool_postgres::PoolError),
    /// The operation's own answer (not found, a conflict, a corrupt record).
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl From<deadpool_postgres::PoolError> for Fail {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Fail::Pool(e)
    }
}

/// Whether an error means the connection, not the operation, failed (or the server rolled the
/// transaction back to break a deadlock): the operation may succeed when tried again.
fn transient(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                ]
                .contains(code)
        }
        // No answer from the server: the socket failed or timed out.
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

impl Fail {
    fn transient(&self) -> bool {
        match self {
            Fail::Pg(e) => transient(e),
            Fail::Pool(deadpool_postgres::PoolError::Backend(e)) => transient(e),
            Fail::Pool(deadpool_postgres::PoolError::Timeout(_)) => true,
            Fail::Pool(_) | Fail::Store(_) => false,
        }
    }

    pub(super) fn into_store(self) -> StoreError {
        match self {
            Fail::Store(e) => e,
            Fail::Pg(e) => StoreError::Backend(format!("PostgreSQL: {}", message(&e))),
            Fail::Pool(deadpool_postgres::PoolError::Backend(e)) => {
                StoreError::Backend(format!("PostgreSQL: {}", message(&e)))
            }
            Fail::Pool(e) => StoreError::Backend(format!("PostgreSQL connection pool: {e}")),
        }
    }

    /// A foreign-key violation read as the missing record it names (a task run's flow run,
    /// a run's flow); any other failure as it is.
    pub(super) fn missing(self, what: &'static str, id: uuid::Uuid) -> Fail {
        match self.code() {
            Some(code) if *code == SqlState::FOREIGN_KEY_VIOLATION => {
                Fail::Store(StoreError::NotFound { what, id })
            }
            _ => self,
        }
    }

    /// The SQL state of a database error.
    pub(super) fn code(&self) -> Option<&SqlState> {
        match self {
            Fail::Pg(e) => e.code(),
            _ => None,
        }
    }
}

/// What an error says, with the server's message and the cause of a failed connection.
pub(super) fn message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// orion's own URL options, taken out before the rest goes to the driver.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub(crate) pool_size: usize,
}

/// Splits a `postgres://` URL into the driver's configuration and orion's options.
///
/// # Errors
///
/// A message naming what is wrong with the URL.
pub(crate) fn parse_url(url: &str) -> Result<(Config, Options), String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut options = Options { pool_size: 16 };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("pool_size", n)) => {
                options.pool_size = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        format!("pool_size must be a number from 1 to 1000, not {n:?}")
                    })?;
            }
            Some(("sslmode", mode)) if !matches!(mode, "disable" | "prefer") => {
                return Err(format!(
                    "sslmode={mode} needs TLS, which this build of orion does not have; use sslmode=disable on a trusted network"
                ));
            }
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: Config = rest.parse().map_err(|e: tokio_postgres::Error| {
        format!("not a valid PostgreSQL URL: {}", message(&e))
    })?;
    if config.get_dbname().is_none() {
        return Err("the URL names no database (postgres://USER@HOST/DATABASE)".into());
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    // A connection whose peer vanished (the network gone) fails within half a minute
    // instead of waiting for the kernel's retransmissions, so its operation is retried
    // (unless the URL says otherwise).
    let given = |key: &str| rest.contains(&format!("{key}="));
    if !given("keepalives_idle") {
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(30));
    }
    if config.get_application_name().is_none() {
        config.application_name("orion");
    }
    Ok((config, options))
}

/// The pools and what opened them.
pub(super) struct Db {
    /// Connections whose commits are durable when answered.
    pool: Pool,
    /// Connections whose commits are answered before they are flushed to disk
    /// (`synchronous_commit = off`): for the task-run writes and log lines of runs executing
    /// here. The server writes its log in order, so any later durable commit (the flow run's
    /// final state, a flush) makes them durable too; a server crash loses only a suffix of
    /// them, never leaves a gap, and never corrupts anything.
    fast: Pool,
    config: Config,
    describe: String,
}

/// The longest a store call waits for a free connection before trying again.
const POOL_WAIT: Duration = Duration::from_secs(10);

fn pool(config: Config, size: usize) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        // Waiting for a connection ends after a while, and the operation is tried again (a
        // pool timeout is transient): no store call waits for ever on a pool whose
        // connections are all held by callers that are themselves waiting.
        .wait_timeout(Some(POOL_WAIT))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Backend(format!("cannot make a connection pool: {e}")))
}

impl Db {
    /// Opens a pool on `url` and makes one connection, so a wrong address, password or
    /// database name is an error now, not at the first query.
    pub(super) async fn open(url: &str) -> Result<Db, StoreError> {
        let (config, options) = parse_url(url).map_err(StoreError::Backend)?;
        let describe = describe(&config);
        let mut fast = config.clone();
        let server_options = format!(
            "{} -c synchronous_commit=off",
            config.get_options().unwrap_or_default()
        );
        fast.options(server_options.trim_start());
        let db = Db {
            pool: pool(config.clone(), options.pool_size)?,
            fast: pool(fast, options.pool_size)?,
            config,
            describe,
        };
        let _first = db.get().await.map_err(|e| {
            StoreError::Backend(format!(
                "cannot connect to {}: {}",
                db.describe,
                e.into_store()
                    .to_string()
                    .trim_start_matches("store backend error: ")
            ))
        })?;
        Ok(db)
    }

    pub(super) fn config(&self) -> &Config {
        &self.config
    }

    pub(super) fn describe(&self) -> &str {
        &self.describe
    }

    /// A pooled connection whose commits are durable.
    pub(super) async fn get(&self) -> Result<deadpool_postgres::Object, Fail> {
        Ok(self.pool.get().await?)
    }

    /// A pooled connection whose commits are answered before they are durable (see
    /// [`Db::fast`]).
    pub(super) async fn get_fast(&self) -> Result<deadpool_postgres::Object, Fail> {
        Ok(self.fast.get().await?)
    }

    /// Decides whether a failed attempt is tried again (after a pause) or is the answer.
    pub(super) async fn again(
        &self,
        fail: Fail,
        attempt: u32,
        started: Instant,
    ) -> Result<(), StoreError> {
        if !fail.transient() || started.elapsed() >= PostgresStore::RETRY_FOR {
            return Err(fail.into_store());
        }
        let base = 50u64.saturating_mul(1 << attempt.min(6)).min(2000);
        let jitter = fastrand::u64(0..=base / 2);
        tokio::time::sleep(Duration::from_millis(base + jitter)).await;
        Ok(())
    }
}

/// Where a configuration points, for messages (never the password).
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "PostgreSQL at {host}:{port}, database {:?} as user {:?}",
        config.get_dbname().unwrap_or_default(),
        config.get_user().unwrap_or_default()
    )
}

/// Runs `$body` (an expression evaluated inside an async block, with `$conn` a pooled
/// connection and `$attempt` the attempt number, 0 first) again after a pause while it fails
/// for want of a connection, for up to [`PostgresStore::RETRY_FOR`].
/// `retrying!(db => get_fast, …)` runs it on a connection of the fast pool.
macro_rules! retrying {
    ($db:expr, |$conn:ident, $attempt:ident| $body:expr) => {
        $crate::store::postgres::db::retrying!($db => get, |$conn, $attempt| $body)
    };
    ($db:expr => $get:ident, |$conn:ident, $attempt:ident| $body:expr) => {{
        let db: &$crate::store::postgres::db::Db = $db;
        let started = std::time::Instant::now();
        let mut $attempt: u32 = 0;
        loop {
            let outcome: Result<_, $crate::store::postgres::db::Fail> = async {
                #[allow(unused_mut)]
                let mut $conn = db.$get().await?;
                $body
            }
            .await;
            match outcome {
                Ok(value) => break Ok(value),
                Err(fail) => match db.again(fail, $attempt, started).await {
                    Ok(()) => $attempt += 1,
                    Err(e) => break Err(e),
                },
            }
        }
    }};
}
pub(super) use retrying;

/// Statements on a connection or in a transaction, each prepared once per connection.
pub(super) trait Q: Sync {
    /// The prepared statement for `sql`.
    fn stmt(
        &self,
        sql: &str,
    ) -> impl Future<Output = Result<tokio_postgres::Statement, tokio_postgres::Error>> + Send;
    /// The connection to run it on.
    fn client(&self) -> &(impl tokio_postgres::GenericClient + Sync);

    fn rows(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> impl Future<Output = Result<Vec<Row>, Fail>> + Send {
        async move {
            let stmt = self.stmt(sql).await?;
            Ok(self.client().query(&stmt, params).await?)
        }
    }

    fn opt(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> impl Future<Output = Result<Option<Row>, Fail>> + Send {
        async move {
            let stmt = self.stmt(sql).await?;
            Ok(self.client().query_opt(&stmt, params).await?)
        }
    }

    fn one(&self, sql: &str, params: Params<'_>) -> impl Future<Output = Result<Row, Fail>> + Send {
        async move {
            let stmt = self.stmt(sql).await?;
            Ok(self.client().query_one(&stmt, params).await?)
        }
    }

    fn exec(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> impl Future<Output = Result<u64, Fail>> + Send {
        async move {
            let stmt = self.stmt(sql).await?;
            Ok(self.client().execute(&stmt, params).await?)
        }
    }

    /// The records (JSON in the first column) a query answers.
    fn bodies<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> impl Future<Output = Result<Vec<T>, Fail>> + Send {
        async move {
            self.rows(sql, params)
                .await?
                .iter()
                .map(|r| Ok(super::parse(r.try_get::<_, &str>(0)?)?))
                .collect()
        }
    }

    /// The record (JSON in the first column) a query answers, if any.
    fn body<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> impl Future<Output = Result<Option<T>, Fail>> + Send {
        async move {
            match self.opt(sql, params).await? {
                Some(r) => Ok(Some(super::parse(r.try_get::<_, &str>(0)?)?)),
                None => Ok(None),
            }
        }
    }
}

impl Q for ClientWrapper {
    fn stmt(
        &self,
        sql: &str,
    ) -> impl Future<Output = Result<tokio_postgres::Statement, tokio_postgres::Error>> + Send {
        self.prepare_cached(sql)
    }
    fn client(&self) -> &(impl tokio_postgres::GenericClient + Sync) {
        &**self
    }
}

impl Q for deadpool_postgres::Transaction<'_> {
    fn stmt(
        &self,
        sql: &str,
    ) -> impl Future<Output = Result<tokio_postgres::Statement, tokio_postgres::Error>> + Send {
        self.prepare_cached(sql)
    }
    fn client(&self) -> &(impl tokio_postgres::GenericClient + Sync) {
        &**self
    }
}
