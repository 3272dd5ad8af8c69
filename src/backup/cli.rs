//! `msr backup`, `msr verify` and `msr restore`: files and standard streams
//! around the archive code, and what they print.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncRead, BufReader};

use super::progress::Progress;
use super::read::{Totals, verify as verify_archive};
use super::restore::{RestoreOptions, Restored, restore as restore_archive};
use super::write::{Written, write_archive};
use super::{Description, Kind, Options, catalog};
use crate::config::{BackupArgs, GlobalArgs, RestoreArgs, VerifyArgs};
use crate::storage::Storage;
use crate::{db, server};
use futures::TryStreamExt as _;

const READ_BUFFER: usize = 1 << 20;

pub async fn backup(global: &GlobalArgs, args: &BackupArgs) -> anyhow::Result<()> {
    let options = Options {
        kind: if args.full {
            Kind::Full
        } else {
            Kind::Metadata
        },
        ignore_scan_data: args.ignore_scan_data,
    };
    let storage = match options.kind {
        Kind::Full => Some(Storage::open(&args.storage.location)?),
        Kind::Metadata => None,
    };
    if args.output == "-" && std::io::stdout().is_terminal() {
        bail!(
            "refusing to write an archive to a terminal: redirect stdout \
             (msr backup - > backup.tar) or name a file"
        );
    }
    let pool = server::connect(global).await?;
    let mut conn = pool.acquire().await?;
    let progress = Progress::on_terminal();
    let written = if args.output == "-" {
        write_archive(
            &mut conn,
            storage.as_ref(),
            options,
            tokio::io::stdout(),
            &progress,
        )
        .await?
    } else {
        let path = PathBuf::from(&args.output);
        let partial = partial_path(&path)?;
        let outcome = async {
            let mut file = tokio::fs::File::create(&partial)
                .await
                .with_context(|| format!("creating {}", partial.display()))?;
            let written = tokio::select! {
                written = write_archive(&mut conn, storage.as_ref(), options, &mut file, &progress) => written?,
                _ = tokio::signal::ctrl_c() => bail!("interrupted"),
            };
            file.sync_all().await?;
            tokio::fs::rename(&partial, &path)
                .await
                .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))?;
            anyhow::Ok(written)
        }
        .await;
        match outcome {
            Ok(written) => written,
            Err(err) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(err);
            }
        }
    };
    drop(conn);
    pool.close().await;
    let Written { description, bytes } = written;
    tracing::info!(
        kind = %description.kind,
        rows = description.rows(),
        blobs = description.blobs.map_or(0, |b| b.count),
        bytes,
        to = %args.output,
        "backup written"
    );
    Ok(())
}

