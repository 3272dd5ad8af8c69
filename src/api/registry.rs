//! What the registry resources (trust data, scans) share: finding a
//! repository the caller may use, and turning domain refusals into MSR
//! errors.

use axum::http::StatusCode;
use serde_json::json;

use super::AppState;
use crate::error::ApiError;
use crate::registry::access::{self, AccessLevel};
use crate::registry::accounts::Account;
use crate::registry::invalid::BodyError;
use crate::registry::repositories::{self, Repository};

impl From<BodyError> for ApiError {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::Syntax(_) => ApiError::invalid_json(err.to_string()),
            BodyError::Invalid(invalid) => invalid.into(),
        }
    }
}

pub(super) fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, code, message)
}

fn no_such_repository(namespace: &str, name: &str) -> ApiError {
    not_found(
        "NO_SUCH_REPOSITORY",
        format!("repository {namespace}/{name} does not exist"),
    )
    .with_detail(json!({ "namespace": namespace, "reponame": name }))
}

/// The repository `namespace/name` if `account` has at least `needed` on it.
/// A repository the account cannot even read is reported as unknown, so its
/// existence does not leak; one it can read but not change is a 403.
pub(super) async fn repository(
    state: &AppState,
    account: &Account,
    namespace: &str,
    name: &str,
    needed: AccessLevel,
) -> Result<Repository, ApiError> {
    let repository = repositories::find(&state.pool, namespace, name)
        .await?
        .ok_or_else(|| no_such_repository(namespace, name))?;
    let level = access::repository_access(&state.pool, account, repository.id).await?;
    if !level.can_read() {
        return Err(no_such_repository(namespace, name));
    }
    if level < needed {
        return Err(ApiError::not_authorized(format!(
            "this operation needs {} access to {namespace}/{name}; you have {}",
            needed.as_str(),
            level.as_str()
        )));
    }
    Ok(repository)
}
