//! The registry's own data: accounts, repositories, access control, image
//! metadata, Notary trust data, scan results and the vulnerability database.
//!
//! [`DATASETS`] says which tables a backup carries and how: it is the one
//! place that decides what "scan data" (`--ignore-scan-data`) and "never
//! backed up" mean.

pub mod access;
pub mod accounts;
pub mod blobs;
pub mod digest;
pub mod invalid;
pub mod lookup;
pub mod manifests;
pub mod notary;
pub mod scans;
pub mod time;
pub mod vulnerabilities;

use uuid::Uuid;

/// Why a content operation (blob or manifest) failed, in the OCI
/// distribution spec's terms; the API maps each to the spec's error code.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("blob unknown to this repository")]
    BlobUnknown,
    #[error("no such blob upload")]
    BlobUploadUnknown,
    #[error("{0}")]
    BlobUploadInvalid(String),
    #[error("the upload does not continue at byte {size}")]
    RangeInvalid { size: u64 },
    #[error("{0}")]
    DigestInvalid(String),
    #[error("{0}")]
    ManifestInvalid(String),
    #[error("manifest references {0}, which is not in this repository")]
    ManifestBlobUnknown(String),
    #[error("{0}")]
    TagInvalid(String),
    #[error("tag {0:?} is immutable in this repository")]
    TagImmutable(String),
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A repository as the content API needs it.
#[derive(Debug, Clone)]
pub struct RepositoryRef {
    pub id: Uuid,
    pub immutable_tags: bool,
}

/// Looks a repository up by `namespace/name`.
pub async fn find_repository(
    pool: &sqlx::PgPool,
    namespace: &str,
    name: &str,
) -> sqlx::Result<Option<RepositoryRef>> {
    let row: Option<(Uuid, bool)> = sqlx::query_as(
        "SELECT r.id, r.immutable_tags
           FROM repositories r JOIN accounts a ON a.id = r.namespace_id
          WHERE a.name = $1 AND r.name = $2",
    )
    .bind(namespace)
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, immutable_tags)| RepositoryRef { id, immutable_tags }))
}

/// How a table takes part in a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupClass {
    /// Always in a backup.
    Always,
    /// In a backup unless `--ignore-scan-data` is given.
    ScanData,
    /// Never in a backup: re-downloaded after a restore.
    Never,
}

/// A named group of tables, as MSR's backup documentation lists them.
#[derive(Debug, Clone, Copy)]
pub struct Dataset {
    pub name: &'static str,
    /// In dependency order: a table comes after those it references.
    pub tables: &'static [&'static str],
    pub class: BackupClass,
}

/// Every table of the schema, each in exactly one dataset (a test checks
/// this against the live schema), in restore order.
pub const DATASETS: &[Dataset] = &[
    Dataset {
        name: "configurations",
        tables: &["settings"],
        class: BackupClass::Always,
    },
    Dataset {
        name: "accounts",
        tables: &["accounts", "org_members", "teams", "team_members"],
        class: BackupClass::Always,
    },
    Dataset {
        name: "repositories",
        tables: &["repositories"],
        class: BackupClass::Always,
    },
    Dataset {
        name: "access_control",
        tables: &["team_repository_access"],
        class: BackupClass::Always,
    },
    Dataset {
        name: "image_metadata",
        tables: &[
            "blobs",
            "repository_blobs",
            "manifests",
            "manifest_references",
            "tags",
        ],
        class: BackupClass::Always,
    },
    Dataset {
        name: "notary",
        tables: &["notary_tuf_files"],
        class: BackupClass::Always,
    },
    Dataset {
        name: "scan_results",
        tables: &["scan_results", "scan_layers"],
        class: BackupClass::ScanData,
    },
    Dataset {
        name: "vulnerability_database",
        tables: &["vulnerability_feed", "vulnerabilities"],
        class: BackupClass::Never,
    },
    Dataset {
        // In-progress uploads are transient: a restore starts with none.
        name: "upload_sessions",
        tables: &["blob_uploads"],
        class: BackupClass::Never,
    },
];
