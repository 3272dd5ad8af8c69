//! Enqueues `backup` jobs on the backup settings' schedule.
//!
//! Every replica runs this loop; none is in charge. Each one sleeps until
//! the schedule's next occurrence (or until a settings change arrives by
//! `NOTIFY msr_settings`) and then enqueues the job for that occurrence,
//! keyed by `(action, occurrence)`: the first replica creates it, the
//! others find it there. The cursor the next occurrence is computed from is
//! in the database too (the latest occurrence enqueued), so the replicas
//! agree on it.
//!
//! Catch-up: occurrences that passed while no replica was running (found
//! at start-up, or after this replica stalled past [`MISFIRE_GRACE`]) are
//! not run one by one: the latest of them runs once, and its log lists
//! the ones missed. Occurrences from before the settings were last written
//! are never caught up on: the schedule they belonged to may be gone.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::watch;

use super::{Action, Enqueued, NewJob, enqueue_occurrence};
use crate::registry::time;
use crate::settings::NOTIFY_CHANNEL;
use crate::settings::backup::{self, BackupSettings};

/// An occurrence this late is missed rather than merely late.
pub const MISFIRE_GRACE: Duration = Duration::from_secs(60);
/// Missed occurrences named in a catch-up job's log; the rest are counted.
const MISSED_LISTED: usize = 10;
/// Occurrences looked at in one catch-up; the count of those beyond is not exact.
const MISSED_SEARCHED: usize = 100_000;
/// How often the loop re-reads the settings even without a notification,
/// in case one was lost while the listening connection was down.
const RECHECK: Duration = Duration::from_secs(30);

pub async fn run(pool: PgPool, mut stopping: watch::Receiver<bool>) {
    let mut listener = crate::db::listen(&pool, NOTIFY_CHANNEL).await.ok();
    let mut starting = true;
    loop {
        let wait = match tick(&pool, starting).await {
            Ok(next) => {
                starting = false;
                next.map_or(RECHECK, |next| {
                    (next - Utc::now())
                        .to_std()
                        .unwrap_or_default()
                        .min(RECHECK)
                })
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "backup scheduler: retrying shortly");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            notified = async {
                match listener.as_mut() {
                    Some(listener) => listener.recv().await.map(drop),
                    None => std::future::pending().await,
                }
            } => {
                if notified.is_err() {
                    listener = crate::db::listen(&pool, NOTIFY_CHANNEL).await.ok();
                }
            }
            // Mapped to (): the guard wait_for returns must not live across
            // the other arm's await.
            _ = async { drop(stopping.wait_for(|stopping| *stopping).await) } => return,
        }
    }
}

/// Enqueues what is due; returns the next occurrence, if backups are on.
async fn tick(pool: &PgPool, starting: bool) -> anyhow::Result<Option<DateTime<Utc>>> {
    let (settings, written) = backup::get_with_time(pool).await?;
    let Some(Ok(schedule)) = settings.parsed_schedule().filter(|_| settings.enabled) else {
        return Ok(None);
    };
    let last: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT max(occurrence) FROM jobs WHERE action = $1")
            .bind(Action::Backup.as_str())
            .fetch_one(pool)
            .await?;
    let Some(cursor) = last.max(written) else {
        return Ok(schedule.next_after(Utc::now()));
    };
    let now = Utc::now();
    let mut due = Vec::new();
    let mut from = cursor;
    while let Some(next) = schedule.next_after(from).filter(|next| *next <= now) {
        due.push(next);
        from = next;
        if due.len() == MISSED_SEARCHED {
            break;
        }
    }
    let grace = chrono::Duration::from_std(MISFIRE_GRACE).expect("a small duration");
    let collapse = starting || due.first().is_some_and(|first| now - *first > grace);
    if collapse {
        if let Some((latest, missed)) = due.split_last() {
            let notes = missed_notes(missed, due.len() == MISSED_SEARCHED);
            enqueue(pool, &settings, *latest, &notes).await?;
        }
    } else {
        for occurrence in &due {
            enqueue(pool, &settings, *occurrence, &[]).await?;
        }
    }
    Ok(schedule.next_after(from.max(now)))
}

fn missed_notes(missed: &[DateTime<Utc>], more: bool) -> Vec<String> {
    if missed.is_empty() {
        return Vec::new();
    }
    let mut listed: Vec<String> = missed
        .iter()
        .take(MISSED_LISTED)
        .map(time::format)
        .collect();
    if missed.len() > MISSED_LISTED {
        listed.push(format!(
            "and {}{} more",
            missed.len() - MISSED_LISTED,
            if more { " or" } else { "" }
        ));
    }
    vec![format!(
        "catch-up: {} earlier occurrence(s) passed while no replica was running and were \
         not run: {}; this one backup stands in for them",
        missed.len(),
        listed.join(", ")
    )]
}

async fn enqueue(
    pool: &PgPool,
    settings: &BackupSettings,
    occurrence: DateTime<Utc>,
    notes: &[String],
) -> sqlx::Result<()> {
    let job = NewJob {
        action: Action::Backup,
        parameters: Some(json!({ "fullBackup": settings.full_backup.to_string() })),
        capacity_map: None,
        retries: 0,
        deadline: settings.deadline,
        stop_timeout: None,
        scheduled_at: occurrence,
    };
    match enqueue_occurrence(pool, job, occurrence, notes).await? {
        Enqueued::Created {
            id,
            skipped_for: None,
        } => {
            tracing::info!(job = %id, occurrence = %time::format(&occurrence), "scheduled backup enqueued")
        }
        Enqueued::Created {
            id,
            skipped_for: Some(running),
        } => tracing::info!(
            job = %id,
            %running,
            occurrence = %time::format(&occurrence),
            "scheduled backup skipped: the previous one is still running"
        ),
        Enqueued::Exists => {}
    }
    Ok(())
}

/// The schedule's next run, for `GET /api/v0/crons`; `None` while backups
/// are disabled.
pub fn next_run(settings: &BackupSettings, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    settings
        .parsed_schedule()
        .filter(|_| settings.enabled)?
        .ok()?
        .next_after(now)
}
