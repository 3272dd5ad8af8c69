//! The OCI distribution API (`/v2/`): what `docker`, `skopeo` and `helm`
//! push to and pull from. Errors use the spec's codes (`BLOB_UNKNOWN`,
//! `DIGEST_INVALID`, `NAME_UNKNOWN`, …) in the same `{"errors":[…]}` body.
//! Every request needs HTTP Basic credentials; access follows
//! [`crate::registry::access`]: read to pull, read-write to push.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{AppState, Route, auth, route};
use crate::error::ApiError;
use crate::registry::access::{self, AccessLevel};
use crate::registry::accounts::Account;
use crate::registry::digest::Digest;
use crate::registry::manifests::{self, Push, Reference};
use crate::registry::repositories::{self, Repository};
use crate::registry::{ContentError, blobs};

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");

/// Page size for `tags/list` and `_catalog` when the client sets none.
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 10_000;

pub(super) fn routes() -> Vec<Route> {
    const MANIFEST: &str = "/v2/{namespace}/{repository}/manifests/{reference}";
    const BLOB: &str = "/v2/{namespace}/{repository}/blobs/{digest}";
    const UPLOAD: &str = "/v2/{namespace}/{repository}/blobs/uploads/{upload}";
    vec![
        route(Method::GET, "/v2/", base),
        route(Method::GET, "/v2/_catalog", catalog),
        route(
            Method::GET,
            "/v2/{namespace}/{repository}/tags/list",
            tags_list,
        ),
        route(Method::GET, MANIFEST, get_manifest),
        route(Method::PUT, MANIFEST, put_manifest),
        route(Method::DELETE, MANIFEST, delete_manifest),
        route(Method::GET, BLOB, get_blob),
        route(Method::DELETE, BLOB, delete_blob),
        route(
            Method::POST,
            "/v2/{namespace}/{repository}/blobs/uploads/",
            start_upload,
        ),
        route(Method::GET, UPLOAD, upload_status),
        route(Method::PATCH, UPLOAD, patch_upload),
        route(Method::PUT, UPLOAD, finish_upload),
        route(Method::DELETE, UPLOAD, cancel_upload),
    ]
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, code, message)
}

impl From<ContentError> for ApiError {
    fn from(err: ContentError) -> Self {
        let message = err.to_string();
        match err {
            ContentError::BlobUnknown => error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", message),
            ContentError::BlobUploadUnknown => {
                error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN", message)
            }
            ContentError::BlobUploadInvalid(_) => {
                error(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", message)
            }
            ContentError::RangeInvalid { .. } => error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                message,
            ),
            ContentError::DigestInvalid(_) => {
                error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", message)
            }
            ContentError::ManifestInvalid(_) => {
                error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", message)
            }
            ContentError::ManifestBlobUnknown(digest) => {
                error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN", message)
                    .with_detail(json!({ "digest": digest }))
            }
            ContentError::TagInvalid(_) => error(StatusCode::BAD_REQUEST, "TAG_INVALID", message),
            ContentError::TagImmutable(_) => error(StatusCode::FORBIDDEN, "DENIED", message),
            ContentError::Storage(err) => ApiError::internal(format_args!("storage: {err}")),
            ContentError::Database(err) => err.into(),
        }
    }
}

/// Every `/v2/` answer says which API it speaks, as clients probe for it.
fn registry_headers(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    response
}

type RegistryResult = Result<Response, RegistryError>;

/// An [`ApiError`] that also carries the API version header.
pub struct RegistryError(ApiError);

impl<E: Into<ApiError>> From<E> for RegistryError {
    fn from(err: E) -> Self {
        RegistryError(err.into())
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        registry_headers(self.0.into_response())
    }
}

/// The authenticated caller, with the spec's `UNAUTHORIZED` code on failure.
pub struct RegistryUser(Account);

