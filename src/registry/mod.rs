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
pub mod manifests;
pub mod notary;
pub mod orgs;
pub mod repositories;
pub mod scans;
pub mod teams;
pub mod time;
pub mod vulnerabilities;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

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

pub use invalid::Invalid;

/// What a `NotFound` or `Exists` error is about; the API turns it into
/// MSR's `NO_SUCH_<THING>` and `<THING>_EXISTS` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thing {
    Account,
    Team,
    Repository,
}

/// Why an operation on accounts, teams or repositories did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{message}")]
    NotFound { thing: Thing, message: String },
    #[error("{message}")]
    Exists { thing: Thing, message: String },
    /// The caller is known but may not do this.
    #[error("{0}")]
    NotAuthorized(String),
    /// Well formed, but it would break a rule of the registry (such as
    /// leaving it without an active admin).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn not_found(thing: Thing, message: impl Into<String>) -> Self {
        Self::NotFound {
            thing,
            message: message.into(),
        }
    }

    pub(crate) fn exists(thing: Thing, message: impl Into<String>) -> Self {
        Self::Exists {
            thing,
            message: message.into(),
        }
    }

    pub(crate) fn not_authorized(message: impl Into<String>) -> Self {
        Self::NotAuthorized(message.into())
    }
}

/// Turns a unique violation into `on_unique` and leaves other errors alone:
/// the constraint decides races that a check beforehand could only lose.
pub(crate) fn on_unique(err: sqlx::Error, on_unique: impl FnOnce() -> Error) -> Error {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => on_unique(),
        _ => Error::Database(err),
    }
}

/// Turns a foreign key violation (the referenced row was deleted by a
/// concurrent request after we looked it up) into `on_missing`.
pub(crate) fn on_foreign_key(err: sqlx::Error, on_missing: impl FnOnce() -> Error) -> Error {
    match &err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => on_missing(),
        _ => Error::Database(err),
    }
}

/// For the `Option` fields of a request body (here and in `settings`):
/// absent means "not given", and an explicit `null` is refused like any
/// other value of the wrong type instead of silently meaning "not given" too.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Reads a request body into `T`, naming the offending field on a type error,
/// an unknown field or a missing one.
pub(crate) fn parse_body<T: DeserializeOwned>(body: Value) -> Result<T, Invalid> {
    // serde would also read a struct from an array, by position.
    if !body.is_object() {
        return Err(Invalid::new("body", "must be a JSON object"));
    }
    serde_path_to_error::deserialize(body).map_err(|err| {
        let path = err.path().to_string();
        let reason = err.into_inner().to_string();
        let field = if path != "." {
            path
        } else if let Some(missing) = reason
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            missing.to_owned()
        } else {
            "body".to_owned()
        };
        Invalid::new(field, reason)
    })
}

/// Refuses a text field longer than `max` characters (as JSON Schema counts
/// `maxLength`: code points), or one with a NUL character, which PostgreSQL
/// text cannot hold.
pub(crate) fn check_text(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    if value.contains('\0') {
        return Err(Invalid::new(field, "must not contain NUL characters"));
    }
    let length = value.chars().count();
    if length > max {
        return Err(Invalid::new(
            field,
            format!("must be at most {max} characters long, got {length}"),
        ));
    }
    Ok(())
}

/// Is `name` an account or team name as eNZi has them: 1–100 lowercase
/// letters, digits, `-`, `_` and `.`, starting with a letter or a digit.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit())
        && name.len() <= 100
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

pub(crate) fn check_name(field: &str, name: &str) -> Result<(), Invalid> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!(
                "{name:?} is not a valid name: use 1 to 100 lowercase letters, digits, \
                 '-', '_' and '.', starting with a letter or a digit"
            ),
        ))
    }
}

