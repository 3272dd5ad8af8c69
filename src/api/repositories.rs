//! DTR's repositories API: `/api/v0/repositories`, and the permissions
//! teams have on them. Every route needs an authenticated account; a
//! repository it cannot read answers `NO_SUCH_REPOSITORY`.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use serde::Serialize;

use super::auth::Authenticated;
use super::extract::{JsonBody, PathParams};
use super::{AppState, Route, route};
use crate::error::ApiResult;
use crate::registry::access::{self, AccessLevel, TeamAccess};
use crate::registry::repositories::{self, Repository};
use crate::registry::teams::Team;

pub(super) fn routes() -> Vec<Route> {
    const NAMESPACE: &str = "/api/v0/repositories/{namespace}";
    const REPOSITORY: &str = "/api/v0/repositories/{namespace}/{reponame}";
    const TEAM_ACCESS: &str = "/api/v0/repositories/{namespace}/{reponame}/teamAccess";
    const TEAM_GRANT: &str = "/api/v0/repositories/{namespace}/{reponame}/teamAccess/{teamname}";
    vec![
        route(Method::GET, NAMESPACE, list_repositories),
        route(Method::POST, NAMESPACE, create_repository),
        route(Method::GET, REPOSITORY, get_repository),
        route(Method::PATCH, REPOSITORY, update_repository),
        route(Method::DELETE, REPOSITORY, delete_repository),
        route(Method::GET, TEAM_ACCESS, list_team_access),
        route(Method::PUT, TEAM_GRANT, put_team_access),
        route(Method::DELETE, TEAM_GRANT, delete_team_access),
    ]
}

#[derive(Serialize)]
pub struct RepositoryList {
    repositories: Vec<Repository>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamAccessList {
    team_access_list: Vec<TeamAccess>,
    repository: Repository,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamGrant {
    access_level: AccessLevel,
    team: Team,
    repository: Repository,
}

pub async fn list_repositories(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams(namespace): PathParams<String>,
) -> ApiResult<Json<RepositoryList>> {
    let repositories = repositories::list(&state.pool, &actor, &namespace).await?;
    Ok(Json(RepositoryList { repositories }))
}

pub async fn create_repository(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams(namespace): PathParams<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Repository>)> {
    let repository = repositories::create(&state.pool, &actor, &namespace, body).await?;
    tracing::info!(by = %actor.name, repository = %repository, visibility = repository.visibility.as_str(), "repository created");
    Ok((StatusCode::CREATED, Json(repository)))
}

pub async fn get_repository(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams((namespace, name)): PathParams<(String, String)>,
) -> ApiResult<Json<Repository>> {
    Ok(Json(
        repositories::show(&state.pool, &actor, &namespace, &name).await?,
    ))
}

pub async fn update_repository(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams((namespace, name)): PathParams<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Repository>> {
    let repository = repositories::update(&state.pool, &actor, &namespace, &name, body).await?;
    tracing::info!(by = %actor.name, repository = %repository, visibility = repository.visibility.as_str(), "repository updated");
    Ok(Json(repository))
}

pub async fn delete_repository(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams((namespace, name)): PathParams<(String, String)>,
) -> ApiResult<StatusCode> {
    repositories::delete(&state.pool, &actor, &namespace, &name).await?;
    tracing::info!(by = %actor.name, repository = %format_args!("{namespace}/{name}"), "repository deleted");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_team_access(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams((namespace, name)): PathParams<(String, String)>,
) -> ApiResult<Json<TeamAccessList>> {
    let (team_access_list, repository) =
        access::list_team_access(&state.pool, &actor, &namespace, &name).await?;
    Ok(Json(TeamAccessList {
        team_access_list,
        repository,
    }))
}

pub async fn put_team_access(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams((namespace, name, team)): PathParams<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<TeamGrant>> {
    let (grant, repository) =
        access::set_team_access(&state.pool, &actor, &namespace, &name, &team, body).await?;
    tracing::info!(by = %actor.name, repository = %repository, team = %grant.team.name, access_level = grant.access_level.as_str(), "team access granted");
    Ok(Json(TeamGrant {
        access_level: grant.access_level,
        team: grant.team,
        repository,
    }))
}

pub async fn delete_team_access(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams((namespace, name, team)): PathParams<(String, String, String)>,
) -> ApiResult<StatusCode> {
    access::remove_team_access(&state.pool, &actor, &namespace, &name, &team).await?;
    tracing::info!(by = %actor.name, repository = %format_args!("{namespace}/{name}"), team = %team, "team access revoked");
    Ok(StatusCode::NO_CONTENT)
}
