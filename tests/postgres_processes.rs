//! Agents and schedulers as real OS processes on one PostgreSQL database, as on several
//! machines: 10,000 due runs executed exactly once by eight agents while two schedulers race
//! over the same deployments without doubling a slot; SIGKILLed agents' runs crashed by the
//! reaper and retried in another process; the database server restarted under a running
//! flow, which completes afterwards. Each test runs child copies of this binary; without a
//! test server (`ORION_TEST_POSTGRES_URL`) they skip.

#[path = "support/child.rs"]
mod child;
#[path = "support/postgres.rs"]
mod pg;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use child::{is_child, lines_of, lines_of_all, report, rt};
use orion::prelude::*;
use orion::services::{Reaper, Scheduler};
use orion::store::{Deployment, FlowRunFilter};

fn child(test: &str, url: &str, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("ORION_CHILD", "1")
        .env("ORION_LOGGING_CONSOLE", "false")
        .env("ORION_DB", url)
        .stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

async fn open(url: &str) -> Orion {
    Orion::open(url).await.unwrap()
}

#[flow(name = "pgp-trivial")]
async fn pgp_trivial(n: u64) -> u64 {
    let id = orion::flow_run_context().unwrap().id();
    println!("RAN {id}");
    n + 1
}

#[flow(name = "pgp-killable", retries = 1)]
async fn pgp_killable() -> u64 {
    let id = orion::flow_run_context().unwrap().id();
    println!("STARTED {id}");
    let seconds: u64 = std::env::var("ORION_SLEEP").unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    seconds
}

#[task]
async fn pgp_step(i: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(100)).await;
    i
}

#[flow(name = "pgp-steps")]
async fn pgp_steps(n: u64) -> u64 {
    let id = orion::flow_run_context().unwrap().id();
    println!("STARTED {id}");
    let mut total = 0;
    for i in 0..n {
        total += pgp_step(i).await;
    }
    total
}

/// Child: an agent (with a reaper when `ORION_REAPER` is set) until no run is open.
#[test]
fn child_agent() {
    if !is_child() {
        return;
    }
    rt().block_on(async {
        let orion = open(&std::env::var("ORION_DB").unwrap()).await;
        let agent = Agent::new()
            .name(std::env::var("ORION_AGENT").unwrap())
            .limit(std::env::var("ORION_LIMIT").map_or(16, |n| n.parse().unwrap()))
            .poll_interval(Duration::from_secs(1))
            .lease_duration(Duration::from_secs(2));
        let mut serve = orion.serve().scheduler(None).late_runs(None).agent(agent);
        serve = if std::env::var_os("ORION_REAPER").is_some() {
            serve.reaper(Reaper::new().loop_interval(Duration::from_millis(200)))
        } else {
            serve.reaper(None)
        };
        let handle = serve.start();
        // Runs still to do: due ones waiting, and ones under way (the schedulers' future runs
        // are not).
        let active = FlowRunFilter::new()
            .work_queue_name("default")
            .state_types([
                StateType::Pending,
                StateType::Running,
                StateType::Cancelling,
            ])
            .limit(1);
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut idle = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let due = FlowRunFilter::new()
                .work_queue_name("default")
                .state_types([StateType::Scheduled])
                .expected_start_between(None, Some(orion.client().now()))
                .limit(1);
            let client = orion.client();
            let open = client.read_flow_runs(&active).await.unwrap().len()
                + client.read_flow_runs(&due).await.unwrap().len();
            idle = if open == 0 { idle + 1 } else { 0 };
            if idle >= 3 || Instant::now() > deadline {
                break;
            }
        }
        handle.shutdown().await.unwrap();
    });
}

/// Child: `ORION_PASSES` scheduler passes, each by a fresh scheduler.
#[test]
fn child_scheduler() {
    if !is_child() {
        return;
    }
    rt().block_on(async {
        let orion = open(&std::env::var("ORION_DB").unwrap()).await;
        let passes: usize = std::env::var("ORION_PASSES").unwrap().parse().unwrap();
        for _ in 0..passes {
            let pass = Scheduler::new().run_once(&orion).await.unwrap();
            println!("CREATED {}", pass.created);
        }
    });
}

fn deploy(url: &str, spec: DeploymentSpec) -> Deployment {
    rt().block_on(async { spec.apply(open(url).await.client()).await.unwrap() })
}

