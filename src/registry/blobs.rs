//! Blobs and blob uploads: the content half of the OCI distribution API.
//!
//! An upload is a row in `blob_uploads` plus parts in storage under
//! `_uploads/<id>/`, so any replica can take the next request of an upload
//! another replica started. Each part is hashed as it streams in. On
//! completion the parts are checked against the client's digest and moved to
//! `blobs/sha256/<hex>`; only then is the `blobs` row written. Whatever fails
//! or is cut off on the way leaves no object under a blob key and no row.

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::ContentError;
use super::digest::Digest;
use crate::storage::Storage;

#[derive(Debug, Clone)]
pub struct Upload {
    pub id: Uuid,
    /// Bytes received so far.
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Part {
    key: String,
    size: u64,
    sha256: String,
}

/// The size of `digest` if it may be served through the repository.
pub async fn size_in_repository(
    pool: &PgPool,
    repository_id: Uuid,
    digest: &Digest,
) -> sqlx::Result<Option<u64>> {
    let size: Option<i64> = sqlx::query_scalar(
        "SELECT b.size FROM repository_blobs rb JOIN blobs b USING (digest)
          WHERE rb.repository_id = $1 AND rb.digest = $2",
    )
    .bind(repository_id)
    .bind(digest.to_string())
    .fetch_optional(pool)
    .await?;
    Ok(size.map(|size| size as u64))
}

/// Makes a blob of another repository available in this one without a copy
/// (the spec's cross-repository mount). False when `from` lacks the blob.
pub async fn mount(
    pool: &PgPool,
    repository_id: Uuid,
    from_repository_id: Uuid,
    digest: &Digest,
) -> sqlx::Result<bool> {
    let linked = sqlx::query(
        "INSERT INTO repository_blobs (repository_id, digest)
         SELECT $1, digest FROM repository_blobs WHERE repository_id = $2 AND digest = $3
         ON CONFLICT DO NOTHING",
    )
    .bind(repository_id)
    .bind(from_repository_id)
    .bind(digest.to_string())
    .execute(pool)
    .await?
    .rows_affected();
    Ok(linked == 1
        || size_in_repository(pool, repository_id, digest)
            .await?
            .is_some())
}

pub async fn start_upload(pool: &PgPool, repository_id: Uuid) -> sqlx::Result<Upload> {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO blob_uploads (id, repository_id) VALUES ($1, $2)")
        .bind(id)
        .bind(repository_id)
        .execute(pool)
        .await?;
    Ok(Upload { id, size: 0 })
}

async fn load_upload(
    pool: &PgPool,
    repository_id: Uuid,
    id: Uuid,
) -> Result<(Upload, Vec<Part>), ContentError> {
    let row: Option<(i64, sqlx::types::Json<Vec<Part>>)> =
        sqlx::query_as("SELECT size, parts FROM blob_uploads WHERE id = $1 AND repository_id = $2")
            .bind(id)
            .bind(repository_id)
            .fetch_optional(pool)
            .await?;
    let (size, parts) = row.ok_or(ContentError::BlobUploadUnknown)?;
    Ok((
        Upload {
            id,
            size: size as u64,
        },
        parts.0,
    ))
}

pub async fn upload_status(
    pool: &PgPool,
    repository_id: Uuid,
    id: Uuid,
) -> Result<Upload, ContentError> {
    Ok(load_upload(pool, repository_id, id).await?.0)
}

/// Streams `body` into one object, hashing it on the way. A body that fails
/// part way (the client went away) leaves nothing behind.
async fn write_part<S, E>(storage: &Storage, key: String, body: S) -> Result<Part, ContentError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let mut writer = storage.writer(&key);
    let mut hasher = Sha256::new();
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => {
                let _ = writer.abort().await;
                return Err(ContentError::BlobUploadInvalid(format!(
                    "the upload was cut off: {err}"
                )));
            }
        };
        hasher.update(&chunk);
        writer.write(chunk).await?;
    }
    let size = writer.finish().await?;
    Ok(Part {
        key,
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

fn part_key(upload: Uuid, offset: u64) -> String {
    // The random suffix keeps two racing requests for the same offset from
    // writing (and then deleting) the same object.
    format!("_uploads/{upload}/{offset:020}-{}", Uuid::new_v4().simple())
}

/// Appends `body` to the upload. `start` is where the client says the chunk
/// begins (`Content-Range`); it must be the current end.
pub async fn append<S, E>(
    pool: &PgPool,
    storage: &Storage,
    repository_id: Uuid,
    id: Uuid,
    start: Option<u64>,
    body: S,
) -> Result<Upload, ContentError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let (upload, _) = load_upload(pool, repository_id, id).await?;
    if let Some(start) = start
        && start != upload.size
    {
        return Err(ContentError::RangeInvalid { size: upload.size });
    }
    let part = write_part(storage, part_key(id, upload.size), body).await?;
    if part.size == 0 {
        storage.delete(&part.key).await?;
        return Ok(upload);
    }
    // Optimistic: only the request that started at the current end may
    // extend the upload; a racing one finds the size moved and backs out.
    let updated = sqlx::query(
        "UPDATE blob_uploads
            SET parts = parts || $3, size = size + $4, updated_at = now()
          WHERE id = $1 AND size = $2",
    )
    .bind(id)
    .bind(upload.size as i64)
    .bind(sqlx::types::Json(vec![part.clone()]))
    .bind(part.size as i64)
    .execute(pool)
    .await?
    .rows_affected();
    if updated == 0 {
        storage.delete(&part.key).await?;
        let now = upload_status(pool, repository_id, id).await?;
        return Err(ContentError::RangeInvalid { size: now.size });
    }
    Ok(Upload {
        id,
        size: upload.size + part.size,
    })
}

/// Finishes the upload with an optional last chunk, verifying `digest`.
/// On a mismatch the whole upload is discarded.
pub async fn complete<S, E>(
    pool: &PgPool,
    storage: &Storage,
    repository_id: Uuid,
    id: Uuid,
    digest: &Digest,
    last_chunk: S,
) -> Result<u64, ContentError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    append(pool, storage, repository_id, id, None, last_chunk).await?;
    let (_, parts) = load_upload(pool, repository_id, id).await?;
    let promoted = promote(storage, id, &parts, digest).await;
    for part in &parts {
        storage.delete(&part.key).await?;
    }
    let size = match promoted {
        Ok(size) => size,
        Err(err) => {
            delete_upload_row(pool, id).await?;
            return Err(err);
        }
    };
    let mut tx = pool.begin().await?;
    record_blob(&mut tx, repository_id, digest, size).await?;
    sqlx::query("DELETE FROM blob_uploads WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(size)
}

/// A whole blob in one request (`POST …/uploads/?digest=`).
pub async fn put_monolithic<S, E>(
    pool: &PgPool,
    storage: &Storage,
    repository_id: Uuid,
    digest: &Digest,
    body: S,
) -> Result<u64, ContentError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let upload = start_upload(pool, repository_id).await?;
    complete(pool, storage, repository_id, upload.id, digest, body).await
}

