//! The command line as a user runs it: `cli_app` (a program with flows and the CLI embedded
//! in its main) as real processes on a temporary SQLite file — every command, JSON output
//! parsed, error paths and exit codes, an agent in one process taking a run created by
//! another, and SIGINT/SIGTERM stopping long-running commands cleanly.

#[path = "support/temp.rs"]
mod temp;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const APP: &str = env!("CARGO_BIN_EXE_cli_app");

/// A temporary database and how to run the app against it.
struct Db(PathBuf);

impl Db {
    fn new(tag: &str) -> Self {
        Db(temp::temp_db(tag))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(APP);
        cmd.args(args)
            .env(
                "ORION_DATABASE_URL",
                format!("sqlite://{}", self.0.display()),
            )
            .env("ORION_LOGGING_CONSOLE", "true")
            .env("NO_COLOR", "1")
            .env_remove("COLUMNS");
        cmd
    }

    /// Runs the app to its end: (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let Output {
            status,
            stdout,
            stderr,
        } = self.command(args).output().unwrap();
        (
            status.code().unwrap_or(-1),
            String::from_utf8(stdout).unwrap(),
            String::from_utf8(stderr).unwrap(),
        )
    }

    /// Runs a command that must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{args:?} failed:\n{out}\n{err}");
        out
    }

    /// Runs a command with `--output json` that must succeed; its parsed output.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{out}"))
    }

    /// Runs a command that must fail with `code`; its standard error.
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let (got, out, err) = self.run(args);
        assert_eq!(
            got, code,
            "{args:?} exit {got}, wanted {code}:\n{out}\n{err}"
        );
        assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
        err
    }

    /// Starts a long-running command with piped standard output.
    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v[field].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until `flow-run inspect` shows `run` in a final state; its JSON.
