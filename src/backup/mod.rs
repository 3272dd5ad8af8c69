//! Backup archives: writing ([`write`]), reading and checking ([`read`]),
//! and loading into an instance ([`restore`]). The format is documented for
//! third parties in `docs/archive-format.md`; in short, a plain tar:
//!
//! ```text
//! backup.json                                   what the archive holds (first)
//! metadata/<dataset>/<table>/<n>.ndjson.gz      rows as JSON lines, gzip per chunk
//! blobs/sha256/<hex>                            full backups: content, as stored
//! checksums.sha256                              sha256 of every member (last)
//! ```
//!
//! Everything is one pass over a stream in bounded memory: metadata chunks
//! are bounded in size, blobs are copied through in pieces, and the
//! checksums member is computed, not collected (see [`write`]).

pub mod catalog;
pub mod cli;
pub mod progress;
pub mod read;
pub mod restore;
pub mod tar;
pub mod write;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::registry::{BackupClass, DATASETS, Dataset};

/// Identifies an msr archive in `backup.json`.
pub const FORMAT: &str = "msr-backup";
/// Bumped on any change a reader of the previous version would misread.
pub const FORMAT_VERSION: u32 = 1;

pub const DESCRIPTION_MEMBER: &str = "backup.json";
pub const CHECKSUMS_MEMBER: &str = "checksums.sha256";
const BLOB_PREFIX: &str = "blobs/sha256/";

/// A metadata chunk closes once this many uncompressed bytes are in it (a
/// single larger row makes a chunk of its own). It bounds memory on both
/// sides: the writer compresses one chunk while it gathers the next, the
/// reader holds one compressed chunk.
pub const CHUNK_BYTES: usize = 4 << 20;
/// The largest metadata member a reader accepts: far above what the writer
/// makes, so only a damaged or foreign archive meets it.
pub const MAX_METADATA_MEMBER: u64 = 256 << 20;
/// The largest `backup.json` a reader accepts.
pub const MAX_DESCRIPTION: u64 = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Metadata only.
    Metadata,
    /// Metadata and the content of every blob it lists.
    Full,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Metadata => "metadata",
            Kind::Full => "full",
        })
    }
}

/// What to put in an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub kind: Kind,
    pub ignore_scan_data: bool,
}

/// `backup.json`: the first member, written before any data, so every
/// count in it comes from the same snapshot the data is read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    pub format: String,
    pub format_version: u32,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub created: DateTime<Utc>,
    pub ignore_scan_data: bool,
    /// The newest database migration of the instance backed up.
    pub schema_version: i64,
    pub msr_version: String,
    pub source: Source,
    /// In archive (and restore) order.
    pub datasets: Vec<DatasetDescription>,
    /// Datasets deliberately not in the archive, and why.
    pub excluded: Vec<Excluded>,
    /// Full backups: every blob of the `blobs` table is a member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blobs: Option<BlobsDescription>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub host: String,
    pub database: String,
    /// Where the blobs were read from (full backups).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetDescription {
    pub name: String,
    pub tables: Vec<TableDescription>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableDescription {
    pub name: String,
    pub rows: u64,
    /// The keys of every row object, in the table's column order.
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Excluded {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobsDescription {
    pub count: u64,
    pub bytes: u64,
}

impl Description {
    pub fn rows(&self) -> u64 {
        self.datasets
            .iter()
            .flat_map(|dataset| &dataset.tables)
            .map(|table| table.rows)
            .sum()
    }

    pub fn table(&self, dataset: &str, table: &str) -> Option<&TableDescription> {
        self.datasets
            .iter()
            .find(|d| d.name == dataset)?
            .tables
            .iter()
            .find(|t| t.name == table)
    }
}

/// The datasets an archive with `ignore_scan_data` carries, in restore
/// order, and those it leaves out with the reason.
pub fn plan(ignore_scan_data: bool) -> (Vec<&'static Dataset>, Vec<Excluded>) {
    let mut included = Vec::new();
    let mut excluded = Vec::new();
    for dataset in DATASETS {
        let reason = match dataset.class {
            BackupClass::Always => None,
            BackupClass::ScanData if ignore_scan_data => {
                Some("left out with --ignore-scan-data".to_owned())
            }
            BackupClass::ScanData => None,
            BackupClass::Never { reason } => Some(format!("never backed up: {reason}")),
        };
        match reason {
            None => included.push(dataset),
            Some(reason) => excluded.push(Excluded {
                name: dataset.name.to_owned(),
                reason,
            }),
        }
    }
    (included, excluded)
}

pub fn metadata_member(dataset: &str, table: &str, chunk: u64) -> String {
    format!("metadata/{dataset}/{table}/{chunk:06}.ndjson.gz")
}

pub fn blob_member(hex: &str) -> String {
    format!("{BLOB_PREFIX}{hex}")
}

/// The members an archive may hold, told apart by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberPath<'a> {
    Description,
    Metadata {
        dataset: &'a str,
        table: &'a str,
        chunk: u64,
    },
    /// The lowercase hex sha256 of the content.
    Blob(&'a str),
    Checksums,
}

impl<'a> MemberPath<'a> {
    pub fn parse(path: &'a str) -> Option<Self> {
        match path {
            DESCRIPTION_MEMBER => return Some(Self::Description),
            CHECKSUMS_MEMBER => return Some(Self::Checksums),
            _ => {}
        }
        if let Some(hex) = path.strip_prefix(BLOB_PREFIX) {
            let valid = hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            return valid.then_some(Self::Blob(hex));
        }
        let rest = path.strip_prefix("metadata/")?;
        let mut parts = rest.split('/');
        let (dataset, table, file) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || dataset.is_empty() || table.is_empty() {
            return None;
        }
        let number = file.strip_suffix(".ndjson.gz")?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self::Metadata {
            dataset,
            table,
            chunk: number.parse().ok()?,
        })
    }
}

/// One line of `checksums.sha256`, as `sha256sum` writes it (two spaces:
/// binary and text mode are the same on every system that matters here).
pub fn checksum_line(hex: &str, path: &str) -> String {
    format!("{hex}  {path}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths() {
        let hex = "a".repeat(64);
        assert_eq!(
            MemberPath::parse(&blob_member(&hex)),
            Some(MemberPath::Blob(&hex))
        );
        let member = metadata_member("accounts", "teams", 12);
        assert_eq!(member, "metadata/accounts/teams/000012.ndjson.gz");
        assert_eq!(
            MemberPath::parse(&member),
            Some(MemberPath::Metadata {
                dataset: "accounts",
                table: "teams",
                chunk: 12
            })
        );
        for foreign in [
            "blobs/sha256/ABC",
            "blobs/sha256/xyz",
            "metadata/a/b",
            "metadata/a/b/c/d.ndjson.gz",
            "metadata/a/b/x.ndjson.gz",
            "etc/passwd",
            "backup.json/",
        ] {
            assert_eq!(MemberPath::parse(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn plans_leave_out_what_they_must() {
        let (with_scans, excluded) = plan(false);
        let names: Vec<&str> = with_scans.iter().map(|d| d.name).collect();
        assert!(names.contains(&"scan_results"));
        assert!(!names.contains(&"vulnerability_database"));
        assert!(excluded.iter().any(|e| e.name == "vulnerability_database"));
        let (without, excluded) = plan(true);
        assert!(!without.iter().any(|d| d.name == "scan_results"));
        assert!(excluded.iter().any(|e| e.name == "scan_results"));
    }
}
