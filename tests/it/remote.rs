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
