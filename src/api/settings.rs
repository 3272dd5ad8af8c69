//! `/api/v0/meta/settings/{backup,smtp}`: admin-only.

use axum::Json;
use axum::extract::State;
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use axum::http::{Method, StatusCode};

use super::auth::Admin;
use super::extract::JsonBody;
use super::{AppState, Route, route};
use crate::error::{ApiError, ApiResult};
use crate::notify;
use crate::registry::{Invalid, parse_body};
use crate::settings::UpdateError;
use crate::settings::backup::{self, BackupSettings};
use crate::settings::smtp::{self, SmtpView};

/// How many upcoming schedule times GET reports.
const NEXT_RUNS: usize = 5;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupView {
    #[serde(flatten)]
    settings: BackupSettings,
    /// RFC 3339 UTC.
    next_runs: Vec<String>,
}

impl From<BackupSettings> for BackupView {
    fn from(settings: BackupSettings) -> Self {
        let next_runs = settings
            .next_runs(Utc::now(), NEXT_RUNS)
            .into_iter()
            .map(|time| time.to_rfc3339_opts(SecondsFormat::Secs, true))
            .collect();
        Self {
            settings,
            next_runs,
        }
    }
}

impl From<UpdateError> for ApiError {
    fn from(err: UpdateError) -> Self {
        match err {
            UpdateError::Invalid(invalid) => ApiError::invalid_settings(invalid.to_string())
                .with_detail(json!({ "field": invalid.field })),
            UpdateError::Database(err) => err.into(),
        }
    }
}

pub(super) fn routes() -> Vec<Route> {
    const BACKUP: &str = "/api/v0/meta/settings/backup";
    const SMTP: &str = "/api/v0/meta/settings/smtp";
    vec![
        route(Method::GET, BACKUP, get_backup),
        route(Method::PUT, BACKUP, put_backup),
        route(Method::GET, SMTP, get_smtp),
        route(Method::PUT, SMTP, put_smtp),
        route(Method::POST, "/api/v0/meta/settings/smtp/test", test_smtp),
    ]
}

pub async fn get_backup(_: Admin, State(state): State<AppState>) -> ApiResult<Json<BackupView>> {
    Ok(Json(backup::get(&state.pool).await?.into()))
}

pub async fn put_backup(
    Admin(admin): Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<BackupView>> {
    let settings = backup::update(&state.pool, body).await?;
    tracing::info!(by = %admin.name, enabled = settings.enabled, schedule = %settings.schedule, "backup settings updated");
    Ok(Json(settings.into()))
}

pub async fn get_smtp(_: Admin, State(state): State<AppState>) -> ApiResult<Json<SmtpView>> {
    Ok(Json(SmtpView::from(&smtp::get(&state.pool).await?)))
}

pub async fn put_smtp(
    Admin(admin): Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<SmtpView>> {
    let settings = smtp::update(&state.pool, body).await?;
    tracing::info!(by = %admin.name, enabled = settings.enabled, server = %settings.server_address, "SMTP settings updated");
    Ok(Json(SmtpView::from(&settings)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestMail {
    to: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TestMailSent {
    to: String,
    /// What the SMTP server answered to the message, e.g. `250 2.0.0 Ok: queued`.
    server_response: String,
}

/// Sends a test message through the stored SMTP settings (enabled or not),
/// so they can be checked before backups rely on them.
async fn test_smtp(
    Admin(admin): Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<TestMailSent>> {
    let request: TestMail = parse_body(body)?;
    let to: lettre::Address = request
        .to
        .trim()
        .parse()
        .map_err(|err| Invalid::new("to", format!("not an e-mail address: {err}")))?;
    let settings = smtp::get(&state.pool).await?;
    let subject = format!("[msr {}] SMTP test", state.notifier.instance);
    let body = format!(
        "This is a test message from msr on {}, sent by {} to check the SMTP settings \
         (server {}:{}, security {:?}).\n",
        state.notifier.instance,
        admin.name,
        settings.server_address,
        settings.server_port,
        settings.security
    );
    match state.notifier.send(&settings, &to, &subject, body).await {
        Ok(server_response) => {
            tracing::info!(by = %admin.name, %to, "SMTP test message sent");
            Ok(Json(TestMailSent {
                to: to.to_string(),
                server_response,
            }))
        }
        Err(notify::SendError::Settings(message)) => Err(ApiError::invalid_settings(message)),
        Err(err) => {
            tracing::warn!(by = %admin.name, %to, error = %err, "SMTP test message failed");
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "SMTP_FAILED",
                format!("the SMTP server did not take the message: {err}"),
            ))
        }
    }
}
