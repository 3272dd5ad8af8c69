//! Several real `msr serve` processes on one database: every schedule
//! occurrence yields exactly one job, a replica killed with SIGKILL mid-backup
//! has its job failed and its upload discarded by the others, and after all
//! replicas were down one catch-up backup runs.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::archive::files;
use common::jobs::{Api, eventually};
use common::{Server, TestDb};
use serde_json::json;

fn serve(db: &TestDb, backups: &std::path::Path) -> Server {
    let backups = backups.display().to_string();
    Server::start(
        db,
        &[
            ("MSR_BACKUP_STORAGE", &backups),
            ("MSR_HEARTBEAT_INTERVAL", "1s"),
            ("MSR_LOG", "info,sqlx=warn"),
        ],
    )
}

async fn occurrences(db: &TestDb) -> BTreeMap<DateTime<Utc>, i64> {
    let rows: Vec<(DateTime<Utc>, i64)> = sqlx::query_as(
        "SELECT occurrence, count(*) FROM jobs WHERE action = 'backup' AND occurrence IS NOT NULL
         GROUP BY occurrence",
    )
    .fetch_all(&mut db.connect().await)
    .await
    .unwrap();
    rows.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_enqueue_every_occurrence_exactly_once() {
    let db = TestDb::new().await;
    let backups = tempfile::tempdir().unwrap();
    let replicas: Vec<Server> = (0..3).map(|_| serve(&db, backups.path())).collect();
    let api = Api::new(&replicas[0].base);
    let workers = api.get("/api/v0/workers").await;
    assert_eq!(workers["workers"].as_array().unwrap().len(), 3, "{workers}");

    api.enable_backups(json!({ "schedule": "* * * * * *" }))
        .await;
    eventually("65 occurrences", Duration::from_secs(120), || async {
        occurrences(&db).await.len() >= 65
    })
    .await;
    api.disable_backups().await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let occurrences = occurrences(&db).await;
    let duplicates: Vec<_> = occurrences.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "occurrences with more than one job: {duplicates:?}"
    );
    let times: Vec<_> = occurrences.keys().collect();
    let missing: Vec<_> = times
        .windows(2)
        .filter(|pair| *pair[1] - *pair[0] != chrono::Duration::seconds(1))
        .collect();
    assert!(missing.is_empty(), "gaps between occurrences: {missing:?}");
    assert!(times.len() >= 65);

    // Each one ran or was skipped because the one before was still running;
    // every one that ran is listed.
    let jobs = api.jobs("action=backup").await;
    let done = jobs.iter().filter(|j| j["status"] == "done").count();
    let skipped = jobs.iter().filter(|j| j["status"] == "canceled").count();
    assert_eq!(done + skipped, jobs.len(), "{jobs:#?}");
    assert!(done > 0);
    assert_eq!(api.backups().await.len(), done);
    // The jobs were spread over the replicas that claimed them.
    let workers: std::collections::BTreeSet<_> = jobs
        .iter()
        .filter(|j| j["status"] == "done")
        .map(|j| j["workerID"].as_str().unwrap().to_owned())
        .collect();
    assert!(!workers.is_empty());
    for worker in &workers {
        assert!(replicas.iter().any(|r| &r.worker_id == worker), "{worker}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_has_its_backup_failed_and_discarded_by_another() {
    let db = TestDb::new().await;
    let backups = tempfile::tempdir().unwrap();
    let mut replicas = [serve(&db, backups.path()), serve(&db, backups.path())];
    let api = Api::new(&replicas[0].base);

    // The backup blocks on a table lock, with its upload started.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE notary_tuf_files IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    api.enable_backups(json!({ "schedule": "*/2 * * * * *" }))
        .await;
    eventually(
        "a scheduled backup is running",
        Duration::from_secs(15),
        || async { !api.jobs("running=true").await.is_empty() },
    )
    .await;
    let job = api.jobs("running=true").await.remove(0);
    let id = job["id"].as_str().unwrap().to_owned();
    eventually("the upload is started", Duration::from_secs(5), || async {
        !files(backups.path()).is_empty()
    })
    .await;
    assert!(api.backups().await.is_empty());
    // Once the job has failed, the next occurrence may start an upload of
    // its own on the replica left: what must go is this one.
    let dead_upload = files(backups.path());

    let victim = replicas
        .iter()
        .position(|r| r.worker_id == job["workerID"].as_str().unwrap())
        .expect("the job runs on one of the replicas");
    replicas[victim].signal("KILL");
    replicas[victim].wait_exit(Duration::from_secs(5));
    let survivor = Api::new(&replicas[1 - victim].base);
    // Three missed heartbeats of 1s, then the next sweep.
    let errored = survivor
        .wait_for_status(&id, "errored", Duration::from_secs(15))
        .await;
    assert_eq!(errored["workerID"], job["workerID"]);
    let log = survivor.log(&id).await;
    assert!(
        log.last().unwrap().contains(&format!(
            "worker {} stopped responding",
            job["workerID"].as_str().unwrap()
        )),
        "{log:#?}"
    );
    eventually(
        "the dead replica's upload is discarded",
        Duration::from_secs(10),
        || async {
            let left = files(backups.path());
            dead_upload.iter().all(|file| !left.contains(file))
        },
    )
    .await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM backups WHERE job_id = $1::uuid")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    let workers = survivor.get("/api/v0/workers").await;
    let dead = workers["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == job["workerID"])
        .expect("the dead worker is still listed for a while");
    assert_eq!(dead["status"], "dead");

    // The schedule goes on, on the replica left.
    lock.rollback().await.unwrap();
    eventually(
        "a later occurrence is done",
        Duration::from_secs(20),
        || async {
            survivor
                .jobs("action=backup")
                .await
                .iter()
                .any(|j| j["status"] == "done")
        },
    )
    .await;
    survivor.disable_backups().await;
    let listed = survivor.backups().await;
    assert!(!listed.is_empty());
    for backup in &listed {
        assert!(
            backups
                .path()
                .join(backup["key"].as_str().unwrap())
                .is_file()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_downtime_one_catch_up_backup_runs() {
    let db = TestDb::new().await;
    let backups = tempfile::tempdir().unwrap();
    let mut first = serve(&db, backups.path());
    let api = Api::new(&first.base);
    api.enable_backups(json!({ "schedule": "* * * * * *" }))
        .await;
    eventually("two scheduled backups", Duration::from_secs(15), || async {
        occurrences(&db).await.len() >= 2
    })
    .await;
    first.signal("TERM");
    first.wait_exit(Duration::from_secs(10));
    let before = occurrences(&db).await;
    let last_before = *before.keys().last().unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;

    let second = serve(&db, backups.path());
    let api = Api::new(&second.base);
    eventually("the catch-up job", Duration::from_secs(10), || async {
        occurrences(&db).await.len() > before.len()
    })
    .await;
    // Collected before the next regular occurrences can blur the picture.
    let after = occurrences(&db).await;
    let catch_up = *after.keys().find(|t| **t > last_before).unwrap();
    assert!(
        catch_up - last_before >= chrono::Duration::seconds(6),
        "{last_before} then {catch_up}"
    );
    let jobs = api.jobs("action=backup").await;
    let job = jobs
        .iter()
        .find(|j| j["scheduledAt"] == msr::registry::time::format(&catch_up))
        .unwrap();
    let log = api.log(job["id"].as_str().unwrap()).await;
    let missed = (catch_up - last_before).num_seconds() - 1;
    assert!(
        log.iter().any(|l| l.starts_with(&format!(
            "catch-up: {missed} earlier occurrence(s) passed while no replica was running"
        ))),
        "{log:#?}"
    );
    api.disable_backups().await;
}
