//! More of `msr backup`, `msr verify` and `msr restore`, end to end with the
//! real binary: the progress bar (drawn on a terminal only, never into the
//! archive, and no archive written to a terminal), the HTTP download route
//! (`GET /api/v0/meta/backups/new`: headers, kinds, scan data, and who may
//! call it), `--ignore-scan-data` on backup and on restore, and full backups
//! of S3 storage restored into another bucket (moto), whole or, for a
//! damaged archive, not at all.
//!
//! Each test has fresh databases of its own. Needs util-linux `script`,
//! `skopeo` on PATH and `moto_server` (`.venv`, or `MSR_TEST_MOTO_SERVER`);
//! a test whose tool is missing fails, it does not skip.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::archive::{contents, description, members, msr, msr_ok, msr_with, row_counts};
use common::moto::Moto;
use common::oci::{OciImage, assert_pulls, host_of, oci_image, push, skopeo};
use common::{
    ADMIN, ADMIN_PASSWORD, Server, TestApp, TestDb, assert_error, create_repository, send,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const MSR: &str = env!("CARGO_BIN_EXE_msr");
const NEW_BACKUP: &str = "/api/v0/meta/backups/new";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Single quotes for `sh -c`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `cmd` run by `sh` under a pseudo-terminal (util-linux `script`): the
/// output is what the terminal showed.
fn under_terminal(cmd: &str, database_url: &str, storage: &Path) -> Output {
    Command::new("script")
        .args(["-qec", cmd, "/dev/null"])
        .env("DATABASE_URL", database_url)
        .env("MSR_STORAGE", storage)
        .env("MSR_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect(
            "util-linux `script` is required for the terminal tests (apt-get install util-linux)",
        )
}

/// `msr verify -` on `archive`, which must pass.
fn verify_ok(archive: &[u8]) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("archive.tar");
    std::fs::write(&file, archive).unwrap();
    let output = msr(
        &["verify", file.to_str().unwrap()],
        "postgres://unused.invalid/none",
        scratch.path(),
        None,
    );
    assert!(
        output.status.success(),
        "msr verify refused the archive: {}",
        text(&output.stderr)
    );
    let summary = text(&output.stdout);
    assert!(summary.contains("OK, every checksum matched"), "{summary}");
    summary
}

fn member_paths(archive: &[u8]) -> Vec<String> {
    members(archive).into_iter().map(|m| m.path).collect()
}

fn scan_members(archive: &[u8]) -> Vec<String> {
    member_paths(archive)
        .into_iter()
        .filter(|path| path.starts_with("metadata/scan_results/"))
        .collect()
}

