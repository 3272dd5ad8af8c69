//! Writing an archive from one database snapshot, as a stream.
//!
//! Consistency: every read happens in one `REPEATABLE READ READ ONLY`
//! transaction, so the counts in `backup.json`, the rows, and the list of
//! blobs copied are the same snapshot however many pushes and API writes go
//! on meanwhile; nothing is locked, so they do go on.
//!
//! Speed and memory: each table is read with one `COPY` of `row_to_json`,
//! whose output already is the NDJSON we store, and cut into chunks of
//! [`CHUNK_BYTES`]; a chunk is compressed on a thread of its own while the
//! next one arrives. Blobs are copied through in pieces, read ahead of the
//! write. The checksums member needs its size in its header before its
//! first byte: the metadata chunks' lines are kept (a few per table), and a
//! blob's line is its digest, verified while it was copied, so those lines
//! are listed again from the snapshot rather than remembered.

use std::io::Write as _;
use std::time::Instant;

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use chrono::Utc;
use flate2::Compression;
use flate2::write::GzEncoder;
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};
use sqlx::{Connection as _, PgConnection};
use tokio::io::{AsyncWrite, BufWriter};

use super::progress::Progress;
use super::tar::TarWriter;
use super::{
    BlobsDescription, CHECKSUMS_MEMBER, CHUNK_BYTES, DESCRIPTION_MEMBER, DatasetDescription,
    Description, FORMAT, FORMAT_VERSION, Kind, Options, Source, TableDescription, blob_member,
    checksum_line, metadata_member, plan,
};
use crate::db::{self, ident};
use crate::registry::digest::Digest;
use crate::storage::Storage;

/// gzip level 1: JSON rows repeat their keys, so even the fastest level
/// shrinks them five to ten times, at several times the speed of level 6.
const GZIP_LEVEL: u32 = 1;
/// Blobs listed per round trip to the snapshot's cursor.
const BLOB_BATCH: i64 = 512;
/// The size of the pieces a blob is copied in. Every piece is handed from
/// the reading thread to the archive and to the hashing thread, and at 1 MiB
/// those handoffs cost a full backup about a fifth of its speed; 2 MiB is
/// also the most tokio's stdout writes at once. Larger pieces raise the
/// peak memory (4 MiB: by 20 MiB) for no measurable gain.
const BLOB_CHUNK: usize = 2 << 20;
/// Pieces of one blob read ahead of the archive write.
const READ_AHEAD: usize = 2;
/// Pieces written to the archive ahead of their hashing.
const HASH_AHEAD: usize = 2;

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub description: Description,
    /// The archive's size in bytes.
    pub bytes: u64,
}

