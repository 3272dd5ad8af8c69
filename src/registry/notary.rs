//! Notary trust data: the TUF metadata files of a repository's signed tags.
//!
//! Every version of every role's file is kept, byte for byte as the client
//! signed it, because the signatures cover exactly those bytes: re-encoding
//! the JSON would break them. msr checks the shape a Notary server checks
//! before storing (the role, `_type`, a strictly increasing `version`, an
//! `expires` time, a list of signatures) but does not verify the signatures
//! themselves: that needs the Notary signer's keys, which msr does not hold.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::invalid::{self, BodyError, Invalid};

/// Notary keeps role names to its database column size.
const MAX_ROLE_LEN: usize = 255;

/// A TUF role: one of the four top-level roles or a delegation of targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role(String);

impl Role {
    /// Accepts `root`, `targets`, `snapshot`, `timestamp` and delegations
    /// `targets/<name>[/<name>…]`, whose segments are letters, digits, `-`
    /// and `_`, as Notary's (which also allows non-ASCII letters; msr keeps
    /// to ASCII so that a role is always a plain URL segment).
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let refuse = |reason: &str| Invalid::new("role", format!("{value:?} {reason}"));
        if matches!(value, "root" | "targets" | "snapshot" | "timestamp") {
            return Ok(Self(value.to_owned()));
        }
        let Some(delegation) = value.strip_prefix("targets/") else {
            return Err(refuse(
                "is not a role: use root, targets, snapshot, timestamp or targets/<delegation>",
            ));
        };
        if value.len() > MAX_ROLE_LEN {
            return Err(refuse(&format!("is longer than {MAX_ROLE_LEN} bytes")));
        }
        let segment_ok = |segment: &str| {
            !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c == '-' || c == '_' || c.is_ascii_alphanumeric())
        };
        if !delegation.split('/').all(segment_ok) {
            return Err(refuse(
                "is not a delegation name: each part after targets/ must be letters, digits, - or _",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `signed._type` a file of this role must carry. Delegations are
    /// targets files.
    fn file_type(&self) -> &'static str {
        match self.0.as_str() {
            "root" => "root",
            "snapshot" => "snapshot",
            "timestamp" => "timestamp",
            _ => "targets",
        }
    }
}

/// One stored file, without its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct TufFile {
    pub role: String,
    pub version: i64,
    /// Lowercase hex sha256 of the stored bytes.
    pub sha256: String,
    pub length: i64,
    #[serde(serialize_with = "super::time::rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// What of a TUF file's JSON msr checks; everything else in `signed`
/// (keys, roles, targets, meta, delegations) is stored untouched.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    signed: Signed,
    signatures: Vec<Signature>,
}

#[derive(Deserialize)]
struct Signed {
    #[serde(rename = "_type")]
    file_type: String,
    version: i64,
    expires: String,
}

#[derive(Deserialize)]
#[allow(dead_code)] // read only to check that they are strings
struct Signature {
    keyid: String,
    sig: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<Invalid> for PutError {
    fn from(invalid: Invalid) -> Self {
        PutError::Body(BodyError::Invalid(invalid))
    }
}

/// Checks `data` as a file of `role` and returns its version.
fn check(role: &Role, data: &[u8]) -> Result<i64, BodyError> {
    let envelope: Envelope = invalid::parse_body(data)?;
    let signed = envelope.signed;
    // Notary writes `Root`, `Targets`, …; the TUF specification `root`, ….
    let expected = role.file_type();
    let capitalised = expected[..1].to_ascii_uppercase() + &expected[1..];
    if signed.file_type != expected && signed.file_type != capitalised {
        return Err(Invalid::new(
            "signed._type",
            format!(
                "is {:?}, but a {} file must have _type {:?}",
                signed.file_type,
                role.as_str(),
                role.file_type()
            ),
        )
        .into());
    }
    if signed.version < 1 {
        return Err(Invalid::new(
            "signed.version",
            format!("must be at least 1, got {}", signed.version),
        )
        .into());
    }
    if super::time::parse(&signed.expires).is_none() {
        return Err(Invalid::new(
            "signed.expires",
            format!("{:?} is not an RFC 3339 time", signed.expires),
        )
        .into());
    }
    if envelope.signatures.is_empty() {
        return Err(Invalid::new("signatures", "must list at least one signature").into());
    }
    Ok(signed.version)
}

/// Stores a new version of `role`'s file. The version must be greater than
/// every stored version of that role, so a client cannot roll trust data
/// back, and two clients racing to write the same version cannot both win.
pub async fn put(
    pool: &PgPool,
    repository_id: Uuid,
    role: &Role,
    data: &[u8],
) -> Result<TufFile, PutError> {
    let version = check(role, data)?;
    let sha256 = hex::encode(Sha256::digest(data));
    let stored: Option<TufFile> = sqlx::query_as(
        "INSERT INTO notary_tuf_files (repository_id, role, version, sha256, data)
         SELECT $1, $2, $3, $4, $5
          WHERE NOT EXISTS (SELECT 1 FROM notary_tuf_files
                             WHERE repository_id = $1 AND role = $2 AND version >= $3)
         ON CONFLICT DO NOTHING
         RETURNING role, version, sha256, octet_length(data)::bigint AS length, created_at",
    )
    .bind(repository_id)
    .bind(role.as_str())
    .bind(version)
    .bind(&sha256)
    .bind(data)
    .fetch_optional(pool)
    .await?;
    if let Some(stored) = stored {
        return Ok(stored);
    }
    let latest = latest_version(pool, repository_id, role)
        .await?
        .unwrap_or(0);
    Err(Invalid::new(
        "signed.version",
        format!(
            "must be greater than the stored version {latest} of {}, got {version}",
            role.as_str()
        ),
    )
    .into())
}

async fn latest_version(
    executor: impl PgExecutor<'_>,
    repository_id: Uuid,
    role: &Role,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT max(version) FROM notary_tuf_files WHERE repository_id = $1 AND role = $2",
    )
    .bind(repository_id)
    .bind(role.as_str())
    .fetch_one(executor)
    .await
}

