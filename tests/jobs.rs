//! The job runner in one replica (the server's own code path, in-process):
//! manual backups through `POST /api/v0/jobs`, the job log, the backups
//! catalog, cancel, delete, deadlines, overlapping occurrences and
//! settings changes picked up without a restart.

mod common;

use std::time::Duration;

use common::archive::{files, msr};
use common::jobs::{Api, eventually};
use common::{TestApp, TestDb, assert_error, send};
use reqwest::Method;
use serde_json::json;
use sha2::{Digest as _, Sha256};

fn api(app: &TestApp) -> Api {
    Api::new(&app.base)
}

/// Holds an exclusive lock on a table a backup reads (and no API request
/// of these tests does), so that a backup blocks until it is released.
async fn block_backups(db: &TestDb) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE notary_tuf_files IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

async fn catalog_rows(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM backups")
        .fetch_one(&mut db.connect().await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_backup_is_a_job_with_a_log_and_a_listed_archive() {
    let app = TestApp::spawn().await;
    let api = api(&app);
    let job = api.start_job(json!({ "action": "backup" })).await;
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(job["retryFromID"], job["id"]);
    assert_eq!(job["action"], "backup");
    assert_eq!(job["parameters"], json!({ "fullBackup": "false" }));
    assert!(["waiting", "running"].contains(&job["status"].as_str().unwrap()));
    let done = api
        .wait_for_status(&id, "done", Duration::from_secs(30))
        .await;
    assert_eq!(done["workerID"].as_str().unwrap().len(), 12);

    let log = api.log(&id).await;
    assert!(log[0].starts_with("started on worker "), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l == "dataset accounts: 1 rows in 4 tables"),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("left out vulnerability_database")),
        "{log:#?}"
    );
    let last = log.last().unwrap();
    assert!(
        last.starts_with("done in ") && last.contains(".tar"),
        "{log:#?}"
    );
    let lines = api.get(&format!("/api/v0/jobs/{id}/logs")).await;
    for (n, line) in lines.as_array().unwrap().iter().enumerate() {
        assert_eq!(line["lineNum"], n);
    }
    let page = api
        .get(&format!("/api/v0/jobs/{id}/logs?offset=1&limit=2"))
        .await;
    assert_eq!(page.as_array().unwrap().len(), 2);
    assert_eq!(page[0]["lineNum"], 1);
    // A stream of an ended job is its whole log, one object per line.
    for query in ["colour=blue", "stream=maybe", "offset=-1", "limit=0"] {
        let answer = api
            .call(
                Method::GET,
                &format!("/api/v0/jobs/{id}/logs?{query}"),
                None,
            )
            .await;
        assert_error(&answer, 400, "INVALID_PARAMETERS");
    }
    let streamed = String::from_utf8(
        api.bytes(&format!("/api/v0/jobs/{id}/logs?stream=true"))
            .await,
    )
    .unwrap();
    assert_eq!(streamed.lines().count(), log.len());

    let listed = api.jobs("action=backup").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id);
    assert!(api.jobs("running=true").await.is_empty());
    assert_eq!(api.jobs("running=false").await.len(), 1);
    assert_eq!(
        api.jobs(&format!("worker={}", done["workerID"].as_str().unwrap()))
            .await
            .len(),
        1
    );
    assert!(api.jobs("worker=000000000000").await.is_empty());

    // The catalog lists it, with what is in storage.
    let backups = api.backups().await;
    assert_eq!(backups.len(), 1, "{backups:#?}");
    let backup = &backups[0];
    assert_eq!(backup["jobID"], id);
    assert_eq!(backup["type"], "metadata");
    let key = backup["key"].as_str().unwrap();
    let stored = std::fs::read(app.backups.path().join(key)).unwrap();
    assert_eq!(backup["size"], stored.len());
    assert_eq!(backup["sha256"], hex::encode(Sha256::digest(&stored)));
    let backup_id = backup["id"].as_str().unwrap();
    assert_eq!(
        api.get(&format!("/api/v0/meta/backups/{backup_id}")).await,
        *backup
    );
    let accounts = backup["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "accounts")
        .unwrap();
    assert_eq!(accounts["rows"], 1);

    let downloaded = api
        .bytes(&format!("/api/v0/meta/backups/{backup_id}/archive"))
        .await;
    assert_eq!(downloaded, stored);
    let verified = msr(
        &["verify", "-"],
        &app.db.url,
        app.storage.path(),
        Some(&downloaded),
    );
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );

    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v0/meta/backups/{backup_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_error(
        &api.call(
            Method::GET,
            &format!("/api/v0/meta/backups/{backup_id}"),
            None,
        )
        .await,
        404,
        "NO_SUCH_BACKUP",
    );
    assert_error(
        &api.call(
            Method::DELETE,
            &format!("/api/v0/meta/backups/{backup_id}"),
            None,
        )
        .await,
        404,
        "NO_SUCH_BACKUP",
    );
    assert!(
        files(app.backups.path()).is_empty(),
        "{:?}",
        files(app.backups.path())
    );
    assert!(api.backups().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn bad_job_requests_are_refused_and_create_nothing() {
    let app = TestApp::spawn().await;
    let api = api(&app);
    for path in [
        "/api/v0/jobs/not-a-uuid",
        "/api/v0/jobs/00000000-0000-0000-0000-000000000000",
    ] {
        assert_error(&api.call(Method::GET, path, None).await, 404, "NO_SUCH_JOB");
        assert_error(
            &api.call(Method::DELETE, path, None).await,
            404,
            "NO_SUCH_JOB",
        );
        let cancel = format!("{path}/cancel");
        assert_error(
            &api.call(Method::POST, &cancel, None).await,
            404,
            "NO_SUCH_JOB",
        );
        let logs = format!("{path}/logs");
        assert_error(
            &api.call(Method::GET, &logs, None).await,
            404,
            "NO_SUCH_JOB",
        );
    }
    for body in [
        json!({ "action": "nope" }),
        json!({}),
        json!({ "action": "backup", "parameters": { "fullBackup": "yes" } }),
        json!({ "action": "backup", "parameters": { "full": "true" } }),
        json!({ "action": "backup", "deadline": "soon" }),
        json!({ "action": "backup", "deadline": "-1s" }),
        json!({ "action": "backup", "scheduledAt": "tomorrow" }),
        json!({ "action": "backup", "colour": "blue" }),
        json!({ "action": "backup", "capacityMap": { "a\u{0}b": 1 } }),
        json!({ "action": "backup_purge", "stopTimeout": "1h", "capacityMap": { "": 1 } }),
    ] {
        let answer = api.call(Method::POST, "/api/v0/jobs", Some(&body)).await;
        assert_eq!(answer.0, 400, "{body}: {}", answer.1);
        assert!(
            answer.1["errors"][0]["code"]
                .as_str()
                .unwrap()
                .starts_with("INVALID_"),
            "{}",
            answer.1
        );
    }
    for query in [
        "running=maybe",
        "limit=0",
        "limit=1001",
        "start=-1",
        "colour=blue",
    ] {
        let answer = api
            .call(Method::GET, &format!("/api/v0/jobs?{query}"), None)
            .await;
        assert_error(&answer, 400, "INVALID_PARAMETERS");
    }
    assert_error(
        &api.call(Method::GET, "/api/v0/crons/purge", None).await,
        404,
        "NO_SUCH_CRON",
    );
    assert!(api.jobs("").await.is_empty());

    app.create_user("bob", "bob-password", false).await;
    for (method, path) in [
        (Method::GET, "/api/v0/jobs"),
        (Method::POST, "/api/v0/jobs"),
        (Method::GET, "/api/v0/crons"),
        (Method::GET, "/api/v0/workers"),
        (Method::GET, "/api/v0/meta/backups"),
    ] {
        let request = app
            .caller("bob", "bob-password")
            .request(method.clone(), path)
            .json(&json!({ "action": "backup" }));
        assert_error(&send(request).await, 403, "NOT_AUTHORIZED");
        let anonymous = app.http.request(method, app.url(path));
        assert_error(&send(anonymous).await, 401, "NOT_AUTHENTICATED");
    }
    assert!(api.jobs("").await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_waiting_job_is_canceled_at_once_and_deleted_with_its_log() {
    let app = TestApp::spawn().await;
    let api = api(&app);
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let job = api
        .start_job(json!({ "action": "backup", "scheduledAt": later, "deadline": "1h" }))
        .await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(job["status"], "waiting");
    assert_eq!(job["deadline"], "1h0m0s");
    assert_eq!(job["workerID"], "");
    let (status, _) = api
        .call(Method::POST, &format!("/api/v0/jobs/{id}/cancel"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(api.job(id).await["status"], "canceled");
    assert_eq!(api.log(id).await, ["canceled before it started"]);
    // Canceling an ended job changes nothing.
    let (status, _) = api
        .call(Method::POST, &format!("/api/v0/jobs/{id}/cancel"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(api.job(id).await["status"], "canceled");
    let (status, _) = api
        .call(Method::DELETE, &format!("/api/v0/jobs/{id}"), None)
        .await;
    assert_eq!(status, 204);
    assert_error(
        &api.call(Method::GET, &format!("/api/v0/jobs/{id}"), None)
            .await,
        404,
        "NO_SUCH_JOB",
    );
    let log_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM job_logs")
        .fetch_one(&mut app.db.connect().await)
        .await
        .unwrap();
    assert_eq!(log_rows, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_and_cancel_stop_a_running_backup_and_leave_nothing_behind() {
    let app = TestApp::spawn().await;
    let api = api(&app);
    let lock = block_backups(&app.db).await;

    let job = api
        .start_job(json!({ "action": "backup", "deadline": "2s" }))
        .await;
    let id = job["id"].as_str().unwrap();
    api.wait_for_status(id, "running", Duration::from_secs(10))
        .await;
    let errored = api
        .wait_for_status(id, "errored", Duration::from_secs(10))
        .await;
    assert_eq!(errored["deadline"], "2s");
    let log = api.log(id).await;
    assert!(
        log.iter().any(|l| l == "errored: deadline exceeded (2s)"),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|l| l == "discarded the unfinished backup"),
        "{log:#?}"
    );
    assert!(
        files(app.backups.path()).is_empty(),
        "{:?}",
        files(app.backups.path())
    );
    assert_eq!(catalog_rows(&app.db).await, 0);

    let job = api.start_job(json!({ "action": "backup" })).await;
    let id = job["id"].as_str().unwrap();
    api.wait_for_status(id, "running", Duration::from_secs(10))
        .await;
    // While it runs, its upload exists, but nothing is listed.
    eventually("the upload is started", Duration::from_secs(5), || async {
        !files(app.backups.path()).is_empty()
    })
    .await;
    assert!(api.backups().await.is_empty());
    assert_eq!(api.jobs("running=true").await.len(), 1);
    let (status, _) = api
        .call(Method::POST, &format!("/api/v0/jobs/{id}/cancel"), None)
        .await;
    assert_eq!(status, 204);
    api.wait_for_status(id, "canceled", Duration::from_secs(5))
        .await;
    let log = api.log(id).await;
    assert!(
        log.last().unwrap().starts_with("canceled after "),
        "{log:#?}"
    );
    assert!(
        files(app.backups.path()).is_empty(),
        "{:?}",
        files(app.backups.path())
    );
    assert_eq!(catalog_rows(&app.db).await, 0);

    // Once nothing blocks it, the same backup goes through.
    lock.rollback().await.unwrap();
    let job = api.start_job(json!({ "action": "backup" })).await;
    api.wait_for_status(job["id"].as_str().unwrap(), "done", Duration::from_secs(30))
        .await;
    assert_eq!(api.backups().await.len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_occurrences_are_skipped_and_settings_changes_apply_at_once() {
    let app = TestApp::spawn().await;
    let api = api(&app);
    assert_eq!(api.get("/api/v0/crons").await, json!({ "crons": [] }));
    api.enable_backups(json!({ "schedule": "0 0 1 1 *", "deadline": "1h" }))
        .await;
    let crons = api.get("/api/v0/crons").await;
    assert_eq!(crons["crons"][0]["action"], "backup");
    assert_eq!(crons["crons"][0]["schedule"], "0 0 1 1 *");
    assert_eq!(crons["crons"][0]["deadline"], "1h0m0s");
    assert!(
        crons["crons"][0]["nextRun"]
            .as_str()
            .unwrap()
            .ends_with("-01-01T00:00:00Z")
    );
    assert_eq!(api.get("/api/v0/crons/backup").await, crons["crons"][0]);
    let workers = api.get("/api/v0/workers").await;
    assert_eq!(workers["workers"].as_array().unwrap().len(), 1);
    assert_eq!(workers["workers"][0]["status"], "running");

    // Every second from now on: the first backup blocks, the occurrences
    // that fire meanwhile are recorded as skipped.
    let lock = block_backups(&app.db).await;
    api.enable_backups(json!({ "schedule": "* * * * * *" }))
        .await;
    eventually(
        "three skipped occurrences",
        Duration::from_secs(15),
        || async {
            api.jobs("action=backup")
                .await
                .iter()
                .filter(|j| j["status"] == "canceled")
                .count()
                >= 3
        },
    )
    .await;
    let jobs = api.jobs("action=backup").await;
    let running: Vec<_> = jobs.iter().filter(|j| j["status"] == "running").collect();
    assert_eq!(running.len(), 1, "{jobs:#?}");
    let running_id = running[0]["id"].as_str().unwrap();
    for job in jobs.iter().filter(|j| j["status"] == "canceled") {
        let log = api.log(job["id"].as_str().unwrap()).await;
        assert_eq!(log.len(), 1, "{log:#?}");
        assert!(
            log[0].starts_with("skipped the backup occurrence of ")
                && log[0].contains(&format!("backup job {running_id} was still running")),
            "{log:#?}"
        );
    }

    // Disabled: no job is enqueued any more, at once.
    api.disable_backups().await;
    let count = api.jobs("action=backup").await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(api.jobs("action=backup").await.len() <= count + 1);
    let settled = api.jobs("action=backup").await.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.jobs("action=backup").await.len(), settled);
    assert_eq!(api.get("/api/v0/crons").await, json!({ "crons": [] }));

    let (status, _) = api
        .call(
            Method::POST,
            &format!("/api/v0/jobs/{running_id}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    api.wait_for_status(running_id, "canceled", Duration::from_secs(5))
        .await;
    lock.rollback().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_backup_says_why_leaves_nothing_and_is_retried_as_asked() {
    let app = TestApp::spawn().await;
    let api = api(&app);
    // A blob the metadata lists but the storage does not have: a full
    // backup of it must fail.
    sqlx::query("INSERT INTO blobs (digest, size) VALUES ($1, 1)")
        .bind(format!("sha256:{}", "0".repeat(64)))
        .execute(&mut app.db.connect().await)
        .await
        .unwrap();
    let job = api
        .start_job(
            json!({ "action": "backup", "retries": 1, "parameters": { "fullBackup": "true" } }),
        )
        .await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(
        (job["retriesLeft"].as_i64(), job["retriesTotal"].as_i64()),
        (Some(1), Some(1))
    );
    api.wait_for_status(id, "errored", Duration::from_secs(30))
        .await;
    let log = api.log(id).await;
    let failure = log
        .iter()
        .find(|l| l.starts_with("errored after "))
        .expect("the reason");
    assert!(failure.contains(&"0".repeat(64)), "{log:#?}");
    assert!(
        log.last().unwrap().starts_with("retrying as job "),
        "{log:#?}"
    );

    // The retry: same retryFromID, no retries left, and it fails alike.
    eventually("the retry has run", Duration::from_secs(30), || async {
        let attempts = api.jobs("action=backup").await;
        attempts.len() == 2 && attempts.iter().all(|j| j["status"] == "errored")
    })
    .await;
    let attempts = api.jobs("action=backup").await;
    let retry = attempts.iter().find(|j| j["id"] != id).unwrap();
    assert_eq!(retry["retryFromID"], id);
    assert_eq!(
        (
            retry["retriesLeft"].as_i64(),
            retry["retriesTotal"].as_i64()
        ),
        (Some(0), Some(1))
    );
    assert!(
        files(app.backups.path()).is_empty(),
        "{:?}",
        files(app.backups.path())
    );
    assert_eq!(catalog_rows(&app.db).await, 0);
    app.stop().await;
}
