//! A PostgreSQL server for tests: `ORION_TEST_POSTGRES_URL` names one (`.ci/run` starts one
//! and sets it). Each test gets a schema of its own in that database, so tests run side by
//! side and leave each other's records alone.
//!
//! Without the variable the PostgreSQL tests skip with a message, except under CI (`CI` set),
//! where a missing server is a failure: CI must never pass by skipping them.

#![allow(dead_code)] // not every test binary uses every helper

/// The server's URL, or None (after saying so) when no server is configured outside CI.
pub(crate) fn server() -> Option<String> {
    match std::env::var("ORION_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but ORION_TEST_POSTGRES_URL is not: CI must run the PostgreSQL tests"
            );
            eprintln!(
                "skipped: no PostgreSQL server configured (set ORION_TEST_POSTGRES_URL=postgres://USER@HOST:PORT/DATABASE to run this test)"
            );
            None
        }
    }
}

/// A URL of the test server whose connections use a new, empty schema `<tag>_<random>`,
/// with a small pool (many tests run at once).
pub(crate) async fn fresh_url(server: &str, tag: &str) -> String {
    let schema = format!("t_{}_{:016x}", tag.replace('-', "_"), fastrand::u64(..));
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL server");
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create a test schema");
    drop(client);
    let _ = driver.await;
    with_schema(server, &schema)
}

/// `server` with its connections' search path set to `schema`.
pub(crate) fn with_schema(server: &str, schema: &str) -> String {
    let sep = if server.contains('?') { '&' } else { '?' };
    format!("{server}{sep}options=-c%20search_path%3D{schema}&pool_size=4")
}

/// Runs `sql` on the test server (outside any test schema).
pub(crate) async fn admin(server: &str, sql: &str) -> Vec<tokio_postgres::Row> {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL server");
    let driver = tokio::spawn(connection);
    let rows = client.query(sql, &[]).await.expect(sql);
    drop(client);
    let _ = driver.await;
    rows
}
