//! `msr dev seed`, run as the binary against fresh databases.

mod common;

use std::process::{Command, Output};

use common::{TestApp, TestDb, send};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgConnection;

const SMALL: &[&str] = &[
    "--users",
    "20",
    "--orgs",
    "4",
    "--teams-per-org",
    "3",
    "--repositories",
    "50",
    "--tags",
    "300",
    "--scan-results",
    "100",
    "--notary-repositories",
    "10",
];

fn msr(db: &TestDb, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_msr"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("MSR_LOG", "warn")
        .output()
        .expect("running msr")
}

fn seed(db: &TestDb, extra: &[&str]) -> Output {
    let mut args = vec!["dev", "seed"];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(extra);
    msr(db, &args)
}

#[track_caller]
fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(conn)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

async fn migrated() -> TestDb {
    let db = TestDb::new().await;
    succeeded(&msr(&db, &["migrate"]));
    db
}

// Two workers: the seed runs as a blocking subprocess while the served app,
// in this process, must keep going (its upload sweeper may be mid-transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_seed_is_complete_and_consistent() {
    // Served from the start, so that its admin exists before the seeded
    // ones (start-up creates an admin only when there is none).
    let app = TestApp::spawn().await;
    let stdout = succeeded(&seed(&app.db, &["--seed", "3"]));
    assert!(stdout.contains("seeded in"), "{stdout}");
    let mut conn = app.db.connect().await;

    for (sql, expected) in [
        ("SELECT count(*) FROM accounts WHERE NOT is_org AND name <> 'admin'", 20),
        ("SELECT count(*) FROM accounts WHERE is_org", 4),
        ("SELECT count(*) FROM teams", 12),
        ("SELECT count(*) FROM repositories", 50),
        ("SELECT count(*) FROM tags", 300),
        ("SELECT count(*) FROM manifests", 300),
        ("SELECT count(*) FROM tags WHERE name = 'latest'", 50),
        ("SELECT count(*) FROM scan_results", 100),
        // root 1, targets 2, snapshot 2, timestamp 3 per repository
        ("SELECT count(*) FROM notary_tuf_files", 80),
        ("SELECT count(DISTINCT repository_id) FROM notary_tuf_files", 10),
        // every manifest has a config and 2 to 5 layers
        (
            "SELECT count(*) FROM (SELECT 1 FROM manifest_references GROUP BY repository_id, manifest_digest
                                     HAVING count(*) FILTER (WHERE kind = 'config') = 1
                                        AND count(*) FILTER (WHERE kind = 'layer') BETWEEN 2 AND 5) m",
            300,
        ),
    ] {
        assert_eq!(count(&mut conn, sql).await, expected, "{sql}");
    }
    for (sql, what) in [
        ("SELECT count(*) FROM org_members", "org members"),
        ("SELECT count(*) FROM team_members", "team members"),
        ("SELECT count(*) FROM team_repository_access", "team grants"),
        ("SELECT count(*) FROM scan_layers", "scan layers"),
        ("SELECT count(*) FROM accounts WHERE is_admin", "admins"),
        (
            "SELECT count(DISTINCT os || '/' || architecture) - 1 FROM manifests",
            "platforms",
        ),
    ] {
        assert!(count(&mut conn, sql).await > 0, "no {what}");
    }
    // Nothing dangles.
    for (sql, what) in [
        (
            "SELECT count(*) FROM tags t WHERE NOT EXISTS
               (SELECT 1 FROM manifests m WHERE m.repository_id = t.repository_id AND m.digest = t.digest)",
            "tags without their manifest",
        ),
        (
            "SELECT count(*) FROM manifest_references r WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = r.digest)",
            "references without a blob",
        ),
        (
            "SELECT count(*) FROM manifest_references r WHERE NOT EXISTS
               (SELECT 1 FROM repository_blobs b WHERE b.repository_id = r.repository_id AND b.digest = r.digest)",
            "references not linked to their repository",
        ),
        (
            "SELECT count(*) FROM manifests m WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = m.digest)",
            "manifests without a blob",
        ),
        (
            "SELECT count(*) FROM manifests m WHERE m.size <>
               (SELECT b.size FROM blobs b WHERE b.digest = m.digest)
               + (SELECT sum(r.size) FROM manifest_references r
                   WHERE r.repository_id = m.repository_id AND r.manifest_digest = m.digest)",
            "manifests whose size is not the sum of their parts",
        ),
        (
            "SELECT count(*) FROM scan_results s WHERE NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = s.manifest_digest)",
            "scan results of no manifest",
        ),
        (
            "SELECT count(*) FROM scan_layers l WHERE NOT EXISTS
               (SELECT 1 FROM manifest_references r WHERE r.manifest_digest = l.manifest_digest AND r.digest = l.layer_digest)",
            "scanned layers that are not layers of the image",
        ),
        (
            "SELECT count(*) FROM notary_tuf_files WHERE sha256 <> encode(sha256(data), 'hex')",
            "trust files whose checksum is wrong",
        ),
        (
            "SELECT count(*) FROM team_members tm JOIN teams t ON t.id = tm.team_id
              WHERE NOT EXISTS (SELECT 1 FROM org_members m WHERE m.org_id = t.org_id AND m.user_id = tm.user_id)",
            "team members outside their organization",
        ),
        (
            "SELECT count(*) FROM team_repository_access a JOIN teams t ON t.id = a.team_id
               JOIN repositories r ON r.id = a.repository_id WHERE r.namespace_id <> t.org_id",
            "grants on another organization's repositories",
        ),
        (
            "SELECT count(*) FROM blobs WHERE digest !~ '^sha256:[0-9a-f]{64}$'",
            "malformed digests",
        ),
    ] {
        assert_eq!(count(&mut conn, sql).await, 0, "{what}");
    }
    // The keys, indexes and foreign keys dropped for loading are all back.
    assert_eq!(
        count(&mut conn, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace").await,
        19
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname IN ('manifests_by_digest', 'repository_blobs_by_digest', 'blobs_pkey', 'tags_pkey', 'scan_layers_pkey')").await,
        5
    );

    // The API serves what was seeded, and the stored summaries agree with
    // the ones it computes.
    let (namespace, repository, digest): (String, String, String) = sqlx::query_as(
        "SELECT a.name, r.name, t.digest FROM tags t
           JOIN repositories r ON r.id = t.repository_id JOIN accounts a ON a.id = r.namespace_id
           JOIN scan_results s ON s.manifest_digest = t.digest
          WHERE t.name = 'latest' ORDER BY r.created_at LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let (status, summary) = send(app.get(&format!(
        "/api/v0/imagescan/repositories/{namespace}/{repository}/latest"
    )))
    .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    let (_, result) = send(app.get(&format!("/api/v0/imagescan/results/{digest}"))).await;
    let body = serde_json::json!({"scanner": result["scanner"], "layers": result["layers"]});
    let (status, again) =
        send(app.put_json(&format!("/api/v0/imagescan/results/{digest}"), &body)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["summary"], summary["summary"]);

    let (namespace, repository): (String, String) = sqlx::query_as(
        "SELECT a.name, r.name FROM notary_tuf_files n
           JOIN repositories r ON r.id = n.repository_id JOIN accounts a ON a.id = r.namespace_id LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let (status, trust) = send(app.get(&format!(
        "/api/v0/repositories/{namespace}/{repository}/trust"
    )))
    .await;
    assert_eq!(status, StatusCode::OK);
    let latest: Vec<(&str, i64)> = trust["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["role"].as_str().unwrap(), r["version"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        latest,
        [
            ("root", 1),
            ("snapshot", 2),
            ("targets", 2),
            ("timestamp", 3)
        ]
    );
    // Each seeded file passes the checks a client's upload would.
    for role in ["root", "targets", "snapshot", "timestamp"] {
        let path = format!("/api/v0/repositories/{namespace}/{repository}/trust/{role}");
        let (_, file) = send(app.get(&path)).await;
        let mut next: Value = file.clone();
        next["signed"]["version"] = (file["signed"]["version"].as_i64().unwrap() + 1).into();
        let (status, stored) = send(app.put_json(&path, &next)).await;
        assert_eq!(status, StatusCode::CREATED, "{role}: {stored}");
    }

    // Seeded users log in with the seed password.
    let user: String = sqlx::query_scalar(
        "SELECT name FROM accounts WHERE NOT is_org AND is_active AND NOT is_admin LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let (status, _) = send(
        app.http
            .get(app.url("/api/v0/imagescan/database"))
            .basic_auth(&user, Some("seed-password")),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "authenticated, and no database loaded"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_populated_database_needs_force_and_a_new_seed() {
    let db = migrated().await;
    succeeded(&seed(&db, &[]));
    let again = seed(&db, &[]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("--force"), "{stderr}");

    let mut conn = db.connect().await;
    assert_eq!(
        count(&mut conn, "SELECT count(*) FROM repositories").await,
        50
    );
    succeeded(&seed(&db, &["--force", "--seed", "2"]));
    assert_eq!(
        count(&mut conn, "SELECT count(*) FROM repositories").await,
        100
    );
    assert_eq!(count(&mut conn, "SELECT count(*) FROM tags").await, 600);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM accounts WHERE name LIKE '%-s2'"
        )
        .await,
        24
    );
    // The same seed twice collides, and the failed run leaves nothing behind.
    let duplicate = seed(&db, &["--force", "--seed", "2"]);
    assert!(!duplicate.status.success());
    assert_eq!(count(&mut conn, "SELECT count(*) FROM tags").await, 600);
    assert_eq!(
        count(&mut conn, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace").await,
        19
    );
}

#[tokio::test]
async fn a_seed_gives_the_same_data_every_time() {
    async fn fingerprint(db: &TestDb) -> (String, String, String) {
        sqlx::query_as(
            "SELECT (SELECT md5(string_agg(name || full_name || is_admin::text || created_at::text, ',' ORDER BY name)) FROM accounts),
                    (SELECT md5(string_agg(t.name || t.digest || m.size || m.os || m.architecture, ',' ORDER BY t.digest))
                       FROM tags t JOIN manifests m USING (repository_id, digest)),
                    (SELECT md5(string_agg(sha256, ',' ORDER BY sha256)) FROM notary_tuf_files)",
        )
        .fetch_one(&mut db.connect().await)
        .await
        .unwrap()
    }
    let one = migrated().await;
    let two = migrated().await;
    succeeded(&seed(&one, &["--seed", "9"]));
    succeeded(&seed(&two, &["--seed", "9"]));
    assert_eq!(fingerprint(&one).await, fingerprint(&two).await);
    let three = migrated().await;
    succeeded(&seed(&three, &["--seed", "10"]));
    assert_ne!(fingerprint(&one).await.1, fingerprint(&three).await.1);
}

#[tokio::test]
async fn impossible_counts_are_refused_before_anything_is_written() {
    let db = migrated().await;
    let output = msr(
        &db,
        &["dev", "seed", "--tags", "10", "--scan-results", "11"],
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--scan-results"));
    let mut conn = db.connect().await;
    assert_eq!(count(&mut conn, "SELECT count(*) FROM accounts").await, 0);
}
