//! The PostgreSQL store through its public API: the conformance suite, opening (URLs,
//! passwords, missing databases, migrations raced by several processes' stores, a newer or a
//! foreign schema), wake-ups between stores, an agent executing a deployment, and connections
//! killed under a running flow. Each test gets a schema of its own on the test server (see
//! `support/postgres.rs`); without a server they skip.

use std::sync::Arc;
use std::time::Duration;

use orion::prelude::*;
use orion::store::{FlowRunFilter, PostgresStore, Store};

use crate::pg::{admin, fresh_url, server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_passes_the_conformance_suite() {
    let Some(server) = server() else { return };
    orion::store::testing::run_all(|| async {
        PostgresStore::connect(&fresh_url(&server, "conformance").await)
            .await
            .unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_passwords_and_databases_are_clear_errors() {
    let Some(server) = server() else { return };
    let err = |e: orion::Error| e.to_string();
    // Malformed: a setting error naming the URL, without its password.
    let e = err(Orion::open("postgres://orion:s3cret@localhost:notaport/db")
        .await
        .unwrap_err());
    assert!(e.contains("not a valid PostgreSQL URL"), "{e}");
    assert!(!e.contains("s3cret"), "the password leaked: {e}");
    let e = err(Orion::open("postgres://orion@localhost").await.unwrap_err());
    assert!(e.contains("names no database"), "{e}");
    let e = err(Orion::open("postgres://orion@localhost/db?pool_size=0")
        .await
        .unwrap_err());
    assert!(e.contains("pool_size"), "{e}");
    let e = err(Orion::open("postgres://orion@localhost/db?sslmode=require")
        .await
        .unwrap_err());
    assert!(e.contains("TLS"), "{e}");

    // Nothing listening there: says where it tried.
    let e = err(
        Orion::open("postgres://orion@127.0.0.1:1/orion?connect_timeout=2")
            .await
            .unwrap_err(),
    );
    assert!(
        e.contains("cannot connect to PostgreSQL at 127.0.0.1:1"),
        "{e}"
    );

    // A missing database, and a refused password, as the server says them.
    let missing = format!("{}_no_such_db", server.split('?').next().unwrap());
    let e = err(Orion::open(&missing).await.unwrap_err());
    assert!(e.contains("does not exist"), "{e}");
    let role = format!("orion_pw_{:x}", fastrand::u32(..));
    admin(
        &server,
        &format!("CREATE ROLE {role} LOGIN PASSWORD 'right'"),
    )
    .await;
    let (_, rest) = server.split_once("://").unwrap();
    let host_db = rest.split_once('@').map_or(rest, |(_, h)| h);
    let wrong = format!("postgres://{role}:wrong@{host_db}");
    let e = err(Orion::open(&wrong).await.unwrap_err());
    assert!(!e.contains(":wrong@"), "the password leaked: {e}");
    let authenticates = admin(
        &server,
        "SELECT count(*) FROM pg_hba_file_rules WHERE auth_method IN ('md5', 'scram-sha-256', 'password')",
    )
    .await;
    if authenticates[0].get::<_, i64>(0) > 0 {
        assert!(e.contains("password authentication failed"), "{e}");
    }
    admin(&server, &format!("DROP ROLE {role}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_opening_a_new_database_at_once_migrate_it_once() {
    let Some(server) = server() else { return };
    let url = fresh_url(&server, "race").await;
    let opens = (0..6).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { PostgresStore::connect(&url).await })
    });
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.unwrap().expect("every racing open succeeds"));
    }
    for store in &stores {
        assert_eq!(store.schema_version().await.unwrap(), 2);
    }
    // They share one database.
    let flow = stores[0]
        .upsert_flow(orion::store::Flow::new("shared"))
        .await
        .unwrap();
    assert_eq!(
        stores[5]
            .read_flow_by_name("shared")
            .await
            .unwrap()
            .map(|f| f.id),
        Some(flow.id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_or_foreign_schema_is_refused_untouched() {
    let Some(server) = server() else { return };
    let url = fresh_url(&server, "newer").await;
    let schema = schema_of(&url);
    PostgresStore::connect(&url).await.unwrap();
    admin(
        &server,
        &format!("UPDATE {schema}.orion_schema SET version = 99"),
    )
    .await;
    let e = PostgresStore::connect(&url).await.unwrap_err().to_string();
    assert!(
        e.contains("schema version 99") && e.contains("newer orion"),
        "{e}"
    );
    let version = admin(
        &server,
        &format!("SELECT version FROM {schema}.orion_schema"),
    )
    .await;
    assert_eq!(
        version[0].get::<_, i32>(0),
        99,
        "the newer database was altered"
    );

    let url = fresh_url(&server, "foreign").await;
    let schema = schema_of(&url);
    admin(&server, &format!("CREATE TABLE {schema}.flow_runs (x int)")).await;
    let e = PostgresStore::connect(&url).await.unwrap_err().to_string();
    assert!(e.contains("another program"), "{e}");
    let tables = admin(
        &server,
        &format!("SELECT count(*) FROM information_schema.tables WHERE table_schema = '{schema}'"),
    )
    .await;
    assert_eq!(
        tables[0].get::<_, i64>(0),
        1,
        "the foreign database was altered"
    );
}

fn schema_of(url: &str) -> String {
    url.split("search_path%3D")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned()
}

#[flow(name = "pg-hello")]
async fn pg_hello(name: String) -> String {
    tracing::info!("Hello {name}!");
    format!("Hello {name}!")
}

#[task]
async fn pg_step(i: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(20)).await;
    i * 2
}

#[flow(name = "pg-steps")]
async fn pg_steps(n: u64) -> u64 {
    let mut total = 0;
    for i in 0..n {
        total += pg_step(i).await;
    }
    total
}

/// A deployment made through one store is run by an agent on another (as on two machines):
/// the agent is woken by the notification, not by its (long) poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_on_another_store_runs_a_deployment_as_soon_as_it_is_due() {
    let Some(server) = server() else { return };
    let url = fresh_url(&server, "agent").await;
    let here = Orion::open(&url).await.unwrap();
    let there = Orion::open(&url).await.unwrap();
    let agent = Agent::new().poll_interval(Duration::from_secs(60));
    let serving = there
        .serve()
        .scheduler(None)
        .late_runs(None)
        .agent(agent)
        .start();
    // The agent's first look happens before anything exists.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deployment = DeploymentSpec::new("hello")
        .flow_name("pg-hello")
        .parameters(serde_json::json!({"name": "Leo"}))
        .apply(here.client())
        .await
        .unwrap();
    let run = here
        .client()
        .create_flow_run_from_deployment(&deployment, None)
        .await
        .unwrap();
    let done = wait_final(&here, run.id, Duration::from_secs(20)).await;
    assert!(done.state.as_ref().unwrap().is_completed(), "{done:?}");
    // The run's log lines are written after its final state: wait for them a little.
    let mut logs = Vec::new();
    for _ in 0..200 {
        logs = here
            .client()
            .read_logs(&orion::store::LogFilter::new().flow_run_id(run.id))
            .await
            .unwrap();
        if logs.iter().any(|l| l.message == "Hello Leo!") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(logs.iter().any(|l| l.message == "Hello Leo!"), "{logs:?}");
    // Well before the agent's 60 s poll: the notification woke it.
    let waited = done.start_time.unwrap().duration_since(run.created);
    assert!(waited < jiff::SignedDuration::from_secs(10), "{waited:?}");
    serving.shutdown().await.unwrap();
}

async fn wait_final(orion: &Orion, id: orion::Uuid, within: Duration) -> orion::store::FlowRun {
    let deadline = std::time::Instant::now() + within;
    loop {
        let run = orion.client().read_flow_run(id).await.unwrap().unwrap();
        if run.state.as_ref().is_some_and(State::is_final) || std::time::Instant::now() > deadline {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every connection of the store killed (`pg_terminate_backend`) again and again while a
/// flow runs: its writes are retried on new connections and it completes with every task run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_completes_while_its_connections_are_killed() {
    let Some(server) = server() else { return };
    let url = fresh_url(&server, "kill").await;
    // Its connections carry a name of their own: only they are killed, not other tests'.
    let name = format!("kill_{}", schema_of(&url));
    let url = format!("{url}&application_name={name}");
    let orion = Orion::open(&url).await.unwrap();
    let store: Arc<dyn Store> = orion.client().store().clone();
    let killer = tokio::spawn({
        let server = server.clone();
        async move {
            let mut killed = 0;
            for _ in 0..8 {
                tokio::time::sleep(Duration::from_millis(120)).await;
                let rows = admin(
                    &server,
                    &format!(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{name}'"
                    ),
                )
                .await;
                killed += rows[0].get::<_, i64>(0);
            }
            killed
        }
    });
    let total = pg_steps(40).on(&orion).await;
    let killed = killer.await.unwrap();
    assert_eq!(total, 2 * (0..40).sum::<u64>());
    assert!(killed > 0, "no connection was killed");
    let runs = store.read_flow_runs(&FlowRunFilter::new()).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].state.as_ref().unwrap().is_completed());
    let tasks = store
        .read_task_runs(&orion::store::TaskRunFilter::new().flow_run_id(runs[0].id))
        .await
        .unwrap();
    assert_eq!(tasks.len(), 40, "a task run was lost or doubled");
    for task in &tasks {
        let kinds: Vec<StateType> = store
            .read_task_run_states(task.id)
            .await
            .unwrap()
            .iter()
            .map(State::state_type)
            .collect();
        assert_eq!(
            kinds,
            [StateType::Pending, StateType::Running, StateType::Completed]
        );
    }
}

/// A TCP proxy to the test server that can cut the network: every connection through it
/// dropped, and new ones refused, until it is restored.
struct Proxy {
    port: u16,
    down: Arc<std::sync::atomic::AtomicBool>,
    links: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn to(server: &str) -> Proxy {
        let config: tokio_postgres::Config = server.parse().unwrap();
        let host = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            other => panic!("the proxy test needs a TCP server, not {other:?}"),
        };
        let upstream = format!(
            "{host}:{}",
            config.get_ports().first().copied().unwrap_or(5432)
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let links: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        tokio::spawn({
            let (down, links) = (down.clone(), links.clone());
            async move {
                loop {
                    let (mut inbound, _) = listener.accept().await.unwrap();
                    if down.load(std::sync::atomic::Ordering::SeqCst) {
                        continue; // dropped: the client sees its connection closed
                    }
                    let upstream = upstream.clone();
                    let link = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    links.lock().unwrap().push(link.abort_handle());
                }
            }
        });
        Proxy { port, down, links }
    }

    /// `server`'s URL, through the proxy.
    fn url(&self, server_url: &str) -> String {
        let config: tokio_postgres::Config = server_url.split('?').next().unwrap().parse().unwrap();
        let host = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            _ => unreachable!(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        server_url.replacen(
            &format!("{host}:{port}"),
            &format!("127.0.0.1:{}", self.port),
            1,
        )
    }

    fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The network to the server gone for two seconds under a running flow (every connection
/// dropped, new ones refused): the store reconnects with backoff and the flow completes with
/// every task run once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_completes_across_a_network_outage() {
    let Some(server) = server() else { return };
    let direct = fresh_url(&server, "outage").await;
    let proxy = Proxy::to(&server).await;
    let orion = Orion::open(&proxy.url(&direct)).await.unwrap();
    let outage = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.restore();
    };
    let started = std::time::Instant::now();
    let (total, ()) = tokio::join!(pg_steps(30).on(&orion), outage);
    assert_eq!(total, 2 * (0..30).sum::<u64>());
    // 30 tasks of 20 ms take 0.6 s: the flow waited out the outage, it did not miss it.
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Checked directly, not through the proxy.
    let store = PostgresStore::connect(&direct).await.unwrap();
    let runs = store.read_flow_runs(&FlowRunFilter::new()).await.unwrap();
    assert_eq!(runs.len(), 1);
    let history: Vec<StateType> = store
        .read_flow_run_states(runs[0].id)
        .await
        .unwrap()
        .iter()
        .map(State::state_type)
        .collect();
    assert_eq!(
        history,
        [StateType::Pending, StateType::Running, StateType::Completed]
    );
    let tasks = store
        .read_task_runs(&orion::store::TaskRunFilter::new().flow_run_id(runs[0].id))
        .await
        .unwrap();
    assert_eq!(tasks.len(), 30, "a task run was lost or doubled");
    assert!(
        tasks
            .iter()
            .all(|t| t.state.as_ref().unwrap().is_completed())
    );
}
