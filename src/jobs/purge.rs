//! The `backup_purge` action: deletes stored backups older than the purge
//! duration, but never the newest complete one, whatever its age.

use std::fmt::Write as _;

use anyhow::Context as _;
use chrono::Utc;

use super::Job;
use super::backup::human_bytes;
use super::worker::{Context, log};
use crate::backup::catalog;
use crate::duration::GoDuration;
use crate::settings;

/// The job's `duration` parameter, else the settings' `purge.duration`.
pub async fn duration(
    pool: &sqlx::PgPool,
    parameters: Option<&serde_json::Value>,
) -> anyhow::Result<GoDuration> {
    if let Some(value) = parameters.and_then(|p| p.get("duration")) {
        let text = value
            .as_str()
            .with_context(|| format!("parameter duration must be a string, not {value}"))?;
        let duration: GoDuration = text
            .parse()
            .map_err(|err| anyhow::anyhow!("parameter duration: {err}"))?;
        anyhow::ensure!(
            duration.is_positive(),
            "parameter duration must be positive, got {duration}"
        );
        return Ok(duration);
    }
    settings::backup::get(pool).await?.purge.duration.context(
        "no purge duration: set purge.duration in the backup settings or pass a duration parameter",
    )
}

pub async fn run(ctx: &Context, job: &Job) -> anyhow::Result<String> {
    let duration = duration(&ctx.pool, job.parameters.as_ref()).await?;
    let max_age = chrono::Duration::from_std(duration.to_std().context("a positive duration")?)
        .context("purge duration too long")?;
    let backups = catalog::list(&ctx.pool).await?;
    log(
        ctx,
        job.id,
        &format!(
            "purging backups older than {duration} from {} ({} listed; the newest is always kept)",
            ctx.backups.location(),
            backups.len()
        ),
    )
    .await;
    let now = Utc::now();
    let (mut deleted, mut freed) = (0, 0);
    // Newest first: the first is kept whatever its age.
    for backup in backups.iter().skip(1) {
        let age = now - backup.created;
        if age <= max_age {
            continue;
        }
        if !catalog::delete(&ctx.pool, &ctx.backups, backup.id)
            .await
            .with_context(|| {
                format!(
                    "deleting backup {} (after {deleted} deleted, {} freed)",
                    backup.id,
                    human_bytes(freed)
                )
            })?
        {
            // Deleted by someone else meanwhile.
            continue;
        }
        deleted += 1;
        freed += backup.size;
        let age = GoDuration::from_std(age.to_std().unwrap_or_default()).unwrap_or_default();
        log(
            ctx,
            job.id,
            &format!(
                "deleted backup {} ({}, {} old, {})",
                backup.id,
                backup.kind,
                round_to_seconds(age),
                human_bytes(backup.size)
            ),
        )
        .await;
    }
    let kept = backups.len() - deleted;
    let mut summary = String::new();
    let _ = write!(
        summary,
        ": deleted {deleted} backup(s), freed {}, {kept} kept",
        human_bytes(freed)
    );
    Ok(summary)
}

fn round_to_seconds(duration: GoDuration) -> GoDuration {
    const SECOND: i64 = 1_000_000_000;
    GoDuration::from_nanos(duration.as_nanos() / SECOND * SECOND)
}
