//! Notary trust data, scan results and the vulnerability database over HTTP,
//! on a fresh database per test. Accounts, repositories, manifests and tags
//! are made with plain SQL: their own API is not part of these resources.

mod common;

use common::{ADMIN, ADMIN_PASSWORD, TestApp, assert_error, send};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

const PASSWORD: &str = "a user's password";

/// Direct SQL access to the test database, for fixtures and for checking
/// what a request left behind.
struct Db {
    pool: sqlx::PgPool,
}

impl Db {
    async fn new(app: &TestApp) -> Self {
        Self {
            pool: sqlx::PgPool::connect(&app.db.url).await.unwrap(),
        }
    }

    async fn user(&self, name: &str) -> Uuid {
        msr::registry::accounts::create_user(&self.pool, name, PASSWORD.to_owned(), false)
            .await
            .unwrap()
            .id
    }

    async fn org(&self, name: &str) -> Uuid {
        sqlx::query_scalar("INSERT INTO accounts (name, is_org) VALUES ($1, true) RETURNING id")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    async fn repository(&self, namespace: Uuid, name: &str, visibility: &str) -> Uuid {
        sqlx::query_scalar(
            "INSERT INTO repositories (namespace_id, name, visibility) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(namespace)
        .bind(name)
        .bind(visibility)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// A manifest with one config and one layer, and a tag pointing at it.
    async fn tagged_manifest(&self, repository: Uuid, tag: &str, digest: &str) {
        for (blob, size) in [(digest, 500_i64), (&layer(1), 1000), (&layer(2), 2000)] {
            sqlx::query("INSERT INTO blobs (digest, size) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(blob)
                .bind(size)
                .execute(&self.pool)
                .await
                .unwrap();
        }
        sqlx::query(
            "INSERT INTO manifests (repository_id, digest, media_type, os, architecture, size)
             VALUES ($1, $2, 'application/vnd.oci.image.manifest.v1+json', 'linux', 'amd64', 3500)",
        )
        .bind(repository)
        .bind(digest)
        .execute(&self.pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO tags (repository_id, name, digest) VALUES ($1, $2, $3)")
            .bind(repository)
            .bind(tag)
            .bind(digest)
            .execute(&self.pool)
            .await
            .unwrap();
    }

    /// A team of `org` with `members`, granted `level` on `repository`.
    async fn grant(&self, org: Uuid, team: &str, members: &[Uuid], repository: Uuid, level: &str) {
        let team: Uuid =
            sqlx::query_scalar("INSERT INTO teams (org_id, name) VALUES ($1, $2) RETURNING id")
                .bind(org)
                .bind(team)
                .fetch_one(&self.pool)
                .await
                .unwrap();
        for member in members {
            sqlx::query(
                "INSERT INTO org_members (org_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(org)
            .bind(member)
            .execute(&self.pool)
            .await
            .unwrap();
            sqlx::query("INSERT INTO team_members (team_id, user_id) VALUES ($1, $2)")
                .bind(team)
                .bind(member)
                .execute(&self.pool)
                .await
                .unwrap();
        }
        sqlx::query(
            "INSERT INTO team_repository_access (team_id, repository_id, access_level) VALUES ($1, $2, $3)",
        )
        .bind(team)
        .bind(repository)
        .bind(level)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

fn layer(n: u8) -> String {
    format!("sha256:{}", hex(&[n]))
}

fn hex(seed: &[u8]) -> String {
    Sha256::digest(seed)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn digest_of(name: &str) -> String {
    format!("sha256:{}", hex(name.as_bytes()))
}

/// A request as `user` (with the shared test password), or as the admin.
fn request(
    app: &TestApp,
    method: Method,
    path: &str,
    user: Option<&str>,
) -> reqwest::RequestBuilder {
    let (name, password) = match user {
        Some(name) => (name, PASSWORD),
        None => (ADMIN, ADMIN_PASSWORD),
    };
    app.http
        .request(method, app.url(path))
        .basic_auth(name, Some(password))
}

fn put_raw(
    app: &TestApp,
    path: &str,
    user: Option<&str>,
    body: impl Into<Vec<u8>>,
) -> reqwest::RequestBuilder {
    request(app, Method::PUT, path, user)
        .header("content-type", "application/json")
        .body(body.into())
}

fn tuf(file_type: &str, version: i64) -> Value {
    json!({
        "signed": {"_type": file_type, "version": version, "expires": "2030-01-01T00:00:00Z",
                   "targets": {"latest": {"hashes": {"sha256": "c2hh"}, "length": 1570}}},
        "signatures": [{"keyid": "0b2fd8fe", "method": "ecdsa", "sig": "MEUCIQDx"}]
    })
}

fn trust(repository: &str, role: &str) -> String {
    format!("/api/v0/repositories/{repository}/trust/{role}")
}

#[tokio::test]
async fn trust_data_versions_per_role_and_deletion() {
    let app = TestApp::spawn().await;
    let db = Db::new(&app).await;
    let org = db.org("engineering").await;
    db.repository(org, "api", "private").await;

    for (role, file_type) in [
        ("root", "root"),
        ("targets", "targets"),
        ("snapshot", "snapshot"),
        ("timestamp", "Timestamp"),
        ("targets%2Freleases", "Targets"),
    ] {
        let (status, stored) =
            send(app.put_json(&trust("engineering/api", role), &tuf(file_type, 1))).await;
        assert_eq!(status, StatusCode::CREATED, "{role}: {stored}");
        assert_eq!(stored["version"], 1);
    }
    let v2 = tuf("targets", 2);
    let (status, stored) = send(app.put_json(&trust("engineering/api", "targets"), &v2)).await;
    assert_eq!(status, StatusCode::CREATED, "{stored}");
    let v2_bytes = serde_json::to_vec(&v2).unwrap();
    assert_eq!(stored["role"], "targets");
    assert_eq!(stored["sha256"], hex(&v2_bytes));
    assert_eq!(stored["length"], v2_bytes.len());
    assert!(
        stored["createdAt"].as_str().unwrap().ends_with('Z'),
        "{stored}"
    );

    // The latest version unless one is named.
    let (_, latest) = send(app.get(&trust("engineering/api", "targets"))).await;
    assert_eq!(latest, v2);
    let (_, first) = send(app.get(&format!(
        "{}?version=1",
        trust("engineering/api", "targets")
    )))
    .await;
    assert_eq!(first, tuf("targets", 1));
    let (_, delegation) = send(app.get(&trust("engineering/api", "targets%2Freleases"))).await;
    assert_eq!(delegation, tuf("Targets", 1));

    let (status, listed) = send(app.get("/api/v0/repositories/engineering/api/trust")).await;
    assert_eq!(status, StatusCode::OK);
    let roles: Vec<(String, i64)> = listed["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["role"].as_str().unwrap().to_owned(),
                r["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("root", 1),
            ("snapshot", 1),
            ("targets", 2),
            ("targets/releases", 1),
            ("timestamp", 1)
        ]
        .map(|(role, version)| (role.to_owned(), version))
    );

    // Versions only go up, per role.
    for version in [2, 1] {
        let error = assert_error(
            &send(app.put_json(
                &trust("engineering/api", "targets"),
                &tuf("targets", version),
            ))
            .await,
            400,
            "INVALID_PARAMETERS",
        );
        assert_eq!(error["detail"]["field"], "signed.version", "{error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("stored version 2"),
            "{error}"
        );
    }
    assert_eq!(db.count("notary_tuf_files").await, 6);

    assert_error(
        &send(app.get(&format!(
            "{}?version=3",
            trust("engineering/api", "targets")
        )))
        .await,
        404,
        "NO_SUCH_TRUST_DATA",
    );
    assert_error(
        &send(app.get(&trust("engineering/api", "targets%2Fqa"))).await,
        404,
        "NO_SUCH_TRUST_DATA",
    );
    assert_error(
        &send(app.get(&format!(
            "{}?verison=1",
            trust("engineering/api", "targets")
        )))
        .await,
        400,
        "INVALID_PARAMETERS",
    );
    for query in ["?version=0", "?version=-1", "?version=two", "?version=1.0"] {
        let error = assert_error(
            &send(app.get(&format!("{}{query}", trust("engineering/api", "targets")))).await,
            400,
            "INVALID_PARAMETERS",
        );
        assert_eq!(error["detail"]["field"], "version", "{query}");
    }

    let (status, _) = send(request(
        &app,
        Method::DELETE,
        "/api/v0/repositories/engineering/api/trust",
        None,
    ))
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, listed) = send(app.get("/api/v0/repositories/engineering/api/trust")).await;
    assert_eq!(listed, json!({"roles": []}));
    assert_error(
        &send(app.get(&trust("engineering/api", "root"))).await,
        404,
        "NO_SUCH_TRUST_DATA",
    );
    // Deleting nothing is not an error, and version 1 may be written again.
    let (status, _) = send(request(
        &app,
        Method::DELETE,
        "/api/v0/repositories/engineering/api/trust",
        None,
    ))
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(app.put_json(&trust("engineering/api", "root"), &tuf("root", 1))).await;
    assert_eq!(status, StatusCode::CREATED);
    app.stop().await;
}

#[tokio::test]
async fn trust_data_is_stored_byte_for_byte() {
    let app = TestApp::spawn().await;
    let db = Db::new(&app).await;
    let org = db.org("engineering").await;
    db.repository(org, "api", "private").await;
    // Signatures cover these exact bytes: odd spacing, key order, escapes
    // and non-ASCII must all survive.
    let body = "{ \"signatures\" : [ {\"sig\":\"c2ln\",\"keyid\":\"k\u{e9}\"} ],\n  \"signed\": {\"version\":1,\"_type\":\"Root\",\"expires\":\"2030-01-01T00:00:00.123456789+02:00\",\"note\":\"\\u00e9\\n\"} }\n";
    let (status, stored) = send(put_raw(&app, &trust("engineering/api", "root"), None, body)).await;
    assert_eq!(status, StatusCode::CREATED, "{stored}");
    assert_eq!(stored["sha256"], hex(body.as_bytes()));
    assert_eq!(stored["length"], body.len());
    let response = app
        .get(&trust("engineering/api", "root"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.bytes().await.unwrap(), body.as_bytes());
    app.stop().await;
}

#[tokio::test]
async fn trust_data_refusals_name_the_field_and_change_nothing() {
    let app = TestApp::spawn().await;
    let db = Db::new(&app).await;
    let org = db.org("engineering").await;
    db.repository(org, "api", "private").await;
    let (status, _) = send(app.put_json(&trust("engineering/api", "root"), &tuf("root", 1))).await;
    assert_eq!(status, StatusCode::CREATED);

    let mut no_signatures = tuf("targets", 1);
    no_signatures["signatures"] = json!([]);
    let mut bad_expiry = tuf("targets", 1);
    bad_expiry["signed"]["expires"] = json!("next year");
    let mut unsigned = tuf("targets", 1);
    unsigned.as_object_mut().unwrap().remove("signatures");
    let mut extra = tuf("targets", 1);
    extra["signed_by"] = json!("me");
    let mut null_version = tuf("targets", 1);
    null_version["signed"]["version"] = Value::Null;
    for (role, body, field) in [
        ("targets", tuf("root", 1), "signed._type"),
        ("targets%2Freleases", tuf("snapshot", 1), "signed._type"),
        ("root", tuf("TARGETS", 2), "signed._type"),
        ("targets", tuf("targets", 0), "signed.version"),
        ("targets", tuf("targets", -3), "signed.version"),
        ("targets", null_version, "signed.version"),
        ("targets", bad_expiry, "signed.expires"),
        ("targets", no_signatures, "signatures"),
        ("targets", unsigned, "signatures"),
        ("targets", extra, "signed_by"),
        ("targets", json!([1, 2]), "body"),
        ("releases", tuf("targets", 1), "role"),
        ("targets%2F", tuf("targets", 1), "role"),
        ("targets%2F..%2Froot", tuf("targets", 1), "role"),
        ("Root", tuf("root", 2), "role"),
    ] {
        let error = assert_error(
            &send(app.put_json(&trust("engineering/api", role), &body)).await,
            400,
            "INVALID_PARAMETERS",
        );
        assert_eq!(error["detail"]["field"], field, "{role} {body}: {error}");
    }
    for garbage in ["", "{", "{\"signed\": 1} trailing", "not json"] {
        assert_error(
            &send(put_raw(
                &app,
                &trust("engineering/api", "targets"),
                None,
                garbage,
            ))
            .await,
            400,
            "INVALID_JSON",
        );
    }
    let form = request(
        &app,
        Method::PUT,
        &trust("engineering/api", "targets"),
        None,
    )
    .header("content-type", "text/plain")
    .body(serde_json::to_vec(&tuf("targets", 1)).unwrap());
    assert_error(&send(form).await, 415, "UNSUPPORTED_MEDIA_TYPE");
    assert_error(
        &send(app.put_json(&trust("engineering/nope", "root"), &tuf("root", 2))).await,
        404,
        "NO_SUCH_REPOSITORY",
    );
    assert_eq!(db.count("notary_tuf_files").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn trust_data_follows_repository_access() {
    let app = TestApp::spawn().await;
    let db = Db::new(&app).await;
    let owner = db.user("olivia").await;
    let reader = db.user("rupert").await;
    let writer = db.user("walter").await;
    let org_admin = db.user("ada").await;
    db.user("stranger").await;
    let org = db.org("engineering").await;
    let private = db.repository(org, "private-api", "private").await;
    db.repository(org, "public-api", "public").await;
    db.repository(owner, "tools", "private").await;
    db.grant(org, "readers", &[reader], private, "read-only")
        .await;
    db.grant(org, "writers", &[writer], private, "read-write")
        .await;
    sqlx::query("INSERT INTO org_members (org_id, user_id, is_admin) VALUES ($1, $2, true)")
        .bind(org)
        .bind(org_admin)
        .execute(&db.pool)
        .await
        .unwrap();

    let root = |version| serde_json::to_vec(&tuf("root", version)).unwrap();
    // A user owns their namespace.
    let (status, _) = send(put_raw(
        &app,
        &trust("olivia/tools", "root"),
        Some("olivia"),
        root(1),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = send(request(
        &app,
        Method::DELETE,
        "/api/v0/repositories/olivia/tools/trust",
        Some("olivia"),
    ))
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // read-write may write but not delete; read-only may only read.
    let (status, _) = send(put_raw(
        &app,
        &trust("engineering/private-api", "root"),
        Some("walter"),
        root(1),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = send(request(
        &app,
        Method::GET,
        &trust("engineering/private-api", "root"),
        Some("rupert"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, tuf("root", 1));
    let error = assert_error(
        &send(put_raw(
            &app,
            &trust("engineering/private-api", "root"),
            Some("rupert"),
            root(2),
        ))
        .await,
        403,
        "NOT_AUTHORIZED",
    );
    assert!(
        error["message"].as_str().unwrap().contains("read-write"),
        "{error}"
    );
    for user in ["rupert", "walter"] {
        assert_error(
            &send(request(
                &app,
                Method::DELETE,
                "/api/v0/repositories/engineering/private-api/trust",
                Some(user),
            ))
            .await,
            403,
            "NOT_AUTHORIZED",
        );
    }
    // Someone without access is not told the repository exists.
    for (method, path) in [
        (Method::GET, trust("engineering/private-api", "root")),
        (
            Method::GET,
            "/api/v0/repositories/engineering/private-api/trust".to_owned(),
        ),
        (Method::PUT, trust("engineering/private-api", "root")),
        (
            Method::DELETE,
            "/api/v0/repositories/engineering/private-api/trust".to_owned(),
        ),
        (
            Method::GET,
            "/api/v0/repositories/olivia/tools/trust".to_owned(),
        ),
    ] {
        let request = request(&app, method.clone(), &path, Some("stranger"))
            .header("content-type", "application/json")
            .body(root(2));
        assert_error(&send(request).await, 404, "NO_SUCH_REPOSITORY");
    }
    // A public repository is readable by all, writable by none of them.
    let (status, _) =
        send(app.put_json(&trust("engineering/public-api", "root"), &tuf("root", 1))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = send(request(
        &app,
        Method::GET,
        &trust("engineering/public-api", "root"),
        Some("stranger"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &send(put_raw(
            &app,
            &trust("engineering/public-api", "root"),
            Some("stranger"),
            root(2),
        ))
        .await,
        403,
        "NOT_AUTHORIZED",
    );
    // An organization admin administers its repositories.
    let (status, _) = send(request(
        &app,
        Method::DELETE,
        "/api/v0/repositories/engineering/private-api/trust",
        Some("ada"),
    ))
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // And nobody gets anywhere without credentials.
    assert_error(
        &send(
            app.http
                .get(app.url("/api/v0/repositories/engineering/public-api/trust")),
        )
        .await,
        401,
        "NOT_AUTHENTICATED",
    );
    assert_eq!(db.count("notary_tuf_files").await, 1);
    app.stop().await;
}

const RESULTS: &str = "/api/v0/imagescan/results";

fn scan(scanner: &str, vulnerabilities: Value) -> Value {
    json!({
        "scanner": scanner,
        "scannedAt": "2026-03-04T05:06:07+01:00",
        "layers": [
            {"digest": layer(1), "components": [
                {"name": "openssl", "version": "3.0.13", "vulnerabilities": vulnerabilities},
                {"name": "zlib", "version": "1.3"}]},
            {"digest": layer(2), "components": []}
        ]
    })
}

#[tokio::test]
async fn scan_results_are_stored_replaced_and_summarised_per_tag() {
    let app = TestApp::spawn().await;
    let db = Db::new(&app).await;
    let org = db.org("engineering").await;
    let repo = db.repository(org, "api", "private").await;
    let digest = digest_of("api:1.0");
    db.tagged_manifest(repo, "1.0", &digest).await;
    let path = format!("{RESULTS}/{digest}");

    let first = scan(
        "trivy 0.58.1",
        json!([{"id": "CVE-2024-1", "severity": "critical"}, {"id": "CVE-2024-2", "severity": "low"},
               {"id": "CVE-2024-3", "severity": "unknown"}]),
    );
    let (status, stored) = send(app.put_json(&path, &first)).await;
    assert_eq!(status, StatusCode::CREATED, "{stored}");
    assert_eq!(stored["digest"], digest.as_str());
    assert_eq!(stored["scannedAt"], "2026-03-04T04:06:07Z");
    assert_eq!(
        stored["summary"],
        json!({"critical": 1, "high": 0, "medium": 0, "low": 1, "negligible": 0})
    );
    // Components come back as sent, a left-out vulnerability list as empty.
    assert_eq!(
        stored["layers"][0]["components"][1],
        json!({"name": "zlib", "version": "1.3", "vulnerabilities": []})
    );
    assert_eq!(
        stored["layers"][1],
        json!({"digest": layer(2), "components": []})
    );
    let (status, got) = send(app.get(&path)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, stored);

    let tag_path = "/api/v0/imagescan/repositories/engineering/api/1.0";
    let (status, summary) = send(app.get(tag_path)).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(
        summary,
        json!({"namespace": "engineering", "reponame": "api", "tag": "1.0", "digest": digest,
               "scanner": "trivy 0.58.1", "scannedAt": "2026-03-04T04:06:07Z",
               "summary": {"critical": 1, "high": 0, "medium": 0, "low": 1, "negligible": 0}})
    );

    // A new scan replaces the old one whole; the same id in two places
    // counts once, at its worst.
    let mut second = scan(
        "clair 4.8.0",
        json!([{"id": "CVE-2024-9", "severity": "medium"}, {"id": "CVE-2024-9", "severity": "high"}]),
    );
    second.as_object_mut().unwrap().remove("scannedAt");
    second["layers"].as_array_mut().unwrap().pop();
    let (status, replaced) = send(app.put_json(&path, &second)).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["layers"].as_array().unwrap().len(), 1);
    assert_eq!(
        replaced["summary"],
        json!({"critical": 0, "high": 1, "medium": 0, "low": 0, "negligible": 0})
    );
    assert_ne!(replaced["scannedAt"], "2026-03-04T04:06:07Z");
    assert_eq!(db.count("scan_results").await, 1);
    assert_eq!(db.count("scan_layers").await, 1);
    let (_, summary) = send(app.get(tag_path)).await;
    assert_eq!(summary["scanner"], "clair 4.8.0");
    app.stop().await;
}

#[tokio::test]
async fn scan_result_refusals_name_the_field_and_change_nothing() {
    let app = TestApp::spawn().await;
    let db = Db::new(&app).await;
    let org = db.org("engineering").await;
    let repo = db.repository(org, "api", "private").await;
    let digest = digest_of("api:1.0");
    db.tagged_manifest(repo, "1.0", &digest).await;
    let path = format!("{RESULTS}/{digest}");
    let original = scan("trivy", json!([{"id": "CVE-1", "severity": "high"}]));
    let (status, stored) = send(app.put_json(&path, &original)).await;
    assert_eq!(status, StatusCode::CREATED);

    let with = |pointer: &str, value: Value| {
        let mut body = original.clone();
        *body.pointer_mut(pointer).unwrap() = value;
        body
    };
    let mut unknown = original.clone();
    unknown["summary"] = json!({"critical": 9});
    let mut missing = original.clone();
    missing.as_object_mut().unwrap().remove("layers");
    for (body, field) in [
        (with("/scanner", json!("")), "scanner"),
        (with("/scanner", json!("   ")), "scanner"),
        (with("/scanner", json!("trivy\u{0}")), "scanner"),
        (with("/scanner", json!(7)), "scanner"),
        (with("/scannedAt", json!("yesterday")), "scannedAt"),
        (with("/scannedAt", Value::Null), "scannedAt"),
        (
            with("/layers/1/digest", json!("sha256:abc")),
            "layers[1].digest",
        ),
        (
            with("/layers/0/digest", json!(layer(1).to_uppercase())),
            "layers[0].digest",
        ),
        (
            with("/layers/0/components/0/name", json!("")),
            "layers[0].components[0].name",
        ),
        (
            with("/layers/0/components/0/version", json!("1\u{0}")),
            "layers[0].components[0].version",
        ),
        (
            with(
                "/layers/0/components/0/vulnerabilities/0/severity",
                json!("severe"),
            ),
            "layers[0].components[0].vulnerabilities[0].severity",
        ),
        (
            with("/layers/0/components/0/vulnerabilities/0/id", json!("")),
            "layers[0].components[0].vulnerabilities[0].id",
        ),
        (
            with("/layers/0/components/0/vulnerabilities", Value::Null),
            "layers[0].components[0].vulnerabilities",
        ),
        (unknown, "summary"),
        (missing, "layers"),
        (json!("a string"), "body"),
    ] {
        let error = assert_error(
            &send(app.put_json(&path, &body)).await,
            400,
            "INVALID_PARAMETERS",
        );
        assert_eq!(error["detail"]["field"], field, "{body}: {error}");
    }
    for bad in ["sha256:abc", "sha512:00", "latest", &digest.to_uppercase()] {
        let error = assert_error(
            &send(app.put_json(&format!("{RESULTS}/{bad}"), &original)).await,
            400,
            "INVALID_PARAMETERS",
        );
        assert_eq!(error["detail"]["field"], "digest");
        assert_error(
            &send(app.get(&format!("{RESULTS}/{bad}"))).await,
            400,
            "INVALID_PARAMETERS",
        );
    }
    assert_error(
        &send(app.put_json(&format!("{RESULTS}/{}", digest_of("unknown")), &original)).await,
        404,
        "NO_SUCH_MANIFEST",
    );
    assert_error(
        &send(put_raw(&app, &path, None, "{\"scanner\":")).await,
        400,
        "INVALID_JSON",
    );

    let (_, after) = send(app.get(&path)).await;
    assert_eq!(after, stored);
    assert_eq!(db.count("scan_results").await, 1);
    assert_eq!(db.count("scan_layers").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn scan_results_are_written_by_admins_and_read_with_repository_access() {
    let app = TestApp::spawn().await;
    let db = Db::new(&app).await;
    let reader = db.user("rupert").await;
    db.user("stranger").await;
    let org = db.org("engineering").await;
    let repo = db.repository(org, "api", "private").await;
    db.grant(org, "readers", &[reader], repo, "read-only").await;
    let scanned = digest_of("api:1.0");
    let unscanned = digest_of("api:2.0");
    db.tagged_manifest(repo, "1.0", &scanned).await;
    db.tagged_manifest(repo, "2.0", &unscanned).await;
    let body = scan("trivy", json!([]));

    assert_error(
        &send(put_raw(
            &app,
            &format!("{RESULTS}/{scanned}"),
            Some("rupert"),
            serde_json::to_vec(&body).unwrap(),
        ))
        .await,
        403,
        "NOT_AUTHORIZED",
    );
    let (status, _) = send(app.put_json(&format!("{RESULTS}/{scanned}"), &body)).await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, _) = send(request(
        &app,
        Method::GET,
        &format!("{RESULTS}/{scanned}"),
        Some("rupert"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(request(
        &app,
        Method::GET,
        "/api/v0/imagescan/repositories/engineering/api/1.0",
        Some("rupert"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    // Who cannot read any repository holding the image is not told it was scanned.
    assert_error(
        &send(request(
            &app,
            Method::GET,
            &format!("{RESULTS}/{scanned}"),
            Some("stranger"),
        ))
        .await,
        404,
        "NO_SUCH_SCAN_RESULT",
    );
    assert_error(
        &send(request(
            &app,
            Method::GET,
            "/api/v0/imagescan/repositories/engineering/api/1.0",
            Some("stranger"),
        ))
        .await,
        404,
        "NO_SUCH_REPOSITORY",
    );
    assert_error(
        &send(app.get("/api/v0/imagescan/repositories/engineering/nope/1.0")).await,
        404,
        "NO_SUCH_REPOSITORY",
    );
    assert_error(
        &send(app.get("/api/v0/imagescan/repositories/engineering/api/3.0")).await,
        404,
        "NO_SUCH_TAG",
    );
    let error = assert_error(
        &send(app.get("/api/v0/imagescan/repositories/engineering/api/2.0")).await,
        404,
        "NO_SUCH_SCAN_RESULT",
    );
    assert_eq!(error["detail"]["digest"], unscanned.as_str());
    assert_error(
        &send(app.get(&format!("{RESULTS}/{unscanned}"))).await,
        404,
        "NO_SUCH_SCAN_RESULT",
    );
    assert_error(
        &send(app.http.get(app.url(&format!("{RESULTS}/{scanned}")))).await,
        401,
        "NOT_AUTHENTICATED",
    );
    app.stop().await;
}

const DATABASE: &str = "/api/v0/imagescan/database";

#[tokio::test]
async fn the_vulnerability_database_is_replaced_whole() {
    let app = TestApp::spawn().await;
    let db = Db::new(&app).await;
    db.user("rupert").await;
    assert_error(
        &send(app.get(DATABASE)).await,
        404,
        "NO_SUCH_VULNERABILITY_DATABASE",
    );

    let first = json!({"version": "2026.01.01", "vulnerabilities": [
        {"id": "CVE-2024-1", "severity": "critical", "summary": "bad", "cvssScore": 9.8},
        {"id": "CVE-2024-2", "severity": "low"},
        {"id": "CVE-2024-3", "severity": "unknown", "cvssScore": 0}]});
    let (status, feed) = send(app.put_json(DATABASE, &first)).await;
    assert_eq!(status, StatusCode::OK, "{feed}");
    assert_eq!(feed["version"], "2026.01.01");
    assert_eq!(feed["count"], 3);
    let (_, got) = send(request(&app, Method::GET, DATABASE, Some("rupert"))).await;
    assert_eq!(got, feed);
    let (status, entry) = send(request(
        &app,
        Method::GET,
        &format!("{DATABASE}/vulnerabilities/CVE-2024-1"),
        Some("rupert"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let score = entry["cvssScore"].as_f64().unwrap();
    assert!((score - 9.8).abs() < 1e-5, "{entry}");
    assert_eq!(entry["severity"], "critical");
    assert_eq!(entry["summary"], "bad");
    assert_eq!(entry["feedVersion"], "2026.01.01");
    let (_, entry) = send(app.get(&format!("{DATABASE}/vulnerabilities/CVE-2024-2"))).await;
    assert_eq!(
        entry,
        json!({"id": "CVE-2024-2", "severity": "low", "summary": "", "feedVersion": "2026.01.01"})
    );

    let second = json!({"version": "2026.01.02", "vulnerabilities": [
        {"id": "CVE-2024-2", "severity": "high"}, {"id": "CVE-2025-7", "severity": "medium"}]});
    let (_, feed) = send(app.put_json(DATABASE, &second)).await;
    assert_eq!(feed["count"], 2);
    assert_error(
        &send(app.get(&format!("{DATABASE}/vulnerabilities/CVE-2024-1"))).await,
        404,
        "NO_SUCH_VULNERABILITY",
    );
    let (_, entry) = send(app.get(&format!("{DATABASE}/vulnerabilities/CVE-2024-2"))).await;
    assert_eq!(entry["severity"], "high");
    assert_eq!(entry["feedVersion"], "2026.01.02");

    // Refusals name the entry and leave the loaded database alone.
    let entry = |value: Value| json!({"version": "2026.01.03", "vulnerabilities": [{"id": "CVE-1", "severity": "low"}, value]});
    for (body, field) in [
        (
            entry(json!({"id": "CVE-1", "severity": "high"})),
            "vulnerabilities[1].id",
        ),
        (
            entry(json!({"id": "", "severity": "high"})),
            "vulnerabilities[1].id",
        ),
        (
            entry(json!({"id": "CVE-2", "severity": "severe"})),
            "vulnerabilities[1].severity",
        ),
        (
            entry(json!({"id": "CVE-2", "severity": "low", "cvssScore": 10.5})),
            "vulnerabilities[1].cvssScore",
        ),
        (
            entry(json!({"id": "CVE-2", "severity": "low", "cvssScore": -1})),
            "vulnerabilities[1].cvssScore",
        ),
        (
            entry(json!({"id": "CVE-2", "severity": "low", "summary": null})),
            "vulnerabilities[1].summary",
        ),
        (
            entry(json!({"id": "CVE-2", "severity": "low", "summary": "a\u{0}b"})),
            "vulnerabilities[1].summary",
        ),
        (
            entry(json!({"id": "CVE-2", "severity": "low", "fixedIn": "1.2"})),
            "vulnerabilities[1].fixedIn",
        ),
        (entry(json!({"id": "CVE-2"})), "vulnerabilities[1].severity"),
        (json!({"version": "", "vulnerabilities": []}), "version"),
        (json!({"version": "x"}), "vulnerabilities"),
        (json!({"vulnerabilities": []}), "version"),
    ] {
        let error = assert_error(
            &send(app.put_json(DATABASE, &body)).await,
            400,
            "INVALID_PARAMETERS",
        );
        assert_eq!(error["detail"]["field"], field, "{body}: {error}");
    }
    assert_error(
        &send(put_raw(&app, DATABASE, None, "[")).await,
        400,
        "INVALID_JSON",
    );
    assert_error(
        &send(put_raw(
            &app,
            DATABASE,
            Some("rupert"),
            serde_json::to_vec(&second).unwrap(),
        ))
        .await,
        403,
        "NOT_AUTHORIZED",
    );
    let (_, feed) = send(app.get(DATABASE)).await;
    assert_eq!(
        (feed["version"].as_str(), feed["count"].as_i64()),
        (Some("2026.01.02"), Some(2))
    );
    assert_eq!(db.count("vulnerabilities").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_large_feed_loads_past_the_general_body_limit() {
    let app = TestApp::spawn().await;
    let vulnerabilities: Vec<Value> = (0..100_000)
        .map(|i| {
            let severity = ["critical", "high", "medium", "low"][i % 4];
            json!({"id": format!("CVE-2025-{i:06}"), "severity": severity,
                   "summary": format!("vulnerability number {i} in some package"), "cvssScore": (i % 101) as f64 / 10.0})
        })
        .collect();
    let body = json!({"version": "big", "vulnerabilities": vulnerabilities});
    let bytes = serde_json::to_vec(&body).unwrap();
    // The test server's MSR_MAX_BODY_BYTES is 64 KiB.
    assert!(bytes.len() > 100 * 64 * 1024, "{}", bytes.len());
    let started = std::time::Instant::now();
    let (status, feed) = send(put_raw(&app, DATABASE, None, bytes)).await;
    eprintln!("100 000 vulnerabilities loaded in {:?}", started.elapsed());
    assert_eq!(status, StatusCode::OK, "{feed}");
    assert_eq!(feed["count"], 100_000);
    let (_, entry) = send(app.get(&format!("{DATABASE}/vulnerabilities/CVE-2025-099999"))).await;
    assert_eq!(entry["severity"], "low");

    // Only that route: the others keep the general limit.
    let huge_scan = json!({"scanner": "x".repeat(70 * 1024), "layers": []});
    assert_error(
        &send(app.put_json(&format!("{RESULTS}/{}", digest_of("x")), &huge_scan)).await,
        413,
        "REQUEST_TOO_LARGE",
    );
    app.stop().await;
}
