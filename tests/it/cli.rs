//! `orion schedule preview`, run in-process through `orion::cli::run`.

fn run(args: &[&str]) -> (u8, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut all = vec!["orion"];
    all.extend_from_slice(args);
    let code = orion::cli::run(all, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn preview_prints_the_next_dates_in_the_schedules_zone() {
    let (code, out, err) = run(&[
        "schedule",
        "preview",
        r#"{cron: "0 9 * * MON-FRI", timezone: Europe/Berlin}"#,
        "--start",
        "2026-03-27T00:00:00+01:00",
        "-n",
        "3",
    ]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        "2026-03-27T09:00:00+01:00\n2026-03-30T09:00:00+02:00\n2026-03-31T09:00:00+02:00\n"
    );
}

#[test]
fn preview_defaults_to_ten_dates_and_stops_at_end() {
    let (code, out, _) = run(&[
        "schedule",
        "preview",
        "{interval: 60}",
        "--start",
        "2026-01-01T00:00:00Z",
    ]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 10);
    let (code, out, _) = run(&[
        "schedule",
        "preview",
        r#"{"rrule": "FREQ=HOURLY", "timezone": "Asia/Kolkata"}"#,
        "--start",
        "2026-01-01T00:00:00Z",
        "--end",
        "2026-01-01T02:00:00Z",
    ]);
    assert_eq!(code, 0);
    // Hourly on the wall clock of Kolkata (DTSTART 2020-01-01 00:00 there), until 02:00Z.
    assert_eq!(
        out,
        "2026-01-01T06:00:00+05:30\n2026-01-01T07:00:00+05:30\n"
    );
}

#[test]
fn invalid_input_exits_2_with_the_error_on_stderr() {
    for (args, needle) in [
        (
            vec!["schedule", "preview", "{cron: '61 * * * *'}"],
            "field minute",
        ),
        (
            vec!["schedule", "preview", "{interval: 60, timezone: Nowhere}"],
            "Invalid timezone",
        ),
        (
            vec![
                "schedule",
                "preview",
                "{interval: 60}",
                "--start",
                "tuesday",
            ],
            "--start",
        ),
        (vec!["schedule", "preview"], "SCHEDULE"),
        (vec!["schedule", "launch"], "unrecognized subcommand"),
    ] {
        let (code, out, err) = run(&args);
        assert_eq!(code, 2, "{args:?}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn database_info_and_reset() {
    let dir = crate::temp::temp_dir("cli-db");
    let db = dir.join("orion.db");
    let url = format!("sqlite://{}", db.display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let orion = rt.block_on(orion::Orion::open(&url)).unwrap();
    rt.block_on(orion.client().create_flow("info-flow"))
        .unwrap();
    drop(orion);

    let (code, out, err) = run(&["database", "--url", &url, "info"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&db.display().to_string()), "{out}");
    assert!(out.contains("schema version   6"), "{out}");
    assert!(out.contains("flows            1"), "{out}");
    assert!(out.contains("integrity        ok"), "{out}");

    // Without --yes it asks; anything but yes keeps the data.
    let mut outb = Vec::new();
    let mut errb = Vec::new();
    let args = ["orion", "database", "--url", &url, "reset"];
    let code = orion::cli::run_with_input(args, &mut outb, &mut errb, &mut &b"n\n"[..]);
    assert_eq!(code, 0);
    assert!(String::from_utf8(outb).unwrap().contains("Not reset."));
    let (_, out, _) = run(&["database", "--url", &url, "info"]);
    assert!(out.contains("flows            1"), "{out}");

    let (code, out, _) = run(&["database", "reset", "--yes", "--url", &url]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Reset "), "{out}");
    let (_, out, _) = run(&["database", "--url", &url, "info"]);
    assert!(out.contains("flows            0"), "{out}");

    let (code, _, err) = run(&["database", "--url", "memory://", "info"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a file"), "{err}");
}

/// A host program with a clap CLI of its own mounts orion's commands as one subcommand.
#[derive(clap::Parser)]
#[command(name = "host")]
struct HostCli {
    #[command(subcommand)]
    command: HostCommand,
}

#[derive(clap::Subcommand)]
enum HostCommand {
    /// The host's own command.
    Hello,
    /// orion's commands.
    #[command(subcommand)]
    Orion(orion::cli::Command),
}

#[tokio::test]
async fn a_host_program_mounts_the_commands_under_its_own_cli() {
    use clap::Parser;
    let parsed = HostCli::try_parse_from([
        "host",
        "orion",
        "schedule",
        "preview",
        "{interval: 60}",
        "--start",
        "2026-01-01T00:00:00Z",
        "-n",
        "2",
    ])
    .unwrap();
    let HostCommand::Orion(command) = parsed.command else {
        panic!("parsed as the host's own command");
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = orion::cli::Cli::new()
        .execute(command, &mut out, &mut err)
        .await;
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "2026-01-01T00:00:00+00:00\n2026-01-01T00:01:00+00:00\n"
    );
    assert!(matches!(
        HostCli::try_parse_from(["host", "hello"]).unwrap().command,
        HostCommand::Hello
    ));
    assert!(HostCli::try_parse_from(["host", "orion", "flow-run", "nope"]).is_err());
}

#[tokio::test]
async fn run_async_works_inside_a_runtime_the_caller_has() {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = orion::cli::Cli::new()
        .name("my-app")
        .run_async(
            ["my-app", "schedule", "preview", "{interval: 0}"],
            &mut out,
            &mut err,
        )
        .await;
    assert_eq!(code, 2);
    assert!(String::from_utf8(err).unwrap().starts_with("error: "));
}

/// `database info | upgrade | vacuum | reset` on a PostgreSQL database: counts, version,
/// confirmation, and the password never shown.
#[test]
fn database_commands_on_postgres() {
    let Some(server) = crate::pg::server() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(async {
        let url = crate::pg::fresh_url(&server, "cli-db").await;
        let orion = orion::Orion::open(&url).await.unwrap();
        orion.client().create_flow("pg-info-flow").await.unwrap();
        url
    });
    let run = |args: Vec<String>, input: &'static [u8]| {
        let mut all = vec![
            "orion".to_owned(),
            "database".into(),
            "--url".into(),
            url.clone(),
        ];
        all.extend(args);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = orion::cli::run_with_input(all, &mut out, &mut err, &mut &input[..]);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    };
    let info = || run(vec!["info".into()], b"");
    let (code, out, err) = info();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("schema version   2"), "{out}");
    assert!(out.contains("flows            1"), "{out}");
    let (code, out, _) = run(vec!["upgrade".into()], b"");
    assert_eq!(code, 0);
    assert!(out.contains("schema version 2"), "{out}");
    let (code, out, _) = run(vec!["vacuum".into()], b"");
    assert_eq!(code, 0, "{out}");
    let (_, out, _) = run(vec!["reset".into()], b"no\n");
    assert!(out.contains("Not reset."), "{out}");
    assert!(info().1.contains("flows            1"));
    let (code, out, _) = run(vec!["reset".into(), "--yes".into()], b"");
    assert_eq!(code, 0);
    assert!(out.starts_with("Reset "), "{out}");
    assert!(info().1.contains("flows            0"));

    // A password in the URL is never printed.
    let (_, rest) = server.split_once("://").unwrap();
    let host_db = rest.split_once('@').map_or(rest, |(_, h)| h);
    let with_password = format!("postgres://nobody:hunter2@{host_db}");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = orion::cli::run_with_input(
        ["orion", "database", "--url", &with_password, "info"],
        &mut out,
        &mut err,
        &mut &b""[..],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err)
    );
    assert_ne!(code, 0);
    assert!(!all.contains("hunter2"), "{all}");
}
