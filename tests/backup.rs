//! Backup archives end to end, through the `msr` binary as an operator runs
//! it: a full round trip into a new instance (same rows, same blobs, same API
//! answers, same passwords, same image digests through skopeo), damaged and
//! foreign archives refused with the target left as it was, the refusal of a
//! non-empty target and of a newer schema, and a backup that stays one
//! snapshot while pushes go on.
//!
//! Needs `skopeo` on PATH (installed by `.ci/run`); without it the tests
//! fail, they do not skip.

mod common;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use common::archive::{
    contents, description, files, members, msr, msr_ok, row_counts, with_description,
};
use common::oci::{OciImage, assert_pulls, host_of, oci_image, push, sha256};
use common::{ADMIN, ADMIN_PASSWORD, TestApp, TestDb, send};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ALICE_PASSWORD: &str = "alice-has-a-long-password";

async fn ok(request: reqwest::RequestBuilder) -> Value {
    let (status, body) = send(request).await;
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// Every kind of data a backup carries, made through the API as an
/// operator would: settings, users, an org with teams and members,
/// repositories with team access, two images pushed with skopeo, Notary
/// trust data, a scan result, and a vulnerability database (which must not
/// survive the trip). Returns the pushed images' manifest digests.
async fn fill(app: &TestApp) -> Vec<(String, OciImage)> {
    let admin = app.admin();
    ok(admin.put(
        "/api/v0/meta/settings/smtp",
        &json!({"enabled": true, "user": "mailer", "password": "smtp-secret",
                "serverAddress": "smtp.example.com", "serverPort": 587,
                "senderAddress": "msr@example.com"}),
    ))
    .await;
    ok(admin.put(
        "/api/v0/meta/settings/backup",
        &json!({"enabled": true, "fullBackup": true, "distributionList": "ops@example.com",
                "schedule": "0 3 * * *", "deadline": "1h", "purge": {"enabled": true, "duration": "720h"}}),
    ))
    .await;
    for (name, password) in [("alice", ALICE_PASSWORD), ("bob", "bob-password-123")] {
        ok(admin.post(
            "/enzi/v0/accounts",
            &json!({"name": name, "password": password, "fullName": format!("{name} Example")}),
        ))
        .await;
    }
    ok(admin.post("/enzi/v0/accounts", &json!({"name": "acme", "isOrg": true}))).await;
    ok(admin.put(
        "/enzi/v0/accounts/acme/members/alice",
        &json!({"isAdmin": true}),
    ))
    .await;
    ok(admin.post(
        "/enzi/v0/accounts/acme/teams",
        &json!({"name": "devs", "description": "The developers"}),
    ))
    .await;
    ok(admin.put("/enzi/v0/accounts/acme/teams/devs/members/bob", &json!({}))).await;
    for (namespace, name) in [("acme", "app"), ("acme", "tools"), ("alice", "scratch")] {
        ok(admin.post(
            &format!("/api/v0/repositories/{namespace}"),
            &json!({"name": name, "shortDescription": format!("{name} images"), "visibility": "private"}),
        ))
        .await;
    }
    ok(admin.put(
        "/api/v0/repositories/acme/app/teamAccess/devs",
        &json!({"accessLevel": "read-write"}),
    ))
    .await;

    let creds = format!("{ADMIN}:{ADMIN_PASSWORD}");
    let mut images = Vec::new();
    for (target, layers) in [
        ("acme/app", &[200_000usize, 900_000][..]),
        ("acme/tools", &[50_000usize][..]),
    ] {
        let image = oci_image(layers);
        let pushed = push(&image, host_of(&app.base), &format!("{target}:v1"), &creds);
        assert!(
            pushed.status.success(),
            "skopeo push: {}",
            String::from_utf8_lossy(&pushed.stderr)
        );
        images.push((target.to_owned(), image));
    }

    let signed = json!({
        "signed": {"_type": "root", "version": 1, "expires": "2030-01-01T00:00:00Z"},
        "signatures": [{"keyid": "0b2fd8fe", "method": "ecdsa", "sig": "MEUCIQDx"}]
    });
    ok(admin.put("/api/v0/repositories/acme/app/trust/root", &signed)).await;
    let app_manifest = &images[0].1.manifest_digest;
    ok(admin.put(
        &format!("/api/v0/imagescan/results/{app_manifest}"),
        &json!({"scanner": "trivy 0.58.1", "scannedAt": "2026-03-04T05:06:07Z",
                "layers": [{"digest": images[0].1.layer_digests[0], "components": [
                    {"name": "openssl", "version": "3.0.13",
                     "vulnerabilities": [{"id": "CVE-2024-1", "severity": "critical"}]}]}]}),
    ))
    .await;
    ok(admin.put(
        "/api/v0/imagescan/database",
        &json!({"version": "2026.01.01", "vulnerabilities": [
            {"id": "CVE-2024-1", "severity": "critical", "summary": "bad", "cvssScore": 9.8}]}),
    ))
    .await;
    images
}

/// What an operator or the web UI reads back, resource by resource.
fn resources(images: &[(String, OciImage)]) -> Vec<String> {
    let mut paths: Vec<String> = [
        "/api/v0/meta/settings/backup",
        "/api/v0/meta/settings/smtp",
        "/enzi/v0/accounts?limit=100",
        "/enzi/v0/accounts/alice",
        "/enzi/v0/accounts/acme/members",
        "/enzi/v0/accounts/acme/teams",
        "/enzi/v0/accounts/acme/teams/devs",
        "/enzi/v0/accounts/acme/teams/devs/members",
        "/api/v0/repositories/acme",
        "/api/v0/repositories/alice",
        "/api/v0/repositories/acme/app",
        "/api/v0/repositories/acme/app/teamAccess",
        "/api/v0/repositories/acme/app/tags",
        "/api/v0/repositories/acme/tools/tags",
        "/api/v0/repositories/acme/app/trust/root",
        "/api/v0/imagescan/repositories/acme/app/v1",
        "/v2/_catalog",
        "/v2/acme/app/tags/list",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .collect();
    paths.push(format!(
        "/api/v0/imagescan/results/{}",
        images[0].1.manifest_digest
    ));
    for (repository, image) in images {
        paths.push(format!(
            "/v2/{repository}/manifests/{}",
            image.manifest_digest
        ));
    }
    paths
}

async fn answer(app: &TestApp, path: &str) -> (StatusCode, String) {
    let response = app
        .http
        .get(app.url(path))
        .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/json",
        )
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    // The next scheduled runs are computed from the clock, not stored.
    let body = match serde_json::from_str::<Value>(&body) {
        Ok(mut value) => {
            if let Some(object) = value.as_object_mut() {
                object.remove("nextRuns");
            }
            value.to_string()
        }
        Err(_) => body,
    };
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backup_restores_into_a_new_instance_identically() {
    let source = TestApp::spawn().await;
    let images = fill(&source).await;
    let first = msr_ok(
        &["backup", "--full", "-"],
        &source.db.url,
        source.storage.path(),
        None,
    )
    .stdout;

    // The archive as `tar -tf` sees it: description first, checksums last.
    let listing = {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backup.tar");
        std::fs::write(&file, &first).unwrap();
        let output = std::process::Command::new("tar")
            .arg("-tf")
            .arg(&file)
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    let listed: Vec<&str> = listing.lines().collect();
    assert_eq!(listed.first(), Some(&"backup.json"));
    assert_eq!(listed.last(), Some(&"checksums.sha256"));
    for image in images.iter().map(|(_, image)| image) {
        for digest in image.layer_digests.iter().chain([&image.manifest_digest]) {
            let member = format!("blobs/sha256/{}", &digest[7..]);
            assert!(listed.contains(&member.as_str()), "{member} in {listing}");
        }
    }
    assert!(!listing.contains("vulnerab"), "{listing}");
    let described = description(&first);
    assert_eq!(described["type"], "full");
    assert_eq!(described["ignoreScanData"], false);
    let excluded: Vec<&str> = described["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(excluded.contains(&"vulnerability_database"), "{described}");

    let verified = msr_ok(&["verify", "-"], "", source.storage.path(), Some(&first));
    let summary = String::from_utf8(verified.stdout).unwrap();
    assert!(summary.contains("every checksum matched"), "{summary}");
    assert!(summary.contains("full"), "{summary}");

    let target_db = TestDb::new().await;
    let target_storage = tempfile::tempdir().unwrap();
    let restored = msr_ok(
        &["restore", "-"],
        &target_db.url,
        target_storage.path(),
        Some(&first),
    );
    let said = String::from_utf8(restored.stdout).unwrap();
    assert!(said.contains("re-download"), "{said}");
    assert!(
        !target_storage.path().join("_restore").exists(),
        "nothing left staged"
    );

    let second = msr_ok(
        &["backup", "--full", "-"],
        &target_db.url,
        target_storage.path(),
        None,
    )
    .stdout;
    let (before, after) = (contents(&first), contents(&second));
    assert_eq!(
        before.tables.keys().collect::<Vec<_>>(),
        after.tables.keys().collect::<Vec<_>>()
    );
    for (table, rows) in &before.tables {
        assert_eq!(rows, &after.tables[table], "rows of {table}");
    }
    assert_eq!(before.blobs, after.blobs);
    for (hex, (_, actual)) in &before.blobs {
        assert_eq!(hex, actual, "blob content matches its name");
    }
    assert!(before.tables["accounts"].len() >= 4);
    assert!(!before.tables["notary_tuf_files"].is_empty());
    assert!(!before.tables["scan_layers"].is_empty());

    let url = target_db.url.clone();
    let target = TestApp::spawn_with(target_db, &url, target_storage).await;
    for path in resources(&images) {
        let (expected, got) = (answer(&source, &path).await, answer(&target, &path).await);
        assert_eq!(expected.0, StatusCode::OK, "{path}: {}", expected.1);
        assert_eq!(expected, got, "{path}");
    }
    // Never backed up, so not restored.
    let (status, _) = send(target.get("/api/v0/imagescan/database")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Users keep their passwords.
    let (status, me) = send(
        target
            .caller("alice", ALICE_PASSWORD)
            .get("/enzi/v0/accounts/alice"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{me}");

    // skopeo pulls the restored images with the same digests and bytes.
    let creds = format!("{ADMIN}:{ADMIN_PASSWORD}");
    for (repository, image) in &images {
        assert_pulls(
            image,
            host_of(&target.base),
            &format!("{repository}:v1"),
            &creds,
        );
    }
}

/// A small full archive: one user, one repository, one pushed image.
async fn small_archive() -> (TestApp, Vec<u8>) {
    let app = TestApp::spawn().await;
    app.create_user("alice", ALICE_PASSWORD, false).await;
    ok(app
        .admin()
        .post("/api/v0/repositories/admin", &json!({"name": "app"})))
    .await;
    let image = oci_image(&[20_000, 30_000]);
    let pushed = push(
        &image,
        host_of(&app.base),
        "admin/app:v1",
        &format!("{ADMIN}:{ADMIN_PASSWORD}"),
    );
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let archive = msr_ok(
        &["backup", "--full", "-"],
        &app.db.url,
        app.storage.path(),
        None,
    )
    .stdout;
    (app, archive)
}

fn member(archive: &[u8], prefix: &str) -> common::archive::MemberAt {
    members(archive)
        .into_iter()
        .find(|m| m.path.starts_with(prefix))
        .unwrap_or_else(|| panic!("no member {prefix}*"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_and_foreign_archives_are_refused_and_change_nothing() {
    let (_source, good) = small_archive().await;
    let flip = |at: usize| {
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        bad
    };
    let accounts = member(&good, "metadata/accounts/accounts/");
    let blob = member(&good, "blobs/sha256/");
    let checksums = member(&good, "checksums.sha256");
    let without_checksums = {
        let mut bytes = good[..checksums.header].to_vec();
        bytes.extend_from_slice(&[0u8; 1024]);
        bytes
    };
    let foreign = {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"not a backup").unwrap();
        let output = std::process::Command::new("tar")
            .args(["-cf", "-", "-C"])
            .arg(dir.path())
            .arg("notes.txt")
            .output()
            .unwrap();
        output.stdout
    };
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "a flipped byte in a metadata member",
            flip(accounts.data + accounts.size / 2),
            accounts.path.clone(),
        ),
        (
            "a flipped byte in a blob",
            flip(blob.data + blob.size / 2),
            format!("{}: content does not match its digest", blob.path),
        ),
        (
            "a truncated file",
            good[..blob.data + blob.size / 2].to_vec(),
            format!("truncated in member {}", blob.path),
        ),
        (
            "a file cut at a member boundary",
            good[..checksums.header].to_vec(),
            "truncated".to_owned(),
        ),
        ("an empty file", Vec::new(), "empty".to_owned()),
        (
            "a tar from elsewhere",
            foreign,
            "not an msr backup: its first member is \"notes.txt\"".to_owned(),
        ),
        (
            "no checksums member",
            without_checksums,
            "checksums.sha256: missing".to_owned(),
        ),
        (
            "not a tar at all",
            b"<html>502 Bad Gateway</html>".repeat(40),
            "not a tar archive".to_owned(),
        ),
    ];

    let target_db = TestDb::new().await;
    let target_storage = tempfile::tempdir().unwrap();
    // A restore applies the schema first, as `msr serve` does on start;
    // "unchanged" is about data: no rows, no objects.
    msr_ok(&["migrate"], &target_db.url, target_storage.path(), None);
    let rows_before = row_counts(&target_db.url).await;
    assert!(rows_before.values().all(|&n| n == 0));
    for (case, archive, problem) in &cases {
        let verified = msr(&["verify", "-"], "", target_storage.path(), Some(archive));
        let said = String::from_utf8_lossy(&verified.stderr);
        assert!(!verified.status.success(), "verify accepted {case}");
        assert!(said.contains(problem.as_str()), "verify, {case}: {said}");

        let restored = msr(
            &["restore", "-"],
            &target_db.url,
            target_storage.path(),
            Some(archive),
        );
        let said = String::from_utf8_lossy(&restored.stderr);
        assert!(!restored.status.success(), "restore accepted {case}");
        assert!(said.contains(problem.as_str()), "restore, {case}: {said}");
        assert!(
            said.contains("nothing was changed"),
            "restore, {case}: {said}"
        );
        assert_eq!(row_counts(&target_db.url).await, rows_before, "{case}");
        assert_eq!(files(target_storage.path()), Vec::<String>::new(), "{case}");
    }
    // The same target takes the good archive.
    msr_ok(
        &["restore", "-"],
        &target_db.url,
        target_storage.path(),
        Some(&good),
    );
    assert!(!files(target_storage.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_empty_target_or_a_newer_schema_is_refused() {
    let (source, archive) = small_archive().await;
    let target_db = TestDb::new().await;
    let target_storage = tempfile::tempdir().unwrap();
    msr_ok(
        &["restore", "-"],
        &target_db.url,
        target_storage.path(),
        Some(&archive),
    );
    let restored = row_counts(&target_db.url).await;

    // Writing over an instance's data takes an explicit --replace.
    let again = msr(
        &["restore", "-"],
        &target_db.url,
        target_storage.path(),
        Some(&archive),
    );
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(
        said.contains("not empty") && said.contains("--replace"),
        "{said}"
    );
    assert_eq!(row_counts(&target_db.url).await, restored);

    // With it, the data is the archive's, not the archive's added twice.
    let pool = sqlx::PgPool::connect(&target_db.url).await.unwrap();
    msr::registry::accounts::create_user(&pool, "mallory", "mallory-password".into(), false)
        .await
        .unwrap();
    msr_ok(
        &["restore", "--replace", "-"],
        &target_db.url,
        target_storage.path(),
        Some(&archive),
    );
    assert_eq!(row_counts(&target_db.url).await, restored);
    let mallory: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts WHERE name = 'mallory'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mallory, 0);
    pool.close().await;

    // An archive from a newer schema, or a newer format, says so up front.
    let newer_schema = with_description(&archive, |d| d["schemaVersion"] = json!(999)).await;
    let fresh = TestDb::new().await;
    let refused = msr(
        &["restore", "-"],
        &fresh.url,
        target_storage.path(),
        Some(&newer_schema),
    );
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(said.contains("newer") && said.contains("999"), "{said}");
    // verify checks the format, not the schema: that is the restore's job.
    msr_ok(
        &["verify", "-"],
        "",
        target_storage.path(),
        Some(&newer_schema),
    );
    let newer_format = with_description(&archive, |d| d["formatVersion"] = json!(2)).await;
    for command in [&["verify", "-"][..], &["restore", "-"][..]] {
        let refused = msr(
            command,
            &fresh.url,
            target_storage.path(),
            Some(&newer_format),
        );
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success());
        assert!(said.contains("format version 2"), "{command:?}: {said}");
    }
    assert!(row_counts(&fresh.url).await.values().all(|&n| n == 0));
    drop(source);
}

/// An archive consumer that takes its time with every write, as a slow
/// network does: the backup stays open for seconds while pushes go on.
struct SlowSink {
    bytes: Vec<u8>,
    delay: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl tokio::io::AsyncWrite for SlowSink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let delay = self
            .delay
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(40))));
        match delay.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                self.delay = None;
                // Small writes, so a blob takes many of them.
                let n = buf.len().min(64 << 10);
                self.bytes.extend_from_slice(&buf[..n]);
                Poll::Ready(Ok(n))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Pushes a one-layer image over the distribution API and tags it.
async fn push_tagged(http: &reqwest::Client, base: &str, tag: &str, layer: &[u8]) -> String {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","tag":"{tag}"}}"#).into_bytes();
    for blob in [&config[..], layer] {
        let response = http
            .post(format!(
                "{base}/v2/admin/app/blobs/uploads/?digest={}",
                sha256(blob)
            ))
            .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
            .header("content-type", "application/octet-stream")
            .body(blob.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(layer), "size": layer.len()}]
    }))
    .unwrap();
    let response = http
        .put(format!("{base}/v2/admin/app/manifests/{tag}"))
        .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    sha256(&manifest)
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = (seed + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_is_one_snapshot_while_pushes_and_deletes_go_on() {
    let app = TestApp::spawn().await;
    ok(app
        .admin()
        .post("/api/v0/repositories/admin", &json!({"name": "app"})))
    .await;
    let base_images = 6;
    for i in 0..base_images {
        push_tagged(
            &app.http,
            &app.base,
            &format!("base{i}"),
            &noise(i, 1 << 20),
        )
        .await;
    }

    // Pushes new images and deletes older ones for as long as the backup runs.
    let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
    let writer = {
        let http = app.http.clone();
        let base = app.base.clone();
        tokio::spawn(async move {
            let mut pushed: Vec<String> = Vec::new();
            let mut deleted = 0u32;
            let mut i = 100u64;
            while !*stop.borrow_and_update() {
                let digest = push_tagged(&http, &base, &format!("t{i}"), &noise(i, 4096)).await;
                pushed.push(digest);
                if i.is_multiple_of(3) && pushed.len() > 2 {
                    let old = pushed.remove(0);
                    let response = http
                        .delete(format!("{base}/v2/admin/app/manifests/{old}"))
                        .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), StatusCode::ACCEPTED);
                    deleted += 1;
                }
                i += 1;
            }
            (i - 100, deleted)
        })
    };

    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let storage = msr::storage::Storage::open(&app.storage.path().display().to_string()).unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let mut sink = SlowSink {
        bytes: Vec::new(),
        delay: None,
    };
    let written = msr::backup::write::write_archive(
        &mut conn,
        Some(&storage),
        msr::backup::Options {
            kind: msr::backup::Kind::Full,
            ignore_scan_data: false,
        },
        &mut sink,
        &msr::backup::progress::Progress::hidden(),
    )
    .await
    .unwrap();
    stop_tx.send(true).unwrap();
    let (pushes, deletes) = writer.await.unwrap();
    drop(conn);
    assert!(
        pushes >= 3 && deletes >= 1,
        "the writes went on during the backup: {pushes} pushes, {deletes} deletes"
    );
    assert_eq!(written.bytes as usize, sink.bytes.len());

    let target_db = TestDb::new().await;
    let target_storage = tempfile::tempdir().unwrap();
    msr_ok(
        &["restore", "-"],
        &target_db.url,
        target_storage.path(),
        Some(&sink.bytes),
    );
    let restored = sqlx::PgPool::connect(&target_db.url).await.unwrap();
    let dangling_tags: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tags t
          WHERE NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = t.repository_id AND m.digest = t.digest)",
    )
    .fetch_one(&restored)
    .await
    .unwrap();
    assert_eq!(dangling_tags, 0);
    let needed: Vec<String> = sqlx::query_scalar(
        "SELECT digest FROM manifests
         UNION SELECT r.digest FROM manifest_references r JOIN tags t
                ON t.repository_id = r.repository_id AND t.digest = r.manifest_digest",
    )
    .fetch_all(&restored)
    .await
    .unwrap();
    assert!(needed.len() >= base_images as usize * 3, "{needed:?}");
    for digest in &needed {
        let recorded: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM blobs WHERE digest = $1)")
                .bind(digest)
                .fetch_one(&restored)
                .await
                .unwrap();
        assert!(recorded, "{digest} has a blob row");
        let file = target_storage
            .path()
            .join("blobs/sha256")
            .join(&digest[7..]);
        assert!(file.exists(), "{digest} has its content");
    }
    let tags: i64 = sqlx::query_scalar("SELECT count(*) FROM tags")
        .fetch_one(&restored)
        .await
        .unwrap();
    assert_eq!(tags as usize, contents(&sink.bytes).tables["tags"].len());
    restored.close().await;
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backup_of_damaged_storage_fails_and_leaves_no_file() {
    let (app, archive) = small_archive().await;
    let blob = member(&archive, "blobs/sha256/");
    let hex = blob.path.trim_start_matches("blobs/sha256/").to_owned();
    let stored = app.storage.path().join("blobs/sha256").join(&hex);
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("backup.tar");
    let target_arg = target.display().to_string();

    let mut content = std::fs::read(&stored).unwrap();
    let middle = content.len() / 2;
    content[middle] ^= 1;
    std::fs::write(&stored, &content).unwrap();
    let failed = msr(
        &["backup", "--full", &target_arg],
        &app.db.url,
        app.storage.path(),
        None,
    );
    let said = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        said.contains(&format!("blob sha256:{hex}")) && said.contains("damaged"),
        "{said}"
    );
    assert_eq!(
        files(out.path()),
        Vec::<String>::new(),
        "no archive, no partial file"
    );

    std::fs::remove_file(&stored).unwrap();
    let failed = msr(
        &["backup", "--full", "-"],
        &app.db.url,
        app.storage.path(),
        None,
    );
    let said = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(said.contains("storage has no"), "{said}");
    // What reached stdout before the failure is not an archive anyone accepts.
    let refused = msr(
        &["verify", "-"],
        "",
        app.storage.path(),
        Some(&failed.stdout),
    );
    assert!(!refused.status.success());

    // A metadata backup does not read blobs, so it still works.
    msr_ok(
        &["backup", &target_arg],
        &app.db.url,
        app.storage.path(),
        None,
    );
    assert_eq!(files(out.path()), vec!["backup.tar".to_owned()]);
}
