//! Extractors whose rejections are MSR error bodies instead of axum's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// A JSON request body, parsed but not yet typed: the domain module turns it
/// into its own type so that it can name the offending field itself.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(&request) {
            return Err(unsupported_media_type());
        }
        parse(&read(request, state).await?).map(JsonBody)
    }
}

/// A JSON body that may be left out (`None` for an empty body, whatever its
/// content type), for PUTs whose body only carries optional settings.
pub struct OptionalJsonBody(pub Option<Value>);

impl<S: Send + Sync> FromRequest<S> for OptionalJsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = is_json(&request);
        let bytes = read(request, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalJsonBody(None));
        }
        if !is_json {
            return Err(unsupported_media_type());
        }
        parse(&bytes).map(|value| OptionalJsonBody(Some(value)))
    }
}

/// The raw bytes of a body sent as JSON, for a domain module that parses
/// them itself: to keep them exactly as sent (signed Notary metadata), or to
/// read a large body straight into its own types.
pub struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(&request) {
            return Err(unsupported_media_type());
        }
        read(request, state).await.map(JsonBytes)
    }
}

fn is_json(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|essence| {
            let essence = essence.trim().to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        })
        .unwrap_or(false)
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
        "the request body must be JSON, sent with Content-Type: application/json",
    )
}

async fn read<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
            _ => ApiError::invalid_json(format!(
                "could not read the request body: {}",
                rejection.body_text()
            )),
        })
}

fn parse(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|err| ApiError::invalid_json(format!("the request body is not valid JSON: {err}")))
}

/// Path parameters, with MSR's error when they cannot be read (for example
/// percent-encoded bytes that are not UTF-8).
pub struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(params)) => Ok(PathParams(params)),
            Err(rejection) if rejection.status().is_client_error() => Err(
                ApiError::invalid_parameters(format!("path: {}", rejection.body_text())),
            ),
            Err(rejection) => Err(ApiError::internal(rejection.body_text())),
        }
    }
}

/// Query parameters, with MSR's error when they do not fit `T`.
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(params)| QueryParams(params))
            .map_err(|rejection| {
                ApiError::invalid_parameters(format!("query: {}", rejection.body_text()))
            })
    }
}

/// The query string as name/value pairs, for routes that check each
/// parameter themselves; [`QueryParams`] when a type describes them.
pub struct QueryPairs(pub Vec<(String, String)>);

impl QueryPairs {
    /// Refuses parameters outside `known`, as bodies refuse unknown fields:
    /// a misspelt `limit` should not silently mean the default.
    pub fn only(self, known: &[&str]) -> Result<Self, ApiError> {
        if let Some((name, _)) = self
            .0
            .iter()
            .find(|(name, _)| !known.contains(&name.as_str()))
        {
            return Err(ApiError::from(crate::registry::Invalid::new(
                name.clone(),
                format!(
                    "unknown query parameter; this route takes {}",
                    known.join(", ")
                ),
            )));
        }
        Ok(self)
    }

    /// The first value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// `name` as a whole number in `min..=max`, `default` when not given.
    pub fn number(
        &self,
        name: &str,
        default: i64,
        min: i64,
        max: i64,
    ) -> Result<i64, crate::registry::Invalid> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    crate::registry::Invalid::new(
                        name,
                        format!("must be a whole number from {min} to {max}, got {text:?}"),
                    )
                }),
        }
    }

    /// `name` as `true` or `false`, false when not given.
    pub fn flag(&self, name: &str) -> Result<bool, crate::registry::Invalid> {
        match self.get(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(crate::registry::Invalid::new(
                name,
                format!("must be true or false, got {other:?}"),
            )),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|Query(pairs)| QueryPairs(pairs))
            .map_err(|rejection| {
                ApiError::invalid_parameters(format!(
                    "the query string cannot be read: {}",
                    rejection.body_text()
                ))
            })
    }
}

pub fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "REQUEST_TOO_LARGE",
        "the request body is larger than this server accepts",
    )
}
