//! MSR's job runner API: `/api/v0/jobs`, `/api/v0/crons`, `/api/v0/workers`.
//! Admin-only.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::auth::Admin;
use super::extract::{JsonBody, PathParams, QueryPairs};
use super::{AppState, Route, route};
use crate::duration::GoDuration;
use crate::error::{ApiError, ApiResult};
use crate::jobs::{self, Action, Filter, Job, NewJob, backup, purge, scheduler, worker};
use crate::registry::{Invalid, parse_body, present, time};
use crate::settings;

pub(super) fn routes() -> Vec<Route> {
    vec![
        route(Method::GET, "/api/v0/jobs", list_jobs),
        route(Method::POST, "/api/v0/jobs", create_job),
        route(Method::GET, "/api/v0/jobs/{id}", get_job),
        route(Method::DELETE, "/api/v0/jobs/{id}", delete_job),
        route(Method::POST, "/api/v0/jobs/{id}/cancel", cancel_job),
        route(Method::GET, "/api/v0/jobs/{id}/logs", job_logs),
        route(Method::GET, "/api/v0/crons", list_crons),
        route(Method::GET, "/api/v0/crons/{action}", get_cron),
        route(Method::GET, "/api/v0/workers", list_workers),
    ]
}

fn no_such_job(id: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NO_SUCH_JOB",
        format!("no job with id {id}"),
    )
}

/// A job id from the path; one that is not a UUID names no job.
fn job_id(text: &str) -> ApiResult<Uuid> {
    text.parse()
        .map_err(|_| no_such_job(format_args!("{text:?}")))
}

#[derive(Serialize)]
struct Jobs {
    jobs: Vec<Job>,
}

/// The largest page of jobs.
const MAX_LIMIT: i64 = 1000;

async fn list_jobs(
    _: Admin,
    State(state): State<AppState>,
    query: QueryPairs,
) -> ApiResult<Json<Jobs>> {
    let query = query.only(&["action", "worker", "running", "start", "limit"])?;
    let any = |name: &str| {
        query
            .get(name)
            .filter(|value| *value != "any" && !value.is_empty())
            .map(str::to_owned)
    };
    let running = match query.get("running") {
        None | Some("any") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(Invalid::new(
                "running",
                format!("must be any, true or false, got {other:?}"),
            )
            .into());
        }
    };
    let action = match any("action") {
        Some(action) => Some(
            action
                .parse::<Action>()
                .map_err(|message| Invalid::new("action", message))?
                .as_str()
                .to_owned(),
        ),
        None => None,
    };
    let worker = any("worker");
    if let Some(worker) = &worker
        && !worker_id_shape(worker)
    {
        return Err(Invalid::new(
            "worker",
            format!("must be any or a worker id (12 hexadecimal digits), got {worker:?}"),
        )
        .into());
    }
    let filter = Filter {
        action,
        worker,
        running,
        start: query.number("start", 0, 0, i64::MAX / 2)?,
        limit: query.number("limit", 10, 1, MAX_LIMIT)?,
    };
    Ok(Json(Jobs {
        jobs: jobs::list(&state.pool, &filter).await?,
    }))
}

fn worker_id_shape(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// POST /api/v0/jobs: MSR's fields; unknown ones are refused.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JobRequest {
    action: String,
    #[serde(default, deserialize_with = "present")]
    parameters: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "present")]
    retries: Option<u16>,
    #[serde(default, deserialize_with = "present")]
    capacity_map: Option<BTreeMap<String, u32>>,
    #[serde(default, deserialize_with = "present")]
    deadline: Option<String>,
    #[serde(default, deserialize_with = "present")]
    stop_timeout: Option<String>,
    #[serde(default, deserialize_with = "present")]
    scheduled_at: Option<String>,
}

fn optional_duration(field: &str, text: Option<&str>) -> Result<Option<GoDuration>, Invalid> {
    match text {
        None | Some("") => Ok(None),
        Some(text) => {
            let duration: GoDuration =
                text.parse()
                    .map_err(|err: crate::duration::ParseDurationError| {
                        Invalid::new(field, err.to_string())
                    })?;
            if !duration.is_positive() {
                return Err(Invalid::new(
                    field,
                    format!("must be positive, got {duration}"),
                ));
            }
            Ok(Some(duration))
        }
    }
}

