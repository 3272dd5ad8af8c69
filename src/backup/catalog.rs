//! The catalog of backups in the backup storage (`MSR_BACKUP_STORAGE`).
//!
//! Each backup is two objects: the archive, `backups/<id>.tar`, and beside
//! it `backups/<id>.tar.json`, its catalog entry, written once the archive
//! is complete. The `backups` table is the catalog a running instance
//! answers from; the entries in storage are what survives the loss of the
//! database, and [`recover`] rebuilds the table from them (a restore onto
//! a new instance starts with an empty catalog).
//!
//! Neither object is listed before it is complete: the archive is written
//! as an [`Upload`](crate::storage::Upload) and its row stays `writing`
//! until both objects exist.

use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Description, Kind};
use crate::registry::time;
use crate::storage::Storage;

const PREFIX: &str = "backups/";

pub fn archive_key(id: Uuid) -> String {
    format!("{PREFIX}{id}.tar")
}

fn entry_key(archive_key: &str) -> String {
    format!("{archive_key}.json")
}

/// A complete backup, as the API lists it and as its catalog entry in
/// storage holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    pub id: Uuid,
    /// The job that wrote it; `null` for one recovered from storage whose
    /// job is not in this instance's job log.
    #[serde(rename = "jobID")]
    pub job_id: Option<Uuid>,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub ignore_scan_data: bool,
    /// The archive's size in bytes and its SHA-256, as `sha256sum` prints it.
    pub size: u64,
    pub sha256: String,
    #[serde(serialize_with = "time::rfc3339")]
    pub created: DateTime<Utc>,
    #[serde(serialize_with = "time::rfc3339")]
    pub completed: DateTime<Utc>,
    /// Where the archive is: the backup storage's location and the key.
    pub location: String,
    pub key: String,
    pub schema_version: i64,
    /// Rows per dataset, in archive order.
    pub datasets: Vec<DatasetCount>,
    /// Full backups: the blobs in the archive.
    pub blobs: Option<super::BlobsDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetCount {
    pub name: String,
    pub rows: u64,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    job_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    entry: Json<Backup>,
}

/// The columns are authoritative; the entry holds the rest.
impl From<Row> for Backup {
    fn from(row: Row) -> Self {
        Backup {
            id: row.id,
            job_id: row.job_id,
            created: row.created_at,
            ..row.entry.0
        }
    }
}

/// A backup being written: its row exists (`writing`) before the upload's
/// first byte, so that a writer that vanishes leaves a trace to clean up.
pub struct Pending {
    pub id: Uuid,
    pub key: String,
}

