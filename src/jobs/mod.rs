//! MSR's job runner: the `jobs` table and its log, the replicas that claim
//! and run jobs ([`worker`]), and the scheduler that enqueues backups on
//! the settings' schedule ([`scheduler`]).
//!
//! PostgreSQL is the only coordinator. A scheduled job is keyed by
//! `(action, occurrence)`, so however many replicas see a tick, one job
//! exists; a partial unique index lets only one job per action run at a
//! time; replicas claim with `FOR UPDATE SKIP LOCKED` and wake on
//! `NOTIFY msr_jobs`.

pub mod backup;
pub mod purge;
pub mod scheduler;
pub mod worker;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::duration::GoDuration;
use crate::registry::time;

/// The channel replicas listen on for new and canceled jobs.
pub const NOTIFY_CHANNEL: &str = "msr_jobs";

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Write a backup archive to the backup storage.
    Backup,
    /// Delete stored backups older than the purge duration.
    BackupPurge,
}

impl Action {
    pub const ALL: &[Action] = &[Action::Backup, Action::BackupPurge];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Backup => "backup",
            Action::BackupPurge => "backup_purge",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .iter()
            .copied()
            .find(|action| action.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<_> = Action::ALL.iter().map(|a| a.as_str()).collect();
                format!(
                    "unknown action {name:?}; known actions: {}",
                    known.join(", ")
                )
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, Serialize)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Waiting,
    Running,
    Done,
    Errored,
    Canceled,
}

impl Status {
    pub fn is_final(self) -> bool {
        matches!(self, Status::Done | Status::Errored | Status::Canceled)
    }
}

/// A job, in MSR's shape.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: Uuid,
    #[serde(rename = "retryFromID")]
    pub retry_from_id: Uuid,
    /// `""` while unclaimed, as MSR reports it.
    #[serde(rename = "workerID", serialize_with = "empty_if_none")]
    pub worker_id: Option<String>,
    pub status: Status,
    #[serde(serialize_with = "time::rfc3339")]
    pub scheduled_at: DateTime<Utc>,
    #[serde(serialize_with = "time::rfc3339")]
    pub last_updated: DateTime<Utc>,
    pub action: String,
    pub retries_left: i32,
    pub retries_total: i32,
    pub capacity_map: Option<Value>,
    pub parameters: Option<Value>,
    pub deadline: String,
    pub stop_timeout: String,
    #[serde(skip)]
    pub occurrence: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub cancel_requested: bool,
    #[serde(skip)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub ended_at: Option<DateTime<Utc>>,
}

fn empty_if_none<S: serde::Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value.as_deref().unwrap_or(""))
}

impl Job {
    /// A string parameter (MSR's parameters are an object of strings).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.as_ref()?.get(name)?.as_str()
    }

    /// The deadline as a duration from the job's start; `None` when unset.
    pub fn deadline(&self) -> Option<std::time::Duration> {
        parse_optional_duration(&self.deadline)
    }

    /// How long a stopped job may take to clean up; `None` when unset.
    pub fn stop_timeout(&self) -> Option<std::time::Duration> {
        parse_optional_duration(&self.stop_timeout)
    }
}

fn parse_optional_duration(text: &str) -> Option<std::time::Duration> {
    text.parse::<GoDuration>().ok()?.to_std()
}

const JOB_COLUMNS: &str = "id, retry_from_id, worker_id, status, scheduled_at, last_updated, \
     action, retries_left, retries_total, capacity_map, parameters, deadline, stop_timeout, \
     occurrence, cancel_requested, started_at, ended_at";

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub action: Action,
    pub parameters: Option<Value>,
    pub capacity_map: Option<Value>,
    pub retries: i32,
    pub deadline: Option<GoDuration>,
    pub stop_timeout: Option<GoDuration>,
    pub scheduled_at: DateTime<Utc>,
}

fn duration_text(duration: Option<GoDuration>) -> String {
    duration.map(|d| d.to_string()).unwrap_or_default()
}

