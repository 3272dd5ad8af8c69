//! Loading an archive into an instance, all or nothing.
//!
//! The archive is read once. Rows go into one transaction through `COPY`
//! (each JSON row rewritten as a COPY text line, on a blocking thread, while
//! the previous chunk streams into PostgreSQL), with the tables' keys and
//! foreign keys dropped and rebuilt ([`BulkLoad`]), which also checks them
//! over every row. Blobs are digest-checked on the way and staged under
//! `_restore/<id>/` in registry storage. Only once the checksums member has
//! matched every member are the staged blobs moved into place and the
//! transaction committed; any failure before that rolls back and deletes
//! what was staged, so a damaged archive changes nothing.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use futures::TryStreamExt as _;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use sqlx::{Connection as _, PgConnection, PgPool};
use tokio::io::AsyncRead;
use tokio::sync::mpsc;

use super::progress::Progress;
use super::read::{ArchiveReader, Member, Totals};
use super::{Description, Kind};
use crate::db::{self, BulkLoad, ident};
use crate::registry::{BackupClass, DATASETS};
use crate::storage::Storage;

#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreOptions {
    /// Leave the archive's scan results out.
    pub ignore_scan_data: bool,
    /// Replace the data of a target that already has some.
    pub replace: bool,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub description: Description,
    /// (table, rows loaded), in restore order.
    pub tables: Vec<(String, u64)>,
    /// Datasets in the archive that were not loaded, and why.
    pub skipped: Vec<String>,
    pub blobs: u64,
    pub blob_bytes: u64,
    /// Blobs already in storage with the same digest, so not written again.
    pub blobs_present: u64,
    pub elapsed: Duration,
}

enum Message {
    Rows { table: String, copy_text: Vec<u8> },
    Done(Totals),
}

/// Restores `input` into the database behind `pool` (migrated first) and,
/// for a full archive, into `storage`.
pub async fn restore<R>(
    pool: &PgPool,
    storage: &Storage,
    input: R,
    options: RestoreOptions,
    progress: &Progress,
) -> anyhow::Result<Restored>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let started = Instant::now();
    let reader = ArchiveReader::open(input).await?;
    let description = reader.description().clone();
    ensure!(
        description.schema_version <= db::schema_version(),
        "the archive is from a newer msr: its schema is version {}, this msr knows up to \
         version {}; restore it with the msr version it was made with ({}) or newer",
        description.schema_version,
        db::schema_version(),
        description.msr_version
    );
    db::migrate(pool).await?;

    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    for setting in [
        "SET LOCAL statement_timeout = 0",
        "SET LOCAL maintenance_work_mem = '512MB'",
    ] {
        sqlx::query(setting).execute(&mut *tx).await?;
    }
    let backed_up: Vec<&str> = DATASETS
        .iter()
        .filter(|dataset| !matches!(dataset.class, BackupClass::Never { .. }))
        .flat_map(|dataset| dataset.tables.iter().copied())
        .collect();
    prepare_target(&mut tx, &backed_up, options.replace).await?;

    let mut skipped = Vec::new();
    let mut specs = HashMap::new();
    for dataset in &description.datasets {
        let known = DATASETS
            .iter()
            .find(|known| {
                known.name == dataset.name && !matches!(known.class, BackupClass::Never { .. })
            })
            .with_context(|| {
                format!(
                    "the archive holds dataset {:?}, which this msr does not restore",
                    dataset.name
                )
            })?;
        if known.class == BackupClass::ScanData && options.ignore_scan_data {
            skipped.push(format!("{} (--ignore-scan-data)", dataset.name));
            continue;
        }
        for table in &dataset.tables {
            ensure!(
                known.tables.contains(&table.name.as_str()),
                "the archive holds table {:?} in dataset {:?}, which has no such table here",
                table.name,
                dataset.name
            );
            let spec = ColumnSpec::for_table(&mut tx, &table.name, &table.columns).await?;
            specs.insert(table.name.clone(), spec);
        }
    }
    let bulk = BulkLoad::begin(&mut tx, &backed_up).await?;
    // Emptied in this transaction, the tables take COPY FREEZE: rows are
    // written already frozen, so the index builds and reference checks that
    // follow, and the first VACUUM, do not rewrite every page to mark them.
    // (The tables are empty, and no foreign key is left to object.)
    let list = backed_up
        .iter()
        .map(|t| ident(t))
        .collect::<Vec<_>>()
        .join(", ");
    sqlx::query(sqlx::AssertSqlSafe(format!("TRUNCATE {list}")))
        .execute(&mut *tx)
        .await?;

    let staging = format!("_restore/{}", uuid::Uuid::new_v4());
    let full = description.kind == Kind::Full;
    progress.rows(description.rows());
    let (messages_tx, mut messages) = mpsc::channel::<anyhow::Result<Message>>(2);

    let statements: HashMap<String, String> = specs
        .iter()
        .map(|(table, spec)| (table.clone(), spec.copy_statement.clone()))
        .collect();
    let producer = tokio::spawn(produce(
        reader,
        specs,
        full.then(|| (storage.clone(), staging.clone())),
        messages_tx,
    ));
    let loaded = load(&mut tx, &statements, &mut messages, progress).await;
    // A failed load stops reading the archive: the reader sees the channel
    // closed at its next send.
    drop(messages);
    let produced = producer.await.context("the archive reader stopped")?;
    let outcome = async {
        let (tables, totals) = loaded?;
        let blobs_present = produced?;
        for (table, rows) in &tables {
            let described = description
                .datasets
                .iter()
                .flat_map(|d| &d.tables)
                .find(|t| &t.name == table)
                .map_or(0, |t| t.rows);
            ensure!(
                *rows == described,
                "table {table}: loaded {rows} rows, the archive lists {described}"
            );
        }
        bulk.finish(&mut tx)
            .await
            .context("the archive's rows break a key or a reference")?;
        if full {
            move_staged(storage, &staging).await?;
        }
        tx.commit().await?;
        Ok((tables, totals, blobs_present))
    }
    .await;
    match outcome {
        Ok((tables, totals, blobs_present)) => {
            progress.finish();
            Ok(Restored {
                description,
                tables,
                skipped,
                blobs: totals.blobs,
                blob_bytes: totals.blob_bytes,
                blobs_present,
                elapsed: started.elapsed(),
            })
        }
        Err(err) => {
            if full && let Err(cleanup) = delete_prefix(storage, &staging).await {
                tracing::warn!(error = %cleanup, prefix = %staging, "could not remove staged blobs");
            }
            Err(err)
        }
    }
}

