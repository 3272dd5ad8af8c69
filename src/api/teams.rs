//! eNZi's teams API: `/enzi/v0/accounts/{org}/teams` and team membership.
//! Managed by system admins and the org's admins, visible to its members.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::accounts::{PAGING, page_json, page_request};
use super::auth::Authenticated;
use super::extract::{JsonBody, OptionalJsonBody, PathParams, QueryPairs};
use super::{AppState, Route, route};
use crate::error::ApiResult;
use crate::registry::teams::{self, Team, TeamMember};

pub(super) fn routes() -> Vec<Route> {
    const TEAMS: &str = "/enzi/v0/accounts/{org}/teams";
    const TEAM: &str = "/enzi/v0/accounts/{org}/teams/{team}";
    const MEMBERS: &str = "/enzi/v0/accounts/{org}/teams/{team}/members";
    const MEMBER: &str = "/enzi/v0/accounts/{org}/teams/{team}/members/{member}";
    vec![
        route(Method::GET, TEAMS, list_teams),
        route(Method::POST, TEAMS, create_team),
        route(Method::GET, TEAM, get_team),
        route(Method::PATCH, TEAM, update_team),
        route(Method::DELETE, TEAM, delete_team),
        route(Method::GET, MEMBERS, list_members),
        route(Method::PUT, MEMBER, put_member),
        route(Method::DELETE, MEMBER, delete_member),
    ]
}

pub async fn list_teams(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams(org): PathParams<String>,
    query: QueryPairs,
) -> ApiResult<Json<Value>> {
    let page = page_request(&query.only(&PAGING)?)?;
    Ok(page_json(
        "teams",
        teams::list(&state.pool, &actor, &org, &page).await?,
    ))
}

pub async fn create_team(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams(org): PathParams<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Team>)> {
    let team = teams::create(&state.pool, &actor, &org, body).await?;
    tracing::info!(by = %actor.name, org = %org, team = %team.name, "team created");
    Ok((StatusCode::CREATED, Json(team)))
}

pub async fn get_team(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams((org, team)): PathParams<(String, String)>,
) -> ApiResult<Json<Team>> {
    Ok(Json(teams::show(&state.pool, &actor, &org, &team).await?))
}

pub async fn update_team(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams((org, team)): PathParams<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Team>> {
    let updated = teams::update(&state.pool, &actor, &org, &team, body).await?;
    tracing::info!(by = %actor.name, org = %org, team = %team, name = %updated.name, "team updated");
    Ok(Json(updated))
}

pub async fn delete_team(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams((org, team)): PathParams<(String, String)>,
) -> ApiResult<StatusCode> {
    teams::delete(&state.pool, &actor, &org, &team).await?;
    tracing::info!(by = %actor.name, org = %org, team = %team, "team deleted");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_members(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams((org, team)): PathParams<(String, String)>,
    query: QueryPairs,
) -> ApiResult<Json<Value>> {
    let page = page_request(&query.only(&PAGING)?)?;
    Ok(page_json(
        "members",
        teams::members(&state.pool, &actor, &org, &team, &page).await?,
    ))
}

pub async fn put_member(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams((org, team, member)): PathParams<(String, String, String)>,
    OptionalJsonBody(body): OptionalJsonBody,
) -> ApiResult<Json<TeamMember>> {
    let added = teams::put_member(&state.pool, &actor, &org, &team, &member, body).await?;
    tracing::info!(by = %actor.name, org = %org, team = %team, member = %member, "team member added");
    Ok(Json(added))
}

pub async fn delete_member(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams((org, team, member)): PathParams<(String, String, String)>,
) -> ApiResult<StatusCode> {
    teams::remove_member(&state.pool, &actor, &org, &team, &member).await?;
    tracing::info!(by = %actor.name, org = %org, team = %team, member = %member, "team member removed");
    Ok(StatusCode::NO_CONTENT)
}
