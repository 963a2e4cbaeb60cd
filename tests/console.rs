//! What a program prints: each test runs a child copy of this binary with a chosen
//! environment and reads its standard error.

#[path = "support/temp.rs"]
mod temp;

use std::process::Command;

use orion::prelude::*;

#[task]
async fn log_message(name: String) {
    get_run_logger().info(format!("Hello {name}!"));
    get_run_logger().warning("a warning");
}

#[flow(name = "leonardo_dicapriflow")]
async fn leonardo_dicapriflow(name: String) {
    log_message(name).await;
}

/// Runs only as the child: the tutorial flow on the default runtime.
#[tokio::test]
async fn child_program() {
    if std::env::var_os("ORION_CONSOLE_CHILD").is_none() {
        return;
    }
    leonardo_dicapriflow("Leo".to_string()).await;
}

/// A fresh ORION_HOME for a child.
fn home() -> std::path::PathBuf {
    temp::temp_dir("console")
}

fn run_child(env: &[(&str, &str)]) -> Vec<String> {
    run_child_in(&home(), env)
}

fn run_child_in(home: &std::path::Path, env: &[(&str, &str)]) -> Vec<String> {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("ORION_HOME", home).env_remove("ORION_DATABASE_URL");
    cmd.args([
        "child_program",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd.env("ORION_CONSOLE_CHILD", "1")
        .env_remove("ORION_LOGGING_LEVEL")
        .env_remove("ORION_LOGGING_CONSOLE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stderr)
        .unwrap()
        .lines()
        .filter(|l| l.contains(" | "))
        .map(str::to_owned)
        .collect()
}

/// `HH:MM:SS.mmm | LEVEL   | `, and the rest of the line.
fn split(line: &str) -> (&str, &str) {
    let (time, rest) = line.split_at(12);
    let bytes = time.as_bytes();
    assert!(
        bytes[2] == b':'
            && bytes[5] == b':'
            && bytes[8] == b'.'
            && time.chars().filter(char::is_ascii_digit).count() == 9,
        "bad time in {line:?}"
    );
    let rest = rest.strip_prefix(" | ").unwrap();
    (&rest[..7], &rest[10..])
}

#[test]
fn the_tutorial_prints_the_six_prefect_line_shapes() {
    let lines = run_child(&[]);
    assert_eq!(lines.len(), 7, "{lines:#?}");
    let parsed: Vec<(&str, &str)> = lines.iter().map(|l| split(l)).collect();
    let run = parsed[0]
        .1
        .strip_prefix("orion.engine - Created flow run '")
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    let task = parsed[2]
        .1
        .rsplit_once("Created task run '")
        .unwrap()
        .1
        .split('\'')
        .next()
        .unwrap();
    assert!(
        task.starts_with("log_message-") && task.ends_with("-0"),
        "{task}"
    );
    let expected = [
        (
            "INFO   ",
            format!("orion.engine - Created flow run '{run}' for flow 'leonardo_dicapriflow'"),
        ),
        (
            "INFO   ",
            format!("Flow run '{run}' - Using task runner 'ConcurrentTaskRunner'"),
        ),
        (
            "INFO   ",
            format!("Flow run '{run}' - Created task run '{task}' for task 'log_message'"),
        ),
        ("INFO   ", format!("Task run '{task}' - Hello Leo!")),
        ("WARNING", format!("Task run '{task}' - a warning")),
        (
            "INFO   ",
            format!("Task run '{task}' - Finished in state Completed(None)"),
        ),
        (
            "INFO   ",
            format!("Flow run '{run}' - Finished in state Completed('All states completed.')"),
        ),
    ];
    for ((level, text), (want_level, want_text)) in parsed.iter().zip(&expected) {
        assert_eq!((*level, *text), (*want_level, want_text.as_str()));
    }
}

#[test]
fn orion_logging_level_filters_the_console() {
    let lines = run_child(&[("ORION_LOGGING_LEVEL", "WARNING")]);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("| WARNING | Task run '") && lines[0].ends_with("a warning"));
}

#[test]
fn the_console_can_be_turned_off_and_bad_settings_are_reported() {
    assert!(run_child(&[("ORION_LOGGING_CONSOLE", "false")]).is_empty());

    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_program", "--exact", "--nocapture"])
        .env("ORION_CONSOLE_CHILD", "1")
        .env("ORION_LOGGING_LEVEL", "LOUD")
        .env("ORION_HOME", home());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("orion: ignoring ORION_LOGGING_LEVEL: unknown log level \"LOUD\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("| INFO    | "),
        "falls back to INFO: {stderr}"
    );
}

#[test]
fn with_nothing_configured_runs_go_to_the_sqlite_file_in_orion_home() {
    let home = home();
    let lines = run_child_in(&home, &[]);
    let run = lines[0]
        .split("Created flow run '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_owned();
    let db = home.join("orion.db");
    assert!(db.exists(), "{} was not created", db.display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = orion::store::SqliteStore::open(&db).unwrap();
    let runs = rt
        .block_on(orion::store::Store::read_flow_runs(
            &store,
            &Default::default(),
        ))
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].name, run);
    assert!(runs[0].state.as_ref().unwrap().is_completed());

    // A file that cannot be a database: the program still runs, in memory, and says why.
    let broken = home.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("orion.db"),
        b"not a database at all, just text".repeat(50),
    )
    .unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_program", "--exact", "--nocapture"])
        .env("ORION_CONSOLE_CHILD", "1")
        .env("ORION_HOME", &broken);
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("keeping this program's runs in memory instead"),
        "{stderr}"
    );
    assert!(stderr.contains("Finished in state Completed"), "{stderr}");
}
