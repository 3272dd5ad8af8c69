//! eNZi's accounts API: `/enzi/v0/accounts` (users and organizations) and
//! organization membership. Every route needs an authenticated account;
//! what each one may do is decided in [`crate::registry`].

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::{Admin, Authenticated};
use super::extract::{JsonBody, OptionalJsonBody, PathParams, QueryPairs};
use super::{AppState, Route, route};
use crate::error::ApiResult;
use crate::registry::accounts::{self, AccountInfo, Filter};
use crate::registry::orgs::{self, Member};
use crate::registry::{Page, PageRequest};

pub(super) fn routes() -> Vec<Route> {
    const ACCOUNTS: &str = "/enzi/v0/accounts";
    const ACCOUNT: &str = "/enzi/v0/accounts/{account}";
    const MEMBERS: &str = "/enzi/v0/accounts/{org}/members";
    const MEMBER: &str = "/enzi/v0/accounts/{org}/members/{member}";
    vec![
        route(Method::GET, ACCOUNTS, list_accounts),
        route(Method::POST, ACCOUNTS, create_account),
        route(Method::GET, ACCOUNT, get_account),
        route(Method::PATCH, ACCOUNT, update_account),
        route(Method::DELETE, ACCOUNT, delete_account),
        route(Method::GET, MEMBERS, list_members),
        route(Method::PUT, MEMBER, put_member),
        route(Method::DELETE, MEMBER, delete_member),
    ]
}

/// The query parameters of a list that pages by name.
pub(super) const PAGING: [&str; 2] = ["start", "limit"];

/// `start` and `limit`, as every eNZi list takes them.
pub(super) fn page_request(query: &QueryPairs) -> ApiResult<PageRequest> {
    Ok(PageRequest::parse(query.get("start"), query.get("limit"))?)
}

/// eNZi's list shape: `{"<key>": [...], "nextPageStart": "<name or empty>"}`.
pub(super) fn page_json<T: Serialize>(key: &str, page: Page<T>) -> Json<Value> {
    Json(json!({ key: page.items, "nextPageStart": page.next_start }))
}

pub async fn list_accounts(
    _: Authenticated,
    State(state): State<AppState>,
    query: QueryPairs,
) -> ApiResult<Json<Value>> {
    let query = query.only(&["filter", "start", "limit"])?;
    let filter = match query.get("filter") {
        Some(filter) => Filter::parse(filter)?,
        None => Filter::All,
    };
    let page = accounts::list(&state.pool, filter, &page_request(&query)?).await?;
    Ok(page_json("accounts", page))
}

pub async fn create_account(
    Admin(admin): Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<AccountInfo>)> {
    let account = accounts::create(&state.pool, body).await?;
    tracing::info!(by = %admin.name, account = %account.name, is_org = account.is_org, is_admin = account.is_admin, "account created");
    Ok((StatusCode::CREATED, Json(account)))
}

pub async fn get_account(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
) -> ApiResult<Json<AccountInfo>> {
    Ok(Json(accounts::get(&state.pool, &name).await?))
}

pub async fn update_account(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<AccountInfo>> {
    let account = accounts::update(&state.pool, &actor, &name, body).await?;
    tracing::info!(by = %actor.name, account = %account.name, is_admin = account.is_admin, is_active = account.is_active, "account updated");
    Ok(Json(account))
}

pub async fn delete_account(
    Admin(admin): Admin,
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
) -> ApiResult<StatusCode> {
    accounts::delete(&state.pool, &admin, &name).await?;
    tracing::info!(by = %admin.name, account = %name, "account deleted");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_members(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams(org): PathParams<String>,
    query: QueryPairs,
) -> ApiResult<Json<Value>> {
    let page = page_request(&query.only(&PAGING)?)?;
    let members = orgs::members(&state.pool, &actor, &org, &page).await?;
    Ok(page_json("members", members))
}

pub async fn put_member(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams((org, member)): PathParams<(String, String)>,
    OptionalJsonBody(body): OptionalJsonBody,
) -> ApiResult<Json<Member>> {
    let membership = orgs::put_member(&state.pool, &actor, &org, &member, body).await?;
    tracing::info!(by = %actor.name, org = %org, member = %member, is_admin = membership.is_admin, "org member set");
    Ok(Json(membership))
}

pub async fn delete_member(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    PathParams((org, member)): PathParams<(String, String)>,
) -> ApiResult<StatusCode> {
    orgs::remove_member(&state.pool, &actor, &org, &member).await?;
    tracing::info!(by = %actor.name, org = %org, member = %member, "org member removed");
    Ok(StatusCode::NO_CONTENT)
}
