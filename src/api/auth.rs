//! HTTP Basic authentication against the accounts table, as MSR does.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine as _;

use super::AppState;
use crate::error::ApiError;
use crate::registry::accounts::{self, Account};

/// Any authenticated, active account.
pub struct Authenticated(pub Account);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticated(parts, state).await.map(Authenticated)
    }
}

/// An authenticated, active admin. Settings, jobs and backups need one.
pub struct Admin(pub Account);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let account = authenticated(parts, state).await?;
        if !account.is_admin {
            return Err(ApiError::not_authorized(
                "this operation needs an admin account",
            ));
        }
        Ok(Admin(account))
    }
}

pub(crate) async fn authenticated(parts: &Parts, state: &AppState) -> Result<Account, ApiError> {
    let Some(header) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::not_authenticated(
            "authentication required: send HTTP Basic credentials",
        ));
    };
    let (name, password) = header.to_str().ok().and_then(parse_basic).ok_or_else(|| {
        ApiError::not_authenticated("the Authorization header is not valid HTTP Basic")
    })?;
    match accounts::authenticate(&state.pool, &name, password).await? {
        Some(account) if account.is_active => Ok(account),
        Some(_) => Err(ApiError::not_authenticated("this account is deactivated")),
        None => Err(ApiError::not_authenticated("invalid username or password")),
    }
}

fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (name, password) = decoded.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::parse_basic;

    #[test]
    fn basic_credentials() {
        // "admin:pa:ss" — a password may contain colons, a name may not.
        assert_eq!(
            parse_basic("Basic YWRtaW46cGE6c3M="),
            Some(("admin".into(), "pa:ss".into()))
        );
        assert_eq!(
            parse_basic("basic YWRtaW46"),
            Some(("admin".into(), "".into()))
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic("Basic YWRtaW4="), None);
    }
}
