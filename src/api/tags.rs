//! `GET /api/v0/repositories/{namespace}/{reponame}/tags`: each tag with the
//! manifest metadata recorded at push time, in DTR's shape.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Method;
use chrono::SecondsFormat;
use serde_json::{Value, json};

use super::auth::Authenticated;
use super::{AppState, Route, route};
use crate::error::ApiResult;
use crate::registry::access::AccessLevel;
use crate::registry::manifests;

pub(super) fn routes() -> Vec<Route> {
    vec![route(
        Method::GET,
        "/api/v0/repositories/{namespace}/{reponame}/tags",
        list_tags,
    )]
}

async fn list_tags(
    Authenticated(account): Authenticated,
    State(state): State<AppState>,
    Path((namespace, reponame)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Value>>> {
    let repository = super::registry::repository(
        &state,
        &account,
        &namespace,
        &reponame,
        AccessLevel::ReadOnly,
    )
    .await?;
    let time = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let tags = manifests::tags(&state.pool, repository.id)
        .await?
        .into_iter()
        .map(|tag| {
            json!({
                "name": tag.name,
                "digest": tag.digest,
                "author": tag.pushed_by,
                "createdAt": time(tag.created_at),
                "updatedAt": time(tag.updated_at),
                "manifest": {
                    "digest": tag.digest,
                    "mediaType": tag.media_type,
                    "configMediaType": tag.config_media_type,
                    "artifactType": tag.artifact_type,
                    "os": tag.os,
                    "architecture": tag.architecture,
                    "size": tag.size,
                    "createdAt": time(tag.pushed_at),
                },
            })
        })
        .collect();
    Ok(Json(tags))
}