impl axum::extract::FromRequestParts<AppState> for RegistryUser {
    type Rejection = RegistryError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, RegistryError> {
        match auth::authenticated(parts, state).await {
            Ok(account) => Ok(RegistryUser(account)),
            Err(err) if err.code() == "NOT_AUTHENTICATED" => {
                Err(RegistryError(err.with_code("UNAUTHORIZED")))
            }
            Err(err) => Err(RegistryError(err)),
        }
    }
}

/// A path component of a repository name, per the distribution spec.
fn is_name_component(text: &str) -> bool {
    let bytes = text.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    // Separators: one '.', one or two '_', or any run of '-', between alphanumerics.
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &text[start..i];
        let valid = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.bytes().all(|b| b == b'-');
        if !valid {
            return false;
        }
    }
    text.len() <= 255
}

/// Opens `namespace/repository` for `account`, needing `need` access. A
/// repository the caller cannot read is reported unknown, so private names
/// do not leak.
async fn open_repository(
    state: &AppState,
    account: &Account,
    namespace: &str,
    repository: &str,
    need: AccessLevel,
) -> Result<Repository, RegistryError> {
    if !is_name_component(namespace) || !is_name_component(repository) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            format!("invalid repository name {namespace}/{repository}"),
        )
        .into());
    }
    let unknown = || {
        RegistryError(error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("repository {namespace}/{repository} is not known to this registry"),
        ))
    };
    let Some(repo) = repositories::find(&state.pool, namespace, repository).await? else {
        return Err(unknown());
    };
    let level = access::repository_access(&state.pool, account, repo.id).await?;
    if !level.can_read() {
        return Err(unknown());
    }
    if level < need {
        return Err(error(
            StatusCode::FORBIDDEN,
            "DENIED",
            format!(
                "requested access to {namespace}/{repository} is denied: {} needed, you have {}",
                need.as_str(),
                level.as_str()
            ),
        )
        .into());
    }
    Ok(repo)
}

/// The caller and the repository named in the path, opened for reading
/// ([`PullAccess`]) or writing ([`PushAccess`]): what every repository route starts with.
pub struct RepositoryAccess<const WRITE: bool> {
    account: Account,
    namespace: String,
    repository: String,
    repo: Repository,
}

type PullAccess = RepositoryAccess<false>;
type PushAccess = RepositoryAccess<true>;

impl<const WRITE: bool> axum::extract::FromRequestParts<AppState> for RepositoryAccess<WRITE> {
    type Rejection = RegistryError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, RegistryError> {
        #[derive(Deserialize)]
        struct Names {
            namespace: String,
            repository: String,
        }
        let RegistryUser(account) = RegistryUser::from_request_parts(parts, state).await?;
        let Path(Names {
            namespace,
            repository,
        }) = Path::<Names>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                RegistryError(error(
                    StatusCode::BAD_REQUEST,
                    "NAME_INVALID",
                    rejection.body_text(),
                ))
            })?;
        let need = if WRITE {
            AccessLevel::ReadWrite
        } else {
            AccessLevel::ReadOnly
        };
        let repo = open_repository(state, &account, &namespace, &repository, need).await?;
        Ok(Self {
            account,
            namespace,
            repository,
            repo,
        })
    }
}

fn parse_digest(text: &str) -> Result<Digest, RegistryError> {
    text.parse()
        .map_err(|err: crate::registry::digest::InvalidDigest| {
            RegistryError(error(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                err.to_string(),
            ))
        })
}

fn parse_upload_id(text: &str) -> Result<Uuid, RegistryError> {
    text.parse()
        .map_err(|_| RegistryError(ContentError::BlobUploadUnknown.into()))
}

async fn base(RegistryUser(_): RegistryUser) -> Response {
    registry_headers(Json(json!({})).into_response())
}

/// Unknown query parameters are refused, so a misspelt one is not silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    n: Option<i64>,
    last: Option<String>,
}

impl Page {
    fn limit(&self) -> Result<i64, RegistryError> {
        match self.n {
            None => Ok(DEFAULT_PAGE),
            Some(n) if n < 0 => Err(RegistryError(error(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("n must not be negative, got {n}"),
            ))),
            Some(n) => Ok(n.min(MAX_PAGE)),
        }
    }
}

