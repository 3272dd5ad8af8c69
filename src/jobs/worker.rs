//! One replica's part of the job runner: it registers as a worker, renews
//! its heartbeat, fails the jobs of workers whose heartbeat expired, and
//! claims and runs waiting jobs one at a time.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use super::{Action, Job, NOTIFY_CHANNEL, Status, append_log};
use crate::backup::catalog;
use crate::notify::Notifier;
use crate::registry::time;
use crate::storage::Storage;

/// What a worker needs to run jobs.
#[derive(Clone)]
pub struct Context {
    pub pool: PgPool,
    /// Registry content, read by full backups.
    pub registry: Storage,
    /// Where backups are written.
    pub backups: Storage,
    pub worker_id: String,
    /// Tells the distribution list how each job ended.
    pub notifier: Notifier,
}

/// How often a replica renews its heartbeat and sweeps up after dead ones.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub heartbeat: Duration,
}

impl Timing {
    /// A worker is dead once it missed this many heartbeats in a row.
    const MISSED_BEATS: u32 = 3;

    pub fn expiry(self) -> Duration {
        self.heartbeat * Self::MISSED_BEATS
    }
}

/// How often a running job checks whether it was canceled or deleted.
const CANCEL_POLL: Duration = Duration::from_millis(500);
/// Cleanup after a stop, when the job has no `stopTimeout` of its own.
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Dead workers stay listed this long, then are forgotten.
const FORGET_DEAD_AFTER: Duration = Duration::from_secs(3600);

/// A fresh 12-hex worker id, as MSR's.
pub fn new_worker_id() -> String {
    Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// Adds this replica to the worker list, or renews its heartbeat.
pub async fn register(pool: &PgPool, id: &str, timing: Timing) -> sqlx::Result<()> {
    // An upsert: a replica cut off from the database long enough to be
    // declared dead and forgotten comes back as a live worker.
    let host = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    sqlx::query(
        "INSERT INTO workers (id, hostname, heartbeat_expiration) VALUES ($1, $2, now() + $3)
         ON CONFLICT (id) DO UPDATE SET heartbeat_expiration = EXCLUDED.heartbeat_expiration",
    )
    .bind(id)
    .bind(host)
    .bind(timing.expiry())
    .execute(pool)
    .await?;
    Ok(())
}

/// Leaves the worker list on a clean shutdown.
pub async fn unregister(pool: &PgPool, id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM workers WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Renews this worker's heartbeat and fails the jobs of dead workers,
/// every `timing.heartbeat`, until aborted: it outlives the shutdown signal,
/// so that a job being stopped is not taken for a dead worker's.
pub async fn heartbeat(ctx: Context, timing: Timing) {
    loop {
        if let Err(err) = register(&ctx.pool, &ctx.worker_id, timing).await {
            tracing::warn!(error = %err, "renewing the worker heartbeat failed");
        }
        match reap(&ctx).await {
            Ok(()) => {}
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "failing dead workers' jobs"),
        }
        if let Err(err) = catalog::sweep(&ctx.pool, &ctx.backups).await {
            tracing::warn!(error = %format!("{err:#}"), "cleaning up unfinished backups");
        }
        tokio::time::sleep(timing.heartbeat).await;
    }
}

/// Fails the running jobs of workers whose heartbeat expired (their
/// unfinished backups are then swept by [`catalog::sweep`]), and
/// forgets workers dead for long.
async fn reap(ctx: &Context) -> anyhow::Result<()> {
    let failed: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
        "UPDATE jobs SET status = 'errored', last_updated = now(), ended_at = now()
         FROM workers
         WHERE jobs.status = 'running' AND jobs.worker_id = workers.id
           AND workers.heartbeat_expiration < now()
         RETURNING jobs.id, workers.id, workers.heartbeat_expiration",
    )
    .fetch_all(&ctx.pool)
    .await?;
    for (job, worker, expired) in &failed {
        tracing::warn!(%job, %worker, "failed the job of a dead worker");
        append_log(
            &ctx.pool,
            *job,
            &format!(
                "errored: worker {worker} stopped responding (its heartbeat expired at {}); \
                 this job did not finish, and what it wrote is discarded",
                time::format(expired)
            ),
        )
        .await?;
        ctx.notifier.job_ended(*job);
        retry(ctx, *job).await;
    }
    // Jobs claimed by a worker that is not in the table at all (forgotten,
    // or deleted by hand) have no heartbeat to wait for.
    let orphans: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE jobs SET status = 'errored', last_updated = now(), ended_at = now()
         WHERE status = 'running' AND NOT EXISTS (SELECT 1 FROM workers WHERE id = jobs.worker_id)
         RETURNING id",
    )
    .fetch_all(&ctx.pool)
    .await?;
    for job in orphans {
        append_log(&ctx.pool, job, "errored: its worker is gone").await?;
    }
    sqlx::query("DELETE FROM workers WHERE heartbeat_expiration < now() - $1")
        .bind(FORGET_DEAD_AFTER)
        .execute(&ctx.pool)
        .await?;
    Ok(())
}

