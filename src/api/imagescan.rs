//! `/api/v0/imagescan/...`: scan results, their summary per tag, and the
//! vulnerability database they are read against.
//!
//! Scanners write (admin accounts); anyone who can read a repository can read
//! the results of the images in it. The vulnerability database is public
//! knowledge, so any authenticated account may read it.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::{Admin, Authenticated};
use super::extract::{JsonBytes, PathParams};
use super::registry::{not_found, repository};
use super::{AppState, Route, route};
use crate::error::{ApiError, ApiResult};
use crate::registry::access::{self, AccessLevel};
use crate::registry::invalid;
use crate::registry::scans::{self, ScanResult, Stored, Summary, TagScan};
use crate::registry::vulnerabilities::{self, Feed, ReplaceError, Vulnerability};

/// A vulnerability feed is far larger than any other request body (100 000
/// entries is about 15 MB), so its route alone accepts this much, whatever
/// `MSR_MAX_BODY_BYTES` says.
pub const DATABASE_MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

pub(super) fn routes() -> Vec<Route> {
    const RESULT: &str = "/api/v0/imagescan/results/{digest}";
    const TAG: &str = "/api/v0/imagescan/repositories/{namespace}/{reponame}/{tag}";
    const DATABASE: &str = "/api/v0/imagescan/database";
    const VULNERABILITY: &str = "/api/v0/imagescan/database/vulnerabilities/{id}";
    vec![
        route(Method::GET, RESULT, get_result),
        route(Method::PUT, RESULT, put_result),
        route(Method::GET, TAG, tag_summary),
        route(Method::GET, DATABASE, get_database),
        route(Method::PUT, DATABASE, put_database).with_body_limit(DATABASE_MAX_BODY_BYTES),
        route(Method::GET, VULNERABILITY, get_vulnerability),
    ]
}

impl From<scans::PutError> for ApiError {
    fn from(err: scans::PutError) -> Self {
        match err {
            scans::PutError::Body(err) => err.into(),
            scans::PutError::NoSuchManifest => not_found(
                "NO_SUCH_MANIFEST",
                "no repository holds a manifest with this digest",
            ),
            scans::PutError::Database(err) => err.into(),
        }
    }
}

impl From<ReplaceError> for ApiError {
    fn from(err: ReplaceError) -> Self {
        match err {
            ReplaceError::Body(err) => err.into(),
            ReplaceError::Database(err) => err.into(),
        }
    }
}

fn no_such_scan_result(digest: &str) -> ApiError {
    not_found(
        "NO_SUCH_SCAN_RESULT",
        format!("there is no scan result for {digest}"),
    )
    .with_detail(json!({ "digest": digest }))
}

#[derive(Deserialize)]
struct DigestPath {
    digest: String,
}

async fn put_result(
    Admin(admin): Admin,
    State(state): State<AppState>,
    PathParams(path): PathParams<DigestPath>,
    JsonBytes(body): JsonBytes,
) -> ApiResult<(StatusCode, Json<ScanResult>)> {
    let (stored, result) = scans::put(&state.pool, &path.digest, &body).await?;
    tracing::info!(by = %admin.name, digest = %result.digest, scanner = %result.scanner, "scan result stored");
    let status = match stored {
        Stored::Created => StatusCode::CREATED,
        Stored::Replaced => StatusCode::OK,
    };
    Ok((status, Json(result)))
}

async fn get_result(
    Authenticated(account): Authenticated,
    State(state): State<AppState>,
    PathParams(path): PathParams<DigestPath>,
) -> ApiResult<Json<ScanResult>> {
    invalid::digest(|| "digest".into(), &path.digest)?;
    // Visible to whoever can read some repository holding the image; to
    // anyone else the result does not exist.
    if !account.is_admin {
        let mut readable = false;
        for repository in scans::repositories_with_manifest(&state.pool, &path.digest).await? {
            if access::repository_access(&state.pool, &account, repository)
                .await?
                .can_read()
            {
                readable = true;
                break;
            }
        }
        if !readable {
            return Err(no_such_scan_result(&path.digest));
        }
    }
    let result = scans::get(&state.pool, &path.digest)
        .await?
        .ok_or_else(|| no_such_scan_result(&path.digest))?;
    Ok(Json(result))
}

#[derive(Deserialize)]
struct TagPath {
    namespace: String,
    reponame: String,
    tag: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TagSummaryView {
    namespace: String,
    reponame: String,
    tag: String,
    digest: String,
    scanner: String,
    #[serde(serialize_with = "crate::registry::time::rfc3339")]
    scanned_at: chrono::DateTime<chrono::Utc>,
    summary: Summary,
}

async fn tag_summary(
    Authenticated(account): Authenticated,
    State(state): State<AppState>,
    PathParams(path): PathParams<TagPath>,
) -> ApiResult<Json<TagSummaryView>> {
    let repo = repository(
        &state,
        &account,
        &path.namespace,
        &path.reponame,
        AccessLevel::ReadOnly,
    )
    .await?;
    match scans::for_tag(&state.pool, repo.id, &path.tag).await? {
        TagScan::NoSuchTag => Err(not_found(
            "NO_SUCH_TAG",
            format!("{}/{} has no tag {:?}", repo.namespace, repo.name, path.tag),
        )),
        TagScan::NotScanned { digest } => Err(no_such_scan_result(&digest)),
        TagScan::Scanned(scan) => Ok(Json(TagSummaryView {
            namespace: repo.namespace,
            reponame: repo.name,
            tag: path.tag,
            digest: scan.digest,
            scanner: scan.scanner,
            scanned_at: scan.scanned_at,
            summary: scan.summary,
        })),
    }
}

fn no_vulnerability_database() -> ApiError {
    not_found(
        "NO_SUCH_VULNERABILITY_DATABASE",
        "no vulnerability database has been loaded yet",
    )
}

async fn get_database(_: Authenticated, State(state): State<AppState>) -> ApiResult<Json<Feed>> {
    vulnerabilities::feed(&state.pool)
        .await?
        .map(Json)
        .ok_or_else(no_vulnerability_database)
}

async fn put_database(
    Admin(admin): Admin,
    State(state): State<AppState>,
    JsonBytes(body): JsonBytes,
) -> ApiResult<Json<Feed>> {
    let feed = vulnerabilities::replace(&state.pool, &body).await?;
    tracing::info!(by = %admin.name, version = %feed.version, count = feed.count, "vulnerability database replaced");
    Ok(Json(feed))
}

#[derive(Deserialize)]
struct VulnerabilityPath {
    id: String,
}

async fn get_vulnerability(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(path): PathParams<VulnerabilityPath>,
) -> ApiResult<Json<Vulnerability>> {
    vulnerabilities::get(&state.pool, &path.id)
        .await?
        .map(Json)
        .ok_or_else(|| {
            not_found(
                "NO_SUCH_VULNERABILITY",
                format!("the vulnerability database has no {:?}", path.id),
            )
        })
}