/// The bytes of `role`'s file: the latest version, or `version`.
pub async fn get(
    executor: impl PgExecutor<'_>,
    repository_id: Uuid,
    role: &Role,
    version: Option<i64>,
) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar(
        "SELECT data FROM notary_tuf_files
          WHERE repository_id = $1 AND role = $2 AND ($3::bigint IS NULL OR version = $3)
          ORDER BY version DESC
          LIMIT 1",
    )
    .bind(repository_id)
    .bind(role.as_str())
    .bind(version)
    .fetch_optional(executor)
    .await
}

/// The latest file of each role, by role name.
pub async fn list(
    executor: impl PgExecutor<'_>,
    repository_id: Uuid,
) -> sqlx::Result<Vec<TufFile>> {
    sqlx::query_as(
        "SELECT DISTINCT ON (role)
                role, version, sha256, octet_length(data)::bigint AS length, created_at
           FROM notary_tuf_files
          WHERE repository_id = $1
          ORDER BY role, version DESC",
    )
    .bind(repository_id)
    .fetch_all(executor)
    .await
}

/// Removes every version of every role; returns how many files there were.
pub async fn delete_all(executor: impl PgExecutor<'_>, repository_id: Uuid) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM notary_tuf_files WHERE repository_id = $1")
            .bind(repository_id)
            .execute(executor)
            .await?
            .rows_affected(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        for role in [
            "root",
            "targets",
            "snapshot",
            "timestamp",
            "targets/releases",
            "targets/qa/team-1_x",
        ] {
            assert_eq!(Role::parse(role).unwrap().as_str(), role);
        }
        for role in [
            "",
            "Root",
            "targets/",
            "targets//x",
            "targets/x/",
            "targets/../root",
            "targets/a.b",
            "targets/é",
            "releases",
            "snapshot/x",
        ] {
            assert_eq!(Role::parse(role).unwrap_err().field, "role", "{role:?}");
        }
        assert!(Role::parse(&format!("targets/{}", "x".repeat(300))).is_err());
    }

    fn file(file_type: &str, version: i64) -> Vec<u8> {
        format!(
            r#"{{"signed":{{"_type":"{file_type}","version":{version},"expires":"2030-01-01T00:00:00.123456789Z","keys":{{}}}},"signatures":[{{"keyid":"k","method":"ecdsa","sig":"c2ln"}}]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn file_checks() {
        let targets = Role::parse("targets/releases").unwrap();
        assert_eq!(check(&targets, &file("targets", 3)).unwrap(), 3);
        assert_eq!(check(&targets, &file("Targets", 1)).unwrap(), 1);
        let root = Role::parse("root").unwrap();
        let field = |data: &[u8]| match check(&root, data) {
            Err(BodyError::Invalid(invalid)) => invalid.field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(&file("targets", 1)), "signed._type");
        assert_eq!(field(&file("root", 0)), "signed.version");
        assert_eq!(
            field(br#"{"signed":{"_type":"root","version":1,"expires":"soon"},"signatures":[{"keyid":"k","sig":"s"}]}"#),
            "signed.expires"
        );
        assert_eq!(
            field(br#"{"signed":{"_type":"root","version":1,"expires":"2030-01-01T00:00:00Z"},"signatures":[]}"#),
            "signatures"
        );
        assert_eq!(
            field(br#"{"signed":{"_type":"root","version":1,"expires":"2030-01-01T00:00:00Z"},"signatures":[{"keyid":"k"}]}"#),
            "signatures[0].sig"
        );
        assert_eq!(
            field(br#"{"signed":{"_type":"root","version":1.5,"expires":"x"},"signatures":[]}"#),
            "signed.version"
        );
        assert_eq!(field(br#"{"signatures":[],"x":1}"#), "x");
    }
}
