//! Concurrency limits across real OS processes on one SQLite file: a slot held by a process
//! is kept while it lives (its lease renewed) and is free again within one lease after the
//! process is SIGKILLed — named and task-tag slots alike; and processes sharing a task-tag
//! limit never run more of its task runs at once than the limit. Each test runs child copies
//! of this binary.

#[path = "support/child.rs"]
mod child;
#[path = "support/temp.rs"]
mod temp;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use child::{is_child, open, rt};
use orion::prelude::*;
use orion::store::TaskRunFilter;
use temp::temp_db;

/// The children's slot lease: short, so a killed child's slot lapses quickly.
const CHILD_LEASE_SECONDS: &str = "1";

fn child(test: &str, db: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("ORION_CHILD", "1")
        .env("ORION_DB", db)
        .env("ORION_SLOT_LEASE_SECONDS", CHILD_LEASE_SECONDS)
        .env("ORION_LOGGING_CONSOLE", "false")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads the child's output until a line holds `what`; returns the lines read before it.
fn wait_for(child: &mut Child, what: &str) -> Vec<String> {
    let out = child.stdout.as_mut().unwrap();
    let mut before = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.unwrap();
        if line.contains(what) {
            return before;
        }
        before.push(line);
    }
    panic!("the child ended before printing {what}");
}

/// A child that is SIGKILLed when dropped, so a failing test leaves no process behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