/// Locks the tables a restore fills and makes sure they are empty, or
/// empties them when told to replace.
async fn prepare_target(
    conn: &mut PgConnection,
    tables: &[&str],
    replace: bool,
) -> anyhow::Result<()> {
    let list = tables
        .iter()
        .map(|t| ident(t))
        .collect::<Vec<_>>()
        .join(", ");
    // No replica writes while we look, nor until we commit.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "LOCK TABLE {list} IN ACCESS EXCLUSIVE MODE"
    )))
    .execute(&mut *conn)
    .await?;
    let mut populated = Vec::new();
    for table in tables {
        let any: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {})",
            ident(table)
        )))
        .fetch_one(&mut *conn)
        .await?;
        if any {
            populated.push(*table);
        }
    }
    if populated.is_empty() {
        return Ok(());
    }
    if !replace {
        bail!(
            "the target instance is not empty (it has rows in {}): restore into a new instance, \
             or pass --replace to replace all of its data with the archive's",
            populated.join(", ")
        );
    }
    // CASCADE reaches the tables that point at these and are not restored
    // (in-progress uploads): they would point at nothing.
    sqlx::query(sqlx::AssertSqlSafe(format!("TRUNCATE {list} CASCADE")))
        .execute(&mut *conn)
        .await?;
    tracing::info!(tables = %populated.join(", "), "existing data replaced");
    Ok(())
}

/// Streams each chunk into PostgreSQL with a `COPY` of its own (one round
/// trip per few MiB); returns the rows per table and the archive's totals,
/// once the reader has checked it all.
async fn load(
    conn: &mut PgConnection,
    statements: &HashMap<String, String>,
    messages: &mut mpsc::Receiver<anyhow::Result<Message>>,
    progress: &Progress,
) -> anyhow::Result<(Vec<(String, u64)>, Totals)> {
    let mut tables: Vec<(String, u64)> = Vec::new();
    loop {
        let message = messages
            .recv()
            .await
            .context("the archive reader stopped")??;
        match message {
            Message::Rows { table, copy_text } => {
                let statement = statements.get(&table).expect("a spec per table");
                let mut copy_in = conn.copy_in_raw(statement).await?;
                copy_in.send(copy_text).await?;
                let rows = copy_in
                    .finish()
                    .await
                    .with_context(|| format!("loading table {table}"))?;
                progress.advance(rows);
                match tables.last_mut() {
                    Some((last, count)) if *last == table => *count += rows,
                    _ => tables.push((table, rows)),
                }
            }
            Message::Done(totals) => return Ok((tables, totals)),
        }
    }
}