fn query<T: serde::de::DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, RegistryError> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(query)| query)
        .map_err(|err| {
            RegistryError(error(
                StatusCode::BAD_REQUEST,
                "INVALID_PARAMETERS",
                err.body_text(),
            ))
        })
}

fn next_link(path: &str, limit: i64, last: &str) -> HeaderValue {
    let mut url = url_encoded(last);
    url.insert_str(0, &format!("<{path}?n={limit}&last="));
    url.push_str(">; rel=\"next\"");
    HeaderValue::from_str(&url).expect("encoded link is a valid header")
}

fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn catalog(
    RegistryUser(account): RegistryUser,
    State(state): State<AppState>,
    request: Request,
) -> RegistryResult {
    let page: Page = query(request.uri())?;
    let limit = page.limit()?;
    let names =
        access::readable_repository_names(&state.pool, &account, page.last.as_deref(), limit + 1)
            .await?;
    let more = names.len() as i64 > limit;
    let names: Vec<String> = names.into_iter().take(limit as usize).collect();
    let mut response = Json(json!({ "repositories": names })).into_response();
    if more && let Some(last) = names.last() {
        response
            .headers_mut()
            .insert(header::LINK, next_link("/v2/_catalog", limit, last));
    }
    Ok(registry_headers(response))
}

async fn tags_list(
    RepositoryAccess {
        namespace,
        repository,
        repo,
        ..
    }: PullAccess,
    State(state): State<AppState>,
    request: Request,
) -> RegistryResult {
    let page: Page = query(request.uri())?;
    let limit = page.limit()?;
    let tags = manifests::tag_names(&state.pool, repo.id, page.last.as_deref(), limit + 1).await?;
    let more = tags.len() as i64 > limit;
    let tags: Vec<String> = tags.into_iter().take(limit as usize).collect();
    let mut response =
        Json(json!({ "name": format!("{namespace}/{repository}"), "tags": tags })).into_response();
    if more && let Some(last) = tags.last() {
        let path = format!("/v2/{namespace}/{repository}/tags/list");
        response
            .headers_mut()
            .insert(header::LINK, next_link(&path, limit, last));
    }
    Ok(registry_headers(response))
}

fn digest_header(digest: &Digest) -> HeaderValue {
    HeaderValue::from_str(&digest.to_string()).expect("digests are valid header values")
}

fn location(path: String) -> HeaderValue {
    HeaderValue::from_str(&path).expect("registry paths are valid header values")
}

async fn get_manifest(
    RepositoryAccess {
        namespace,
        repository,
        repo,
        ..
    }: PullAccess,
    State(state): State<AppState>,
    Path((_, _, reference)): Path<(String, String, String)>,
    method: Method,
) -> RegistryResult {
    let reference = Reference::parse(&reference)?;
    let manifest = manifests::resolve(&state.pool, repo.id, &reference)
        .await?
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                format!("manifest unknown to {namespace}/{repository}"),
            )
        })?;
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        let bytes = state
            .storage
            .read_all(&manifest.digest.storage_key())
            .await
            .map_err(ContentError::from)?
            .ok_or_else(|| {
                // Storage lost what the database records (restored metadata
                // without content, say): to the client it is simply unknown.
                tracing::error!(digest = %manifest.digest, storage = state.storage.location(), "manifest is recorded but missing from storage");
                error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", "manifest content is missing from storage")
            })?;
        Body::from(bytes)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&manifest.media_type)
            .unwrap_or(HeaderValue::from_static("application/json")),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(manifest.length));
    headers.insert(CONTENT_DIGEST, digest_header(&manifest.digest));
    Ok(registry_headers(response))
}

