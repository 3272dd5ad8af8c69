//! `msr` the binary, driven as an operator would: migrate, serve, signals,
//! restarts.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{ADMIN, ADMIN_PASSWORD, Server, TestDb, send};
use reqwest::StatusCode;
use serde_json::json;

fn msr(args: &[&str], db: &TestDb) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_msr"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap()
}

#[tokio::test]
async fn migrate_applies_the_schema_and_exits() {
    let db = TestDb::new().await;
    let output = msr(&["migrate"], &db);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&mut db.connect().await)
    .await
    .unwrap();
    // Every table belongs to exactly one backup dataset, so none is silently
    // left out of (or doubled in) a backup.
    let mut catalogued: Vec<String> = msr::registry::DATASETS
        .iter()
        .flat_map(|dataset| dataset.tables.iter().map(|table| (*table).to_owned()))
        .collect();
    catalogued.push("_sqlx_migrations".to_owned());
    catalogued.sort();
    assert_eq!(tables, catalogued);
    // Running it again is a no-op, not an error.
    assert!(msr(&["migrate"], &db).status.success());
}

#[tokio::test]
async fn a_missing_database_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_msr"))
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_URL"));
}

#[tokio::test]
async fn settings_survive_a_restart_and_sigterm_is_clean() {
    let db = TestDb::new().await;
    let http = reqwest::Client::new();
    let mut server = Server::start(&db, &[]);
    let smtp = json!({"enabled": true, "serverAddress": "127.0.0.1", "serverPort": 2525,
                      "senderAddress": "msr@example.com", "security": "none"});
    let (status, _) = send(
        http.put(server.url("/api/v0/meta/settings/smtp"))
            .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
            .json(&smtp),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let backup = json!({"enabled": true, "fullBackup": true, "distributionList": "ops@example.com",
                        "schedule": "0 30 17 6 OCT *", "deadline": "1h0m0s",
                        "purge": {"enabled": true, "duration": "1h0m0s"}});
    let (status, stored) = send(
        http.put(server.url("/api/v0/meta/settings/backup"))
            .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
            .json(&backup),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{stored}");

    server.signal("TERM");
    let (code, _) = server.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0), "SIGTERM is a clean exit");

    // A second start must not create another admin or reset anything.
    let server = Server::start(&db, &[("MSR_ADMIN_PASSWORD", "a different password")]);
    let (status, after) = send(
        http.get(server.url("/api/v0/meta/settings/backup"))
            .basic_auth(ADMIN, Some(ADMIN_PASSWORD)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after, stored);
    let (_, smtp_after) = send(
        http.get(server.url("/api/v0/meta/settings/smtp"))
            .basic_auth(ADMIN, Some(ADMIN_PASSWORD)),
    )
    .await;
    assert_eq!(smtp_after["serverPort"], 2525);
    let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts WHERE is_admin")
        .fetch_one(&mut db.connect().await)
        .await
        .unwrap();
    assert_eq!(admins, 1);
}

#[tokio::test]
async fn shutdown_is_bounded_by_the_grace_period() {
    let db = TestDb::new().await;
    let mut server = Server::start(&db, &[]);
    // An admin's request whose body never finishes arriving: axum on its own
    // would wait for it forever.
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stalled = std::net::TcpStream::connect(&address).unwrap();
    let credentials = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{ADMIN}:{ADMIN_PASSWORD}"),
    );
    let head = format!(
        "PUT /api/v0/meta/settings/backup HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {credentials}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    std::io::Write::write_all(&mut stalled, head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(500));

    server.signal("INT");
    let (code, took) = server.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(
        took < Duration::from_secs(5),
        "exit took {took:?} with a 1s grace period"
    );
}