/// Reads the archive: converts rows to COPY text and stages blobs. Sends
/// `Done` only once the reader has checked every member; returns how many
/// blobs were already in storage, and the last error, if any, is sent too.
async fn produce<R: AsyncRead + Unpin + Send>(
    mut reader: ArchiveReader<R>,
    specs: HashMap<String, ColumnSpec>,
    staging: Option<(Storage, String)>,
    messages: mpsc::Sender<anyhow::Result<Message>>,
) -> anyhow::Result<u64> {
    let specs = std::sync::Arc::new(specs);
    let outcome: anyhow::Result<(Totals, u64)> = async {
        let mut present = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        while let Some(member) = reader.next().await? {
            match member {
                Member::Rows {
                    dataset,
                    table,
                    ndjson,
                    ..
                } => {
                    if !specs.contains_key(&table) {
                        continue;
                    }
                    let specs = specs.clone();
                    let name = table.clone();
                    let copy_text = tokio::task::spawn_blocking(move || {
                        let spec = &specs[&name];
                        let mut out = Vec::with_capacity(ndjson.len());
                        spec.convert(&ndjson, &mut out).map(|()| out)
                    })
                    .await?
                    .map_err(|problem| anyhow::anyhow!("metadata/{dataset}/{table}: {problem}"))?;
                    if messages
                        .send(Ok(Message::Rows { table, copy_text }))
                        .await
                        .is_err()
                    {
                        bail!("the database side of the restore stopped");
                    }
                }
                Member::Blob { digest, size } => {
                    let Some((storage, staging)) = &staging else {
                        // The reader refuses blobs in a metadata archive.
                        unreachable!("blob in a metadata archive");
                    };
                    let key = digest.storage_key();
                    if storage.size(&key).await? == Some(size) {
                        // Content-addressed: the same digest is the same
                        // bytes; the reader still checks the archive's.
                        while reader.read_blob(&mut buf).await? > 0 {}
                        present += 1;
                        continue;
                    }
                    let mut writer = storage.writer(&format!("{staging}/{}", digest.hex()));
                    loop {
                        let got = reader.read_blob(&mut buf).await?;
                        if got == 0 {
                            break;
                        }
                        writer.write(Bytes::copy_from_slice(&buf[..got])).await?;
                    }
                    writer.finish().await?;
                }
            }
        }
        Ok((reader.totals().clone(), present))
    }
    .await;
    match outcome {
        Ok((totals, present)) => {
            let _ = messages.send(Ok(Message::Done(totals))).await;
            Ok(present)
        }
        Err(err) => {
            let message = format!("{err:#}");
            let _ = messages.send(Err(err)).await;
            Err(anyhow::anyhow!(message))
        }
    }
}

/// Moves staged blobs to their keys. A blob moved before a later failure
/// stays: it is content-addressed, so it can only be the right bytes.
async fn move_staged(storage: &Storage, staging: &str) -> anyhow::Result<()> {
    let keys: Vec<String> = storage.list(staging).try_collect().await?;
    for key in keys {
        let hex = key.rsplit('/').next().unwrap_or_default();
        storage
            .rename(&key, &format!("blobs/sha256/{hex}"))
            .await
            .with_context(|| format!("moving restored blob {hex} into place"))?;
    }
    Ok(())
}

async fn delete_prefix(storage: &Storage, prefix: &str) -> anyhow::Result<()> {
    let keys: Vec<String> = storage.list(prefix).try_collect().await?;
    for key in keys {
        storage.delete(&key).await?;
    }
    Ok(())
}

/// How one table's archive rows become COPY text lines.
struct ColumnSpec {
    /// The archive's keys, in its order, which COPY's column list follows.
    columns: Vec<String>,
    /// Per column: json or jsonb, whose value is written as JSON text.
    json: Vec<bool>,
    copy_statement: String,
}

