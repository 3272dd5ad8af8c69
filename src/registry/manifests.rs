//! Manifests and tags: image manifests, image indexes and artifacts (Helm
//! charts) as the OCI distribution spec stores them, plus the metadata MSR
//! shows about each (OS, architecture, size, push time).
//!
//! A manifest's bytes are stored as a blob (`blobs/sha256/<hex>`), exactly as
//! pushed, so its digest never changes; its row, references and tag are
//! written in one transaction after every referenced blob or child manifest
//! was found in the repository.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::ContentError;
use super::blobs::record_blob;
use super::digest::Digest;
use crate::storage::Storage;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const HELM_CHART_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// The spec's limit; larger manifests are refused before they are read whole.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// Image configs are read to learn OS and architecture; real ones are a few KiB.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// A tag or a digest, as in `/v2/<name>/manifests/<reference>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    pub fn parse(text: &str) -> Result<Self, ContentError> {
        if text.contains(':') {
            return text.parse().map(Reference::Digest).map_err(
                |err: super::digest::InvalidDigest| ContentError::DigestInvalid(err.to_string()),
            );
        }
        if is_tag(text) {
            Ok(Reference::Tag(text.to_owned()))
        } else {
            Err(ContentError::TagInvalid(format!(
                "{text:?} is not a valid tag: up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"
            )))
        }
    }
}

fn is_tag(text: &str) -> bool {
    let mut bytes = text.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric() || b == b'_')
        && text.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: Option<String>,
    digest: String,
    size: i64,
    platform: Option<Platform>,
}

#[derive(Deserialize, Default, Clone)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    manifests: Option<Vec<Descriptor>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub length: u64,
}

/// What is being pushed, and where.
pub struct Push<'a> {
    pub repository_id: Uuid,
    pub immutable_tags: bool,
    pub reference: &'a Reference,
    pub content_type: Option<&'a str>,
    pub body: Bytes,
    pub pushed_by: &'a str,
}

struct Parsed {
    media_type: String,
    config_media_type: String,
    artifact_type: String,
    references: Vec<(&'static str, Digest, i64)>,
    config: Option<Digest>,
    platform: Platform,
}

fn parse_manifest(content_type: Option<&str>, body: &[u8]) -> Result<Parsed, ContentError> {
    let invalid = |message: String| ContentError::ManifestInvalid(message);
    let json: ManifestJson = serde_json::from_slice(body).map_err(|err| {
        invalid(format!(
            "the manifest is not a valid OCI or Docker v2 manifest: {err}"
        ))
    })?;
    if json.schema_version != Some(2) {
        return Err(invalid(
            "only schemaVersion 2 manifests are supported".into(),
        ));
    }
    let header = content_type
        .map(|value| value.split(';').next().unwrap_or("").trim())
        .filter(|value| !value.is_empty() && *value != "application/json");
    let media_type = match (json.media_type.as_deref(), header) {
        (Some(body), Some(header)) if body != header => {
            return Err(invalid(format!(
                "Content-Type {header:?} does not match the manifest's mediaType {body:?}"
            )));
        }
        (Some(media_type), _) | (None, Some(media_type)) => media_type.to_owned(),
        (None, None) if json.manifests.is_some() => OCI_INDEX.to_owned(),
        (None, None) => OCI_MANIFEST.to_owned(),
    };
    let descriptor_digest = |descriptor: &Descriptor| -> Result<Digest, ContentError> {
        if descriptor.size < 0 {
            return Err(invalid(format!(
                "descriptor {} has a negative size",
                descriptor.digest
            )));
        }
        descriptor
            .digest
            .parse()
            .map_err(|err: super::digest::InvalidDigest| invalid(err.to_string()))
    };
    let mut references = Vec::new();
    let mut parsed = Parsed {
        media_type: media_type.clone(),
        config_media_type: String::new(),
        artifact_type: json.artifact_type.clone().unwrap_or_default(),
        references: Vec::new(),
        config: None,
        platform: Platform::default(),
    };
    match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = json
                .config
                .as_ref()
                .ok_or_else(|| invalid("an image manifest needs a config descriptor".into()))?;
            let config_digest = descriptor_digest(config)?;
            parsed.config_media_type = config.media_type.clone().unwrap_or_default();
            references.push(("config", config_digest.clone(), config.size));
            parsed.config = Some(config_digest);
            for layer in &json.layers {
                references.push(("layer", descriptor_digest(layer)?, layer.size));
            }
        }
        OCI_INDEX | DOCKER_MANIFEST_LIST => {
            let children = json
                .manifests
                .as_ref()
                .ok_or_else(|| invalid("an index needs a manifests list".into()))?;
            for child in children {
                references.push(("manifest", descriptor_digest(child)?, child.size));
            }
            // One platform for the whole index when all children share it;
            // otherwise the UI shows it as multi-platform.
            let platforms: Vec<Platform> =
                children.iter().filter_map(|c| c.platform.clone()).collect();
            if let Some(first) = platforms.first()
                && platforms
                    .iter()
                    .all(|p| p.os == first.os && p.architecture == first.architecture)
            {
                parsed.platform = first.clone();
            } else if !platforms.is_empty() {
                parsed.platform = Platform {
                    os: "multi".into(),
                    architecture: "multi".into(),
                };
            }
        }
        other => {
            return Err(invalid(format!(
                "unsupported manifest media type {other:?}; expected an OCI or Docker v2 image manifest or index"
            )));
        }
    }
    parsed.references = references;
    Ok(parsed)
}