/// Enqueues `job` to run at its `scheduled_at`, and wakes the replicas.
pub async fn enqueue(pool: &PgPool, job: NewJob) -> sqlx::Result<Job> {
    let mut tx = pool.begin().await?;
    let id = Uuid::new_v4();
    let job: Job = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO jobs (id, retry_from_id, status, scheduled_at, action, retries_left,
             retries_total, capacity_map, parameters, deadline, stop_timeout)
         VALUES ($1, $1, 'waiting', $2, $3, $4, $4, $5, $6, $7, $8)
         RETURNING {JOB_COLUMNS}"
    )))
    .bind(id)
    .bind(job.scheduled_at)
    .bind(job.action.as_str())
    .bind(job.retries)
    .bind(&job.capacity_map)
    .bind(&job.parameters)
    .bind(duration_text(job.deadline))
    .bind(duration_text(job.stop_timeout))
    .fetch_one(&mut *tx)
    .await?;
    wake(&mut tx).await?;
    tx.commit().await?;
    Ok(job)
}

/// What [`enqueue_occurrence`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// This call created the occurrence's job.
    Created { id: Uuid, skipped_for: Option<Uuid> },
    /// Another replica (or an earlier call) already had.
    Exists,
}

/// Enqueues the job for one occurrence of a schedule, unless one exists.
///
/// If a job of the same action is running or due (waiting, with its time
/// come; one set for later does not count), the
/// occurrence's job is recorded as `canceled` with a log line saying so,
/// rather than queued behind it: a backup never runs twice in parallel,
/// and a late one would only repeat the one in progress. `notes` are the
/// first log lines of a job that runs (say, which occurrences were missed).
pub async fn enqueue_occurrence(
    pool: &PgPool,
    job: NewJob,
    occurrence: DateTime<Utc>,
    notes: &[String],
) -> sqlx::Result<Enqueued> {
    let mut tx = pool.begin().await?;
    let busy: Option<(Uuid, Status)> = sqlx::query_as(
        "SELECT id, status FROM jobs
         WHERE action = $1 AND (status = 'running' OR (status = 'waiting' AND scheduled_at <= now()))
         ORDER BY scheduled_at LIMIT 1",
    )
    .bind(job.action.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let id = Uuid::new_v4();
    let status = if busy.is_some() {
        Status::Canceled
    } else {
        Status::Waiting
    };
    let inserted = sqlx::query(
        "INSERT INTO jobs (id, retry_from_id, status, scheduled_at, action, retries_left,
             retries_total, capacity_map, parameters, deadline, stop_timeout, occurrence,
             started_at, ended_at)
         VALUES ($1, $1, $2, $3, $4, $5, $5, $6, $7, $8, $9, $3,
             CASE WHEN $2 = 'canceled' THEN now() END, CASE WHEN $2 = 'canceled' THEN now() END)
         ON CONFLICT (action, occurrence) DO NOTHING",
    )
    .bind(id)
    .bind(status)
    .bind(occurrence)
    .bind(job.action.as_str())
    .bind(job.retries)
    .bind(&job.capacity_map)
    .bind(&job.parameters)
    .bind(duration_text(job.deadline))
    .bind(duration_text(job.stop_timeout))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(Enqueued::Exists);
    }
    let occurrence_text = time::format(&occurrence);
    let mut lines = Vec::new();
    match busy {
        Some((other, other_status)) => lines.push(format!(
            "skipped the {} occurrence of {occurrence_text}: {} job {other} was still {}; \
             a {} never runs twice in parallel",
            job.action,
            job.action,
            match other_status {
                Status::Waiting => "waiting to run",
                _ => "running",
            },
            job.action,
        )),
        None => {
            lines.push(format!("enqueued for the occurrence of {occurrence_text}"));
            lines.extend(notes.iter().cloned());
        }
    }
    for line in &lines {
        append_log_in(&mut tx, id, line).await?;
    }
    if status == Status::Waiting {
        wake(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(Enqueued::Created {
        id,
        skipped_for: busy.map(|(other, _)| other),
    })
}

async fn wake(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, 'job')")
        .bind(NOTIFY_CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

/// Enqueues the next attempt of a job that errored, if it has retries
/// left: a new job with the same `retryFromID` and one retry fewer.
/// Returns its id.
pub async fn retry(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Uuid>> {
    let mut tx = pool.begin().await?;
    let next = Uuid::new_v4();
    let left: Option<i32> = sqlx::query_scalar(
        "INSERT INTO jobs (id, retry_from_id, status, scheduled_at, action, retries_left,
             retries_total, capacity_map, parameters, deadline, stop_timeout)
         SELECT $2, retry_from_id, 'waiting', now(), action, retries_left - 1, retries_total,
             capacity_map, parameters, deadline, stop_timeout
         FROM jobs WHERE id = $1 AND status = 'errored' AND retries_left > 0
         RETURNING retries_left",
    )
    .bind(id)
    .bind(next)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(left) = left else {
        return Ok(None);
    };
    append_log_in(
        &mut tx,
        id,
        &format!("retrying as job {next} ({left} retries left after it)"),
    )
    .await?;
    wake(&mut tx).await?;
    tx.commit().await?;
    Ok(Some(next))
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub action: Option<String>,
    pub worker: Option<String>,
    pub running: Option<bool>,
    pub start: i64,
    pub limit: i64,
}

/// Jobs, most recently scheduled first.
pub async fn list(pool: &PgPool, filter: &Filter) -> sqlx::Result<Vec<Job>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM jobs
         WHERE ($1::text IS NULL OR action = $1)
           AND ($2::text IS NULL OR worker_id = $2)
           AND ($3::boolean IS NULL OR (status = 'running') = $3)
         ORDER BY scheduled_at DESC, id DESC
         OFFSET $4 LIMIT $5"
    )))
    .bind(&filter.action)
    .bind(&filter.worker)
    .bind(filter.running)
    .bind(filter.start)
    .bind(filter.limit)
    .fetch_all(pool)
    .await
}

