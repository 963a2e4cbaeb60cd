//! The SQLite store with real OS processes: concurrent claims of one run, and a process killed
//! with SIGKILL in the middle of a flow. Each test runs child copies of this binary.

#[path = "support/temp.rs"]
mod temp;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use orion::prelude::*;
use orion::store::{FlowRun, SqliteStore, Store, TaskRunFilter};
use orion::{OrionClient, RetryPolicy, RunKind, RunRef, Transition};
use temp::temp_db;

fn child(test: &str, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("ORION_CHILD", "1");
    cmd.env("ORION_LOGGING_CONSOLE", "false");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Child: tries to claim the run (Scheduled → Pending) and prints what happened.
#[tokio::test]
async fn child_claim() {
    if std::env::var_os("ORION_CHILD").is_none() {
        return;
    }
    let path = std::env::var("ORION_DB").unwrap();
    let id: uuid::Uuid = std::env::var("ORION_RUN").unwrap().parse().unwrap();
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let client = OrionClient::new(store);
    let run = client.read_flow_run(id).await.unwrap().unwrap();
    let policy = RetryPolicy::default();
    let run_ref = RunRef {
        kind: RunKind::Flow,
        id,
        current: run.state.as_ref(),
        run_count: 0,
        retry: &policy,
        fenced: false,
    };
    match client.propose_state(run_ref, State::pending()).await {
        Ok(Transition::Set(s)) if s.is_pending() => println!("RESULT CLAIMED"),
        Err(orion::Error::Aborted { .. }) => println!("RESULT REFUSED"),
        other => println!("RESULT ERROR {other:?}"),
    }
}

#[tokio::test]
async fn one_run_is_claimed_exactly_once_by_competing_processes() {
    if std::env::var_os("ORION_CHILD").is_some() {
        return;
    }
    let path = temp_db("claim");
    let store = SqliteStore::open(&path).unwrap();
    let client = OrionClient::new(Arc::new(store));
    let flow = client.create_flow("contested").await.unwrap();
    let mut run = FlowRun::new(&flow, "contested-run");
    run.state = Some(State::scheduled(jiff::Timestamp::now()));
    let run = client.create_flow_run(run).await.unwrap();

    let env = [
        ("ORION_DB", path.display().to_string()),
        ("ORION_RUN", run.id.to_string()),
    ];
    let children: Vec<_> = (0..6)
        .map(|_| {
            child("child_claim", &env)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut results = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text
            .lines()
            .find_map(|l| l.find("RESULT ").map(|i| l[i..].to_owned()))
            .unwrap_or_else(|| {
                format!(
                    "RESULT NONE: {text} {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        results.push(line);
    }
    let claimed = results.iter().filter(|r| *r == "RESULT CLAIMED").count();
    let refused = results.iter().filter(|r| *r == "RESULT REFUSED").count();
    assert_eq!((claimed, refused), (1, 5), "{results:?}");
    assert_eq!(client.read_flow_run_states(run.id).await.unwrap().len(), 2);
}

#[task]
async fn step(i: u64) -> u64 {
    i
}

#[flow(name = "long-flow")]
async fn long_flow(n: u64) {
    let mut finished = Vec::new();
    for i in 0..n {
        let name = format!("step-{i}");
        step(i).name(name.clone()).await;
        finished.push(name);
        // Task-run writes are answered before they commit; a flush says when they have.
        if finished.len() == 7 {
            orion::Orion::current().client().flush().await.unwrap();
            for name in finished.drain(..) {
                println!("DONE {name}");
            }
        }
    }
}

/// Child: runs a long flow on the file, printing each task run it finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_long_flow() {
    if std::env::var_os("ORION_CHILD").is_none() {
        return;
    }
    let orion = Orion::open(&format!("sqlite://{}", std::env::var("ORION_DB").unwrap()))
        .await
        .unwrap();
    long_flow(1_000_000).on(&orion).await;
}

#[test]
fn states_committed_before_a_sigkill_survive_and_the_file_is_sound() {
    if std::env::var_os("ORION_CHILD").is_some() {
        return;
    }
    let path = temp_db("kill");
    let mut c = child(
        "child_long_flow",
        &[("ORION_DB", path.display().to_string())],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut done = Vec::new();
    let reader = BufReader::new(c.stdout.take().unwrap());
    for line in reader.lines() {
        let line = line.unwrap();
        if let Some(name) = line.strip_prefix("DONE ") {
            done.push(name.to_owned());
            if done.len() == 40 {
                break;
            }
        }
    }
    c.kill().unwrap(); // SIGKILL on Unix
    c.wait().unwrap();
    assert_eq!(done.len(), 40, "the child did not get far enough");
    check_after_kill(&path, &done);
}

fn check_after_kill(path: &Path, done: &[String]) {
    let store = SqliteStore::open(path).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let runs = rt
        .block_on(store.read_task_runs(&TaskRunFilter::new()))
        .unwrap();
    for name in done {
        let run = runs
            .iter()
            .find(|r| &r.name == name)
            .unwrap_or_else(|| panic!("{name} lost"));
        assert!(
            run.state.as_ref().unwrap().is_completed(),
            "{name}: {:?}",
            run.state
        );
    }
    // Writes commit in the order they were made: what survived is every step up to some
    // point, all Completed, then at most the step that was running.
    let step_of = |name: &str| name["step-".len()..].parse::<usize>().unwrap();
    let mut steps: Vec<_> = runs.iter().map(|r| (step_of(&r.name), r)).collect();
    steps.sort_by_key(|(i, _)| *i);
    for (at, (i, run)) in steps.iter().enumerate() {
        assert_eq!(at, *i, "step {at} is missing but a later one was stored");
        let completed = run.state.as_ref().unwrap().is_completed();
        assert!(
            completed || at + 1 == steps.len(),
            "step {i} is {:?}",
            run.state
        );
        let history = rt.block_on(store.read_task_run_states(run.id)).unwrap();
        let kinds: Vec<_> = history.iter().map(|s| s.state_type()).collect();
        let whole = [StateType::Pending, StateType::Running, StateType::Completed];
        let len = if completed { 3 } else { kinds.len().min(2) };
        assert_eq!(kinds, whole[..len], "step {i}: a state history with a gap");
    }
    // The flow run itself was cut short: it is still Running (a reaper will mark it Crashed).
    let flows = rt
        .block_on(store.read_flow_runs(&Default::default()))
        .unwrap();
    assert_eq!(flows.len(), 1);
    assert!(flows[0].state.as_ref().unwrap().is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connections_writing_at_once_never_see_a_locked_database() {
    if std::env::var_os("ORION_CHILD").is_some() {
        return;
    }
    let path = temp_db("two");
    let a = Orion::with_store(Arc::new(SqliteStore::open(&path).unwrap()));
    let b = Orion::with_store(Arc::new(SqliteStore::open(&path).unwrap()));
    let (ra, rb) = tokio::join!(
        tokio::spawn(async move { long_flow_short().on(&a).return_state().await }),
        tokio::spawn(async move { long_flow_short().on(&b).return_state().await }),
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra.is_completed() && rb.is_completed(), "{ra} / {rb}");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store
            .read_task_runs(&TaskRunFilter::new())
            .await
            .unwrap()
            .len(),
        400
    );
}

#[flow(name = "short-flow")]
async fn long_flow_short() {
    for i in 0..200 {
        step(i).await;
    }
}

/// Child: opens the store at ORION_DB, reads it and tries one write; prints each outcome.
#[tokio::test]
async fn child_open() {
    if std::env::var_os("ORION_CHILD").is_none() {
        return;
    }
    match SqliteStore::open(std::env::var("ORION_DB").unwrap()) {
        Err(e) => println!("OPEN ERR {e}"),
        Ok(store) => {
            let flows = store.read_flows().await.map(|f| f.len());
            println!("READ {flows:?}");
            let flow = store.upsert_flow(orion::store::Flow::new("new")).await;
            println!("WRITE {:?}", flow.map(|f| f.name));
        }
    }
}

/// The uid of this process: the owner of a file it has just created.
#[cfg(unix)]
fn own_uid(dir: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    let probe = dir.join("uid-probe");
    std::fs::write(&probe, b"").unwrap();
    let uid = std::fs::metadata(&probe).unwrap().uid();
    std::fs::remove_file(probe).unwrap();
    uid
}

/// Runs `child_open` on `path` as an unprivileged user (nobody) when this process is root, so
/// that file permissions apply to it; returns its report lines.
#[cfg(unix)]
fn open_unprivileged(path: &Path) -> Vec<String> {
    use std::os::unix::process::CommandExt;
    let dir = path.parent().unwrap();
    let mut cmd = child("child_open", &[("ORION_DB", path.display().to_string())]);
    if own_uid(dir) == 0 {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().expect("the child runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            ["OPEN ERR", "READ", "WRITE"]
                .iter()
                .find_map(|tag| l.find(tag).map(|i| l[i..].to_owned()))
        })
        .collect()
}

/// What `child_open` said when it could not open `path`: the one line it printed.
#[cfg(unix)]
fn open_error(path: &Path) -> String {
    let report = open_unprivileged(path);
    assert_eq!(report.len(), 1, "{report:?}");
    assert!(report[0].starts_with("OPEN ERR"), "{report:?}");
    report[0].clone()
}

/// A database with one flow, closed, in a directory of its own.
#[cfg(unix)]
fn stored_database(tag: &str) -> (PathBuf, Vec<u8>) {
    let path = temp_db(tag);
    let store = SqliteStore::open(&path).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(store.upsert_flow(orion::store::Flow::new("kept")))
        .unwrap();
    drop(store);
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

#[cfg(unix)]
#[test]
fn a_read_only_database_is_a_clear_error_and_is_left_as_it_was() {
    use std::os::unix::fs::PermissionsExt;
    if std::env::var_os("ORION_CHILD").is_some() {
        return;
    }
    let (path, before) = stored_database("ro");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let error = open_error(&path);
    assert!(error.contains("is read-only"), "{error}");
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file changed");
}

#[cfg(unix)]
#[test]
fn a_database_without_permission_to_read_is_a_clear_error_and_is_left_as_it_was() {
    use std::os::unix::fs::PermissionsExt;
    if std::env::var_os("ORION_CHILD").is_some() {
        return;
    }
    let (path, before) = stored_database("no-access");
    // Readable by its owner only, and the child is someone else (or, not being root, we take
    // the permission from ourselves).
    let mode = if own_uid(path.parent().unwrap()) == 0 {
        0o600
    } else {
        0o000
    };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    let error = open_error(&path);
    assert!(error.contains("permission denied"), "{error}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file changed");
}

#[cfg(unix)]
#[test]
fn a_new_database_in_a_directory_without_write_permission_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    if std::env::var_os("ORION_CHILD").is_some() {
        return;
    }
    let path = temp_db("locked-dir");
    let dir = path.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let error = open_error(&path);
    assert!(error.contains("is not writable"), "{error}");
    assert!(error.contains(&dir.display().to_string()), "{error}");
    assert!(!path.exists());
}

#[flow(name = "busy-flow")]
async fn busy_flow(n: u64) -> u64 {
    let sequential: u64 = {
        let mut total = 0;
        for i in 0..n {
            total += step(i).await;
        }
        total
    };
    sequential
        + orion::gather(orion::map(0..n, step))
            .await
            .iter()
            .sum::<u64>()
}

/// Child: runs `busy_flow` on ORION_DB and prints its final state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_busy_flow() {
    if std::env::var_os("ORION_CHILD").is_none() {
        return;
    }
    let orion = Orion::open(&format!("sqlite://{}", std::env::var("ORION_DB").unwrap()))
        .await
        .unwrap();
    let state = busy_flow(150).on(&orion).return_state().await;
    println!("FINAL {state}");
}

#[test]
fn processes_writing_one_file_at_once_all_finish_and_lose_nothing() {
    if std::env::var_os("ORION_CHILD").is_some() {
        return;
    }
    let path = temp_db("busy");
    drop(SqliteStore::open(&path).unwrap());
    let children: Vec<_> = (0..4)
        .map(|_| {
            child(
                "child_busy_flow",
                &[("ORION_DB", path.display().to_string())],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let errors = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}\n{errors}");
        assert!(text.contains("FINAL Completed"), "{text}\n{errors}");
        assert!(!errors.contains("locked"), "{errors}");
    }
    let store = SqliteStore::open(&path).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let runs = rt
        .block_on(store.read_task_runs(&TaskRunFilter::new()))
        .unwrap();
    assert_eq!(runs.len(), 4 * 300);
    assert!(
        runs.iter()
            .all(|r| r.state.as_ref().unwrap().is_completed())
    );
    let flows = rt
        .block_on(store.read_flow_runs(&Default::default()))
        .unwrap();
    assert_eq!(flows.len(), 4);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[task]
async fn short_step(i: u64) -> u64 {
    i + 1
}

#[flow]
async fn short_program() -> u64 {
    let mut total = 0;
    for i in 0..20 {
        total += short_step(i).await;
    }
    total
}

/// Child: a short program on the default runtime (`ORION_HOME`), which is never dropped.
#[tokio::test]
async fn child_short_program() {
    if std::env::var_os("ORION_CHILD").is_none() {
        return;
    }
    assert_eq!(short_program().await, 210);
}

#[test]
fn the_write_ahead_log_stays_small_across_many_short_programs() {
    if std::env::var_os("ORION_CHILD").is_some() {
        return;
    }
    let home = temp::temp_dir("wal-home");
    let env = [("ORION_HOME", home.display().to_string())];
    let wal = home.join("orion.db-wal");
    let mut sizes = Vec::new();
    for _ in 0..40 {
        let status = child("child_short_program", &env)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        sizes.push(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    // Each program writes about 100 KiB of log; without checkpoints that reclaim it, the log
    // grew by that much on every run.
    let max = *sizes.iter().max().unwrap();
    assert!(max < 1 << 20, "the log grew to {max} bytes: {sizes:?}");
    let store = SqliteStore::open(home.join("orion.db")).unwrap();
    let runs = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(store.read_flow_runs(&Default::default()))
        .unwrap();
    assert_eq!(runs.len(), 40, "every program's run is stored");
    assert!(
        runs.iter()
            .all(|r| r.state.as_ref().unwrap().is_completed())
    );
}