#[derive(Deserialize)]
struct ImageConfig {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
}

/// Stores a pushed manifest and, when pushed by tag, points the tag at it.
pub async fn put(pool: &PgPool, storage: &Storage, push: Push<'_>) -> Result<Digest, ContentError> {
    let digest = Digest::of(&push.body);
    if let Reference::Digest(expected) = push.reference
        && *expected != digest
    {
        return Err(ContentError::DigestInvalid(format!(
            "the manifest's content has digest {digest}, not {expected}"
        )));
    }
    let mut parsed = parse_manifest(push.content_type, &push.body)?;

    // Everything referenced must already be in this repository, with the
    // size the manifest claims.
    let mut total_size = push.body.len() as i64;
    for (kind, child, size) in &parsed.references {
        let known: Option<i64> = if *kind == "manifest" {
            sqlx::query_scalar(
                "SELECT size FROM manifests WHERE repository_id = $1 AND digest = $2",
            )
            .bind(push.repository_id)
            .bind(child.to_string())
            .fetch_optional(pool)
            .await?
        } else {
            sqlx::query_scalar(
                "SELECT b.size FROM repository_blobs rb JOIN blobs b USING (digest)
                  WHERE rb.repository_id = $1 AND rb.digest = $2",
            )
            .bind(push.repository_id)
            .bind(child.to_string())
            .fetch_optional(pool)
            .await?
        };
        match known {
            None => return Err(ContentError::ManifestBlobUnknown(child.to_string())),
            Some(known) if *kind != "manifest" && known != *size => {
                return Err(ContentError::ManifestInvalid(format!(
                    "{kind} {child} is {known} bytes, but the manifest says {size}"
                )));
            }
            // A child manifest's descriptor size is its own length; what the
            // UI wants for an index is the content it stands for.
            Some(known) => total_size += if *kind == "manifest" { known } else { *size },
        }
    }
    if let Some(config) = &parsed.config
        && IMAGE_CONFIGS.contains(&parsed.config_media_type.as_str())
        && storage
            .size(&config.storage_key())
            .await?
            .is_some_and(|size| size <= MAX_CONFIG_BYTES)
        && let Some(bytes) = storage.read_all(&config.storage_key()).await?
        && let Ok(image) = serde_json::from_slice::<ImageConfig>(&bytes)
    {
        parsed.platform = Platform {
            os: image.os,
            architecture: image.architecture,
        };
    }

    // The bytes first: a row never points at content that is not stored.
    storage
        .put(&digest.storage_key(), push.body.clone())
        .await?;

    let mut tx = pool.begin().await?;
    record_blob(&mut tx, push.repository_id, &digest, push.body.len() as u64).await?;
    let inserted = sqlx::query(
        "INSERT INTO manifests (repository_id, digest, media_type, config_media_type, artifact_type,
                                os, architecture, size)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT DO NOTHING",
    )
    .bind(push.repository_id)
    .bind(digest.to_string())
    .bind(&parsed.media_type)
    .bind(&parsed.config_media_type)
    .bind(&parsed.artifact_type)
    .bind(&parsed.platform.os)
    .bind(&parsed.platform.architecture)
    .bind(total_size)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        for (position, (kind, child, size)) in parsed.references.iter().enumerate() {
            sqlx::query(
                "INSERT INTO manifest_references (repository_id, manifest_digest, position, kind, digest, size)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(push.repository_id)
            .bind(digest.to_string())
            .bind(position as i32)
            .bind(kind)
            .bind(child.to_string())
            .bind(size)
            .execute(&mut *tx)
            .await?;
        }
    }
    if let Reference::Tag(tag) = push.reference {
        let current: Option<String> = sqlx::query_scalar(
            "SELECT digest FROM tags WHERE repository_id = $1 AND name = $2 FOR UPDATE",
        )
        .bind(push.repository_id)
        .bind(tag)
        .fetch_optional(&mut *tx)
        .await?;
        match current {
            Some(current) if current == digest.to_string() => {}
            Some(_) if push.immutable_tags => {
                return Err(ContentError::TagImmutable(tag.clone()));
            }
            _ => {
                sqlx::query(
                    "INSERT INTO tags (repository_id, name, digest, pushed_by) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (repository_id, name)
                     DO UPDATE SET digest = EXCLUDED.digest, pushed_by = EXCLUDED.pushed_by, updated_at = now()",
                )
                .bind(push.repository_id)
                .bind(tag)
                .bind(digest.to_string())
                .bind(push.pushed_by)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(digest)
}

/// The manifest a tag or digest names in the repository.
pub async fn resolve(
    pool: &PgPool,
    repository_id: Uuid,
    reference: &Reference,
) -> sqlx::Result<Option<StoredManifest>> {
    let row: Option<(String, String, i64)> = match reference {
        Reference::Tag(tag) => {
            sqlx::query_as(
                "SELECT m.digest, m.media_type, b.size
                   FROM tags t
                   JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
                   JOIN blobs b ON b.digest = m.digest
                  WHERE t.repository_id = $1 AND t.name = $2",
            )
            .bind(repository_id)
            .bind(tag)
            .fetch_optional(pool)
            .await?
        }
        Reference::Digest(digest) => {
            sqlx::query_as(
                "SELECT m.digest, m.media_type, b.size
                   FROM manifests m JOIN blobs b ON b.digest = m.digest
                  WHERE m.repository_id = $1 AND m.digest = $2",
            )
            .bind(repository_id)
            .bind(digest.to_string())
            .fetch_optional(pool)
            .await?
        }
    };
    Ok(row.map(|(digest, media_type, length)| StoredManifest {
        digest: digest.parse().expect("stored digests are valid"),
        media_type,
        length: length as u64,
    }))
}

/// Deletes a manifest (and the tags on it) from the repository; the blobs stay,
/// other manifests may share them.
pub async fn delete(pool: &PgPool, repository_id: Uuid, digest: &Digest) -> sqlx::Result<bool> {
    let deleted = sqlx::query("DELETE FROM manifests WHERE repository_id = $1 AND digest = $2")
        .bind(repository_id)
        .bind(digest.to_string())
        .execute(pool)
        .await?
        .rows_affected();
    Ok(deleted == 1)
}

/// Tag names in lexical order, after `last`, at most `limit`.
pub async fn tag_names(
    pool: &PgPool,
    repository_id: Uuid,
    last: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT name FROM tags WHERE repository_id = $1 AND ($2::text IS NULL OR name > $2)
          ORDER BY name LIMIT $3",
    )
    .bind(repository_id)
    .bind(last)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A tag with the metadata recorded when its manifest was pushed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TagDetail {
    pub name: String,
    pub digest: String,
    pub pushed_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub media_type: String,
    pub config_media_type: String,
    pub artifact_type: String,
    pub os: String,
    pub architecture: String,
    pub size: i64,
    pub pushed_at: DateTime<Utc>,
}

pub async fn tags(pool: &PgPool, repository_id: Uuid) -> sqlx::Result<Vec<TagDetail>> {
    sqlx::query_as(
        "SELECT t.name, t.digest, t.pushed_by, t.created_at, t.updated_at,
                m.media_type, m.config_media_type, m.artifact_type, m.os, m.architecture,
                m.size, m.pushed_at
           FROM tags t
           JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
          WHERE t.repository_id = $1
          ORDER BY t.name",
    )
    .bind(repository_id)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            Reference::parse("latest").unwrap(),
            Reference::Tag("latest".into())
        );
        assert_eq!(
            Reference::parse("v1.2_3-rc").unwrap(),
            Reference::Tag("v1.2_3-rc".into())
        );
        assert!(matches!(
            Reference::parse(&format!("sha256:{}", "a".repeat(64))),
            Ok(Reference::Digest(_))
        ));
        for bad in [".hidden", "-x", "", "a/b", &"x".repeat(129)] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            Reference::parse("sha256:zz"),
            Err(ContentError::DigestInvalid(_))
        ));
    }

    #[test]
    fn media_type_comes_from_the_body_or_the_header() {
        let config = format!("sha256:{}", "1".repeat(64));
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{HELM_CHART_CONFIG}","digest":"{config}","size":10}},"layers":[]}}"#
        );
        let parsed = parse_manifest(Some(OCI_MANIFEST), body.as_bytes())
            .ok()
            .unwrap();
        assert_eq!(parsed.media_type, OCI_MANIFEST);
        assert_eq!(parsed.config_media_type, HELM_CHART_CONFIG);
        assert!(matches!(
            parse_manifest(Some(OCI_INDEX), body.as_bytes()),
            Err(ContentError::ManifestInvalid(_))
        ));
        let mismatch = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"digest":"{config}","size":1}}}}"#
        );
        assert!(matches!(
            parse_manifest(Some(OCI_MANIFEST), mismatch.as_bytes()),
            Err(ContentError::ManifestInvalid(_))
        ));
        assert!(matches!(
            parse_manifest(None, br#"{"schemaVersion":1}"#),
            Err(ContentError::ManifestInvalid(_))
        ));
    }
}
