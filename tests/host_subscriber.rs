//! A host program's own `tracing` subscriber keeps receiving every event while orion captures
//! the events of its runs. Its own binary: the subscriber is process-wide.

#[path = "support/recorder.rs"]
mod recorder;

use orion::prelude::*;
use orion::testing::TestHarness;
use recorder::Recorder;

#[task]
async fn traced() {
    tracing::info!("inside the task");
}

#[flow]
async fn traced_flow() {
    traced().await;
}

#[tokio::test]
async fn a_host_subscriber_set_after_the_first_run_still_sees_every_event() {
    // A run before any subscriber exists: its events reach nobody but the run's logs.
    let early = TestHarness::new().run(traced_flow()).await.unwrap();
    assert!(early.log_messages().contains(&"inside the task"));

    let recorder = Recorder::default();
    tracing::subscriber::set_global_default(recorder.clone()).unwrap();
    tracing::info!("before the run");
    let report = TestHarness::new().run(traced_flow()).await.unwrap();
    tracing::info!("after the run");
    assert_eq!(
        recorder.messages(),
        ["before the run", "inside the task", "after the run"]
    );
    assert!(report.log_messages().contains(&"inside the task"));
}
