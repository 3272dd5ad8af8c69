//! The `backup` action: an archive of this instance, written to the backup
//! storage and listed in the catalog once complete.

use std::fmt::Write as _;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt as _;
use uuid::Uuid;

use super::Job;
use super::worker::{Context, log};
use crate::backup::catalog;
use crate::backup::progress::Progress;
use crate::backup::write::write_archive;
use crate::backup::{Kind, Options};
use crate::storage::Upload;

/// Bytes buffered between the archive writer and the upload.
const PIPE_BYTES: usize = 1 << 20;

/// The job's `parameters`: `fullBackup` and `ignoreScanData`, `"true"` or
/// `"false"`, as MSR's parameters are strings.
pub fn options(parameters: Option<&serde_json::Value>) -> anyhow::Result<Options> {
    let flag = |name: &str| match parameters.and_then(|p| p.get(name)) {
        None => Ok(false),
        Some(value) => match value.as_str() {
            Some("false") => Ok(false),
            Some("true") => Ok(true),
            _ => anyhow::bail!("parameter {name} must be \"true\" or \"false\", not {value}"),
        },
    };
    Ok(Options {
        kind: if flag("fullBackup")? {
            Kind::Full
        } else {
            Kind::Metadata
        },
        ignore_scan_data: flag("ignoreScanData")?,
    })
}

/// Writes the backup; returns the last words of the job's log.
pub async fn run(ctx: &Context, job: &Job) -> anyhow::Result<String> {
    let options = options(job.parameters.as_ref())?;
    let id = Uuid::new_v4();
    let key = catalog::archive_key(id);
    log(
        ctx,
        job.id,
        &format!(
            "writing a {} backup{} to {}",
            options.kind,
            if options.ignore_scan_data {
                " without scan results"
            } else {
                ""
            },
            ctx.backups.location()
        ),
    )
    .await;
    let upload = ctx
        .backups
        .begin_upload(&key)
        .await
        .with_context(|| format!("starting the upload to {}", ctx.backups.location()))?;
    let pending = catalog::begin(
        &ctx.pool,
        &ctx.backups,
        id,
        job.id,
        options.kind,
        options.ignore_scan_data,
        upload.id(),
    )
    .await?;

    let mut conn = ctx.pool.acquire().await?;
    let (mut pipe_writer, pipe_reader) = tokio::io::duplex(PIPE_BYTES);
    let writing = async {
        let written = write_archive(
            &mut conn,
            Some(&ctx.registry),
            options,
            &mut pipe_writer,
            &Progress::hidden(),
        )
        .await;
        // End of file for the uploader; on error it stops short and the
        // upload is discarded below.
        drop(pipe_writer);
        written
    };
    let (written, uploaded) = tokio::join!(writing, upload_from(pipe_reader, upload));
    let uploading = || format!("uploading to {}", ctx.backups.location());
    let (upload, sha256) = uploaded.with_context(uploading)?;
    // Only a complete archive may become visible under its key.
    let written = match written {
        Ok(written) => written,
        Err(err) => {
            let _ = upload.abort().await;
            return Err(err.context("writing the archive"));
        }
    };
    let size = upload.finish().await.with_context(uploading)?;
    anyhow::ensure!(
        size == written.bytes,
        "the archive is {} bytes but {size} were uploaded",
        written.bytes
    );

    let description = &written.description;
    for dataset in &description.datasets {
        let rows: u64 = dataset.tables.iter().map(|table| table.rows).sum();
        log(
            ctx,
            job.id,
            &format!(
                "dataset {}: {rows} rows in {} tables",
                dataset.name,
                dataset.tables.len()
            ),
        )
        .await;
    }
    for excluded in &description.excluded {
        log(
            ctx,
            job.id,
            &format!("left out {}: {}", excluded.name, excluded.reason),
        )
        .await;
    }
    if let Some(blobs) = description.blobs {
        log(
            ctx,
            job.id,
            &format!("blobs: {} ({})", blobs.count, human_bytes(blobs.bytes)),
        )
        .await;
    }
    let backup = catalog::complete(
        &ctx.pool,
        &ctx.backups,
        &pending,
        job.id,
        size,
        sha256,
        description,
    )
    .await?;
    let mut summary = String::new();
    let _ = write!(
        summary,
        ": backup {} ({}, sha256 {}) at {}/{}",
        backup.id,
        human_bytes(backup.size),
        backup.sha256,
        backup.location,
        backup.key
    );
    Ok(summary)
}

/// Copies the archive into the upload, hashing it, and hands the upload
/// back unfinished: whether it is complete is the writer's to say.
async fn upload_from(
    mut reader: tokio::io::DuplexStream,
    mut upload: Upload,
) -> anyhow::Result<(Upload, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 256 << 10];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        upload.write(&buf[..n]).await?;
    }
    Ok((upload, hex::encode(hasher.finalize())))
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