/// A hidden sibling of `path`: renamed over it once complete, so a
/// half-written archive never carries the name the operator chose.
fn partial_path(path: &Path) -> anyhow::Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    Ok(path.with_file_name(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

async fn open_input(input: &str) -> anyhow::Result<Box<dyn AsyncRead + Unpin + Send>> {
    if input == "-" {
        return Ok(Box::new(BufReader::with_capacity(
            READ_BUFFER,
            tokio::io::stdin(),
        )));
    }
    let file = tokio::fs::File::open(input)
        .await
        .with_context(|| format!("opening {input}"))?;
    Ok(Box::new(BufReader::with_capacity(READ_BUFFER, file)))
}

pub async fn verify(args: &VerifyArgs) -> anyhow::Result<()> {
    let input = open_input(&args.input).await?;
    let (description, totals) = verify_archive(input)
        .await
        .with_context(|| format!("{} is not a good msr backup", display_name(&args.input)))?;
    print!("{}", verify_summary(&description, &totals));
    Ok(())
}

pub async fn restore(global: &GlobalArgs, args: &RestoreArgs) -> anyhow::Result<()> {
    let storage = Storage::open(&args.storage.location)?;
    let pool = server::connect(global).await?;
    let (input, name) = match (&args.input, args.backup) {
        (_, Some(id)) => {
            let backups = Storage::open(&args.backup_storage.location)?;
            // The catalog is looked up first; a new instance has no tables yet.
            db::migrate(&pool).await?;
            (
                stored_backup(&pool, &backups, id).await?,
                format!("backup {id}"),
            )
        }
        (Some(input), None) => (open_input(input).await?, display_name(input).to_owned()),
        (None, None) => bail!("name an archive (FILE or -) or a stored backup (--backup ID)"),
    };
    let progress = Progress::on_terminal();
    let options = RestoreOptions {
        ignore_scan_data: args.ignore_scan_data,
        replace: args.replace,
    };
    let restored = restore_archive(&pool, &storage, input, options, &progress)
        .await
        .with_context(|| format!("restore of {name} failed; nothing was changed"))?;
    pool.close().await;
    print!("{}", restore_summary(&restored, storage.location()));
    Ok(())
}

/// A stored backup's archive, found through the catalog or, on an instance
/// whose catalog does not list it, through its entry in the backup storage.
async fn stored_backup(
    pool: &sqlx::PgPool,
    backups: &Storage,
    id: uuid::Uuid,
) -> anyhow::Result<Box<dyn AsyncRead + Unpin + Send>> {
    let backup = catalog::find(pool, backups, id)
        .await?
        .with_context(|| format!("no backup {id} in the catalog or in {}", backups.location()))?;
    let stream = backups
        .read(&backup.key, crate::storage::READ_CHUNK)
        .await?
        .with_context(|| {
            format!(
                "backup {id} is listed but {} is missing from {}",
                backup.key,
                backups.location()
            )
        })?;
    Ok(Box::new(BufReader::with_capacity(
        READ_BUFFER,
        tokio_util::io::StreamReader::new(stream.map_err(std::io::Error::other)),
    )))
}

fn display_name(input: &str) -> &str {
    if input == "-" { "stdin" } else { input }
}

fn describe(description: &Description, out: &mut String) {
    let _ = writeln!(out, "  type:      {}", description.kind);
    let _ = writeln!(
        out,
        "  created:   {}",
        description
            .created
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let _ = writeln!(
        out,
        "  source:    host {:?}, database {:?}, msr {} (schema version {})",
        description.source.host,
        description.source.database,
        description.msr_version,
        description.schema_version
    );
    let _ = writeln!(
        out,
        "  scan data: {}",
        if description.ignore_scan_data {
            "left out (--ignore-scan-data)"
        } else {
            "included"
        }
    );
}

fn verify_summary(description: &Description, totals: &Totals) -> String {
    let mut out = String::from("msr backup archive: OK, every checksum matched\n");
    describe(description, &mut out);
    let _ = writeln!(out, "  datasets:");
    for dataset in &description.datasets {
        for table in &dataset.tables {
            let _ = writeln!(
                out,
                "    {:<24} {:<24} {:>12} rows",
                dataset.name, table.name, table.rows
            );
        }
    }
    for excluded in &description.excluded {
        let _ = writeln!(
            out,
            "  not included: {} ({})",
            excluded.name, excluded.reason
        );
    }
    if description.kind == Kind::Full {
        let _ = writeln!(
            out,
            "  blobs:     {} ({} bytes)",
            totals.blobs, totals.blob_bytes
        );
    }
    let _ = writeln!(
        out,
        "  archive:   {} members, {} bytes",
        totals.members, totals.bytes
    );
    out
}

fn restore_summary(restored: &Restored, storage: &str) -> String {
    let description = &restored.description;
    let mut out = format!(
        "restored a {} backup in {:.1}s\n",
        description.kind,
        restored.elapsed.as_secs_f64()
    );
    describe(description, &mut out);
    let _ = writeln!(out, "  tables:");
    for (table, rows) in &restored.tables {
        let _ = writeln!(out, "    {table:<28} {rows:>12} rows");
    }
    for skipped in &restored.skipped {
        let _ = writeln!(out, "  not restored: {skipped}");
    }
    match description.kind {
        Kind::Full => {
            let _ = writeln!(
                out,
                "  blobs:     {} ({} bytes) into {storage}, {} of them already there",
                restored.blobs, restored.blob_bytes, restored.blobs_present
            );
        }
        Kind::Metadata => {
            let _ = writeln!(
                out,
                "  blobs:     none in a metadata backup: image and chart content must already \
                 be in the registry storage ({storage})"
            );
        }
    }
    let _ = writeln!(
        out,
        "The vulnerability database was not restored (backups never hold it): \
         re-download it before scanning images."
    );
    out
}
