//! `backup_purge` jobs with the real binary, on a local directory and on S3
//! (moto): the retention boundary, the newest backup always kept, purges
//! after each backup, and a storage failure half way that leaves the
//! catalog and the storage agreeing.

mod common;

use std::time::Duration;

use common::archive::files;
use common::jobs::{Api, eventually};
use common::moto::{DenyingProxy, Moto, aws_env};
use common::{Server, TestDb, assert_error};
use reqwest::Method;
use serde_json::{Value, json};

/// Runs a job through the API and waits until it is `status`.
async fn run_job(api: &Api, body: Value, status: &str) -> Value {
    let job = api.start_job(body).await;
    api.wait_for_status(job["id"].as_str().unwrap(), status, Duration::from_secs(60))
        .await
}

/// Makes backup `id` look `minutes` old.
async fn age(db: &TestDb, id: &str, minutes: i64) {
    let updated = sqlx::query(
        "UPDATE backups SET created_at = now() - make_interval(mins => $2) WHERE id = $1::uuid",
    )
    .bind(id)
    .bind(minutes as i32)
    .execute(&mut db.connect().await)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(updated, 1);
}

fn ids(backups: &[Value]) -> Vec<String> {
    backups
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Four backups, aged 2h, 1h01m, 59m and new, purged with a 1h duration:
/// the two older than an hour go, and then, all aged 3h, all but the newest.
async fn retention(db: &TestDb, api: &Api, stored_keys: impl AsyncFn() -> Vec<String>) {
    api.enable_backups(json!({
        "schedule": "0 0 1 1 *",
        "purge": { "enabled": true, "duration": "1h" }
    }))
    .await;
    let crons = api.get("/api/v0/crons").await;
    assert_eq!(crons["crons"][1]["action"], "backup_purge");
    assert_eq!(
        crons["crons"][1]["parameters"],
        json!({ "duration": "1h0m0s" })
    );
    for _ in 0..4 {
        let backup = run_job(api, json!({ "action": "backup" }), "done").await;
        // A purge follows every backup; with nothing old it deletes nothing.
        let log = api.log(backup["id"].as_str().unwrap()).await;
        let purge = log
            .iter()
            .find_map(|line| line.strip_prefix("purge enqueued as job "))
            .expect("a purge after the backup")
            .to_owned();
        let purged = api
            .wait_for_status(&purge, "done", Duration::from_secs(30))
            .await;
        assert_eq!(purged["action"], "backup_purge");
    }
    let backups = api.backups().await;
    assert_eq!(backups.len(), 4);
    assert_eq!(stored_keys().await.len(), 8);
    let newest_first = ids(&backups);
    for (id, minutes) in newest_first.iter().rev().zip([120, 61, 59, 0]) {
        age(db, id, minutes).await;
    }

    let purge = run_job(api, json!({ "action": "backup_purge" }), "done").await;
    let log = api.log(purge["id"].as_str().unwrap()).await;
    let deleted: Vec<_> = log
        .iter()
        .filter(|l| l.starts_with("deleted backup "))
        .collect();
    assert_eq!(deleted.len(), 2, "{log:#?}");
    assert!(
        deleted.iter().any(|l| l.starts_with(&format!(
            "deleted backup {} (metadata, 2h0m",
            newest_first[3]
        ))),
        "{log:#?}"
    );
    assert!(
        deleted.iter().any(|l| l.starts_with(&format!(
            "deleted backup {} (metadata, 1h1m",
            newest_first[2]
        ))),
        "{log:#?}"
    );
    assert!(
        log.last()
            .unwrap()
            .contains(": deleted 2 backup(s), freed "),
        "{log:#?}"
    );
    assert!(log.last().unwrap().ends_with(", 2 kept"), "{log:#?}");
    assert_eq!(ids(&api.backups().await), newest_first[..2]);
    let keys = stored_keys().await;
    assert_eq!(keys.len(), 4, "{keys:?}");
    for id in &newest_first[..2] {
        assert!(keys.iter().any(|k| k.contains(id.as_str())), "{keys:?}");
    }

    // However old, the newest stays.
    for (id, minutes) in newest_first[..2].iter().zip([180, 181]) {
        age(db, id, minutes).await;
    }
    run_job(
        api,
        json!({ "action": "backup_purge", "parameters": { "duration": "30m" } }),
        "done",
    )
    .await;
    assert_eq!(ids(&api.backups().await), newest_first[..1]);
    assert_eq!(stored_keys().await.len(), 2);
    let purges = api.jobs("action=backup_purge").await;
    assert_eq!(purges.len(), 6);
    assert!(purges.iter().all(|j| j["status"] == "done"));
}

fn serve(db: &TestDb, env: &[(&str, &str)]) -> Server {
    let mut env = env.to_vec();
    env.push(("MSR_HEARTBEAT_INTERVAL", "1s"));
    Server::start(db, &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_keeps_what_is_younger_and_always_the_newest_on_a_directory() {
    let db = TestDb::new().await;
    let server = serve(&db, &[]);
    let api = Api::new(&server.base);
    let dir = server.backups_path().to_owned();
    retention(&db, &api, async || files(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_keeps_what_is_younger_and_always_the_newest_on_s3() {
    let moto = Moto::start().await;
    moto.create_bucket("backups").await;
    let db = TestDb::new().await;
    let mut env = moto.env();
    env.push(("MSR_BACKUP_STORAGE", "s3://backups/kept"));
    let server = serve(&db, &env);
    let api = Api::new(&server.base);
    retention(&db, &api, async || moto.object_keys("backups").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_that_fails_half_way_leaves_catalog_and_storage_agreeing() {
    let db = TestDb::new().await;
    let server = serve(&db, &[]);
    let api = Api::new(&server.base);
    assert_error(
        &api.call(
            Method::POST,
            "/api/v0/jobs",
            Some(&json!({ "action": "backup_purge" })),
        )
        .await,
        400,
        "INVALID_PARAMETERS",
    );
    for _ in 0..3 {
        run_job(&api, json!({ "action": "backup" }), "done").await;
    }
    let backups = api.backups().await;
    let newest_first = ids(&backups);
    for (id, minutes) in newest_first.iter().zip([120, 121, 122]) {
        age(&db, id, minutes).await;
    }
    // The oldest archive cannot be deleted: a directory stands in its place.
    let dir = server.backups_path();
    let oldest = &backups[2];
    let archive = dir.join(oldest["key"].as_str().unwrap());
    std::fs::remove_file(&archive).unwrap();
    std::fs::create_dir_all(archive.join("in-the-way")).unwrap();
    std::fs::write(archive.join("in-the-way/file"), b"x").unwrap();

    let purge = run_job(
        &api,
        json!({ "action": "backup_purge", "parameters": { "duration": "1h" } }),
        "errored",
    )
    .await;
    let log = api.log(purge["id"].as_str().unwrap()).await;
    assert!(
        log.last()
            .unwrap()
            .contains(&format!("deleting backup {}", newest_first[2])),
        "{log:#?}"
    );
    // Listed: only backups whose archive is there. Gone from storage: only
    // what is no longer listed.
    let listed = api.backups().await;
    for backup in &listed {
        assert!(dir.join(backup["key"].as_str().unwrap()).is_file());
    }
    assert!(!ids(&listed).contains(&newest_first[2]));
    for id in &newest_first[..2] {
        if !ids(&listed).contains(id) {
            assert!(!files(dir).iter().any(|f| f.contains(id.as_str())));
        }
    }

    // Once the storage lets go, the half-done deletion is finished.
    std::fs::remove_dir_all(&archive).unwrap();
    eventually(
        "the deletion is finished",
        Duration::from_secs(10),
        || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM backups WHERE status = 'deleting'")
                .fetch_one(&mut db.connect().await)
                .await
                .unwrap()
                == 0
        },
    )
    .await;
    assert!(
        !files(dir)
            .iter()
            .any(|f| f.contains(newest_first[2].as_str()))
    );
    run_job(
        &api,
        json!({ "action": "backup_purge", "parameters": { "duration": "1h" } }),
        "done",
    )
    .await;
    assert_eq!(ids(&api.backups().await), newest_first[..1]);
    assert_eq!(files(dir).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msr_documented_example_with_a_short_purge_duration() {
    let db = TestDb::new().await;
    let server = serve(&db, &[]);
    let api = Api::new(&server.base);
    // MSR's example backs up every minute and purges after an hour; the
    // same in seconds.
    api.enable_backups(json!({
        "fullBackup": true,
        "schedule": "*/2 * * * * *",
        "deadline": "1h0m0s",
        "purge": { "enabled": true, "duration": "3s" }
    }))
    .await;
    eventually(
        "six scheduled backups done",
        Duration::from_secs(40),
        || async {
            api.jobs("action=backup")
                .await
                .iter()
                .filter(|j| j["status"] == "done")
                .count()
                >= 6
        },
    )
    .await;
    api.disable_backups().await;
    // Let the purge after the last backup finish.
    eventually("no purge left to run", Duration::from_secs(20), || async {
        api.jobs("action=backup_purge")
            .await
            .iter()
            .all(|j| j["status"] == "done")
    })
    .await;
    let purges = api.jobs("action=backup_purge").await;
    assert!(purges.len() >= 6, "{purges:#?}");
    let deleted: usize = {
        let mut deleted = 0;
        for purge in &purges {
            let log = api.log(purge["id"].as_str().unwrap()).await;
            deleted += log
                .iter()
                .filter(|l| l.starts_with("deleted backup "))
                .count();
        }
        deleted
    };
    assert!(deleted >= 3, "old backups disappear: {deleted} deleted");
    // What is left: the newest, and none that was older than the duration
    // when the last purge ran.
    let listed = api.backups().await;
    let done = api
        .jobs("action=backup")
        .await
        .into_iter()
        .filter(|j| j["status"] == "done")
        .count();
    assert!(
        !listed.is_empty() && listed.len() < done,
        "{} of {done} kept",
        listed.len()
    );
    let newest = &listed[0];
    let newest_job = newest["jobID"].as_str().unwrap();
    let last_backup = api
        .jobs("action=backup")
        .await
        .into_iter()
        .find(|j| j["status"] == "done")
        .unwrap();
    assert_eq!(newest_job, last_backup["id"]);
    let newest_time =
        chrono::DateTime::parse_from_rfc3339(newest["created"].as_str().unwrap()).unwrap();
    for backup in &listed {
        let created =
            chrono::DateTime::parse_from_rfc3339(backup["created"].as_str().unwrap()).unwrap();
        assert!(
            newest_time - created <= chrono::Duration::seconds(6),
            "{backup}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_that_s3_refuses_half_way_leaves_catalog_and_storage_agreeing() {
    let moto = Moto::start().await;
    moto.create_bucket("backups").await;
    let proxy = DenyingProxy::start(&moto).await;
    let db = TestDb::new().await;
    let mut env = aws_env(&proxy.endpoint);
    env.push(("MSR_BACKUP_STORAGE", "s3://backups"));
    let server = serve(&db, &env);
    let api = Api::new(&server.base);
    for _ in 0..3 {
        run_job(&api, json!({ "action": "backup" }), "done").await;
    }
    let backups = api.backups().await;
    let newest_first = ids(&backups);
    for (id, minutes) in newest_first.iter().zip([120, 121, 122]) {
        age(&db, id, minutes).await;
    }
    // S3 refuses to delete the oldest archive: the second deletion fails.
    proxy.deny_deletes_of(&format!("{}.tar", newest_first[2]));
    let purge = run_job(
        &api,
        json!({ "action": "backup_purge", "parameters": { "duration": "1h" } }),
        "errored",
    )
    .await;
    let log = api.log(purge["id"].as_str().unwrap()).await;
    assert!(
        log.iter()
            .any(|l| l.starts_with(&format!("deleted backup {}", newest_first[1]))),
        "{log:#?}"
    );
    assert!(
        log.last()
            .unwrap()
            .contains(&format!("deleting backup {}", newest_first[2])),
        "{log:#?}"
    );
    // Every listed backup is in the bucket, whole; the one S3 kept is not listed.
    let keys = moto.object_keys("backups").await;
    let listed = api.backups().await;
    assert_eq!(ids(&listed), newest_first[..1]);
    for backup in &listed {
        assert!(
            keys.contains(&backup["key"].as_str().unwrap().to_owned()),
            "{keys:?}"
        );
    }
    assert!(
        keys.contains(&format!("backups/{}.tar", newest_first[2])),
        "{keys:?}"
    );
    assert!(
        !keys.iter().any(|k| k.contains(newest_first[1].as_str())),
        "{keys:?}"
    );

    // Once S3 lets go, the half-done deletion is finished.
    proxy.allow_all();
    eventually(
        "the deletion is finished",
        Duration::from_secs(15),
        || async {
            !moto
                .object_keys("backups")
                .await
                .iter()
                .any(|k| k.contains(newest_first[2].as_str()))
        },
    )
    .await;
    eventually("its row is gone", Duration::from_secs(5), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM backups")
            .fetch_one(&mut db.connect().await)
            .await
            .unwrap()
            == 1
    })
    .await;
    assert_eq!(moto.object_keys("backups").await.len(), 2);
}