pub async fn cancel(
    pool: &PgPool,
    storage: &Storage,
    repository_id: Uuid,
    id: Uuid,
) -> Result<(), ContentError> {
    let (_, parts) = load_upload(pool, repository_id, id).await?;
    for part in &parts {
        storage.delete(&part.key).await?;
    }
    delete_upload_row(pool, id).await?;
    Ok(())
}

/// Discards uploads nobody touched for `idle`, parts and all: a client that
/// gave up half way through a push must not leave its parts in storage for
/// ever. Safe to run on every replica at once: each session is claimed with
/// `SKIP LOCKED` in the transaction that deletes it, and a request still
/// racing for it finds it gone. Returns how many were discarded.
pub async fn expire_uploads(
    pool: &PgPool,
    storage: &Storage,
    idle: std::time::Duration,
) -> Result<u64, ContentError> {
    let mut expired = 0;
    loop {
        let mut tx = pool.begin().await?;
        let claimed: Option<(Uuid, sqlx::types::Json<Vec<Part>>)> = sqlx::query_as(
            "SELECT id, parts FROM blob_uploads
              WHERE updated_at < now() - make_interval(secs => $1)
              ORDER BY updated_at
              LIMIT 1
                FOR UPDATE SKIP LOCKED",
        )
        .bind(idle.as_secs_f64())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id, parts)) = claimed else {
            return Ok(expired);
        };
        // Storage first: if a delete fails the row stays, and the next round
        // tries again, rather than forgetting parts that still exist.
        for part in &parts.0 {
            storage.delete(&part.key).await?;
        }
        sqlx::query("DELETE FROM blob_uploads WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        expired += 1;
    }
}

async fn delete_upload_row(pool: &PgPool, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM blob_uploads WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(drop)
}

/// Moves verified content to the blob's key and returns its size. The
/// common case — one part whose hash already matches — is a rename, never a
/// second pass over the bytes.
async fn promote(
    storage: &Storage,
    upload: Uuid,
    parts: &[Part],
    digest: &Digest,
) -> Result<u64, ContentError> {
    let blob_key = digest.storage_key();
    let size: u64 = parts.iter().map(|part| part.size).sum();
    let mismatch = |actual: String| {
        ContentError::DigestInvalid(format!(
            "the uploaded content has digest sha256:{actual}, not {digest}"
        ))
    };
    match parts {
        [] => {
            let empty = Digest::of(b"");
            if *digest != empty {
                return Err(mismatch(empty.hex().to_owned()));
            }
            storage.put(&blob_key, Bytes::new()).await?;
        }
        [part] => {
            if part.sha256 != digest.hex() {
                return Err(mismatch(part.sha256.clone()));
            }
            if storage.size(&blob_key).await? != Some(size) {
                storage.rename(&part.key, &blob_key).await?;
            }
        }
        parts => {
            let assembled = format!("_uploads/{upload}/assembled-{}", Uuid::new_v4().simple());
            let mut writer = storage.writer(&assembled);
            let mut hasher = Sha256::new();
            for part in parts {
                let mut chunks = storage
                    .read(&part.key, crate::storage::READ_CHUNK)
                    .await?
                    .ok_or(ContentError::BlobUploadUnknown)?;
                while let Some(chunk) = chunks.next().await {
                    let chunk = chunk?;
                    hasher.update(&chunk);
                    writer.write(chunk).await?;
                }
            }
            let actual = hex::encode(hasher.finalize());
            if actual != digest.hex() {
                writer.abort().await?;
                return Err(mismatch(actual));
            }
            writer.finish().await?;
            if storage.size(&blob_key).await? == Some(size) {
                storage.delete(&assembled).await?;
            } else {
                storage.rename(&assembled, &blob_key).await?;
            }
        }
    }
    Ok(size)
}

/// Records a stored, verified object as a blob of the repository.
pub async fn record_blob(
    tx: &mut sqlx::PgConnection,
    repository_id: Uuid,
    digest: &Digest,
    size: u64,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO blobs (digest, size) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(digest.to_string())
        .bind(size as i64)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO repository_blobs (repository_id, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(repository_id)
    .bind(digest.to_string())
    .execute(&mut *tx)
    .await?;
    Ok(())
}