fn wait_final(db: &Db, run: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = db.json(&["flow-run", "inspect", run]);
        let kind = v["state_type"].as_str().unwrap_or_default().to_owned();
        if ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"].contains(&kind.as_str()) {
            return v;
        }
        assert!(Instant::now() < deadline, "{run} still {kind}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the first line of `child`'s output, then returns the reader for the rest.
fn first_line(child: &mut Child) -> (String, BufReader<std::process::ChildStdout>) {
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    (line, reader)
}

/// Waits for `child` to exit within `secs`; its exit code.
fn exit_within(child: &mut Child, secs: u64) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not stop within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_spec(dir: &Path, name: &str, text: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn deployments_are_created_from_the_program_and_from_files_all_or_nothing() {
    let db = Db::new("cli-deploy");
    let out = db.ok(&["deployment", "create"]);
    assert!(
        out.starts_with("Loading deployments from program 'cli_app'...\n"),
        "{out}"
    );
    assert!(out.contains("Created deployment 'my-first-deployment' for flow 'Addition Machine'"));
    assert!(out.contains("Created deployment 'nap' for flow 'slow'"));
    let again = db.ok(&["deployment", "create"]);
    assert!(again.contains("Updated deployment 'my-first-deployment' for flow 'Addition Machine'"));

    let dir = db.0.parent().unwrap().to_owned();
    let spec = write_spec(
        &dir,
        "spec.yaml",
        "name: hourly\nflow_name: Addition Machine\nparameters: {nums: [10, 20]}\nschedule: {interval: 3600}\ntags: [nightly]\n",
    );
    let out = db.ok(&["deployment", "create", &spec]);
    assert!(out.contains(&format!("Loading deployments from YAML file '{spec}'...")));
    assert!(out.contains("Created deployment 'hourly' for flow 'Addition Machine'"));
    let json_spec = write_spec(
        &dir,
        "spec.json",
        r#"[{"name": "from-json", "flow_name": "fallible", "parameters": {"fail": true}}]"#,
    );
    let out = db.ok(&["deployment", "create", &json_spec]);
    assert!(out.contains(&format!(
        "Loading deployments from JSON file '{json_spec}'..."
    )));
    assert!(out.contains("Created deployment 'from-json' for flow 'fallible'"));
    db.ok(&["deployment", "delete", "fallible/from-json"]);

    let list = db.json(&["deployment", "ls"]);
    let mut full = names(&list, "full_name");
    full.sort();
    assert_eq!(
        full,
        [
            "Addition Machine/hourly",
            "Addition Machine/my-first-deployment",
            "fallible/sometimes-fails",
            "slow/nap"
        ]
    );
    let hourly = db.json(&["deployment", "inspect", "Addition Machine/hourly"]);
    assert_eq!(hourly["parameters"], serde_json::json!({"nums": [10, 20]}));
    assert_eq!(hourly["tags"], serde_json::json!(["nightly"]));
    assert_eq!(hourly["work_queue_name"], "default");
    assert_eq!(hourly["paused"], false);
    let by_id = db.json(&["deployment", "inspect", hourly["id"].as_str().unwrap()]);
    assert_eq!(by_id["full_name"], "Addition Machine/hourly");
    let schedules = db.json(&["deployment", "schedule", "ls", "Addition Machine/hourly"]);
    assert_eq!(schedules[0]["active"], true);
    let preview = db.json(&[
        "deployment",
        "schedule",
        "preview",
        "Addition Machine/hourly",
        "-n",
        "3",
    ]);
    let dates = preview["next_dates"].as_array().unwrap();
    assert_eq!(dates.len(), 3);
    let t = |i: usize| -> jiff::Timestamp { dates[i]["time"].as_str().unwrap().parse().unwrap() };
    assert_eq!(
        t(1).duration_since(t(0)),
        jiff::SignedDuration::from_hours(1)
    );

    // One bad spec among good ones: nothing of the file is stored, the error names it.
    let mixed = write_spec(
        &dir,
        "mixed.yaml",
        "- name: fine\n  flow_name: Addition Machine\n  parameters: {nums: [1]}\n- name: wrong\n  flow_name: Addition Machine\n  parameters: {nums: \"many\"}\n",
    );
    let err = db.fails(2, &["deployment", "create", &mixed]);
    assert!(err.contains("nums"), "{err}");
    db.fails(2, &["deployment", "inspect", "Addition Machine/fine"]);
    let garbage = write_spec(&dir, "garbage.yaml", "name: [unclosed\n");
    let err = db.fails(2, &["deployment", "create", &garbage]);
    assert!(err.contains("garbage.yaml"), "{err}");
    let err = db.fails(2, &["deployment", "create", "/nonexistent/spec.yaml"]);
    assert!(err.contains("/nonexistent/spec.yaml"), "{err}");

    // Pause, resume, delete.
    assert!(
        db.ok(&["deployment", "pause", "slow/nap"])
            .contains("Paused deployment 'slow/nap'")
    );
    assert_eq!(
        db.json(&["deployment", "inspect", "slow/nap"])["paused"],
        true
    );
    db.ok(&["deployment", "resume", "slow/nap"]);
    assert_eq!(
        db.json(&["deployment", "inspect", "slow/nap"])["paused"],
        false
    );
    db.ok(&["deployment", "delete", "slow/nap"]);
    let err = db.fails(2, &["deployment", "inspect", "slow/nap"]);
    assert!(
        err.contains("slow/nap") && err.contains("not found"),
        "{err}"
    );
}

#[test]
fn a_run_created_by_one_process_is_executed_by_an_agent_in_another_which_stops_on_sigint() {
    let db = Db::new("cli-agent");
    db.ok(&["deployment", "create"]);
    let mut agent = db.spawn(&["agent", "start", "--work-queue", "default"]);
    let (started, _rest) = first_line(&mut agent);
    assert!(
        started.starts_with("Starting agent on work queue(s) default"),
        "{started}"
    );

    let created = db.json(&[
        "deployment",
        "run",
        "Addition Machine/my-first-deployment",
        "--param",
        "nums=[5, 6]",
        "--tag",
        "cli",
    ]);
    let name = created["name"].as_str().unwrap().to_owned();
    assert_eq!(created["state_type"], "SCHEDULED");
    let done = wait_final(&db, &name);
    assert_eq!(done["state_type"], "COMPLETED", "{done}");
    assert_eq!(done["parameters"], serde_json::json!({"nums": [5, 6]}));
    assert!(done["tags"].as_array().unwrap().contains(&"cli".into()));
    let history: Vec<&str> = done["state_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["Scheduled", "Pending", "Running", "Completed"]);
    assert_eq!(done["task_runs"][0]["state_type"], "COMPLETED");
    let of_deployment = db.json(&[
        "flow-run",
        "ls",
        "--deployment",
        "Addition Machine/my-first-deployment",
    ]);
    assert_eq!(names(&of_deployment, "name"), std::slice::from_ref(&name));
    let none = db.json(&["flow-run", "ls", "--deployment", "fallible/sometimes-fails"]);
    assert_eq!(none, serde_json::json!([]));

    // The queue records who polled it.
    let queue = db.json(&["work-queue", "inspect", "default"]);
    assert!(
        queue["last_polled_by"]
            .as_str()
            .unwrap()
            .starts_with("agent-")
    );

    signal(&agent, "INT");
    assert_eq!(
        exit_within(&mut agent, 20),
        0,
        "SIGINT stops the agent cleanly"
    );
}

#[test]
fn execute_and_flow_run_report_the_final_state_in_the_exit_status() {
    let db = Db::new("cli-execute");
    db.ok(&["deployment", "create"]);
    let (code, out, err) = db.run(&[
        "deployment",
        "execute",
        "Addition Machine/my-first-deployment",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("finished in state Completed"), "{out}");
    assert!(
        err.contains("| WARNING | Flow run '") && err.contains("adding 4 numbers"),
        "{err}"
    );

    let err = db.fails(1, &["flow", "run", "fallible", "--param", "fail=true"]);
    assert!(
        err.contains("finished in state Failed('asked to fail')"),
        "{err}"
    );
    assert!(
        db.ok(&["flow", "run", "fallible", "--params", r#"{"fail": false}"#])
            .contains("Completed")
    );
    let err = db.fails(2, &["flow", "run", "fallible", "--param", "fail=maybe"]);
    assert!(err.contains("fail"), "{err}");
    let err = db.fails(2, &["flow", "run", "no-such-flow"]);
    assert!(
        err.contains("no-such-flow") && err.contains("Addition Machine"),
        "{err}"
    );
    let err = db.fails(2, &["deployment", "execute", "nope/nope"]);
    assert!(err.contains("nope/nope"), "{err}");

    let flows = db.json(&["flow", "ls"]);
    let adder = flows
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Addition Machine")
        .unwrap();
    assert_eq!(
        adder["parameters"],
        serde_json::json!([{"name": "nums", "type": "Vec<i64>"}])
    );

    // Failed runs are listed by state, and their logs read back by name, filtered by level.
    let failed = db.json(&["flow-run", "ls", "--state", "failed"]);
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(failed[0]["flow_name"], "fallible");
    let name = failed[0]["name"].as_str().unwrap();
    let logs = db.ok(&["flow-run", "logs", name]);
    assert!(
        logs.contains(&format!("| INFO    | Flow run '{name}' - ")),
        "{logs}"
    );
    assert!(
        logs.contains("Finished in state Failed('asked to fail')"),
        "{logs}"
    );
    let errors = db.ok(&["flow-run", "logs", name, "--level", "ERROR"]);
    assert!(!errors.contains("| INFO"), "{errors}");
    assert!(errors.contains("| ERROR   |"), "{errors}");
    db.fails(2, &["flow-run", "logs", name, "--level", "LOUD"]);
    let all = db.json(&["flow-run", "ls", "--limit", "2"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    let of_flow = db.json(&["flow-run", "ls", "--flow", "Addition Machine"]);
    assert_eq!(names(&of_flow, "flow_name"), ["Addition Machine"]);
}

#[test]
fn runs_are_found_by_name_or_id_cancelled_followed_and_deleted() {
    let db = Db::new("cli-runs");
    db.ok(&["deployment", "create"]);
    let later = db.json(&["deployment", "run", "slow/nap", "--start-in", "1h"]);
    let id = later["id"].as_str().unwrap().to_owned();
    let name = later["name"].as_str().unwrap().to_owned();
    let expected: jiff::Timestamp = later["expected_start_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let created: jiff::Timestamp = later["created"].as_str().unwrap().parse().unwrap();
    let ahead = expected.duration_since(created);
    assert!(ahead >= jiff::SignedDuration::from_mins(59), "{ahead:?}");
    assert_eq!(
        db.json(&["flow-run", "inspect", &id])["name"],
        name.as_str()
    );

    let preview = db.json(&["work-queue", "preview", "default"]);
    assert_eq!(names(&preview, "id"), std::slice::from_ref(&id));
    let out = db.ok(&["flow-run", "cancel", &name]);
    assert!(out.contains("is now Cancelled"), "{out}");
    assert_eq!(
        db.json(&["flow-run", "inspect", &name])["state_type"],
        "CANCELLED"
    );

    // Following a run's logs ends when the run does.
    let run = db.json(&[
        "deployment",
        "run",
        "slow/nap",
        "--params",
        r#"{"seconds": 1}"#,
    ]);
    let run_name = run["name"].as_str().unwrap().to_owned();
    let mut agent = db.spawn(&["agent", "start"]);
    let mut follow = db.spawn(&["flow-run", "logs", &run_name, "--follow"]);
    assert_eq!(exit_within(&mut follow, 30), 0);
    let mut followed = String::new();
    std::io::Read::read_to_string(&mut follow.stdout.take().unwrap(), &mut followed).unwrap();
    assert!(
        followed.contains("Finished in state Completed"),
        "{followed}"
    );
    signal(&agent, "TERM");
    assert_eq!(
        exit_within(&mut agent, 20),
        0,
        "SIGTERM stops the agent cleanly"
    );

    assert!(
        db.ok(&["flow-run", "delete", &id])
            .contains("Deleted flow run")
    );
    let err = db.fails(2, &["flow-run", "inspect", &id]);
    assert!(err.contains(&id), "{err}");
    let err = db.fails(2, &["flow-run", "logs", "no-such-run"]);
    assert!(err.contains("no-such-run"), "{err}");
}

#[test]
fn two_runs_with_one_name_are_an_error_listing_both() {
    let db = Db::new("cli-twins");
    db.ok(&["deployment", "create"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ids: Vec<String> = rt.block_on(async {
        let orion = orion::Orion::open(&format!("sqlite://{}", db.0.display()))
            .await
            .unwrap();
        let client = orion.client();
        let flow = client.create_flow("twins").await.unwrap();
        let mut ids = Vec::new();
        for _ in 0..2 {
            let mut run = orion::store::FlowRun::new(&flow, "twin");
            run.state = Some(orion::State::completed());
            ids.push(client.create_flow_run(run).await.unwrap().id.to_string());
        }
        ids
    });
    let err = db.fails(2, &["flow-run", "inspect", "twin"]);
    assert!(err.contains("2 flow runs are named \"twin\""), "{err}");
    for id in &ids {
        assert!(err.contains(id.as_str()), "{err}");
        db.ok(&["flow-run", "inspect", id]);
    }
}

#[test]
fn work_queues_are_managed_from_the_command_line() {
    let db = Db::new("cli-queues");
    let out = db.ok(&[
        "work-queue",
        "create",
        "reports",
        "--tag",
        "nightly",
        "--limit",
        "2",
        "--priority",
        "-1",
    ]);
    assert!(out.starts_with("Created work queue 'reports'"), "{out}");
    let err = db.fails(2, &["work-queue", "create", "reports"]);
    assert!(err.contains("already exists"), "{err}");
    let list = db.json(&["work-queue", "ls"]);
    assert_eq!(names(&list, "name"), ["reports", "default"], "by priority");
    assert_eq!(list[0]["concurrency_limit"], 2);
    assert_eq!(list[0]["priority"], -1);
    assert_eq!(list[0]["is_paused"], false);
    assert_eq!(list[0]["tags"], serde_json::json!(["nightly"]));

    db.ok(&["work-queue", "pause", "reports"]);
    assert_eq!(
        db.json(&["work-queue", "inspect", "reports"])["is_paused"],
        true
    );
    db.ok(&["work-queue", "resume", "reports"]);
    db.ok(&["work-queue", "set-concurrency-limit", "reports", "5"]);
    let q = db.json(&["work-queue", "inspect", "reports"]);
    assert_eq!(
        (q["concurrency_limit"].clone(), q["is_paused"].clone()),
        (5.into(), false.into())
    );
    assert_eq!(q["scheduled_runs"], 0);
    db.ok(&["work-queue", "clear-concurrency-limit", "reports"]);
    assert!(db.json(&["work-queue", "inspect", "reports"])["concurrency_limit"].is_null());
    db.ok(&["work-queue", "delete", "reports"]);
    let err = db.fails(2, &["work-queue", "inspect", "reports"]);
    assert!(err.contains("reports"), "{err}");
    db.fails(2, &["work-queue", "delete", "reports"]);
    db.fails(2, &["work-queue", "set-concurrency-limit", "reports", "-3"]);
}

#[test]
fn concurrency_limits_are_managed_from_the_command_line() {
    let db = Db::new("cli-limits");
    let out = db.ok(&["concurrency-limit", "create", "database", "2"]);
    assert_eq!(out.trim(), "Concurrency limit 'tag:database' is now 2");
    db.ok(&["concurrency-limit", "create", "warehouse", "1", "--named"]);
    db.ok(&["concurrency-limit", "create", "api", "5", "--per", "60"]);
    let list = db.json(&["concurrency-limit", "ls"]);
    assert_eq!(names(&list, "name"), ["api", "tag:database", "warehouse"]);
    assert_eq!(names(&list, "kind"), ["rate", "tag", "named"]);
    assert_eq!(list[0]["slot_decay_seconds"], 60.0);
    assert_eq!(list[1]["tag"], "database");
    assert_eq!(list[1]["concurrency_limit"], 2);

    // This process holds the named limit's slot in the same file: the CLI shows the holder.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("sqlite://{}", db.0.display());
    let orion = rt.block_on(orion::Orion::open(&url)).unwrap();
    let slot = rt.block_on(orion.concurrency("warehouse", 1)).unwrap();
    let inspected = db.json(&["concurrency-limit", "inspect", "warehouse"]);
    let holders = inspected["active_slots"].as_array().unwrap();
    assert_eq!(holders.len(), 1, "{inspected}");
    assert_eq!(
        holders[0]["process"],
        format!("process {}", std::process::id())
    );
    let table = db.ok(&["concurrency-limit", "inspect", "warehouse"]);
    assert!(
        table.contains("active    1") && table.contains("holding"),
        "{table}"
    );
    let table = db.ok(&["concurrency-limit", "ls"]);
    let row = table.lines().find(|l| l.starts_with("warehouse")).unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["warehouse", "named", "1", "1", "0"]
    );

    let out = db.ok(&["concurrency-limit", "reset", "warehouse"]);
    assert!(out.contains("1 slot(s)"), "{out}");
    assert_eq!(
        db.json(&["concurrency-limit", "inspect", "warehouse"])["active_slots"],
        serde_json::json!([])
    );
    rt.block_on(slot.release()).unwrap();

    // A tag is found by its tag or its stored name; resizing keeps it.
    db.ok(&["concurrency-limit", "create", "database", "3"]);
    assert_eq!(
        db.json(&["concurrency-limit", "inspect", "tag:database"])["concurrency_limit"],
        3
    );
    db.ok(&["concurrency-limit", "delete", "database"]);
    let err = db.fails(2, &["concurrency-limit", "inspect", "database"]);
    assert!(
        err.contains("no concurrency limit named \"database\""),
        "{err}"
    );
    db.fails(2, &["concurrency-limit", "delete", "database"]);
    db.fails(2, &["concurrency-limit", "create", "x", "-1"]);
    let err = db.fails(2, &["concurrency-limit", "create", "x", "1", "--per", "0"]);
    assert!(err.contains("--per 0"), "{err}");
    let err = db.fails(2, &["concurrency-limit", "create", "", "1"]);
    assert!(err.contains("must not be empty"), "{err}");
}

#[test]
fn bad_arguments_exit_2_and_help_exits_0() {
    let db = Db::new("cli-usage");
    db.fails(2, &["no-such-command"]);
    db.fails(2, &["deployment"]);
    let err = db.fails(2, &["deployment", "run", "a/b", "--param", "novalue"]);
    assert!(err.contains("novalue"), "{err}");
    db.ok(&["deployment", "create"]);
    let err = db.fails(
        2,
        &[
            "deployment",
            "run",
            "Addition Machine/my-first-deployment",
            "--start-in",
            "10x",
        ],
    );
    assert!(err.contains("10x"), "{err}");
    let err = db.fails(
        2,
        &[
            "deployment",
            "run",
            "Addition Machine/my-first-deployment",
            "--param",
            "nums=oops",
        ],
    );
    assert!(err.contains("nums"), "{err}");
    let err = db.fails(
        2,
        &[
            "deployment",
            "run",
            "Addition Machine/my-first-deployment",
            "--start-at",
            "tomorrow",
        ],
    );
    assert!(err.contains("tomorrow"), "{err}");
    let help = db.ok(&["--help"]);
    assert!(
        help.contains("flow-run") && help.contains("work-queue"),
        "{help}"
    );
    assert!(db.ok(&["completions", "bash"]).contains("work-queue"));
    assert!(db.ok(&["completions", "fish"]).contains("deployment"));
}

#[test]
fn serve_stops_on_sigterm_and_database_commands_work_on_the_file() {
    let db = Db::new("cli-serve");
    db.ok(&["deployment", "create"]);
    let mut serve = db.spawn(&["serve"]);
    let (line, _rest) = first_line(&mut serve);
    assert!(line.starts_with("Serving sqlite://"), "{line}");
    signal(&serve, "TERM");
    assert_eq!(exit_within(&mut serve, 20), 0);

    let info = db.ok(&["database", "info"]);
    assert!(info.contains("integrity        ok"), "{info}");
    assert!(db.ok(&["database", "upgrade"]).contains("nothing to do"));
    assert!(db.ok(&["database", "vacuum"]).contains("bytes before"));
}

/// Runs the app as a program whose runtime is the server at `api` (no database of its own);
/// its parsed JSON output.
fn remote_json(db: &Db, api: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let out = db
        .command(&all)
        .env("ORION_API_URL", api)
        .env("ORION_DATABASE_URL", "sqlite:///nonexistent/dir/never.db")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{args:?} over {api}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{text}"))
}

/// A GET of `path` from the server at `addr`: (status line, body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

#[test]
fn a_server_process_serves_the_dashboard_and_other_processes_use_it_as_their_runtime() {
    let db = Db::new("cli-server");
    db.ok(&["deployment", "create"]);
    let mut server = db.spawn(&["server", "start", "--port", "0"]);
    let (started, _rest) = first_line(&mut server);
    assert!(
        started.starts_with("Orion server on http://127.0.0.1:"),
        "{started}"
    );
    let addr = started
        .trim_start_matches("Orion server on http://")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let api = format!("http://{addr}/api");
    assert_eq!(
        http_get(&addr, "/api/health"),
        ("HTTP/1.1 200 OK".into(), "true".into())
    );

    // An agent whose only store is the server, and a third process creating a run there.
    let mut agent = db
        .command(&["agent", "start"])
        .env("ORION_API_URL", &api)
        .env("ORION_DATABASE_URL", "sqlite:///nonexistent/dir/never.db")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (agent_started, _agent_rest) = first_line(&mut agent);
    assert!(agent_started.contains(&api), "{agent_started}");
    let created = remote_json(
        &db,
        &api,
        &[
            "deployment",
            "run",
            "Addition Machine/my-first-deployment",
            "--param",
            "nums=[5, 6]",
        ],
    );
    let name = created["name"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let v = remote_json(&db, &api, &["flow-run", "inspect", &name]);
        if v["state_type"] == "COMPLETED" {
            break v;
        }
        assert!(Instant::now() < deadline, "{name}: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["parameters"], serde_json::json!({"nums": [5, 6]}));
    // The run is in the server's database, and on its dashboard.
    let local = db.json(&["flow-run", "inspect", &name]);
    assert_eq!(local["state_type"], "COMPLETED");
    let (status, page) = http_get(&addr, "/runs");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(page.contains(&name), "the dashboard lists the run");

    signal(&agent, "INT");
    assert_eq!(exit_within(&mut agent, 20), 0);
    signal(&server, "TERM");
    assert_eq!(
        exit_within(&mut server, 20),
        0,
        "SIGTERM stops the server cleanly"
    );

    // Beyond this machine, the server needs a token.
    let err = db.fails(2, &["server", "start", "--host", "0.0.0.0", "--port", "0"]);
    assert!(err.contains("ORION_API_TOKEN"), "{err}");
}