/// Writes a whole archive to `sink`, which is flushed but not shut down.
/// `storage` (the registry content) is needed for a full backup.
///
/// On error the archive is incomplete (no checksums member, or no end
/// marker), and readers refuse it; a caller writing to a named place must
/// still discard it.
pub async fn write_archive<W>(
    conn: &mut PgConnection,
    storage: Option<&Storage>,
    options: Options,
    sink: W,
    progress: &Progress,
) -> anyhow::Result<Written>
where
    W: AsyncWrite + Unpin + Send,
{
    let started = Instant::now();
    let mut tx = conn.begin().await?;
    for setting in [
        // First: the snapshot is taken by the first query after it.
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        // row_to_json writes times in the session's zone.
        "SET LOCAL TimeZone = 'UTC'",
        "SET LOCAL statement_timeout = 0",
        "SET LOCAL idle_in_transaction_session_timeout = 0",
    ] {
        sqlx::query(setting).execute(&mut *tx).await?;
    }

    let schema_version = db::applied_schema_version(&mut tx).await?;
    ensure!(
        schema_version == db::schema_version(),
        "the database schema is at version {schema_version}, this msr knows version {}: \
         run the msr that matches it (or `msr migrate` first)",
        db::schema_version()
    );
    let storage = match options.kind {
        Kind::Full => Some(storage.context("a full backup needs the registry storage")?),
        Kind::Metadata => None,
    };

    let (included, excluded) = plan(options.ignore_scan_data);
    let mut datasets = Vec::new();
    for dataset in &included {
        let mut tables = Vec::new();
        for table in dataset.tables {
            tables.push(TableDescription {
                name: (*table).to_owned(),
                rows: count_rows(&mut tx, table).await?,
                columns: columns(&mut tx, table).await?,
            });
        }
        datasets.push(DatasetDescription {
            name: dataset.name.to_owned(),
            tables,
        });
    }
    let blobs = match storage {
        Some(_) => {
            let (count, bytes): (i64, i64) =
                sqlx::query_as("SELECT count(*), coalesce(sum(size), 0)::bigint FROM blobs")
                    .fetch_one(&mut *tx)
                    .await?;
            Some(BlobsDescription {
                count: count as u64,
                bytes: bytes as u64,
            })
        }
        None => None,
    };
    // now() is the transaction's start: the snapshot's time.
    let (database, created): (String, chrono::DateTime<Utc>) =
        sqlx::query_as("SELECT current_database()::text, now()")
            .fetch_one(&mut *tx)
            .await?;
    let description = Description {
        format: FORMAT.to_owned(),
        format_version: FORMAT_VERSION,
        kind: options.kind,
        created,
        ignore_scan_data: options.ignore_scan_data,
        schema_version,
        msr_version: env!("CARGO_PKG_VERSION").to_owned(),
        source: Source {
            host: hostname::get()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
            database,
            storage: storage.map(|storage| storage.location().to_owned()),
        },
        datasets,
        excluded,
        blobs,
    };
    let mtime = description.created.timestamp();

    let mut tar = TarWriter::new(BufWriter::with_capacity(1 << 20, sink));
    let mut listed: Vec<(String, String)> = Vec::new();
    let mut json = serde_json::to_vec_pretty(&description)?;
    json.push(b'\n');
    tar.append(DESCRIPTION_MEMBER, &json, mtime)
        .await
        .context("writing the archive")?;
    listed.push((DESCRIPTION_MEMBER.to_owned(), sha256_hex(&json)));

    progress.rows(description.rows());
    let mut compressor = Compressor::start()?;
    for dataset in &description.datasets {
        for table in &dataset.tables {
            let rows = copy_table(
                &mut tx,
                &mut tar,
                &mut compressor,
                &mut listed,
                &dataset.name,
                &table.name,
                mtime,
                progress,
            )
            .await
            .with_context(|| format!("backing up table {}", table.name))?;
            ensure!(
                rows == table.rows,
                "table {}: read {rows} rows, but the snapshot counted {}",
                table.name,
                table.rows
            );
            tracing::debug!(table = %table.name, rows, "table written");
        }
    }
    drop(compressor);

    if let (Some(storage), Some(blobs)) = (storage, &description.blobs) {
        progress.bytes(blobs.bytes);
        copy_blobs(&mut tx, storage, &mut tar, *blobs, mtime, progress).await?;
    }
    write_checksums(&mut tx, &mut tar, &listed, description.blobs, mtime).await?;
    tx.commit().await?;
    let (_, bytes) = tar.finish().await.context("writing the archive")?;
    progress.finish();
    tracing::debug!(took = ?started.elapsed(), bytes, "archive written");
    Ok(Written { description, bytes })
}

async fn count_rows(conn: &mut PgConnection, table: &str) -> anyhow::Result<u64> {
    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM ONLY public.{}",
        ident(table)
    )))
    .fetch_one(&mut *conn)
    .await?;
    Ok(count as u64)
}

/// A table's column names in order: the keys `row_to_json` gives each row.
async fn columns(conn: &mut PgConnection, table: &str) -> anyhow::Result<Vec<String>> {
    let columns = db::columns(conn, table).await?;
    ensure!(!columns.is_empty(), "table {table} has no columns");
    Ok(columns.into_iter().map(|(name, _)| name).collect())
}