#[test]
fn eight_agents_and_two_schedulers_run_ten_thousand_due_runs_exactly_once() {
    if is_child() {
        return;
    }
    let Some(server) = pg::server() else { return };
    const RUNS: usize = 10_000;
    let url = rt().block_on(pg::fresh_url(&server, "agents"));
    let d = deploy(
        &url,
        DeploymentSpec::new("many")
            .flow_name("pgp-trivial")
            .parameters(json!({"n": 1})),
    );
    // Deployments whose schedules the two schedulers fill at once, on a queue no agent here
    // serves (an hourly slot may fall due while the test runs).
    let scheduled: Vec<Deployment> = (0..20)
        .map(|i| {
            deploy(
                &url,
                DeploymentSpec::new(format!("sched-{i}"))
                    .work_queue_name("schedulers-only")
                    .flow_name("pgp-trivial")
                    .parameters(json!({"n": i}))
                    .schedule(IntervalSchedule::new(Duration::from_secs(3600)).unwrap()),
            )
        })
        .collect();
    let ids: HashSet<orion::Uuid> = rt().block_on(async {
        let orion = open(&url).await;
        let mut ids = HashSet::new();
        for _ in 0..RUNS {
            let run = orion
                .client()
                .create_flow_run_from_deployment(&d, None)
                .await
                .unwrap();
            ids.insert(run.id);
        }
        ids
    });
    let started = Instant::now();
    let mut agents: Vec<Child> = (0..8)
        .map(|i| {
            child(
                "child_agent",
                &url,
                &[("ORION_AGENT", format!("agent-{i}"))],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    let mut schedulers: Vec<Child> = (0..2)
        .map(|_| {
            child("child_scheduler", &url, &[("ORION_PASSES", "3".into())])
                .spawn()
                .unwrap()
        })
        .collect();
    // Every child's output is read at once (see `lines_of_all`).
    let (scheduler_lines, agent_lines) = std::thread::scope(|s| {
        let schedulers = s.spawn(|| lines_of_all(&mut schedulers));
        let agents = lines_of_all(&mut agents);
        (schedulers.join().unwrap(), agents)
    });
    let mut created = 0;
    for (c, lines) in schedulers.iter_mut().zip(scheduler_lines) {
        for line in lines {
            if let Some(n) = line.strip_prefix("CREATED ") {
                created += n.parse::<usize>().unwrap();
            }
        }
        assert!(c.wait().unwrap().success());
    }
    let mut ran: HashMap<orion::Uuid, usize> = HashMap::new();
    let mut per_agent = Vec::new();
    for (c, lines) in agents.iter_mut().zip(agent_lines) {
        per_agent.push(lines.len());
        for line in lines {
            if let Some(id) = line.strip_prefix("RAN ") {
                *ran.entry(id.parse().unwrap()).or_default() += 1;
            }
        }
        assert!(c.wait().unwrap().success());
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{RUNS} runs by 8 agent processes in {elapsed:?}, per agent {per_agent:?}; the schedulers created {created} runs"
    );
    let twice: Vec<_> = ran.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "runs executed twice: {twice:?}");
    let executed: HashSet<orion::Uuid> = ran.keys().copied().collect();
    assert_eq!(executed.len(), RUNS, "runs left behind");
    assert_eq!(executed, ids);
    assert!(
        per_agent.iter().filter(|n| **n > 0).count() >= 4,
        "the work was shared: {per_agent:?}"
    );
    rt().block_on(async {
        let orion = open(&url).await;
        let runs = orion
            .client()
            .read_flow_runs(&FlowRunFilter::new().deployment_id(d.id))
            .await
            .unwrap();
        assert_eq!(runs.len(), RUNS);
        assert!(runs.iter().all(|r| r.state.as_ref().unwrap().is_completed()
            && r.run_count == 1
            && r.lease.is_none()));
        // The schedulers: every deployment's slots once each, and what they said they
        // created is what is stored.
        let mut stored = 0;
        for s in &scheduled {
            let runs = orion
                .client()
                .read_flow_runs(&FlowRunFilter::new().deployment_id(s.id))
                .await
                .unwrap();
            let slots: HashSet<_> = runs.iter().map(|r| r.expected_start_time).collect();
            assert_eq!(slots.len(), runs.len(), "{}: a slot has two runs", s.name);
            assert!(!runs.is_empty(), "{}: no runs scheduled", s.name);
            stored += runs.len();
        }
        assert_eq!(created, stored);
    });
}

#[test]
fn sigkilled_agents_runs_are_crashed_and_retried_in_another_process() {
    if is_child() {
        return;
    }
    let Some(server) = pg::server() else { return };
    let url = rt().block_on(pg::fresh_url(&server, "agent-kill"));
    let d = deploy(
        &url,
        DeploymentSpec::new("killed").flow_name("pgp-killable"),
    );
    let runs: Vec<orion::Uuid> = rt().block_on(async {
        let orion = open(&url).await;
        let mut ids = Vec::new();
        for _ in 0..2 {
            let run = orion
                .client()
                .create_flow_run_from_deployment(&d, None)
                .await
                .unwrap();
            ids.push(run.id);
        }
        ids
    });
    // Two agents, one run each (limit 1 per agent through the sleep: each takes one).
    let mut started = HashSet::new();
    let mut doomed = Vec::new();
    for i in 0..2 {
        let mut c = child(
            "child_agent",
            &url,
            &[
                ("ORION_AGENT", format!("doomed-{i}")),
                ("ORION_SLEEP", "600".into()),
                ("ORION_LIMIT", "1".into()),
            ],
        )
        .spawn()
        .unwrap();
        let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
        let first = lines.find_map(|l| report(&l.unwrap()));
        if let Some(line) = first {
            started.insert(line);
        }
        doomed.push(c);
        if started.len() == 2 {
            break;
        }
    }
    let wanted: HashSet<String> = runs.iter().map(|id| format!("STARTED {id}")).collect();
    assert_eq!(started, wanted, "each run started in a doomed agent");
    for mut c in doomed {
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
    }
    let mut rescuer = child(
        "child_agent",
        &url,
        &[
            ("ORION_AGENT", "rescuer".into()),
            ("ORION_SLEEP", "0".into()),
            ("ORION_REAPER", "1".into()),
        ],
    )
    .spawn()
    .unwrap();
    let lines: HashSet<String> = lines_of(&mut rescuer).into_iter().collect();
    assert!(rescuer.wait().unwrap().success());
    assert_eq!(lines, wanted, "both retries ran in the rescuer");
    rt().block_on(async {
        let orion = open(&url).await;
        for id in runs {
            let names: Vec<String> = orion
                .client()
                .read_flow_run_states(id)
                .await
                .unwrap()
                .iter()
                .map(|s| s.name().to_owned())
                .collect();
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
        }
    });
}

#[test]
fn a_run_completes_after_the_database_server_restarts_under_it() {
    if is_child() {
        return;
    }
    let Some(server) = pg::server() else { return };
    let Ok(restart) = std::env::var("ORION_TEST_POSTGRES_RESTART") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must say how to restart the test server (ORION_TEST_POSTGRES_RESTART)"
        );
        eprintln!(
            "skipped: set ORION_TEST_POSTGRES_RESTART to a command restarting the test server"
        );
        return;
    };
    let url = rt().block_on(pg::fresh_url(&server, "restart"));
    let d = deploy(
        &url,
        DeploymentSpec::new("steps")
            .flow_name("pgp-steps")
            .parameters(json!({"n": 40})),
    );
    let run = rt().block_on(async {
        open(&url)
            .await
            .client()
            .create_flow_run_from_deployment(&d, None)
            .await
            .unwrap()
    });
    let mut agent = child("child_agent", &url, &[("ORION_AGENT", "survivor".into())])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(agent.stdout.take().unwrap()).lines();
    let first = lines.find_map(|l| report(&l.unwrap()));
    assert_eq!(first, Some(format!("STARTED {}", run.id)));
    // A few task runs in, the server restarts (every connection is cut).
    std::thread::sleep(Duration::from_millis(600));
    let restarted = Command::new("sh")
        .args(["-c", &restart])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(restarted.success(), "the restart command failed");
    for _ in lines.by_ref() {}
    assert!(agent.wait().unwrap().success());
    rt().block_on(async {
        let orion = open(&url).await;
        let stored = orion.client().read_flow_run(run.id).await.unwrap().unwrap();
        let names: Vec<String> = orion
            .client()
            .read_flow_run_states(run.id)
            .await
            .unwrap()
            .iter()
            .map(|s| s.name().to_owned())
            .collect();
        assert_eq!(
            names,
            ["Scheduled", "Pending", "Running", "Completed"],
            "{stored:?}"
        );
        let tasks = orion
            .client()
            .read_task_runs(&orion::store::TaskRunFilter::new().flow_run_id(run.id))
            .await
            .unwrap();
        assert_eq!(tasks.len(), 40, "a task run was lost or doubled");
        assert!(
            tasks
                .iter()
                .all(|t| t.state.as_ref().unwrap().is_completed())
        );
    });
}
