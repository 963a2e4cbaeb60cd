use orion::prelude::*;
use orion::store::LogLevel;
use orion::testing::TestHarness;

#[task]
async fn noisy() {
    tracing::info!("plain tracing info");
    tracing::warn!(attempt = 3, "with a field");
    tracing::error!(target: "my_app::db", "connection lost");
    tracing::debug!("debug is below the default level");
    get_run_logger().critical("run logger critical");
}

#[flow]
async fn noisy_flow() {
    tracing::info!("from the flow body");
    noisy().await;
}

#[tokio::test]
async fn tracing_events_inside_a_run_are_stored_as_its_logs() {
    tracing::info!("outside any run: not stored");
    let report = TestHarness::new().run(noisy_flow()).await.unwrap();
    let task = &report.task_runs[0];
    let of_task: Vec<(LogLevel, &str, &str)> = report
        .logs
        .iter()
        .filter(|l| l.task_run_id == Some(task.id))
        .map(|l| (l.level, &*l.name, l.message.as_str()))
        .collect();
    assert_eq!(
        of_task,
        [
            (LogLevel::Info, "it::logging", "plain tracing info"),
            (LogLevel::Warning, "it::logging", "with a field attempt=3"),
            (LogLevel::Error, "my_app::db", "connection lost"),
            (LogLevel::Critical, "orion.task_runs", "run logger critical"),
            (
                LogLevel::Info,
                "orion.task_runs",
                "Finished in state Completed(None)"
            ),
        ]
    );
    let from_flow = report
        .logs
        .iter()
        .find(|l| l.message == "from the flow body")
        .unwrap();
    assert_eq!(from_flow.task_run_id, None);
    assert_eq!(from_flow.flow_run_id, Some(report.flow_run.id));
    assert!(
        !report
            .log_messages()
            .iter()
            .any(|m| m.contains("outside any run"))
    );
}

#[test]
fn the_console_format_pads_levels_like_prefect() {
    let at: jiff::Timestamp = "2026-03-01T08:05:09.004Z".parse().unwrap();
    let utc = jiff::tz::TimeZone::UTC;
    let line = |level| orion::logging::format_line(at, &utc, level, "Task run 't-0'", "m");
    assert_eq!(
        line(LogLevel::Debug),
        "08:05:09.004 | DEBUG   | Task run 't-0' - m"
    );
    assert_eq!(
        line(LogLevel::Warning),
        "08:05:09.004 | WARNING | Task run 't-0' - m"
    );
    assert_eq!(
        line(LogLevel::Critical),
        "08:05:09.004 | CRITICAL | Task run 't-0' - m"
    );
    let tokyo = jiff::tz::TimeZone::get("Asia/Tokyo").unwrap();
    let local = orion::logging::format_line(at, &tokyo, LogLevel::Info, "orion.engine", "x");
    assert_eq!(local, "17:05:09.004 | INFO    | orion.engine - x");
}

#[test]
fn log_levels_parse_from_their_names_and_refuse_others() {
    assert_eq!("warning".parse::<LogLevel>(), Ok(LogLevel::Warning));
    assert_eq!("WARN".parse::<LogLevel>(), Ok(LogLevel::Warning));
    assert_eq!(" info ".parse::<LogLevel>(), Ok(LogLevel::Info));
    assert_eq!("40".parse::<LogLevel>(), Ok(LogLevel::Error));
    let err = "LOUD".parse::<LogLevel>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown log level \"LOUD\": expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    );
}

#[task]
fn traced_sync(label: String) {
    tracing::info!("sync task of {label}");
}

#[flow]
async fn traced_by(label: String) {
    tracing::info!("flow of {label}");
    traced_sync(label).await;
}

#[tokio::test]
async fn each_scoped_subscriber_gets_the_events_emitted_where_it_is_the_default() {
    use crate::recorder::Recorder;
    // The usual pattern of a test suite: one subscriber per test, set for its scope.
    let (first, second) = (Recorder::default(), Recorder::default());
    {
        let _guard = tracing::subscriber::set_default(first.clone());
        TestHarness::new()
            .run(traced_by("one".into()))
            .await
            .unwrap();
    }
    {
        let _guard = tracing::subscriber::set_default(second.clone());
        TestHarness::new()
            .run(traced_by("two".into()))
            .await
            .unwrap();
    }
    assert_eq!(first.messages(), ["flow of one", "sync task of one"]);
    assert_eq!(second.messages(), ["flow of two", "sync task of two"]);
}

#[derive(Debug)]
struct Root;
impl std::fmt::Display for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("disk full")
    }
}
impl std::error::Error for Root {}

#[derive(Debug)]
struct SaveError(Root);
impl std::fmt::Display for SaveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("could not save report")
    }
}
impl std::error::Error for SaveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[task]
async fn save() -> Result<(), SaveError> {
    Err(SaveError(Root))
}

#[task(retries = 1)]
async fn fetch_config() -> anyhow::Result<u32> {
    use anyhow::Context as _;
    let n: u32 = "x".parse().context("reading config.toml")?;
    Ok(n)
}

#[task]
fn crunch() -> u32 {
    let v: Vec<u32> = Vec::new();
    v[3]
}

#[flow]
async fn failing_in_three_ways() {
    let _ = save().return_state().await;
    let _ = fetch_config().return_state().await;
    let _ = crunch().return_state().await;
}

#[flow]
async fn flow_panics() {
    panic!("flow body gave up");
}

fn errors_of(report: &orion::testing::FlowRunReport<()>, level: LogLevel) -> Vec<String> {
    report
        .logs
        .iter()
        .filter(|l| l.level == level && l.message.contains("failed with error"))
        .map(|l| l.message.clone())
        .collect()
}

#[tokio::test]
async fn a_failed_run_stores_an_error_line_naming_the_error_and_where_it_panicked() {
    let report = TestHarness::new()
        .run(failing_in_three_ways())
        .await
        .unwrap();
    let errors = errors_of(&report, LogLevel::Error);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert_eq!(
        errors[0],
        "Task run failed with error: could not save report: disk full"
    );
    assert_eq!(
        errors[1],
        "Task run failed with error: reading config.toml: invalid digit found in string \
         - Retries are exhausted"
    );
    let here = file!();
    assert!(
        errors[2].starts_with(&format!("Task run failed with error: panicked at {here}:")),
        "{}",
        errors[2]
    );
    assert!(errors[2].ends_with("index out of bounds: the len is 0 but the index is 3"));
    // The retry in between is INFO, as in Prefect.
    let retries = errors_of(&report, LogLevel::Info);
    assert_eq!(
        retries,
        [
            "Task run failed with error: reading config.toml: invalid digit found in string \
          - Retry 1/1 will start 0 second(s) from now"
        ]
    );

    let report = TestHarness::new().run(flow_panics()).await.unwrap();
    let errors = errors_of(&report, LogLevel::Error);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with(&format!("Flow run failed with error: panicked at {here}:")));
    assert!(errors[0].ends_with(": flow body gave up"));
}