/// Streams one table into chunk members; returns its row count.
#[allow(clippy::too_many_arguments)]
async fn copy_table<W: AsyncWrite + Unpin + Send>(
    conn: &mut PgConnection,
    tar: &mut TarWriter<W>,
    compressor: &mut Compressor,
    listed: &mut Vec<(String, String)>,
    dataset: &str,
    table: &str,
    mtime: i64,
    progress: &Progress,
) -> anyhow::Result<u64> {
    // CSV with delimiter and quote characters that JSON text never holds
    // raw (it escapes every control character) is COPY without escaping:
    // each line is exactly `row_to_json`'s output.
    let sql = format!(
        "COPY (SELECT row_to_json(t)::text FROM ONLY public.{} AS t) TO STDOUT \
         WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')",
        ident(table)
    );
    let mut stream = conn.copy_out_raw(&sql).await?;
    let mut rows = 0u64;
    let mut chunk = compressor.buffer();
    let mut chunks = 0u64;
    // The member being compressed while the next chunk fills.
    let mut in_flight: Option<String> = None;
    while let Some(data) = stream.next().await {
        let data = data?;
        let lines = data.iter().filter(|&&b| b == b'\n').count() as u64;
        rows += lines;
        progress.advance(lines);
        chunk.extend_from_slice(&data);
        if chunk.len() >= CHUNK_BYTES && chunk.ends_with(b"\n") {
            let path = metadata_member(dataset, table, chunks);
            chunks += 1;
            let done = compressor.compress(chunk).await?;
            let previous = in_flight.replace(path);
            chunk = write_chunk(tar, compressor, listed, previous, done, mtime, progress).await?;
        }
    }
    drop(stream);
    if !chunk.is_empty() {
        ensure!(chunk.ends_with(b"\n"), "COPY output ended inside a row");
        let path = metadata_member(dataset, table, chunks);
        let done = compressor.compress(chunk).await?;
        let previous = in_flight.replace(path);
        chunk = write_chunk(tar, compressor, listed, previous, done, mtime, progress).await?;
    }
    let done = compressor.finish().await?;
    let spare = write_chunk(tar, compressor, listed, in_flight, done, mtime, progress).await?;
    compressor.recycle_buffer(spare);
    compressor.recycle_buffer(chunk);
    Ok(rows)
}

/// Writes the member a finished compression made, if there is one, and
/// hands back an empty buffer for the next chunk.
async fn write_chunk<W: AsyncWrite + Unpin + Send>(
    tar: &mut TarWriter<W>,
    compressor: &mut Compressor,
    listed: &mut Vec<(String, String)>,
    path: Option<String>,
    done: Option<Compressed>,
    mtime: i64,
    progress: &Progress,
) -> anyhow::Result<Vec<u8>> {
    let (Some(path), Some(done)) = (path, done) else {
        return Ok(compressor.buffer());
    };
    tar.append(&path, &done.gz, mtime)
        .await
        .context("writing the archive")?;
    listed.push((path, done.hex));
    progress.archive_size(tar.written());
    compressor.recycle_output(done.gz);
    Ok(done.rows)
}

/// A compressed chunk, and the buffer its rows were in (emptied) for reuse.
struct Compressed {
    rows: Vec<u8>,
    gz: Vec<u8>,
    hex: String,
}

/// Compresses chunks on a thread of its own, one while the caller gathers
/// the next, reusing the same few buffers: memory stays at two chunks and
/// their output whatever the data's size. (Compressing on tokio's blocking
/// pool instead let peak RSS grow with the data: each of its short-lived
/// threads ends up with an allocator arena of its own.)
struct Compressor {
    jobs: Option<std::sync::mpsc::Sender<(Vec<u8>, Vec<u8>)>>,
    results: tokio::sync::mpsc::Receiver<std::io::Result<Compressed>>,
    busy: bool,
    spare_rows: Vec<Vec<u8>>,
    spare_gz: Option<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Compressor {
    fn start() -> std::io::Result<Self> {
        let (jobs, inbox) = std::sync::mpsc::channel::<(Vec<u8>, Vec<u8>)>();
        let (outbox, results) = tokio::sync::mpsc::channel(1);
        let thread = std::thread::Builder::new()
            .name("msr-gzip".into())
            .spawn(move || {
                for (mut rows, mut gz) in inbox {
                    gz.clear();
                    let mut encoder = GzEncoder::new(gz, Compression::new(GZIP_LEVEL));
                    let result = encoder
                        .write_all(&rows)
                        .and_then(|()| encoder.finish())
                        .map(|gz| {
                            rows.clear();
                            let hex = sha256_hex(&gz);
                            Compressed { rows, gz, hex }
                        });
                    if outbox.blocking_send(result).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            results,
            busy: false,
            spare_rows: Vec::new(),
            spare_gz: None,
            thread: Some(thread),
        })
    }

    fn buffer(&mut self) -> Vec<u8> {
        self.spare_rows
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK_BYTES + (64 << 10)))
    }

    fn recycle_buffer(&mut self, mut rows: Vec<u8>) {
        rows.clear();
        if self.spare_rows.len() < 2 {
            self.spare_rows.push(rows);
        }
    }

    fn recycle_output(&mut self, gz: Vec<u8>) {
        self.spare_gz = Some(gz);
    }