/// A worker in MSR's shape.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerView {
    pub id: String,
    pub status: String,
    pub capacity_map: serde_json::Value,
    #[serde(serialize_with = "time::rfc3339")]
    pub heartbeat_expiration: DateTime<Utc>,
}

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<WorkerView>> {
    sqlx::query_as(
        "SELECT id, CASE WHEN heartbeat_expiration >= now() THEN 'running' ELSE 'dead' END AS status,
             capacity_map, heartbeat_expiration
         FROM workers ORDER BY started_at, id",
    )
    .fetch_all(pool)
    .await
}

/// Claims and runs waiting jobs, one at a time, until `stopping`. Wakes on
/// `NOTIFY msr_jobs`, and polls as well in case a notification was missed
/// (the listening connection is re-established after a database outage).
pub async fn run(ctx: Context, timing: Timing, mut stopping: watch::Receiver<bool>) {
    let mut listener = match crate::db::listen(&ctx.pool, NOTIFY_CHANNEL).await {
        Ok(listener) => Some(listener),
        Err(err) => {
            tracing::warn!(error = %err, "listening for jobs failed; polling instead");
            None
        }
    };
    loop {
        if *stopping.borrow() {
            return;
        }
        match claim(&ctx).await {
            Ok(Some(job)) => {
                run_job(&ctx, job, stopping.clone()).await;
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "claiming a job failed"),
        }
        let wait = next_due(&ctx.pool)
            .await
            .ok()
            .flatten()
            .map_or(timing.heartbeat, |due| {
                (due - Utc::now())
                    .to_std()
                    .unwrap_or_default()
                    .min(timing.heartbeat)
            });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            notified = async {
                match listener.as_mut() {
                    Some(listener) => listener.recv().await.map(drop),
                    None => std::future::pending().await,
                }
            } => {
                if let Err(err) = notified {
                    tracing::warn!(error = %err, "job notifications interrupted; reconnecting");
                    listener = crate::db::listen(&ctx.pool, NOTIFY_CHANNEL).await.ok();
                }
            }
            // Mapped to (): the guard wait_for returns must not live across
            // the other arm's await.
            _ = async { drop(stopping.wait_for(|stopping| *stopping).await) } => return,
        }
    }
}

async fn next_due(pool: &PgPool) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar("SELECT min(scheduled_at) FROM jobs WHERE status = 'waiting'")
        .fetch_one(pool)
        .await
}

/// Takes the oldest due waiting job whose action has no job running.
async fn claim(ctx: &Context) -> sqlx::Result<Option<Job>> {
    let result = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET status = 'running', worker_id = $1, started_at = now(), last_updated = now()
         WHERE id = (
             SELECT id FROM jobs AS j
             WHERE status = 'waiting' AND scheduled_at <= now()
               AND NOT EXISTS (SELECT 1 FROM jobs AS r WHERE r.action = j.action AND r.status = 'running')
             ORDER BY scheduled_at, id
             LIMIT 1
             FOR UPDATE SKIP LOCKED)
         RETURNING {}",
        super::JOB_COLUMNS
    )))
    .bind(&ctx.worker_id)
    .fetch_optional(&ctx.pool)
    .await;
    match result {
        // Another replica started a job of the same action between our
        // check and our update: the partial unique index refused ours.
        Err(sqlx::Error::Database(err)) if err.is_unique_violation() => Ok(None),
        other => other,
    }
}

/// Why a running job stopped before it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Canceled,
    Deleted,
    DeadlineExceeded,
    /// Another replica failed it (this one missed its heartbeats).
    TakenAway,
    ShuttingDown,
}

async fn run_job(ctx: &Context, job: Job, mut stopping: watch::Receiver<bool>) {
    let started = Instant::now();
    let id = job.id;
    tracing::info!(job = %id, action = %job.action, "job started");
    log(ctx, id, &format!("started on worker {}", ctx.worker_id)).await;
    let deadline = job.deadline();
    let stop = async {
        tokio::select! {
            _ = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep(deadline).await,
                    None => std::future::pending().await,
                }
            } => Stop::DeadlineExceeded,
            stop = watch_for_stop(&ctx.pool, id) => stop,
            _ = stopping.wait_for(|stopping| *stopping) => Stop::ShuttingDown,
        }
    };
    let outcome = tokio::select! {
        outcome = execute(ctx, &job) => Ok(outcome),
        stop = stop => Err(stop),
    };
    if !matches!(outcome, Ok(Ok(_))) {
        discard_unfinished(ctx, &job).await;
    }
    let (status, line) = match outcome {
        Ok(Ok(summary)) => (
            Status::Done,
            format!("done in {}{summary}", elapsed(started)),
        ),
        Ok(Err(err)) => (
            Status::Errored,
            format!("errored after {}: {err:#}", elapsed(started)),
        ),
        Err(Stop::Canceled) => (
            Status::Canceled,
            format!("canceled after {}", elapsed(started)),
        ),
        Err(Stop::DeadlineExceeded) => (
            Status::Errored,
            format!("errored: deadline exceeded ({})", job.deadline),
        ),
        Err(Stop::ShuttingDown) => (
            Status::Errored,
            "errored: the replica running it shut down".to_owned(),
        ),
        Err(stop @ (Stop::Deleted | Stop::TakenAway)) => {
            tracing::warn!(job = %id, ?stop, "job stopped");
            return;
        }
    };
    log(ctx, id, &line).await;
    match finish(&ctx.pool, id, &ctx.worker_id, status).await {
        Ok(true) => {
            tracing::info!(job = %id, status = ?status, "job ended");
            ctx.notifier.job_ended(id);
            if status == Status::Errored {
                retry(ctx, id).await;
            }
            if status == Status::Done && job.action == Action::Backup.as_str() {
                purge_after_backup(ctx, id).await;
            }
        }
        Ok(false) => tracing::warn!(job = %id, "job was taken from this worker before it ended"),
        Err(err) => tracing::warn!(job = %id, error = %err, "recording the job's end failed"),
    }
}

