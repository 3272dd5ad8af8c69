//! `/api/v0/meta/backups`: the catalog of backups that jobs wrote to the
//! backup storage, and `/api/v0/meta/backups/new`, a fresh archive as the
//! response body, so a backup can be taken with curl alone. Admin-only.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use chrono::Utc;
use futures::StreamExt as _;
use serde::Serialize;
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use super::auth::Admin;
use super::extract::{PathParams, QueryPairs};
use super::{AppState, Route, route};
use crate::backup::catalog::{self, Backup};
use crate::backup::progress::Progress;
use crate::backup::write::write_archive;
use crate::backup::{Kind, Options};
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Vec<Route> {
    vec![
        route(Method::GET, "/api/v0/meta/backups", list_backups),
        route(Method::GET, "/api/v0/meta/backups/new", new_backup),
        route(Method::GET, "/api/v0/meta/backups/{id}", get_backup),
        route(Method::DELETE, "/api/v0/meta/backups/{id}", delete_backup),
        route(
            Method::GET,
            "/api/v0/meta/backups/{id}/archive",
            backup_archive,
        ),
    ]
}

#[derive(Serialize)]
struct Backups {
    backups: Vec<Backup>,
}

fn no_such_backup(id: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NO_SUCH_BACKUP",
        format!("no backup with id {id}"),
    )
}

fn backup_id(text: &str) -> ApiResult<Uuid> {
    text.parse()
        .map_err(|_| no_such_backup(format_args!("{text:?}")))
}

async fn list_backups(
    _: Admin,
    State(state): State<AppState>,
    query: QueryPairs,
) -> ApiResult<Json<Backups>> {
    query.only(&[])?;
    Ok(Json(Backups {
        backups: catalog::list(&state.pool).await?,
    }))
}

async fn get_backup(
    _: Admin,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Backup>> {
    let id = backup_id(&id)?;
    catalog::get(&state.pool, id)
        .await?
        .map(Json)
        .ok_or_else(|| no_such_backup(id))
}

async fn delete_backup(
    Admin(admin): Admin,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<StatusCode> {
    let id = backup_id(&id)?;
    if !catalog::delete(&state.pool, &state.backups, id).await? {
        return Err(no_such_backup(id));
    }
    tracing::info!(backup = %id, by = %admin.name, "backup deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The stored archive, as written.
async fn backup_archive(
    _: Admin,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Response> {
    let id = backup_id(&id)?;
    let backup = catalog::get(&state.pool, id)
        .await?
        .ok_or_else(|| no_such_backup(id))?;
    let stream = state
        .backups
        .read(&backup.key, crate::storage::READ_CHUNK)
        .await
        .map_err(|err| ApiError::internal(format_args!("backup storage: {err}")))?
        .ok_or_else(|| {
            ApiError::internal(format_args!(
                "backup {id} is listed but {} is missing from {}",
                backup.key,
                state.backups.location()
            ))
        })?;
    let name = format!(
        "msr-backup-{}-{}.tar",
        backup.kind,
        backup.created.format("%Y%m%dT%H%M%SZ")
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .header(header::CONTENT_LENGTH, backup.size)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .body(Body::from_stream(stream))
        .map_err(|err| ApiError::internal(format_args!("building the response: {err}")))
}

/// Bytes buffered between the archive writer and the response: enough to
/// keep both sides busy, small enough that a slow client holds little.
const PIPE_BYTES: usize = 1 << 20;

async fn new_backup(
    Admin(admin): Admin,
    State(state): State<AppState>,
    query: QueryPairs,
) -> ApiResult<Response> {
    let query = query.only(&["fullBackup", "ignoreScanData"])?;
    let options = Options {
        kind: if query.flag("fullBackup")? {
            Kind::Full
        } else {
            Kind::Metadata
        },
        ignore_scan_data: query.flag("ignoreScanData")?,
    };
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(|err| ApiError::internal(format_args!("database: {err}")))?;
    let (pipe_writer, pipe_reader) = tokio::io::duplex(PIPE_BYTES);
    let (outcome_tx, outcome) = tokio::sync::oneshot::channel::<bool>();
    let storage = state.storage.clone();
    let user = admin.name.clone();
    tokio::spawn(async move {
        let progress = Progress::hidden();
        let written =
            write_archive(&mut conn, Some(&storage), options, pipe_writer, &progress).await;
        match &written {
            Ok(written) => tracing::info!(
                kind = %options.kind,
                bytes = written.bytes,
                rows = written.description.rows(),
                by = %user,
                "backup downloaded"
            ),
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), by = %user, "backup download failed")
            }
        }
        let _ = outcome_tx.send(written.is_ok());
    });
    // A writer that failed part way must not look like a complete download:
    // the body ends in an error, so the connection is cut instead of closed
    // cleanly, and curl reports a failed transfer.
    let trailer = futures::stream::once(async move {
        match outcome.await {
            Ok(true) => None,
            _ => Some(Err(std::io::Error::other(
                "the backup failed part way; see the server log",
            ))),
        }
    })
    .filter_map(std::future::ready);
    let body = ReaderStream::with_capacity(pipe_reader, 64 << 10).chain(trailer);
    let name = format!(
        "msr-backup-{}-{}.tar",
        options.kind,
        Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .body(Body::from_stream(body))
        .map_err(|err| ApiError::internal(format_args!("building the response: {err}")))
}
