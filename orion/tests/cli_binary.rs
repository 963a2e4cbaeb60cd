//! The standalone `orion` program (it contains no flows), run as a process: the commands
//! that need flows explain how to embed the CLI; the others work on the database.

use std::process::Command;

fn orion(db: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_orion"))
        .args(args)
        .env("ORION_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn commands_that_run_flows_say_how_to_embed_the_cli_and_the_rest_work() {
    let dir = std::env::temp_dir().join(format!("orion-cli-binary-{}", std::process::id()));
    let db = dir.join("orion.db");
    for args in [
        &["flow", "run", "anything"][..],
        &["agent", "start"],
        &["serve"],
        &["deployment", "create"],
        &["deployment", "execute", "a/b"],
    ] {
        let (code, out, err) = orion(&db, args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains("'orion' contains none"), "{args:?}: {err}");
        assert!(
            err.contains("orion::cli::Cli::new().main()"),
            "{args:?}: {err}"
        );
    }
    // A spec file needs no flows: its parameters are checked where the flow lives.
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("spec.yaml");
    std::fs::write(
        &spec,
        "name: nightly\nflow_name: etl\nschedule: {cron: '0 2 * * *'}\n",
    )
    .unwrap();
    let (code, out, err) = orion(&db, &["deployment", "create", spec.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Created deployment 'nightly' for flow 'etl'"),
        "{out}"
    );
    let (code, out, _) = orion(&db, &["deployment", "ls", "--output", "json"]);
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["full_name"], "etl/nightly");
    let (code, out, _) = orion(&db, &["flow", "ls"]);
    assert_eq!(code, 0);
    assert!(out.contains("etl"), "the database's flows: {out}");
    let _ = std::fs::remove_dir_all(&dir);
}
