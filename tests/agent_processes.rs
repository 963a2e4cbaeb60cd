//! Agents and schedulers as real OS processes on one SQLite file: every due run executed
//! exactly once by competing agents, a SIGKILLed agent's run crashed by the reaper and
//! retried in another process, racing schedulers and a SIGKILLed scheduler never doubling or
//! losing a slot. Each test runs child copies of this binary.

#[path = "support/child.rs"]
mod child;
#[path = "support/temp.rs"]
mod temp;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use child::{is_child, lines_of, lines_of_all, open, report, rt};
use orion::prelude::*;
use orion::services::{Reaper, Scheduler};
use orion::store::{Deployment, FlowRun, FlowRunFilter, SqliteStore, Store};
use temp::temp_db;

fn child(test: &str, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("ORION_CHILD", "1")
        .env("ORION_LOGGING_CONSOLE", "false");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

#[flow(name = "proc-trivial")]
async fn proc_trivial(n: u64) -> u64 {
    let id = orion::flow_run_context().unwrap().id();
    println!("RAN {id}");
    n + 1
}

#[flow(name = "proc-killable", retries = 1)]
async fn proc_killable() -> u64 {
    let id = orion::flow_run_context().unwrap().id();
    println!("STARTED {id}");
    let seconds: u64 = std::env::var("ORION_SLEEP").unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    seconds
}

/// Stops an agent child once no run is left to do.
async fn serve_until_idle(orion: &Orion, agent: Agent, with_reaper: bool) {
    let mut serve = orion.serve().scheduler(None).late_runs(None).agent(agent);
    serve = if with_reaper {
        serve.reaper(Reaper::new().loop_interval(Duration::from_millis(200)))
    } else {
        serve.reaper(None)
    };
    let handle = serve.start();
    let open_states = FlowRunFilter::new().state_types([
        StateType::Scheduled,
        StateType::Pending,
        StateType::Running,
        StateType::Cancelling,
    ]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let open = orion.client().read_flow_runs(&open_states).await.unwrap();
        if open.is_empty() || Instant::now() > deadline {
            break;
        }
    }
    handle.shutdown().await.unwrap();
}

/// Child: an agent on the file until no run is left.
#[test]
fn child_agent() {
    if !is_child() {
        return;
    }
    rt().block_on(async {
        let orion = open(&std::env::var("ORION_DB").unwrap()).await;
        let agent = Agent::new()
            .name(std::env::var("ORION_AGENT").unwrap())
            .limit(16)
            .poll_interval(Duration::from_millis(10))
            .lease_duration(Duration::from_secs(2));
        let with_reaper = std::env::var_os("ORION_REAPER").is_some();
        serve_until_idle(&orion, agent, with_reaper).await;
    });
}

fn deploy(path: &Path, flow: &str, name: &str, parameters: serde_json::Value) -> Deployment {
    rt().block_on(async {
        let orion = open(&path.display().to_string()).await;
        DeploymentSpec::new(name)
            .flow_name(flow)
            .parameters(parameters)
            .apply(orion.client())
            .await
            .unwrap()
    })
}

#[test]
fn four_agent_processes_run_two_thousand_due_runs_exactly_once() {
    if is_child() {
        return;
    }
    let path = temp_db("agents");
    let d = deploy(&path, "proc-trivial", "many", json!({"n": 1}));
    let ids: HashSet<orion::Uuid> = rt().block_on(async {
        let orion = open(&path.display().to_string()).await;
        let client = orion.client();
        let mut runs = Vec::new();
        for _ in 0..2000 {
            runs.push(
                client
                    .create_flow_run_from_deployment(&d, None)
                    .await
                    .unwrap()
                    .id,
            );
        }
        runs.into_iter().collect()
    });
    let db = path.display().to_string();
    let mut children: Vec<Child> = (0..4)
        .map(|i| {
            child(
                "child_agent",
                &[
                    ("ORION_DB", db.clone()),
                    ("ORION_AGENT", format!("agent-{i}")),
                ],
            )
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut ran: HashMap<orion::Uuid, usize> = HashMap::new();
    let mut per_agent = Vec::new();
    let all = lines_of_all(&mut children);
    for (c, lines) in children.iter_mut().zip(all) {
        let mine = lines.iter().filter(|l| l.starts_with("RAN ")).count();
        per_agent.push(mine);
        for line in lines {
            if let Some(id) = line.strip_prefix("RAN ") {
                *ran.entry(id.parse().unwrap()).or_default() += 1;
            }
        }
        assert!(c.wait().unwrap().success());
    }
    let twice: Vec<_> = ran.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "runs executed twice: {twice:?}");
    let executed: HashSet<orion::Uuid> = ran.keys().copied().collect();
    if executed.len() != 2000 {
        let store = SqliteStore::open(&path).unwrap();
        for id in ids.difference(&executed) {
            let h = rt().block_on(store.read_flow_run_states(*id)).unwrap();
            eprintln!(
                "not run {id}: {:?}",
                h.iter().map(ToString::to_string).collect::<Vec<_>>()
            );
        }
    }
    assert_eq!(executed.len(), 2000, "none left behind");
    assert_eq!(executed, ids);
    assert!(
        per_agent.iter().filter(|n| **n > 0).count() >= 2,
        "the work was shared: {per_agent:?}"
    );
    let store = SqliteStore::open(&path).unwrap();
    let runs = rt()
        .block_on(store.read_flow_runs(&FlowRunFilter::new().deployment_id(d.id)))
        .unwrap();
    assert!(
        runs.iter()
            .all(|r| r.state.as_ref().unwrap().is_completed())
    );
    assert!(runs.iter().all(|r| r.run_count == 1 && r.lease.is_none()));
}

#[test]
fn a_sigkilled_agents_run_is_crashed_and_its_retry_completes_in_another_process() {
    if is_child() {
        return;
    }
    let path = temp_db("agent-kill");
    let d = deploy(&path, "proc-killable", "killed", json!({}));
    let run = rt().block_on(async {
        let orion = open(&path.display().to_string()).await;
        orion
            .client()
            .create_flow_run_from_deployment(&d, None)
            .await
            .unwrap()
    });
    let db = path.display().to_string();
    let mut doomed = child(
        "child_agent",
        &[
            ("ORION_DB", db.clone()),
            ("ORION_AGENT", "doomed".into()),
            ("ORION_SLEEP", "600".into()),
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let reader = BufReader::new(doomed.stdout.take().unwrap());
    let started = reader
        .lines()
        .map(Result::unwrap)
        .find_map(|l| report(&l))
        .unwrap();
    assert_eq!(started, format!("STARTED {}", run.id));
    doomed.kill().unwrap(); // SIGKILL
    doomed.wait().unwrap();
    let killed_at = jiff::Timestamp::now();

    // Another agent process, with the reaper: it finds the run crashed and runs the retry.
    let mut rescuer = child(
        "child_agent",
        &[
            ("ORION_DB", db),
            ("ORION_AGENT", "rescuer".into()),
            ("ORION_SLEEP", "0".into()),
            ("ORION_REAPER", "1".into()),
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let lines = lines_of(&mut rescuer);
    assert!(rescuer.wait().unwrap().success());
    assert_eq!(
        lines,
        [format!("STARTED {}", run.id)],
        "the retry ran in the rescuer"
    );

    let store = SqliteStore::open(&path).unwrap();
    let history = rt().block_on(store.read_flow_run_states(run.id)).unwrap();
    let names: Vec<&str> = history.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "Scheduled",
            "Pending",
            "Running",
            "AwaitingRetry",
            "Pending",
            "Retrying",
            "Completed"
        ]
    );
    let crashed = &history[3];
    let message = crashed.message().unwrap();
    assert!(message.starts_with("Crashed: "), "{message}");
    assert!(
        message.contains("agent 'doomed' was last heard from at"),
        "{message}"
    );
    // Found within the lease (2 s) and a reaper pass, plus a process start.
    let found = crashed.timestamp().duration_since(killed_at);
    assert!(
        found < jiff::SignedDuration::from_secs(6),
        "reaped {found:?} after the kill"
    );
}

fn scheduled_deployments(path: &Path, n: usize, every: Duration) -> Vec<Deployment> {
    rt().block_on(async {
        let orion = open(&path.display().to_string()).await;
        let specs: Vec<DeploymentSpec> = (0..n)
            .map(|i| {
                DeploymentSpec::new(format!("sched-{i}"))
                    .flow_name("proc-trivial")
                    .parameters(json!({"n": i}))
                    .schedule(IntervalSchedule::new(every).unwrap())
            })
            .collect();
        DeploymentSpec::apply_all(specs, orion.client())
            .await
            .unwrap()
    })
}

/// Child: scheduler passes over the file, `ORION_PASSES` times.
#[test]
fn child_scheduler() {
    if !is_child() {
        return;
    }
    rt().block_on(async {
        let orion = open(&std::env::var("ORION_DB").unwrap()).await;
        let passes: usize = std::env::var("ORION_PASSES").unwrap().parse().unwrap();
        for _ in 0..passes {
            // A fresh scheduler each time: no memory of what it created, only the store's.
            let pass = Scheduler::new().run_once(&orion).await.unwrap();
            println!("CREATED {}", pass.created);
        }
    });
}

/// Every deployment's runs: one per slot, and every slot of `[from, from + window]` there.
fn check_slots(path: &Path, deployments: &[Deployment], from: jiff::Timestamp, window: Duration) {
    let store = Arc::new(SqliteStore::open(path).unwrap());
    let runs: Vec<FlowRun> = rt()
        .block_on(store.read_flow_runs(&FlowRunFilter::new()))
        .unwrap();
    let mut by_deployment: HashMap<orion::Uuid, Vec<jiff::Timestamp>> = HashMap::new();
    for r in runs {
        by_deployment
            .entry(r.deployment_id.unwrap())
            .or_default()
            .push(r.expected_start_time.unwrap());
    }
    let until = from + jiff::SignedDuration::try_from(window).unwrap();
    for d in deployments {
        let mut slots = by_deployment.remove(&d.id).unwrap_or_default();
        slots.sort();
        let before = slots.len();
        slots.dedup();
        assert_eq!(before, slots.len(), "{}: a slot has two runs", d.name);
        let expected: Vec<jiff::Timestamp> = d.schedules[0]
            .schedule
            .dates_between(from, until)
            .iter()
            .map(|z| z.timestamp())
            .collect();
        let have: HashSet<_> = slots.iter().copied().collect();
        let missing: Vec<_> = expected.iter().filter(|t| !have.contains(t)).collect();
        assert!(
            missing.is_empty(),
            "{}: slots without a run: {missing:?}",
            d.name
        );
    }
}

#[test]
fn two_scheduler_processes_racing_never_double_or_miss_a_slot() {
    if is_child() {
        return;
    }
    let path = temp_db("schedulers");
    let deployments = scheduled_deployments(&path, 40, Duration::from_secs(60));
    let db = path.display().to_string();
    let start = jiff::Timestamp::now();
    let mut children: Vec<Child> = (0..2)
        .map(|_| {
            child(
                "child_scheduler",
                &[("ORION_DB", db.clone()), ("ORION_PASSES", "5".into())],
            )
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut created = 0;
    let all = lines_of_all(&mut children);
    for (c, lines) in children.iter_mut().zip(all) {
        for line in lines {
            if let Some(n) = line.strip_prefix("CREATED ") {
                created += n.parse::<usize>().unwrap();
            }
        }
        assert!(c.wait().unwrap().success());
    }
    // An hour of minutely slots ahead of the later pass, for each deployment, created once.
    check_slots(
        &path,
        &deployments,
        start + jiff::SignedDuration::from_secs(90),
        Duration::from_secs(3000),
    );
    let total = stored_runs(&path);
    assert_eq!(
        created, total,
        "what the schedulers say they created is what is stored"
    );
}

/// How many flow runs the file at `path` holds.
fn stored_runs(path: &std::path::Path) -> usize {
    let store = SqliteStore::open(path).unwrap();
    rt().block_on(store.read_flow_runs(&FlowRunFilter::new()))
        .unwrap()
        .len()
}

#[test]
fn a_scheduler_sigkilled_mid_insert_leaves_no_duplicate_and_the_next_pass_fills_every_slot() {
    if is_child() {
        return;
    }
    let path = temp_db("scheduler-kill");
    let deployments = scheduled_deployments(&path, 300, Duration::from_secs(60));
    let db = path.display().to_string();
    let mut doomed = child(
        "child_scheduler",
        &[("ORION_DB", db.clone()), ("ORION_PASSES", "1".into())],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    // Kill it once it has inserted some deployments' runs, not all.
    let store = SqliteStore::open(&path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let n = rt()
            .block_on(store.read_flow_runs(&FlowRunFilter::new().limit(1)))
            .unwrap()
            .len();
        if n > 0 || Instant::now() > deadline {
            break;
        }
    }
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    drop(store);
    let partial = stored_runs(&path);

    let start = jiff::Timestamp::now();
    let mut again = child(
        "child_scheduler",
        &[("ORION_DB", db), ("ORION_PASSES", "1".into())],
    )
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    assert!(again.wait().unwrap().success());
    check_slots(
        &path,
        &deployments,
        start + jiff::SignedDuration::from_secs(60),
        Duration::from_secs(3000),
    );
    let total = stored_runs(&path);
    assert!(
        partial < total,
        "the kill came mid-way: {partial} of {total}"
    );
}
