//! Latency from a run's scheduled time to its flow body starting, under an agent: in the
//! same process (memory and SQLite stores) and with the agent in another process on the
//! SQLite file; and from creating a due run to its Completed state across processes (the
//! workload of Prefect's `bench_deploy.py`). Also the agent process's memory over many runs.
//!
//! `cargo bench -p benches --bench latency` (plain harness: percentiles, not criterion;
//! `LATENCY_POLL_MS` sets the in-process agents' poll interval, to expose missed wake-ups)

#[path = "support/tempdb.rs"]
mod tempdb;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use orion::deployment::DeploymentRunOptions;
use orion::prelude::*;
use orion::store::{Deployment, FlowRunFilter, SqliteStore};
use tempdb::TempDb;

static SEEN: Mutex<Vec<i64>> = Mutex::new(Vec::new());
static STARTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Records how long after `at` (nanoseconds since the epoch) its body started.
#[flow(name = "latency-probe")]
async fn probe(at: i64) {
    let late = Timestamp::now().as_nanosecond() as i64 - at;
    if std::env::var_os("LATENCY_CHILD").is_some() {
        println!("LATE {late}");
    } else {
        SEEN.lock().unwrap().push(late);
        STARTED.notify_waiters();
    }
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1e6
}

fn report(what: &str, mut nanos: Vec<i64>) {
    nanos.sort_unstable();
    println!(
        "{what:<58} n={:<5} p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
        nanos.len(),
        percentile(&nanos, 0.5),
        percentile(&nanos, 0.99),
        percentile(&nanos, 1.0)
    );
}

async fn deploy(orion: &Orion) -> Deployment {
    DeploymentSpec::new("latency")
        .flow(probe)
        .parameters(json!({"at": 0}))
        .apply(orion.client())
        .await
        .unwrap()
}

/// A run of `d` scheduled at `at`.
async fn schedule_at(orion: &Orion, d: &Deployment, at: Timestamp) {
    let options = DeploymentRunOptions::new()
        .scheduled_time(at)
        .parameters(json!({"at": at.as_nanosecond() as i64}));
    orion
        .client()
        .create_flow_run_from_deployment(d, Some(options))
        .await
        .unwrap();
}

/// Runs scheduled `ahead` in the future one after another, under an agent in this process.
async fn in_process(orion: Orion, n: usize, ahead: Duration) -> Vec<i64> {
    let d = deploy(&orion).await;
    SEEN.lock().unwrap().clear();
    let handle = orion
        .serve()
        .scheduler(None)
        .late_runs(None)
        .reaper(None)
        .agent(
            Agent::new().poll_interval(Duration::from_millis(
                std::env::var("LATENCY_POLL_MS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(25),
            )),
        )
        .start();
    for _ in 0..n {
        let started = STARTED.notified();
        tokio::pin!(started);
        started.as_mut().enable();
        let at = Timestamp::now() + SignedDuration::try_from(ahead).unwrap();
        schedule_at(&orion, &d, at).await;
        started.await;
    }
    handle.shutdown().await.unwrap();
    std::mem::take(&mut *SEEN.lock().unwrap())
}

/// The child: an agent on the file until stdin closes.
async fn child(db: &str) {
    let orion = Orion::open(&format!("sqlite://{db}")).await.unwrap();
    let handle = orion
        .serve()
        .scheduler(None)
        .late_runs(None)
        .reaper(None)
        .agent(Agent::new())
        .start();
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 {}
    })
    .await
    .unwrap();
    handle.shutdown().await.unwrap();
    if let Some(kb) = rss_kb() {
        println!("RSS {kb}");
    }
}