/// Records that `job` starts writing backup `id` through the upload `upload_id`.
pub async fn begin(
    pool: &PgPool,
    storage: &Storage,
    id: Uuid,
    job: Uuid,
    kind: Kind,
    ignore_scan_data: bool,
    upload_id: &str,
) -> sqlx::Result<Pending> {
    let key = archive_key(id);
    sqlx::query(
        "INSERT INTO backups (id, job_id, status, kind, ignore_scan_data, key, location, upload_id)
         VALUES ($1, $2, 'writing', $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(job)
    .bind(kind.to_string())
    .bind(ignore_scan_data)
    .bind(&key)
    .bind(storage.location())
    .bind(upload_id)
    .execute(pool)
    .await?;
    Ok(Pending { id, key })
}

/// Once the archive is complete in storage: writes its catalog entry beside
/// it, then lists it. Until this returns the backup is not listed.
pub async fn complete(
    pool: &PgPool,
    storage: &Storage,
    pending: &Pending,
    job: Uuid,
    size: u64,
    sha256: String,
    description: &Description,
) -> anyhow::Result<Backup> {
    let backup = Backup {
        id: pending.id,
        job_id: Some(job),
        kind: description.kind,
        ignore_scan_data: description.ignore_scan_data,
        size,
        sha256,
        created: description.created,
        completed: Utc::now(),
        location: storage.location().to_owned(),
        key: pending.key.clone(),
        schema_version: description.schema_version,
        datasets: description
            .datasets
            .iter()
            .map(|dataset| DatasetCount {
                name: dataset.name.clone(),
                rows: dataset.tables.iter().map(|table| table.rows).sum(),
            })
            .collect(),
        blobs: description.blobs,
    };
    storage
        .put(
            &entry_key(&pending.key),
            serde_json::to_vec_pretty(&backup)?.into(),
        )
        .await?;
    let updated = sqlx::query(
        "UPDATE backups SET status = 'complete', upload_id = NULL, size = $2, sha256 = $3,
             created_at = $4, completed_at = $5, entry = $6
         WHERE id = $1 AND status = 'writing'",
    )
    .bind(pending.id)
    .bind(backup.size as i64)
    .bind(&backup.sha256)
    .bind(backup.created)
    .bind(backup.completed)
    .bind(Json(&backup))
    .execute(pool)
    .await?
    .rows_affected();
    anyhow::ensure!(
        updated == 1,
        "the backup's catalog row was removed while it was written (the job was deleted?)"
    );
    Ok(backup)
}

const COLUMNS: &str = "id, job_id, created_at, entry";

/// Complete backups, newest first.
pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<Backup>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM backups WHERE status = 'complete' ORDER BY created_at DESC, id"
    )))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Backup::from).collect())
}

pub async fn get(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Backup>> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM backups WHERE id = $1 AND status = 'complete'"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Backup::from))
}

