//! A host program's own `tracing` subscriber keeps receiving every event while orion captures
//! the events of its runs. Its own binary: the subscriber is process-wide.

use std::sync::Arc;
use std::sync::Mutex;

use orion::prelude::*;
use orion::testing::TestHarness;
use tracing::span;
use tracing::subscriber::Subscriber;

/// A minimal subscriber that records event messages.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Text(String);
impl tracing::field::Visit for Text {
    fn record_debug(&mut self, _: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0 = format!("{value:?}");
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = Text(String::new());
        event.record(&mut text);
        self.0.lock().unwrap().push(text.0);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[task]
async fn traced() {
    tracing::info!("inside the task");
}

#[flow]
async fn traced_flow() {
    traced().await;
}

#[tokio::test]
async fn the_host_subscriber_still_sees_every_event() {
    let recorder = Recorder::default();
    tracing::subscriber::set_global_default(recorder.clone()).unwrap();
    tracing::info!("before any run");
    let report = TestHarness::new().run(traced_flow()).await.unwrap();
    tracing::info!("after the run");
    assert_eq!(
        *recorder.0.lock().unwrap(),
        ["before any run", "inside the task", "after the run"]
    );
    assert!(report.log_messages().contains(&"inside the task"));
}