/// Removes what a job that did not finish wrote, within its `stopTimeout`.
async fn discard_unfinished(ctx: &Context, job: &Job) {
    let cleanup = job.stop_timeout().unwrap_or(DEFAULT_STOP_TIMEOUT);
    let discarded = tokio::time::timeout(
        cleanup,
        catalog::discard_unfinished(&ctx.pool, &ctx.backups, job.id),
    )
    .await;
    let line = match discarded {
        Ok(Ok(0)) => return,
        Ok(Ok(_)) => "discarded the unfinished backup".to_owned(),
        Ok(Err(err)) => format!(
            "discarding the unfinished backup failed ({err:#}); it stays unlisted and \
             another attempt follows"
        ),
        Err(_) => format!(
            "discarding the unfinished backup took longer than {cleanup:?}; it stays \
             unlisted and another attempt follows"
        ),
    };
    log(ctx, job.id, &line).await;
}

fn elapsed(started: Instant) -> String {
    format!("{:.2}s", started.elapsed().as_secs_f64())
}

async fn execute(ctx: &Context, job: &Job) -> anyhow::Result<String> {
    let action: Action = job
        .action
        .parse()
        .map_err(anyhow::Error::msg)
        .context("this replica cannot run it")?;
    match action {
        Action::Backup => super::backup::run(ctx, job).await,
        Action::BackupPurge => super::purge::run(ctx, job).await,
    }
}

async fn watch_for_stop(pool: &PgPool, id: Uuid) -> Stop {
    loop {
        tokio::time::sleep(CANCEL_POLL).await;
        let row: Result<Option<(Status, bool)>, _> =
            sqlx::query_as("SELECT status, cancel_requested FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await;
        match row {
            Ok(None) => return Stop::Deleted,
            Ok(Some((Status::Running, true))) => return Stop::Canceled,
            Ok(Some((Status::Running, false))) => {}
            Ok(Some(_)) => return Stop::TakenAway,
            // The database is unreachable: keep going; if it stays away,
            // the heartbeat expires and another replica fails the job.
            Err(_) => {}
        }
    }
}

async fn finish(pool: &PgPool, id: Uuid, worker: &str, status: Status) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "UPDATE jobs SET status = $3, last_updated = now(), ended_at = now()
         WHERE id = $1 AND worker_id = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(worker)
    .bind(status)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(updated > 0)
}

/// With purge enabled, every successful backup is followed by a purge.
async fn purge_after_backup(ctx: &Context, backup_job: Uuid) {
    let settings = match crate::settings::backup::get(&ctx.pool).await {
        Ok(settings) => settings,
        Err(err) => {
            tracing::warn!(error = %err, "reading the purge settings failed; no purge");
            return;
        }
    };
    if !settings.purge.enabled {
        return;
    }
    let purge = super::NewJob {
        action: Action::BackupPurge,
        parameters: None,
        capacity_map: None,
        retries: 0,
        deadline: None,
        stop_timeout: None,
        scheduled_at: Utc::now(),
    };
    match super::enqueue(&ctx.pool, purge).await {
        Ok(job) => {
            log(
                ctx,
                backup_job,
                &format!("purge enqueued as job {}", job.id),
            )
            .await
        }
        Err(err) => tracing::warn!(error = %err, "enqueuing the purge failed"),
    }
}

async fn retry(ctx: &Context, id: Uuid) {
    match super::retry(&ctx.pool, id).await {
        Ok(Some(next)) => tracing::info!(job = %id, retry = %next, "job retried"),
        Ok(None) => {}
        Err(err) => tracing::warn!(job = %id, error = %err, "enqueuing a retry failed"),
    }
}

/// Writes a line to the job's log. A log line that cannot be written
/// (the database is away) goes to the server log instead of failing the job.
pub async fn log(ctx: &Context, id: Uuid, line: &str) {
    if let Err(err) = append_log(&ctx.pool, id, line).await {
        tracing::warn!(job = %id, error = %err, line, "writing a job log line failed");
    }
}
