//! Reading an archive as a stream, checking everything on the way: the
//! description first, each metadata chunk against the table it claims and
//! its row count, each blob against its digest, and, at the end, the
//! checksums member against every member seen. [`verify`] is this and
//! nothing else; restore acts on the members as they come and commits only
//! once [`ArchiveReader::next`] has returned `None`.
//!
//! Memory stays bounded without remembering every member: a blob's line in
//! `checksums.sha256` must be its own digest (already checked against its
//! content), so blobs are compared as a running hash over their lines, and
//! only the few metadata members are kept by name.

use std::io::Read as _;

use flate2::read::GzDecoder;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncRead;

use super::tar::{ReadError, TarReader};
use super::write::sha256_hex;
use super::{
    BlobsDescription, CHECKSUMS_MEMBER, DESCRIPTION_MEMBER, Description, FORMAT, FORMAT_VERSION,
    Kind, MAX_DESCRIPTION, MAX_METADATA_MEMBER, MemberPath, checksum_line,
};
use crate::registry::digest::Digest;

/// Why an archive was refused; the message names the member at fault.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not an msr backup: {0}")]
    Foreign(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{member}: {problem}")]
    Damaged { member: String, problem: String },
    #[error("the archive is truncated{}", match .0 { Some(member) => format!(" in member {member}"), None => " (it ends before its checksums member)".to_owned() })]
    Truncated(Option<String>),
    /// Past the first member: the tar structure itself is damaged.
    #[error("{0}")]
    Malformed(String),
    #[error("reading the archive: {0}")]
    Io(#[from] std::io::Error),
}

fn damaged(member: impl Into<String>, problem: impl Into<String>) -> ArchiveError {
    ArchiveError::Damaged {
        member: member.into(),
        problem: problem.into(),
    }
}

/// A member, as [`ArchiveReader::next`] hands it over.
pub enum Member {
    /// One chunk of a table: its rows, decompressed, one JSON object per
    /// line; the table's total is checked against backup.json at the end.
    Rows {
        dataset: String,
        table: String,
        ndjson: Vec<u8>,
        rows: u64,
    },
    /// A blob: read its content with [`ArchiveReader::read_blob`].
    Blob { digest: Digest, size: u64 },
}

/// What a complete, checked archive held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub members: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub bytes: u64,
}

pub struct ArchiveReader<R> {
    tar: TarReader<R>,
    description: Description,
    /// Members other than blobs, in order, with their sha256.
    listed: Vec<(String, String)>,
    /// sha256 over the checksum lines the blobs seen so far must have.
    blob_lines: Sha256,
    /// (dataset index, table index) of the last chunk, and the next
    /// chunk number that table may have.
    position: Option<((usize, usize), u64)>,
    /// Rows read per table, parallel to the description's datasets.
    rows_seen: Vec<Vec<u64>>,
    blob: Option<BlobState>,
    blobs_started: bool,
    last_blob: Option<String>,
    totals: Totals,
    done: bool,
}

struct BlobState {
    member: String,
    digest: Digest,
    hasher: Sha256,
}

impl<R: AsyncRead + Unpin> ArchiveReader<R> {
    /// Reads and checks `backup.json`.
    pub async fn open(input: R) -> Result<Self, ArchiveError> {
        let mut tar = TarReader::new(input);
        let first = match tar.next().await {
            Ok(Some(entry)) => entry,
            Ok(None) => return Err(ArchiveError::Foreign("the archive has no members".into())),
            Err(ReadError::Malformed(problem)) => return Err(ArchiveError::Foreign(problem)),
            Err(err) => return Err(convert(err)),
        };
        if first.path != DESCRIPTION_MEMBER {
            return Err(ArchiveError::Foreign(format!(
                "its first member is {:?}, not {DESCRIPTION_MEMBER}",
                first.path
            )));
        }
        let json = tar
            .read_to_end(MAX_DESCRIPTION)
            .await
            .map_err(|err| match err {
                ReadError::Malformed(problem) => damaged(DESCRIPTION_MEMBER, problem),
                other => convert(other),
            })?;
        let description = parse_description(&json)?;
        let listed = vec![(DESCRIPTION_MEMBER.to_owned(), sha256_hex(&json))];
        let rows_seen = description
            .datasets
            .iter()
            .map(|dataset| vec![0; dataset.tables.len()])
            .collect();
        Ok(Self {
            rows_seen,
            tar,
            description,
            listed,
            blob_lines: Sha256::new(),
            position: None,
            blob: None,
            blobs_started: false,
            last_blob: None,
            totals: Totals {
                members: 1,
                ..Totals::default()
            },
            done: false,
        })
    }