    /// Starts compressing `rows`; returns the previous chunk's result.
    async fn compress(&mut self, rows: Vec<u8>) -> anyhow::Result<Option<Compressed>> {
        let previous = self.finish().await?;
        let gz = self
            .spare_gz
            .take()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK_BYTES / 4));
        self.jobs
            .as_ref()
            .expect("the thread runs until drop")
            .send((rows, gz))
            .map_err(|_| anyhow::anyhow!("the compression thread stopped"))?;
        self.busy = true;
        Ok(previous)
    }

    /// The result of the chunk in flight, if any.
    async fn finish(&mut self) -> anyhow::Result<Option<Compressed>> {
        if !std::mem::take(&mut self.busy) {
            return Ok(None);
        }
        let done = self
            .results
            .recv()
            .await
            .context("the compression thread stopped")??;
        Ok(Some(done))
    }
}

impl Drop for Compressor {
    fn drop(&mut self) {
        // Closing both channels ends the thread's loop wherever it is.
        self.jobs = None;
        self.results.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Copies every blob of the snapshot, in digest order, each checked
/// against its digest and its recorded size on the way.
async fn copy_blobs<W: AsyncWrite + Unpin + Send>(
    conn: &mut PgConnection,
    storage: &Storage,
    tar: &mut TarWriter<W>,
    expected: BlobsDescription,
    mtime: i64,
    progress: &Progress,
) -> anyhow::Result<()> {
    sqlx::query(
        "DECLARE msr_backup_blobs NO SCROLL CURSOR FOR SELECT digest, size FROM blobs ORDER BY digest",
    )
    .execute(&mut *conn)
    .await?;
    let mut verifier = Verifier::start()?;
    let mut copied = 0u64;
    loop {
        let batch: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "FETCH FORWARD {BLOB_BATCH} FROM msr_backup_blobs"
        )))
        .fetch_all(&mut *conn)
        .await?;
        if batch.is_empty() {
            break;
        }
        for (digest, size) in batch {
            let digest: Digest = digest.parse()?;
            copy_blob(
                storage,
                tar,
                &mut verifier,
                &digest,
                size as u64,
                mtime,
                progress,
            )
            .await
            .with_context(|| format!("backing up blob {digest}"))?;
            verifier.check_finished()?;
            copied += 1;
        }
    }
    verifier.finish().await?;
    sqlx::query("CLOSE msr_backup_blobs")
        .execute(&mut *conn)
        .await?;
    ensure!(
        copied == expected.count,
        "copied {copied} blobs, but the snapshot counted {}",
        expected.count
    );
    Ok(())
}

