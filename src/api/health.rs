//! Liveness and readiness. Neither needs credentials; neither says more than
//! up or down, since anyone can call them.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use axum::http::Method;

use super::{AppState, Route, route};

/// Long enough for a loaded database, short enough for a load balancer probe.
const DATABASE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn routes() -> Vec<Route> {
    vec![
        route(Method::GET, "/_ping", ping),
        route(Method::GET, "/health", health),
    ]
}

pub async fn ping() -> &'static str {
    "OK"
}

#[derive(Serialize)]
pub struct Health {
    healthy: bool,
    database: &'static str,
}

pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let check = sqlx::query("SELECT 1").execute(&state.pool);
    let database_up = match tokio::time::timeout(DATABASE_CHECK_TIMEOUT, check).await {
        Ok(Ok(_)) => true,
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "health check: database down");
            false
        }
        Err(_) => {
            tracing::warn!(timeout = ?DATABASE_CHECK_TIMEOUT, "health check: database did not answer");
            false
        }
    };
    let status = if database_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Health {
            healthy: database_up,
            database: if database_up { "up" } else { "down" },
        }),
    )
}