    pub fn description(&self) -> &Description {
        &self.description
    }

    /// The next data member, or `None` once the checksums member has
    /// matched every member and the archive has ended properly.
    pub async fn next(&mut self) -> Result<Option<Member>, ArchiveError> {
        if self.done {
            return Ok(None);
        }
        self.finish_blob().await?;
        let entry = match self.tar.next().await.map_err(convert)? {
            Some(entry) => entry,
            None => {
                return Err(damaged(
                    CHECKSUMS_MEMBER,
                    "missing: the archive ends without its checksums member",
                ));
            }
        };
        self.totals.members += 1;
        let Some(path) = MemberPath::parse(&entry.path) else {
            return Err(damaged(&entry.path, "not a member an msr archive holds"));
        };
        match path {
            MemberPath::Description => Err(damaged(&entry.path, "a second description")),
            MemberPath::Metadata {
                dataset,
                table,
                chunk,
            } => {
                let (dataset, table) = (dataset.to_owned(), table.to_owned());
                self.read_rows(&entry.path, dataset, table, chunk)
                    .await
                    .map(Some)
            }
            MemberPath::Blob(hex) => {
                let hex = hex.to_owned();
                self.start_blob(&entry.path, &hex, entry.size).map(Some)
            }
            MemberPath::Checksums => {
                self.check_row_counts()?;
                self.check_sums(entry.size).await?;
                self.done = true;
                Ok(None)
            }
        }
    }

    /// Content of the current blob; 0 at its end, once its digest matched.
    pub async fn read_blob(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        let Some(blob) = self.blob.as_mut() else {
            return Ok(0);
        };
        let got = self.tar.read(buf).await.map_err(convert)?;
        if got == 0 {
            return self.finish_blob().await.map(|()| 0);
        }
        blob.hasher.update(&buf[..got]);
        self.totals.blob_bytes += got as u64;
        Ok(got)
    }

    /// Sizes and counts of a complete archive (after `next` gave `None`).
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    async fn read_rows(
        &mut self,
        member: &str,
        dataset: String,
        table: String,
        chunk: u64,
    ) -> Result<Member, ArchiveError> {
        if self.blobs_started {
            return Err(damaged(member, "a metadata member after the blobs"));
        }
        let (dataset_index, table_index) = self
            .description
            .datasets
            .iter()
            .enumerate()
            .find_map(|(d, described)| {
                (described.name == dataset).then(|| {
                    described
                        .tables
                        .iter()
                        .position(|t| t.name == table)
                        .map(|t| (d, t))
                })?
            })
            .ok_or_else(|| damaged(member, "a table backup.json does not list"))?;
        let expected = match self.position {
            Some((at, next)) if at == (dataset_index, table_index) => next,
            Some((at, _)) if (dataset_index, table_index) < at => {
                return Err(damaged(member, "out of order: its table came before"));
            }
            _ => 0,
        };
        if chunk != expected {
            return Err(damaged(
                member,
                format!("out of order: expected chunk {expected}"),
            ));
        }
        self.position = Some(((dataset_index, table_index), chunk + 1));
        let gz = self
            .tar
            .read_to_end(MAX_METADATA_MEMBER)
            .await
            .map_err(|err| match err {
                ReadError::Malformed(problem) => damaged(member, problem),
                other => convert(other),
            })?;
        let hex = sha256_hex(&gz);
        let owned = member.to_owned();
        let decoded = tokio::task::spawn_blocking(move || decompress(&gz))
            .await
            .map_err(|err| std::io::Error::other(err.to_string()))?
            .map_err(|problem| damaged(&owned, problem))?;
        let (ndjson, rows) = decoded;
        self.listed.push((member.to_owned(), hex));
        self.rows_seen[dataset_index][table_index] += rows;
        Ok(Member::Rows {
            dataset,
            table,
            ndjson,
            rows,
        })
    }

