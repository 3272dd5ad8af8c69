//! HTTP only: routing, extractors, auth, and MSR's error shape for every
//! rejection. Handlers call into the domain modules, which never see axum.

mod accounts;
pub mod auth;
mod backups;
mod distribution;
pub mod extract;
mod health;
mod imagescan;
mod jobs;
mod registry;
mod repositories;
pub mod request_id;
mod settings;
mod tags;
mod teams;
mod trust;

use std::any::Any;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use sqlx::PgPool;
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::ApiError;
use crate::storage::Storage;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Registry content: blobs and manifests.
    pub storage: Storage,
    /// Where backup jobs write their archives.
    pub backups: Storage,
    /// Sends e-mail through the SMTP settings.
    pub notifier: crate::notify::Notifier,
}

/// One method on one path. The router is built from [`routes`] alone, so the
/// OpenAPI contract test can compare the spec against exactly what is served.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

impl Route {
    /// A body limit for this route alone, in place of `MSR_MAX_BODY_BYTES`:
    /// the limit set closest to the handler is the one that applies.
    pub(crate) fn with_body_limit(mut self, bytes: usize) -> Self {
        self.handler = self.handler.layer(DefaultBodyLimit::max(bytes));
        self
    }
}

pub(crate) fn route<H, T>(method: Method, path: &'static str, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("routes use standard methods");
    Route {
        method,
        path,
        handler: on(filter, handler),
    }
}

/// Every route, gathered from the resource modules (each has `routes()`).
pub fn routes() -> Vec<Route> {
    let mut routes = health::routes();
    routes.extend(settings::routes());
    routes.extend(backups::routes());
    routes.extend(jobs::routes());
    routes.extend(distribution::routes());
    routes.extend(tags::routes());
    routes.extend(trust::routes());
    routes.extend(imagescan::routes());
    routes.extend(accounts::routes());
    routes.extend(teams::routes());
    routes.extend(repositories::routes());
    routes
}

pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.handler)
        })
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(axum::middleware::from_fn(request_id::middleware))
}

async fn no_such_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NO_SUCH_ROUTE", "no such API route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this route does not accept that method; the Allow header lists those it does",
    )
}

fn panicked(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    ApiError::internal(format_args!("handler panicked: {message}")).into_response()
}
