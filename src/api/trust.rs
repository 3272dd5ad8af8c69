//! Notary trust data of a repository, in the Notary server's shape:
//! `/api/v0/repositories/{namespace}/{reponame}/trust[/{role}]`.
//!
//! A delegation role is one path segment with its slash percent-encoded
//! (`targets%2Freleases`), so that every route stays a fixed shape.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::Authenticated;
use super::extract::{JsonBytes, PathParams, QueryParams};
use super::registry::{not_found, repository};
use super::{AppState, Route, route};
use crate::error::{ApiError, ApiResult};
use crate::registry::access::AccessLevel;
use crate::registry::invalid::Invalid;
use crate::registry::notary::{self, PutError, Role, TufFile};

pub(super) fn routes() -> Vec<Route> {
    const TRUST: &str = "/api/v0/repositories/{namespace}/{reponame}/trust";
    const ROLE: &str = "/api/v0/repositories/{namespace}/{reponame}/trust/{role}";
    vec![
        route(Method::GET, TRUST, list),
        route(Method::DELETE, TRUST, delete_all),
        route(Method::GET, ROLE, get_role),
        route(Method::PUT, ROLE, put_role),
    ]
}

#[derive(Deserialize)]
struct RepositoryPath {
    namespace: String,
    reponame: String,
}

#[derive(Deserialize)]
struct RolePath {
    namespace: String,
    reponame: String,
    role: String,
}

#[derive(Serialize)]
struct Roles {
    roles: Vec<TufFile>,
}

impl From<PutError> for ApiError {
    fn from(err: PutError) -> Self {
        match err {
            PutError::Body(err) => err.into(),
            PutError::Database(err) => err.into(),
        }
    }
}

async fn list(
    Authenticated(account): Authenticated,
    State(state): State<AppState>,
    PathParams(path): PathParams<RepositoryPath>,
) -> ApiResult<Json<Roles>> {
    let repo = repository(
        &state,
        &account,
        &path.namespace,
        &path.reponame,
        AccessLevel::ReadOnly,
    )
    .await?;
    Ok(Json(Roles {
        roles: notary::list(&state.pool, repo.id).await?,
    }))
}

async fn delete_all(
    Authenticated(account): Authenticated,
    State(state): State<AppState>,
    PathParams(path): PathParams<RepositoryPath>,
) -> ApiResult<StatusCode> {
    let repo = repository(
        &state,
        &account,
        &path.namespace,
        &path.reponame,
        AccessLevel::Admin,
    )
    .await?;
    let files = notary::delete_all(&state.pool, repo.id).await?;
    tracing::info!(by = %account.name, repository = %format_args!("{}/{}", repo.namespace, repo.name), files, "trust data deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Unknown parameters are refused: a misspelt `?verison=1` must not quietly
/// return the latest version instead.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionQuery {
    version: Option<String>,
}

async fn get_role(
    Authenticated(account): Authenticated,
    State(state): State<AppState>,
    PathParams(path): PathParams<RolePath>,
    QueryParams(query): QueryParams<VersionQuery>,
) -> ApiResult<Response> {
    let role = Role::parse(&path.role)?;
    let version = query
        .version
        .map(|version| {
            version
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 1)
                .ok_or_else(|| {
                    Invalid::new(
                        "version",
                        format!("{version:?} is not a whole number of at least 1"),
                    )
                })
        })
        .transpose()?;
    let repo = repository(
        &state,
        &account,
        &path.namespace,
        &path.reponame,
        AccessLevel::ReadOnly,
    )
    .await?;
    let data = notary::get(&state.pool, repo.id, &role, version)
        .await?
        .ok_or_else(|| {
            let which =
                version.map_or_else(|| "any version".to_owned(), |v| format!("version {v}"));
            not_found(
                "NO_SUCH_TRUST_DATA",
                format!(
                    "{}/{} has no {} trust data ({which})",
                    repo.namespace,
                    repo.name,
                    role.as_str()
                ),
            )
        })?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(data),
    )
        .into_response())
}

async fn put_role(
    Authenticated(account): Authenticated,
    State(state): State<AppState>,
    PathParams(path): PathParams<RolePath>,
    JsonBytes(body): JsonBytes,
) -> ApiResult<(StatusCode, Json<TufFile>)> {
    let role = Role::parse(&path.role)?;
    let repo = repository(
        &state,
        &account,
        &path.namespace,
        &path.reponame,
        AccessLevel::ReadWrite,
    )
    .await?;
    let file = notary::put(&state.pool, repo.id, &role, &body).await?;
    tracing::info!(by = %account.name, repository = %format_args!("{}/{}", repo.namespace, repo.name), role = %file.role, version = file.version, "trust data stored");
    Ok((StatusCode::CREATED, Json(file)))
}