#[task(tags = ["proc-db"])]
async fn proc_hang() {
    println!("HOLDING");
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[flow(name = "proc-lim-hang")]
async fn proc_lim_hang() {
    proc_hang().await;
}

#[task(tags = ["proc-db"])]
async fn proc_query(i: u32) -> u32 {
    // The body's own span, as nanoseconds of the machine's clock: it lies inside the time the
    // slot is held (taken before Running, released before the final state is written, so the
    // stored end times lag the releases and cannot show overlaps).
    let now = || {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        since.unwrap().as_nanos()
    };
    let start = now();
    std::thread::sleep(Duration::from_millis(150));
    println!("SPAN {start} {}", now());
    i
}

#[flow(name = "proc-lim-batch", task_runner = TaskRunner::concurrent())]
async fn proc_lim_batch() -> Vec<u32> {
    orion::gather(orion::map(0..4, proc_query)).await
}

#[test]
fn child_holds_a_named_slot() {
    if !is_child() {
        return;
    }
    rt().block_on(async {
        let orion = open(&std::env::var("ORION_DB").unwrap()).await;
        let _slot = orion.concurrency("proc-warehouse", 1).await.unwrap();
        println!("HOLDING");
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
}

#[test]
fn child_hangs_in_a_tagged_task() {
    if !is_child() {
        return;
    }
    rt().block_on(async {
        let orion = open(&std::env::var("ORION_DB").unwrap()).await;
        proc_lim_hang().on(&orion).await;
    });
}

#[test]
fn child_runs_tagged_tasks() {
    if !is_child() {
        return;
    }
    rt().block_on(async {
        let orion = open(&std::env::var("ORION_DB").unwrap()).await;
        println!("READY");
        let values = proc_lim_batch().on(&orion).await;
        assert_eq!(values, [0, 1, 2, 3]);
        println!("DONE");
    });
}

/// Holds the slot for longer than a lease while the holder lives, then measures how soon the
/// test process gets it after the holder is SIGKILLed.
async fn killed_holder_frees_the_slot(orion: &Orion, limit: &str, holder: Killed) -> Duration {
    let taken =
        tokio::time::timeout(Duration::from_millis(1500), orion.concurrency(limit, 1)).await;
    assert!(
        taken.is_err(),
        "a live holder keeps its slot past one lease: it renews it"
    );
    let status = orion.client().read_concurrency_limit(limit).await.unwrap();
    assert_eq!(status.holders.len(), 1, "{status:?}");
    let pid = holder.0.id();
    assert_eq!(status.holders[0].lease.owner_name, format!("process {pid}"));
    let killed = Instant::now();
    drop(holder);
    let slot = tokio::time::timeout(Duration::from_secs(10), orion.concurrency(limit, 1))
        .await
        .expect("the dead holder's slot must free by itself");
    let freed = killed.elapsed();
    slot.unwrap().release().await.unwrap();
    freed
}

#[test]
fn a_killed_process_frees_its_named_slot_within_its_lease() {
    if is_child() {
        return;
    }
    let db = temp_db("lim-named").display().to_string();
    let rt = rt();
    let orion = rt.block_on(open(&db));
    let mut holder = Killed(child("child_holds_a_named_slot", &db));
    wait_for(&mut holder.0, "HOLDING");
    let freed = rt.block_on(killed_holder_frees_the_slot(
        &orion,
        "proc-warehouse",
        holder,
    ));
    assert!(
        freed >= Duration::from_millis(300) && freed < Duration::from_secs(3),
        "free when the 1 s lease lapses, not at once nor much later: {freed:?}"
    );
}

#[test]
fn a_killed_process_frees_its_tag_slot_within_its_lease() {
    if is_child() {
        return;
    }
    let db = temp_db("lim-tag").display().to_string();
    let rt = rt();
    let orion = rt.block_on(open(&db));
    rt.block_on(orion.client().set_concurrency_limit("proc-db", 1))
        .unwrap();
    let mut holder = Killed(child("child_hangs_in_a_tagged_task", &db));
    wait_for(&mut holder.0, "HOLDING");
    let freed = rt.block_on(killed_holder_frees_the_slot(&orion, "tag:proc-db", holder));
    assert!(
        freed >= Duration::from_millis(300) && freed < Duration::from_secs(3),
        "{freed:?}"
    );

    // A task run of this process now runs under the same limit without waiting for ever.
    let values = rt.block_on(std::future::IntoFuture::into_future(
        proc_lim_batch().on(&orion),
    ));
    assert_eq!(values, [0, 1, 2, 3]);
    let status = rt
        .block_on(orion.client().read_concurrency_limit("tag:proc-db"))
        .unwrap();
    assert!(
        status.holders.is_empty() && status.waiters.is_empty(),
        "{status:?}"
    );
}

#[test]
fn processes_sharing_a_tag_limit_never_exceed_it() {
    if is_child() {
        return;
    }
    let db = temp_db("lim-shared").display().to_string();
    let rt = rt();
    let orion = rt.block_on(open(&db));
    rt.block_on(orion.client().set_concurrency_limit("proc-db", 2))
        .unwrap();
    let mut children: Vec<Child> = (0..3)
        .map(|_| child("child_runs_tagged_tasks", &db))
        .collect();
    let mut spans: Vec<(u128, u128)> = Vec::new();
    for c in &mut children {
        for line in wait_for(c, "DONE") {
            // libtest may print its own text before ours on the same line.
            let Some(at) = line.find("SPAN ") else {
                continue;
            };
            let mut parts = line[at + 5..]
                .split_whitespace()
                .map(|n| n.parse().unwrap());
            spans.push((parts.next().unwrap(), parts.next().unwrap()));
        }
    }
    assert_eq!(spans.len(), 12, "every body reported its span");
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let filter = TaskRunFilter::new().name_prefix("proc_query-");
    let runs = rt.block_on(orion.client().read_task_runs(&filter)).unwrap();
    assert_eq!(runs.len(), 12);
    // The most bodies of the tag running at any instant, across the three processes.
    let mut edges: Vec<(u128, i32)> = Vec::new();
    for run in &runs {
        assert!(run.state.as_ref().unwrap().is_completed());
    }
    for (start, end) in spans {
        edges.push((start, 1));
        edges.push((end, -1));
    }
    edges.sort(); // an end sorts before a start at the same instant
    let (mut now, mut most) = (0, 0);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    assert_eq!(most, 2, "12 task runs in 3 processes, 2 at a time");
    let waited = runs
        .iter()
        .filter(|r| {
            let states = rt
                .block_on(orion.client().read_task_run_states(r.id))
                .unwrap();
            states.iter().any(|s| s.name() == "AwaitingConcurrencySlot")
        })
        .count();
    assert!(waited >= 6, "most waited their turn: {waited}");
}
