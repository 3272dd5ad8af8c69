//! Backup jobs end to end with the real binary: MSR's documented steps
//! followed literally over HTTP, and full backups to S3 (moto) written as
//! multipart uploads, restored by id onto a new instance whose catalog
//! lists them again from the backup storage.
//!
//! Needs `skopeo` on PATH and `moto_server` (`.venv`, or
//! `MSR_TEST_MOTO_SERVER`); a test whose tool is missing fails.

mod common;

use std::time::Duration;

use common::archive::{files, msr, msr_with};
use common::jobs::{Api, eventually};
use common::moto::Moto;
use common::oci::{assert_pulls, host_of, oci_image, push};
use common::{ADMIN, ADMIN_PASSWORD, Server, TestDb, create_repository};
use reqwest::Method;
use serde_json::json;
use sha2::{Digest as _, Sha256};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msr_documented_steps_give_a_done_backup_job() {
    let db = TestDb::new().await;
    let server = Server::start(&db, &[("MSR_HEARTBEAT_INTERVAL", "1s")]);
    let api = Api::new(&server.base);

    // "To schedule automatic backups, you must ... enable and configure the
    // SMTP setting."
    let (status, body) = api
        .call(
            Method::PUT,
            "/api/v0/meta/settings/smtp",
            Some(&json!({
                "enabled": true,
                "serverAddress": "smtp.example.com",
                "serverPort": 587,
                "senderAddress": "msr@example.com",
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The documented body, with a schedule that fires within seconds in
    // place of "* * * * *" (every minute).
    let documented = json!({
        "enabled": true,
        "fullBackup": true,
        "distributionList": "ops@example.com",
        "schedule": "*/2 * * * * *",
        "deadline": "1h0m0s",
        "purge": { "enabled": true, "duration": "1h0m0s" }
    });
    let (status, body) = api
        .call(
            Method::PUT,
            "/api/v0/meta/settings/backup",
            Some(&documented),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // "Verify your backup schedule by performing a GET request".
    let mut settings = api.get("/api/v0/meta/settings/backup").await;
    assert_eq!(settings["nextRuns"].as_array().unwrap().len(), 5);
    settings.as_object_mut().unwrap().remove("nextRuns");
    assert_eq!(settings, documented);

    // "filter out everything except backup jobs ... verify that your
    // backups have the done status."
    let mut done = None;
    let started = std::time::Instant::now();
    while done.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no backup job done"
        );
        done = api
            .jobs("action=backup")
            .await
            .into_iter()
            .find(|job| job["status"] == "done");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let job = done.unwrap();
    assert_eq!(job["action"], "backup");
    assert_eq!(job["deadline"], "1h0m0s");
    assert_eq!(job["parameters"], json!({ "fullBackup": "true" }));
    api.disable_backups().await;

    let backups = api.backups().await;
    let backup = backups
        .iter()
        .find(|b| b["jobID"] == job["id"])
        .expect("the done job's backup is listed");
    assert_eq!(backup["type"], "full");
    let archive = server.backups_path().join(backup["key"].as_str().unwrap());
    let verified = msr(
        &["verify", archive.to_str().unwrap()],
        "postgres://unused.invalid/none",
        server.storage_path(),
        None,
    );
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    let summary = text(&verified.stdout);
    assert!(summary.contains("type:      full"), "{summary}");
}

fn s3_env<'a>(moto: &'a Moto, registry: &'a str, backups: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut env = moto.env();
    env.extend([
        ("MSR_STORAGE", registry),
        ("MSR_BACKUP_STORAGE", backups),
        ("MSR_HEARTBEAT_INTERVAL", "1s"),
    ]);
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_backup_jobs_on_s3_restore_by_id_onto_a_new_instance() {
    let moto = Moto::start().await;
    for bucket in ["registry", "backups", "restored"] {
        moto.create_bucket(bucket).await;
    }
    let db = TestDb::new().await;
    let env = s3_env(&moto, "s3://registry", "s3://backups/msr");
    let server = Server::start(&db, &env);
    let api = Api::new(&server.base);
    create_repository(&db, ADMIN, "app").await;
    // A 40 MiB layer: the archive goes up in several 16 MiB parts.
    let image = oci_image(&[3000, 40 << 20]);
    let creds = format!("{ADMIN}:{ADMIN_PASSWORD}");
    let pushed = push(&image, host_of(&server.base), "admin/app:v1", &creds);
    assert!(
        pushed.status.success(),
        "skopeo push: {}",
        text(&pushed.stderr)
    );

    // A canceled backup leaves no multipart upload behind.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE notary_tuf_files IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let blocked = api.start_job(json!({ "action": "backup" })).await;
    let blocked = blocked["id"].as_str().unwrap();
    api.wait_for_status(blocked, "running", Duration::from_secs(10))
        .await;
    eventually(
        "the multipart upload is started",
        Duration::from_secs(5),
        || async { moto.open_uploads("backups").await == 1 },
    )
    .await;
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/api/v0/jobs/{blocked}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    api.wait_for_status(blocked, "canceled", Duration::from_secs(10))
        .await;
    assert_eq!(moto.open_uploads("backups").await, 0);
    assert!(moto.object_keys("backups").await.is_empty());
    lock.rollback().await.unwrap();

    let job = api
        .start_job(json!({ "action": "backup", "parameters": { "fullBackup": "true" } }))
        .await;
    let job_id = job["id"].as_str().unwrap();
    api.wait_for_status(job_id, "done", Duration::from_secs(60))
        .await;
    let log = api.log(job_id).await;
    assert!(log.iter().any(|l| l.starts_with("blobs: 4 (")), "{log:#?}");
    assert!(
        log.last().unwrap().contains("s3://backups/msr/backups/"),
        "{log:#?}"
    );
    let backups = api.backups().await;
    assert_eq!(backups.len(), 1);
    let backup = &backups[0];
    let id = backup["id"].as_str().unwrap();
    assert_eq!(backup["type"], "full");
    // Two layers, the config and the manifest.
    assert_eq!(backup["blobs"]["count"], 4);
    assert_eq!(backup["location"], "s3://backups/msr");
    let mut keys = moto.object_keys("backups").await;
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("msr/backups/{id}.tar"),
            format!("msr/backups/{id}.tar.json")
        ]
    );
    assert_eq!(moto.open_uploads("backups").await, 0);
    let archive = api
        .bytes(&format!("/api/v0/meta/backups/{id}/archive"))
        .await;
    assert!(archive.len() > 40 << 20);
    assert_eq!(backup["size"], archive.len());
    assert_eq!(backup["sha256"], hex::encode(Sha256::digest(&archive)));

    // A new instance: empty database, empty registry bucket, the same
    // backup storage. Its catalog does not know the backup; restore finds
    // it in the storage by id.
    let target = TestDb::new().await;
    let target_env = s3_env(&moto, "s3://restored", "s3://backups/msr");
    let unknown = msr_with(
        &[
            "restore",
            "--backup",
            "00000000-0000-0000-0000-000000000000",
        ],
        &target.url,
        &target_env,
        None,
    );
    assert!(!unknown.status.success());
    assert!(text(&unknown.stderr).contains("no backup 00000000-0000-0000-0000-000000000000"));
    let restored = msr_with(&["restore", "--backup", id], &target.url, &target_env, None);
    assert!(
        restored.status.success(),
        "restore: {}",
        text(&restored.stderr)
    );
    let restored_server = Server::start(&target, &target_env);
    let restored_api = Api::new(&restored_server.base);
    let listed = restored_api.backups().await;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["id"], backup["id"]);
    assert_eq!(listed[0]["sha256"], backup["sha256"]);
    assert_eq!(listed[0]["size"], backup["size"]);
    // The job that wrote it is in the old instance's log, not this one's.
    assert_eq!(listed[0]["jobID"], serde_json::Value::Null);
    assert_pulls(
        &image,
        host_of(&restored_server.base),
        "admin/app:v1",
        &creds,
    );
    let again = restored_api
        .bytes(&format!("/api/v0/meta/backups/{id}/archive"))
        .await;
    assert_eq!(again, archive);
}

#[tokio::test]
async fn backups_are_refused_inside_the_registry_storage() {
    let db = TestDb::new().await;
    let registry = tempfile::tempdir().unwrap();
    let inside = registry.path().join("backups");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_msr"))
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("MSR_LISTEN", "127.0.0.1:0")
        .env("MSR_STORAGE", registry.path())
        .env("MSR_BACKUP_STORAGE", &inside)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("must be apart from MSR_STORAGE"),
        "{}",
        text(&output.stderr)
    );
    assert!(files(registry.path()).is_empty());
}