pub async fn get(executor: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Job>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(executor)
    .await
}

/// Asks a job to stop: a waiting job is canceled at once, a running one
/// is stopped by its worker within moments. `false` if there is no such job.
pub async fn cancel(pool: &PgPool, id: Uuid) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let Some(status) =
        sqlx::query_scalar::<_, Status>("SELECT status FROM jobs WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
    else {
        return Ok(false);
    };
    match status {
        Status::Waiting => {
            sqlx::query(
                "UPDATE jobs SET status = 'canceled', cancel_requested = true,
                     last_updated = now(), ended_at = now() WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            append_log_in(&mut tx, id, "canceled before it started").await?;
        }
        Status::Running => {
            sqlx::query(
                "UPDATE jobs SET cancel_requested = true, last_updated = now() WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("SELECT pg_notify($1, 'cancel')")
                .bind(NOTIFY_CHANNEL)
                .execute(&mut *tx)
                .await?;
        }
        Status::Done | Status::Errored | Status::Canceled => {}
    }
    tx.commit().await?;
    Ok(true)
}

/// Deletes a job and its log. A running job is deleted too: its worker
/// finds it gone within moments and stops, discarding what it half wrote.
pub async fn delete(pool: &PgPool, id: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query("DELETE FROM jobs WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    pub data: String,
    pub line_num: i32,
}

pub async fn logs(pool: &PgPool, id: Uuid, offset: i64, limit: i64) -> sqlx::Result<Vec<LogLine>> {
    sqlx::query_as(
        "SELECT data, line_num FROM job_logs WHERE job_id = $1 AND line_num >= $2
         ORDER BY line_num LIMIT $3",
    )
    .bind(id)
    .bind(offset)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Appends a line to a job's log. Lines are numbered from 0 in the order
/// they were written; the job's row lock orders concurrent writers.
pub async fn append_log(pool: &PgPool, id: Uuid, line: &str) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    append_log_in(&mut tx, id, line).await?;
    tx.commit().await
}

async fn append_log_in(conn: &mut PgConnection, id: Uuid, line: &str) -> sqlx::Result<()> {
    // Locking the job row orders writers (the worker, and a replica failing
    // a dead worker's job); a deleted job takes no more lines.
    let exists = sqlx::query("SELECT 1 FROM jobs WHERE id = $1 FOR NO KEY UPDATE")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if exists {
        sqlx::query(
            "INSERT INTO job_logs (job_id, line_num, data)
             SELECT $1, coalesce(max(line_num) + 1, 0), $2 FROM job_logs WHERE job_id = $1",
        )
        .bind(id)
        .bind(line)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