async fn copy_blob<W: AsyncWrite + Unpin + Send>(
    storage: &Storage,
    tar: &mut TarWriter<W>,
    verifier: &mut Verifier,
    digest: &Digest,
    size: u64,
    mtime: i64,
    progress: &Progress,
) -> anyhow::Result<()> {
    let key = digest.storage_key();
    let stream = storage
        .read(&key, BLOB_CHUNK)
        .await?
        .with_context(|| format!("the metadata lists it, but storage has no {key}"))?;
    // Reading runs ahead of hashing and writing, so the disk (or S3) and
    // the archive's consumer are busy at the same time.
    let (chunks_tx, mut chunks) = tokio::sync::mpsc::channel::<Result<Bytes, _>>(READ_AHEAD);
    let reader = tokio::spawn(async move {
        let mut stream = stream;
        while let Some(chunk) = stream.next().await {
            if chunks_tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
    tar.start(&blob_member(digest.hex()), size, mtime)
        .await
        .context("writing the archive")?;
    let mut seen = 0u64;
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk?;
        seen += chunk.len() as u64;
        if seen > size {
            reader.abort();
            bail!("storage holds more than the {size} bytes the metadata records");
        }
        verifier.hash(chunk.clone()).await?;
        tar.write(&chunk).await.context("writing the archive")?;
        progress.advance(chunk.len() as u64);
    }
    reader.await?;
    ensure!(
        seen == size,
        "storage holds {seen} bytes, the metadata records {size}"
    );
    verifier.end(digest.clone()).await?;
    progress.archive_size(tar.written());
    Ok(())
}

enum ToHash {
    Chunk(Bytes),
    End(Digest),
}

/// Hashes blob content on a thread of its own while the archive is being
/// written: one core hashes about as fast as tar copies, so hashing in line
/// with the copy held a full backup to two thirds of tar's speed. A damaged
/// blob is reported a few pieces after its last byte was written, and
/// always before the archive gets its checksums member.
struct Verifier {
    chunks: Option<tokio::sync::mpsc::Sender<ToHash>>,
    /// The digest of a blob whose content hashed to something else.
    mismatches: tokio::sync::mpsc::UnboundedReceiver<(Digest, Digest)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Verifier {
    fn start() -> std::io::Result<Self> {
        let (chunks, mut received) = tokio::sync::mpsc::channel(HASH_AHEAD);
        let (mismatch, mismatches) = tokio::sync::mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("msr-backup-hash".to_owned())
            .spawn(move || {
                let mut hasher = Sha256::new();
                while let Some(message) = received.blocking_recv() {
                    match message {
                        ToHash::Chunk(chunk) => hasher.update(&chunk),
                        ToHash::End(expected) => {
                            let actual = Digest::from_hasher(std::mem::take(&mut hasher));
                            if actual != expected && mismatch.send((expected, actual)).is_err() {
                                return;
                            }
                        }
                    }
                }
            })?;
        Ok(Self {
            chunks: Some(chunks),
            mismatches,
            thread: Some(thread),
        })
    }

    async fn send(&mut self, message: ToHash) -> anyhow::Result<()> {
        let chunks = self.chunks.as_ref().context("the verifier has finished")?;
        if chunks.send(message).await.is_err() {
            bail!("the hashing thread stopped");
        }
        Ok(())
    }

    async fn hash(&mut self, chunk: Bytes) -> anyhow::Result<()> {
        self.send(ToHash::Chunk(chunk)).await
    }

    /// The blob's last chunk has been given.
    async fn end(&mut self, digest: Digest) -> anyhow::Result<()> {
        self.send(ToHash::End(digest)).await
    }

    /// Fails on the first blob found damaged so far.
    fn check_finished(&mut self) -> anyhow::Result<()> {
        match self.mismatches.try_recv() {
            Ok((expected, actual)) => Err(damaged(&expected, &actual)),
            Err(_) => Ok(()),
        }
    }

    /// Waits until every blob given has been hashed.
    async fn finish(mut self) -> anyhow::Result<()> {
        self.chunks = None;
        if let Some((expected, actual)) = self.mismatches.recv().await {
            return Err(damaged(&expected, &actual));
        }
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join())
                .await?
                .map_err(|_| anyhow::anyhow!("the hashing thread panicked"))?;
        }
        Ok(())
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has hashed the few
        // pieces already queued.
        self.chunks = None;
        self.mismatches.close();
    }
}

fn damaged(expected: &Digest, actual: &Digest) -> anyhow::Error {
    anyhow::anyhow!(
        "backing up blob {expected}: the stored content is damaged: its sha256 is {actual}"
    )
}

/// The last member: a `sha256sum -c` line per member, in archive order.
async fn write_checksums<W: AsyncWrite + Unpin + Send>(
    conn: &mut PgConnection,
    tar: &mut TarWriter<W>,
    listed: &[(String, String)],
    blobs: Option<BlobsDescription>,
    mtime: i64,
) -> anyhow::Result<()> {
    let mut head = String::new();
    for (path, hex) in listed {
        head.push_str(&checksum_line(hex, path));
    }
    let blob_count = blobs.map_or(0, |blobs| blobs.count);
    let zero = "0".repeat(64);
    let blob_line = checksum_line(&zero, &blob_member(&zero)).len() as u64;
    let size = head.len() as u64 + blob_count * blob_line;
    tar.start(CHECKSUMS_MEMBER, size, mtime)
        .await
        .context("writing the archive")?;
    tar.write(head.as_bytes())
        .await
        .context("writing the archive")?;
    if blob_count > 0 {
        sqlx::query(
            "DECLARE msr_backup_digests NO SCROLL CURSOR FOR SELECT digest FROM blobs ORDER BY digest",
        )
        .execute(&mut *conn)
        .await?;
        loop {
            let batch: Vec<String> =
                sqlx::query_scalar("FETCH FORWARD 10000 FROM msr_backup_digests")
                    .fetch_all(&mut *conn)
                    .await?;
            if batch.is_empty() {
                break;
            }
            let mut lines = String::with_capacity(batch.len() * blob_line as usize);
            for digest in &batch {
                let digest: Digest = digest.parse()?;
                lines.push_str(&checksum_line(digest.hex(), &blob_member(digest.hex())));
            }
            tar.write(lines.as_bytes())
                .await
                .context("writing the archive")?;
        }
    }
    Ok(())
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
