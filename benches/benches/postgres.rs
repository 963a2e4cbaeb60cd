//! The PostgreSQL store: pickup latency from a run becoming due to its flow starting in
//! another process; trivial flow runs per second with 1, 4, 16 and 64 concurrent runs spread
//! over 1, 2 and 4 agent processes; and the per-task-run overhead of a flow, beside SQLite's.
//!
//! `ORION_BENCH_POSTGRES_URL=postgres://USER@HOST:PORT/DB cargo bench -p benches --bench postgres`
//! (plain harness: percentiles and rates, not criterion; each measurement in a new schema)

#[path = "support/tempdb.rs"]
mod tempdb;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use orion::deployment::DeploymentRunOptions;
use orion::prelude::*;
use orion::store::{Deployment, SqliteStore};
use tempdb::TempDb;

/// Prints how late its body started after `at` (nanoseconds since the epoch), in latency
/// runs only (`at` > 0).
#[flow(name = "pg-bench-probe")]
async fn probe(at: i64) {
    if at > 0 {
        let late = Timestamp::now().as_nanosecond() as i64 - at;
        println!("LATE {late}");
    }
}

#[task]
async fn tiny(i: u64) -> u64 {
    i + 1
}

#[flow(name = "pg-bench-tasks")]
async fn many_tasks(n: u64) -> u64 {
    let mut total = 0;
    for i in 0..n {
        total += tiny(i).await;
    }
    total
}

async fn admin(server: &str, sql: &str) -> Vec<tokio_postgres::Row> {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let rows = client.query(sql, &[]).await.unwrap();
    drop(client);
    let _ = driver.await;
    rows
}

/// A new schema on the server, and the URL whose connections use it.
async fn fresh(server: &str) -> (String, String) {
    let schema = format!("bench_{:016x}", fastrand::u64(..));
    admin(server, &format!("CREATE SCHEMA {schema}")).await;
    let sep = if server.contains('?') { '&' } else { '?' };
    (
        format!("{server}{sep}options=-c%20search_path%3D{schema}"),
        schema,
    )
}

async fn deploy(orion: &Orion) -> Deployment {
    DeploymentSpec::new("bench")
        .flow(probe)
        .parameters(json!({"at": 0}))
        .apply(orion.client())
        .await
        .unwrap()
}

async fn schedule(orion: &Orion, d: &Deployment, at: Timestamp, probe_at: i64) {
    let options = DeploymentRunOptions::new()
        .scheduled_time(at)
        .parameters(json!({ "at": probe_at }));
    orion
        .client()
        .create_flow_run_from_deployment(d, Some(options))
        .await
        .unwrap();
}

/// An agent process on `url` taking up to `limit` runs at once, until its stdin closes.
fn spawn_agent(url: &str, limit: usize) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--agent", url, &limit.to_string()])
        .env("ORION_LOGGING_CONSOLE", "false")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // It says when it is serving.
    let mut out = BufReader::new(child.stdout.as_mut().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY");
    child
}

fn stop(mut child: Child) {
    drop(child.stdin.take());
    child.wait().unwrap();
}

async fn agent(url: &str, limit: usize) {
    let orion = Orion::open(url).await.unwrap();
    let handle = orion
        .serve()
        .scheduler(None)
        .late_runs(None)
        .reaper(None)
        .agent(Agent::new().limit(limit))
        .start();
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!("READY");
    std::io::stdout().flush().unwrap();
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 {}
    })
    .await
    .unwrap();
    handle.shutdown().await.unwrap();
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1e6
}

/// From a run's scheduled time (or its creation, when due at once) to its body starting in
/// an agent process.
async fn pickup(server: &str, n: usize, ahead: Duration) {
    let (url, _) = fresh(server).await;
    let orion = Orion::open(&url).await.unwrap();
    let d = deploy(&orion).await;
    let mut agent = spawn_agent(&url, 16);
    let mut lines = BufReader::new(agent.stdout.take().unwrap()).lines();
    let mut late = Vec::new();
    for _ in 0..n {
        let at = Timestamp::now() + SignedDuration::try_from(ahead).unwrap();
        schedule(&orion, &d, at, at.as_nanosecond() as i64).await;
        let line = tokio::task::block_in_place(|| lines.next().unwrap().unwrap());
        late.push(
            line.trim()
                .trim_start_matches("LATE ")
                .parse::<i64>()
                .unwrap(),
        );
    }
    stop(agent);
    late.sort_unstable();
    println!(
        "pickup in another process, scheduled {:>3} ms ahead   n={n:<4} p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
        ahead.as_millis(),
        percentile(&late, 0.5),
        percentile(&late, 0.99),
        percentile(&late, 1.0)
    );
}