async fn put_manifest(
    RepositoryAccess {
        account,
        namespace,
        repository,
        repo,
    }: PushAccess,
    State(state): State<AppState>,
    Path((_, _, reference)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> RegistryResult {
    let reference = Reference::parse(&reference)?;
    let body = axum::body::to_bytes(body, manifests::MAX_MANIFEST_BYTES)
        .await
        .map_err(|_| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "MANIFEST_INVALID",
                format!(
                    "manifests are limited to {} bytes",
                    manifests::MAX_MANIFEST_BYTES
                ),
            )
        })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let digest = manifests::put(
        &state.pool,
        &state.storage,
        Push {
            repository_id: repo.id,
            immutable_tags: repo.immutable_tags,
            reference: &reference,
            content_type,
            body,
            pushed_by: &account.name,
        },
    )
    .await?;
    let mut response = StatusCode::CREATED.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        location(format!("/v2/{namespace}/{repository}/manifests/{digest}")),
    );
    headers.insert(CONTENT_DIGEST, digest_header(&digest));
    Ok(registry_headers(response))
}

async fn delete_manifest(
    RepositoryAccess { repo, .. }: PushAccess,
    State(state): State<AppState>,
    Path((_, _, reference)): Path<(String, String, String)>,
) -> RegistryResult {
    let Reference::Digest(digest) = Reference::parse(&reference)? else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            "manifests are deleted by digest; to untag, push another manifest to the tag",
        )
        .into());
    };
    if !manifests::delete(&state.pool, repo.id, &digest).await? {
        return Err(error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
        )
        .into());
    }
    Ok(registry_headers(StatusCode::ACCEPTED.into_response()))
}

async fn get_blob(
    RepositoryAccess { repo, .. }: PullAccess,
    State(state): State<AppState>,
    Path((_, _, digest)): Path<(String, String, String)>,
    method: Method,
) -> RegistryResult {
    let digest = parse_digest(&digest)?;
    let size = blobs::size_in_repository(&state.pool, repo.id, &digest)
        .await?
        .ok_or(ContentError::BlobUnknown)?;
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        let stream = state
            .storage
            .read(&digest.storage_key(), crate::storage::READ_CHUNK)
            .await
            .map_err(ContentError::from)?
            .ok_or_else(|| {
                tracing::error!(%digest, storage = state.storage.location(), "blob is recorded but missing from storage");
                ApiError::from(ContentError::BlobUnknown)
            })?;
        Body::from_stream(stream)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(CONTENT_DIGEST, digest_header(&digest));
    Ok(registry_headers(response))
}

async fn delete_blob(_: PushAccess) -> RegistryResult {
    // Blobs are shared across repositories and referenced by backups; they
    // go away with garbage collection, not on request.
    Err(error(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        "blobs cannot be deleted directly; delete the manifests that use them",
    )
    .into())
}

fn upload_accepted(namespace: &str, repository: &str, upload: &blobs::Upload) -> Response {
    let mut response = StatusCode::ACCEPTED.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        location(format!(
            "/v2/{namespace}/{repository}/blobs/uploads/{}",
            upload.id
        )),
    );
    // The spec's inclusive byte range received so far; "0-0" when nothing is.
    let end = upload.size.saturating_sub(1);
    headers.insert(header::RANGE, location(format!("0-{end}")));
    headers.insert(UPLOAD_UUID, location(upload.id.to_string()));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    registry_headers(response)
}

