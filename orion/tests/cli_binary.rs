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

#[orion::flow(name = "typed")]
async fn typed(name: String, rounds: u32) -> String {
    name.repeat(rounds as usize)
}

/// One HTTP/1.1 request to `addr`: (status code, body).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

#[test]
fn a_standalone_server_checks_custom_runs_against_the_types_the_deployment_keeps() {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("orion-cli-server-{}", std::process::id()));
    let db = dir.join("orion.db");
    // The program that has the flow applies the deployment: its parameter types are kept.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let orion = orion::Orion::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        orion::deployment::DeploymentSpec::new("d")
            .flow(typed)
            .parameters(serde_json::json!({"name": "ab", "rounds": 2}))
            .apply(orion.client())
            .await
            .unwrap();
    });
    // Applied again from a spec file by the standalone program: the types stay.
    let spec = dir.join("typed.yaml");
    std::fs::write(
        &spec,
        "name: d\nflow_name: typed\nparameters: {name: cd, rounds: 1}\n",
    )
    .unwrap();
    let (code, out, err) = orion(&db, &["deployment", "create", spec.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");

    let mut server = Command::new(env!("CARGO_BIN_EXE_orion"))
        .args(["server", "start", "--port", "0", "--no-services"])
        .env("ORION_DATABASE_URL", format!("sqlite://{}", db.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    // Kept open until the server exits: it prints its last line there.
    let mut stdout = std::io::BufReader::new(server.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim_start_matches("Orion server on http://")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let (status, body) = http(&addr, "GET", "/api/deployments/name/typed/d", "");
    assert_eq!(status, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        view["flow_parameters"],
        serde_json::json!([{"name": "name", "type": "String"}, {"name": "rounds", "type": "u32"}])
    );
    let id = view["id"].as_str().unwrap();
    let create = format!("/api/deployments/{id}/create_flow_run");
    let (status, body) = http(&addr, "POST", &create, r#"{"parameters": {"rounds": -2}}"#);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("parameter 'rounds'"), "{body}");
    let (status, body) = http(&addr, "POST", &create, r#"{"parameters": {"colour": 1}}"#);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("unknown parameter 'colour'"), "{body}");
    let (status, body) = http(&addr, "POST", &create, r#"{"parameters": {"rounds": 5}}"#);
    assert_eq!(status, 201, "{body}");
    let (status, page) = http(&addr, "GET", &format!("/deployments/{id}"), "");
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"name="rounds" data-kind=json value="1""#),
        "{page}"
    );
    assert!(
        page.contains(r#"name="name" data-kind=text value="cd""#),
        "{page}"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert!(server.wait().unwrap().success());
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "Stopped.\n");
    let _ = std::fs::remove_dir_all(&dir);
}