/// `runs` trivial runs due at one instant, executed by `agents` processes that together run
/// `concurrency` at once: runs per second from that instant to the last Completed.
async fn throughput(server: &str, runs: usize, agents: usize, concurrency: usize) -> f64 {
    let (url, schema) = fresh(server).await;
    let orion = Orion::open(&url).await.unwrap();
    let d = deploy(&orion).await;
    let children: Vec<Child> = (0..agents)
        .map(|_| spawn_agent(&url, (concurrency / agents).max(1)))
        .collect();
    // Created ahead, all due at `at`: the agents sleep until then.
    let at =
        Timestamp::now() + SignedDuration::from_secs(2) + SignedDuration::from_millis(runs as i64);
    let creators: Vec<_> = (0..8)
        .map(|k| {
            let orion = orion.clone();
            let d = d.clone();
            tokio::spawn(async move {
                for _ in (k..runs).step_by(8) {
                    schedule(&orion, &d, at, 0).await;
                }
            })
        })
        .collect();
    for c in creators {
        c.await.unwrap();
    }
    let wait = at.duration_since(Timestamp::now());
    tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
    let started = Instant::now();
    // One connection for the counting (a new one each time would cost the server a process).
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let count = format!("SELECT count(*) FROM {schema}.flow_runs WHERE state_type = 'COMPLETED'");
    loop {
        let done: i64 = client.query_one(&count, &[]).await.unwrap().get(0);
        if done as usize >= runs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(client);
    let _ = driver.await;
    let rate = runs as f64 / started.elapsed().as_secs_f64();
    for c in children {
        stop(c);
    }
    rate
}

/// Microseconds per task run of a flow calling `n` trivial tasks one after another.
async fn per_task_run(orion: &Orion, n: u64, rounds: usize) -> f64 {
    many_tasks(10).on(orion).await;
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        many_tasks(n).on(orion).await;
        samples.push(started.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    orion::logging::set_console_level(None);
    if let Some(i) = args.iter().position(|a| a == "--agent") {
        rt.block_on(agent(&args[i + 1], args[i + 2].parse().unwrap()));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("postgres: bench");
        return;
    }
    let Some(server) = std::env::var("ORION_BENCH_POSTGRES_URL")
        .ok()
        .or_else(|| std::env::var("ORION_TEST_POSTGRES_URL").ok())
    else {
        println!("skipped: set ORION_BENCH_POSTGRES_URL to a PostgreSQL server to bench");
        return;
    };
    let quick = args.iter().any(|a| a == "--test");
    // `PG_BENCH_ONLY=AGENTS,CONCURRENCY`: that one throughput figure, nothing else.
    if let Ok(only) = std::env::var("PG_BENCH_ONLY") {
        let (agents, concurrency) = only.split_once(',').unwrap();
        let (agents, concurrency) = (agents.parse().unwrap(), concurrency.parse().unwrap());
        let rate = rt.block_on(throughput(&server, 3000, agents, concurrency));
        println!("{agents} agent process(es), {concurrency} concurrent runs: {rate:.0} runs/s");
        return;
    }
    rt.block_on(async {
        let n = if quick { 5 } else { 300 };
        pickup(&server, n, Duration::from_millis(200)).await;
        pickup(&server, n, Duration::ZERO).await;

        let runs = if quick { 50 } else { 3000 };
        println!(
            "\ntrivial flow runs per second, {runs} runs due at once (agents × concurrent runs):"
        );
        for agents in [1, 2, 4] {
            let mut row = format!("  {agents} agent process(es):");
            for concurrency in [1, 4, 16, 64] {
                let runs = if concurrency == 1 { runs / 5 } else { runs };
                let rate = throughput(&server, runs, agents, concurrency).await;
                row.push_str(&format!("  {concurrency:>2} → {rate:>6.0}/s"));
            }
            println!("{row}");
        }

        let (tasks, rounds) = if quick { (20, 1) } else { (1000, 5) };
        let (url, _) = fresh(&server).await;
        let pg = Orion::open(&url).await.unwrap();
        let db = TempDb::new("pg-bench");
        let sqlite = Orion::with_store(Arc::new(SqliteStore::open(db.file()).unwrap()));
        println!(
            "\nper task run, a flow of {tasks} sequential trivial tasks (median of {rounds}):"
        );
        println!(
            "  PostgreSQL  {:>8.1} µs",
            per_task_run(&pg, tasks, rounds).await
        );
        println!(
            "  SQLite      {:>8.1} µs",
            per_task_run(&sqlite, tasks, rounds).await
        );
    });
}