async fn create_job(
    Admin(admin): Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let request: JobRequest = parse_body(body)?;
    let action: Action = request
        .action
        .parse()
        .map_err(|message: String| Invalid::new("action", message))?;
    let scheduled_at = match request.scheduled_at.as_deref() {
        None | Some("") => Utc::now(),
        Some(text) => time::parse(text).ok_or_else(|| {
            Invalid::new(
                "scheduledAt",
                format!("must be an RFC 3339 time such as 2026-01-02T03:04:05Z, got {text:?}"),
            )
        })?,
    };
    let mut deadline = optional_duration("deadline", request.deadline.as_deref())?;
    let stop_timeout = optional_duration("stopTimeout", request.stop_timeout.as_deref())?;
    let mut parameters = request.parameters.unwrap_or_default();
    match action {
        Action::Backup => {
            // What the request leaves open comes from the backup settings,
            // so a manual backup is the same kind as the scheduled ones.
            let settings = settings::backup::get(&state.pool).await?;
            parameters
                .entry("fullBackup".to_owned())
                .or_insert_with(|| settings.full_backup.to_string());
            if request.deadline.is_none() {
                deadline = settings.deadline;
            }
            known_parameters(&parameters, &["fullBackup", "ignoreScanData"], action)?;
        }
        Action::BackupPurge => {
            known_parameters(&parameters, &["duration"], action)?;
        }
    }
    if let Some(map) = &request.capacity_map
        && let Some(name) = map.keys().find(|name| !capacity_name(name))
    {
        return Err(Invalid::new(
            "capacityMap",
            format!("{name:?} is not a capacity name (1 to 100 printable characters)"),
        )
        .into());
    }
    let new = NewJob {
        action,
        parameters: Some(json!(parameters)),
        capacity_map: request.capacity_map.map(|map| json!(map)),
        retries: request.retries.map_or(0, i32::from),
        deadline,
        stop_timeout,
        scheduled_at,
    };
    // Checked the way the job will read them, so that a job that cannot
    // run is refused now rather than failing later.
    match action {
        Action::Backup => {
            backup::options(new.parameters.as_ref())
                .map_err(|err| Invalid::new("parameters", err.to_string()))?;
        }
        Action::BackupPurge => {
            purge::duration(&state.pool, new.parameters.as_ref())
                .await
                .map_err(|err| Invalid::new("parameters.duration", err.to_string()))?;
        }
    }
    let job = jobs::enqueue(&state.pool, new).await?;
    tracing::info!(job = %job.id, action = %job.action, by = %admin.name, "job created");
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
}

fn capacity_name(name: &str) -> bool {
    (1..=100).contains(&name.chars().count()) && !name.chars().any(char::is_control)
}