/// Keyset pagination by name, as eNZi pages its lists: `start` is the name
/// after which the page begins (exclusive), `limit` its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub start: String,
    pub limit: i64,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: i64 = 10;
    pub const MAX_LIMIT: i64 = 1000;

    /// From the query parameters `start` and `limit` (both optional).
    pub fn parse(start: Option<&str>, limit: Option<&str>) -> Result<Self, Invalid> {
        let limit = match limit {
            None => Self::DEFAULT_LIMIT,
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|limit| (1..=Self::MAX_LIMIT).contains(limit))
                .ok_or_else(|| {
                    Invalid::new(
                        "limit",
                        format!(
                            "must be an integer from 1 to {}, got {text:?}",
                            Self::MAX_LIMIT
                        ),
                    )
                })?,
        };
        let start = start.unwrap_or_default();
        if start.contains('\0') {
            return Err(Invalid::new("start", "must not contain NUL characters"));
        }
        Ok(Self {
            start: start.to_owned(),
            limit,
        })
    }

    /// How many rows to fetch: one more than the page, to learn whether
    /// another page follows.
    pub(crate) fn fetch(&self) -> i64 {
        self.limit + 1
    }
}

/// One page of a list, and the `start` of the next page (`""` on the last).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_start: String,
}

impl<T> Page<T> {
    /// From up to `request.fetch()` rows ordered by `key`.
    pub(crate) fn from_rows(
        mut rows: Vec<T>,
        request: &PageRequest,
        key: impl Fn(&T) -> &str,
    ) -> Self {
        let more = rows.len() as i64 > request.limit;
        rows.truncate(request.limit as usize);
        let next_start = match rows.last() {
            Some(last) if more => key(last).to_owned(),
            _ => String::new(),
        };
        Self {
            items: rows,
            next_start,
        }
    }
}

/// RFC 3339 UTC to the second, as every time in msr's API.
pub(crate) fn rfc3339<S: serde::Serializer>(
    time: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// How a table takes part in a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupClass {
    /// Always in a backup.
    Always,
    /// In a backup unless `--ignore-scan-data` is given.
    ScanData,
    /// Never in a backup, for this reason (said in `backup.json`).
    Never { reason: &'static str },
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
        class: BackupClass::Never {
            reason: "re-download the vulnerability database after a restore",
        },
    },
    Dataset {
        // In-progress uploads are transient: a restore starts with none.
        name: "upload_sessions",
        tables: &["blob_uploads"],
        class: BackupClass::Never {
            reason: "transient",
        },
    },
    Dataset {
        name: "job_runner",
        tables: &["workers", "jobs", "job_logs", "backups"],
        class: BackupClass::Never {
            reason: "this instance's own job log and backup catalog; a restored instance \
                     lists the backups in its backup storage again",
        },
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in [
            "a",
            "0",
            "alice",
            "my-org",
            "a.b_c-d",
            "9lives",
            &"a".repeat(100),
        ] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            "_a",
            "Alice",
            "a b",
            "a/b",
            "a:b",
            "é",
            &"a".repeat(101),
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn page_requests() {
        assert_eq!(
            PageRequest::parse(None, None).unwrap(),
            PageRequest {
                start: String::new(),
                limit: 10
            }
        );
        assert_eq!(
            PageRequest::parse(Some("bob"), Some("1000")).unwrap().limit,
            1000
        );
        for bad in ["0", "1001", "-1", "ten", "", "1.5"] {
            assert_eq!(
                PageRequest::parse(None, Some(bad)).unwrap_err().field,
                "limit"
            );
        }
        let nul = PageRequest::parse(Some("a\0"), None).unwrap_err();
        assert_eq!(nul.field, "start");
        let request = PageRequest::parse(None, Some("2")).unwrap();
        let page = Page::from_rows(vec!["a", "b", "c"], &request, |s| s);
        assert_eq!(
            (page.items, page.next_start.as_str()),
            (vec!["a", "b"], "b")
        );
        let page = Page::from_rows(vec!["a", "b"], &request, |s| s);
        assert_eq!(page.next_start, "");
    }

    #[test]
    fn body_errors_name_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            name: String,
            #[serde(default, deserialize_with = "present")]
            flag: Option<bool>,
        }
        let field = |body: Value| parse_body::<Body>(body).unwrap_err().field;
        assert_eq!(field(serde_json::json!({})), "name");
        assert_eq!(field(serde_json::json!({"name": 1})), "name");
        assert_eq!(
            field(serde_json::json!({"name": "a", "flag": null})),
            "flag"
        );
        assert_eq!(field(serde_json::json!({"name": "a", "other": 1})), "other");
        assert_eq!(field(serde_json::json!(["a"])), "body");
    }
}
