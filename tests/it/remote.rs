//! Runtimes whose store is an orion server: the conformance suite over HTTP, the seed's REST
//! story, errors that travel, and refusals.

use std::time::Duration;

use orion::prelude::*;
use orion::store::{MemoryStore, RemoteStore, Store};
use serde_json::json;

use super::server::{hello_deployment, served, wait_final};
use crate::api::serve;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_store_passes_the_conformance_suite() {
    orion::store::testing::run_all(|| async {
        let orion = Orion::with_store(std::sync::Arc::new(MemoryStore::new()));
        let addr = serve(&orion, None).await;
        RemoteStore::connect(&format!("http://{addr}/api"), None)
            .await
            .unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_using_a_server_as_its_runtime_runs_the_seeds_rest_story() {
    let (server, base) = served().await;
    // Another program: its runtime's store is the server; it applies a deployment, serves it
    // with an agent, and creates a run as the seed's REST snippet does.
    let remote = Orion::open(&format!("{base}/api")).await.unwrap();
    hello_deployment(&remote).await;
    let handle = remote
        .serve()
        .scheduler(None)
        .agent(Agent::new().poll_interval(Duration::from_millis(100)))
        .start();
    let deployment = remote
        .client()
        .read_deployment_by_name("srv-hello/greetings")
        .await
        .unwrap();
    let run = remote
        .client()
        .create_flow_run_from_deployment(&deployment, None)
        .await
        .unwrap();
    // The server's own runtime sees the run finish, with its task runs and log lines.
    let done = wait_final(&server, run.id).await;
    handle.shutdown().await.unwrap();
    let state = done.state.unwrap();
    assert!(state.is_completed(), "{state:?}");
    assert_eq!(
        server
            .client()
            .read_task_runs_of(run.id)
            .await
            .unwrap()
            .len(),
        2
    );
    let logs = server
        .client()
        .read_logs(&orion::store::LogFilter::new().flow_run_id(run.id))
        .await
        .unwrap();
    assert_eq!(logs.iter().filter(|l| l.message == "Hello Leo!").count(), 2);
    // Parameters are checked before the run is created, over HTTP too.
    let mut options = orion::deployment::DeploymentRunOptions::new();
    options.parameters = serde_json::from_value(json!({"times": -1})).unwrap();
    let err = remote
        .client()
        .create_flow_run_from_deployment(&deployment, Some(options))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("times"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_comes_back_as_the_same_error() {
    let (_server, base) = served().await;
    let store = RemoteStore::connect(&format!("{base}/api"), None)
        .await
        .unwrap();
    let missing = orion::Uuid::from_u128(42);
    let err = store
        .set_flow_run_state(missing, None, State::running())
        .await
        .unwrap_err();
    assert!(
        matches!(err, orion::store::StoreError::NotFound { what: "flow run", id } if id == missing),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_runtime_is_refused_clearly() {
    // Nothing listens there.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = RemoteStore::connect(&format!("http://{free}/api"), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot reach the orion server"),
        "{err}"
    );
    let err = Orion::open("https://example.invalid/api")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("plain HTTP"), "{err}");
    // A server with a token refuses a runtime without it, or with another.
    let orion = Orion::memory();
    let addr = serve(&orion, Some("s3cret")).await;
    let url = format!("http://{addr}/api");
    let err = RemoteStore::connect(&url, None).await.unwrap_err();
    assert!(err.to_string().contains("needs a token"), "{err}");
    let err = RemoteStore::connect(&url, Some("guess".into()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("wrong API token"), "{err}");
    let store = RemoteStore::connect(&url, Some("s3cret".into()))
        .await
        .unwrap();
    assert!(store.read_flows().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_long_poll_wakes_remote_agents_for_new_runs() {
    let (server, base) = served().await;
    let d = hello_deployment(&server).await;
    // Agents over this store poll by themselves only every minute: a run they take within
    // the test's time was announced by the server's long poll.
    let store = RemoteStore::connect(&format!("{base}/api"), None)
        .await
        .unwrap()
        .poll_interval(Duration::from_secs(60));
    let remote = Orion::with_store(std::sync::Arc::new(store));
    let handle = remote
        .serve()
        .scheduler(None)
        .late_runs(None)
        .reaper(None)
        .agent(Agent::new())
        .start();
    // Let the agent look once and go to sleep before the run exists.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let run = server
            .client()
            .create_flow_run_from_deployment(&d, None)
            .await
            .unwrap();
        let done = tokio::time::timeout(Duration::from_secs(20), wait_final(&server, run.id))
            .await
            .expect("the agent was woken for the new run");
        assert!(done.state.unwrap().is_completed());
    }
    handle.shutdown().await.unwrap();
}

/// A server over `orion` counting the store calls it answers (`POST /api/store`).
async fn counted(orion: &Orion) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let router = orion::server::Api::new("127.0.0.1:0".parse().unwrap())
        .router(orion)
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                if req.uri().path() == "/api/store" {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                next.run(req)
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}/api"), calls)
}

/// A memory-store server, and a remote store using it.
async fn remote_over_memory() -> (Orion, RemoteStore) {
    let server = Orion::memory();
    let addr = serve(&server, None).await;
    let store = RemoteStore::connect(&format!("http://{addr}/api"), None)
        .await
        .unwrap();
    (server, store)
}

/// Deletes flow run `id` on the server, as another process would.
async fn delete_on_server(server: &Orion, id: orion::Uuid) {
    server
        .client()
        .store()
        .delete_flow_runs(&orion::store::FlowRunFilter::new().ids([id]))
        .await
        .unwrap();
}

/// A flow run Running through `store`, so its task runs are written behind there.
async fn running_here(store: &RemoteStore) -> orion::store::FlowRun {
    let flow = store
        .upsert_flow(orion::store::Flow::new("behind"))
        .await
        .unwrap();
    let mut run = orion::store::FlowRun::new(&flow, "behind-run");
    run.state = Some(State::pending());
    let run = store.create_flow_run(run).await.unwrap();
    let pending = run.state.as_ref().map(State::id);
    assert_eq!(
        store
            .set_flow_run_state(run.id, pending, State::running())
            .await
            .unwrap(),
        orion::store::SetState::Written
    );
    run
}

fn task_run_of(run: &orion::store::FlowRun, i: u32) -> orion::store::TaskRun {
    let mut task = orion::store::TaskRun::new(format!("t-{i}"), "t".into(), i);
    task.flow_run_id = Some(run.id);
    task.state = Some(State::pending());
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_runs_of_a_flow_run_executing_here_are_written_behind_in_batches() {
    use std::sync::atomic::Ordering;
    let server = Orion::memory();
    let (url, calls) = counted(&server).await;
    let store = RemoteStore::connect(&url, None).await.unwrap();
    let run = running_here(&store).await;
    let before = calls.load(Ordering::SeqCst);
    // 50 task runs, three writes each, every one answered at once.
    for i in 0..50 {
        let task = store.create_task_run(task_run_of(&run, i)).await.unwrap();
        let mut current = task.state.as_ref().map(State::id);
        for next in [State::running(), State::completed()] {
            let id = next.id();
            let written = store
                .set_task_run_state(task.id, current, next)
                .await
                .unwrap();
            assert_eq!(written, orion::store::SetState::Written);
            current = Some(id);
        }
    }
    // Read back (a read waits for the writes queued before it), here and on the server.
    let stored = store
        .read_task_runs(&orion::store::TaskRunFilter::new().flow_run_id(run.id))
        .await
        .unwrap();
    let sent = calls.load(Ordering::SeqCst) - before;
    assert_eq!(stored.len(), 50);
    assert!(
        stored
            .iter()
            .all(|t| t.state.as_ref().unwrap().is_completed()
                && t.run_count == 1
                && t.start_time.is_some()
                && t.end_time.is_some())
    );
    let on_server = server.client().read_task_runs_of(run.id).await.unwrap();
    assert_eq!(on_server.len(), 50);
    // 150 writes and a read took far fewer requests than calls.
    assert!(sent <= 76, "{sent} requests for 150 writes and a read");
    // A second create with a taken id is refused at once.
    let mut again = task_run_of(&run, 0);
    again.id = stored[0].id;
    let err = store.create_task_run(again).await.unwrap_err();
    assert!(
        matches!(
            err,
            orion::store::StoreError::AlreadyExists {
                what: "task run",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_run_write_the_server_refused_is_reported_by_the_next_write() {
    let (server, store) = remote_over_memory().await;
    let run = running_here(&store).await;
    // The run is deleted on the server; this process does not know yet.
    delete_on_server(&server, run.id).await;
    // The create is answered here, sent behind, and refused there ...
    store.create_task_run(task_run_of(&run, 0)).await.unwrap();
    // ... which the flow run's next write reports.
    let err = store
        .set_flow_run_state(run.id, None, State::completed())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("was not stored") && err.to_string().contains("flow run"),
        "{err}"
    );
    // Its next task runs are created the awaited way, and refused at once.
    let err = store
        .create_task_run(task_run_of(&run, 1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            orion::store::StoreError::NotFound {
                what: "flow run",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_run_another_process_moved_meets_its_real_state() {
    let (server, store) = remote_over_memory().await;
    let run = running_here(&store).await;
    let task = store.create_task_run(task_run_of(&run, 0)).await.unwrap();
    let running = State::running();
    let running_id = running.id();
    store
        .set_task_run_state(task.id, task.state.as_ref().map(State::id), running)
        .await
        .unwrap();
    // Stored (a read waits for it); then another process cancels it on the server.
    assert!(
        store
            .read_task_run(task.id)
            .await
            .unwrap()
            .unwrap()
            .state
            .unwrap()
            .is_running()
    );
    let cancelled = State::cancelled("by hand");
    let cancelled_id = cancelled.id();
    server
        .client()
        .store()
        .set_task_run_state(task.id, Some(running_id), cancelled)
        .await
        .unwrap();
    // This process still believes it Running: its write is answered, and refused behind.
    let done = State::completed();
    let done_id = done.id();
    assert_eq!(
        store
            .set_task_run_state(task.id, Some(running_id), done)
            .await
            .unwrap(),
        orion::store::SetState::Written
    );
    let seen = store.read_task_run(task.id).await.unwrap().unwrap();
    assert_eq!(seen.state.as_ref().map(State::id), Some(cancelled_id));
    // Its next write is awaited and meets the real state.
    match store
        .set_task_run_state(task.id, Some(done_id), State::failed("x"))
        .await
        .unwrap()
    {
        orion::store::SetState::Conflict { current } => {
            assert_eq!(current.map(|s| s.id()), Some(cancelled_id));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_running_flow_runs_task_runs_are_written_behind() {
    let (server, store) = remote_over_memory().await;
    let run = running_here(&store).await;
    // Waiting for a retry: not running here any more.
    let current = store.read_flow_run(run.id).await.unwrap().unwrap().state;
    let wait = State::awaiting_retry(jiff::Timestamp::now());
    assert_eq!(
        store
            .set_flow_run_state(run.id, current.as_ref().map(State::id), wait)
            .await
            .unwrap(),
        orion::store::SetState::Written
    );
    delete_on_server(&server, run.id).await;
    // So a task run's create is awaited, and refused at once.
    let err = store
        .create_task_run(task_run_of(&run, 0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            orion::store::StoreError::NotFound {
                what: "flow run",
                ..
            }
        ),
        "{err:?}"
    );
}