impl ColumnSpec {
    async fn for_table(
        conn: &mut PgConnection,
        table: &str,
        archive_columns: &[String],
    ) -> anyhow::Result<Self> {
        let target = db::columns(conn, table).await?;
        let mut json = Vec::new();
        for column in archive_columns {
            let (_, kind) = target
                .iter()
                .find(|(name, _)| name == column)
                .with_context(|| {
                    format!("the archive's table {table} has a column {column:?} this schema lacks")
                })?;
            json.push(kind == "json" || kind == "jsonb");
        }
        let list = archive_columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Self {
            columns: archive_columns.to_vec(),
            json,
            copy_statement: format!(
                "COPY public.{} ({list}) FROM STDIN WITH (FREEZE)",
                ident(table)
            ),
        })
    }

    /// One COPY text line per JSON row.
    fn convert(&self, ndjson: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let Some(lines) = ndjson.strip_suffix(b"\n") else {
            return Ok(());
        };
        for (number, line) in lines.split(|&b| b == b'\n').enumerate() {
            self.convert_row(line, out)
                .map_err(|problem| format!("row {}: {problem}", number + 1))?;
        }
        Ok(())
    }

    fn convert_row(&self, line: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let row: Row<'_> =
            serde_json::from_slice(line).map_err(|err| format!("not a JSON object: {err}"))?;
        if row.0.len() != self.columns.len() {
            return Err(format!(
                "{} fields, but the table has {} columns",
                row.0.len(),
                self.columns.len()
            ));
        }
        for (index, column) in self.columns.iter().enumerate() {
            // Rows from row_to_json list the columns in order; look further
            // only for an archive written otherwise.
            let value = match row.0.get(index) {
                Some((key, value)) if key == column => *value,
                _ => row
                    .0
                    .iter()
                    .find(|(key, _)| key == column)
                    .map(|(_, value)| *value)
                    .ok_or_else(|| format!("no {column:?} field"))?,
            };
            if index > 0 {
                out.push(b'\t');
            }
            write_value(value.get(), self.json[index], out)
                .map_err(|problem| format!("{column}: {problem}"))?;
        }
        out.push(b'\n');
        Ok(())
    }
}

/// A JSON value as COPY text: `\N` for null, JSON text for json columns,
/// the string itself for strings, numbers and booleans as written.
fn write_value(raw: &str, json_column: bool, out: &mut Vec<u8>) -> Result<(), String> {
    if raw == "null" {
        out.extend_from_slice(b"\\N");
    } else if json_column {
        escape_copy(raw.as_bytes(), out);
    } else if raw.starts_with('"') {
        let text: Cow<'_, str> = if raw.contains('\\') {
            Cow::Owned(serde_json::from_str::<String>(raw).map_err(|err| err.to_string())?)
        } else {
            Cow::Borrowed(&raw[1..raw.len() - 1])
        };
        escape_copy(text.as_bytes(), out);
    } else if raw.starts_with('{') || raw.starts_with('[') {
        return Err("an object or array where the column holds a scalar".into());
    } else {
        out.extend_from_slice(raw.as_bytes());
    }
    Ok(())
}

/// COPY text escaping: backslash, and the three characters that would end a
/// field or a row.
fn escape_copy(bytes: &[u8], out: &mut Vec<u8>) {
    if !bytes
        .iter()
        .any(|b| matches!(b, b'\\' | b'\n' | b'\r' | b'\t'))
    {
        out.extend_from_slice(bytes);
        return;
    }
    for &byte in bytes {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            other => out.push(other),
        }
    }
}

/// A row's fields in the order written, borrowing from the line.
struct Row<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Row<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = Row<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row<'de>, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    fields.push((key.0, map.next_value::<&'de RawValue>()?));
                }
                Ok(Row(fields))
            }
        }
        deserializer.deserialize_map(RowVisitor)
    }
}

/// An object key, borrowed unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(columns: &[&str], json: &[bool]) -> ColumnSpec {
        ColumnSpec {
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            json: json.to_vec(),
            copy_statement: String::new(),
        }
    }

    #[test]
    fn rows_become_copy_text() {
        let spec = spec(
            &["id", "name", "value", "data", "n", "flag"],
            &[false, false, true, false, false, false],
        );
        let ndjson = concat!(
            r#"{"id":"a","name":"tab\there\\back\nline","value":{"k":"v\n"},"data":"\\x00ff","n":1.5,"flag":true}"#,
            "\n",
            r#"{"flag":false,"n":null,"data":null,"value":"str","name":"","id":"b"}"#,
            "\n",
        );
        let mut out = Vec::new();
        spec.convert(ndjson.as_bytes(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                "a\ttab\\there\\\\back\\nline\t{\"k\":\"v\\\\n\"}\t\\\\x00ff\t1.5\ttrue\n",
                "b\t\t\"str\"\t\\N\t\\N\tfalse\n",
            )
        );
    }

    #[test]
    fn bad_rows_are_named() {
        let spec = spec(&["id", "name"], &[false, false]);
        let mut out = Vec::new();
        for (ndjson, problem) in [
            ("{\"id\":\"a\"}\n", "row 1: 1 fields"),
            ("{\"id\":\"a\",\"nom\":\"b\"}\n", "row 1: no \"name\" field"),
            (
                "{\"id\":\"a\",\"name\":\"b\"}\n[1]\n",
                "row 2: not a JSON object",
            ),
            (
                "{\"id\":\"a\",\"name\":[1]}\n",
                "row 1: name: an object or array",
            ),
        ] {
            let err = spec.convert(ndjson.as_bytes(), &mut out).unwrap_err();
            assert!(err.starts_with(problem), "{err}");
        }
    }
}
