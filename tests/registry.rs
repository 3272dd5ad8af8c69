//! The OCI distribution API with real clients: skopeo pushing and pulling a
//! multi-layer image into msr on local storage and on S3 (a moto server),
//! access control on push, and the spec's errors for bad input.
//!
//! Needs `skopeo` on PATH and `moto_server` in `.venv` (both installed by
//! `.ci/run`); a test whose tool is missing fails, it does not skip.

mod common;

use std::path::Path;
use std::time::Duration;

use common::moto::Moto;
use common::oci::{assert_pulls, host_of, oci_image, push, sha256, skopeo};
use common::{
    ADMIN, ADMIN_PASSWORD, Server, TestApp, TestDb, assert_error, create_repository, send,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Push with skopeo, pull back with skopeo, and compare: the round trip a
/// registry must get exactly right.
async fn skopeo_round_trip(base: &str, http: &reqwest::Client) {
    let image = oci_image(&[300_000, 1_500_000, 40_000]);
    let host = host_of(base);
    let creds = format!("{ADMIN}:{ADMIN_PASSWORD}");
    let pushed = push(&image, host, "admin/app:v1", &creds);
    assert!(
        pushed.status.success(),
        "skopeo push: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );

    let inspect = skopeo(&[
        "inspect",
        "--creds",
        &creds,
        "--tls-verify=false",
        &format!("docker://{host}/admin/app:v1"),
    ]);
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let inspected: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspected["Digest"], image.manifest_digest.as_str());
    assert_eq!(inspected["Architecture"], "arm64");
    assert_eq!(inspected["Os"], "linux");
    assert_eq!(inspected["Layers"], json!(image.layer_digests));

    assert_pulls(&image, host, "admin/app:v1", &creds);

    // A second push of the same image uploads nothing new and changes nothing.
    let again = push(&image, host, "admin/app:v1", &creds);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let (status, tags) = send(
        http.get(format!("{base}/api/v0/repositories/admin/app/tags"))
            .basic_auth(ADMIN, Some(ADMIN_PASSWORD)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tags}");
    assert_eq!(tags.as_array().unwrap().len(), 1, "{tags}");
    let tag = &tags[0];
    assert_eq!(tag["name"], "v1");
    assert_eq!(tag["digest"], image.manifest_digest.as_str());
    assert_eq!(tag["author"], ADMIN);
    assert_eq!(tag["manifest"]["os"], "linux");
    assert_eq!(tag["manifest"]["architecture"], "arm64");
    assert_eq!(
        tag["manifest"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(tag["manifest"]["size"], image.total_size);
}

#[tokio::test]
async fn skopeo_round_trip_on_local_storage() {
    let db = TestDb::new().await;
    let server = Server::start(&db, &[]);
    create_repository(&db, ADMIN, "app").await;
    skopeo_round_trip(&server.base, &reqwest::Client::new()).await;
    // Each blob is stored once, under its digest.
    let blob_files = std::fs::read_dir(server.storage_path().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(
        blob_files,
        3 + 1 + 1,
        "three layers, a config and the manifest"
    );
    assert!(
        !server.storage_path().join("_uploads").exists(),
        "no upload left behind"
    );
}

#[tokio::test]
async fn skopeo_round_trip_on_s3() {
    let moto = Moto::start().await;
    moto.create_bucket("registry").await;
    let db = TestDb::new().await;
    let server = Server::start(
        &db,
        &[
            ("MSR_STORAGE", "s3://registry/msr-content"),
            ("AWS_ENDPOINT_URL", &moto.endpoint),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    create_repository(&db, ADMIN, "app").await;
    skopeo_round_trip(&server.base, &reqwest::Client::new()).await;
    let keys = moto.object_keys("registry").await;
    let blobs: Vec<&String> = keys
        .iter()
        .filter(|key| key.starts_with("msr-content/blobs/sha256/"))
        .collect();
    assert_eq!(blobs.len(), 5, "{keys:?}");
    assert!(
        keys.iter().all(|key| key.starts_with("msr-content/blobs/")),
        "leftovers: {keys:?}"
    );
}

#[tokio::test]
async fn a_read_only_team_member_cannot_push_and_an_admin_can() {
    let db = TestDb::new().await;
    let server = Server::start(&db, &[]);
    let app_http = reqwest::Client::new();
    // An org with a repository, a team with read-only access, and a member.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    msr::registry::accounts::create_user(&pool, "reader", "reader-password".into(), false)
        .await
        .unwrap();
    sqlx::query("INSERT INTO accounts (name, is_org) VALUES ('acme', true)")
        .execute(&pool)
        .await
        .unwrap();
    create_repository(&db, "acme", "app").await;
    sqlx::raw_sql(
        "INSERT INTO teams (org_id, name) SELECT id, 'viewers' FROM accounts WHERE name = 'acme';
         INSERT INTO org_members (org_id, user_id) SELECT o.id, u.id FROM accounts o, accounts u WHERE o.name = 'acme' AND u.name = 'reader';
         INSERT INTO team_members (team_id, user_id) SELECT t.id, u.id FROM teams t, accounts u WHERE t.name = 'viewers' AND u.name = 'reader';
         INSERT INTO team_repository_access (team_id, repository_id, access_level)
              SELECT t.id, r.id, 'read-only' FROM teams t, repositories r WHERE t.name = 'viewers' AND r.name = 'app';",
    )
    .execute(&pool)
    .await
    .unwrap();

    let image = oci_image(&[10_000]);
    let host = host_of(&server.base);
    let refused = push(&image, host, "acme/app:v1", "reader:reader-password");
    assert!(!refused.status.success(), "a read-only member pushed");
    let (status, body) = send(
        app_http
            .post(format!("{}/v2/acme/app/blobs/uploads/", server.base))
            .basic_auth("reader", Some("reader-password")),
    )
    .await;
    assert_error(&(status, body), 403, "DENIED");
    let uploads: i64 = sqlx::query_scalar("SELECT count(*) FROM blob_uploads")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(uploads, 0);

    let pushed = push(
        &image,
        host,
        "acme/app:v1",
        &format!("{ADMIN}:{ADMIN_PASSWORD}"),
    );
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    // ...and the reader can pull what the admin pushed.
    let (status, _) = send(
        app_http
            .get(format!("{}/v2/acme/app/manifests/v1", server.base))
            .basic_auth("reader", Some("reader-password")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    pool.close().await;
}

/// Direct distribution API calls, for the errors real clients never provoke.
struct Registry {
    app: TestApp,
}

impl Registry {
    async fn new() -> Self {
        let app = TestApp::spawn().await;
        create_repository(&app.db, ADMIN, "repo").await;
        Self { app }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.app
            .http
            .request(method, self.app.url(path))
            .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
    }

    async fn upload(&self, repo: &str, content: &[u8]) -> (StatusCode, Value) {
        let digest = sha256(content);
        send(
            self.request(
                reqwest::Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .body(content.to_vec()),
        )
        .await
    }

    fn stored_files(&self) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else {
                    out.push(path.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let mut files = Vec::new();
        walk(self.app.storage.path(), self.app.storage.path(), &mut files);
        files.sort();
        files
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&mut self.app.db.connect().await)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn every_request_needs_credentials() {
    let registry = Registry::new().await;
    let response = registry
        .app
        .http
        .get(registry.app.url("/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    assert_eq!(
        response.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    let wrong = registry
        .app
        .http
        .get(registry.app.url("/v2/admin/repo/tags/list"))
        .basic_auth(ADMIN, Some("nope"));
    assert_error(&send(wrong).await, 401, "UNAUTHORIZED");
    let (status, body) = send(registry.request(reqwest::Method::GET, "/v2/")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
}

#[tokio::test]
async fn wrong_digests_are_refused_and_nothing_is_stored() {
    let registry = Registry::new().await;
    let wrong = sha256(b"something else");
    let response = send(
        registry
            .request(
                reqwest::Method::POST,
                &format!("/v2/admin/repo/blobs/uploads/?digest={wrong}"),
            )
            .body(b"the content".to_vec()),
    )
    .await;
    assert_error(&response, 400, "DIGEST_INVALID");
    let bad_form = send(
        registry
            .request(
                reqwest::Method::POST,
                "/v2/admin/repo/blobs/uploads/?digest=md5:abc",
            )
            .body("x"),
    )
    .await;
    assert_error(&bad_form, 400, "DIGEST_INVALID");
    let head = registry
        .request(
            reqwest::Method::HEAD,
            &format!("/v2/admin/repo/blobs/{wrong}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    assert_error(
        &send(registry.request(
            reqwest::Method::GET,
            &format!("/v2/admin/repo/blobs/{wrong}"),
        ))
        .await,
        404,
        "BLOB_UNKNOWN",
    );
    assert_eq!(registry.stored_files(), Vec::<String>::new());
    assert_eq!(registry.count("blobs").await, 0);
    assert_eq!(registry.count("blob_uploads").await, 0);
}

#[tokio::test]
async fn chunked_uploads_check_their_order_and_their_digest() {
    let registry = Registry::new().await;
    let content: Vec<u8> = (0..250_000u32).map(|i| (i % 251) as u8).collect();
    let start = registry
        .request(reqwest::Method::POST, "/v2/admin/repo/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(start.headers()["range"], "0-0");
    let mut offset = 0;
    for chunk in content.chunks(100_000) {
        let response = registry
            .request(reqwest::Method::PATCH, &location)
            .header(
                "content-range",
                format!("{offset}-{}", offset + chunk.len() - 1),
            )
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        offset += chunk.len();
        assert_eq!(
            response.headers()["range"],
            format!("0-{}", offset - 1).as_str()
        );
    }
    // A chunk that does not continue where the upload is.
    let out_of_order = send(
        registry
            .request(reqwest::Method::PATCH, &location)
            .header("content-range", "0-9")
            .body(vec![0u8; 10]),
    )
    .await;
    assert_error(&out_of_order, 416, "BLOB_UPLOAD_INVALID");
    let status = registry
        .request(reqwest::Method::GET, &location)
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        status.headers()["range"],
        format!("0-{}", content.len() - 1).as_str()
    );

    let digest = sha256(&content);
    let response = registry
        .request(reqwest::Method::PUT, &format!("{location}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["docker-content-digest"], digest.as_str());
    let fetched = registry
        .request(
            reqwest::Method::GET,
            &format!("/v2/admin/repo/blobs/{digest}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        fetched.headers()["content-length"],
        content.len().to_string().as_str()
    );
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), content.as_slice());
    assert_eq!(
        registry.stored_files(),
        vec![format!("blobs/sha256/{}", &digest[7..])]
    );
    assert_error(
        &send(registry.request(reqwest::Method::GET, &location)).await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
    );

    // A chunked upload finished with the wrong digest leaves nothing.
    let start = registry
        .request(reqwest::Method::POST, "/v2/admin/repo/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    for chunk in [&b"first"[..], &b"second"[..]] {
        registry
            .request(reqwest::Method::PATCH, &location)
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
    }
    let wrong = send(registry.request(
        reqwest::Method::PUT,
        &format!("{location}?digest={}", sha256(b"firstsecond!")),
    ))
    .await;
    assert_error(&wrong, 400, "DIGEST_INVALID");
    assert_eq!(
        registry.stored_files(),
        vec![format!("blobs/sha256/{}", &digest[7..])]
    );
    assert_eq!(registry.count("blob_uploads").await, 0);
}

#[tokio::test]
async fn a_truncated_upload_leaves_nothing_half_stored() {
    let registry = Registry::new().await;
    let start = registry
        .request(reqwest::Method::POST, "/v2/admin/repo/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    // Promise 100000 bytes, send 1000, hang up.
    let credentials = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{ADMIN}:{ADMIN_PASSWORD}"),
    );
    let mut socket = tokio::net::TcpStream::connect(host_of(&registry.app.base))
        .await
        .unwrap();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {credentials}\r\nContent-Length: 100000\r\n\r\n"
    );
    tokio::io::AsyncWriteExt::write_all(&mut socket, head.as_bytes())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut socket, &[7u8; 1000])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(socket);

    let mut clean = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if registry.stored_files().is_empty() {
            clean = true;
            break;
        }
    }
    assert!(clean, "left behind: {:?}", registry.stored_files());
    let status = registry
        .request(reqwest::Method::GET, &location)
        .send()
        .await
        .unwrap();
    assert_eq!(status.headers()["range"], "0-0", "nothing was appended");
    // A finish now must not accept a blob that never fully arrived.
    let response = send(registry.request(
        reqwest::Method::PUT,
        &format!("{location}?digest={}", sha256(&[7u8; 100000])),
    ))
    .await;
    assert_error(&response, 400, "DIGEST_INVALID");
    assert_eq!(registry.count("blobs").await, 0);
}

fn image_manifest(
    config: (&str, usize),
    layers: &[(&str, usize)],
    config_media_type: &str,
) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config_media_type, "digest": config.0, "size": config.1},
        "layers": layers.iter().map(|(d, s)| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s})).collect::<Vec<_>>()
    }))
    .unwrap()
}

#[tokio::test]
async fn manifests_need_their_blobs_and_a_matching_digest() {
    let registry = Registry::new().await;
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = b"layer bytes";
    assert_eq!(
        registry.upload("admin/repo", config).await.0,
        StatusCode::CREATED
    );
    let (config_digest, layer_digest) = (sha256(config), sha256(layer));
    let oci = "application/vnd.oci.image.manifest.v1+json";
    let manifest = image_manifest(
        (&config_digest, config.len()),
        &[(&layer_digest, layer.len())],
        "application/vnd.oci.image.config.v1+json",
    );
    let put = |reference: String, body: Vec<u8>| {
        registry
            .request(
                reqwest::Method::PUT,
                &format!("/v2/admin/repo/manifests/{reference}"),
            )
            .header("content-type", oci)
            .body(body)
    };

    let missing = send(put("v1".into(), manifest.clone())).await;
    let error = assert_error(&missing, 400, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(error["detail"]["digest"], layer_digest.as_str());
    assert_eq!(
        (
            registry.count("manifests").await,
            registry.count("tags").await
        ),
        (0, 0)
    );

    assert_eq!(
        registry.upload("admin/repo", layer).await.0,
        StatusCode::CREATED
    );
    let wrong_size = image_manifest(
        (&config_digest, config.len()),
        &[(&layer_digest, 999)],
        "application/vnd.oci.image.config.v1+json",
    );
    assert_error(
        &send(put("v1".into(), wrong_size)).await,
        400,
        "MANIFEST_INVALID",
    );
    assert_error(
        &send(put(sha256(b"other"), manifest.clone())).await,
        400,
        "DIGEST_INVALID",
    );
    assert_error(
        &send(put("v1".into(), b"{not json".to_vec())).await,
        400,
        "MANIFEST_INVALID",
    );
    assert_error(
        &send(put("bad/tag".into(), manifest.clone())).await,
        404,
        "NO_SUCH_ROUTE",
    );
    assert_error(
        &send(put(".bad".into(), manifest.clone())).await,
        400,
        "TAG_INVALID",
    );
    assert_eq!(
        (
            registry.count("manifests").await,
            registry.count("tags").await
        ),
        (0, 0)
    );

    let created = put("v1".into(), manifest.clone()).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let digest = sha256(&manifest);
    assert_eq!(created.headers()["docker-content-digest"], digest.as_str());
    for reference in ["v1".to_owned(), digest.clone()] {
        let got = registry
            .request(
                reqwest::Method::GET,
                &format!("/v2/admin/repo/manifests/{reference}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), StatusCode::OK);
        assert_eq!(got.headers()["content-type"], oci);
        assert_eq!(got.bytes().await.unwrap().as_ref(), manifest.as_slice());
    }
    let (_, list) = send(registry.request(reqwest::Method::GET, "/v2/admin/repo/tags/list")).await;
    assert_eq!(list, json!({"name": "admin/repo", "tags": ["v1"]}));
    let (_, catalog) = send(registry.request(reqwest::Method::GET, "/v2/_catalog")).await;
    assert_eq!(catalog, json!({"repositories": ["admin/repo"]}));

    // An index over it, and a Helm chart (an artifact known by its config type).
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": oci, "digest": digest, "size": manifest.len(), "platform": {"os": "linux", "architecture": "amd64"}}]
    }))
    .unwrap();
    let created = registry
        .request(reqwest::Method::PUT, "/v2/admin/repo/manifests/multi")
        .header("content-type", "application/vnd.oci.image.index.v1+json")
        .body(index)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let chart_config = br#"{"name":"mychart","version":"0.1.0","apiVersion":"v2"}"#;
    let chart = b"chart tarball";
    registry.upload("admin/repo", chart_config).await;
    registry.upload("admin/repo", chart).await;
    let helm = image_manifest(
        (&sha256(chart_config), chart_config.len()),
        &[(&sha256(chart), chart.len())],
        "application/vnd.cncf.helm.config.v1+json",
    );
    assert_eq!(
        put("mychart-0.1.0".into(), helm)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );

    let (_, tags) = send(registry.app.get("/api/v0/repositories/admin/repo/tags")).await;
    let by_name = |name: &str| {
        tags.as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("v1")["manifest"]["architecture"], "amd64");
    assert_eq!(
        by_name("multi")["manifest"]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(by_name("multi")["manifest"]["architecture"], "amd64");
    assert_eq!(
        by_name("mychart-0.1.0")["manifest"]["configMediaType"],
        "application/vnd.cncf.helm.config.v1+json"
    );

    // An index naming a manifest the repository does not have.
    let dangling = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": oci, "digest": sha256(b"nope"), "size": 4}]
    }))
    .unwrap();
    let response = send(
        registry
            .request(reqwest::Method::PUT, "/v2/admin/repo/manifests/dangling")
            .header("content-type", "application/vnd.oci.image.index.v1+json")
            .body(dangling),
    )
    .await;
    assert_error(&response, 400, "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test]
async fn names_and_repositories_are_checked() {
    let registry = Registry::new().await;
    assert_error(
        &send(registry.request(reqwest::Method::GET, "/v2/Admin/Repo/tags/list")).await,
        400,
        "NAME_INVALID",
    );
    assert_error(
        &send(registry.request(reqwest::Method::GET, "/v2/admin/re..po/tags/list")).await,
        400,
        "NAME_INVALID",
    );
    assert_error(
        &send(registry.request(reqwest::Method::GET, "/v2/admin/missing/tags/list")).await,
        404,
        "NAME_UNKNOWN",
    );
    assert_error(
        &send(registry.request(reqwest::Method::POST, "/v2/nobody/repo/blobs/uploads/")).await,
        404,
        "NAME_UNKNOWN",
    );
    assert_error(
        &send(registry.request(reqwest::Method::GET, "/v2/admin/repo/manifests/latest")).await,
        404,
        "MANIFEST_UNKNOWN",
    );
    assert_error(
        &send(
            registry
                .request(
                    reqwest::Method::PATCH,
                    &format!("/v2/admin/repo/blobs/uploads/{}", uuid::Uuid::new_v4()),
                )
                .body("x"),
        )
        .await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
    );
    // A private repository is unknown to a user without access, not forbidden.
    registry
        .app
        .create_user("stranger", "stranger-password", false)
        .await;
    let stranger = registry
        .app
        .http
        .get(registry.app.url("/v2/admin/repo/tags/list"))
        .basic_auth("stranger", Some("stranger-password"));
    assert_error(&send(stranger).await, 404, "NAME_UNKNOWN");
    let (_, catalog) = send(
        registry
            .app
            .http
            .get(registry.app.url("/v2/_catalog"))
            .basic_auth("stranger", Some("stranger-password")),
    )
    .await;
    assert_eq!(catalog, json!({"repositories": []}));
}

#[tokio::test]
async fn the_same_blob_pushed_twice_is_stored_once() {
    let registry = Registry::new().await;
    create_repository(&registry.app.db, ADMIN, "other").await;
    let content = vec![42u8; 70_000];
    for repo in ["admin/repo", "admin/other", "admin/repo"] {
        assert_eq!(registry.upload(repo, &content).await.0, StatusCode::CREATED);
    }
    assert_eq!(
        registry.stored_files(),
        vec![format!("blobs/sha256/{}", &sha256(&content)[7..])]
    );
    assert_eq!(registry.count("blobs").await, 1);
    assert_eq!(registry.count("repository_blobs").await, 2);
    // Mounting links without copying.
    create_repository(&registry.app.db, ADMIN, "third").await;
    let digest = sha256(&content);
    let mounted = registry
        .request(
            reqwest::Method::POST,
            &format!("/v2/admin/third/blobs/uploads/?mount={digest}&from=admin/repo"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(mounted.status(), StatusCode::CREATED);
    assert_eq!(registry.count("repository_blobs").await, 3);
    assert_eq!(registry.stored_files().len(), 1);
}

#[tokio::test]
async fn abandoned_uploads_expire_with_their_parts() {
    let registry = Registry::new().await;
    let mut locations = Vec::new();
    for chunk in [&b"abandoned long ago"[..], &b"still going"[..]] {
        let start = registry
            .request(reqwest::Method::POST, "/v2/admin/repo/blobs/uploads/")
            .send()
            .await
            .unwrap();
        let location = start.headers()["location"].to_str().unwrap().to_owned();
        let patched = registry
            .request(reqwest::Method::PATCH, &location)
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), StatusCode::ACCEPTED);
        locations.push(location);
    }
    let abandoned = locations[0]
        .rsplit('/')
        .next()
        .unwrap()
        .parse::<uuid::Uuid>()
        .unwrap();
    sqlx::query("UPDATE blob_uploads SET updated_at = now() - interval '2 days' WHERE id = $1")
        .bind(abandoned)
        .execute(&mut registry.app.db.connect().await)
        .await
        .unwrap();
    assert_eq!(registry.stored_files().len(), 2);

    let pool = sqlx::PgPool::connect(&registry.app.db.url).await.unwrap();
    let storage =
        msr::storage::Storage::open(registry.app.storage.path().to_str().unwrap()).unwrap();
    let expired =
        msr::registry::blobs::expire_uploads(&pool, &storage, Duration::from_secs(24 * 3600))
            .await
            .unwrap();
    assert_eq!(expired, 1);
    assert_eq!(
        registry.stored_files().len(),
        1,
        "only the live upload's part is left"
    );
    assert!(
        registry.stored_files()[0].contains(&locations[1].rsplit('/').next().unwrap().to_string())
    );
    assert_error(
        &send(registry.request(reqwest::Method::GET, &locations[0])).await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
    );
    let live = registry
        .request(reqwest::Method::GET, &locations[1])
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::NO_CONTENT);
    // A second sweep finds nothing more to do.
    assert_eq!(
        msr::registry::blobs::expire_uploads(&pool, &storage, Duration::from_secs(24 * 3600))
            .await
            .unwrap(),
        0
    );
    pool.close().await;
}