/// Every blob of an OCI layout (layers, config, manifest), by hex digest.
fn layout_blobs(image: &OciImage) -> BTreeSet<String> {
    std::fs::read_dir(image.dir.path().join("blobs/sha256"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// The archive's blobs, each checked to hold the content its name says.
fn archive_blobs(archive: &[u8]) -> BTreeSet<String> {
    contents(archive)
        .blobs
        .into_iter()
        .map(|(hex, (_, actual))| {
            assert_eq!(actual, hex, "blob member {hex} holds other content");
            hex
        })
        .collect()
}

fn scan_body() -> Value {
    let layer = format!("sha256:{}", "1".repeat(64));
    json!({
        "scanner": "trivy 0.58.1",
        "scannedAt": "2026-03-04T05:06:07Z",
        "layers": [{"digest": layer, "components": [
            {"name": "openssl", "version": "3.0.13",
             "vulnerabilities": [{"id": "CVE-2024-1", "severity": "critical"}]},
            {"name": "zlib", "version": "1.3"}]}]
    })
}

async fn put_scan(app: &TestApp, digest: &str) {
    let (status, body) = send(
        app.admin()
            .put(&format!("/api/v0/imagescan/results/{digest}"), &scan_body()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn the_progress_bar_is_drawn_on_a_terminal_only() {
    let app = TestApp::spawn().await;
    for name in ["alice", "bob", "carol"] {
        app.create_user(name, "a user's password", false).await;
    }
    create_repository(&app.db, "alice", "web").await;
    // Five rows (four accounts, a repository) are enough: the bar draws as
    // soon as it has a length, however quickly the backup then goes.
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("out.tar");
    let shown = under_terminal(
        &format!("{} backup - > {}", quote(MSR), quote(out.to_str().unwrap())),
        &app.db.url,
        app.storage.path(),
    );
    let terminal = text(&shown.stdout);
    assert!(
        shown.status.success(),
        "msr backup under a terminal failed: {terminal}{}",
        text(&shown.stderr)
    );
    assert!(
        terminal.contains("metadata [")
            && terminal.contains(" rows (")
            && terminal.contains("/5 rows"),
        "no progress bar on the terminal: {terminal:?}"
    );
    let archive = std::fs::read(&out).unwrap();
    verify_ok(&archive);
    let accounts = &contents(&archive).tables["accounts"];
    assert!(
        accounts.iter().any(|row| row.contains("\"carol\"")),
        "{accounts:?}"
    );
    for bar in ["metadata [", " rows (", "· archive"] {
        assert!(
            !archive.windows(bar.len()).any(|w| w == bar.as_bytes()),
            "the archive holds the bar's text {bar:?}"
        );
    }

    // Not a terminal: no bar, and stdout is the archive alone.
    let piped = msr_ok(&["backup", "-"], &app.db.url, app.storage.path(), None);
    let stderr = text(&piped.stderr);
    assert!(
        !stderr.contains("rows") && !stderr.contains("metadata ["),
        "a bar on a stderr that is not a terminal: {stderr:?}"
    );
    verify_ok(&piped.stdout);

    // An archive is never written to a terminal.
    let refused = under_terminal(
        &format!("{} backup -", quote(MSR)),
        &app.db.url,
        app.storage.path(),
    );
    let terminal = text(&refused.stdout);
    assert!(!refused.status.success(), "wrote to a terminal: {terminal}");
    assert!(
        terminal.contains("refusing to write an archive to a terminal"),
        "{terminal:?}"
    );
    assert!(
        !terminal.contains("backup.json"),
        "archive bytes on the terminal"
    );
    app.stop().await;
}

/// A backup of `kind` over HTTP, as an admin, with `query`.
async fn download(app: &TestApp, query: &str, kind: &str) -> Vec<u8> {
    let response = app
        .admin()
        .get(&format!("{NEW_BACKUP}{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/x-tar", "{query}");
    let disposition = headers["content-disposition"].to_str().unwrap().to_owned();
    assert!(
        disposition.starts_with(&format!("attachment; filename=\"msr-backup-{kind}-"))
            && disposition.ends_with(".tar\""),
        "{disposition}"
    );
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn a_backup_downloads_over_http() {
    let app = TestApp::spawn().await;
    app.create_user("dora", "dora's password", false).await;
    create_repository(&app.db, ADMIN, "app").await;
    // The server runs on this test's runtime: push from another thread.
    let host = host_of(&app.base).to_owned();
    let (image, pushed) = tokio::task::spawn_blocking(move || {
        let image = oci_image(&[1000]);
        let pushed = push(
            &image,
            &host,
            "admin/app:v1",
            &format!("{ADMIN}:{ADMIN_PASSWORD}"),
        );
        (image, pushed)
    })
    .await
    .unwrap();
    assert!(
        pushed.status.success(),
        "skopeo push: {}",
        text(&pushed.stderr)
    );
    put_scan(&app, &image.manifest_digest).await;

    let metadata = download(&app, "", "metadata").await;
    let summary = verify_ok(&metadata);
    assert!(summary.contains("type:      metadata"), "{summary}");
    let described = description(&metadata);
    assert_eq!(described["type"], "metadata");
    assert_eq!(described["ignoreScanData"], false);
    assert!(described.get("blobs").is_none(), "{described}");
    let tables = contents(&metadata).tables;
    assert!(
        tables["accounts"]
            .iter()
            .any(|row| row.contains("\"dora\"")),
        "{tables:?}"
    );
    assert!(
        tables["manifests"]
            .iter()
            .any(|row| row.contains(&image.manifest_digest))
    );
    assert!(!scan_members(&metadata).is_empty(), "scan data is included");
    assert!(
        !member_paths(&metadata)
            .iter()
            .any(|path| path.starts_with("blobs/")),
        "blobs in a metadata backup"
    );

    let full = download(&app, "?fullBackup=true", "full").await;
    let summary = verify_ok(&full);
    assert!(summary.contains("type:      full"), "{summary}");
    let described = description(&full);
    assert_eq!(described["type"], "full");
    assert_eq!(described["blobs"]["count"], 3, "{described}");
    assert_eq!(archive_blobs(&full), layout_blobs(&image));

    let without_scans = download(&app, "?fullBackup=false&ignoreScanData=true", "metadata").await;
    verify_ok(&without_scans);
    let described = description(&without_scans);
    assert_eq!(described["type"], "metadata");
    assert_eq!(described["ignoreScanData"], true);
    assert!(
        described["excluded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "scan_results"),
        "{described}"
    );
    assert_eq!(scan_members(&without_scans), Vec::<String>::new());
    assert!(contents(&without_scans).tables.contains_key("manifests"));

    // Who may ask, and how.
    assert_error(
        &send(app.caller("dora", "dora's password").get(NEW_BACKUP)).await,
        403,
        "NOT_AUTHORIZED",
    );
    assert_error(
        &send(app.http.get(app.url(NEW_BACKUP))).await,
        401,
        "NOT_AUTHENTICATED",
    );
    assert_error(
        &send(app.caller(ADMIN, "not the password").get(NEW_BACKUP)).await,
        401,
        "NOT_AUTHENTICATED",
    );
    for (query, field) in [
        ("?fullBackup=yes", "fullBackup"),
        ("?ignoreScanData=1", "ignoreScanData"),
        ("?full=true", "full"),
        ("?fullBackup=true&extra=1", "extra"),
    ] {
        let error = assert_error(
            &send(app.admin().get(&format!("{NEW_BACKUP}{query}"))).await,
            400,
            "INVALID_PARAMETERS",
        );
        assert_eq!(error["detail"]["field"], field, "{query}: {error}");
    }
    app.stop().await;
}

#[tokio::test]
async fn ignore_scan_data_on_backup_and_on_restore() {
    let app = TestApp::spawn().await;
    app.create_user("erin", "erin's password", false).await;
    let mut conn = app.db.connect().await;
    let digest = format!("sha256:{}", "a".repeat(64));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO accounts (name, is_org) VALUES ('engineering', true);
         INSERT INTO repositories (namespace_id, name) SELECT id, 'api' FROM accounts WHERE name = 'engineering';
         INSERT INTO blobs (digest, size) VALUES ('{digest}', 500);
         INSERT INTO manifests (repository_id, digest, media_type, os, architecture, size)
              SELECT id, '{digest}', 'application/vnd.oci.image.manifest.v1+json', 'linux', 'amd64', 500
                FROM repositories WHERE name = 'api';
         INSERT INTO tags (repository_id, name, digest) SELECT id, '1.0', '{digest}' FROM repositories WHERE name = 'api';"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    put_scan(&app, &digest).await;
    let source = row_counts(&app.db.url).await;
    assert_eq!(source["scan_results"], 1);
    assert!(source["scan_layers"] >= 1, "{source:?}");
    let storage = app.storage.path();

    // Left out at backup time.
    let left_out = msr_ok(
        &["backup", "--ignore-scan-data", "-"],
        &app.db.url,
        storage,
        None,
    )
    .stdout;
    verify_ok(&left_out);
    let described = description(&left_out);
    assert_eq!(described["ignoreScanData"], true);
    let excluded: Vec<&str> = described["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(excluded.contains(&"scan_results"), "{described}");
    assert!(
        !described["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "scan_results"),
        "{described}"
    );
    assert_eq!(scan_members(&left_out), Vec::<String>::new());

    let without_scans = |counts: &BTreeMap<String, i64>| {
        let mut counts = counts.clone();
        counts.insert("scan_results".into(), 0);
        counts.insert("scan_layers".into(), 0);
        counts
    };
    let target = TestDb::new().await;
    let target_storage = tempfile::tempdir().unwrap();
    msr_ok(
        &["restore", "-"],
        &target.url,
        target_storage.path(),
        Some(&left_out),
    );
    assert_eq!(row_counts(&target.url).await, without_scans(&source));

    // Kept in the archive, left out at restore time.
    let whole = msr_ok(&["backup", "-"], &app.db.url, storage, None).stdout;
    assert_eq!(description(&whole)["ignoreScanData"], false);
    assert!(!scan_members(&whole).is_empty(), "no scan data backed up");
    let whole_tables = contents(&whole).tables;
    assert!(whole_tables.contains_key("scan_results"));

    let skipping = TestDb::new().await;
    let restored = msr_ok(
        &["restore", "--ignore-scan-data", "-"],
        &skipping.url,
        target_storage.path(),
        Some(&whole),
    );
    let summary = text(&restored.stdout);
    assert!(summary.contains("not restored: scan_results"), "{summary}");
    assert_eq!(row_counts(&skipping.url).await, without_scans(&source));
    let again = msr_ok(&["backup", "-"], &skipping.url, target_storage.path(), None).stdout;
    let mut expected = whole_tables.clone();
    expected.remove("scan_results");
    expected.remove("scan_layers");
    assert_eq!(contents(&again).tables, expected, "the other rows differ");

    // Kept at both ends.
    let keeping = TestDb::new().await;
    msr_ok(
        &["restore", "-"],
        &keeping.url,
        target_storage.path(),
        Some(&whole),
    );
    assert_eq!(row_counts(&keeping.url).await, source);
    let again = msr_ok(&["backup", "-"], &keeping.url, target_storage.path(), None).stdout;
    assert_eq!(contents(&again).tables, whole_tables);
    app.stop().await;
}

fn s3_env<'a>(moto: &'a Moto, storage: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut env = moto.env();
    env.push(("MSR_STORAGE", storage));
    env
}

/// A registry on s3://source with one pushed image, and its full backup.
struct S3Source {
    moto: Moto,
    _db: TestDb,
    _server: Server,
    image: OciImage,
    archive: Vec<u8>,
}

async fn s3_source() -> S3Source {
    let moto = Moto::start().await;
    moto.create_bucket("source").await;
    moto.create_bucket("target").await;
    let db = TestDb::new().await;
    let server = Server::start(&db, &s3_env(&moto, "s3://source"));
    create_repository(&db, ADMIN, "app").await;
    let image = oci_image(&[2000, 150_000]);
    let pushed = push(
        &image,
        host_of(&server.base),
        "admin/app:v1",
        &format!("{ADMIN}:{ADMIN_PASSWORD}"),
    );
    assert!(
        pushed.status.success(),
        "skopeo push: {}",
        text(&pushed.stderr)
    );
    let backup = msr_with(
        &["backup", "--full", "-"],
        &db.url,
        &s3_env(&moto, "s3://source"),
        None,
    );
    assert!(
        backup.status.success(),
        "msr backup --full: {}",
        text(&backup.stderr)
    );
    let archive = backup.stdout;
    verify_ok(&archive);
    assert_eq!(description(&archive)["source"]["storage"], "s3://source");
    assert_eq!(archive_blobs(&archive), layout_blobs(&image));
    S3Source {
        moto,
        _db: db,
        _server: server,
        image,
        archive,
    }
}

#[tokio::test]
async fn full_backup_and_restore_on_s3() {
    let source = s3_source().await;
    let moto = &source.moto;
    let target = TestDb::new().await;
    let restored = msr_with(
        &["restore", "-"],
        &target.url,
        &s3_env(moto, "s3://target"),
        Some(&source.archive),
    );
    assert!(
        restored.status.success(),
        "msr restore: {}",
        text(&restored.stderr)
    );
    let summary = text(&restored.stdout);
    assert!(
        summary.contains("restored a full backup")
            && summary.contains("blobs:     4 (")
            && summary.contains("into s3://target, 0 of them already there"),
        "{summary}"
    );
    let mut keys = moto.object_keys("target").await;
    keys.sort();
    let expected: Vec<String> = layout_blobs(&source.image)
        .iter()
        .map(|hex| format!("blobs/sha256/{hex}"))
        .collect();
    assert_eq!(keys, expected, "the target bucket");
    assert!(!keys.iter().any(|key| key.starts_with("_restore/")));

    // The restored instance serves the image from the target bucket.
    let server = Server::start(&target, &s3_env(moto, "s3://target"));
    let host = host_of(&server.base);
    let creds = format!("{ADMIN}:{ADMIN_PASSWORD}");
    let inspect = skopeo(&[
        "inspect",
        "--creds",
        &creds,
        "--tls-verify=false",
        &format!("docker://{host}/admin/app:v1"),
    ]);
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));
    let inspected: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspected["Digest"], source.image.manifest_digest.as_str());
    assert_eq!(inspected["Layers"], json!(source.image.layer_digests));
    assert_pulls(&source.image, host, "admin/app:v1", &creds);
}

#[tokio::test]
async fn a_damaged_archive_leaves_s3_untouched() {
    let source = s3_source().await;
    let moto = &source.moto;
    // The last blob, so the ones before it are staged when it fails.
    let blob = members(&source.archive)
        .into_iter()
        .rfind(|m| m.path.starts_with("blobs/sha256/"))
        .unwrap();
    assert!(blob.size > 0);
    let mut damaged = source.archive.clone();
    damaged[blob.data + blob.size / 2] ^= 0x01;

    let verified = msr(
        &["verify", "-"],
        "postgres://unused.invalid/none",
        Path::new("/nonexistent"),
        Some(&damaged),
    );
    assert!(
        !verified.status.success(),
        "verify passed a damaged archive"
    );
    assert!(
        text(&verified.stderr).contains(&blob.path),
        "{}",
        text(&verified.stderr)
    );

    let target = TestDb::new().await;
    let restored = msr_with(
        &["restore", "-"],
        &target.url,
        &s3_env(moto, "s3://target"),
        Some(&damaged),
    );
    let stderr = text(&restored.stderr);
    assert!(!restored.status.success(), "restored a damaged archive");
    assert!(stderr.contains(&blob.path), "{stderr}");
    assert_eq!(
        moto.object_keys("target").await,
        Vec::<String>::new(),
        "the target bucket"
    );
    let counts = row_counts(&target.url).await;
    assert!(
        counts.values().all(|&rows| rows == 0),
        "rows left in the target: {counts:?}"
    );
}