/// Deletes a backup: it stops being listed at once, then its objects are
/// removed, then its row. A deletion cut short (storage error, crash) is
/// finished by [`sweep`]; it is never listed again. `false` if there is no
/// such backup.
pub async fn delete(pool: &PgPool, storage: &Storage, id: Uuid) -> anyhow::Result<bool> {
    let key: Option<String> = sqlx::query_scalar(
        "UPDATE backups SET status = 'deleting' WHERE id = $1 AND status = 'complete' RETURNING key",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(key) = key else {
        return Ok(false);
    };
    remove_objects(storage, &key).await?;
    delete_row(&mut *pool.acquire().await?, id).await?;
    Ok(true)
}

/// Removes a backup's objects, the entry first: once it is gone, recovery
/// can no longer list the archive, whatever happens next.
async fn remove_objects(storage: &Storage, key: &str) -> anyhow::Result<()> {
    storage.delete(&entry_key(key)).await?;
    storage.delete(key).await?;
    Ok(())
}

async fn delete_row(conn: &mut sqlx::PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM backups WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Discards the unfinished backups of `job` (it was canceled, ran past its
/// deadline, or failed): their uploads, anything already under their keys,
/// and their rows. Returns how many there were.
pub async fn discard_unfinished(
    pool: &PgPool,
    storage: &Storage,
    job: Uuid,
) -> anyhow::Result<usize> {
    let pending: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT id, key, upload_id FROM backups WHERE job_id = $1 AND status = 'writing'",
    )
    .bind(job)
    .fetch_all(pool)
    .await?;
    let count = pending.len();
    let mut conn = pool.acquire().await?;
    for (id, key, upload_id) in pending {
        discard(storage, &key, upload_id.as_deref()).await?;
        delete_row(&mut conn, id).await?;
    }
    Ok(count)
}

/// Removes an unfinished backup's upload and anything already under its key.
async fn discard(storage: &Storage, key: &str, upload_id: Option<&str>) -> anyhow::Result<()> {
    if let Some(upload_id) = upload_id {
        storage.discard_upload(key, upload_id).await?;
    }
    remove_objects(storage, key).await
}

/// Finishes what writers and deleters left behind: `writing` rows whose job
/// is no longer running (it errored, was canceled or deleted, or its
/// replica died) are discarded, `deleting` rows deleted. Run by every
/// replica now and then; each row is handled by whoever locks it first.
pub async fn sweep(pool: &PgPool, storage: &Storage) -> anyhow::Result<usize> {
    let mut swept = 0;
    loop {
        let mut tx = pool.begin().await?;
        let row: Option<(Uuid, String, Option<String>, String)> = sqlx::query_as(
            "SELECT b.id, b.key, b.upload_id, b.status FROM backups AS b
             WHERE b.location = $1 AND (b.status = 'deleting' OR (b.status = 'writing' AND NOT EXISTS (
                 SELECT 1 FROM jobs WHERE jobs.id = b.job_id AND jobs.status = 'running')))
             LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .bind(storage.location())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id, key, upload_id, status)) = row else {
            return Ok(swept);
        };
        if status == "writing" {
            tracing::info!(backup = %id, key, "discarding an unfinished backup");
            discard(storage, &key, upload_id.as_deref()).await?;
        } else {
            tracing::info!(backup = %id, key, "finishing the deletion of a backup");
            remove_objects(storage, &key).await?;
        }
        delete_row(&mut tx, id).await?;
        tx.commit().await?;
        swept += 1;
    }
}

/// Lists again the backups in `storage` that the catalog does not know (a
/// new instance restored from one of them, say), from their catalog
/// entries. An archive without an entry was not completed and stays
/// unlisted. Returns how many were added.
pub async fn recover(pool: &PgPool, storage: &Storage) -> anyhow::Result<usize> {
    let objects: Vec<(String, u64)> = storage.list_sized(PREFIX).try_collect().await?;
    let sizes: std::collections::HashMap<&str, u64> = objects
        .iter()
        .map(|(key, size)| (key.as_str(), *size))
        .collect();
    let mut added = 0;
    for (key, _) in &objects {
        let Some(archive) = key.strip_suffix(".json") else {
            continue;
        };
        let Some(bytes) = storage.read_all(key).await? else {
            continue;
        };
        let entry: Backup = match serde_json::from_slice(&bytes) {
            Ok(entry) => entry,
            Err(err) => {
                tracing::warn!(key, error = %err, "not a backup catalog entry; left alone");
                continue;
            }
        };
        if entry.key != archive || sizes.get(archive) != Some(&entry.size) {
            tracing::warn!(
                key,
                "a catalog entry without its archive (or of another size); left alone"
            );
            continue;
        }
        let entry = Backup {
            location: storage.location().to_owned(),
            ..entry
        };
        // The job that wrote it is usually not in this database.
        let inserted = sqlx::query(
            "INSERT INTO backups (id, job_id, status, kind, ignore_scan_data, key, location, size,
                 sha256, created_at, completed_at, entry)
             VALUES ($1, (SELECT id FROM jobs WHERE id = $2), 'complete', $3, $4, $5, $6, $7, $8,
                 $9, $10, $11)
             ON CONFLICT DO NOTHING",
        )
        .bind(entry.id)
        .bind(entry.job_id)
        .bind(entry.kind.to_string())
        .bind(entry.ignore_scan_data)
        .bind(&entry.key)
        .bind(&entry.location)
        .bind(entry.size as i64)
        .bind(&entry.sha256)
        .bind(entry.created)
        .bind(entry.completed)
        .bind(Json(&entry))
        .execute(pool)
        .await?
        .rows_affected();
        added += inserted as usize;
    }
    Ok(added)
}

/// The key of a stored backup, from the catalog or, when the catalog does
/// not know it, from its entry in storage.
pub async fn find(pool: &PgPool, storage: &Storage, id: Uuid) -> anyhow::Result<Option<Backup>> {
    if let Some(backup) = get(pool, id).await? {
        return Ok(Some(backup));
    }
    let key = archive_key(id);
    let Some(bytes) = storage.read_all(&entry_key(&key)).await? else {
        return Ok(None);
    };
    let entry: Backup = serde_json::from_slice(&bytes)?;
    Ok(Some(entry))
}