    /// Checks that every table got the rows backup.json lists.
    fn check_row_counts(&self) -> Result<(), ArchiveError> {
        for (dataset, seen) in self.description.datasets.iter().zip(&self.rows_seen) {
            for (table, &rows) in dataset.tables.iter().zip(seen) {
                if rows != table.rows {
                    return Err(damaged(
                        format!("metadata/{}/{}", dataset.name, table.name),
                        format!(
                            "{rows} rows in the archive, but backup.json lists {}",
                            table.rows
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn start_blob(&mut self, member: &str, hex: &str, size: u64) -> Result<Member, ArchiveError> {
        if self.description.kind != Kind::Full {
            return Err(damaged(member, "a blob in a metadata-only archive"));
        }
        self.blobs_started = true;
        if self.last_blob.as_deref().is_some_and(|last| last >= hex) {
            return Err(damaged(member, "out of order: blobs are in digest order"));
        }
        self.last_blob = Some(hex.to_owned());
        let digest: Digest = format!("sha256:{hex}")
            .parse()
            .map_err(|_| damaged(member, "not a sha256 digest"))?;
        self.blob = Some(BlobState {
            member: member.to_owned(),
            digest: digest.clone(),
            hasher: Sha256::new(),
        });
        self.totals.blobs += 1;
        Ok(Member::Blob { digest, size })
    }

    /// Reads what the consumer left of the current blob and checks its
    /// digest.
    async fn finish_blob(&mut self) -> Result<(), ArchiveError> {
        let Some(mut blob) = self.blob.take() else {
            return Ok(());
        };
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let got = self.tar.read(&mut buf).await.map_err(convert)?;
            if got == 0 {
                break;
            }
            blob.hasher.update(&buf[..got]);
            self.totals.blob_bytes += got as u64;
        }
        let actual = Digest::from_hasher(blob.hasher);
        if actual != blob.digest {
            return Err(damaged(
                &blob.member,
                format!(
                    "content does not match its digest (its sha256 is {})",
                    actual.hex()
                ),
            ));
        }
        self.blob_lines
            .update(checksum_line(blob.digest.hex(), &blob.member).as_bytes());
        Ok(())
    }

    /// Streams `checksums.sha256`: the listed members' lines must come first
    /// and match, then one line per blob, then the end of the archive.
    async fn check_sums(&mut self, size: u64) -> Result<(), ArchiveError> {
        let full = self.description.kind == Kind::Full;
        if full && let Some(expected) = self.description.blobs {
            let seen = BlobsDescription {
                count: self.totals.blobs,
                bytes: self.totals.blob_bytes,
            };
            if seen != expected {
                return Err(damaged(
                    "blobs/",
                    format!(
                        "{} blobs of {} bytes in the archive, but backup.json lists {} of {}",
                        seen.count, seen.bytes, expected.count, expected.bytes
                    ),
                ));
            }
        }
        let mut line = Vec::new();
        let mut index = 0usize;
        let mut blob_lines = Sha256::new();
        let mut buf = vec![0u8; 64 << 10];
        let mut remaining = size;
        while remaining > 0 {
            let got = self.tar.read(&mut buf).await.map_err(convert)?;
            remaining -= got as u64;
            for &byte in &buf[..got] {
                line.push(byte);
                if byte == b'\n' {
                    self.check_line(&line, &mut index, &mut blob_lines)?;
                    line.clear();
                }
                if line.len() > 4096 {
                    return Err(damaged(CHECKSUMS_MEMBER, "a line is too long"));
                }
            }
        }
        if !line.is_empty() {
            return Err(damaged(CHECKSUMS_MEMBER, "the last line is not terminated"));
        }
        if index < self.listed.len() {
            return Err(damaged(
                &self.listed[index].0,
                "missing from checksums.sha256",
            ));
        }
        let expected = std::mem::take(&mut self.blob_lines).finalize();
        if blob_lines.finalize() != expected {
            return Err(damaged(
                CHECKSUMS_MEMBER,
                "its blob lines do not match the blobs in the archive",
            ));
        }
        match self.tar.next().await.map_err(convert)? {
            None => {}
            Some(entry) => {
                return Err(damaged(
                    entry.path,
                    "after checksums.sha256, which must be the last member",
                ));
            }
        }
        self.tar.expect_eof().await.map_err(convert)?;
        self.totals.bytes = self.tar.offset();
        Ok(())
    }

    fn check_line(
        &self,
        line: &[u8],
        index: &mut usize,
        blob_lines: &mut Sha256,
    ) -> Result<(), ArchiveError> {
        let malformed = || {
            damaged(
                CHECKSUMS_MEMBER,
                format!("line {} is malformed", *index + 1),
            )
        };
        let text = std::str::from_utf8(line).map_err(|_| malformed())?;
        let (hex, path) = text
            .strip_suffix('\n')
            .and_then(|rest| rest.split_once("  "))
            .ok_or_else(malformed)?;
        if let Some((listed_path, listed_hex)) = self.listed.get(*index) {
            if path != listed_path {
                return Err(damaged(
                    listed_path,
                    format!("checksums.sha256 lists {path:?} in its place"),
                ));
            }
            if hex != listed_hex {
                return Err(damaged(
                    listed_path,
                    "damaged: its sha256 does not match checksums.sha256",
                ));
            }
            *index += 1;
            return Ok(());
        }
        match MemberPath::parse(path) {
            Some(MemberPath::Blob(named)) if named == hex => {
                blob_lines.update(line);
                Ok(())
            }
            Some(MemberPath::Blob(_)) => Err(damaged(
                path,
                "checksums.sha256 gives it a checksum other than its digest",
            )),
            _ => Err(damaged(
                path,
                "listed in checksums.sha256 but not in the archive",
            )),
        }
    }
}

fn convert(err: ReadError) -> ArchiveError {
    match err {
        ReadError::Io(err) => ArchiveError::Io(err),
        ReadError::Truncated(member) => ArchiveError::Truncated(member),
        ReadError::Malformed(problem) => ArchiveError::Malformed(problem),
    }
}

fn parse_description(json: &[u8]) -> Result<Description, ArchiveError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Header {
        format: String,
        format_version: u32,
    }
    let header: Header = serde_json::from_slice(json).map_err(|err| {
        ArchiveError::Foreign(format!(
            "{DESCRIPTION_MEMBER} is not an msr description: {err}"
        ))
    })?;
    if header.format != FORMAT {
        return Err(ArchiveError::Foreign(format!(
            "{DESCRIPTION_MEMBER} describes a {:?} archive",
            header.format
        )));
    }
    if header.format_version > FORMAT_VERSION {
        return Err(ArchiveError::Unsupported(format!(
            "the archive is format version {}, this msr reads up to version {FORMAT_VERSION}: \
             use a newer msr",
            header.format_version
        )));
    }
    let description: Description =
        serde_json::from_slice(json).map_err(|err| damaged(DESCRIPTION_MEMBER, err.to_string()))?;
    if (description.kind == Kind::Full) != description.blobs.is_some() {
        return Err(damaged(
            DESCRIPTION_MEMBER,
            "a full archive lists its blobs, a metadata one none",
        ));
    }
    Ok(description)
}

/// Decompresses a chunk and counts its rows; each must be a line.
fn decompress(gz: &[u8]) -> Result<(Vec<u8>, u64), String> {
    let mut ndjson = Vec::with_capacity(gz.len() * 6);
    GzDecoder::new(gz)
        .take(MAX_METADATA_MEMBER + 1)
        .read_to_end(&mut ndjson)
        .map_err(|err| format!("not valid gzip: {err}"))?;
    if ndjson.len() as u64 > MAX_METADATA_MEMBER {
        return Err("decompresses to more than an msr chunk holds".into());
    }
    if !ndjson.is_empty() && !ndjson.ends_with(b"\n") {
        return Err("the last row is not a complete line".into());
    }
    let rows = ndjson.iter().filter(|&&b| b == b'\n').count() as u64;
    Ok((ndjson, rows))
}

/// Checks an archive without touching any database or storage.
pub async fn verify<R: AsyncRead + Unpin>(input: R) -> Result<(Description, Totals), ArchiveError> {
    let mut reader = ArchiveReader::open(input).await?;
    let mut buf = vec![0u8; 1 << 20];
    while let Some(member) = reader.next().await? {
        match member {
            Member::Rows {
                dataset,
                table,
                ndjson,
                ..
            } => {
                let member = format!("metadata/{dataset}/{table}");
                tokio::task::spawn_blocking(move || check_rows(&ndjson))
                    .await
                    .map_err(|err| std::io::Error::other(err.to_string()))?
                    .map_err(|problem| damaged(member, problem))?;
            }
            Member::Blob { .. } => while reader.read_blob(&mut buf).await? > 0 {},
        }
    }
    let totals = reader.totals().clone();
    Ok((reader.description, totals))
}

/// Every line a JSON object.
fn check_rows(ndjson: &[u8]) -> Result<(), String> {
    let Some(lines) = ndjson.strip_suffix(b"\n") else {
        return Ok(());
    };
    for (number, line) in lines.split(|&b| b == b'\n').enumerate() {
        let object = line.first() == Some(&b'{')
            && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok();
        if !object {
            return Err(format!("row {} is not a JSON object", number + 1));
        }
    }
    Ok(())
}