fn known_parameters(
    parameters: &BTreeMap<String, String>,
    known: &[&str],
    action: Action,
) -> Result<(), Invalid> {
    match parameters
        .keys()
        .find(|name| !known.contains(&name.as_str()))
    {
        Some(name) => Err(Invalid::new(
            format!("parameters.{name}"),
            format!("unknown parameter; {action} takes {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

async fn get_job(
    _: Admin,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Job>> {
    let id = job_id(&id)?;
    jobs::get(&state.pool, id)
        .await?
        .map(Json)
        .ok_or_else(|| no_such_job(id))
}

async fn cancel_job(
    Admin(admin): Admin,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<StatusCode> {
    let id = job_id(&id)?;
    if !jobs::cancel(&state.pool, id).await? {
        return Err(no_such_job(id));
    }
    tracing::info!(job = %id, by = %admin.name, "job cancel requested");
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_job(
    Admin(admin): Admin,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<StatusCode> {
    let id = job_id(&id)?;
    if !jobs::cancel(&state.pool, id).await? || !jobs::delete(&state.pool, id).await? {
        return Err(no_such_job(id));
    }
    tracing::info!(job = %id, by = %admin.name, "job deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// How often a streamed log looks for new lines.
const LOG_POLL: Duration = Duration::from_millis(250);
/// Lines per page of a log, and the default page.
const MAX_LOG_LINES: i64 = 10_000;

async fn job_logs(
    _: Admin,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    query: QueryPairs,
) -> ApiResult<Response> {
    let id = job_id(&id)?;
    let query = query.only(&["offset", "limit", "stream"])?;
    let offset = query.number("offset", 0, 0, i64::from(i32::MAX))?;
    let limit = query.number("limit", MAX_LOG_LINES, 1, MAX_LOG_LINES)?;
    let stream = query.flag("stream")?;
    if jobs::get(&state.pool, id).await?.is_none() {
        return Err(no_such_job(id));
    }
    if !stream {
        return Ok(Json(jobs::logs(&state.pool, id, offset, limit).await?).into_response());
    }
    // One JSON object per line, as each is written, until the job has
    // ended and every line was sent (or `limit` lines were).
    let pool = state.pool.clone();
    let lines = futures::stream::unfold(
        (pool, offset, limit, false),
        move |(pool, next, left, ended)| async move {
            if left == 0 || ended {
                return None;
            }
            loop {
                let status = jobs::get(&pool, id)
                    .await
                    .ok()
                    .flatten()
                    .map(|job| job.status);
                let batch = match jobs::logs(&pool, id, next, left.min(1000)).await {
                    Ok(batch) => batch,
                    Err(err) => {
                        return Some((Err(std::io::Error::other(err)), (pool, next, 0, true)));
                    }
                };
                if !batch.is_empty() {
                    let sent = batch.len() as i64;
                    let next = batch
                        .last()
                        .map_or(next, |line| i64::from(line.line_num) + 1);
                    let mut chunk = Vec::new();
                    for line in &batch {
                        serde_json::to_writer(&mut chunk, line).expect("a log line serialises");
                        chunk.push(b'\n');
                    }
                    return Some((Ok(chunk), (pool, next, left - sent, false)));
                }
                // Gone, or ended with every line read: the stream is complete.
                if status.is_none_or(|status| status.is_final()) {
                    return None;
                }
                tokio::time::sleep(LOG_POLL).await;
            }
        },
    )
    .boxed();
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(lines))
        .map_err(|err| ApiError::internal(format_args!("building the response: {err}")))
}

/// A cron, in MSR's shape: one per action that runs on a schedule.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cron {
    id: Uuid,
    action: &'static str,
    schedule: String,
    retries: i32,
    capacity_map: Option<Value>,
    parameters: Value,
    deadline: String,
    stop_timeout: String,
    #[serde(serialize_with = "time::rfc3339")]
    next_run: DateTime<Utc>,
}

#[derive(Serialize)]
struct Crons {
    crons: Vec<Cron>,
}

/// Fixed, so that a cron keeps its id across replicas and restarts.
const BACKUP_CRON_ID: Uuid = Uuid::from_u128(0x6d73_725f_6261_636b_7570_0000_0000_0001);

/// Purges run after each successful backup, so their cron is the backup's.
const BACKUP_PURGE_CRON_ID: Uuid = Uuid::from_u128(0x6d73_725f_6261_636b_7570_0000_0000_0002);

async fn crons(state: &AppState) -> ApiResult<Vec<Cron>> {
    let settings = settings::backup::get(&state.pool).await?;
    let Some(next_run) = scheduler::next_run(&settings, Utc::now()) else {
        return Ok(Vec::new());
    };
    let deadline = settings.deadline.map(|d| d.to_string()).unwrap_or_default();
    let mut crons = vec![Cron {
        id: BACKUP_CRON_ID,
        action: Action::Backup.as_str(),
        schedule: settings.schedule.clone(),
        retries: 0,
        capacity_map: None,
        parameters: json!({ "fullBackup": settings.full_backup.to_string() }),
        deadline,
        stop_timeout: String::new(),
        next_run,
    }];
    if let Some(duration) = settings.purge.duration.filter(|_| settings.purge.enabled) {
        crons.push(Cron {
            id: BACKUP_PURGE_CRON_ID,
            action: Action::BackupPurge.as_str(),
            schedule: settings.schedule.clone(),
            retries: 0,
            capacity_map: None,
            parameters: json!({ "duration": duration.to_string() }),
            deadline: String::new(),
            stop_timeout: String::new(),
            next_run,
        });
    }
    Ok(crons)
}

async fn list_crons(
    _: Admin,
    State(state): State<AppState>,
    query: QueryPairs,
) -> ApiResult<Json<Crons>> {
    query.only(&[])?;
    Ok(Json(Crons {
        crons: crons(&state).await?,
    }))
}

async fn get_cron(
    _: Admin,
    State(state): State<AppState>,
    PathParams(action): PathParams<String>,
) -> ApiResult<Json<Cron>> {
    crons(&state)
        .await?
        .into_iter()
        .find(|cron| cron.action == action)
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NO_SUCH_CRON",
                format!("no cron for action {action:?} (backup has one while backups are enabled)"),
            )
        })
}

#[derive(Serialize)]
struct Workers {
    workers: Vec<worker::WorkerView>,
}

async fn list_workers(
    _: Admin,
    State(state): State<AppState>,
    query: QueryPairs,
) -> ApiResult<Json<Workers>> {
    query.only(&[])?;
    Ok(Json(Workers {
        workers: worker::list(&state.pool).await?,
    }))
}