fn blob_created(namespace: &str, repository: &str, digest: &Digest) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        location(format!("/v2/{namespace}/{repository}/blobs/{digest}")),
    );
    headers.insert(CONTENT_DIGEST, digest_header(digest));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    registry_headers(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartUpload {
    digest: Option<String>,
    mount: Option<String>,
    from: Option<String>,
}

async fn start_upload(
    RepositoryAccess {
        account,
        namespace,
        repository,
        repo,
    }: PushAccess,
    State(state): State<AppState>,
    request: Request,
) -> RegistryResult {
    let params: StartUpload = query(request.uri())?;
    if let (Some(mount), Some(from)) = (&params.mount, &params.from) {
        let digest = parse_digest(mount)?;
        // A source the caller cannot read is not an error: the client then
        // simply uploads, as the spec says.
        if let Some((from_namespace, from_repository)) = from.split_once('/')
            && let Ok(source) = open_repository(
                &state,
                &account,
                from_namespace,
                from_repository,
                AccessLevel::ReadOnly,
            )
            .await
            && blobs::mount(&state.pool, repo.id, source.id, &digest).await?
        {
            return Ok(blob_created(&namespace, &repository, &digest));
        }
    }
    if let Some(digest) = &params.digest {
        let digest = parse_digest(digest)?;
        let body = request.into_body().into_data_stream();
        blobs::put_monolithic(&state.pool, &state.storage, repo.id, &digest, body).await?;
        return Ok(blob_created(&namespace, &repository, &digest));
    }
    let upload = blobs::start_upload(&state.pool, repo.id).await?;
    Ok(upload_accepted(&namespace, &repository, &upload))
}

async fn upload_status(
    RepositoryAccess {
        namespace,
        repository,
        repo,
        ..
    }: PushAccess,
    State(state): State<AppState>,
    Path((_, _, upload)): Path<(String, String, String)>,
) -> RegistryResult {
    let upload = blobs::upload_status(&state.pool, repo.id, parse_upload_id(&upload)?).await?;
    let mut response = upload_accepted(&namespace, &repository, &upload);
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

/// The first byte of a `Content-Range: <start>-<end>` chunk.
fn content_range_start(headers: &HeaderMap) -> Result<Option<u64>, RegistryError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| {
            v.trim()
                .trim_start_matches("bytes")
                .trim_start_matches([' ', '='])
        })
        .and_then(|v| v.split_once('-'))
        .and_then(|(start, _)| start.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| {
            RegistryError(error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                "Content-Range must be <start>-<end>",
            ))
        })
}

async fn patch_upload(
    RepositoryAccess {
        namespace,
        repository,
        repo,
        ..
    }: PushAccess,
    State(state): State<AppState>,
    Path((_, _, upload)): Path<(String, String, String)>,
    request: Request,
) -> RegistryResult {
    let id = parse_upload_id(&upload)?;
    let start = content_range_start(request.headers())?;
    let body = request.into_body().into_data_stream();
    let upload = blobs::append(&state.pool, &state.storage, repo.id, id, start, body).await?;
    Ok(upload_accepted(&namespace, &repository, &upload))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FinishUpload {
    digest: Option<String>,
}

async fn finish_upload(
    RepositoryAccess {
        namespace,
        repository,
        repo,
        ..
    }: PushAccess,
    State(state): State<AppState>,
    Path((_, _, upload)): Path<(String, String, String)>,
    request: Request,
) -> RegistryResult {
    let id = parse_upload_id(&upload)?;
    let params: FinishUpload = query(request.uri())?;
    let digest = parse_digest(params.digest.as_deref().unwrap_or_default())?;
    let body = request.into_body().into_data_stream();
    blobs::complete(&state.pool, &state.storage, repo.id, id, &digest, body).await?;
    Ok(blob_created(&namespace, &repository, &digest))
}

async fn cancel_upload(
    RepositoryAccess { repo, .. }: PushAccess,
    State(state): State<AppState>,
    Path((_, _, upload)): Path<(String, String, String)>,
) -> RegistryResult {
    blobs::cancel(
        &state.pool,
        &state.storage,
        repo.id,
        parse_upload_id(&upload)?,
    )
    .await?;
    Ok(registry_headers(StatusCode::NO_CONTENT.into_response()))
}

#[cfg(test)]
mod tests {
    use super::is_name_component;

    #[test]
    fn name_components() {
        for good in ["a", "ns", "my-repo", "my--repo", "a.b", "a_b", "a__b", "x1"] {
            assert!(is_name_component(good), "{good}");
        }
        for bad in ["", "A", "-a", "a-", "a..b", "a___b", "a/b", "a.-b", "ä"] {
            assert!(!is_name_component(bad), "{bad}");
        }
    }
}