fn rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs created by this process, executed by an agent in a child process on the same file.
async fn across_processes(n: usize, ahead: Duration) -> (Vec<i64>, Vec<i64>) {
    let db = TempDb::new("latency");
    let path = db.file();
    let orion = Orion::with_store(Arc::new(SqliteStore::open(&path).unwrap()));
    let d = deploy(&orion).await;
    let mut agent = Command::new(std::env::current_exe().unwrap())
        .args(["--agent", &path.display().to_string()])
        .env("LATENCY_CHILD", "1")
        .env("ORION_LOGGING_CONSOLE", "false")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(agent.stdout.take().unwrap()).lines();
    let mut late = Vec::new();
    let mut to_completed = Vec::new();
    // Let the agent start and poll once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..n {
        let created = Timestamp::now();
        let at = created + SignedDuration::try_from(ahead).unwrap();
        schedule_at(&orion, &d, at).await;
        let line = tokio::task::block_in_place(|| lines.next().unwrap().unwrap());
        late.push(line.trim().trim_start_matches("LATE ").parse().unwrap());
        // Creation to Completed, as Prefect's bench measures it (for runs due at once).
        loop {
            let runs = orion
                .client()
                .read_flow_runs(&FlowRunFilter::new().deployment_id(d.id).limit(100_000))
                .await
                .unwrap();
            let newest = runs.iter().max_by_key(|r| r.created).unwrap();
            if let Some(s) = newest.state.as_ref().filter(|s| s.is_completed()) {
                to_completed.push(s.timestamp().duration_since(created).as_nanos() as i64);
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    drop(agent.stdin.take());
    for line in lines.map_while(Result::ok) {
        if let Some(kb) = line.strip_prefix("RSS ") {
            println!("  (agent process RSS at exit: {kb} kB)");
        }
    }
    agent.wait().unwrap();
    (late, to_completed)
}

/// The RSS of an agent process before and after it runs `n` trivial runs on a file.
async fn memory_over_runs(n: usize) {
    let db = TempDb::new("latency");
    let path = db.file();
    let orion = Orion::with_store(Arc::new(SqliteStore::open(&path).unwrap()));
    let d = deploy(&orion).await;
    SEEN.lock().unwrap().clear();
    let handle = orion
        .serve()
        .scheduler(None)
        .late_runs(None)
        .reaper(None)
        .agent(Agent::new())
        .start();
    let batch = n / 10;
    let mut samples = Vec::new();
    for _ in 0..10 {
        let now = Timestamp::now();
        let runs: Vec<_> = (0..batch)
            .map(|_| {
                let options = DeploymentRunOptions::new()
                    .scheduled_time(now)
                    .parameters(json!({"at": now.as_nanosecond() as i64}));
                (d.clone(), options)
            })
            .collect();
        for (d, options) in runs {
            orion
                .client()
                .create_flow_run_from_deployment(&d, Some(options))
                .await
                .unwrap();
        }
        while SEEN.lock().unwrap().len() < batch {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        SEEN.lock().unwrap().clear();
        samples.push(rss_kb().unwrap_or(0));
    }
    handle.shutdown().await.unwrap();
    println!("agent process RSS after each {batch} of {n} runs on SQLite (kB): {samples:?}");
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
        rt.block_on(child(&args[i + 1]));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("latency: bench");
        return;
    }
    let quick = args.iter().any(|a| a == "--test");
    let n = if quick { 5 } else { 300 };
    rt.block_on(async {
        let ahead = Duration::from_millis(20);
        report(
            "in process, memory store, scheduled 20 ms ahead",
            in_process(Orion::memory(), n, ahead).await,
        );
        let db = TempDb::new("latency");
        let path = db.file();
        let orion = Orion::with_store(Arc::new(SqliteStore::open(&path).unwrap()));
        report(
            "in process, SQLite file, scheduled 20 ms ahead",
            in_process(orion, n, ahead).await,
        );
        drop(db);
        let (late, _) = across_processes(n, Duration::from_millis(200)).await;
        report(
            "agent in another process, SQLite, scheduled 200 ms ahead",
            late,
        );
        let (late, completed) = across_processes(n, Duration::ZERO).await;
        report("agent in another process, SQLite, due when created", late);
        report(
            "  created (due now) to Completed, across processes",
            completed,
        );
        memory_over_runs(if quick { 100 } else { 100_000 }).await;
    });
}
